"""Time zones: vCalendar TZ/DAYLIGHT lines <-> iCalendar VTIMEZONE.

A vCalendar file says only "standard offset +01:00, daylight +02:00 from A to
B in these years".  Going to iCalendar we look for the Olson zone whose
history has exactly those offsets and transitions (the name in the DAYLIGHT
line decides between equal candidates, then a short list of big cities),
else we build a zone of our own from the lines.  Going to vCalendar we list
the daylight periods of the zone for the years an item spans.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta, tzinfo

from calsync.items.lines import Component, Prop
from calsync.items.vcal.times import UTC, TimeError, fmt_local, parse_vcal, tz_name

_OFFSET = re.compile(r"^\s*([+-])?\s*(\d{1,2})(?::?(\d{2}))?\s*$")
_REGIONS = (
    "Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/",
    "Europe/", "Indian/", "Pacific/",
)  # fmt: skip
# When several zones share a history, prefer the one most people mean.
PREFERRED = (
    "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Helsinki", "Europe/Moscow",
    "Europe/Istanbul", "America/New_York", "America/Chicago", "America/Denver",
    "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "America/Halifax",
    "America/St_Johns", "America/Sao_Paulo", "America/Mexico_City", "America/Bogota",
    "Pacific/Honolulu", "Asia/Tokyo", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Kolkata",
    "Asia/Dubai", "Asia/Singapore", "Asia/Jakarta", "Asia/Tehran", "Asia/Jerusalem",
    "Australia/Sydney", "Australia/Adelaide", "Australia/Brisbane", "Australia/Perth",
    "Australia/Darwin", "Pacific/Auckland", "Africa/Johannesburg", "Africa/Cairo",
    "Africa/Lagos", "Africa/Nairobi",
)  # fmt: skip

Warn = Callable[[int, str], None]


def parse_offset(text: str) -> timedelta | None:
    """A UTC offset as devices write it (+01, -0530, +05:30, 0930); None if invalid."""
    m = _OFFSET.match(text)
    if not m:
        return None
    hours = int(m.group(2))
    minutes = int(m.group(3) or 0)
    if hours > 14 or minutes >= 60:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return -offset if m.group(1) == "-" else offset


def fmt_offset(offset: timedelta, colon: bool = False) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    total = abs(int(offset.total_seconds())) // 60
    hours, minutes = divmod(total, 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


@dataclass(frozen=True)
class ZoneSpec:
    """What a vCalendar TZ and DAYLIGHT lines say."""

    std: timedelta
    periods: tuple[tuple[timedelta, datetime, datetime], ...] = ()  # (dst, start, end) UTC
    names: tuple[str, ...] = ()

    @property
    def fixed(self) -> bool:
        return not self.periods


def zone_spec(
    tz_values: list[tuple[int, str]], daylight_values: list[tuple[int, str]], warn: Warn
) -> ZoneSpec | None:
    """The zone described by TZ and DAYLIGHT property values (with their line numbers)."""
    std: timedelta | None = None
    for line, value in tz_values:
        offset = parse_offset(value)
        if offset is None:
            warn(line, f"TZ:{value} is not a UTC offset; ignored")
        elif std is None:
            std = offset
        elif offset != std:
            warn(line, f"a second TZ ({value}) contradicts the first; ignored")
    periods: list[tuple[timedelta, datetime, datetime]] = []
    names: list[str] = []
    years: set[int] = set()
    for line, value in daylight_values:
        fields = [f.strip() for f in value.split(";")]
        flag = fields[0].upper()
        if flag in ("", "FALSE", "0", "NO"):
            continue
        if flag not in ("TRUE", "1", "YES") or len(fields) < 4:
            warn(line, f"DAYLIGHT:{value} is not TRUE;offset;start;end; ignored")
            continue
        dst = parse_offset(fields[1])
        if dst is None:
            warn(line, f"DAYLIGHT offset {fields[1]!r} is not a UTC offset; ignored")
            continue
        base = std if std is not None else dst - timedelta(hours=1)
        try:
            start = parse_vcal(fields[2])
            end = parse_vcal(fields[3])
        except TimeError as e:
            warn(line, f"DAYLIGHT: {e}; ignored")
            continue
        start_utc = _to_utc_naive(start, base)
        end_utc = _to_utc_naive(end, dst)
        if end_utc <= start_utc:
            warn(line, "DAYLIGHT period ends before it starts; ignored")
            continue
        if start_utc.year in years:
            warn(line, f"a second DAYLIGHT period for {start_utc.year}; ignored")
            continue
        years.add(start_utc.year)
        periods.append((dst, start_utc, end_utc))
        names.extend(n for n in fields[4:6] if n and n not in names)
    if std is None:
        if not periods:
            return None
        std = periods[0][0] - timedelta(hours=1)
        warn(daylight_values[0][0], "DAYLIGHT without TZ: assuming a one-hour shift")
    periods.sort(key=lambda p: p[1])
    return ZoneSpec(std, tuple(periods), tuple(names))


def _to_utc_naive(value: date | datetime, offset: timedelta) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value - offset


class VcalZone(tzinfo):
    """A zone built from vCalendar lines that no Olson zone matches."""

    def __init__(self, spec: ZoneSpec) -> None:
        self.spec = spec
        digest = hashlib.blake2b(repr(spec).encode(), digest_size=3).hexdigest()
        name = f"vCalendar TZ{fmt_offset(spec.std)}"
        if spec.periods:
            dsts = sorted({p[0] for p in spec.periods})
            name += " DST" + "/".join(fmt_offset(d) for d in dsts) + f" {digest}"
        self.tzid = name

    def __repr__(self) -> str:
        return f"VcalZone({self.tzid!r})"

    def _period(self, utc_naive: datetime) -> timedelta | None:
        for dst, start, end in self.spec.periods:
            if start <= utc_naive < end:
                return dst
        return None

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return self.spec.std
        local = dt.replace(tzinfo=None)
        for dst, start, end in self.spec.periods:
            if start + self.spec.std <= local < end + dst:
                if dt.fold and local >= end + self.spec.std:
                    return self.spec.std  # the repeated hour, second time round
                return dst
        return self.spec.std

    def dst(self, dt: datetime | None) -> timedelta:
        return self.utcoffset(dt) - self.spec.std

    def tzname(self, dt: datetime | None) -> str:
        names = self.spec.names
        if self.dst(dt):
            return names[1] if len(names) > 1 else ""
        return names[0] if names else ""

    def fromutc(self, dt: datetime) -> datetime:
        naive = dt.replace(tzinfo=None)
        offset = self._period(naive)
        if offset is not None:
            return (naive + offset).replace(tzinfo=self)
        local = naive + self.spec.std
        repeated = any(
            end + self.spec.std <= local < end + dst for dst, _, end in self.spec.periods
        )
        return local.replace(tzinfo=self, fold=1 if repeated else 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VcalZone) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)


@functools.cache
def _candidates() -> tuple[str, ...]:
    names = sorted(n for n in zoneinfo.available_timezones() if n.startswith(_REGIONS) and "/" in n)
    preferred = [n for n in PREFERRED if n in names]
    return tuple(preferred + [n for n in names if n not in preferred])


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _offset_at(tz: tzinfo, utc_naive: datetime) -> timedelta:
    local = utc_naive.replace(tzinfo=UTC).astimezone(tz)
    return local.utcoffset() or timedelta(0)


def _matches(tz: tzinfo, spec: ZoneSpec) -> bool:
    six = timedelta(hours=6)
    for dst, start, end in spec.periods:
        checks = (
            (start - six, spec.std),
            (start + six, dst),
            (start + (end - start) / 2, dst),
            (end - six, dst),
            (end + six, spec.std),
            (end + timedelta(days=40), spec.std),
        )
        for instant, expected in checks:
            if _offset_at(tz, instant) != expected:
                return False
    return True


@functools.lru_cache(maxsize=128)
def identify(spec: ZoneSpec) -> tzinfo | None:
    """The zone for vCalendar TZ/DAYLIGHT lines: an Olson zone whose history
    matches, else a zone of our own.  None for a fixed offset (no DAYLIGHT):
    such times are simply converted to UTC."""
    if spec.fixed:
        return None
    for name in spec.names:
        tz = _zone(name) if name.startswith(_REGIONS) else None
        if tz is not None and _matches(tz, spec):
            return tz
    for name in _candidates():
        tz = _zone(name)
        if tz is not None and _matches(tz, spec):
            return tz
    return VcalZone(spec)


# -- the other way: a zone's daylight periods -------------------------------------


@functools.lru_cache(maxsize=512)
def transitions(
    tz: tzinfo, first_year: int, last_year: int
) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """(UTC instant, offset before, offset after) of every change in the years
    (within the years a date can hold, with a day to spare at each end)."""
    first_year, last_year = max(first_year, MINYEAR + 1), min(last_year, MAXYEAR - 1)
    start = datetime(first_year, 1, 1) - timedelta(days=1)
    end = datetime(last_year + 1, 1, 1) + timedelta(days=1)
    step = timedelta(days=7)
    out: list[tuple[datetime, timedelta, timedelta]] = []
    prev_t, prev_off = start, _offset_at(tz, start)
    t = start
    while t < end:
        t = min(t + step, end)
        off = _offset_at(tz, t)
        if off != prev_off:
            lo, hi = prev_t, t
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                if _offset_at(tz, mid) == prev_off:
                    lo = mid
                else:
                    hi = mid
            hi = hi.replace(microsecond=0)
            if hi.second == 59:
                hi += timedelta(seconds=1)
            out.append((hi, prev_off, off))
        prev_t, prev_off = t, off
    return tuple(out)


def standard_offset(tz: tzinfo, first_year: int, last_year: int) -> timedelta:
    """The offset of standard time: the smallest one in use over the years."""
    offsets = {
        _offset_at(tz, datetime(first_year, 1, 15)),
        _offset_at(tz, datetime(first_year, 7, 15)),
    }
    for _, before, after in transitions(tz, first_year, last_year):
        offsets.update((before, after))
    return min(offsets)


def daylight_periods(
    tz: tzinfo, first_year: int, last_year: int
) -> list[tuple[timedelta, datetime, datetime]]:
    """(offset, UTC start, UTC end) of every daylight-saving period touching the years."""
    std = standard_offset(tz, first_year, last_year)
    trans = transitions(tz, first_year - 1, last_year + 1)
    periods: list[tuple[timedelta, datetime, datetime]] = []
    start: datetime | None = None
    offset = timedelta(0)
    for instant, before, after in trans:
        if before == std and after > std:
            start, offset = instant, after
        elif start is not None and before > std and after == std:
            if start.year <= last_year and instant.year >= first_year:
                periods.append((offset, start, instant))
            start = None
    return periods


def vcal_lines(tz: tzinfo, years: Iterable[int]) -> list[str]:
    """TZ and DAYLIGHT lines (unfolded, no line ending) for the years."""
    wanted = sorted(set(years))
    std = standard_offset(tz, wanted[0], wanted[-1])
    lines = [f"TZ:{fmt_offset(std)}"]
    periods: list[tuple[timedelta, datetime, datetime]] = []
    for first_year, last_year in _runs(wanted):
        for period in daylight_periods(tz, first_year, last_year):
            if period not in periods:
                periods.append(period)
    if not periods:
        lines.append("DAYLIGHT:FALSE")
        return lines
    name = tz_name(tz) or ""
    olson = name if _zone(name) is not None and name.startswith(_REGIONS) else ""
    for offset, start, end in periods:
        if olson:
            std_name = dst_name = olson
        else:
            std_name = _abbrev(tz, end + timedelta(days=2))
            dst_name = _abbrev(tz, start + timedelta(days=2))
        lines.append(
            f"DAYLIGHT:TRUE;{fmt_offset(offset)};{fmt_local(start)}Z;{fmt_local(end)}Z;"
            f"{std_name};{dst_name}"
        )
    return lines


def _runs(years: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for year in years:
        if runs and runs[-1][1] == year - 1:
            runs[-1] = (runs[-1][0], year)
        else:
            runs.append((year, year))
    return runs


def _abbrev(tz: tzinfo, utc_naive: datetime) -> str:
    local = utc_naive.replace(tzinfo=UTC).astimezone(tz)
    name = local.tzname() or ""
    return name if re.fullmatch(r"[A-Za-z0-9+_/-]*", name) else ""


def vtimezone(tz: tzinfo, first_year: int, last_year: int) -> Component:
    """A VTIMEZONE with the zone's exact observances over the years."""
    tzid = tz_name(tz) or "calsync-zone"
    comp = Component("VTIMEZONE", [Prop("TZID", (), tzid)])
    begin = datetime(first_year, 1, 1)
    initial = _offset_at(tz, begin)
    trans = [t for t in transitions(tz, first_year, last_year) if t[0] >= begin]
    std = standard_offset(tz, first_year, last_year)
    groups: dict[tuple[str, timedelta, timedelta, str], list[datetime]] = {}
    first_kind = "DAYLIGHT" if initial > std else "STANDARD"
    first_name = _abbrev(tz, begin)
    groups[(first_kind, initial, initial, first_name)] = [begin]
    for instant, before, after in trans:
        kind = "DAYLIGHT" if after > std else "STANDARD"
        name = _abbrev(tz, instant + timedelta(hours=1))
        groups.setdefault((kind, before, after, name), []).append(instant + before)
    for (kind, before, after, name), starts in groups.items():
        sub = Component(kind)
        sub.props.append(Prop("DTSTART", (), fmt_local(starts[0])))
        if len(starts) > 1:
            sub.props.append(Prop("RDATE", (), ",".join(fmt_local(s) for s in starts[1:])))
        sub.props.append(Prop("TZOFFSETFROM", (), fmt_offset(before)))
        sub.props.append(Prop("TZOFFSETTO", (), fmt_offset(after)))
        if name:
            sub.props.append(Prop("TZNAME", (), name))
        comp.subs.append(sub)
    return comp


# -- naming zones of iCalendar input ----------------------------------------------


def olson(name: str | None) -> tzinfo | None:
    """The Olson zone a TZID names, also through vendor prefixes and Windows names."""
    if not name:
        return None
    name = name.strip().strip('"')
    tz = _zone(name)
    if tz is not None and name not in ("UTC", "GMT") and "/" in name:
        return tz
    parts = [p for p in name.split("/") if p]
    for size in (3, 2):
        if len(parts) >= size:
            candidate = "/".join(parts[-size:])
            if candidate.startswith(_REGIONS):
                tz = _zone(candidate)
                if tz is not None:
                    return tz
    try:
        from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
    except ImportError:  # pragma: no cover - depends on the icalendar version
        WINDOWS_TO_OLSON = {}
    mapped = WINDOWS_TO_OLSON.get(name)
    return _zone(mapped) if mapped else None


def resolve(tzid: str, vtimezone_comp: Component | None) -> tzinfo | None:
    """The tzinfo for a TZID of an item: Olson by name, else its VTIMEZONE's rules."""
    tz = olson(tzid)
    if tz is None and vtimezone_comp is not None:
        tz = olson(vtimezone_comp.value("X-LIC-LOCATION"))
    if tz is not None:
        return tz
    if vtimezone_comp is None:
        return None
    try:
        import icalendar

        parsed = icalendar.Timezone.from_ical(vtimezone_comp.to_bytes())
        result = parsed.to_tz()  # type: ignore[attr-defined]
    except Exception:  # the library raises many types on broken VTIMEZONEs
        return None
    return _Named(result, tzid)


class _Named(tzinfo):
    """A tzinfo from a VTIMEZONE, carrying its TZID."""

    def __init__(self, inner: tzinfo, tzid: str) -> None:
        self.inner = inner
        self.tzid = tzid

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self.inner.utcoffset(None if dt is None else dt.replace(tzinfo=None))

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self.inner.dst(None if dt is None else dt.replace(tzinfo=None))

    def tzname(self, dt: datetime | None) -> str | None:
        return self.inner.tzname(None if dt is None else dt.replace(tzinfo=None))

    def fromutc(self, dt: datetime) -> datetime:
        local = dt.replace(tzinfo=self.inner)
        converted = self.inner.fromutc(local)
        return converted.replace(tzinfo=self)


def years_of(values: Iterable[date | datetime]) -> tuple[int, int] | None:
    years = [v.year for v in values]
    return (min(years), max(years)) if years else None
