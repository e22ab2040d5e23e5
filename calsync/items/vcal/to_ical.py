"""vCalendar 1.0 entries -> iCalendar 2.0 items.

Each VEVENT/VTODO of the stream is converted on its own (an error stays with
its entry, naming its line), then entries are grouped by UID into items:
a master and its overrides (Symbian's X-RECURRENCE-ID), with VTIMEZONEs for
the zones used.  Whatever vCalendar says that iCalendar has no place for is
kept in ``X-CALSYNC-VCAL-*`` properties, so that writing the item back to the
device gives the device what it wrote (see ``shadows``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from calsync.items.canonical import canonical_form
from calsync.items.item import PRODID, Item, ItemError
from calsync.items.lines import Component, LineError, Prop, parse
from calsync.items.vcal import mapping, rules, shadows, zones
from calsync.items.vcal.lexer import Reader, VComp, VProp, control_character, read
from calsync.items.vcal.text import (
    ical_escape,
    ical_join,
    opaque_to_ical,
    quote_param,
    vcal_list,
    vcal_unescape,
)
from calsync.items.vcal.times import (
    UTC,
    TimeError,
    TimeValue,
    fmt_duration,
    fmt_ical,
    parse_duration,
    parse_ical,
    parse_vcal,
    tz_name,
)

log = logging.getLogger(__name__)

ENTRY_COMPONENTS = ("VEVENT", "VTODO")
# Properties an iCalendar component may have only once: a second one from a
# device is kept aside (and written back), not dropped.
SINGLE = frozenset(
    {
        "UID", "DTSTART", "DTEND", "DUE", "SUMMARY", "DESCRIPTION", "LOCATION", "CLASS",
        "STATUS", "PRIORITY", "SEQUENCE", "TRANSP", "URL", "GEO", "DCREATED", "CREATED",
        "LAST-MODIFIED", "COMPLETED", "X-RECURRENCE-ID", "DTSTAMP", "ORGANIZER",
        "PERCENT-COMPLETE",
    }
)  # fmt: skip
TEXT_PROPS = frozenset({"SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT", "CONTACT"})
METADATA_TIMES = {
    "DCREATED": "CREATED",
    "CREATED": "CREATED",
    "LAST-MODIFIED": "LAST-MODIFIED",
    "DTSTAMP": "DTSTAMP",
}
_URI = re.compile(r"^\S+$")


class EntryError(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


# -- how device times are read -----------------------------------------------------------


@dataclass
class Frame:
    """The zone that floating device times are in (from TZ/DAYLIGHT), if known."""

    zone: tzinfo | None = None  # with daylight saving: times become local to it
    fixed: timedelta | None = None  # without: times become UTC
    tz_text: str = ""  # the TZ value a fixed offset came from

    def convert(self, value: TimeValue) -> TimeValue:
        if not isinstance(value, datetime):
            return value
        if self.zone is not None:
            if value.tzinfo is None:
                return value.replace(tzinfo=self.zone)
            return value.astimezone(self.zone)
        if self.fixed is not None and value.tzinfo is None:
            return (value - self.fixed).replace(tzinfo=UTC)
        return value

    def absolute(self, value: TimeValue) -> datetime:
        """A naive UTC-ish instant for differences (floating read as UTC if no zone)."""
        if not isinstance(value, datetime):
            value = datetime.combine(value, time())
        converted = self.convert(value)
        assert isinstance(converted, datetime)
        if converted.tzinfo is not None:
            return converted.astimezone(UTC).replace(tzinfo=None)
        return converted


def _frame(comp: VComp, outer: Frame, reader: Reader) -> Frame:
    tz_values = [(p.line, p.text) for p in comp.all("TZ") if p.text.strip()]
    daylight = [(p.line, p.text) for p in comp.all("DAYLIGHT") if p.text.strip()]
    if not tz_values and not daylight:
        return outer
    spec = zones.zone_spec(tz_values, daylight, reader.warn)
    if spec is None:
        return outer
    zone = zones.identify(spec)
    if zone is None:
        return Frame(fixed=spec.std, tz_text=zones.fmt_offset(spec.std))
    return Frame(zone=zone)


# -- one converted entry ---------------------------------------------------------------


@dataclass
class Entry:
    comp: Component
    uid: str
    derived: bool
    rid: str | None
    line: int
    cal_props: list[Prop]
    zones: set[tzinfo] = field(default_factory=set)
    times: list[TimeValue] = field(default_factory=list)
    open_ended: bool = False
    span: tuple[int, int] = (0, 0)  # where it is in the source


@dataclass
class MasterInfo:
    """What an override needs of its master: the device's DTSTART, all-day or not."""

    raw_start: TimeValue | None
    all_day: bool


class Converter:
    """Converts the entries of one stream."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.masters: dict[str, MasterInfo] = {}

    # -- times -------------------------------------------------------------------------

    def time(self, prop: VProp) -> TimeValue:
        tzid = prop.param("TZID")
        try:
            value = parse_vcal(prop.text)
        except TimeError as e:
            raise EntryError(prop.line, f"{prop.name}: {e}") from None
        if tzid and isinstance(value, datetime) and value.tzinfo is None:
            tz = zones.olson(tzid)
            if tz is None:
                self.reader.warn(prop.line, f"unknown TZID {tzid!r}; time read as floating")
            else:
                value = value.replace(tzinfo=tz)
        return value

    def times(self, prop: VProp) -> list[TimeValue]:
        out: list[TimeValue] = []
        for piece in re.split(r"[;,]", prop.text):
            if piece.strip():
                try:
                    out.append(parse_vcal(piece))
                except TimeError as e:
                    raise EntryError(prop.line, f"{prop.name}: {e}") from None
        return out


def _local_midnight(value: datetime, frame: Frame) -> bool:
    """Midnight on the device's clock: floating 00:00, or a UTC 00:00 that is local
    midnight too (no zone known, or a zone at UTC+0 then)."""
    if value.time() != time(0):
        return False
    if value.tzinfo is None or (frame.zone is None and not frame.fixed):
        return True
    converted = frame.convert(value.replace(tzinfo=None) if frame.zone is None else value)
    return isinstance(converted, datetime) and converted.utcoffset() == timedelta(0)


def event_span(
    start: TimeValue | None, end: TimeValue | None, frame: Frame
) -> tuple[TimeValue | None, TimeValue | None, bool]:
    """DTSTART and DTEND as iCalendar values, recognizing the all-day conventions
    of the devices: a bare date, 00:00:00 to 23:59:59 (or 23:59), 00:00 to 00:00
    of a later day, or 00:00 to the same 00:00."""
    one_day = timedelta(days=1)
    if start is not None and not isinstance(start, datetime):
        if end is None:
            return start, None, True
        if not isinstance(end, datetime):
            return start, end if end > start else start + one_day, True
        if end.time() in (time(23, 59, 59), time(23, 59)) and end.date() >= start:
            return start, end.date() + one_day, True
        if end.time() == time(0) and end.tzinfo is None:
            return start, max(end.date(), start + one_day), True
        start = datetime.combine(start, time(), end.tzinfo)
    if (
        isinstance(start, datetime)
        and isinstance(end, datetime)
        and (start.tzinfo is None) == (end.tzinfo is None)
        and _local_midnight(start, frame)
        and end.date() >= start.date()
    ):
        if end.time() in (time(23, 59, 59), time(23, 59)):
            return start.date(), end.date() + one_day, True
        if _local_midnight(end, frame):
            return start.date(), max(end.date(), start.date() + one_day), True
    if isinstance(start, datetime) and end is not None and not isinstance(end, datetime):
        end = datetime.combine(end, time(), start.tzinfo)
    return (
        frame.convert(start) if start is not None else None,
        frame.convert(end) if end is not None else None,
        False,
    )


def _prop(name: str, value: TimeValue, extra: tuple[tuple[str, str | None], ...] = ()) -> Prop:
    params, text = fmt_ical(value)
    quoted = tuple((k, quote_param(v) if v is not None else None) for k, v in params)
    return Prop(name, (*quoted, *extra), text)


def _metadata_utc(value: TimeValue, frame: Frame) -> TimeValue:
    """CREATED, LAST-MODIFIED, COMPLETED: UTC when the device said so, else as written
    (a floating stamp is not guessed into a zone: it would not read back the same)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _tz_of(value: TimeValue) -> tzinfo | None:
    if isinstance(value, datetime) and value.tzinfo is not None and tz_name(value.tzinfo) != "UTC":
        return value.tzinfo
    return None


# -- the entry converter ---------------------------------------------------------------


class EntryConverter:
    """Converts one VEVENT or VTODO."""

    def __init__(self, conv: Converter, comp: VComp, frame: Frame, cal_props: list[Prop]) -> None:
        self.conv = conv
        self.comp = comp
        self.frame = frame
        self.out = Component(comp.name)
        self.alarms: list[Component] = []
        self.subs: list[Component] = []  # other sub-components carried through a device
        self.entry_zones: set[tzinfo] = set()
        self.times: list[TimeValue] = []
        self.cal_props = cal_props
        self.start: TimeValue | None = None
        self.raw_start: TimeValue | None = None
        self.end: TimeValue | None = None
        self.all_day = False
        self.open_ended = False
        self.seen: set[str] = set()
        self.restore = shadows.Restorer.from_vcal(comp)
        self.organizer_seen = False

    def warn(self, line: int, message: str) -> None:
        self.conv.reader.warn(line, message)

    def add(self, prop: Prop) -> None:
        self.out.props.append(prop)

    def add_time(
        self, name: str, value: TimeValue, extra: tuple[tuple[str, str | None], ...] = ()
    ) -> None:
        self.add(_prop(name, value, extra))
        self.note(value)

    def note(self, value: TimeValue) -> None:
        self.times.append(value)
        tz = _tz_of(value)
        if tz is not None:
            self.entry_zones.add(tz)

    def keep_aside(self, prop: VProp, why: str | None = None) -> None:
        """A device property iCalendar has no place for: kept for writing it back."""
        if why:
            self.warn(prop.line, why)
        params = tuple((k, quote_param(v)) for k, v in prop.other_params())
        self.add(Prop(shadows.VCAL_PREFIX + prop.name, params, ical_escape(prop.text)))

    def from_shadow(self, prop: VProp) -> bool:
        """An iCalendar value this device value stands for (written by us), if any."""
        kept = self.restore.mapped(prop.name, prop.text, _same_text)
        if kept is None:
            return False
        self.add(shadows.as_ical_prop(kept))
        if prop.name in ("RRULE", "EXRULE"):
            self._open_ended(kept.value)
        return True

    def convert(self) -> Entry:
        comp = self.comp
        if comp.errors:
            line, reason = comp.errors[0]
            raise EntryError(line, reason)
        for prop in comp.props:
            bad = control_character(prop.text)
            if bad:
                raise EntryError(
                    prop.line,
                    f"{prop.name} contains the control character {bad}, which "
                    "iCalendar cannot carry",
                )
        self._times()
        uid_prop = comp.get("UID")
        for prop in comp.props:
            if prop.name in ("TZ", "DAYLIGHT", "DTSTART", "DTEND", "DUE", "X-RECURRENCE-ID"):
                continue
            if prop.name.startswith(shadows.ICAL_PREFIX):
                continue
            keeps_empty = (
                prop.name in TEXT_PROPS
                or prop.name.startswith("X-")
                or (not hasattr(self, "p_" + prop.name.replace("-", "_")))
            )
            if not prop.text.strip() and prop.data is None and not keeps_empty:
                continue  # an empty date, rule or alarm says nothing
            if prop.name in SINGLE and prop.name in self.seen:
                self.keep_aside(prop, f"second {prop.name}; kept aside")
                continue
            self.seen.add(prop.name)
            if self.from_shadow(prop):
                continue
            handler = getattr(self, "p_" + prop.name.replace("-", "_"), None)
            if handler is not None and not prop.name.startswith("X-"):
                handler(prop)
            else:
                self.opaque(prop)
        present = {p.name for p in comp.props}
        no_stamp = self.restore.flag(shadows.NO_DTSTAMP)
        for kept in [*self.restore.absent(present), *self.restore.carried()]:
            if kept.name == shadows.VALARM and self.kept_component(kept.value):
                continue
            if kept.name == shadows.COMPONENT and self.kept_component(kept.value, alarm=False):
                continue
            self.add(shadows.as_ical_prop(kept))
        uid = (uid_prop.text.strip() if uid_prop is not None else "") or ""
        derived = not uid
        if derived:
            digest = hashlib.blake2b(self._raw(), digest_size=12).hexdigest()
            uid = f"calsync-{digest}"
            self.out.props.insert(0, Prop("UID", (), ical_escape(uid)))
        if self.out.get("DTSTAMP") is None and not no_stamp:
            stamp = self._stamp()
            self.out.props.insert(1, Prop("DTSTAMP", (), stamp))
            self.add(shadows.shadow_prop("DTSTAMP", "", stamp))  # made up: not for the device
        if self.frame.fixed is not None and self.frame.zone is None and self.frame.tz_text:
            # a device's TZ without daylight saving: its floating times became UTC, but a
            # rule's end date written back as the device wrote it needs the offset again
            self.add(Prop(shadows.VCAL_PREFIX + "TZ", (), ical_escape(self.frame.tz_text)))
        self.out.subs.extend(self.alarms)
        self.out.subs.extend(self.subs)
        for sub in comp.subs:
            self.out.subs.append(_opaque_component(sub))
        rid_prop = self.out.get("RECURRENCE-ID")
        return Entry(
            self.out,
            uid,
            derived,
            rid_prop.value if rid_prop is not None else None,
            comp.line,
            self.cal_props,
            self.entry_zones,
            self.times,
            self.open_ended,
        )

    def _raw(self) -> bytes:
        """The entry's content, for a UID derived from it (stable while it is unchanged)."""
        lines = [self.comp.name]
        for p in self.comp.props:
            params = ";".join(f"{k}={v}" for k, v in p.other_params())
            lines.append(f"{p.name};{params}:{p.text}")
            if p.data is not None:
                lines.append(base64.b64encode(p.data).decode("ascii"))
        return "\n".join(lines).encode("utf-8")

    def _stamp(self) -> str:
        for name in ("LAST-MODIFIED", "CREATED"):
            prop = self.out.get(name)
            if prop is not None and prop.value.endswith("Z"):
                return prop.value
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # -- DTSTART, DTEND, DUE, X-RECURRENCE-ID ---------------------------------------

    def _one(self, name: str) -> VProp | None:
        found = [p for p in self.comp.all(name) if p.text.strip()]
        for extra in found[1:]:
            self.keep_aside(extra, f"second {name}; kept aside")
        return found[0] if found else None

    def _times(self) -> None:
        conv = self.conv
        start_p = self._one("DTSTART")
        end_p = self._one("DTEND")
        due_p = self._one("DUE")
        raw_start = conv.time(start_p) if start_p else None
        self.raw_start = raw_start
        frame = self.frame
        exact = self._exact_times(start_p, end_p if self.comp.name == "VEVENT" else due_p)
        if exact is not None:
            start, end, all_day = exact
        elif self.comp.name == "VEVENT":
            raw_end = conv.time(end_p) if end_p else None
            start, end, all_day = event_span(raw_start, raw_end, frame)
        if self.comp.name == "VEVENT":
            if due_p is not None:
                self.keep_aside(due_p, "DUE in an event; kept aside")
        else:
            if exact is None:
                raw_due = conv.time(due_p) if due_p else None
                start, end, all_day = self._todo_span(raw_start, raw_due)
            if end_p is not None:
                self.keep_aside(end_p, "DTEND in a to-do; kept aside")
        self.start, self.end, self.all_day = start, end, all_day
        recurs = any(self.comp.get(n) is not None for n in ("RRULE", "EXRULE", "RDATE", "EXDATE"))
        if start is None and end is not None and recurs and self.comp.name == "VTODO":
            # iCalendar recurs from DTSTART; a device's to-do recurs from its due date
            self.start, self.raw_start = end, conv.time(due_p) if due_p else None
            self.add_time("DTSTART", end)
            self.add(shadows.shadow_prop("DTSTART", "", fmt_ical(end)[1]))
        elif start is not None:
            self.add_time("DTSTART", start)
        end_p2 = end_p if self.comp.name == "VEVENT" else due_p
        duration = self.restore.mapped("DURATION", end_p2.text, _same_text) if end_p2 else None
        if duration is not None and start is not None and end is not None:
            self.add(shadows.as_ical_prop(duration))  # an iCalendar DURATION, as it was
            self.times.append(end)
        elif end is not None:
            self.add_time("DTEND" if self.comp.name == "VEVENT" else "DUE", end)
        rid_p = self._one("X-RECURRENCE-ID")
        if rid_p is not None:
            self._recurrence_id(rid_p)

    def _exact_times(
        self, start_p: VProp | None, end_p: VProp | None
    ) -> tuple[TimeValue | None, TimeValue | None, bool] | None:
        """DTSTART and DTEND/DUE as an iCalendar writer left them, when it had to keep
        them: times a device's copy would read differently (timed times that look
        like an all-day convention, floating times in an item with a zone)."""
        found: dict[str, TimeValue] = {}
        for prop in (start_p, end_p):
            if prop is None:
                continue
            kept = self.restore.mapped(prop.name, prop.text, _same_text)
            if kept is None:
                continue
            line = shadows.as_ical_prop(kept)
            tzid = line.param("TZID")
            try:
                value = parse_ical(line.value, zones.olson(tzid) if tzid else None)
            except TimeError:
                continue
            if (line.param("VALUE") or "").upper() == "DATE" and isinstance(value, datetime):
                value = value.date()
            found[prop.name] = value
        if not found:
            return None
        raw = [self.conv.time(p) if p is not None else None for p in (start_p, end_p)]
        if self.comp.name == "VEVENT":
            start, end, _ = event_span(raw[0], raw[1], self.frame)
        else:
            start, end, _ = self._todo_span(raw[0], raw[1])
        if start_p is not None and start_p.name in found:
            start = found[start_p.name]
        if end_p is not None and end_p.name in found:
            end = found[end_p.name]
        return start, end, start is not None and not isinstance(start, datetime)

    def _todo_span(
        self, start: TimeValue | None, due: TimeValue | None
    ) -> tuple[TimeValue | None, TimeValue | None, bool]:
        dated = [v for v in (start, due) if v is not None]
        if dated and all(not isinstance(v, datetime) for v in dated):
            return start, due, True
        if start is not None and not isinstance(start, datetime) and isinstance(due, datetime):
            start = datetime.combine(start, time(), due.tzinfo)
        if due is not None and not isinstance(due, datetime) and isinstance(start, datetime):
            due = datetime.combine(due, time(), start.tzinfo)
        return (
            self.frame.convert(start) if start is not None else None,
            self.frame.convert(due) if due is not None else None,
            False,
        )

    def _recurrence_id(self, prop: VProp) -> None:
        value = self.conv.time(prop)
        uid_p = self.comp.get("UID")
        master = self.conv.masters.get(uid_p.text.strip()) if uid_p is not None else None
        if isinstance(value, datetime):
            value = self.frame.convert(value)
        elif master is not None and not master.all_day and isinstance(master.raw_start, datetime):
            raw = datetime.combine(value, master.raw_start.time(), master.raw_start.tzinfo)
            value = self.frame.convert(raw)
        params = tuple(("RANGE", v) for k, v in prop.params if k == "RANGE")
        self.add_time("RECURRENCE-ID", value, params)

    def _instance(self, value: TimeValue) -> TimeValue:
        """An EXDATE/RDATE value in the frame of DTSTART (a date for all-day items)."""
        if self.all_day:
            return value.date() if isinstance(value, datetime) else value
        return self.frame.convert(value)  # a bare date stays a date (RDATE;VALUE=DATE)

    # -- simple properties ----------------------------------------------------------------

    def text(self, prop: VProp, name: str | None = None) -> None:
        params = tuple((k, quote_param(v)) for k, v in prop.other_params())
        self.add(Prop(name or prop.name, params, ical_escape(vcal_unescape(prop.text))))

    p_SUMMARY = p_DESCRIPTION = p_LOCATION = p_COMMENT = p_CONTACT = text

    def p_UID(self, prop: VProp) -> None:
        self.add(Prop("UID", (), opaque_to_ical(prop.text)))  # an identity: as it is

    def p_CATEGORIES(self, prop: VProp) -> None:
        values = vcal_list(prop.text)
        if not values:
            return
        joined = ical_join(values)
        self.add(
            Prop(prop.name, tuple((k, quote_param(v)) for k, v in prop.other_params()), joined)
        )
        self.restore_shadow(prop, joined, lambda: mapping.list_to_vcal(joined))

    p_RESOURCES = p_CATEGORIES

    def restore_shadow(self, prop: VProp, ical_value: str, back: Callable[[], str | None]) -> None:
        """Keep the device's value aside if writing ``ical_value`` back would not give it."""
        try:
            again = back()
        except ValueError:
            again = None
        if again is None or again.strip() != prop.text.strip():
            self.add(shadows.shadow_prop(prop.name, prop.text, ical_value))

    def p_CLASS(self, prop: VProp) -> None:
        value = prop.text.strip().upper()
        self.add(Prop("CLASS", (), value))
        self.restore_shadow(prop, value, lambda: value)

    def p_STATUS(self, prop: VProp) -> None:
        mapped = mapping.status_to_ical(self.comp.name, prop.text)
        if mapped:
            self.add(Prop("STATUS", (), mapped))
        self.restore_shadow(
            prop, mapped or "", lambda: mapping.status_to_vcal(self.comp.name, mapped)
        )

    def p_PRIORITY(self, prop: VProp) -> None:
        value = prop.text.strip()
        if re.fullmatch(r"\d+", value) and int(value) <= 9:
            self.add(Prop("PRIORITY", (), str(int(value))))
            self.restore_shadow(prop, str(int(value)), lambda: str(int(value)))
        else:
            self.add(shadows.shadow_prop("PRIORITY", prop.text, ""))
            self.warn(prop.line, f"PRIORITY {value!r} is not 0-9; kept aside")

    def p_SEQUENCE(self, prop: VProp) -> None:
        value = prop.text.strip()
        if re.fullmatch(r"\d+", value):
            self.add(Prop("SEQUENCE", (), str(int(value))))
        else:
            self.keep_aside(prop, f"SEQUENCE {value!r} is not a number; kept aside")

    def p_TRANSP(self, prop: VProp) -> None:
        mapped = mapping.transp_to_ical(prop.text)
        self.add(Prop("TRANSP", (), mapped))
        self.restore_shadow(prop, mapped, lambda: mapping.transp_to_vcal(mapped))

    def p_GEO(self, prop: VProp) -> None:
        parts = [p.strip() for p in re.split(r"[,;]", prop.text)]
        try:
            if len(parts) != 2:
                raise ValueError
            float(parts[0])
            float(parts[1])
        except ValueError:
            self.keep_aside(prop, f"GEO {prop.text!r} is not latitude,longitude; kept aside")
            return
        self.add(Prop("GEO", (), f"{parts[0]};{parts[1]}"))

    def p_URL(self, prop: VProp) -> None:
        self.add(Prop("URL", (), prop.text.strip()))

    def p_RELATED_TO(self, prop: VProp) -> None:
        params = tuple((k, quote_param(v)) for k, v in prop.other_params())
        self.add(Prop("RELATED-TO", params, ical_escape(vcal_unescape(prop.text.strip()))))

    def p_PERCENT_COMPLETE(self, prop: VProp) -> None:
        value = prop.text.strip()
        if re.fullmatch(r"\d{1,3}", value) and int(value) <= 100:
            self.add(Prop("PERCENT-COMPLETE", (), str(int(value))))
        else:
            self.keep_aside(prop, f"PERCENT-COMPLETE {value!r} is not 0-100; kept aside")

    def metadata_time(self, prop: VProp) -> None:
        name = METADATA_TIMES[prop.name]
        try:
            value = parse_vcal(prop.text)
        except TimeError:
            self.keep_aside(prop, f"{prop.name} {prop.text!r} is not a time; kept aside")
            return
        converted = _metadata_utc(value, self.frame)
        params, text = fmt_ical(converted)
        self.add(Prop(name, params, text))

    p_DCREATED = p_CREATED = p_LAST_MODIFIED = p_DTSTAMP = metadata_time

    def p_COMPLETED(self, prop: VProp) -> None:
        try:
            value = parse_vcal(prop.text)
        except TimeError as e:
            raise EntryError(prop.line, f"COMPLETED: {e}") from None
        self.add_time("COMPLETED", _metadata_utc(value, self.frame))

    def p_RNUM(self, prop: VProp) -> None:
        self.keep_aside(prop)  # a count derived from the rule; the rule says it

    # -- recurrence -------------------------------------------------------------------

    def p_RRULE(self, prop: VProp) -> None:
        self.rule(prop)

    p_EXRULE = p_RRULE

    def rule(self, prop: VProp) -> None:
        text = prop.text.strip()
        if "FREQ=" in text.upper():  # an iCalendar rule in a vCalendar file: as it is
            self.add(Prop(prop.name, (), text))
            self._open_ended(text)
            return
        if self.start is None:
            raise EntryError(prop.line, f"{prop.name} without DTSTART")
        try:
            parsed = rules.parse(text)
            value = rules.to_ical(
                parsed, self.start, self.raw_start or self.start, self.frame.convert
            )
        except rules.RuleError as e:
            raise EntryError(prop.line, f"{prop.name} {text!r}: {e}") from None
        self.add(Prop(prop.name, (), value))
        self._open_ended(value)
        self.restore_shadow(prop, value, lambda: self._rule_back(value))

    def _rule_back(self, value: str) -> str:
        assert self.start is not None
        return rules.from_ical(value, self.start, _until_to_vcal).format()

    def _open_ended(self, value: str) -> None:
        upper = value.upper()
        if "COUNT=" not in upper and "UNTIL=" not in upper:
            self.open_ended = True

    def p_RDATE(self, prop: VProp) -> None:
        values = [self._instance(v) for v in self.conv.times(prop)]
        if not values:
            return
        for value in values:
            self.note(value)
        groups: dict[tuple[tuple[str, str | None], ...], list[str]] = {}
        for value in values:
            params, text = fmt_ical(value)
            groups.setdefault(params, []).append(text)
        for params, texts in groups.items():
            self.add(Prop(prop.name, params, ",".join(texts)))

    p_EXDATE = p_RDATE

    # -- people -------------------------------------------------------------------------

    def p_ATTENDEE(self, prop: VProp) -> None:
        organizer = (prop.param("ROLE") or "").upper() == "ORGANIZER" and not self.organizer_seen
        self.organizer_seen |= organizer
        self.add(mapping.attendee_to_ical(prop, organizer))

    def p_ORGANIZER(self, prop: VProp) -> None:
        organizer = not self.organizer_seen
        self.organizer_seen = True
        self.add(mapping.attendee_to_ical(prop, organizer))

    # -- attachments -----------------------------------------------------------------------

    def p_ATTACH(self, prop: VProp) -> None:
        params = [(k, v) for k, v in prop.other_params("VALUE")]
        value_type = (prop.param("VALUE") or "").upper()
        if prop.data is not None:
            params += [("ENCODING", "BASE64"), ("VALUE", "BINARY")]
            value = base64.b64encode(prop.data).decode("ascii")
        elif value_type in ("CID", "CONTENT-ID"):
            cid = prop.text.strip().strip("<>")
            value = cid if cid.lower().startswith("cid:") else "cid:" + cid
            params.append(("VALUE", "URI"))
        elif value_type == "URL" or (not value_type and _URI.match(prop.text.strip())):
            value = prop.text.strip()
            if value_type:
                params.append(("VALUE", "URI"))
        else:
            params += [("FMTTYPE", "text/plain"), ("ENCODING", "BASE64"), ("VALUE", "BINARY")]
            value = base64.b64encode(prop.text.encode("utf-8")).decode("ascii")
        self.add(Prop("ATTACH", tuple((k, quote_param(v)) for k, v in params), value))

    # -- alarms --------------------------------------------------------------------------

    def p_AALARM(self, prop: VProp) -> None:
        kept = self.restore.mapped(shadows.VALARM, f"{prop.name}:{prop.text}", _same_text)
        if kept is not None and self.kept_component(kept.value):
            return
        alarm = mapping.alarm_to_ical(prop, self)
        if alarm is not None:
            self.alarms.append(alarm)

    p_DALARM = p_PALARM = p_MALARM = p_AALARM

    def kept_component(self, text: str, alarm: bool = True) -> bool:
        """Restore a VALARM (or other sub-component) we wrote aside (see ``to_vcal``),
        if it still parses."""
        try:
            (comp,) = parse(text)
        except (LineError, ValueError):
            return False
        if (comp.name == "VALARM") != alarm:
            return False
        (self.alarms if alarm else self.subs).append(comp)
        return True

    def alarm_anchor(self) -> tuple[TimeValue | None, bool]:
        """(time alarms are relative to, relative to the end?)."""
        if self.comp.name == "VTODO" and self.end is not None:
            return self.end, True
        return self.start, False

    # -- anything else -------------------------------------------------------------------

    def opaque(self, prop: VProp) -> None:
        params = [(k, v) for k, v in prop.other_params()]
        if prop.data is not None:
            params.append(("ENCODING", "BASE64"))
            value = base64.b64encode(prop.data).decode("ascii")
        else:
            value = opaque_to_ical(prop.text)
        self.add(Prop(prop.name, tuple((k, quote_param(v)) for k, v in params), value))


def _same_text(a: str, b: str) -> bool:
    return a.split() == b.split()


def _until_to_vcal(value: TimeValue) -> TimeValue:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _opaque_component(comp: VComp) -> Component:
    out = Component(comp.name)
    for prop in comp.props:
        params = tuple((k, quote_param(v)) for k, v in prop.other_params())
        out.props.append(Prop(prop.name, params, opaque_to_ical(prop.text)))
    out.subs.extend(_opaque_component(s) for s in comp.subs)
    return out


# -- the whole stream ------------------------------------------------------------------


def _cal_props(cal: VComp) -> list[Prop]:
    keep: list[Prop] = []
    for prop in cal.props:
        if prop.name in ("VERSION", "PRODID", "TZ", "DAYLIGHT", "METHOD", "CALSCALE"):
            continue
        if prop.name.startswith("X-WR-") or not prop.text.strip():
            continue
        params = tuple((k, quote_param(v)) for k, v in prop.other_params())
        keep.append(Prop(prop.name, params, opaque_to_ical(prop.text)))
    return keep


Span = tuple[int, int]


@dataclass
class Converted:
    """A whole stream, converted, with where each item and error came from."""

    items: list[Item]
    errors: list[ItemError]
    error_keys: list[str]  # for each error: the UID, or "(entry at line N)" without one
    spans: dict[str, list[Span]]  # UID (or error key) -> byte spans of its entries
    calendars: list[tuple[Span, Span, list[Span]]]  # block, its own lines, its entries


def convert_stream(data: bytes, source: str) -> tuple[list[Item], list[ItemError]]:
    result = convert(data, source)
    return result.items, result.errors


def convert(data: bytes, source: str) -> Converted:
    """Convert every entry; an entry that fails takes the other entries of its UID
    with it (an item without one of its overrides would lose it on writing back)."""
    roots, reader = read(data, source)
    conv = Converter(reader)
    pending: list[tuple[VComp, Frame, list[Prop]]] = []
    calendars: list[tuple[Span, Span, list[Span]]] = []
    for cal in roots:
        if cal.name != "VCALENDAR":
            reader.warn(cal.line, f"BEGIN:{cal.name} outside a calendar; skipped")
            continue
        frame = _frame(cal, Frame(), reader)
        cal_props = _cal_props(cal)
        head_end = cal.subs[0].start if cal.subs else cal.end
        entry_spans: list[Span] = []
        for comp in cal.subs:
            if comp.name in ENTRY_COMPONENTS:
                pending.append((comp, _frame(comp, frame, reader), cal_props))
                entry_spans.append((comp.start, comp.end))
            else:
                reader.warn(comp.line, f"BEGIN:{comp.name} is not an event or to-do; skipped")
        calendars.append(((cal.start, cal.end), (cal.start, head_end), entry_spans))
    # masters first: overrides need their DTSTART and all-day-ness
    ordered = sorted(pending, key=lambda p: p[0].get("X-RECURRENCE-ID") is not None)
    entries: list[Entry] = []
    errors: list[tuple[str, ItemError]] = []
    spans: dict[str, list[Span]] = {}
    failed: set[str] = set()
    for comp, frame, cal_props in ordered:
        uid_p = comp.get("UID")
        uid = _printable(uid_p.text.strip()) if uid_p is not None and uid_p.text.strip() else None
        try:
            try:
                entry = EntryConverter(conv, comp, frame, cal_props).convert()
            except OverflowError as e:  # a time past 9999-12-31 (or before year 1)
                raise EntryError(comp.line, f"a date or time out of range ({e})") from None
        except EntryError as e:
            key = uid or f"(entry at line {comp.line})"
            errors.append((key, ItemError(e.reason, source=source, id=uid, line=e.line)))
            spans.setdefault(key, []).append((comp.start, comp.end))
            failed.add(key)
            continue
        entry.span = (comp.start, comp.end)
        entries.append(entry)
        if entry.rid is None and entry.uid not in conv.masters:
            start = entry.comp.get("DTSTART")
            conv.masters[entry.uid] = MasterInfo(
                None, bool(start is not None and ("VALUE", "DATE") in start.params)
            )
            raw = comp.get("DTSTART")
            if raw is not None:
                try:
                    conv.masters[entry.uid].raw_start = parse_vcal(raw.text)
                except TimeError:
                    pass
    for entry in entries:
        spans.setdefault(entry.uid, []).append(entry.span)
    items, group_errors = _group([e for e in entries if e.uid not in failed], source)
    errors += [(e.id or "", e) for e in group_errors]
    errors.sort(key=lambda pair: pair[1].line or 0)
    for key in spans:
        spans[key].sort()
    return Converted(items, [e for _, e in errors], [k for k, _ in errors], spans, calendars)


def _group(entries: list[Entry], source: str) -> tuple[list[Item], list[ItemError]]:
    groups: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: e.line):
        groups.setdefault(entry.uid, []).append(entry)
    items: list[Item] = []
    errors: list[ItemError] = []
    for uid, group in groups.items():
        seen: dict[str | None, Entry] = {}
        keep: list[Entry] = []
        failed = False
        for entry in group:
            key = entry.rid
            if key in seen:
                first = seen[key]
                if _same(first.comp, entry.comp):
                    log.warning(
                        "%s: UID %s appears twice (lines %d and %d) with equal content; "
                        "keeping one",
                        source,
                        uid,
                        first.line,
                        entry.line,
                    )
                    continue
                what = "RECURRENCE-ID " + key if key else "master entry"
                errors.append(
                    ItemError(
                        f"UID appears twice with different content ({what} at lines "
                        f"{first.line} and {entry.line}); not synced until one is removed",
                        source=source,
                        id=uid,
                        line=entry.line,
                    )
                )
                failed = True
                break
            seen[key] = entry
            keep.append(entry)
        if failed:
            continue
        keep.sort(key=lambda e: (e.rid is not None, e.line))
        items.append(_assemble(keep))
    return items, errors


def _printable(text: str) -> str:
    """An id for messages: control characters shown as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _same(a: Component, b: Component) -> bool:
    def text(c: Component) -> bytes:
        return Component("VCALENDAR", [], [c]).to_bytes()

    try:
        return canonical_form(text(a)) == canonical_form(text(b))
    except LineError:
        return False


def _assemble(entries: list[Entry]) -> Item:
    cal = Component("VCALENDAR", [Prop("VERSION", (), "2.0"), Prop("PRODID", (), PRODID.decode())])
    cal.props.extend(entries[0].cal_props)
    used: dict[str, tzinfo] = {}
    for entry in entries:
        for tz in entry.zones:
            used.setdefault(tz_name(tz) or "", tz)
    all_times = [t for e in entries for t in e.times]
    years = zones.years_of(all_times) or (date.today().year, date.today().year)
    first, last = years
    if any(e.open_ended for e in entries):
        last = max(last, date.today().year + 1)
    last = min(last, first + 60)
    for tzid in sorted(used):
        tz = used[tzid]
        span_first, span_last = first, last
        if isinstance(tz, zones.VcalZone) and tz.spec.periods:
            span_first = min(span_first, tz.spec.periods[0][1].year)
            span_last = max(span_last, tz.spec.periods[-1][2].year)
        cal.subs.append(zones.vtimezone(tz, span_first, span_last))
    cal.subs.extend(e.comp for e in entries)
    item = Item.from_tree(cal)
    item.uid_derived = entries[0].derived
    return item


__all__ = ["Frame", "convert_stream", "event_span", "fmt_duration", "parse_duration", "timezone"]
