"""Series with deleted and changed occurrences, and tasks: the Outlook mapping on
property sets built by hand from MS-OXOCAL / MS-OXOTASK (no public .pst holds them,
see data/SOURCES.md).  The blobs follow MS-OXOCAL 2.2.1.44 field by field."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from calsync.outlook.mapping import OutlookError, to_item
from calsync.outlook.pst import APPOINTMENT, COMMON, TASK
from calsync.outlook.recurrence import RecurBlobError, parse_appointment

EPOCH = datetime(1601, 1, 1)


def minutes(local: datetime) -> int:
    return int((local - EPOCH).total_seconds() // 60)


def pacific_struct() -> bytes:
    """PidLidTimeZoneStruct of US Pacific time (bias 480, DST second Sunday of
    March to first Sunday of November, 2:00)."""
    std = (0, 11, 0, 1, 2, 0, 0, 0)
    dst = (0, 3, 0, 2, 2, 0, 0, 0)
    return struct.pack("<iiiH8HH8H", 480, 0, -60, 0, *std, 0, *dst)


def weekly_blob(exceptions: bytes = b"", count: int = 0, deleted: list[datetime] = (),
                modified: list[datetime] = (), extended: bytes = b"") -> bytes:  # fmt: skip
    """Every Monday 10:00-11:00 from 2025-03-03, 6 times."""
    first = datetime(2025, 3, 3)
    out = struct.pack("<HHHHHIII", 0x3004, 0x3004, 0x200B, 0x0001, 0, 0, 1, 0)
    out += struct.pack("<I", 0b10)  # Monday
    out += struct.pack("<III", 0x2022, 6, 0)
    out += struct.pack(f"<I{len(deleted)}I", len(deleted), *map(minutes, deleted))
    out += struct.pack(f"<I{len(modified)}I", len(modified), *map(minutes, modified))
    out += struct.pack("<II", minutes(first), minutes(datetime(2025, 4, 7)))
    out += struct.pack("<IIII", 0x3006, 0x3009, 600, 660)
    out += struct.pack("<H", count) + exceptions
    out += struct.pack("<I", 0)  # ReservedBlock1
    out += extended
    out += struct.pack("<I", 0)  # ReservedBlock2
    return out


class FakeMessage:
    """What the mapping reads of a message: tags, named properties, recipients."""

    def __init__(
        self, kind: str, props: dict[Any, Any], embedded: list[FakeMessage] | None = None
    ) -> None:
        self.message_class = kind
        self.props = props
        self.folder = "Calendar"
        self.identifier = "1"
        self.embedded = list(embedded or [])

    def get(self, key: Any, lid: Any = None) -> Any:
        return self.props.get((key, lid) if lid is not None else key)

    def recipients(self) -> list[dict[int, Any]]:
        return self.props.get("recipients", [])

    def embedded_messages(self) -> list[FakeMessage]:
        return self.embedded


def series(blob: bytes, embedded: list[FakeMessage] | None = None) -> FakeMessage:
    return FakeMessage(
        "IPM.Appointment",
        {
            0x0037: "\x01\x01Weekly sync",
            0x3008: datetime(2025, 2, 1, tzinfo=UTC),
            (APPOINTMENT, 0x820D): datetime(2025, 3, 3, 18, 0, tzinfo=UTC),
            (APPOINTMENT, 0x820E): datetime(2025, 3, 3, 19, 0, tzinfo=UTC),
            (APPOINTMENT, 0x8223): True,
            (APPOINTMENT, 0x8216): blob,
            (APPOINTMENT, 0x8233): pacific_struct(),
            (APPOINTMENT, 0x8234): "Pacific Standard Time",
            (APPOINTMENT, 0x8208): "Room 1",
            (COMMON, 0x8503): True,
            (COMMON, 0x8501): 10,
        },
        embedded,
    )


def test_deleted_and_changed_occurrences() -> None:
    # the third Monday (03-17) deleted; the second (03-10) moved to 14:00 with a
    # new subject and location; its body is in the attached exception message
    moved = datetime(2025, 3, 10, 14, 0)
    subject, location = "Weekly sync (moved)", "Room 2"
    info = struct.pack("<IIIH", minutes(moved), minutes(moved + timedelta(hours=1)),
                       minutes(datetime(2025, 3, 10, 10, 0)), 0x0001 | 0x0010)  # fmt: skip
    info += struct.pack("<HH", len(subject) + 1, len(subject)) + subject.encode()
    info += struct.pack("<HH", len(location) + 1, len(location)) + location.encode()
    ext = struct.pack("<II", 4, 0) + struct.pack("<I", 0)  # change highlight, reserved
    ext += struct.pack("<III", minutes(moved), minutes(moved + timedelta(hours=1)),
                       minutes(datetime(2025, 3, 10, 10, 0)))  # fmt: skip
    ext += struct.pack("<H", len(subject)) + subject.encode("utf-16-le")
    ext += struct.pack("<H", len(location)) + location.encode("utf-16-le")
    ext += struct.pack("<I", 0)
    blob = weekly_blob(
        info,
        count=1,
        deleted=[datetime(2025, 3, 10), datetime(2025, 3, 17)],
        modified=[datetime(2025, 3, 10)],
        extended=ext,
    )
    parsed = parse_appointment(blob)
    assert [e.subject for e in parsed.exceptions] == [subject]
    assert parsed.deleted_starts() == [datetime(2025, 3, 17, 10, 0)]
    body = FakeMessage(
        "IPM.OLE.CLASS.{00061055-0000-0000-C000-000000000046}",
        {
            0x1000: "Agenda moved to the afternoon",
            (APPOINTMENT, 0x8228): datetime(2025, 3, 10, 17, 0, tzinfo=UTC),  # 10:00 PDT
        },
    )
    cal = icalendar.Calendar.from_ical(to_item(series(blob, [body])).raw)
    master, override = cal.walk("VEVENT")
    assert str(master["DTSTART"].params["TZID"]) == "America/Los_Angeles"
    assert master["RRULE"]["COUNT"] == [6] and master["RRULE"]["BYDAY"] == ["MO"]
    assert [d.dt.replace(tzinfo=None) for d in master["EXDATE"].dts] == [datetime(2025, 3, 17, 10)]
    assert override["RECURRENCE-ID"].dt.replace(tzinfo=None) == datetime(2025, 3, 10, 10)
    assert override["DTSTART"].dt.replace(tzinfo=None) == moved
    assert str(override["SUMMARY"]) == subject and str(override["LOCATION"]) == location
    assert str(override["DESCRIPTION"]) == "Agenda moved to the afternoon"
    assert str(master["LOCATION"]) == "Room 1" and "DESCRIPTION" not in master


def test_damaged_blob_is_an_error_of_the_item() -> None:
    blob = weekly_blob()[:30]
    with pytest.raises(RecurBlobError, match="ends inside"):
        parse_appointment(blob)
    with pytest.raises(OutlookError, match="ends inside"):
        to_item(series(blob))


def test_task() -> None:
    task = FakeMessage(
        "IPM.Task",
        {
            0x0037: "Write the report",
            0x0017: 2,  # PidTagImportance high
            0x3008: datetime(2025, 2, 1, tzinfo=UTC),
            0x300B: bytes(range(16)),
            (TASK, 0x8104): datetime(2025, 3, 3, tzinfo=UTC),  # local dates
            (TASK, 0x8105): datetime(2025, 3, 7, tzinfo=UTC),
            (TASK, 0x8101): 1,  # in progress
            (TASK, 0x8102): 0.25,
            ("Keywords",): None,
        },
    )
    cal = icalendar.Calendar.from_ical(to_item(task).raw)
    todo = cal.walk("VTODO")[0]
    assert str(todo["UID"]) == "pst-000102030405060708090a0b0c0d0e0f"
    assert str(todo["SUMMARY"]) == "Write the report"
    assert todo["DUE"].to_ical() == b"20250307" and todo["DTSTART"].to_ical() == b"20250303"
    assert todo["PRIORITY"] == 1
    assert (str(todo["STATUS"]), str(todo["PERCENT-COMPLETE"])) == ("IN-PROCESS", "25")
    task.props[(TASK, 0x811C)] = True
    task.props[(TASK, 0x810F)] = datetime(2025, 3, 5, 12, tzinfo=UTC)
    done = icalendar.Calendar.from_ical(to_item(task).raw).walk("VTODO")[0]
    assert str(done["STATUS"]) == "COMPLETED" and str(done["PERCENT-COMPLETE"]) == "100"
    assert done["COMPLETED"].dt == datetime(2025, 3, 5, 12, tzinfo=UTC)
