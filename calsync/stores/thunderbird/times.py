"""Times as Thunderbird stores them: PRTime integers plus a timezone column.

Why: every date in ``local.sqlite`` is an INTEGER of microseconds since the
epoch (PRTime) plus a ``*_tz`` text that says how to read it:

* ``"UTC"``: a UTC instant (``...Z`` in iCalendar);
* an Olson TZID (``Europe/Berlin``): the integer is the true UTC instant;
* ``"floating"``: no timezone, the integer is the wall-clock time as if UTC;
  all-day values are floating midnights (the DATE-ness is a flag bit);
* a whole ``BEGIN:VTIMEZONE...`` text: a zone Thunderbird does not know.

Known zones are resolved with Python's zoneinfo (the same IANA data that
Thunderbird takes from ICU); foreign ones through the VTIMEZONE itself.  For
reading, VTIMEZONEs are generated in the compact form Thunderbird exports
(current rules, yearly RRULEs since 1970).
"""

from __future__ import annotations

import calendar
import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from calsync.items.lines import Component, Prop, parse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
US = 1_000_000
_PRTIME_WRAP = 9223372036854776000  # values above were pre-1970 times stored unsigned

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)$")


class TimeError(ValueError):
    """A date or timezone that cannot be stored or read."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One date as Thunderbird stores it."""

    prtime: int
    tz: str  # "UTC", "floating", an Olson TZID or a VTIMEZONE text
    is_date: bool


# -- zones ------------------------------------------------------------------


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalize_tzid(tzid: str) -> str:
    """A TZID as Thunderbird's timezone service would look it up."""
    tzid = tzid.strip()
    if len(tzid) >= 2 and tzid[0] == '"' and tzid[-1] == '"':
        tzid = tzid[1:-1]
    if tzid.startswith("/mozilla.org/"):
        # "/mozilla.org/<stamp>/Europe/Berlin": Thunderbird strips the prefix
        cut = tzid.find("/", 13)
        if cut >= 0:
            tzid = tzid[cut + 1 :]
    return tzid


def known_zone(tzid: str) -> str | None:
    """The Olson name Thunderbird would store for ``tzid``, if it knows the zone."""
    tzid = normalize_tzid(tzid)
    if tzid in ("UTC", "Z", "Etc/UTC", "GMT") or tzid.upper() == "UTC":
        return "UTC"
    return tzid if tzid in known_zones() else None


@functools.lru_cache(maxsize=256)
def _zone(tzid: str) -> tzinfo:
    return zoneinfo.ZoneInfo(tzid)


@functools.lru_cache(maxsize=64)
def _foreign_zone(text: str) -> tuple[str, tzinfo]:
    """TZID and tzinfo of a VTIMEZONE text (a zone Thunderbird stored inline)."""
    import icalendar

    try:
        comp = icalendar.Timezone.from_ical(text)
        tz = comp.to_tz(lookup_tzid=False)  # type: ignore[attr-defined]
    except Exception as e:  # the library raises several types
        raise TimeError(f"cannot use the stored VTIMEZONE: {e}") from None
    return str(comp.get("TZID", "")).strip(), tz


def zone_for_column(tz: str) -> tuple[str | None, tzinfo | None]:
    """(TZID to show, tzinfo) for a ``*_tz`` column value; (None, None) for floating."""
    if tz == "floating":
        return None, None
    if tz == "UTC":
        return "UTC", UTC
    if tz.lstrip().startswith("BEGIN:VTIMEZONE"):
        return _foreign_zone(tz)
    name = known_zone(tz)
    if name is None:
        raise TimeError(f"unknown timezone {tz!r} in the database")
    return name, (UTC if name == "UTC" else _zone(name))


# -- iCalendar value <-> PRTime ------------------------------------------------


def prtime_of(dt: datetime) -> int:
    """PRTime of an aware datetime, or of a naive one taken as UTC (floating)."""
    delta = dt - EPOCH_NAIVE if dt.tzinfo is None else dt.astimezone(UTC) - EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def from_prtime(value: int | float) -> datetime:
    """The naive UTC (or floating) datetime of a PRTime."""
    v = int(value)
    if v > _PRTIME_WRAP:  # Thunderbird's own fix for old unsigned pre-1970 values
        v = -_PRTIME_WRAP + (v - _PRTIME_WRAP)
        v = round(v / US) * US
    return EPOCH_NAIVE + timedelta(microseconds=v)


def parse_value(value: str) -> tuple[datetime | date, bool]:
    """An iCalendar DATE or DATE-TIME: (value, is_utc)."""
    value = value.strip()
    m = _DATETIME.match(value)
    if m:
        y, mo, d, h, mi, s, z = m.groups()
        sec = min(int(s), 59)  # a leap second is stored as :59, like libical does
        return datetime(int(y), int(mo), int(d), int(h), int(mi), sec), bool(z)
    m = _DATE.match(value)
    if m:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))), False
    raise TimeError(f"not an iCalendar date or date-time: {value!r}")


class Zones:
    """Resolves the TZIDs of one item (its own VTIMEZONEs for zones we do not know)."""

    def __init__(self, timezones: list[Component]) -> None:
        self.defs: dict[str, Component] = {}
        for tz in timezones:
            tzid = tz.value("TZID")
            if tzid:
                self.defs.setdefault(normalize_tzid(tzid), tz)

    def column(self, tzid: str) -> tuple[str, tzinfo]:
        """The ``*_tz`` column value and tzinfo for a TZID parameter."""
        name = known_zone(tzid)
        if name == "UTC":
            return "UTC", UTC
        if name is not None:
            return name, _zone(name)
        comp = self.defs.get(normalize_tzid(tzid))
        if comp is None:
            raise TimeError(
                f"timezone {tzid!r} is neither a known (IANA) zone nor defined by a "
                "VTIMEZONE in the item"
            )
        text = comp.serialize("\r\n")
        _, tz = _foreign_zone(text)
        return text, tz

    def store(self, prop: Prop) -> Stored:
        """How Thunderbird stores a DTSTART-like property."""
        value, is_utc = parse_value(prop.value.split(",")[0])
        if not isinstance(value, datetime):
            midnight = datetime(value.year, value.month, value.day)
            return Stored(prtime_of(midnight), "floating", True)
        tzid = prop.param("TZID")
        if is_utc:
            return Stored(prtime_of(value.replace(tzinfo=UTC)), "UTC", False)
        if not tzid:
            return Stored(prtime_of(value), "floating", False)
        column, tz = self.column(tzid)
        return Stored(prtime_of(value.replace(tzinfo=tz)), column, False)

    def utc(self, prop: Prop) -> int:
        """PRTime of a property Thunderbird keeps in UTC (CREATED, DTSTAMP...)."""
        value, is_utc = parse_value(prop.value)
        if not isinstance(value, datetime):
            return prtime_of(datetime(value.year, value.month, value.day))
        tzid = prop.param("TZID")
        if tzid and not is_utc:
            _, tz = self.column(tzid)
            return prtime_of(value.replace(tzinfo=tz))
        return prtime_of(value)  # UTC, or floating taken as UTC


def to_prop(
    name: str, prtime: int | float, tz: str | None, is_date: bool
) -> tuple[Prop, str | None, str | None]:
    """(property, TZID used, foreign VTIMEZONE text) for a stored date."""
    naive = from_prtime(prtime)
    if is_date:
        return Prop(name, (("VALUE", "DATE"),), naive.strftime("%Y%m%d")), None, None
    if tz is None or tz == "floating":
        return Prop(name, (), _fmt(naive)), None, None
    tzid, zone = zone_for_column(tz)
    if zone is None or tzid == "UTC":
        return Prop(name, (), _fmt(naive) + "Z"), None, None
    local = naive.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    assert tzid is not None
    foreign = tz if tz.lstrip().startswith("BEGIN:VTIMEZONE") else None
    return Prop(name, (("TZID", _quote(tzid)),), _fmt(local)), tzid, foreign


def utc_prop(name: str, prtime: int | float) -> Prop:
    return Prop(name, (), _fmt(from_prtime(prtime)) + "Z")


def _fmt(dt: datetime) -> str:
    return f"{dt.year:04d}{dt.month:02d}{dt.day:02d}T{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"


def _quote(value: str) -> str:
    return f'"{value}"' if re.search(r"[;:,]", value) else value


# -- VTIMEZONE generation ---------------------------------------------------------


def vtimezone(tzid: str, year: int | None = None) -> Component:
    """A compact VTIMEZONE for a known zone: today's rules as yearly RRULEs since 1970.

    The form Thunderbird itself exports.  Zones whose rules do not fit (more
    than two changes a year) get the icalendar library's explicit form.
    """
    return _vtimezone(tzid, year or datetime.now(UTC).year).copy()


@functools.lru_cache(maxsize=128)
def _vtimezone(tzid: str, year: int) -> Component:
    zone = _zone(tzid)
    changes = _transitions(zone, year)
    comp = Component("VTIMEZONE", [Prop("TZID", (), tzid)])
    if not changes:
        off = zone.utcoffset(datetime(year, 1, 1))
        assert off is not None
        name = zone.tzname(datetime(year, 1, 1)) or tzid
        comp.subs.append(_observance("STANDARD", "19700101T000000", off, off, name, None))
        return comp
    if len(changes) != 2:
        return _library_vtimezone(tzid)
    subs: list[Component] = []
    for when, before, after in changes:
        local = when.replace(tzinfo=None) + before
        nth = (local.day - 1) // 7 + 1
        if local.day + 7 > calendar.monthrange(local.year, local.month)[1]:
            nth = -1
        day = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[local.weekday()]
        start = _first_in_1970(local.month, local.weekday(), nth).replace(
            hour=local.hour, minute=local.minute, second=local.second
        )
        rule = f"FREQ=YEARLY;BYMONTH={local.month};BYDAY={nth}{day}"
        kind = "DAYLIGHT" if zone.dst(local + timedelta(days=1)) else "STANDARD"
        name = zone.tzname(local + timedelta(days=1)) or tzid
        subs.append(_observance(kind, _fmt(start), before, after, name, rule))
    subs.sort(key=lambda c: c.name)  # DAYLIGHT before STANDARD, as Thunderbird writes
    comp.subs.extend(subs)
    return comp


def _observance(
    kind: str, start: str, before: timedelta, after: timedelta, name: str, rule: str | None
) -> Component:
    props = [
        Prop("TZOFFSETFROM", (), _offset(before)),
        Prop("TZOFFSETTO", (), _offset(after)),
        Prop("TZNAME", (), name),
        Prop("DTSTART", (), start),
    ]
    if rule:
        props.append(Prop("RRULE", (), rule))
    return Component(kind, props)


def _offset(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h:02d}{m:02d}" + (f"{s:02d}" if s else "")


def _first_in_1970(month: int, weekday: int, nth: int) -> datetime:
    days = calendar.monthrange(1970, month)[1]
    matching = [d for d in range(1, days + 1) if date(1970, month, d).weekday() == weekday]
    return datetime(1970, month, matching[nth - 1] if nth > 0 else matching[-1])


def _transitions(zone: tzinfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of each offset change in ``year``."""

    def off(t: datetime) -> timedelta:
        o = t.astimezone(zone).utcoffset()
        assert o is not None
        return o

    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(days=1)
    prev = off(t)
    while t < end:
        nxt = t + step
        cur = off(nxt)
        if cur != prev:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if off(mid) == prev:
                    lo = mid
                else:
                    hi = mid
            out.append((hi.replace(microsecond=0), prev, cur))
            prev = cur
        t = nxt
    return out


def _library_vtimezone(tzid: str) -> Component:
    import icalendar

    text = icalendar.Timezone.from_tzid(tzid).to_ical().decode("utf-8")
    return parse(text)[0]
