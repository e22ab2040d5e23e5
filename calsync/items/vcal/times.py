"""Date and time values of both formats, and durations.

vCalendar values are ISO 8601 in many spellings (basic and extended, a
trailing Z or none, hour 24, a bare date); iCalendar ones are the strict
basic form with a TZID parameter.  Times are handled as Python values:
``date`` for a date, a naive ``datetime`` for floating local time, an aware one
for UTC (``timezone.utc``) or a zone (a ``tzinfo`` with a TZID).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo

UTC = UTC

_VCAL_TIME = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[Tt ](\d{2}):?(\d{2})(?::?(\d{2}))?(?:[.,]\d+)?[ ]*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_ICAL_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?|Z)?$")
_DURATION = re.compile(
    r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.I
)  # W may mix with the others here: some writers do, and the meaning is plain

TimeValue = date | datetime


class TimeError(ValueError):
    """A value that is not a date or time."""


def parse_vcal(text: str) -> TimeValue:
    """A vCalendar date or date-time: naive (floating), or aware in UTC."""
    value = text.strip()
    m = _VCAL_TIME.match(value)
    if not m:
        raise TimeError(f"not a date or time: {value!r}")
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        day_value = date(year, month, day)
    except ValueError:
        raise TimeError(f"not a valid date: {value!r}") from None
    if m.group(4) is None:
        return day_value
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
    extra = timedelta(0)
    if hour == 24 and minute == 0 and second == 0:
        hour, extra = 0, timedelta(days=1)  # 24:00 is midnight at the end of the day
    if second == 60:
        second = 59  # a leap second: the last second of the minute
    try:
        result = datetime(year, month, day, hour, minute, second) + extra
    except ValueError:
        raise TimeError(f"not a valid time: {value!r}") from None
    zone = m.group(7)
    if zone is None:
        return result
    if zone in ("Z", "z"):
        return result.replace(tzinfo=UTC)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)) * sign
    return (result - offset).replace(tzinfo=UTC)


def parse_ical(text: str, tz: tzinfo | None = None, value_type: str | None = None) -> TimeValue:
    """An iCalendar DATE or DATE-TIME (``tz``: the zone its TZID names)."""
    value = text.strip()
    m = _ICAL_TIME.match(value)
    if not m:
        # be as lenient as the devices we talk to: extended ISO forms too
        try:
            parsed = parse_vcal(value)
        except TimeError:
            raise TimeError(f"not a date or time: {value!r}") from None
        if isinstance(parsed, datetime) and parsed.tzinfo is None and tz is not None:
            return parsed.replace(tzinfo=tz)
        return parsed
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        if m.group(4) is None:
            return date(year, month, day)
        hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
        result = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        raise TimeError(f"not a valid date or time: {value!r}") from None
    if m.group(7):
        return result.replace(tzinfo=UTC)
    if tz is not None:
        return result.replace(tzinfo=tz)
    return result


def is_datetime(value: TimeValue) -> bool:
    return isinstance(value, datetime)


def is_utc(value: TimeValue) -> bool:
    return (
        isinstance(value, datetime)
        and value.tzinfo is not None
        and value.utcoffset() == (timedelta(0))
        and tz_name(value.tzinfo) == "UTC"
    )


def tz_name(tz: tzinfo | None) -> str | None:
    """The TZID of a zone: a ZoneInfo key, our own zones' tzid, or None."""
    if tz is None:
        return None
    if tz is UTC:
        return "UTC"
    for attr in ("tzid", "key", "zone"):
        name = getattr(tz, attr, None)
        if isinstance(name, str) and name:
            return name
    name = getattr(tz, "_tzid", None)
    return name if isinstance(name, str) else None


def fmt_date(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def fmt_local(value: datetime) -> str:
    return f"{fmt_date(value)}T{value.hour:02d}{value.minute:02d}{value.second:02d}"


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def fmt_utc(value: datetime) -> str:
    return fmt_local(to_utc(value)) + "Z"


def fmt_ical(value: TimeValue) -> tuple[tuple[tuple[str, str | None], ...], str]:
    """(parameters, value) of an iCalendar DATE or DATE-TIME."""
    if not isinstance(value, datetime):
        return (("VALUE", "DATE"),), fmt_date(value)
    if value.tzinfo is None:
        return (), fmt_local(value)
    name = tz_name(value.tzinfo)
    if name == "UTC" or name is None:
        return (), fmt_utc(value)
    return (("TZID", name),), fmt_local(value)


def fmt_vcal(value: TimeValue) -> str:
    """vCalendar form: UTC for anything with a zone, floating stays floating."""
    if not isinstance(value, datetime):
        return fmt_date(value)
    if value.tzinfo is None:
        return fmt_local(value)
    return fmt_utc(value)


def parse_duration(text: str) -> timedelta:
    value = text.strip()
    m = _DURATION.match(value)
    if not m or value.upper() in ("P", "PT", "-P", "+P", "-PT", "+PT"):
        raise TimeError(f"not a duration: {value!r}")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups()[1:])
    try:
        delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise TimeError(f"duration out of range: {value!r}") from None
    return -delta if m.group(1) == "-" else delta


def fmt_duration(delta: timedelta) -> str:
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    days, clock = delta.days, delta.seconds
    hours, rest = divmod(clock, 3600)
    minutes, seconds = divmod(rest, 60)
    if days and not clock and days % 7 == 0:
        return f"{sign}P{days // 7}W"
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    if clock or not days:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if seconds or (not hours and not minutes):
            out += f"{seconds}S"
    return out
