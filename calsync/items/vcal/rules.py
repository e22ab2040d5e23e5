"""Recurrence rules: the vCalendar 1.0 grammar <-> iCalendar RRULE.

vCalendar 1.0 grammar (one rule, tokens separated by blanks)::

    D<n> | W<n> [weekday...] | MP<n> [<1-5>(+|-) weekday...]... |
    MD<n> [<1-31>[+|-] | LD]... | YM<n> [<1-12>]... | YD<n> [<1-366>]...
    followed by  #<count>  (#0: forever)  and/or an end date

Any list element may carry a '$' (an occurrence the user marked); it does not
change the dates, so it has no iCalendar counterpart and is kept aside by the
caller.  Readings where implementations differ, and what we chose:

- ``#n`` counts occurrences (as KOrganizer, Funambol and libical read it);
- a count and an end date: the rule ends at whichever comes first; when that
  is not decided within the expansion budget (``calsync.items.expansion``:
  ``D1 #100000000 99991231``), the end date is kept;
- no count and no end date means ``#2`` (the vCalendar 1.0 default);
- an end date at 00:00:00 (or a bare date) includes that whole day
  (KOrganizer, SyncEvolution and Palm write the day of the last occurrence);
- weeks of ``W<n>`` rules with n > 1 start on Sunday (WKST=SU);
- ``M<n>`` and ``Y<n>`` (Nokia 9110) mean ``MD<n>`` and ``YM<n>``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time

from calsync.items.vcal.times import (
    UTC,
    TimeError,
    TimeValue,
    fmt_date,
    fmt_local,
    fmt_utc,
    parse_ical,
    parse_vcal,
)

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FREQ = re.compile(r"^(MP|MD|YM|YD|D|W|M|Y)(\d*)$")
_ICAL_FREQ = {
    "D": "DAILY",
    "W": "WEEKLY",
    "MP": "MONTHLY",
    "MD": "MONTHLY",
    "YM": "YEARLY",
    "YD": "YEARLY",
}


class RuleError(ValueError):
    """A rule that cannot be read (or written) in the grammar."""


@dataclass
class VcalRule:
    freq: str  # D W MP MD YM YD
    interval: int = 1
    weekdays: list[str] = field(default_factory=list)  # W
    positions: list[tuple[int, list[str]]] = field(default_factory=list)  # MP
    numbers: list[int] = field(default_factory=list)  # MD (-1 = last day), YM, YD
    count: int | None = None  # None: not given; 0: forever
    until: TimeValue | None = None
    marked: bool = False  # a '$' somewhere

    def format(self) -> str:
        parts = [f"{self.freq}{self.interval}"]
        if self.freq == "W":
            parts += self.weekdays
        elif self.freq == "MP":
            for n, days in self.positions:
                parts.append(f"{abs(n)}{'-' if n < 0 else '+'}")
                parts += days
        elif self.freq in ("MD", "YD"):
            parts += [f"{-n}-" if n < 0 else str(n) for n in self.numbers]
        elif self.freq == "YM":
            parts += [str(n) for n in self.numbers]
        if self.count is not None:
            parts.append(f"#{self.count}")
        if self.until is not None:
            parts.append(_fmt_end(self.until))
        return " ".join(parts)


def _fmt_end(value: TimeValue) -> str:
    if not isinstance(value, datetime):
        return fmt_local(datetime.combine(value, time()))
    if value.tzinfo is None:
        return fmt_local(value)
    return fmt_utc(value)


def parse(text: str) -> VcalRule:
    """Read one vCalendar 1.0 rule."""
    tokens = text.upper().split()
    if not tokens:
        raise RuleError("empty rule")
    m = _FREQ.match(tokens[0])
    if not m:
        raise RuleError(f"{tokens[0]!r} is not D, W, MP, MD, YM or YD with an interval")
    freq = {"M": "MD", "Y": "YM"}.get(m.group(1), m.group(1))
    interval = int(m.group(2) or 1)
    if interval < 1:
        raise RuleError(f"interval {interval} in {tokens[0]!r}: must be at least 1")
    rule = VcalRule(freq, interval)
    rest = tokens[1:]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("#") or _is_end(token):
            break
        marked = token.endswith("$")
        word = token.rstrip("$")
        rule.marked |= marked
        if freq == "W" or (freq == "MP" and word in WEEKDAYS):
            if word not in WEEKDAYS:
                raise RuleError(f"{token!r} is not a weekday (SU MO TU WE TH FR SA)")
            if freq == "W":
                if word not in rule.weekdays:
                    rule.weekdays.append(word)
            else:
                if not rule.positions:
                    rule.positions.append((1, []))
                if word not in rule.positions[-1][1]:
                    rule.positions[-1][1].append(word)
        elif freq == "MP":
            pm = re.fullmatch(r"([1-5])([+-]?)", word)
            if not pm:
                raise RuleError(f"{token!r} is not an occurrence (1+ to 5+, 1- to 5-)")
            n = int(pm.group(1)) * (-1 if pm.group(2) == "-" else 1)
            rule.positions.append((n, []))
        elif freq == "MD":
            if word == "LD":
                rule.numbers.append(-1)
            else:
                rule.numbers.append(_number(word, 31, token))
        elif freq == "YM":
            rule.numbers.append(_number(word, 12, token, signed=False))
        elif freq == "YD":
            rule.numbers.append(_number(word, 366, token))
        else:
            raise RuleError(f"unexpected {token!r} after {tokens[0]}")
        i += 1
    for token in rest[i:]:
        if token.startswith("#"):
            if rule.count is not None:
                raise RuleError(f"two counts in {text!r}")
            try:
                rule.count = int(token[1:])
            except ValueError:
                raise RuleError(f"{token!r} is not a count") from None
            if rule.count < 0:
                raise RuleError(f"{token!r} is not a count")
        elif _is_end(token):
            if rule.until is not None:
                raise RuleError(f"two end dates in {text!r}")
            try:
                rule.until = parse_vcal(token)
            except TimeError as e:
                raise RuleError(str(e)) from None
        else:
            raise RuleError(f"unexpected {token!r} after the count or end date")
    if rule.freq == "MP":
        for n, days in rule.positions:
            if not days:
                raise RuleError(f"occurrence {abs(n)}{'-' if n < 0 else '+'} without a weekday")
    return rule


def _is_end(token: str) -> bool:
    return bool(re.match(r"^\d{8}", token)) or bool(re.match(r"^\d{4}-\d{2}-\d{2}", token))


def _number(word: str, limit: int, token: str, signed: bool = True) -> int:
    m = re.fullmatch(r"(\d{1,3})([+-]?)" if signed else r"(\d{1,2})", word)
    if not m:
        raise RuleError(f"{token!r} is not a number from 1 to {limit}")
    n = int(m.group(1))
    if not 1 <= n <= limit:
        raise RuleError(f"{token!r}: {n} is not from 1 to {limit}")
    return -n if signed and m.group(2) == "-" else n


# -- vCalendar -> iCalendar --------------------------------------------------------


def _weekday(value: TimeValue) -> str:
    return WEEKDAYS[value.weekday()]


def to_ical(
    rule: VcalRule,
    dtstart: TimeValue,
    raw_dtstart: TimeValue,
    convert: Callable[[TimeValue], TimeValue],
) -> str:
    """The iCalendar RRULE value of a vCalendar rule.

    ``dtstart`` is the item's DTSTART as converted to iCalendar, ``raw_dtstart``
    as the device wrote it, ``convert`` turns a device time into the iCalendar
    frame (zone or UTC) the same way DTSTART was.
    """
    parts: list[tuple[str, str]] = [("FREQ", _ICAL_FREQ[rule.freq])]
    if rule.interval != 1:
        parts.append(("INTERVAL", str(rule.interval)))
    if rule.freq == "W":
        if rule.weekdays:
            parts.append(("BYDAY", ",".join(rule.weekdays)))
        if rule.interval > 1:
            parts.append(("WKST", "SU"))
    elif rule.freq == "MP":
        positions = rule.positions or [(_position(dtstart), [_weekday(dtstart)])]
        parts.append(("BYDAY", ",".join(f"{n}{d}" for n, days in positions for d in days)))
    elif rule.freq == "MD" and rule.numbers:
        parts.append(("BYMONTHDAY", ",".join(str(n) for n in rule.numbers)))
    elif rule.freq == "YM" and rule.numbers:
        parts.append(("BYMONTH", ",".join(str(n) for n in rule.numbers)))
    elif rule.freq == "YD":
        days = rule.numbers or [dtstart.timetuple().tm_yday]
        parts.append(("BYYEARDAY", ",".join(str(n) for n in days)))
    count = rule.count if rule.count is not None else (None if rule.until is not None else 2)
    until = _until(rule.until, dtstart, raw_dtstart, convert) if rule.until is not None else None
    if count and until is not None:
        # both given: the rule ends at whichever comes first (bounded by the end date,
        # so a rule with no occurrences does not search to year 9999); past the
        # expansion budget that is not computed, and the end date is kept
        bounded = _join([*parts, ("UNTIL", _fmt_until(until))])
        if len(occurrences(bounded, dtstart, limit=count)) >= count:
            until = None
        else:
            count = None
    if until is not None:
        parts.append(("UNTIL", _fmt_until(until)))
    elif count:
        parts.append(("COUNT", str(count)))
    return _join(parts)


def _position(value: TimeValue) -> int:
    n = (value.day - 1) // 7 + 1
    return -1 if n == 5 else n


def _join(parts: list[tuple[str, str]]) -> str:
    return ";".join(f"{k}={v}" for k, v in parts)


def _until(
    value: TimeValue,
    dtstart: TimeValue,
    raw_dtstart: TimeValue,
    convert: Callable[[TimeValue], TimeValue],
) -> TimeValue:
    if not isinstance(dtstart, datetime):
        return value.date() if isinstance(value, datetime) else value
    whole_day = not isinstance(value, datetime) or value.time() == time(0)
    if whole_day and isinstance(raw_dtstart, datetime) and raw_dtstart.time() != time(0):
        day = value.date() if isinstance(value, datetime) else value
        value = datetime.combine(day, raw_dtstart.time(), raw_dtstart.tzinfo)
    elif not isinstance(value, datetime):
        value = datetime.combine(value, time())
    value = convert(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if dtstart.tzinfo is not None:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # no zone known: read it as UTC
        return value.astimezone(UTC)
    return (
        value.replace(tzinfo=None)
        if value.tzinfo is None
        else value.astimezone(UTC).replace(tzinfo=None)
    )


def _fmt_until(value: TimeValue) -> str:
    if not isinstance(value, datetime):
        return fmt_date(value)
    return fmt_utc(value) if value.tzinfo is not None else fmt_local(value)


def _comparable(value: TimeValue) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time())
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


# -- expansion (dateutil) ------------------------------------------------------------


def _dateutil_start(dtstart: TimeValue) -> datetime:
    if not isinstance(dtstart, datetime):
        return datetime.combine(dtstart, time())
    return dtstart


def occurrences(value: str, dtstart: TimeValue, limit: int = 500) -> list[datetime]:
    """The first ``limit`` occurrences of an iCalendar RRULE value (for checks),
    or fewer: the expansion stops at its budget (``calsync.items.expansion``)."""
    from dateutil import rrule as du

    from calsync.items import expansion

    cleaned = ";".join(p for p in value.split(";") if not p.upper().startswith("X-"))
    start = _dateutil_start(dtstart)
    if start.tzinfo is not None and "UNTIL=" in cleaned.upper():
        cleaned = re.sub(
            r"(?i)UNTIL=(\d{8})(;|$)", lambda m: f"UNTIL={m.group(1)}T235959Z{m.group(2)}", cleaned
        )
    elif start.tzinfo is None:
        cleaned = re.sub(r"(?i)(UNTIL=\d{8}T\d{6})Z", r"\1", cleaned)
    rule = du.rrulestr(cleaned, dtstart=start, forceset=False)
    return list(itertools.islice(expansion.bounded(rule), limit))


# -- iCalendar -> vCalendar ----------------------------------------------------------


def ical_parts(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for piece in value.strip().split(";"):
        if "=" in piece:
            key, _, val = piece.partition("=")
            parts[key.strip().upper()] = (
                val.strip().upper() if key.strip().upper() != "UNTIL" else val.strip()
            )
    return parts


def byday(value: str) -> list[tuple[int, str]]:
    """A BYDAY value as (ordinal, day) pairs (ordinal 0: none); RuleError if invalid."""
    out: list[tuple[int, str]] = []
    for item in value.split(","):
        m = re.fullmatch(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", item.strip())
        if not m:
            raise RuleError(f"BYDAY {item!r}")
        out.append((int(m.group(1) or 0), m.group(2)))
    return out


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise RuleError(f"not a number list: {value!r}") from None


def from_ical(
    value: str, dtstart: TimeValue, to_vcal_until: Callable[[TimeValue], TimeValue]
) -> VcalRule:
    """The vCalendar rule for an iCalendar RRULE; RuleError if it has none."""
    parts = ical_parts(value)
    freq = parts.pop("FREQ", "")
    try:
        interval = int(parts.pop("INTERVAL", "1"))
    except ValueError:
        raise RuleError(f"INTERVAL in {value!r}") from None
    if interval < 1:
        raise RuleError(f"INTERVAL={interval}")
    count_text = parts.pop("COUNT", None)
    until_text = parts.pop("UNTIL", None)
    wkst = parts.pop("WKST", "MO")
    for key in [k for k in parts if k.startswith("X-")]:
        parts.pop(key)
    # BYHOUR/BYMINUTE/BYSECOND that only repeat DTSTART's own time change nothing
    if isinstance(dtstart, datetime):
        for key, own in (
            ("BYHOUR", dtstart.hour),
            ("BYMINUTE", dtstart.minute),
            ("BYSECOND", dtstart.second),
        ):
            if key in parts and _ints(parts[key]) == [own]:
                parts.pop(key)
    rule: VcalRule
    if freq == "DAILY":
        if not parts:
            rule = VcalRule("D", interval)
        elif set(parts) == {"BYDAY"} and interval == 1:
            days = byday(parts.pop("BYDAY"))
            if any(n for n, _ in days):
                raise RuleError("DAILY with BYDAY ordinals")
            rule = VcalRule("W", 1, weekdays=[d for _, d in days])
        else:
            raise RuleError(f"DAILY with {', '.join(sorted(parts))}")
    elif freq == "WEEKLY":
        days = byday(parts.pop("BYDAY")) if "BYDAY" in parts else [(0, _weekday(dtstart))]
        if parts or any(n for n, _ in days):
            raise RuleError("WEEKLY with more than BYDAY")
        names = [d for _, d in days]
        if interval > 1 and wkst != "SU" and ("SU" in names or _weekday(dtstart) == "SU"):
            raise RuleError(
                f"WEEKLY every {interval} weeks starting {wkst} (vCalendar weeks start on Sunday)"
            )
        rule = VcalRule("W", interval, weekdays=names)
    elif freq == "MONTHLY":
        rule = _monthly(parts, interval, dtstart)
    elif freq == "YEARLY":
        rule = _yearly(parts, interval, dtstart)
    else:
        raise RuleError(f"FREQ={freq or '?'}")
    if count_text is not None:
        try:
            rule.count = int(count_text)
        except ValueError:
            raise RuleError(f"COUNT={count_text}") from None
        if rule.count < 1:
            raise RuleError(f"COUNT={count_text}")
    elif until_text is not None:
        try:
            until = parse_ical(until_text)
        except TimeError as e:
            raise RuleError(f"UNTIL: {e}") from None
        rule.until = to_vcal_until(until)
    else:
        rule.count = 0
    return rule


def _monthly(parts: dict[str, str], interval: int, dtstart: TimeValue) -> VcalRule:
    if "BYDAY" in parts and "BYMONTHDAY" not in parts:
        days = byday(parts.pop("BYDAY"))
        setpos = parts.pop("BYSETPOS", None)
        if parts:
            raise RuleError(f"MONTHLY with {', '.join(sorted(parts))}")
        if setpos is not None:
            positions = _ints(setpos)
            if len(positions) != 1 or any(n for n, _ in days) or not 1 <= abs(positions[0]) <= 5:
                raise RuleError("MONTHLY with BYSETPOS")
            if len(days) > 1:
                raise RuleError("MONTHLY with BYSETPOS over several weekdays")
            days = [(positions[0], days[0][1])]
        grouped: list[tuple[int, list[str]]] = []
        for n, day in days:
            ordinals = [n] if n else [1, 2, 3, 4, 5]
            for k in ordinals:
                if not 1 <= abs(k) <= 5:
                    raise RuleError(f"BYDAY {k}{day}: vCalendar counts weeks 1 to 5")
                for entry in grouped:
                    if entry[0] == k:
                        if day not in entry[1]:
                            entry[1].append(day)
                        break
                else:
                    grouped.append((k, [day]))
        return VcalRule("MP", interval, positions=grouped)
    monthdays = _ints(parts.pop("BYMONTHDAY")) if "BYMONTHDAY" in parts else [dtstart.day]
    if parts:
        raise RuleError(f"MONTHLY with {', '.join(sorted(parts))}")
    if any(not 1 <= abs(n) <= 31 for n in monthdays):
        raise RuleError("BYMONTHDAY out of range")
    return VcalRule("MD", interval, numbers=monthdays)


def _yearly(parts: dict[str, str], interval: int, dtstart: TimeValue) -> VcalRule:
    if "BYYEARDAY" in parts:
        yeardays = _ints(parts.pop("BYYEARDAY"))
        if parts or any(not 1 <= abs(n) <= 366 for n in yeardays):
            raise RuleError(f"YEARLY with BYYEARDAY and {', '.join(sorted(parts))}")
        return VcalRule("YD", interval, numbers=yeardays)
    months = _ints(parts.pop("BYMONTH")) if "BYMONTH" in parts else [dtstart.month]
    if "BYMONTHDAY" in parts and _ints(parts["BYMONTHDAY"]) == [dtstart.day]:
        parts.pop("BYMONTHDAY")
    if parts:
        raise RuleError(f"YEARLY with {', '.join(sorted(parts))}")
    if any(not 1 <= n <= 12 for n in months):
        raise RuleError("BYMONTH out of range")
    return VcalRule("YM", interval, numbers=months)


# -- comparing iCalendar rules ------------------------------------------------------


def normalize(value: str, dtstart: TimeValue) -> tuple[tuple[str, str], ...]:
    """A form of an RRULE value in which equal rules compare equal (defaults filled)."""
    parts = ical_parts(value)
    for key in [k for k in parts if k.startswith("X-")]:
        parts.pop(key)
    freq = parts.get("FREQ", "")
    if parts.get("INTERVAL", "1") == "1":
        parts.pop("INTERVAL", None)
    if not (freq == "WEEKLY" and "INTERVAL" in parts) and freq != "YEARLY":
        parts.pop("WKST", None)
    elif parts.get("WKST") == "MO":
        parts.pop("WKST")
    if freq == "WEEKLY" and "BYDAY" not in parts:
        parts["BYDAY"] = _weekday(dtstart)
    if freq == "MONTHLY" and "BYDAY" not in parts and "BYMONTHDAY" not in parts:
        parts["BYMONTHDAY"] = str(dtstart.day)
    if freq == "YEARLY" and not any(k.startswith("BY") for k in parts):
        parts["BYMONTH"] = str(dtstart.month)
    if freq == "YEARLY" and set(k for k in parts if k.startswith("BY")) == {"BYMONTH"}:
        parts["BYMONTHDAY"] = str(dtstart.day)
    if "BYDAY" in parts:
        parts["BYDAY"] = ",".join(sorted(re.sub(r"^\+", "", d) for d in parts["BYDAY"].split(",")))
    for key in ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYSETPOS", "BYWEEKNO", "BYHOUR", "BYMINUTE"):
        if key in parts:
            try:
                parts[key] = ",".join(str(n) for n in sorted(_ints(parts[key])))
            except RuleError:
                pass
    if "UNTIL" in parts:
        try:
            until = parse_ical(parts["UNTIL"])
            parts["UNTIL"] = (
                _comparable(until).isoformat() if isinstance(until, datetime) else until.isoformat()
            )
        except TimeError:
            pass
    return tuple(sorted(parts.items()))


def same_rule(a: str, b: str, dtstart: TimeValue) -> bool:
    return normalize(a, dtstart) == normalize(b, dtstart)


def until_as_date(value: TimeValue) -> date:
    return value.date() if isinstance(value, datetime) else value


__all__ = [
    "RuleError",
    "VcalRule",
    "byday",
    "from_ical",
    "normalize",
    "occurrences",
    "parse",
    "same_rule",
    "to_ical",
]
