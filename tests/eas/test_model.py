"""The model names its elements as the specifications do, and reads and
writes the two date/time forms of the wire."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest

from calsync.eas import model
from calsync.eas.model import WireTimeError, element_of, format_compact, format_datetime, parse_time

# Element names of MS-ASCAL 6 (Calendar.xsd), MS-ASTASK 6 (Tasks.xsd) and the
# AirSyncBase elements they use (MS-ASAIRS 2.2.2), as the schemas spell them.
SPEC = {
    model.Appointment: {
        "Timezone",
        "AllDayEvent",
        "StartTime",
        "EndTime",
        "DtStamp",
        "Subject",
        "UID",
        "ClientUid",
        "OrganizerName",
        "OrganizerEmail",
        "Location",
        "Body",
        "Sensitivity",
        "BusyStatus",
        "Reminder",
        "Categories",
        "Attendees",
        "MeetingStatus",
        "ResponseType",
        "ResponseRequested",
        "AppointmentReplyTime",
        "DisallowNewTimeProposal",
        "Recurrence",
        "Exceptions",
        "NativeBodyType",
        "InstanceId",
    },
    model.RecurrenceException: {
        "Deleted",
        "ExceptionStartTime",
        "InstanceId",
        "Subject",
        "StartTime",
        "EndTime",
        "Body",
        "Location",
        "Categories",
        "Sensitivity",
        "BusyStatus",
        "AllDayEvent",
        "Reminder",
        "DtStamp",
        "MeetingStatus",
        "Attendees",
        "AppointmentReplyTime",
        "ResponseType",
    },
    model.Attendee: {"Email", "Name", "AttendeeStatus", "AttendeeType"},
    model.Recurrence: {
        "Type",
        "Interval",
        "Until",
        "Occurrences",
        "DayOfWeek",
        "DayOfMonth",
        "WeekOfMonth",
        "MonthOfYear",
        "CalendarType",
        "IsLeapMonth",
        "FirstDayOfWeek",
    },
    model.Task: {
        "Subject",
        "Body",
        "Importance",
        "UtcStartDate",
        "StartDate",
        "UtcDueDate",
        "DueDate",
        "Categories",
        "Recurrence",
        "Complete",
        "DateCompleted",
        "Sensitivity",
        "ReminderTime",
        "ReminderSet",
    },
    model.Body: {"Type", "Data", "EstimatedDataSize", "Truncated", "Preview"},
    model.Location: {
        "DisplayName",
        "Annotation",
        "Street",
        "City",
        "State",
        "Country",
        "PostalCode",
        "Latitude",
        "Longitude",
        "Accuracy",
        "Altitude",
        "AltitudeAccuracy",
        "LocationUri",
    },
}


SPEC[model.TaskRecurrence] = SPEC[model.Recurrence] | {"Start", "Regenerate", "DeadOccur"}


@pytest.mark.parametrize("cls", list(SPEC))
def test_every_attribute_is_an_element_of_the_specification(cls: type) -> None:
    assert {element_of(f.name) for f in fields(cls)} == SPEC[cls]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20250102T090000Z", datetime(2025, 1, 2, 9, tzinfo=UTC)),
        ("2025-01-02T09:00:00.000Z", datetime(2025, 1, 2, 9, tzinfo=UTC)),
        ("2025-01-02T09:00:00.250Z", datetime(2025, 1, 2, 9, 0, 0, 250000, tzinfo=UTC)),
        ("20250102T090000", datetime(2025, 1, 2, 9, tzinfo=UTC)),
    ],
)
def test_wire_times(text: str, value: datetime) -> None:
    assert parse_time(text) == value
    assert parse_time(text, local=True) == value.replace(tzinfo=None)


def test_wire_time_forms() -> None:
    moment = datetime(2025, 1, 2, 10, 30, tzinfo=UTC)
    assert format_compact(moment) == "20250102T103000Z"
    assert format_datetime(moment) == "2025-01-02T10:30:00.000Z"
    assert format_datetime(datetime(2025, 1, 2, 17, 0)) == "2025-01-02T17:00:00.000Z"  # local


@pytest.mark.parametrize("text", ["", "tomorrow", "2025-13-02T09:00:00Z", "20250102"])
def test_bad_wire_times_are_refused(text: str) -> None:
    with pytest.raises(WireTimeError):
        parse_time(text)


def test_meeting_status_bits() -> None:
    assert model.MeetingStatus(7).cancelled and model.MeetingStatus(7).received
    assert not model.MeetingStatus(9).cancelled and not model.MeetingStatus(9).received
