"""ActiveSync appointments <-> iCalendar VEVENTs (an ``Item`` with its overrides).

Directions: ``item_to_appointment`` (what a device is sent; with the warnings
about what it could not be given) and ``appointment_to_item`` (what a device
sent, as a new item).  An edit of an item we sent is not read alone: see
``eas.merge``.  16.x single-occurrence edits and deletes: ``apply_instance_edit``
and ``apply_instance_delete``.

Rules (the field table is ``FIDELITY.md``):
- times: on the wire UTC; the event's zone travels as the Timezone blob
  (``eas.timezone``: the zone's current rules out, the matching IANA zone or a
  zone of our own in).  A floating time is in ``Options.floating_zone``.
- all-day events are DATE values.  Out: 16.x gets date-shaped UTC midnights
  and no blob (MS-ASCAL 2.2.2.1); older versions get the local midnights of
  ``Options.device_zone`` in UTC with that zone's blob.  In: the date of the
  boundary in the blob's zone (``props.all_day_date``), so no day moves east
  or west of UTC; an end not after the start is the next day.
- recurrence: ``eas.recurrence``.  A series EAS cannot express (HOURLY, two
  BYMONTHDAY, EXRULE, an RDATE without RRULE, ...) is sent as its first
  occurrence only, without exceptions, and a warning says so; the rule stays
  in calsync (a device edit of that occurrence is merged onto the full item).
  An RRULE with RDATEs is sent without the RDATEs (warning).
- exceptions: an EXDATE is a deleted Exception; an override is an Exception
  carrying only the fields that differ from the master (a removed text is an
  empty one).  Keyed by ExceptionStartTime up to 14.1, by InstanceId in 16.x.
  In, an Exception becomes a full override: the master's descriptive
  properties with the Exception's fields over them.  At most 256 (MS-ASCAL).
- people: ORGANIZER <-> OrganizerName/Email; ATTENDEE (mailto: only) <->
  Attendee Email/Name, PARTSTAT <-> AttendeeStatus, ROLE/CUTYPE <->
  AttendeeType; RSVP <-> ResponseRequested; the user's own PARTSTAT (or being
  the organizer) <-> ResponseType; MeetingStatus from who organizes and
  STATUS:CANCELLED.
- reminder: the first DISPLAY or AUDIO alarm that fires at or before the start
  <-> Reminder minutes; in, one DISPLAY alarm.
- busy status: TRANSP, with X-MICROSOFT-CDO-BUSYSTATUS for tentative,
  out-of-office and working elsewhere (what Outlook writes); sensitivity <->
  CLASS (``props``); UID <-> UID, or ClientUid (16.x client adds), or one we
  make: ``new_uid``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo

from calsync.eas import props
from calsync.eas.model import (
    Appointment,
    Attendee,
    AttendeeStatus,
    AttendeeType,
    BodyType,
    BusyStatus,
    EventFields,
    Location,
    MeetingStatus,
    RecurrenceException,
    ResponseType,
)
from calsync.eas.props import MappingError, Options, Outgoing
from calsync.eas.recurrence import Inexpressible, RecurrenceError, from_rrule, to_rrule
from calsync.eas.timezone import blob_for_zone, zone_for_blob
from calsync.items.item import Item
from calsync.items.lines import Component, Prop, quote
from calsync.items.vcal.times import (
    TimeError,
    TimeValue,
    fmt_duration,
    fmt_utc,
    parse_duration,
    parse_ical,
    tz_name,
)

MAX_EXCEPTIONS = 256
_SERIES = frozenset({"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "EXRULE"})
_BUSY_CDO = {
    BusyStatus.FREE: "FREE",
    BusyStatus.TENTATIVE: "TENTATIVE",
    BusyStatus.BUSY: "BUSY",
    BusyStatus.OUT_OF_OFFICE: "OOF",
    BusyStatus.WORKING_ELSEWHERE: "WORKINGELSEWHERE",
}
_CDO = "X-MICROSOFT-CDO-BUSYSTATUS"
_DISALLOW_COUNTER = "X-MICROSOFT-DISALLOW-COUNTER"
_LOCATION_X = "X-EAS-LOCATION-"
_LOCATION_EXTRA = (
    "annotation",
    "street",
    "city",
    "state",
    "country",
    "postal_code",
    "accuracy",
    "altitude",
    "altitude_accuracy",
    "location_uri",
)
_PARTSTAT = {
    AttendeeStatus.TENTATIVE: "TENTATIVE",
    AttendeeStatus.ACCEPTED: "ACCEPTED",
    AttendeeStatus.DECLINED: "DECLINED",
    AttendeeStatus.NOT_RESPONDED: "NEEDS-ACTION",
}
_STATUS = {v: k for k, v in _PARTSTAT.items()}
_RESPONSE = {
    "TENTATIVE": ResponseType.TENTATIVE,
    "ACCEPTED": ResponseType.ACCEPTED,
    "DECLINED": ResponseType.DECLINED,
    "NEEDS-ACTION": ResponseType.NOT_RESPONDED,
}
_UID_NAMESPACE = uuid.UUID("8d0c6c2e-5d0b-4f5e-9a57-6b8e0f3c2a11")
_SHARED = tuple(f.name for f in fields(EventFields))


def new_uid(seed: str | None = None) -> str:
    """A UID for an item a device sent without one: the same for the same
    ``seed`` (e.g. account, device and ClientId: a retransmitted Add gets the
    same UID), random without one."""
    if seed is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_UID_NAMESPACE, seed))


@dataclass
class _Ctx:
    """One conversion: options, the calendar (for TZIDs), the event's zone."""

    opts: Options
    cal: Component
    zone: tzinfo
    warnings: list[str]

    def time(self, prop: Prop) -> TimeValue:
        return props.read_time(prop, self.cal, self.opts, self.warnings)

    def all_day_instant(self, day: date) -> datetime:
        if self.opts.v16:
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return props.instant(day, self.opts.device_zone)


# ==============================================================================================
# iCalendar -> ActiveSync
# ==============================================================================================


def item_to_appointment(item: Item, opts: Options) -> Outgoing[Appointment]:
    """The appointment a device is sent for ``item``; warnings name what the
    device cannot be given (it stays in calsync)."""
    master = props.master_of(item, "VEVENT")
    warnings: list[str] = []
    ctx = _Ctx(opts, item.tree, UTC, warnings)
    start, end = _span(master, ctx)
    if isinstance(start, datetime):
        ctx.zone = start.tzinfo or UTC
    shared = _read_event(master, ctx)
    appt = Appointment(**{n: getattr(shared, n) for n in _SHARED})
    appt.uid = item.uid
    if master.get("X-ALT-DESC") is not None:
        appt.native_body_type = BodyType.HTML
    elif master.get("DESCRIPTION") is not None:
        appt.native_body_type = BodyType.PLAIN
    if isinstance(start, datetime):
        appt.timezone = blob_for_zone(ctx.zone, opts.reference_year)
    elif not opts.v16:
        appt.timezone = blob_for_zone(opts.device_zone, opts.reference_year)
    organizer = master.get("ORGANIZER")
    if organizer is not None:
        appt.organizer_email = props.mailto(organizer.value)
        appt.organizer_name = organizer.param("CN") or None
    if appt.attendees:
        appt.response_requested = any(
            (a.param("RSVP") or "").upper() == "TRUE" for a in master.all("ATTENDEE")
        )
    disallow = master.value(_DISALLOW_COUNTER)
    if disallow is not None:
        appt.disallow_new_time_proposal = disallow.strip().upper() == "TRUE"
    if item.components() and master.get("RECURRENCE-ID") is not None:
        warnings.append("only overrides and no master: sent as a single appointment")
        return Outgoing(appt, warnings)
    _series_out(item, master, appt, start, end, ctx)
    return Outgoing(appt, warnings)


def _span(comp: Component, ctx: _Ctx) -> tuple[TimeValue, TimeValue]:
    """DTSTART and the end (DTEND, DTSTART + DURATION, or RFC 5545's default)."""
    dtstart = comp.get("DTSTART")
    if dtstart is None:
        raise MappingError("no DTSTART")
    start = ctx.time(dtstart)
    dtend = comp.get("DTEND")
    duration = comp.get("DURATION")
    end: TimeValue
    if dtend is not None:
        end = ctx.time(dtend)
    elif duration is not None:
        try:
            end = start + parse_duration(duration.value)
        except TimeError as e:
            raise MappingError(f"DURATION: {e}") from None
    else:
        end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    if isinstance(start, datetime) != isinstance(end, datetime):
        end = _like(end, start, ctx.zone)
    if end < start:
        end = start
    return start, end


def _like(value: TimeValue, model: TimeValue, zone: tzinfo) -> TimeValue:
    """``value`` as the same type as ``model`` (DATE or DATE-TIME)."""
    if isinstance(model, datetime):
        return props.instant(value, zone).astimezone(model.tzinfo)
    if isinstance(value, datetime):
        return value.astimezone(zone).date()
    return value


def _read_event(comp: Component, ctx: _Ctx) -> EventFields:
    """The fields an appointment and an exception share, from a component."""
    start, end = _span(comp, ctx)
    f = EventFields()
    if isinstance(start, datetime):
        f.all_day_event = False
        f.start_time = start.astimezone(UTC)
        f.end_time = props.instant(end, ctx.zone)
    else:
        f.all_day_event = True
        f.start_time = ctx.all_day_instant(start)
        f.end_time = ctx.all_day_instant(end if isinstance(end, date) else start)
        if f.end_time <= f.start_time:
            f.end_time = ctx.all_day_instant(start + timedelta(days=1))
    stamp = comp.get("DTSTAMP")
    if stamp is not None:
        value = _quiet_time(stamp, ctx)
        if isinstance(value, datetime):
            f.dtstamp = value.astimezone(UTC)
    f.subject = props.text(comp, "SUMMARY")
    f.location = _location(comp, ctx.opts)
    f.body = props.body(comp, ctx.opts)
    f.sensitivity = props.sensitivity(comp)
    f.busy_status = _busy(comp)
    f.reminder = _reminder(comp, start, end, ctx)
    f.categories = props.categories(comp)
    f.attendees = _attendees(comp, ctx)
    f.meeting_status = _meeting_status(comp, ctx.opts)
    f.response_type = _response_type(comp, ctx.opts)
    return f


def _quiet_time(prop: Prop, ctx: _Ctx) -> TimeValue | None:
    try:
        return ctx.time(prop)
    except MappingError:
        return None


def _location(comp: Component, opts: Options) -> str | Location | None:
    name = props.text(comp, "LOCATION")
    if not opts.v16:
        return name
    loc = Location(display_name=name)
    geo = comp.value("GEO")
    if geo:
        lat, _, lon = geo.partition(";")
        try:
            loc.latitude, loc.longitude = float(lat), float(lon)
        except ValueError:
            pass
    for attr in _LOCATION_EXTRA:
        value = props.text(comp, _LOCATION_X + attr.upper().replace("_", "-"))
        if value is not None:
            setattr(loc, attr, float(value) if attr.startswith(("acc", "alt")) else value)
    return loc if loc != Location() else None


def _busy(comp: Component) -> BusyStatus:
    transp = (comp.value("TRANSP") or "OPAQUE").strip().upper()
    cdo = (comp.value(_CDO) or "").strip().upper()
    if transp == "TRANSPARENT":
        return BusyStatus.FREE
    for status, word in _BUSY_CDO.items():
        if cdo == word and status != BusyStatus.FREE:
            return status
    return BusyStatus.BUSY


def _reminder(comp: Component, start: TimeValue, end: TimeValue, ctx: _Ctx) -> int | None:
    """Minutes before the start of the first alarm a phone can show."""
    begin = props.instant(start, ctx.opts.device_zone)
    finish = props.instant(end, ctx.opts.device_zone)
    for trigger in props.phone_alarms(comp):
        fires = props.fires_at(trigger, begin, finish, ctx.cal, ctx.opts, ctx.warnings)
        if fires is not None and fires <= begin:
            return int((begin - fires).total_seconds() // 60)
    return None


def _attendees(comp: Component, ctx: _Ctx) -> list[Attendee] | None:
    found = comp.all("ATTENDEE")
    if not found:
        return None
    out = []
    for prop in found:
        email = props.mailto(prop.value)
        if email is None:
            ctx.warnings.append(f"attendee {prop.value[:60]!r} has no e-mail address: not sent")
            continue
        out.append(
            Attendee(
                email=email,
                name=prop.param("CN") or None,
                attendee_status=_attendee_status(prop),
                attendee_type=_attendee_type(prop),
            )
        )
    return out


def _attendee_status(prop: Prop) -> AttendeeStatus:
    partstat = (prop.param("PARTSTAT") or "").upper()
    return _STATUS.get(partstat, AttendeeStatus.UNKNOWN)


def _attendee_type(prop: Prop) -> AttendeeType:
    cutype = (prop.param("CUTYPE") or "").upper()
    if cutype in ("RESOURCE", "ROOM"):
        return AttendeeType.RESOURCE
    role = (prop.param("ROLE") or "").upper()
    if role in ("OPT-PARTICIPANT", "NON-PARTICIPANT"):
        return AttendeeType.OPTIONAL
    return AttendeeType.REQUIRED


def _is_user(address: str | None, opts: Options) -> bool:
    return bool(address and opts.user_email and address.lower() == opts.user_email.lower())


def _organized_by_user(comp: Component, opts: Options) -> bool:
    organizer = comp.get("ORGANIZER")
    if organizer is None or opts.user_email is None:
        return True
    return _is_user(props.mailto(organizer.value), opts)


def _meeting_status(comp: Component, opts: Options) -> MeetingStatus:
    if comp.get("ORGANIZER") is None and comp.get("ATTENDEE") is None:
        return MeetingStatus.APPOINTMENT
    value = 1 if _organized_by_user(comp, opts) else 3
    if (comp.value("STATUS") or "").strip().upper() == "CANCELLED":
        value += 4
    return MeetingStatus(value)


def _response_type(comp: Component, opts: Options) -> ResponseType | None:
    if comp.get("ORGANIZER") is None and comp.get("ATTENDEE") is None:
        return None
    if _organized_by_user(comp, opts):
        return ResponseType.ORGANIZER
    for prop in comp.all("ATTENDEE"):
        if _is_user(props.mailto(prop.value), opts):
            return _RESPONSE.get((prop.param("PARTSTAT") or "").upper(), ResponseType.NONE)
    return None


# -- the series ----------------------------------------------------------------------------------


def _series_out(
    item: Item,
    master: Component,
    appt: Appointment,
    start: TimeValue,
    end: TimeValue,
    ctx: _Ctx,
) -> None:
    rules = master.all("RRULE")
    problem = None
    if len(rules) > 1:
        problem = "several RRULEs"
    elif master.get("EXRULE") is not None:
        problem = "an EXRULE"
    elif not rules and master.get("RDATE") is not None:
        problem = "RDATEs without an RRULE"
    if not rules and problem is None:
        return
    if problem is None:
        local = (
            start.astimezone(ctx.zone).replace(tzinfo=None)
            if isinstance(start, datetime)
            else start
        )
        try:
            appt.recurrence = from_rrule(
                rules[0].value,
                local,
                lambda text: _until_out(text, start, ctx),
                rules[0].params,
            )
        except Inexpressible as e:
            problem = f"RRULE {rules[0].value[:80]!r}: {e}"
    if problem is not None:
        ctx.warnings.append(f"{problem}: the device gets the first occurrence only")
        return
    if master.get("RDATE") is not None:
        ctx.warnings.append("RDATEs cannot be sent: the device does not show those dates")
    exceptions = _exceptions_out(item, master, start, end, ctx)
    if len(exceptions) > MAX_EXCEPTIONS:
        ctx.warnings.append(
            f"{len(exceptions)} exceptions: the device gets the first {MAX_EXCEPTIONS}"
        )
        exceptions = exceptions[:MAX_EXCEPTIONS]
    if exceptions:
        appt.exceptions = exceptions


def _until_out(text: str, start: TimeValue, ctx: _Ctx) -> datetime:
    try:
        value = parse_ical(text)
    except TimeError as e:
        raise Inexpressible(f"UNTIL: {e}") from None
    if isinstance(value, datetime) and value.tzinfo is None:  # floating: the event's zone
        value = value.replace(tzinfo=ctx.zone)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(start, datetime):  # a DATE UNTIL on a timed series: that whole day
        end_of_day = datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=ctx.zone)
        return end_of_day.astimezone(UTC)
    return ctx.all_day_instant(value)


def _exceptions_out(
    item: Item, master: Component, start: TimeValue, end: TimeValue, ctx: _Ctx
) -> list[RecurrenceException]:
    out: dict[datetime, RecurrenceException] = {}
    for prop in master.all("EXDATE"):
        for value in props.time_values(prop, ctx.cal, ctx.opts, ctx.warnings):
            moment = _original(value, start, ctx)
            out[moment] = _keyed(RecurrenceException(deleted=True), moment, ctx.opts)
    base = _read_event(master, ctx)
    length = _minus(end, start)
    for comp in item.components():
        rid = comp.get("RECURRENCE-ID")
        if rid is None or comp.name != "VEVENT":
            continue
        if (rid.param("RANGE") or "").upper() == "THISANDFUTURE":
            ctx.warnings.append("an override for this and future occurrences: sent for one")
        try:
            moment = _original(ctx.time(rid), start, ctx)
            override = _read_event(comp, ctx)
        except MappingError as e:
            ctx.warnings.append(f"override {rid.value}: {e}; not sent")
            continue
        natural = _natural(moment, length, start, ctx)
        exc = _keyed(RecurrenceException(), moment, ctx.opts)
        for name in _SHARED:
            mine, theirs = getattr(override, name), getattr(base, name)
            if name in ("start_time", "end_time", "all_day_event", "dtstamp"):
                continue
            if mine != theirs:
                setattr(exc, name, _removed(mine, theirs))
        if (override.start_time, override.end_time, override.all_day_event) != natural:
            exc.start_time, exc.end_time = override.start_time, override.end_time
            exc.all_day_event = override.all_day_event
        if override.dtstamp != base.dtstamp:
            exc.dtstamp = override.dtstamp
        out[moment] = exc
    return [out[k] for k in sorted(out)]


def _keyed(exc: RecurrenceException, moment: datetime, opts: Options) -> RecurrenceException:
    if opts.v16:
        exc.instance_id = moment
    else:
        exc.exception_start_time = moment
    return exc


def _original(value: TimeValue, start: TimeValue, ctx: _Ctx) -> datetime:
    """The wire instant of an occurrence named by a RECURRENCE-ID or EXDATE."""
    if isinstance(start, datetime):
        return props.instant(value, ctx.zone)
    day = value.astimezone(ctx.zone).date() if isinstance(value, datetime) else value
    return ctx.all_day_instant(day)


def _minus(end: TimeValue, start: TimeValue) -> timedelta:
    return end - start  # type: ignore[operator]  # both dates or both times (_span)


def _natural(
    moment: datetime, length: timedelta, start: TimeValue, ctx: _Ctx
) -> tuple[datetime, datetime, bool]:
    """(StartTime, EndTime, AllDayEvent) of an occurrence no one changed."""
    if isinstance(start, datetime):
        return moment, moment + length, False
    day = props.all_day_date(moment, UTC if ctx.opts.v16 else ctx.opts.device_zone)
    return moment, ctx.all_day_instant(day + length), True


def _removed(mine: object, theirs: object) -> object:
    """An exception's value for a field the override lacks but the master has."""
    if mine is not None:
        return mine
    if isinstance(theirs, str):
        return ""
    if isinstance(theirs, list):
        return []
    if isinstance(theirs, Location):
        return Location(display_name="")
    return None


# ==============================================================================================
# ActiveSync -> iCalendar
# ==============================================================================================


def appointment_to_item(
    appt: Appointment,
    opts: Options,
    *,
    uid: str | None = None,
    uid_seed: str | None = None,
) -> Item:
    """The item a device's appointment stands for.  The UID: ``uid`` if given
    (the item it edits), else the appointment's UID or ClientUid, else
    ``new_uid(uid_seed)``."""
    if appt.start_time is None:
        raise MappingError("the appointment has no StartTime")
    props.check_wire(appt)
    uid = uid or appt.uid or appt.client_uid or new_uid(uid_seed)
    zone = _zone_in(appt, opts)
    cal = props.new_calendar()
    ctx = _Ctx(opts, cal, zone, [])
    master = Component("VEVENT", [Prop("UID", (), uid)])
    stamp = appt.dtstamp or datetime.now(UTC)
    master.props.append(Prop("DTSTAMP", (), fmt_utc(stamp)))
    all_day = bool(appt.all_day_event)
    start = _boundary(appt.start_time, all_day, ctx)
    end = _boundary(appt.end_time or appt.start_time, all_day, ctx)
    if end < start or (all_day and end == start):
        end = start + timedelta(days=1) if all_day else start
    master.props.append(props.time_prop("DTSTART", start))
    master.props.append(props.time_prop("DTEND", end))
    if appt.organizer_email:
        params: tuple[tuple[str, str | None], ...] = ()
        if appt.organizer_name:
            params = (("CN", quote(props.clean_param(appt.organizer_name))),)
        master.props.append(Prop("ORGANIZER", params, "mailto:" + appt.organizer_email))
    elif appt.meeting_status in (1, 9) and appt.attendees and opts.user_email:
        master.props.append(Prop("ORGANIZER", (), "mailto:" + opts.user_email))
    fields_in = EventFields(**{n: getattr(appt, n) for n in _SHARED})
    fields_in.start_time = fields_in.end_time = fields_in.all_day_event = None
    fields_in.dtstamp = None
    _write_event(master, fields_in, ctx)
    if appt.response_requested:
        _set_rsvp(master, appt)
    if appt.disallow_new_time_proposal is not None:
        master.set(_DISALLOW_COUNTER, "TRUE" if appt.disallow_new_time_proposal else "FALSE")
    overrides = _series_in(appt, master, start, end, ctx)
    cal.subs.extend(_zone_components(zone, [master, *overrides], start, appt, opts))
    cal.subs.append(master)
    cal.subs.extend(overrides)
    return props.finish(cal)


def _zone_in(appt: Appointment | RecurrenceException, opts: Options) -> tzinfo:
    blob = getattr(appt, "timezone", None)
    if blob is not None:
        return zone_for_blob(blob, opts.reference_year).tzinfo
    if appt.all_day_event and opts.v16:
        return UTC
    return opts.device_zone


def _zone_components(
    zone: tzinfo, comps: list[Component], start: TimeValue, appt: Appointment, opts: Options
) -> list[Component]:
    """The VTIMEZONE of the event's zone, if a property uses it, covering the
    years of the series."""
    tzid = tz_name(zone)
    used = any(p.param("TZID") == tzid for c in comps for p in c.props)
    if not used or tzid is None:
        return []
    last = start.year
    if appt.recurrence is not None:
        until = appt.recurrence.until
        last = until.year if until is not None else max(start.year, opts.reference_year + 1)
    comp = props.vtimezone_for(zone, start.year, min(max(last, start.year), start.year + 60))
    return [comp] if comp is not None else []


def _boundary(moment: datetime, all_day: bool, ctx: _Ctx) -> TimeValue:
    if all_day:
        return props.all_day_date(moment, ctx.zone)
    local = props.as_utc(moment).astimezone(ctx.zone)
    return local.astimezone(UTC) if tz_name(ctx.zone) == "UTC" else local


def _write_event(
    comp: Component, f: EventFields, ctx: _Ctx, current: EventFields | None = None
) -> None:
    """Set the properties of every field ``f`` carries (that differs from
    ``current``, the component's values, when given)."""

    def changed(name: str) -> bool:
        new = getattr(f, name)
        if new is None:
            return False
        if current is None:
            return True
        old = getattr(current, name)
        if name == "body":
            return not props.same_body(new, old)
        return bool(new != old)

    if changed("subject"):
        props.set_text(comp, "SUMMARY", f.subject)
    if changed("location"):
        _set_location(comp, f.location)
    if changed("body") and f.body is not None:
        props.set_body(comp, f.body)
    if changed("sensitivity") and f.sensitivity is not None:
        props.set_sensitivity(comp, f.sensitivity)
    if changed("busy_status") and f.busy_status is not None:
        _set_busy(comp, f.busy_status)
    if changed("categories") and f.categories is not None:
        props.set_categories(comp, f.categories)
    if changed("attendees") and f.attendees is not None:
        _set_attendees(comp, f.attendees, ctx.opts)
    if changed("response_type") and f.response_type is not None and not _answered(f, ctx.opts):
        _set_response(comp, f.response_type, ctx.opts)
    if changed("meeting_status") and f.meeting_status is not None:
        if MeetingStatus(f.meeting_status).cancelled:
            comp.set("STATUS", "CANCELLED")
        elif (comp.value("STATUS") or "").strip().upper() == "CANCELLED":
            comp.remove("STATUS")
    if changed("reminder") and f.reminder is not None:
        _set_reminder(comp, f.reminder)
    if f.dtstamp is not None:
        comp.set("DTSTAMP", fmt_utc(f.dtstamp))


def _set_location(comp: Component, value: str | Location | None) -> None:
    if isinstance(value, str) or value is None:
        props.set_text(comp, "LOCATION", value)
        return
    props.set_text(comp, "LOCATION", value.display_name)
    comp.remove("GEO")
    if value.latitude is not None and value.longitude is not None:
        comp.props.append(Prop("GEO", (), f"{value.latitude};{value.longitude}"))
    for attr in _LOCATION_EXTRA:
        name = _LOCATION_X + attr.upper().replace("_", "-")
        extra = getattr(value, attr)
        props.set_text(comp, name, None if extra is None else str(extra))


def _set_busy(comp: Component, status: BusyStatus) -> None:
    comp.remove(_CDO)
    if status == BusyStatus.FREE:
        comp.set("TRANSP", "TRANSPARENT")
        return
    comp.remove("TRANSP")
    if status != BusyStatus.BUSY:
        comp.set(_CDO, _BUSY_CDO[BusyStatus(status)])


def _set_reminder(comp: Component, minutes: int) -> None:
    comp.subs = [
        s
        for s in comp.subs
        if not (
            s.name == "VALARM" and (s.value("ACTION") or "").strip().upper() in ("DISPLAY", "AUDIO")
        )
    ]
    trigger = Prop("TRIGGER", (), fmt_duration(-timedelta(minutes=max(0, minutes))))
    comp.subs.append(props.display_alarm(trigger))


def _set_attendees(comp: Component, attendees: list[Attendee], opts: Options) -> None:
    """ATTENDEE lines for the list; a line for an address already there keeps
    its other parameters."""
    existing = {}
    for prop in comp.all("ATTENDEE"):
        address = props.mailto(prop.value)
        if address is not None:
            existing[address.lower()] = prop
    others = [p for p in comp.all("ATTENDEE") if props.mailto(p.value) is None]
    comp.remove("ATTENDEE")
    for a in attendees:
        if not a.email:
            continue
        prop = existing.get(a.email.lower()) or Prop("ATTENDEE", (), "mailto:" + a.email)
        prop = prop.with_param("CN", props.clean_param(a.name) if a.name else None)
        if a.attendee_status is not None:
            prop = prop.with_param("PARTSTAT", _PARTSTAT.get(AttendeeStatus(a.attendee_status)))
        if a.attendee_type is not None:
            kind = AttendeeType(a.attendee_type)
            if kind == AttendeeType.RESOURCE:
                prop = prop.with_param("CUTYPE", "RESOURCE").with_param("ROLE", "NON-PARTICIPANT")
            else:
                if (prop.param("CUTYPE") or "").upper() in ("RESOURCE", "ROOM"):
                    prop = prop.with_param("CUTYPE", None)
                role = "OPT-PARTICIPANT" if kind == AttendeeType.OPTIONAL else "REQ-PARTICIPANT"
                if (prop.param("ROLE") or "REQ-PARTICIPANT").upper() not in (role, "CHAIR"):
                    prop = prop.with_param("ROLE", role)
        comp.props.append(prop)
    comp.props.extend(others)


def _answered(f: EventFields, opts: Options) -> bool:
    """Does the user's own Attendee entry carry an answer?  (It wins over
    ResponseType, which servers compute and clients rarely send.)"""
    return any(
        _is_user(a.email, opts) and a.attendee_status not in (None, AttendeeStatus.UNKNOWN)
        for a in f.attendees or []
    )


def _set_response(comp: Component, response: ResponseType, opts: Options) -> None:
    """The user's own answer, on the user's ATTENDEE line (if there is one)."""
    partstat = {
        ResponseType.TENTATIVE: "TENTATIVE",
        ResponseType.ACCEPTED: "ACCEPTED",
        ResponseType.DECLINED: "DECLINED",
        ResponseType.NOT_RESPONDED: "NEEDS-ACTION",
    }.get(ResponseType(response))
    if partstat is None:
        return
    for i, prop in enumerate(comp.props):
        if prop.name == "ATTENDEE" and _is_user(props.mailto(prop.value), opts):
            comp.props[i] = prop.with_param("PARTSTAT", partstat)


def _set_rsvp(comp: Component, appt: Appointment) -> None:
    organizer = (appt.organizer_email or "").lower()
    for i, prop in enumerate(comp.props):
        address = props.mailto(prop.value) if prop.name == "ATTENDEE" else None
        if address is not None and address.lower() != organizer:
            comp.props[i] = prop.with_param("RSVP", "TRUE")


# -- the series ----------------------------------------------------------------------------------


def _series_in(
    appt: Appointment, master: Component, start: TimeValue, end: TimeValue, ctx: _Ctx
) -> list[Component]:
    if appt.recurrence is None:
        return []
    all_day = not isinstance(start, datetime)
    until = None
    if appt.recurrence.until is not None:
        if all_day:
            until = props.all_day_date(appt.recurrence.until, ctx.zone).strftime("%Y%m%d")
        else:
            until = fmt_utc(appt.recurrence.until)
    first = start if isinstance(start, date) and not isinstance(start, datetime) else start.date()
    try:
        value, params = to_rrule(appt.recurrence, first, until)
    except RecurrenceError as e:
        raise MappingError(str(e)) from None
    master.props.append(Prop("RRULE", params, value))
    overrides: list[Component] = []
    length = _minus(end, start)
    for exc in appt.exceptions or []:
        original = exc.exception_start_time or exc.instance_id
        if original is None:
            raise MappingError("an Exception without ExceptionStartTime or InstanceId")
        rid = _occurrence_value(original, start, ctx)
        if exc.deleted:
            master.props.append(props.time_prop("EXDATE", rid))
            continue
        overrides.append(_override(master, exc, rid, length, ctx))
    return overrides


def _occurrence_value(original: datetime, start: TimeValue, ctx: _Ctx) -> TimeValue:
    """An occurrence's RECURRENCE-ID value, typed like DTSTART."""
    if isinstance(start, datetime):
        return _boundary(original, False, ctx)
    return props.all_day_date(original, ctx.zone)


def _override(
    master: Component,
    exc: RecurrenceException,
    rid: TimeValue,
    length: timedelta,
    ctx: _Ctx,
    existing: Component | None = None,
) -> Component:
    """An override for one occurrence: ``existing`` (or the master's descriptive
    properties) with the exception's fields over them."""
    if existing is None:
        comp = _seed(master, rid, length)
        current = None
    else:
        comp = existing
        current = _read_event(comp, ctx)
    series_all_day = not isinstance(rid, datetime)
    all_day = exc.all_day_event if exc.all_day_event is not None else series_all_day
    moved = exc.start_time is not None or exc.end_time is not None or all_day != series_all_day
    if current is not None:
        moved = moved and (exc.start_time, exc.end_time, all_day) != (
            current.start_time if exc.start_time is not None else None,
            current.end_time if exc.end_time is not None else None,
            current.all_day_event,
        )
    if moved:
        begin = _boundary(exc.start_time or props.instant(rid, ctx.zone), all_day, ctx)
        if exc.end_time is not None:
            finish = _boundary(exc.end_time, all_day, ctx)
        elif all_day == series_all_day:
            finish = begin + length
        else:  # all-day-ness changed and no end given: one day, or no length
            finish = begin
        if all_day and finish <= begin:
            finish = begin + timedelta(days=1)
        if finish < begin:
            finish = begin
        for name, value in (("DTSTART", begin), ("DTEND", finish)):
            comp.remove(name)
            comp.props.append(props.time_prop(name, value))
        comp.remove("DURATION")
    fields_in = EventFields(**{n: getattr(exc, n) for n in _SHARED})
    fields_in.start_time = fields_in.end_time = fields_in.all_day_event = None
    _write_event(comp, fields_in, ctx, current)
    return comp


def _seed(master: Component, rid: TimeValue, length: timedelta) -> Component:
    """An occurrence as the series gives it: the master's properties, its own times."""
    comp = Component("VEVENT")
    for prop in master.props:
        if prop.name not in _SERIES:
            comp.props.append(prop)
    comp.props.append(props.time_prop("RECURRENCE-ID", rid))
    comp.props.append(props.time_prop("DTSTART", rid))
    comp.props.append(props.time_prop("DTEND", rid + length))
    comp.subs = [s.copy() for s in master.subs]
    return comp


# ==============================================================================================
# 16.x: one occurrence edited or deleted (InstanceId)
# ==============================================================================================


def occurrence_key(comp: Component, cal: Component, opts: Options) -> object:
    """The occurrence a component stands for, however its RECURRENCE-ID is
    spelled: None for the master, else the UTC instant (or the date)."""
    rid = comp.get("RECURRENCE-ID")
    if rid is None:
        return None
    try:
        value = props.read_time(rid, cal, opts, [])
    except MappingError:
        return rid.value.strip()
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _find(item: Item, instance_id: datetime, opts: Options) -> tuple[Component, TimeValue, _Ctx]:
    cal = item.tree.copy()
    comps = [c for c in cal.subs if c.name == "VEVENT"]
    master = next((c for c in comps if c.get("RECURRENCE-ID") is None), None)
    if master is None or master.get("RRULE") is None:
        raise MappingError(f"item {item.uid} is not a recurring series")
    ctx = _Ctx(opts, cal, UTC, [])
    start, _ = _span(master, ctx)
    if isinstance(start, datetime):
        ctx.zone = start.tzinfo or UTC
        rid: TimeValue = instance_id.astimezone(ctx.zone)
        if tz_name(ctx.zone) == "UTC":
            rid = instance_id.astimezone(UTC)
    else:
        ctx.zone = UTC if opts.v16 else opts.device_zone
        rid = props.all_day_date(instance_id, ctx.zone)
    return master, rid, ctx


def apply_instance_delete(item: Item, instance_id: datetime, opts: Options) -> Item:
    """The series without the occurrence ``instance_id`` names (an EXDATE; an
    override of it is removed)."""
    props.check_wire(RecurrenceException(instance_id=instance_id))
    master, rid, ctx = _find(item, instance_id, opts)
    key = rid.astimezone(UTC) if isinstance(rid, datetime) else rid
    ctx.cal.subs = [
        c for c in ctx.cal.subs if c.name != "VEVENT" or occurrence_key(c, ctx.cal, opts) != key
    ]
    known = {
        v.astimezone(UTC) if isinstance(v, datetime) else v
        for p in master.all("EXDATE")
        for v in props.time_values(p, ctx.cal, opts, [])
    }
    if key not in known:
        master.props.append(props.time_prop("EXDATE", rid))
    return props.finish(ctx.cal)


def apply_instance_edit(
    item: Item, instance_id: datetime, edited: EventFields, opts: Options
) -> Item:
    """The series with the occurrence ``instance_id`` names changed as the
    device says (the fields it sent, over the existing override or the
    occurrence as the series gives it); what the device did not send stays."""
    props.check_wire(edited)
    props.check_wire(RecurrenceException(instance_id=instance_id))
    master, rid, ctx = _find(item, instance_id, opts)
    key = rid.astimezone(UTC) if isinstance(rid, datetime) else rid
    start, end = _span(master, ctx)
    existing = next(
        (
            c
            for c in ctx.cal.subs
            if c.name == "VEVENT"
            and c.get("RECURRENCE-ID") is not None
            and occurrence_key(c, ctx.cal, opts) == key
        ),
        None,
    )
    exc = RecurrenceException(**{n: getattr(edited, n) for n in _SHARED})
    comp = _override(master, exc, rid, _minus(end, start), ctx, existing)
    if existing is None:
        ctx.cal.subs.append(comp)
    kept_props = []
    for prop in master.props:  # an occurrence the device edits exists
        if prop.name == "EXDATE":
            kept = [
                v.strip()
                for v in prop.value.split(",")
                if v.strip() and _key_of(prop.with_value(v.strip()), ctx) != key
            ]
            if kept:
                kept_props.append(prop.with_value(",".join(kept)))
        else:
            kept_props.append(prop)
    master.props = kept_props
    return props.finish(ctx.cal)


def _key_of(prop: Prop, ctx: _Ctx) -> object:
    value = props.read_time(prop, ctx.cal, ctx.opts, [])
    return value.astimezone(UTC) if isinstance(value, datetime) else value
