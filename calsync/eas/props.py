"""What the appointment and task mappings share: options, results, and the
property <-> value helpers of the fields both carry (texts, body, categories,
sensitivity, times).

Rules:
- text values are unescaped on reading and escaped on writing
  (``items.vcal.text``); a device's CRLF line ends become LF, so that a body
  the device echoes with CRLF is not taken for an edit;
- a body is written as DESCRIPTION (plain text); an HTML body keeps its HTML
  in ``X-ALT-DESC;FMTTYPE=text/html`` next to a plain-text DESCRIPTION, and a
  device asking for HTML gets that (or the plain text, escaped); a body the
  device marked truncated is never stored;
- Sensitivity 1 (personal) has no CLASS of its own: it is ``CLASS:PRIVATE``
  with ``X-EAS-SENSITIVITY=1``, so that PRIVATE stays PRIVATE elsewhere and
  the device gets its value back;
- times: a TZID is resolved through the item's VTIMEZONE (``vcal.zones``),
  floating times are in ``Options.floating_zone``; a naive wire time is UTC;
- device data is checked before anything is computed from it (``check_wire``:
  the years and durations of ``items.limits``) and the item made of it as
  every device input (``limits.check_input``): a MappingError, never an
  OverflowError.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from html.parser import HTMLParser
from typing import Generic, TypeVar

from calsync.eas.model import Body, BodyType, Sensitivity, element_of
from calsync.eas.timezone import BlobTz, blob_vtimezone
from calsync.items.item import PRODID, Item, ItemError
from calsync.items.limits import FIRST_YEAR, LAST_YEAR, MAX_DURATION, check_input
from calsync.items.lines import Component, Prop
from calsync.items.vcal import zones
from calsync.items.vcal.text import ical_escape, ical_join, ical_list, ical_unescape
from calsync.items.vcal.times import (
    TimeError,
    TimeValue,
    fmt_ical,
    parse_duration,
    parse_ical,
    tz_name,
)

T = TypeVar("T")


class MappingError(ValueError):
    """An item (or device data) that cannot be mapped; says what and why."""


def master_of(item: Item, kind: str) -> Component:
    """The item's master component of ``kind``; MappingError when there is none,
    or when the item's text cannot be parsed at all (such an item passes
    between stores that keep iCalendar text as it is, but a device must be
    given fields, so for a device it is an item error)."""
    try:
        master = item.master()
    except ItemError as e:
        raise MappingError(f"item {item.uid}: cannot be parsed: {e.reason}") from None
    if master is None or master.name != kind:
        raise MappingError(f"item {item.uid}: no {kind}")
    return master


@dataclass(frozen=True)
class Options:
    """How one device sees items.

    - ``version``: the protocol version of the session ("14.1", "16.1"...);
    - ``user_email``: the account's address (organizer or attendee "me");
    - ``device_zone``: the device's own zone: what a time without a Timezone
      blob means, and where a 14.x device's all-day midnights are;
    - ``floating_zone``: what a floating iCalendar time means;
    - ``body_type`` / ``body_limit``: the body the device asked for (its
      BodyPreference Type and TruncationSize in bytes);
    - ``year``: the reference year of time zone rules (default: this year).
    """

    version: str = "14.1"
    user_email: str | None = None
    device_zone: tzinfo = UTC
    floating_zone: tzinfo = UTC
    body_type: BodyType = BodyType.PLAIN
    body_limit: int | None = None
    year: int | None = None

    @property
    def v16(self) -> bool:
        return self.version.split(".")[0] == "16"

    @property
    def reference_year(self) -> int:
        return self.year or datetime.now(UTC).year


@dataclass
class Outgoing(Generic[T]):
    """What goes to a device, and what it could not be given (kept in calsync)."""

    data: T
    warnings: list[str] = field(default_factory=list)


# -- device data within limits ------------------------------------------------------------------


def check_wire(data: object, where: str = "") -> None:
    """Refuse (``MappingError``) device data a conversion cannot compute with:
    a time outside ``items.limits``' years (every StartTime, Until,
    ExceptionStartTime...), a reminder longer than its longest duration.  The
    item made of it is then checked as every device input is
    (``limits.check_input``, by ``finish``)."""
    if isinstance(data, list):
        for value in data:
            check_wire(value, where)
        return
    if not is_dataclass(data):
        return
    for f in fields(data):
        value = getattr(data, f.name)
        name = f"{where}{element_of(f.name)}"
        if isinstance(value, datetime) and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise MappingError(f"{name} {value:%Y-%m-%d}: years {FIRST_YEAR} to {LAST_YEAR} only")
        if f.name == "reminder" and value is not None and not 0 <= value <= _MAX_MINUTES:
            raise MappingError(f"{name} {value}: not a reminder (0 to {_MAX_MINUTES} minutes)")
        if isinstance(value, list) or is_dataclass(value):
            check_wire(value, f"{name}/")


_MAX_MINUTES = int(MAX_DURATION.total_seconds() // 60)


# -- texts -------------------------------------------------------------------------------------


def text(comp: Component, name: str) -> str | None:
    prop = comp.get(name)
    return ical_unescape(prop.value) if prop is not None else None


def set_text(comp: Component, name: str, value: str | None) -> None:
    """Set (or with None / "" remove) a text property, keeping its parameters."""
    if not value:
        comp.remove(name)
        return
    old = comp.get(name)
    comp.set(name, ical_escape(lf(value)), old.params if old is not None else ())


def lf(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


def mailto(value: str) -> str | None:
    """The address of a CAL-ADDRESS (``mailto:`` any case), None for other URIs."""
    v = value.strip()
    if v.lower().startswith("mailto:"):
        return v[7:].strip() or None
    return v if "@" in v and ":" not in v else None


def clean_param(value: str) -> str:
    """A parameter value: no quotes or control characters (RFC 5545 3.1)."""
    return re.sub(r'[\x00-\x1f"]', "", value).strip()


# -- categories, sensitivity -----------------------------------------------------------------


def categories(comp: Component) -> list[str] | None:
    props = comp.all("CATEGORIES")
    if not props:
        return None
    return [c for p in props for c in ical_list(p.value) if c]


def set_categories(comp: Component, values: Sequence[str]) -> None:
    comp.remove("CATEGORIES")
    if values:
        comp.props.append(Prop("CATEGORIES", (), ical_join(list(values))))


X_SENSITIVITY = "X-EAS-SENSITIVITY"


def sensitivity(comp: Component) -> Sensitivity | None:
    prop = comp.get("CLASS")
    if prop is None:
        return None
    value = prop.value.strip().upper()
    if value == "PUBLIC":
        return Sensitivity.NORMAL
    if value == "CONFIDENTIAL":
        return Sensitivity.CONFIDENTIAL
    if value == "PRIVATE" and prop.param(X_SENSITIVITY) == "1":
        return Sensitivity.PERSONAL
    return Sensitivity.PRIVATE  # PRIVATE, and unknown classes (RFC 5545 3.8.1.3)


def set_sensitivity(comp: Component, value: Sensitivity) -> None:
    if value == Sensitivity.NORMAL:
        comp.remove("CLASS")
    elif value == Sensitivity.PERSONAL:
        comp.set("CLASS", "PRIVATE", ((X_SENSITIVITY, "1"),))
    else:
        comp.set("CLASS", "PRIVATE" if value == Sensitivity.PRIVATE else "CONFIDENTIAL")


# -- body ------------------------------------------------------------------------------------

X_ALT_DESC = "X-ALT-DESC"


def body(comp: Component, opts: Options) -> Body | None:
    """The body the device asked for, from DESCRIPTION (and X-ALT-DESC)."""
    plain = text(comp, "DESCRIPTION")
    alt = comp.get(X_ALT_DESC)
    html_text = (
        ical_unescape(alt.value)
        if alt is not None and (alt.param("FMTTYPE") or "").lower() == "text/html"
        else None
    )
    if plain is None and html_text is None:
        return None
    if opts.body_type == BodyType.HTML:
        data = html_text or _as_html(plain or "")
        kind = BodyType.HTML
    else:
        data = plain if plain is not None else html_to_text(html_text or "")
        kind = BodyType.PLAIN
    size = len(data.encode("utf-8"))
    cut = _truncate(data, opts.body_limit)
    return Body(type=kind, data=cut, estimated_data_size=size, truncated=cut != data)


def set_body(comp: Component, value: Body) -> None:
    """DESCRIPTION (and X-ALT-DESC) from a device's body; a truncated body or
    one in a format we cannot read (RTF, MIME) changes nothing."""
    if value.truncated or value.data is None:
        return
    if value.type == BodyType.HTML:
        set_text(comp, "DESCRIPTION", html_to_text(value.data))
        comp.remove(X_ALT_DESC)
        if value.data.strip():
            comp.props.append(
                Prop(X_ALT_DESC, (("FMTTYPE", "text/html"),), ical_escape(lf(value.data)))
            )
    elif value.type == BodyType.PLAIN:
        set_text(comp, "DESCRIPTION", value.data)
        comp.remove(X_ALT_DESC)


def same_body(a: Body | None, b: Body | None) -> bool:
    def key(x: Body | None) -> str:
        return lf(x.data or "") if x is not None else ""

    return key(a) == key(b)


def _truncate(data: str, limit: int | None) -> str:
    if limit is None:
        return data
    raw = data.encode("utf-8")
    if len(raw) <= limit:
        return data
    return raw[:limit].decode("utf-8", errors="ignore")


def _as_html(plain: str) -> str:
    return "<html><body>" + html.escape(plain).replace("\n", "<br>\n") + "</body></html>"


class _Text(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self._BREAKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("p", "div", "tr"):
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """The readable text of an HTML body (for DESCRIPTION)."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = [ln.strip() for ln in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- items and alarms -------------------------------------------------------------------------


def new_calendar() -> Component:
    return Component("VCALENDAR", [Prop("VERSION", (), "2.0"), Prop("PRODID", (), PRODID.decode())])


def finish(cal: Component) -> Item:
    """The item of a calendar a mapping built, checked as every device input."""
    try:
        item = Item.from_tree(cal)
        check_input(item)
    except ItemError as e:
        raise MappingError(str(e)) from None
    return item


def phone_alarms(comp: Component) -> Iterator[Prop]:
    """The TRIGGERs of the alarms a phone shows (DISPLAY and AUDIO), in order."""
    for alarm in comp.children("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is not None and (alarm.value("ACTION") or "").strip().upper() in PHONE_ACTIONS:
            yield trigger


PHONE_ACTIONS = ("DISPLAY", "AUDIO")


def fires_at(
    trigger: Prop,
    start: datetime | None,
    end: datetime | None,
    cal: Component,
    opts: Options,
    warnings: list[str],
) -> datetime | None:
    """When an alarm fires: its absolute time, or its duration from the start
    (the end for RELATED=END; the other one if that is missing)."""
    try:
        if (trigger.param("VALUE") or "").upper() == "DATE-TIME":
            return instant(read_time(trigger, cal, opts, warnings), UTC)
        related_end = (trigger.param("RELATED") or "").upper() == "END"
        anchor = (end if related_end else start) or end or start
        return anchor + parse_duration(trigger.value) if anchor is not None else None
    except (TimeError, MappingError):
        return None


def display_alarm(trigger: Prop) -> Component:
    """The one alarm a device's reminder becomes."""
    return Component(
        "VALARM", [Prop("ACTION", (), "DISPLAY"), Prop("DESCRIPTION", (), "Reminder"), trigger]
    )


# -- times -----------------------------------------------------------------------------------


def vtimezone_of(cal: Component, tzid: str) -> Component | None:
    for tz in cal.children("VTIMEZONE"):
        if (tz.value("TZID") or "").strip() == tzid:
            return tz
    return None


def read_time(prop: Prop, cal: Component, opts: Options, warnings: list[str]) -> TimeValue:
    """A DATE (``date``) or an aware ``datetime`` of a property."""
    tzid = prop.param("TZID")
    tz = zones.resolve(tzid, vtimezone_of(cal, tzid)) if tzid else None
    if tzid and tz is None:
        warnings.append(f"{prop.name}: unknown TZID {tzid!r}, read as floating time")
    try:
        value = parse_ical(prop.value, tz, prop.param("VALUE"))
    except TimeError as e:
        raise MappingError(f"{prop.name}: {e}") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=opts.floating_zone)
    return value


def time_values(prop: Prop, cal: Component, opts: Options, warnings: list[str]) -> list[TimeValue]:
    """Every value of a list property (EXDATE, RDATE)."""
    return [
        read_time(prop.with_value(v.strip()), cal, opts, warnings)
        for v in prop.value.split(",")
        if v.strip()
    ]


def time_prop(name: str, value: TimeValue, extra: tuple[tuple[str, str | None], ...] = ()) -> Prop:
    params, text_value = fmt_ical(value)
    return Prop(name, extra + params, text_value)


def instant(value: TimeValue, zone: tzinfo) -> datetime:
    """A DATE as the midnight starting it in ``zone``, a time as itself (UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)


def as_utc(moment: datetime) -> datetime:
    """A wire time as an aware UTC value (the wire's times are UTC; a naive one
    is read so, never in the server's local zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def all_day_date(moment: datetime, zone: tzinfo) -> date:
    """The date an all-day boundary means: local midnight in ``zone`` (what 14.x
    clients send), else a date-shaped UTC midnight (16.x, and servers that
    send an all-zero blob), else the nearest local midnight (a device whose
    zone rules differ from ours by an hour).  Never a day east or west."""
    moment = as_utc(moment)
    local = moment.astimezone(zone)
    if local.hour == local.minute == local.second == 0:
        return local.date()
    utc = moment.astimezone(UTC)
    if utc.hour == utc.minute == utc.second == 0:
        return utc.date()
    return (local.replace(tzinfo=None) + timedelta(hours=12)).date()


def vtimezone_for(tz: tzinfo, first_year: int, last_year: int) -> Component | None:
    """The VTIMEZONE an item needs for times in ``tz`` (None for UTC)."""
    if isinstance(tz, BlobTz):
        return blob_vtimezone(tz.blob, tz.tzid)
    name = tz_name(tz)
    if name in (None, "UTC"):
        return None
    return zones.vtimezone(tz, first_year, last_year)
