"""iCalendar 2.0 items -> vCalendar 1.0.

One item becomes one VCALENDAR: TZ and DAYLIGHT lines for the years the item
spans (when it uses a zone), the master and its overrides (as Symbian's
X-RECURRENCE-ID).  Times go out in UTC (every device reads those right),
floating times stay floating, all-day items as 00:00:00-23:59:59.  What
vCalendar cannot say goes into ``X-CALSYNC-ICAL-*`` properties (see
``shadows``); devices ignore them, and reading the file back restores them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from calsync.items.item import PRODID, Item, ItemError
from calsync.items.lines import Component, Prop, unquote
from calsync.items.vcal import mapping, rules, shadows, zones
from calsync.items.vcal.lexer import VProp
from calsync.items.vcal.shadows import ICAL_PREFIX, VCAL_PREFIX
from calsync.items.vcal.text import (
    ical_escape,
    ical_join,
    ical_list,
    ical_unescape,
    vcal_escape,
    vcal_line,
    vcal_list,
    vcal_unescape,
)
from calsync.items.vcal.times import (
    UTC,
    TimeError,
    TimeValue,
    fmt_date,
    fmt_local,
    fmt_vcal,
    parse_duration,
    parse_ical,
    parse_vcal,
    tz_name,
)
from calsync.items.vcal.to_ical import Frame, event_span

log = logging.getLogger(__name__)

# iCalendar properties vCalendar 1.0 has no counterpart for: carried as X-CALSYNC-ICAL-*.
ICAL_ONLY = frozenset(
    {
        "DTSTAMP", "COMMENT", "CONTACT", "REQUEST-STATUS", "CONFERENCE", "COLOR", "IMAGE",
        "NAME", "REFRESH-INTERVAL", "SOURCE", "STRUCTURED-DATA", "STYLED-DESCRIPTION",
        "ACKNOWLEDGED", "PROXIMITY", "LOCATION-TYPE", "CALENDAR-ADDRESS", "PARTICIPANT-TYPE",
    }
)  # fmt: skip
# vCalendar-only names found in iCalendar input: carried, not reinterpreted.
VCAL_ONLY = frozenset(
    {"AALARM", "DALARM", "PALARM", "MALARM", "DCREATED", "TZ", "DAYLIGHT", "RNUM",
     "X-RECURRENCE-ID"}
)  # fmt: skip
_CAL_SKIP = frozenset({"VERSION", "PRODID", "CALSCALE", "METHOD"})
MAX_DAYLIGHT_YEARS = 60

Same = Callable[[str, str], bool]


@dataclass
class Out:
    """The vCalendar lines of one component being written, and what it keeps."""

    kind: str
    restore: shadows.Restorer
    lines: list[str] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    merged: dict[str, list[str]] = field(default_factory=dict)  # RDATE/EXDATE lists
    companions: bool = True  # False: only what a device keeps (no X-CALSYNC-ICAL-*)

    def put(
        self, name: str, params: list[tuple[str, str]], value: str, binary: bytes | None = None
    ) -> None:
        if not self.companions and name.startswith(ICAL_PREFIX):
            return
        self.lines.extend(vcal_line(name, params, value, binary=binary))
        self.written.add(name)

    def keep(self, prop: Prop, target: str | None = None) -> None:
        """Carry an iCalendar property vCalendar cannot say.  ``target``: the
        vCalendar value written in its place ("" for none), making it a shadow."""
        if target is None:
            self.put(ICAL_PREFIX + prop.name, _params(prop), prop.value)
        elif prop.name in shadows.WHOLE_LINE:
            self.put(
                ICAL_PREFIX + prop.name, [(shadows.FOR, shadows.target(target))], prop.to_line()
            )
        else:
            params = [(shadows.FOR, shadows.target(target)), *_params(prop)]
            self.put(ICAL_PREFIX + prop.name, params, prop.value)

    def mapped(
        self, prop: Prop, vcal_name: str, value: str | None, same: Same | None = None
    ) -> None:
        """Write ``value`` (the mapping of ``prop``), or the device's own value it
        stands for if we kept one and the property did not change since."""
        kept = self.restore.mapped(vcal_name, prop.value, same or _same_upper)
        if kept is not None:
            self.put(kept.name, kept.params, kept.value)
        elif value is not None:
            self.put(vcal_name, [], value)


class Writer:
    """Converts one item."""

    def __init__(self, item: Item, *, companions: bool = True) -> None:
        self.item = item
        self.companions = companions
        self.cal = item.tree
        self.comps = item.components()
        self.vtimezones = {tz.value("TZID") or "": tz for tz in item.timezones()}
        self.zones: dict[str, tzinfo | None] = {}
        self.main_zone: tzinfo | None = None
        self.years: list[TimeValue] = []
        self.open_ended = False
        self.start: TimeValue | None = None
        self.end: TimeValue | None = None

    def error(self, reason: str) -> ItemError:
        return ItemError(reason, id=self.item.uid)

    # -- times -----------------------------------------------------------------------

    def zone(self, tzid: str) -> tzinfo | None:
        if tzid not in self.zones:
            tz = zones.resolve(tzid, self.vtimezones.get(tzid))
            if tz is None:
                log.warning(
                    "item %s: unknown TZID %r; its times are written as floating",
                    self.item.uid,
                    tzid,
                )
            self.zones[tzid] = tz
        return self.zones[tzid]

    def times(self, prop: Prop) -> list[TimeValue]:
        tzid = prop.param("TZID")
        value_type = (prop.param("VALUE") or "").upper()
        # a date has no zone, whatever TZID it carries
        tz = self.zone(tzid) if tzid and value_type != "DATE" else None
        out: list[TimeValue] = []
        for piece in prop.value.split(","):
            if not piece.strip():
                continue
            try:
                value = parse_ical(piece, tz)
            except TimeError as e:
                raise self.error(f"{prop.name}: {e}") from None
            if value_type == "DATE" and isinstance(value, datetime):
                value = value.date()
            out.append(value)
        self.years.extend(out)
        dated = any(isinstance(v, datetime) for v in out)
        if tz is not None and dated and self.main_zone is None and tz_name(tz) != "UTC":
            self.main_zone = tz
        return out

    def time(self, prop: Prop) -> TimeValue:
        values = self.times(prop)
        if len(values) != 1:
            raise self.error(f"{prop.name}: expected one value, got {prop.value!r}")
        return values[0]

    def frame(self) -> Frame:
        """How a device's copy will be read back (see ``to_ical``)."""
        return Frame(zone=self.main_zone) if self.main_zone is not None else Frame()

    # -- the item --------------------------------------------------------------------

    def write(self) -> bytes:
        if any(c.name == "VJOURNAL" for c in self.comps):
            raise self.error("a journal entry (VJOURNAL): vCalendar 1.0 has no journal entries")
        if not self.comps:
            raise self.error("no VEVENT or VTODO")
        masters = [c for c in self.comps if c.get("RECURRENCE-ID") is None]
        ordered = masters + [c for c in self.comps if c.get("RECURRENCE-ID") is not None]
        # the zone of the master's times decides the TZ/DAYLIGHT lines
        for comp in ordered:
            for name in ("DTSTART", "DTEND", "DUE"):
                prop = comp.get(name)
                if prop is not None:
                    self.times(prop)
        bodies = [self.component(c) for c in ordered]
        lines = ["BEGIN:VCALENDAR", "VERSION:1.0", "PRODID:" + PRODID.decode()]
        if self.main_zone is not None:
            lines += zones.vcal_lines(self.main_zone, self._years())
        for prop in self.cal.props:
            if prop.name in _CAL_SKIP or prop.name.startswith("X-WR-"):
                continue
            lines += vcal_line(prop.name, _params(prop), prop.value)
        for body in bodies:
            lines += body
        lines.append("END:VCALENDAR")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def _years(self) -> list[int]:
        """The years to list DAYLIGHT lines for: all the item spans (endless ones
        up to next year), at most the last MAX_DAYLIGHT_YEARS of them."""
        this_year = date.today().year
        first, last = zones.years_of(self.years) or (this_year, this_year)
        if self.open_ended:
            last = max(last, this_year + 1)
        end = min(last, max(first, this_year + 1))
        return list(range(max(first, end - MAX_DAYLIGHT_YEARS + 1), end + 1))

    # -- one component -----------------------------------------------------------------

    def component(self, comp: Component) -> list[str]:
        out = Out(comp.name, shadows.Restorer.from_ical(comp), companions=self.companions)
        self.dates(comp, out)
        if comp.get("DTSTAMP") is None:  # (RFC 5545 wants one; reading back would add it)
            out.put(ICAL_PREFIX + shadows.NO_DTSTAMP, [], "")
        seen: set[str] = set()
        for prop in comp.props:
            name = prop.name
            if name in ("DTSTART", "DTEND", "DUE", "DURATION"):
                if name in seen:
                    out.keep(prop)  # a second one: invalid, but not ours to drop
                seen.add(name)
                continue
            if name.startswith(VCAL_PREFIX):
                continue
            handler = getattr(self, "p_" + name.replace("-", "_"), None)
            if handler is not None and not name.startswith("X-"):
                handler(prop, out)
            elif name in ICAL_ONLY or name in VCAL_ONLY:
                if not out.restore.mapped(name, prop.value, _same_upper):
                    out.keep(prop)  # (a DTSTAMP we made up when reading is not kept)
            else:
                self.opaque(prop, out)
        for name, values in out.merged.items():
            out.put(name, [], ";".join(values))
        for kept in [*out.restore.absent(out.written), *out.restore.carried()]:
            out.put(kept.name, kept.params, kept.value)
        for sub in comp.subs:
            if sub.name == "VALARM":
                self.alarm(sub, out)
            else:  # (VLOCATION, PARTICIPANT...): no vCalendar form, carried whole
                out.put(ICAL_PREFIX + shadows.COMPONENT, [], "\n".join(sub.to_lines()))
        return [f"BEGIN:{comp.name}", *out.lines, f"END:{comp.name}"]

    def dates(self, comp: Component, out: Out) -> None:
        """DTSTART and DTEND (DTEND from DURATION too) or DUE."""
        kind = comp.name
        start_p = comp.get("DTSTART")
        end_name = "DTEND" if kind == "VEVENT" else "DUE"
        end_p = comp.get(end_name)
        start = self.time(start_p) if start_p is not None else None
        end = self.time(end_p) if end_p is not None else None
        dur_p = comp.get("DURATION")
        if end is None and dur_p is not None and start is not None:
            try:
                delta = parse_duration(dur_p.value)
            except TimeError as e:
                raise self.error(f"DURATION: {e}") from None
            if isinstance(start, datetime):
                end = start + delta
            else:
                end = start + timedelta(days=delta.days)
        self.start, self.end = start, end
        all_day = kind == "VEVENT" and start is not None and not isinstance(start, datetime)
        # a to-do that recurs from its due date got a DTSTART when it was read
        implied = start_p is not None and out.restore.mapped("DTSTART", start_p.value, _same_upper)
        texts: dict[str, str] = {}
        if start is not None and not implied:
            if all_day:
                assert isinstance(start, date)
                texts["DTSTART"] = fmt_local(datetime.combine(start, time()))
                last_day = start
                if end is not None and not isinstance(end, datetime) and end > start:
                    last_day = end - timedelta(days=1)
                texts["DTEND"] = fmt_local(datetime.combine(last_day, time(23, 59, 59)))
            else:
                texts["DTSTART"] = fmt_vcal(start)
        if end is not None and not all_day:
            texts[end_name] = fmt_vcal(end)
        for name, text in texts.items():
            out.put(name, [], text)
        if dur_p is not None and end_p is None and end_name in texts:
            out.keep(dur_p, texts[end_name])  # read back as the DURATION it was
        if not implied:
            self._keep_exact(
                out, (start_p, start), (end_p, end if end_p is not None else None), texts
            )

    def _keep_exact(
        self,
        out: Out,
        start: tuple[Prop | None, TimeValue | None],
        end: tuple[Prop | None, TimeValue | None],
        texts: dict[str, str],
    ) -> None:
        """Keep DTSTART/DTEND/DUE exactly when a device's copy would read back
        differently: timed times that look like an all-day convention (00:00 to
        23:59, midnight to midnight), floating or UTC times in an item with a
        zone, an all-day event that ends where it starts."""
        end_name = "DTEND" if out.kind == "VEVENT" else "DUE"
        try:
            raw_start = parse_vcal(texts["DTSTART"]) if "DTSTART" in texts else None
            raw_end = parse_vcal(texts[end_name]) if end_name in texts else None
        except TimeError:
            return
        frame = self.frame()
        if out.kind == "VEVENT":
            again_start, again_end, _ = event_span(raw_start, raw_end, frame)
        else:
            again_start = frame.convert(raw_start) if raw_start is not None else None
            again_end = frame.convert(raw_end) if raw_end is not None else None
        for (prop, value), again, name in (
            (start, again_start, "DTSTART"),
            (end, again_end, end_name),
        ):
            if prop is None or value is None or name not in texts or _same_moment(value, again):
                continue
            tzid = prop.param("TZID")
            if tzid and zones.olson(tzid) is None and _kind(value) != "date":
                log.warning(
                    "item %s: %s in a zone only its VTIMEZONE defines will read back as %s",
                    self.item.uid,
                    prop.name,
                    again,
                )
                continue
            out.keep(prop, texts[name])

    # -- properties ----------------------------------------------------------------------

    def text(self, prop: Prop, out: Out) -> None:
        params = [(k, v) for k, v in _params(prop) if k != "ALTREP"]
        value = vcal_escape(ical_unescape(prop.value))
        out.put(prop.name, params, value)
        if ical_escape(vcal_unescape(value)) != prop.value or len(params) != len(prop.params):
            out.keep(prop, value)  # escaped another way (a bare comma...): read back as it was

    p_SUMMARY = p_DESCRIPTION = p_LOCATION = text

    def p_UID(self, prop: Prop, out: Out) -> None:
        out.put("UID", [], prop.value)  # an identity: as it is, never re-escaped

    def p_CATEGORIES(self, prop: Prop, out: Out) -> None:
        kept = out.restore.mapped(prop.name, prop.value, lambda a, b: ical_list(a) == ical_list(b))
        if kept is not None:
            out.put(kept.name, kept.params, kept.value)
            return
        value = mapping.list_to_vcal(prop.value)
        out.put(prop.name, _params(prop), value)
        if ical_join(vcal_list(value)) != prop.value:
            out.keep(prop, value)  # written another way ("a, b"): read back as it was

    p_RESOURCES = p_CATEGORIES

    def p_CLASS(self, prop: Prop, out: Out) -> None:
        out.mapped(prop, "CLASS", prop.value.strip().upper())

    def p_STATUS(self, prop: Prop, out: Out) -> None:
        out.mapped(prop, "STATUS", mapping.status_to_vcal(out.kind, prop.value.strip()))

    def p_PRIORITY(self, prop: Prop, out: Out) -> None:
        out.mapped(prop, "PRIORITY", prop.value.strip())

    def p_TRANSP(self, prop: Prop, out: Out) -> None:
        out.mapped(prop, "TRANSP", mapping.transp_to_vcal(prop.value))

    def plain(self, prop: Prop, out: Out) -> None:
        out.put(prop.name, [], prop.value.strip())

    p_SEQUENCE = p_URL = p_PERCENT_COMPLETE = plain

    def p_GEO(self, prop: Prop, out: Out) -> None:
        parts = prop.value.strip().split(";")
        try:
            if len(parts) != 2:
                raise ValueError
            float(parts[0])
            float(parts[1])
        except ValueError:
            out.keep(prop)
            return
        out.put("GEO", [], ",".join(parts))

    p_RELATED_TO = text

    def p_CREATED(self, prop: Prop, out: Out) -> None:
        name = "DCREATED" if prop.name == "CREATED" else prop.name
        out.put(name, [], fmt_vcal(self.time(prop)))

    p_LAST_MODIFIED = p_COMPLETED = p_CREATED

    def p_RECURRENCE_ID(self, prop: Prop, out: Out) -> None:
        value = self.time(prop)
        params = [(k, v) for k, v in _params(prop) if k == "RANGE"]
        text = fmt_date(value) if not isinstance(value, datetime) else fmt_vcal(value)
        out.put("X-RECURRENCE-ID", params, text)

    def p_RDATE(self, prop: Prop, out: Out) -> None:
        if (prop.param("VALUE") or "").upper() == "PERIOD":
            out.keep(prop)
            return
        for value in self.times(prop):
            text = fmt_date(value) if not isinstance(value, datetime) else fmt_vcal(value)
            out.merged.setdefault(prop.name, []).append(text)

    p_EXDATE = p_RDATE

    def p_RRULE(self, prop: Prop, out: Out) -> None:
        start = self.start
        if start is None:
            out.keep(prop, "")
            return
        upper = prop.value.upper()
        if "COUNT=" not in upper and "UNTIL=" not in upper:
            self.open_ended = True
        else:
            self._rule_years(prop.value, start)
        kept = out.restore.mapped(prop.name, prop.value, lambda a, b: rules.same_rule(a, b, start))
        if kept is not None:
            out.put(kept.name, kept.params, kept.value)
            return
        try:
            rule = rules.from_ical(prop.value, start, _until_out)
        except rules.RuleError as e:
            log.info(
                "item %s: %s %s has no vCalendar form (%s); kept aside",
                self.item.uid,
                prop.name,
                prop.value,
                e,
            )
            out.keep(prop, "")
            return
        text = rule.format()
        out.put(prop.name, [], text)
        if prop.params or not self._reads_back(text, prop.value, start):
            out.keep(prop, text)

    p_EXRULE = p_RRULE

    def _rule_years(self, value: str, start: TimeValue) -> None:
        until = rules.ical_parts(value).get("UNTIL")
        if until:
            try:
                self.years.append(parse_ical(until))
            except TimeError:
                pass
            return
        try:
            found = rules.occurrences(value, start, limit=2000)
        except (ValueError, TypeError):
            return
        if found:
            self.years.append(found[-1])

    def _reads_back(self, text: str, value: str, start: TimeValue) -> bool:
        """Does a device's copy of ``text`` read back as ``value``?"""
        raw_start: TimeValue
        if isinstance(start, datetime):
            raw_start = start.astimezone(UTC) if start.tzinfo is not None else start
        else:
            raw_start = datetime.combine(start, time())
        try:
            again = rules.to_ical(rules.parse(text), start, raw_start, self.frame().convert)
        except (rules.RuleError, ValueError, OverflowError):  # an end near 9999-12-31
            return False
        return again == value  # exactly: a rewritten rule would be a change to sync

    def p_ATTENDEE(self, prop: Prop, out: Out) -> None:
        organizer = prop.name == "ORGANIZER"
        vcal_name, params, value = mapping.attendee_to_vcal(prop, organizer)
        out.put(vcal_name, params, value)
        device = VProp(vcal_name, params, b"", 0, text=value)
        if _people_key(mapping.attendee_to_ical(device, organizer)) != _people_key(prop):
            out.put(ICAL_PREFIX + vcal_name, [(shadows.FOR, value)], prop.to_line())

    p_ORGANIZER = p_ATTENDEE

    def p_ATTACH(self, prop: Prop, out: Out) -> None:
        value_type = (prop.param("VALUE") or "").upper()
        if value_type == "BINARY" or (prop.param("ENCODING") or "").upper() == "BASE64":
            try:
                data = base64.b64decode(prop.value, validate=False)
            except (binascii.Error, ValueError):
                raise self.error("ATTACH: not valid base64") from None
            params = [(k, v) for k, v in _params(prop) if k not in ("VALUE", "ENCODING")]
            if (prop.param("FMTTYPE") or "").lower() == "text/plain":
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if text is not None:  # a note, as devices write them
                    out.put("ATTACH", [(k, v) for k, v in params if k != "FMTTYPE"], text)
                    return
            out.put("ATTACH", [*params, ("VALUE", "BINARY")], "", binary=data)
            return
        params, value = mapping.attach_out(prop)
        out.put("ATTACH", params, value)

    def opaque(self, prop: Prop, out: Out) -> None:
        """X- and unknown properties: as they are."""
        params = _params(prop)
        if any(k == "ENCODING" and v.upper() == "BASE64" for k, v in params):
            try:
                data = base64.b64decode(prop.value, validate=False)
            except (binascii.Error, ValueError):
                data = None
            if data is not None:
                out.put(prop.name, params, "", binary=data)
                return
        out.put(prop.name, params, prop.value)

    # -- alarms ------------------------------------------------------------------------------

    def alarm(self, alarm: Component, out: Out) -> None:
        """An AALARM/DALARM/PALARM/MALARM line; the VALARM itself travels alongside
        when that line would not read back as it (X-CALSYNC-ICAL-VALARM, restored
        while the device's line is unchanged), or alone when there is no such line."""
        whole = "\n".join(alarm.to_lines())
        try:
            name, params, value = mapping.alarm_to_vcal(alarm, self.start, self.end, fmt_vcal_time)
        except mapping.AlarmError as e:
            log.info("item %s: %s has no vCalendar form; kept aside", self.item.uid, e)
            out.put(ICAL_PREFIX + shadows.VALARM, [], whole)
            return
        out.put(name, params, value)
        if out.kind == "VTODO" and self.end is not None:
            anchored: bool | None = True
        else:
            anchored = False if self.start is not None else None
        if not mapping.alarm_reads_back(alarm, name, params, value, anchored):
            out.put(
                ICAL_PREFIX + shadows.VALARM,
                [(shadows.FOR, shadows.target(f"{name}:{value}"))],
                whole,
            )


def fmt_vcal_time(value: TimeValue) -> str:
    if not isinstance(value, datetime):
        return fmt_local(datetime.combine(value, time()))
    return fmt_vcal(value)


def _until_out(value: TimeValue) -> TimeValue:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _kind(value: TimeValue) -> str:
    if not isinstance(value, datetime):
        return "date"
    if value.tzinfo is None:
        return "floating"
    return "utc" if tz_name(value.tzinfo) == "UTC" else "zoned"


def _same_moment(a: TimeValue | None, b: TimeValue | None) -> bool:
    """Same instant, written the same way (UTC, in a zone, floating or a date):
    a rule recurs differently from a UTC start than from a zone's local start."""
    if a is None or b is None:
        return a is b
    return _kind(a) == _kind(b) and a == b


def _people_key(prop: Prop) -> str:
    value = prop.value
    if value[:7].lower() == "mailto:":
        value = "mailto:" + value[7:]
    params = tuple((k, v) for k, v in prop.params if not k.startswith("X-CALSYNC"))
    return Prop(prop.name, params, value).canonical()


def _same_upper(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


def _params(prop: Prop) -> list[tuple[str, str]]:
    return [(k, unquote(v) if v is not None else "") for k, v in prop.params]


def item_to_vcal(item: Item, *, companions: bool = True) -> bytes:
    """One item as a complete vCalendar 1.0 object (see module docstring).

    ``companions=False``: without the X-CALSYNC-ICAL-* lines, as a device that
    drops unknown properties keeps it (see ``device_view``).  A time out of the
    range of dates (an end past 9999-12-31) is an ``ItemError`` of this item."""
    try:
        return Writer(item, companions=companions).write()
    except OverflowError as e:
        raise ItemError(f"a date or time out of range ({e})", id=item.uid) from None
