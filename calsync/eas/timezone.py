"""The ActiveSync ``Timezone`` blob (a Win32 TIME_ZONE_INFORMATION) <-> zones.

On the wire every time is UTC; the blob only says how an appointment recurs
and where its all-day midnights are.  It is 172 bytes, base64-encoded
(MS-ASDTYPE 2.7.6), little-endian:

    Bias           LONG       minutes, UTC = local + Bias
    StandardName   WCHAR[32]  UTF-16LE, unused characters zero
    StandardDate   SYSTEMTIME when daylight time ends (local daylight time)
    StandardBias   LONG       added to Bias in standard time (usually 0)
    DaylightName   WCHAR[32]
    DaylightDate   SYSTEMTIME when daylight time starts (local standard time)
    DaylightBias   LONG       added to Bias in daylight time (usually -60)

A SYSTEMTIME with ``wYear`` 0 is a yearly rule: month, weekday (0 = Sunday),
week 1-4 of the month or 5 = the last; ``wYear`` != 0 is one absolute date.
``wMonth`` 0 in StandardDate means no daylight saving time.

Rules:
- zone -> blob (``blob_for_zone``): the zone's rules of one year (the current
  one unless told), each transition as "nth weekday of month"; the n is the
  one that also holds for the next years where one does (week 5 when the day
  is the month's last such weekday), else the year's own.  Names: the Windows
  zone name where icalendar's Windows table knows the zone (what Outlook and
  Exchange write: such blobs equal theirs byte for byte), else the IANA name.
  A zone without daylight time has StandardDate month 0 and DaylightBias 0.
  UTC is the all-zero blob.
- blob -> zone (``zone_for_blob``): the IANA zone whose transitions in the
  reference year and the two after are exactly the blob's (a fixed offset:
  the zone with that offset and no transitions).  Candidates are tried in
  this order: the zone the blob's names designate (a Windows name through
  icalendar's table, or an IANA name), the big cities of ``vcal.zones``, then
  all zones by name; the search is cached per blob.  No match: a zone of our
  own (``BlobTz``) with an RRULE-based VTIMEZONE.  An all-zero blob, or any
  blob without daylight time and offset 0, is UTC.

Why hand-written: the layout is a C struct (``struct`` reads it); no library
maps it to IANA zones; zoneinfo gives the transitions.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import functools
import hashlib
import re
import struct
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from calsync.items.lines import Component, Prop
from calsync.items.vcal.times import fmt_local, tz_name
from calsync.items.vcal.zones import PREFERRED, fmt_offset, transitions

SIZE = 172
_LAYOUT = struct.Struct("<i64s8Hi64s8Hi")
_NAME_BYTES = 64
_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # SYSTEMTIME wDayOfWeek order
_REGIONS = (
    "Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/",
    "Europe/", "Indian/", "Pacific/",
)  # fmt: skip
_CHECK_YEARS = 3  # a match must hold this many years from the reference year


class TimeZoneBlobError(ValueError):
    """A Timezone element that is not a usable TIME_ZONE_INFORMATION."""


@dataclass(frozen=True)
class SystemTime:
    """A SYSTEMTIME as a transition date (see the module docstring)."""

    year: int = 0
    month: int = 0
    day_of_week: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    milliseconds: int = 0

    @property
    def is_set(self) -> bool:
        return self.month != 0

    def check(self, what: str) -> None:
        if not self.is_set:
            return
        problems = []
        if not 1 <= self.month <= 12:
            problems.append(f"month {self.month}")
        if self.year:
            try:
                date(self.year, self.month, self.day)
            except ValueError:
                problems.append(f"date {self.year}-{self.month}-{self.day}")
            if not 1601 <= self.year <= 9899:  # Windows' first year; calsync's last
                problems.append(f"year {self.year}")
        else:
            if not 0 <= self.day_of_week <= 6:
                problems.append(f"weekday {self.day_of_week}")
            if not 1 <= self.day <= 5:
                problems.append(f"week {self.day}")
        if self.hour > 24 or self.minute > 59 or self.second > 59 or self.milliseconds > 999:
            problems.append(f"time {self.hour}:{self.minute}:{self.second}.{self.milliseconds}")
        if problems:
            raise TimeZoneBlobError(f"{what} is not a valid transition date: {', '.join(problems)}")

    def local_in(self, year: int) -> datetime | None:
        """The local wall-clock time of this transition in ``year`` (None: an
        absolute date of another year)."""
        if self.year:
            if self.year != year:
                return None
            day = self.day
        else:
            day = nth_weekday(year, self.month, self.day_of_week, self.day)
        return datetime(year, self.month, day) + timedelta(
            hours=self.hour,
            minutes=self.minute,
            seconds=self.second,
            milliseconds=self.milliseconds,
        )

    def rrule(self) -> str:
        """The yearly rule as an RRULE value (week 5 = -1)."""
        week = -1 if self.day >= 5 else self.day
        return f"FREQ=YEARLY;BYMONTH={self.month};BYDAY={week}{_DAYS[self.day_of_week]}"


def nth_weekday(year: int, month: int, day_of_week: int, week: int) -> int:
    """Day of the month of the ``week``-th weekday (0 = Sunday); 5 = the last."""
    first_weekday = (calendar.weekday(year, month, 1) + 1) % 7  # 0 = Sunday
    day = 1 + (day_of_week - first_weekday) % 7 + 7 * (week - 1)
    days_in_month = calendar.monthrange(year, month)[1]
    while day > days_in_month:
        day -= 7
    return day


@dataclass(frozen=True)
class TimeZoneBlob:
    """A decoded TIME_ZONE_INFORMATION (see the module docstring)."""

    bias: int = 0
    standard_name: str = ""
    standard_date: SystemTime = SystemTime()
    standard_bias: int = 0
    daylight_name: str = ""
    daylight_date: SystemTime = SystemTime()
    daylight_bias: int = 0

    # -- bytes ------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> TimeZoneBlob:
        if len(data) != SIZE:
            raise TimeZoneBlobError(f"a Timezone blob has {SIZE} bytes, this one {len(data)}")
        f = _LAYOUT.unpack(data)
        blob = cls(
            bias=f[0],
            standard_name=_read_name(f[1]),
            standard_date=SystemTime(*f[2:10]),
            standard_bias=f[10],
            daylight_name=_read_name(f[11]),
            daylight_date=SystemTime(*f[12:20]),
            daylight_bias=f[20],
        )
        blob.check()
        return blob

    @classmethod
    def from_base64(cls, text: str) -> TimeZoneBlob:
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise TimeZoneBlobError("the Timezone element is not base64") from None
        return cls.from_bytes(data)

    def to_bytes(self) -> bytes:
        return _LAYOUT.pack(
            self.bias,
            _write_name(self.standard_name),
            *_fields(self.standard_date),
            self.standard_bias,
            _write_name(self.daylight_name),
            *_fields(self.daylight_date),
            self.daylight_bias,
        )

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode("ascii")

    def check(self) -> None:
        if not -24 * 60 < self.bias < 24 * 60:
            raise TimeZoneBlobError(f"bias {self.bias} minutes is no UTC offset")
        for bias in (self.standard_bias, self.daylight_bias):
            if not -24 * 60 < self.bias + bias < 24 * 60:
                raise TimeZoneBlobError(f"bias {self.bias}{bias:+d} minutes is no UTC offset")
        self.standard_date.check("StandardDate")
        self.daylight_date.check("DaylightDate")

    # -- meaning ------------------------------------------------------------------------

    @property
    def has_dst(self) -> bool:
        """Daylight time rules that change the offset (both dates, a real shift)."""
        return (
            self.standard_date.is_set
            and self.daylight_date.is_set
            and self.daylight_bias != self.standard_bias
        )

    @property
    def standard_offset(self) -> timedelta:
        return timedelta(minutes=-(self.bias + self.standard_bias))

    @property
    def daylight_offset(self) -> timedelta:
        return timedelta(minutes=-(self.bias + self.daylight_bias))

    @property
    def is_utc(self) -> bool:
        return not self.has_dst and self.standard_offset == timedelta(0)

    def transitions(self, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
        """(UTC instant, offset before, offset after) of the year's changes."""
        if not self.has_dst:
            return []
        std, dst = self.standard_offset, self.daylight_offset
        out = []
        start = self.daylight_date.local_in(year)
        if start is not None:
            out.append((start - std, std, dst))
        end = self.standard_date.local_in(year)
        if end is not None:
            out.append((end - dst, dst, std))
        return sorted(out)

    def rule_key(self) -> tuple[object, ...]:
        """The rules without the names (what decides the zone)."""
        if not self.has_dst:
            return (self.standard_offset,)
        return (self.standard_offset, self.daylight_offset, self.standard_date, self.daylight_date)


UTC_BLOB = TimeZoneBlob()


def _read_name(raw: bytes) -> str:
    text = raw.decode("utf-16-le", errors="replace")
    return text.split("\x00", 1)[0]


def _write_name(name: str) -> bytes:
    data = name.encode("utf-16-le")
    if len(data) >= _NAME_BYTES:  # keep a terminating zero, never half a surrogate pair
        data = data[: _NAME_BYTES - 2]
        if 0xD8 <= data[-1] <= 0xDB:
            data = data[:-2]
    return data.ljust(_NAME_BYTES, b"\x00")


def _fields(st: SystemTime) -> tuple[int, ...]:
    return (
        st.year,
        st.month,
        st.day_of_week,
        st.day,
        st.hour,
        st.minute,
        st.second,
        st.milliseconds,
    )


# -- a zone of our own for blobs no IANA zone matches ------------------------------------------


class BlobTz(tzinfo):
    """The zone a blob describes, when no IANA zone has its rules."""

    def __init__(self, blob: TimeZoneBlob, tzid: str) -> None:
        self.blob = blob
        self.tzid = tzid
        self._std = blob.standard_offset
        self._dst = blob.daylight_offset

    def __repr__(self) -> str:
        return f"BlobTz({self.tzid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlobTz) and other.blob.rule_key() == self.blob.rule_key()

    def __hash__(self) -> int:
        return hash(self.blob.rule_key())

    def _window(self, year: int) -> tuple[datetime, datetime] | None:
        """Local (start, end) of daylight time in ``year``: start in standard
        wall time, end in daylight wall time."""
        if not self.blob.has_dst:
            return None
        start = self.blob.daylight_date.local_in(year)
        end = self.blob.standard_date.local_in(year)
        if start is None or end is None:
            return None
        return start, end

    def _in_dst(self, local: datetime, fold: int) -> bool:
        window = self._window(local.year)
        if window is None:
            return False
        start, end = window
        shift = self._dst - self._std
        core_from, core_to = start + shift, end - shift
        if core_from <= core_to:
            core = core_from <= local < core_to
        else:  # southern hemisphere: daylight time spans the new year
            core = local >= core_from or local < core_to
        in_gap = start <= local < start + shift
        in_fold = end - shift <= local < end
        return core or (in_gap and fold == 1) or (in_fold and fold == 0)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return self._std
        return self._dst if self._in_dst(dt.replace(tzinfo=None), dt.fold) else self._std

    def dst(self, dt: datetime | None) -> timedelta:
        return self.utcoffset(dt) - self._std

    def tzname(self, dt: datetime | None) -> str:
        if self.dst(dt):
            return self.blob.daylight_name or self.tzid
        return self.blob.standard_name or self.tzid

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        window = self._window(utc.year)
        if window is None:
            return (utc + self._std).replace(tzinfo=self)
        start_utc, end_utc = window[0] - self._std, window[1] - self._dst
        if start_utc <= end_utc:
            in_dst = start_utc <= utc < end_utc
        else:
            in_dst = utc >= start_utc or utc < end_utc
        if in_dst:
            return (utc + self._dst).replace(tzinfo=self)
        local = utc + self._std
        shift = self._dst - self._std
        repeated = end_utc <= utc < end_utc + shift
        return local.replace(tzinfo=self, fold=1 if repeated else 0)


def blob_vtimezone(blob: TimeZoneBlob, tzid: str) -> Component:
    """A VTIMEZONE with the blob's rules (yearly RRULEs, or its one absolute year)."""
    std, dst = blob.standard_offset, blob.daylight_offset
    comp = Component("VTIMEZONE", [Prop("TZID", (), tzid)])
    if not blob.has_dst:
        comp.subs.append(
            _observance("STANDARD", datetime(1601, 1, 1), std, std, blob.standard_name)
        )
        return comp
    if blob.daylight_date.year or blob.standard_date.year:  # one year's dates
        comp.subs.append(
            _observance("STANDARD", datetime(1601, 1, 1), std, std, blob.standard_name)
        )
    for kind, when, before, after, name in (
        ("DAYLIGHT", blob.daylight_date, std, dst, blob.daylight_name),
        ("STANDARD", blob.standard_date, dst, std, blob.standard_name),
    ):
        year = when.year or 1970
        local = when.local_in(year)
        assert local is not None
        start = min(local, datetime(year, local.month, local.day, 23, 59, 59)).replace(
            microsecond=0
        )
        comp.subs.append(
            _observance(kind, start, before, after, name, None if when.year else when.rrule())
        )
    return comp


def _observance(
    kind: str,
    start: datetime,
    before: timedelta,
    after: timedelta,
    name: str,
    rule: str | None = None,
) -> Component:
    sub = Component(kind)
    sub.props.append(Prop("DTSTART", (), fmt_local(start)))
    if rule:
        sub.props.append(Prop("RRULE", (), rule))
    sub.props.append(Prop("TZOFFSETFROM", (), fmt_offset(before)))
    sub.props.append(Prop("TZOFFSETTO", (), fmt_offset(after)))
    if name:
        sub.props.append(Prop("TZNAME", (), _printable(name)))
    return sub


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\\;,:\"]", "", text).strip()


# -- blob -> zone ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobZone:
    """The zone of a blob: the tzinfo, its TZID, and the VTIMEZONE an item
    needs when the zone is our own (None for UTC and IANA zones)."""

    tzinfo: tzinfo
    tzid: str
    vtimezone: Component | None = None


def zone_for_blob(blob: TimeZoneBlob, year: int | None = None) -> BlobZone:
    """The zone a blob describes (see the module docstring); ``year``: the
    reference year of the rules (default: this year)."""
    return _zone_for(blob, year or datetime.now(UTC).year)


@functools.lru_cache(maxsize=256)
def _zone_for(blob: TimeZoneBlob, year: int) -> BlobZone:
    if blob.is_utc:
        return BlobZone(UTC, "UTC")
    years = _years_of(blob, year)
    for name in _candidates(blob, years[0]):
        tz = _zone(name)
        if tz is not None and _matches(tz, blob, years):
            return BlobZone(tz, name)
    if not blob.has_dst:
        hours, rest = divmod(int(blob.standard_offset.total_seconds()), 3600)
        if not rest and -12 <= hours <= 14:
            name = f"Etc/GMT{-hours:+d}"  # the Etc zones' signs are inverted
            tz = _zone(name)
            if tz is not None:
                return BlobZone(tz, name)
    tzid = _own_tzid(blob)
    return BlobZone(BlobTz(blob, tzid), tzid, blob_vtimezone(blob, tzid))


def _years_of(blob: TimeZoneBlob, year: int) -> list[int]:
    fixed = blob.daylight_date.year or blob.standard_date.year
    if blob.has_dst and fixed:
        return [fixed]
    return list(range(year, year + _CHECK_YEARS))


def _own_tzid(blob: TimeZoneBlob) -> str:
    """A stable TZID for a zone of our own: no '/' and no Windows name alone,
    so that no reader takes it for an IANA or Windows zone."""
    digest = hashlib.blake2b(repr(blob.rule_key()).encode(), digest_size=3).hexdigest()
    label = _printable(blob.standard_name)
    offsets = "UTC" + fmt_offset(blob.standard_offset, colon=True)
    if blob.has_dst:
        offsets += " DST" + fmt_offset(blob.daylight_offset, colon=True)
    return " ".join(p for p in ("ActiveSync", label.replace("/", " "), offsets, digest) if p)


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@functools.cache
def _links() -> dict[str, str]:
    """Alias -> zone, from the tzdata package's source (Asia/Calcutta -> Asia/Kolkata)."""
    try:
        import importlib.resources

        text = importlib.resources.files("tzdata.zoneinfo").joinpath("tzdata.zi").read_text()
    except (ImportError, OSError):
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            out[parts[2]] = parts[1]
    return out


def canonical(name: str) -> str:
    """The zone an IANA alias names (itself if it is no alias)."""
    return _links().get(name, name)


@functools.cache
def _all_zones() -> tuple[str, ...]:
    """Zones of the regions, no aliases: the big cities first, then by name."""
    links = _links()
    names = sorted(
        n for n in zoneinfo.available_timezones() if n.startswith(_REGIONS) and n not in links
    )
    preferred = [n for n in PREFERRED if n in names]
    return tuple(preferred + [n for n in names if n not in preferred])


@functools.lru_cache(maxsize=16)
def _signatures(year: int) -> dict[str, tuple[timedelta, timedelta]]:
    """Each zone's offsets in mid-January and mid-July of ``year``."""
    out = {}
    for name in _all_zones():
        tz = _zone(name)
        if tz is not None:
            out[name] = (
                _offset_at(tz, datetime(year, 1, 15)),
                _offset_at(tz, datetime(year, 7, 15)),
            )
    return out


def _candidates(blob: TimeZoneBlob, year: int) -> list[str]:
    """Zone names worth checking, the blob's own names first."""
    hinted = []
    for name in (blob.standard_name, blob.daylight_name):
        mapped = windows_to_iana(name) or (canonical(name) if name.startswith(_REGIONS) else None)
        if mapped and mapped not in hinted:
            hinted.append(mapped)
    january = _blob_offset_at(blob, datetime(year, 1, 15))
    july = _blob_offset_at(blob, datetime(year, 7, 15))
    signatures = _signatures(year)
    same = [n for n in _all_zones() if signatures.get(n) == (january, july)]
    return hinted + [n for n in same if n not in hinted]


def _blob_offset_at(blob: TimeZoneBlob, utc_naive: datetime) -> timedelta:
    return _offset_at(BlobTz(blob, "probe"), utc_naive)


def _offset_at(tz: tzinfo, utc_naive: datetime) -> timedelta:
    return utc_naive.replace(tzinfo=UTC).astimezone(tz).utcoffset() or timedelta(0)


def _matches(tz: tzinfo, blob: TimeZoneBlob, years: list[int]) -> bool:
    for year in years:
        expected = [(t.replace(microsecond=0), b, a) for t, b, a in blob.transitions(year)]
        actual = [t for t in transitions(tz, year, year) if t[0].year == year]
        if actual != expected:
            return False
        if not expected and _offset_at(tz, datetime(year, 6, 1)) != blob.standard_offset:
            return False
    return True


# -- zone -> blob ----------------------------------------------------------------------------


def blob_for_zone(tz: tzinfo, year: int | None = None) -> TimeZoneBlob:
    """The blob for a zone's rules of ``year`` (default: this year)."""
    year = year or datetime.now(UTC).year
    name = tz_name(tz) or ""
    if name in ("UTC", "Etc/UTC", "Z") or tz is UTC:
        return UTC_BLOB
    if isinstance(tz, BlobTz):
        return tz.blob
    std_name, dst_name = _names_for(name)
    changes = _year_changes(tz, year)
    if not changes:
        offset = _offset_at(tz, datetime(year, 7, 1))
        minutes = _minutes(offset)
        if minutes == 0 and not std_name:
            return UTC_BLOB
        return TimeZoneBlob(
            bias=-minutes, standard_name=std_name, daylight_name=dst_name, daylight_bias=0
        )
    starts = [c for c in changes if c[2] > c[1]]
    ends = [c for c in changes if c[2] < c[1]]
    start, end = starts[0], ends[-1]
    std = min(start[1], end[2])
    dst = max(start[2], end[1])
    return TimeZoneBlob(
        bias=-_minutes(std),
        standard_name=std_name,
        standard_date=_rule_of(tz, end, year, rising=False),
        standard_bias=0,
        daylight_name=dst_name,
        daylight_date=_rule_of(tz, start, year, rising=True),
        daylight_bias=-(_minutes(dst) - _minutes(std)),
    )


def _year_changes(tz: tzinfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """The year's changes of offset; a year with a one-time change (a zone
    leaving daylight time, or changing its standard offset) is described by
    the rules of the year after it."""
    for candidate in (year, year + 1, year + 2):
        changes = [t for t in transitions(tz, candidate, candidate) if t[0].year == candidate]
        rising = [c for c in changes if c[2] > c[1]]
        falling = [c for c in changes if c[2] < c[1]]
        if not changes or (rising and falling):
            return changes
    return []


def _minutes(offset: timedelta) -> int:
    return round(offset.total_seconds() / 60)


def _rule_of(
    tz: tzinfo, change: tuple[datetime, timedelta, timedelta], year: int, *, rising: bool
) -> SystemTime:
    """The SYSTEMTIME rule of one transition: local wall time before it, as the
    nth weekday of its month that also holds in the next years if one does."""
    instant, before, _ = change
    local = instant + before
    weekday = (local.weekday() + 1) % 7  # 0 = Sunday
    days_in_month = calendar.monthrange(local.year, local.month)[1]
    candidates = [(local.day - 1) // 7 + 1]
    if local.day + 7 > days_in_month:
        candidates.append(5)
    candidates = sorted(set(candidates), reverse=True)  # "last" first when it is one

    def holds(week: int) -> int:
        count = 0
        for later in range(year + 1, year + 1 + _CHECK_YEARS):
            for t, b, a in transitions(tz, later, later):
                moment = t + b
                if (
                    t.year == later
                    and (a > b) == rising
                    and moment.month == local.month
                    and moment.day == nth_weekday(later, local.month, weekday, week)
                    and moment.time() == local.time()
                ):
                    count += 1
        return count

    week = max(candidates, key=holds)
    return SystemTime(
        month=local.month,
        day_of_week=weekday,
        day=week,
        hour=local.hour,
        minute=local.minute,
        second=local.second,
    )


# -- Windows names ---------------------------------------------------------------------------


@functools.cache
def _windows_table() -> dict[str, str]:
    try:
        from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
    except ImportError:  # pragma: no cover - depends on the icalendar version
        return {}
    return dict(WINDOWS_TO_OLSON)


def windows_to_iana(name: str) -> str | None:
    """The IANA zone of a Windows zone name (icalendar's table), or None."""
    found = _windows_table().get(name.strip()) if name else None
    return canonical(found) if found else None


@functools.cache
def _iana_to_windows() -> dict[str, str]:
    out: dict[str, str] = {}
    for windows, iana in sorted(_windows_table().items()):
        out.setdefault(canonical(iana), windows)
    return out


def _names_for(iana: str) -> tuple[str, str]:
    """(StandardName, DaylightName) for a zone: Windows names where known."""
    windows = _iana_to_windows().get(canonical(iana))
    if windows:
        daylight = windows.replace("Standard Time", "Daylight Time")
        return windows, daylight
    return iana, iana
