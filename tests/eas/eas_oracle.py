"""An independent reading of EAS recurrence patterns, day by day, for tests.

It knows nothing of RRULE: for each day it asks the definition (MS-ASCAL
2.2.2.37 and MS-OXOCAL's "the last day when the month is shorter") whether
the day is an occurrence.  The tests compare it with dateutil's expansion of
the RRULE the mapping produced.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from calsync.eas.model import DAY_BITS, LAST_DAY_OF_MONTH, Recurrence, RecurrenceType

_BIT_OF_WEEKDAY = [DAY_BITS[d] for d in ("MO", "TU", "WE", "TH", "FR", "SA", "SU")]


def _in_mask(day: date, mask: int) -> bool:
    return bool(mask & _BIT_OF_WEEKDAY[day.weekday()])


def _nth_in_month(day: date, mask: int, week: int) -> bool:
    """Is ``day`` the week-th (5: last) day of its month matching the mask?"""
    days = calendar.monthrange(day.year, day.month)[1]
    matching = [d for d in range(1, days + 1) if _in_mask(date(day.year, day.month, d), mask)]
    if not matching:
        return False
    wanted = matching[-1] if week == 5 else (matching[week - 1] if week <= len(matching) else None)
    return wanted == day.day


def _clamped(day: date, day_of_month: int) -> bool:
    days = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(day_of_month, days)


def _week_start(day: date, first: int) -> date:
    """The first day of ``day``'s week; ``first``: 0 = Sunday ... 6."""
    python_first = (first - 1) % 7  # Python: Monday = 0
    return day - timedelta(days=(day.weekday() - python_first) % 7)


def matches(rec: Recurrence, start: date, day: date) -> bool:
    interval = rec.interval or 1
    mask = rec.day_of_week or 0
    kind = rec.type
    if kind == RecurrenceType.DAILY:
        return (day - start).days % interval == 0 and (not mask or _in_mask(day, mask))
    if kind == RecurrenceType.WEEKLY:
        first = rec.first_day_of_week if rec.first_day_of_week is not None else 1
        weeks = (_week_start(day, first) - _week_start(start, first)).days // 7
        return weeks % interval == 0 and _in_mask(day, mask)
    if kind in (RecurrenceType.MONTHLY, RecurrenceType.MONTHLY_NTH):
        months = (day.year * 12 + day.month) - (start.year * 12 + start.month)
        if months % interval:
            return False
    else:
        if (day.year - start.year) % interval or day.month != rec.month_of_year:
            return False
    if kind in (RecurrenceType.MONTHLY, RecurrenceType.YEARLY):
        return _clamped(day, rec.day_of_month or start.day)
    week = rec.week_of_month or 1
    if mask == LAST_DAY_OF_MONTH:
        days = calendar.monthrange(day.year, day.month)[1]
        return day.day == (days if week == 5 else week)
    return _nth_in_month(day, mask, week)


def expand(rec: Recurrence, start: datetime, until: datetime | None, last: date) -> list[datetime]:
    """The occurrences (local, naive) from ``start`` to ``last``; ``until``:
    the latest occurrence start allowed (local, naive)."""
    out: list[datetime] = []
    day = start.date()
    while day <= last:
        if matches(rec, start.date(), day):
            moment = datetime.combine(day, start.time())
            if until is not None and moment > until:
                break
            out.append(moment)
            if rec.occurrences is not None and len(out) >= rec.occurrences:
                break
        day += timedelta(days=1)
    return out
