"""Typed, wire-neutral data of ActiveSync calendar items and tasks.

Why: the mapping to iCalendar (``calendar``, ``tasks``) should not know WBXML,
and the codec should not know iCalendar.  These classes sit between them: one
attribute per element of MS-ASCAL (Calendar class, code page 4) and MS-ASTASK
(Tasks class, code page 9), plus the AirSyncBase elements they use (Body, the
16.x Location, InstanceId).  An attribute is its element's name in snake case
(``element_of`` gives it back), so the codec adapter is a straight walk over
``dataclasses.fields()``.

Rules:
- ``None`` means "the element is absent" (in a Change: not sent, or ghosted;
  in an Exception: the same as the master).  An empty list means the
  container was sent empty (e.g. ``<Categories/>``: no categories).
- times are ``datetime`` values: aware (UTC) for the Compact DateTime and
  DateTime elements that carry UTC; naive for a task's StartDate/DueDate,
  which are local wall-clock times written with a Z (MS-ASTASK).
- enumerations are ``IntEnum``s; the codec turns an unknown number into a
  clear error naming the element.
- ``location`` is a string in 14.x (Calendar:Location) and a ``Location``
  in 16.x (AirSyncBase:Location); the codec writes whichever it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from calsync.eas.timezone import TimeZoneBlob


_IRREGULAR = {"dtstamp": "DtStamp", "uid": "UID"}


def element_of(attribute: str) -> str:
    """The MS-AS* element name of a model attribute (``start_time``: StartTime)."""
    return _IRREGULAR.get(attribute) or "".join(w.capitalize() for w in attribute.split("_"))


# -- enumerations (MS-ASCAL 2.2.2, MS-ASTASK 2.2.2, MS-ASAIRS 2.2.2) ----------------------


class BusyStatus(IntEnum):
    FREE = 0
    TENTATIVE = 1
    BUSY = 2
    OUT_OF_OFFICE = 3
    WORKING_ELSEWHERE = 4  # 16.0+


class Sensitivity(IntEnum):
    NORMAL = 0
    PERSONAL = 1
    PRIVATE = 2
    CONFIDENTIAL = 3


class MeetingStatus(IntEnum):
    """Bit 0: a meeting; bit 1: received (not organized by the user); bit 2:
    cancelled; bit 3 (9, 11, 13, 15) repeats 1, 3, 5, 7 (MS-ASCAL 2.2.2.28)."""

    APPOINTMENT = 0
    MEETING_ORGANIZER = 1
    MEETING_RECEIVED = 3
    CANCELLED_ORGANIZER = 5
    CANCELLED_RECEIVED = 7
    MEETING_ORGANIZER_ALT = 9
    MEETING_RECEIVED_ALT = 11
    CANCELLED_ORGANIZER_ALT = 13
    CANCELLED_RECEIVED_ALT = 15

    @property
    def cancelled(self) -> bool:
        return bool(self.value & 4)

    @property
    def received(self) -> bool:
        return bool(self.value & 2)


class AttendeeStatus(IntEnum):
    UNKNOWN = 0
    TENTATIVE = 2
    ACCEPTED = 3
    DECLINED = 4
    NOT_RESPONDED = 5


class AttendeeType(IntEnum):
    REQUIRED = 1
    OPTIONAL = 2
    RESOURCE = 3


class ResponseType(IntEnum):
    NONE = 0
    ORGANIZER = 1
    TENTATIVE = 2
    ACCEPTED = 3
    DECLINED = 4
    NOT_RESPONDED = 5


class RecurrenceType(IntEnum):
    DAILY = 0
    WEEKLY = 1
    MONTHLY = 2
    MONTHLY_NTH = 3
    YEARLY = 5
    YEARLY_NTH = 6


class BodyType(IntEnum):
    PLAIN = 1
    HTML = 2
    RTF = 3
    MIME = 4


class Importance(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2


# DayOfWeek bits (MS-ASCAL 2.2.2.19): Sunday = 1 ... Saturday = 64; 127 with
# WeekOfMonth 5 is "the last day of the month".
DAY_BITS = {"SU": 1, "MO": 2, "TU": 4, "WE": 8, "TH": 16, "FR": 32, "SA": 64}
LAST_DAY_OF_MONTH = 127


# -- AirSyncBase pieces --------------------------------------------------------------------


@dataclass
class Body:
    """AirSyncBase:Body.  ``data`` is None when only the size was sent."""

    type: BodyType = BodyType.PLAIN
    data: str | None = None
    estimated_data_size: int | None = None
    truncated: bool | None = None
    preview: str | None = None


@dataclass
class Location:
    """AirSyncBase:Location (16.0+, MS-ASAIRS 2.2.2.27)."""

    display_name: str | None = None
    annotation: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy: float | None = None
    altitude: float | None = None
    altitude_accuracy: float | None = None
    location_uri: str | None = None


# -- Calendar -------------------------------------------------------------------------------


@dataclass
class Attendee:
    email: str = ""
    name: str | None = None
    attendee_status: AttendeeStatus | None = None
    attendee_type: AttendeeType | None = None


@dataclass
class Recurrence:
    """Calendar:Recurrence (MS-ASCAL 2.2.2.37)."""

    type: RecurrenceType = RecurrenceType.DAILY
    interval: int | None = None
    until: datetime | None = None
    occurrences: int | None = None
    day_of_week: int | None = None  # DAY_BITS mask
    day_of_month: int | None = None
    week_of_month: int | None = None  # 1-4, 5 = last
    month_of_year: int | None = None
    calendar_type: int | None = None
    is_leap_month: bool | None = None
    first_day_of_week: int | None = None  # 0 = Sunday ... 6


@dataclass
class TaskRecurrence(Recurrence):
    """Tasks:Recurrence (MS-ASTASK 2.2.2.31): the calendar one plus these."""

    start: datetime | None = None
    regenerate: bool | None = None
    dead_occur: bool | None = None


@dataclass
class EventFields:
    """What an appointment and an exception to it both carry."""

    all_day_event: bool | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    dtstamp: datetime | None = None
    subject: str | None = None
    location: str | Location | None = None
    body: Body | None = None
    sensitivity: Sensitivity | None = None
    busy_status: BusyStatus | None = None
    reminder: int | None = None  # minutes before the start
    categories: list[str] | None = None
    attendees: list[Attendee] | None = None
    meeting_status: MeetingStatus | None = None
    response_type: ResponseType | None = None
    appointment_reply_time: datetime | None = None


@dataclass
class RecurrenceException(EventFields):
    """Calendar:Exception (the element's name; the class is not a Python
    exception): one occurrence deleted, or its fields that differ from the
    master's (``None`` = as the master)."""

    deleted: bool | None = None
    exception_start_time: datetime | None = None  # up to 14.1
    instance_id: datetime | None = None  # 16.x (AirSyncBase)


@dataclass
class Appointment(EventFields):
    """A Calendar class item (Sync ApplicationData)."""

    timezone: TimeZoneBlob | None = None
    uid: str | None = None
    client_uid: str | None = None  # 16.x, client Adds
    organizer_name: str | None = None
    organizer_email: str | None = None
    response_requested: bool | None = None
    disallow_new_time_proposal: bool | None = None
    recurrence: Recurrence | None = None
    exceptions: list[RecurrenceException] | None = None
    native_body_type: BodyType | None = None
    instance_id: datetime | None = None  # 16.x orphan instance


# -- Tasks ----------------------------------------------------------------------------------


@dataclass
class Task:
    """A Tasks class item (MS-ASTASK 2.2.2)."""

    subject: str | None = None
    body: Body | None = None
    importance: Importance | None = None
    utc_start_date: datetime | None = None
    start_date: datetime | None = None  # naive: local wall clock
    utc_due_date: datetime | None = None
    due_date: datetime | None = None  # naive: local wall clock
    categories: list[str] | None = None
    recurrence: TaskRecurrence | None = None
    complete: bool | None = None
    date_completed: datetime | None = None
    sensitivity: Sensitivity | None = None
    reminder_time: datetime | None = None
    reminder_set: bool | None = None


# -- date and time values on the wire (MS-ASDTYPE 2.3, 2.7.2) ---------------------------------

_WIRE_TIME = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:[.,](\d{1,6}))?(Z?)$", re.I
)


class WireTimeError(ValueError):
    """A date/time element that is neither Compact DateTime nor DateTime."""


def parse_time(text: str, *, local: bool = False) -> datetime:
    """A Compact DateTime (``20250102T090000Z``) or DateTime
    (``2025-01-02T09:00:00.000Z``): aware UTC, or naive when ``local`` (a
    task's StartDate/DueDate: wall-clock numerals written with a Z)."""
    m = _WIRE_TIME.match(text.strip())
    if not m:
        raise WireTimeError(f"not an ActiveSync date/time: {text.strip()[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    try:
        value = datetime(year, month, day, hour, minute, min(second, 59), micro)
    except ValueError:
        raise WireTimeError(f"not a valid date/time: {text.strip()[:40]!r}") from None
    return value if local else value.replace(tzinfo=UTC)


def format_compact(value: datetime) -> str:
    """Compact DateTime (Calendar elements, InstanceId): ``20250102T090000Z``."""
    v = _as_utc(value)
    return f"{v.year:04d}{v.month:02d}{v.day:02d}T{v.hour:02d}{v.minute:02d}{v.second:02d}Z"


def format_datetime(value: datetime) -> str:
    """DateTime (Tasks elements): ``2025-01-02T09:00:00.000Z``; a naive value
    (local wall clock) is written with its own numerals."""
    v = _as_utc(value)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC)
