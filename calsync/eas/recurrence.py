"""ActiveSync ``Recurrence`` <-> iCalendar RRULE, for appointments and tasks.

What an EAS pattern means (MS-ASCAL 2.2.2.37, MS-ASTASK 2.2.2.31, with the
Exchange semantics of MS-OXOCAL for the edge cases):

    Type 0 daily          every Interval days
    Type 1 weekly         DayOfWeek mask, every Interval weeks (FirstDayOfWeek)
    Type 2 monthly        DayOfMonth; a month shorter than that: its last day
    Type 3 monthly nth    the WeekOfMonth-th day of the month matching the
                          DayOfWeek mask (5 = the last; mask 127 = any day)
    Type 5 yearly         DayOfMonth of MonthOfYear (shorter month: last day)
    Type 6 yearly nth     Type 3 within MonthOfYear

Rules of the mapping:
- EAS -> RRULE is exact: nth weekdays become ``BYDAY=2TU`` (``-1TU`` for the
  last); a mask of several days with a week becomes ``BYDAY=...;BYSETPOS=n``;
  mask 127 in week 5 is ``BYMONTHDAY=-1``; a day of month that some months
  lack becomes ``BYMONTHDAY=28,...,d;BYSETPOS=-1`` (that day or the month's
  last); FirstDayOfWeek is WKST (without one the week starts on Monday, as in
  iCalendar; a rule whose weeks matter says so explicitly when sent).
  Non-Gregorian lunar calendars become RFC 7529 ``RSCALE`` (a leap month
  ``BYMONTH=5L``); CalendarType itself, and a task's Regenerate/DeadOccur,
  ride on the RRULE as X- parameters so that nothing the device said is lost.
- RRULE -> EAS only when EAS means the same occurrences: the exact inverse of
  the above, plus the shorthands (WEEKLY without BYDAY, MONTHLY without
  BYMONTHDAY, DAILY limited to some weekdays).  Anything else raises
  ``Inexpressible`` with the reason: HOURLY and finer, BYHOUR/BYMINUTE/
  BYSECOND other than the start's own, BYYEARDAY, BYWEEKNO, several
  BYMONTHDAY or BYMONTH values, ordinals on several days, a 5th weekday, a
  day of month some months lack (iCalendar skips those months, EAS moves to
  the last day), and a start that is not an occurrence of its rule (EAS
  always counts the start).  The callers decide what to send instead.

Why hand-written: no library knows EAS patterns; nothing here expands a rule
(whether a start is its own first occurrence is read from the EAS pattern,
``occurs_on``), so no device rule can cost more than a few lookups.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from calsync.eas.model import (
    DAY_BITS,
    LAST_DAY_OF_MONTH,
    Recurrence,
    RecurrenceType,
    TaskRecurrence,
)
from calsync.items.vcal.rules import RuleError, byday, ical_parts

R = TypeVar("R", bound=Recurrence)

_ICAL_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # DayOfWeek bit order
_ORDER = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # how BYDAY lists are written
_KNOWN = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
)
# CalendarType (MS-ASCAL 2.2.2.10) of the lunar calendars <-> RFC 7529 RSCALE;
# the other types are Gregorian months with another era or locale.
_RSCALE = {6: "ISLAMIC-CIVIL", 8: "HEBREW", 14: "CHINESE", 15: "CHINESE", 20: "DANGI"}
_RSCALE_BACK = {"ISLAMIC-CIVIL": 6, "HEBREW": 8, "CHINESE": 15, "DANGI": 20}
X_CALENDAR_TYPE = "X-EAS-CALENDARTYPE"
X_REGENERATE = "X-EAS-REGENERATE"
X_DEAD_OCCUR = "X-EAS-DEADOCCUR"

Params = tuple[tuple[str, str | None], ...]


class Inexpressible(ValueError):
    """An RRULE whose occurrences no EAS pattern gives; the message says why."""


class RecurrenceError(ValueError):
    """An EAS Recurrence with values outside its schema."""


# -- EAS -> RRULE ----------------------------------------------------------------------------


def to_rrule(rec: Recurrence, start: date, until: str | None) -> tuple[str, Params]:
    """(RRULE value, parameters) of an EAS pattern.  ``start``: the local date
    of the first occurrence (fills what the pattern leaves out); ``until``:
    the UNTIL value the caller formatted (DATE for all-day, else UTC)."""
    _check(rec)
    kind = rec.type
    mask = rec.day_of_week or 0
    scale = _RSCALE.get(rec.calendar_type or 0)
    parts: list[str] = []
    if kind == RecurrenceType.DAILY:
        parts.append("FREQ=DAILY")
        if mask and mask != LAST_DAY_OF_MONTH:
            parts.append("BYDAY=" + _days(mask))
    elif kind == RecurrenceType.WEEKLY:
        parts += ["FREQ=WEEKLY", "BYDAY=" + _days(mask or _bit(start))]
    else:
        yearly = kind in (RecurrenceType.YEARLY, RecurrenceType.YEARLY_NTH)
        parts.append("FREQ=YEARLY" if yearly else "FREQ=MONTHLY")
        month = rec.month_of_year or start.month
        if yearly:
            parts.append(f"BYMONTH={month}{'L' if rec.is_leap_month else ''}")
        if kind in (RecurrenceType.MONTHLY, RecurrenceType.YEARLY):
            day = rec.day_of_month or start.day
            shortest = 28 if not yearly or scale else _shortest(month)
            if day > shortest and not scale:  # that day, or the month's last
                parts.append("BYMONTHDAY=" + ",".join(str(d) for d in range(shortest, day + 1)))
                parts.append("BYSETPOS=-1")
            else:
                parts.append(f"BYMONTHDAY={day}")
        else:
            week = rec.week_of_month or 1
            position = -1 if week == 5 else week
            mask = mask or _bit(start)
            if mask == LAST_DAY_OF_MONTH:
                parts.append(f"BYMONTHDAY={position}")
            elif _single(mask):
                parts.append(f"BYDAY={position}{_days(mask)}")
            else:
                parts += ["BYDAY=" + _days(mask), f"BYSETPOS={position}"]
    if rec.interval and rec.interval > 1:
        parts.append(f"INTERVAL={rec.interval}")
    if rec.occurrences:
        parts.append(f"COUNT={rec.occurrences}")
    elif until:
        parts.append(f"UNTIL={until}")
    if rec.first_day_of_week is not None:
        parts.append(f"WKST={_ICAL_DAYS[rec.first_day_of_week]}")
    if scale:
        parts.insert(0, f"RSCALE={scale}")
    params: list[tuple[str, str | None]] = []
    if rec.calendar_type:
        params.append((X_CALENDAR_TYPE, str(rec.calendar_type)))
    if isinstance(rec, TaskRecurrence):
        if rec.regenerate is not None:
            params.append((X_REGENERATE, "1" if rec.regenerate else "0"))
        if rec.dead_occur is not None:
            params.append((X_DEAD_OCCUR, "1" if rec.dead_occur else "0"))
    return ";".join(parts), tuple(params)


def _check(rec: Recurrence) -> None:
    problems = []
    if rec.interval is not None and not 1 <= rec.interval <= 999:
        problems.append(f"Interval {rec.interval}")
    if rec.day_of_week is not None and not 0 <= rec.day_of_week <= LAST_DAY_OF_MONTH:
        problems.append(f"DayOfWeek {rec.day_of_week}")
    if rec.day_of_month is not None and not 1 <= rec.day_of_month <= 31:
        problems.append(f"DayOfMonth {rec.day_of_month}")
    if rec.week_of_month is not None and not 1 <= rec.week_of_month <= 5:
        problems.append(f"WeekOfMonth {rec.week_of_month}")
    if rec.month_of_year is not None and not 1 <= rec.month_of_year <= 12:
        problems.append(f"MonthOfYear {rec.month_of_year}")
    if rec.occurrences is not None and rec.occurrences < 1:
        problems.append(f"Occurrences {rec.occurrences}")
    if rec.first_day_of_week is not None and not 0 <= rec.first_day_of_week <= 6:
        problems.append(f"FirstDayOfWeek {rec.first_day_of_week}")
    if problems:
        raise RecurrenceError("Recurrence with invalid " + ", ".join(problems))


def _days(mask: int) -> str:
    return ",".join(d for d in _ORDER if mask & DAY_BITS[d])


def _bit(start: date) -> int:
    return DAY_BITS[_ICAL_DAYS[(start.weekday() + 1) % 7]]


def _single(mask: int) -> bool:
    return mask != 0 and mask & (mask - 1) == 0


def _shortest(month: int) -> int:
    return 28 if month == 2 else calendar.monthrange(2001, month)[1]


# -- RRULE -> EAS ----------------------------------------------------------------------------


def from_rrule(
    value: str,
    start: date | datetime,
    until: Callable[[str], datetime],
    params: Params = (),
    cls: type[R] = Recurrence,  # type: ignore[assignment]
) -> R:
    """The EAS pattern of an RRULE value, or ``Inexpressible``.  ``start``: the
    DTSTART value (local); ``until`` turns the UNTIL text into a UTC instant."""
    parts = ical_parts(value)
    extra = {k: v for k, v in parts.items() if k not in _KNOWN and not k.startswith("X-")}
    calendar_type = _calendar_type(extra.pop("RSCALE", None), params)
    if extra.pop("SKIP", "OMIT") != "OMIT":
        raise Inexpressible("SKIP other than OMIT")
    for key, unit in (("BYHOUR", "hour"), ("BYMINUTE", "minute"), ("BYSECOND", "second")):
        if key in extra and isinstance(start, datetime) and extra[key] == str(getattr(start, unit)):
            extra.pop(key)  # restates the start's own time
    if extra:
        raise Inexpressible(f"{', '.join(sorted(extra))} has no ActiveSync form")
    freq = parts.get("FREQ", "")
    rec = cls(type=RecurrenceType.DAILY)
    rec.interval = _int(parts, "INTERVAL", 1)
    if "COUNT" in parts and "UNTIL" in parts:
        raise Inexpressible("both COUNT and UNTIL")
    if "COUNT" in parts:
        rec.occurrences = _int(parts, "COUNT", 1)
    if "UNTIL" in parts:
        rec.until = until(parts["UNTIL"])
    if "WKST" in parts:
        if parts["WKST"] not in _ICAL_DAYS:
            raise Inexpressible(f"WKST={parts['WKST']}")
        rec.first_day_of_week = _ICAL_DAYS.index(parts["WKST"])
    if calendar_type:
        rec.calendar_type = calendar_type
    byday = _byday(parts.get("BYDAY"))
    monthdays = _ints(parts, "BYMONTHDAY")
    months = parts.get("BYMONTH")
    setpos = _ints(parts, "BYSETPOS")
    local = start.date() if isinstance(start, datetime) else start
    if freq in ("DAILY", "WEEKLY"):
        if monthdays or months or setpos or any(n for n, _ in byday):
            raise Inexpressible(f"{freq} with BYMONTHDAY, BYMONTH, BYSETPOS or ordinals")
        if freq == "DAILY" and not byday:
            rec.type = RecurrenceType.DAILY
        elif freq == "DAILY" and rec.interval != 1:
            raise Inexpressible("DAILY with BYDAY and an INTERVAL")
        else:
            rec.type = RecurrenceType.WEEKLY
            rec.day_of_week = _mask([d for _, d in byday]) if byday else _bit(local)
            if rec.interval > 1 and not _single(rec.day_of_week) and "WKST" not in parts:
                rec.first_day_of_week = 1  # iCalendar's default week, said explicitly
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        month: int | None = None
        if yearly:
            if months is None and (byday or monthdays):
                raise Inexpressible("YEARLY with BYDAY or BYMONTHDAY but no BYMONTH")
            month, leap = _month(months, local)
            rec.month_of_year = month
            if leap:
                rec.is_leap_month = True
        elif months is not None:
            raise Inexpressible("MONTHLY with BYMONTH")
        _monthly(rec, byday, monthdays, setpos, local, month, bool(calendar_type))
    else:
        raise Inexpressible(f"FREQ={freq or '(none)'} has no ActiveSync form")
    if isinstance(rec, TaskRecurrence):
        rec.regenerate = _flag(params, X_REGENERATE)
        rec.dead_occur = _flag(params, X_DEAD_OCCUR)
    if not calendar_type and not occurs_on(rec, local):
        # EAS counts the start as the first occurrence; iCalendar does even
        # when the rule would not produce it
        raise Inexpressible("the start is not an occurrence of the rule")
    return rec


def _monthly(
    rec: Recurrence,
    byday: list[tuple[int, str]],
    monthdays: list[int],
    setpos: list[int],
    start: date,
    month: int | None,
    lunar: bool,
) -> None:
    yearly = month is not None
    plain, nth = (
        (RecurrenceType.YEARLY, RecurrenceType.YEARLY_NTH)
        if yearly
        else (RecurrenceType.MONTHLY, RecurrenceType.MONTHLY_NTH)
    )
    shortest = 28 if month is None or lunar else _shortest(month)
    if byday and monthdays:
        raise Inexpressible("BYDAY together with BYMONTHDAY")
    if byday:
        ordinals = {n for n, _ in byday}
        days = [d for _, d in byday]
        if setpos:
            if ordinals != {0} or len(setpos) != 1:
                raise Inexpressible("BYSETPOS with ordinal days or several positions")
            position = setpos[0]
        elif len(byday) == 1 and byday[0][0] != 0:
            position = byday[0][0]
        else:
            raise Inexpressible("every such weekday of the month, or ordinals on several days")
        rec.type = nth
        rec.week_of_month = _week(position)
        rec.day_of_week = _mask(days)
        return
    if setpos == [-1] and len(monthdays) >= 2:
        top = max(monthdays)
        if sorted(monthdays) == list(range(shortest, top + 1)) and not lunar:
            rec.type, rec.day_of_month = plain, top  # that day, or the month's last
            return
    if setpos:
        raise Inexpressible("BYSETPOS with BYMONTHDAY")
    if len(monthdays) > 1:
        raise Inexpressible("several BYMONTHDAY values")
    day = monthdays[0] if monthdays else start.day
    if day == -1:
        rec.type, rec.week_of_month, rec.day_of_week = nth, 5, LAST_DAY_OF_MONTH
    elif 1 <= day <= shortest or (lunar and day >= 1):
        rec.type, rec.day_of_month = plain, day
    else:
        raise Inexpressible(
            f"BYMONTHDAY={day}: months without that day are skipped here, "
            "ActiveSync moves them to the last day"
        )


def _week(position: int) -> int:
    if position == -1:
        return 5
    if 1 <= position <= 4:
        return position
    raise Inexpressible(f"week {position} of the month (ActiveSync has 1-4 and the last)")


def _byday(text: str | None) -> list[tuple[int, str]]:
    try:
        return byday(text) if text else []
    except RuleError as e:
        raise Inexpressible(str(e)) from None


def _ints(parts: dict[str, str], key: str) -> list[int]:
    if key not in parts:
        return []
    try:
        return [int(v) for v in parts[key].split(",") if v.strip()]
    except ValueError:
        raise Inexpressible(f"{key}={parts[key]}") from None


def _int(parts: dict[str, str], key: str, low: int) -> int:
    values = _ints(parts, key) or [low]
    if len(values) != 1 or values[0] < low:
        raise Inexpressible(f"{key}={parts.get(key)}")
    return values[0]


def _month(text: str | None, start: date) -> tuple[int, bool]:
    if text is None:
        return start.month, False
    m = re.fullmatch(r"(\d{1,2})(L?)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= 12:
        raise Inexpressible(f"BYMONTH={text} (ActiveSync has one month)")
    return int(m.group(1)), bool(m.group(2))


def _mask(days: list[str]) -> int:
    mask = 0
    for day in days:
        mask |= DAY_BITS[day]
    return mask


def _calendar_type(rscale: str | None, params: Params) -> int | None:
    for key, val in params:
        if key == X_CALENDAR_TYPE and val and val.strip().isdigit():
            return int(val)
    if rscale is None or rscale == "GREGORIAN":
        return None
    if rscale not in _RSCALE_BACK:
        raise Inexpressible(f"RSCALE={rscale}")
    return _RSCALE_BACK[rscale]


def _flag(params: Params, name: str) -> bool | None:
    for key, val in params:
        if key == name:
            return val == "1"
    return None


def occurs_on(rec: Recurrence, day: date) -> bool:
    """Is ``day`` a day the pattern (started on ``day``) gives?  Enough to know
    whether a series' start is its own first occurrence."""
    mask = rec.day_of_week or 0
    weekday_bit = DAY_BITS[_ICAL_DAYS[(day.weekday() + 1) % 7]]
    if rec.type == RecurrenceType.DAILY:
        return not mask or mask == LAST_DAY_OF_MONTH or bool(mask & weekday_bit)
    if rec.type == RecurrenceType.WEEKLY:
        return bool(mask & weekday_bit)
    if rec.type in (RecurrenceType.YEARLY, RecurrenceType.YEARLY_NTH) and day.month != (
        rec.month_of_year or day.month
    ):
        return False
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    if rec.type in (RecurrenceType.MONTHLY, RecurrenceType.YEARLY):
        return day.day == min(rec.day_of_month or day.day, days_in_month)
    week = rec.week_of_month or 1
    if mask == LAST_DAY_OF_MONTH:
        return day.day == (days_in_month if week == 5 else week)
    matching = [
        d
        for d in range(1, days_in_month + 1)
        if mask & DAY_BITS[_ICAL_DAYS[(date(day.year, day.month, d).weekday() + 1) % 7]]
    ]
    if week == 5:
        return bool(matching) and matching[-1] == day.day
    return len(matching) >= week and matching[week - 1] == day.day
