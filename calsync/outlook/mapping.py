"""Outlook appointments and tasks (MAPI properties) -> iCalendar items.

A message is first read into Exchange ActiveSync's model (``eas.model``:
ActiveSync's Calendar and Tasks classes are Outlook's properties renamed, with
the same enumerations for busy status, sensitivity, meeting state, response
and attendee status), and ``eas.calendar.appointment_to_item`` /
``eas.tasks.task_to_item`` write the iCalendar: one mapping of times, zones,
series, exceptions, people and alarms for both sources.

Where each field comes from (MS-OXOCAL, MS-OXOTASK, MS-OXPROPS):
- times: PidLidAppointmentStartWhole/EndWhole (UTC), all-day from
  PidLidAppointmentSubType; the zone from
  PidLidAppointmentTimeZoneDefinitionRecur (a series) or ...StartDisplay (a
  TZDEFINITION: its Windows key name and effective rule), else
  PidLidTimeZoneStruct (+ PidLidTimeZoneDescription); ``eas.timezone`` finds
  the IANA zone with the same rules (or makes a VTIMEZONE of the rule);
  without any, times are UTC;
- series: PidLidAppointmentRecur (``outlook.recurrence``); changed occurrences
  take their body and attendees from the attachment-embedded exception
  message whose PidLidExceptionReplaceTime is their original start;
- texts: subject (PidTagSubject without its prefix markers), PidLidLocation,
  PidTagBody, categories from PidNameKeywords;
- reminder: PidLidReminderSet + PidLidReminderDelta (minutes before);
- people: a meeting's (PidLidAppointmentStateFlags bit 0) recipients table
  (SMTP address, display name, PidTagRecipientType To/Cc/Bcc = required/
  optional/resource, PidTagRecipientTrackStatus = PARTSTAT); the organizer
  from PidTagSentRepresenting* (or the row flagged recipOrganizer);
  recipients with an Exchange address and no SMTP address are left out;
- PidLidBusyStatus, PidTagSensitivity, PidLidResponseStatus;
- tasks: PidLidTaskStartDate/DueDate (local dates) with PidLidCommonStart/End
  (UTC), PidLidTaskComplete + PidLidTaskDateCompleted, PidLidTaskStatus and
  PidLidPercentComplete (STATUS, PERCENT-COMPLETE), PidTagImportance
  (PRIORITY 1/5/9), PidLidTaskRecurrence, the reminder time;
- UID: the meeting's PidLidCleanGlobalObjectId (or PidLidGlobalObjectId with
  its instance date cleared): the UID embedded by "vCal-Uid" if an iCalendar
  invitation made it, else its hex (what Outlook itself exports); a message
  without one gets ``pst-`` + its PidTagSearchKey (stable for the message), or
  a UID derived from its folder, class and creation time;
- DTSTAMP: PidTagLastModificationTime (the same message reads the same).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, tzinfo
from typing import Any

from calsync.eas import calendar as eas_calendar
from calsync.eas import tasks as eas_tasks
from calsync.eas.model import (
    Appointment,
    Attendee,
    AttendeeStatus,
    AttendeeType,
    Body,
    BodyType,
    BusyStatus,
    Importance,
    MeetingStatus,
    RecurrenceException,
    ResponseType,
    Sensitivity,
    Task,
    TaskRecurrence,
)
from calsync.eas.props import MappingError, Options
from calsync.eas.timezone import SystemTime, TimeZoneBlob, TimeZoneBlobError, zone_for_blob
from calsync.items import Item
from calsync.outlook.pst import APPOINTMENT, COMMON, MEETING, PUBLIC_STRINGS, TASK, Message
from calsync.outlook.recurrence import (
    AppointmentPattern,
    RecurBlobError,
    local_to_utc,
    parse_appointment,
    parse_pattern,
)

_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"
_TZRULE = struct.Struct("<BBHHH14xiii8H8H")
_TZRULE_EFFECTIVE = 0x0002
_TZSTRUCT = struct.Struct("<iiiH8HH8H")
_RECIP_ORGANIZER = 0x0002
_TASK_STATUS = {1: "IN-PROCESS", 2: "COMPLETED"}


class OutlookError(ValueError):
    """A message that cannot become an item; the message says why."""


def is_appointment(message_class: str) -> bool:
    return message_class.lower().startswith("ipm.appointment")


def is_task(message_class: str) -> bool:
    return message_class.lower().startswith("ipm.task")


def to_item(message: Message) -> Item:
    """The iCalendar item of an appointment or task message."""
    kind = message.message_class
    try:
        if is_appointment(kind):
            return _appointment_item(message)
        if is_task(kind):
            return _task_item(message)
    except (MappingError, RecurBlobError, TimeZoneBlobError) as e:
        raise OutlookError(str(e)) from None
    raise OutlookError(f"a {kind or 'message without class'} is no appointment or task")


# -- UID -----------------------------------------------------------------------------------------


def uid_of(message: Message) -> str:
    goid = message.get(MEETING, 0x23) or message.get(MEETING, 0x3)
    if isinstance(goid, bytes) and len(goid) >= 40:
        start = goid.find(_VCAL_UID, 40)
        if start == 40:
            text = goid[start + len(_VCAL_UID) :].split(b"\x00", 1)[0]
            return text.decode("utf-8", "replace")
        clean = goid[:16] + b"\x00\x00\x00\x00" + goid[20:]
        return clean.hex().upper()
    key = message.get(0x300B)
    if isinstance(key, bytes) and key:
        return "pst-" + key.hex()
    created = message.get(0x3007)
    stamp = created.isoformat() if isinstance(created, datetime) else ""
    return eas_calendar.new_uid(f"{message.folder}|{message.message_class}|{stamp}")


# -- time zones ----------------------------------------------------------------------------------


def _systime(values: tuple[int, ...]) -> SystemTime:
    return SystemTime(*values)


def blob_of_definition(data: bytes) -> TimeZoneBlob | None:
    """The effective rule of a TZDEFINITION (MS-OXOCAL 2.2.1.41) as a
    TIME_ZONE_INFORMATION named by its Windows key name."""
    if len(data) < 8 or data[0] != 2:
        return None
    (header,) = struct.unpack_from("<H", data, 2)
    (chars,) = struct.unpack_from("<H", data, 6)
    name = data[8 : 8 + 2 * chars].decode("utf-16-le", "replace")
    pos = 4 + header
    if pos + 2 > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, pos - 2)
    rules = []
    for i in range(count):
        at = pos + i * _TZRULE.size
        if at + _TZRULE.size > len(data):
            break
        rules.append(_TZRULE.unpack_from(data, at))
    if not rules:
        return None
    rule = next((r for r in rules if r[3] & _TZRULE_EFFECTIVE), rules[-1])
    bias, standard_bias, daylight_bias = rule[5], rule[6], rule[7]
    return TimeZoneBlob(
        bias=bias,
        standard_name=name,
        standard_date=_systime(rule[8:16]),
        standard_bias=standard_bias,
        daylight_name=name,
        daylight_date=_systime(rule[16:24]),
        daylight_bias=daylight_bias,
    )


def blob_of_struct(data: bytes, description: str | None) -> TimeZoneBlob | None:
    """PidLidTimeZoneStruct (MS-OXOCAL 2.2.1.39) as a TIME_ZONE_INFORMATION."""
    if len(data) < _TZSTRUCT.size:
        return None
    f = _TZSTRUCT.unpack_from(data)
    return TimeZoneBlob(
        bias=f[0],
        standard_name=description or "",
        standard_date=_systime(f[4:12]),
        standard_bias=f[1],
        daylight_name=description or "",
        daylight_date=_systime(f[13:21]),
        daylight_bias=f[2],
    )


def _blob(message: Message, recurring: bool) -> TimeZoneBlob | None:
    for lid in (0x8260, 0x825E) if recurring else (0x825E, 0x8260):
        data = message.get(APPOINTMENT, lid)
        if isinstance(data, bytes):
            blob = blob_of_definition(data)
            if blob is not None:
                blob.check()
                return blob
    data = message.get(APPOINTMENT, 0x8233)
    if isinstance(data, bytes):
        blob = blob_of_struct(data, message.get(APPOINTMENT, 0x8234))
        if blob is not None:
            blob.check()
            return blob
    return None


# -- appointments --------------------------------------------------------------------------------


def subject_of(message: Message) -> str | None:
    text = message.get(0x0037)
    if isinstance(text, str) and text.startswith("\x01") and len(text) >= 2:
        text = text[2:]  # the prefix-length marker (MS-OXCMSG 2.2.1.46)
    return text or None


def _enum(kind: Any, value: Any) -> Any:
    if not isinstance(value, int):
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _body(message: Message) -> Body | None:
    text = message.get(0x1000)
    if isinstance(text, str) and text.strip():
        return Body(type=BodyType.PLAIN, data=text.replace("\r\n", "\n"))
    return None


def _reminder(message: Message) -> int | None:
    if not message.get(COMMON, 0x8503):
        return None
    delta = message.get(COMMON, 0x8501)
    return delta if isinstance(delta, int) and delta >= 0 else 15


def _address(row: dict[int, Any]) -> str | None:
    smtp = row.get(0x39FE)
    if isinstance(smtp, str) and "@" in smtp:
        return smtp
    kind, address = row.get(0x3002), row.get(0x3003)
    if str(kind or "").upper() == "SMTP" and isinstance(address, str) and "@" in address:
        return address
    return None


def _people(message: Message, meeting: bool) -> tuple[list[Attendee], str | None, str | None]:
    """(attendees, organizer address, organizer name)."""
    attendees: list[Attendee] = []
    organizer: tuple[str | None, str | None] = (None, None)
    for row in message.recipients():
        address = _address(row)
        name = row.get(0x3001)
        if int(row.get(0x5FFD) or 0) & _RECIP_ORGANIZER:
            organizer = (address, name)
            continue
        if not meeting or address is None:
            continue
        attendees.append(
            Attendee(
                email=address,
                name=name if isinstance(name, str) and name != address else None,
                attendee_status=_enum(AttendeeStatus, row.get(0x5FFF)),
                attendee_type=_enum(AttendeeType, row.get(0x0C15)),
            )
        )
    email = message.get(0x5D02)
    if not (isinstance(email, str) and "@" in email):
        kind, address = message.get(0x0064), message.get(0x0065)
        email = address if str(kind or "").upper() == "SMTP" and "@" in str(address) else None
    name = message.get(0x0042)
    if email is None:
        email, name = organizer
    return attendees, email, name if isinstance(name, str) else None


def _appointment_item(message: Message) -> Item:
    start = message.get(APPOINTMENT, 0x820D) or message.get(0x0060)
    end = message.get(APPOINTMENT, 0x820E) or message.get(0x0061)
    if not isinstance(start, datetime):
        raise OutlookError("the appointment has no start time")
    recur = message.get(APPOINTMENT, 0x8216)
    recurring = bool(message.get(APPOINTMENT, 0x8223)) and isinstance(recur, bytes)
    blob = _blob(message, recurring)
    state = _enum(MeetingStatus, message.get(APPOINTMENT, 0x8217))
    meeting = bool(state is not None and state.value & 1)
    attendees, organizer, organizer_name = _people(message, meeting)
    appt = Appointment(
        all_day_event=bool(message.get(APPOINTMENT, 0x8215)),
        start_time=start,
        end_time=end if isinstance(end, datetime) else None,
        dtstamp=message.get(0x3008) or message.get(0x3007),
        subject=subject_of(message),
        location=message.get(APPOINTMENT, 0x8208) or None,
        body=_body(message),
        sensitivity=_enum(Sensitivity, message.get(0x0036)),
        busy_status=_enum(BusyStatus, message.get(APPOINTMENT, 0x8205)),
        reminder=_reminder(message),
        categories=list(message.get(PUBLIC_STRINGS, "Keywords") or []) or None,
        attendees=attendees or None,
        meeting_status=state if meeting else None,
        response_type=_enum(ResponseType, message.get(APPOINTMENT, 0x8218)) if meeting else None,
        timezone=blob,
        uid=uid_of(message),
        organizer_email=organizer if meeting else None,
        organizer_name=organizer_name if meeting and organizer else None,
    )
    opts = Options(version="14.1")
    if recurring and isinstance(recur, bytes):
        zone = zone_for_blob(blob).tzinfo if blob is not None else UTC
        _series(message, appt, parse_appointment(recur), zone)
    return eas_calendar.appointment_to_item(appt, opts)


def _series(message: Message, appt: Appointment, parsed: AppointmentPattern, zone: tzinfo) -> None:
    rec = parsed.pattern.to_eas()
    until = parsed.until_local()
    if until is not None:
        rec.until = local_to_utc(until, zone)
    appt.recurrence = rec
    embedded = _embedded_exceptions(message)
    exceptions: list[RecurrenceException] = [
        RecurrenceException(deleted=True, exception_start_time=local_to_utc(local, zone))
        for local in parsed.deleted_starts()
    ]
    for info in parsed.exceptions:
        original = local_to_utc(info.original_start, zone)
        exc = RecurrenceException(
            exception_start_time=original,
            start_time=local_to_utc(info.start, zone),
            end_time=local_to_utc(info.end, zone),
            subject=info.subject,
            location=info.location,
            busy_status=_enum(BusyStatus, info.busy_status),
            all_day_event=info.all_day,
        )
        if info.reminder_set is False:
            exc.reminder = None
        elif info.reminder_delta is not None:
            exc.reminder = info.reminder_delta
        own = embedded.get(original)
        if own is not None:
            exc.body = _body(own)
            attendees, _, _ = _people(own, appt.meeting_status is not None)
            exc.attendees = attendees or None
        exceptions.append(exc)
    appt.exceptions = exceptions or None


def _embedded_exceptions(message: Message) -> dict[datetime, Message]:
    """The exception messages attached to a series, by original start (UTC)."""
    found: dict[datetime, Message] = {}
    for sub in message.embedded_messages():
        replaces = sub.get(APPOINTMENT, 0x8228)
        if isinstance(replaces, datetime):
            found[replaces] = sub
    return found


# -- tasks ---------------------------------------------------------------------------------------


def _naive(value: Any) -> datetime | None:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else None


def _task_item(message: Message) -> Item:
    importance = _enum(Importance, message.get(0x0017))
    task = Task(
        subject=subject_of(message),
        body=_body(message),
        importance=importance,
        start_date=_naive(message.get(TASK, 0x8104)),
        utc_start_date=message.get(COMMON, 0x8516),
        due_date=_naive(message.get(TASK, 0x8105)),
        utc_due_date=message.get(COMMON, 0x8517),
        categories=list(message.get(PUBLIC_STRINGS, "Keywords") or []) or None,
        complete=bool(message.get(TASK, 0x811C)),
        date_completed=message.get(TASK, 0x810F),
        sensitivity=_enum(Sensitivity, message.get(0x0036)),
        reminder_set=bool(message.get(COMMON, 0x8503)),
        reminder_time=message.get(COMMON, 0x8502),
    )
    recur = message.get(TASK, 0x8116)
    if message.get(TASK, 0x8126) and isinstance(recur, bytes):
        pattern = parse_pattern(recur)
        rec = pattern.to_eas(task=True)
        assert isinstance(rec, TaskRecurrence)
        rec.start = pattern.start_date
        if pattern.ends and rec.occurrences is None:
            rec.until = pattern.end_date.replace(tzinfo=UTC)
        task.recurrence = rec
    stamp = message.get(0x3008) or message.get(0x3007)
    item = eas_tasks.task_to_item(task, Options(version="14.1"), uid=uid_of(message), stamp=stamp)
    return _task_progress(item, message)


def _task_progress(item: Item, message: Message) -> Item:
    """STATUS and PERCENT-COMPLETE, which ActiveSync's Task does not carry."""
    status = message.get(TASK, 0x8101)
    percent = message.get(TASK, 0x8102)
    if message.get(TASK, 0x811C) or (status not in _TASK_STATUS and not percent):
        return item
    cal = item.tree.copy()
    comp = next(c for c in cal.subs if c.name == "VTODO")
    if status in _TASK_STATUS:
        comp.set("STATUS", _TASK_STATUS[status])
    if isinstance(percent, float) and 0 < percent < 1:
        comp.set("PERCENT-COMPLETE", str(round(percent * 100)))
    return Item.from_tree(cal)
