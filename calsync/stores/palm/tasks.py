"""Palm OS 5 Tasks records (``TasksDB-PTod``, creator ``PTod``): read only.

palmOne never published this layout the way the classic ones were (no
libpalm-perl or pilot-link reader exists); it is pinned down here from two
public reverse-engineered readers that agree on it (Eugene Andrienko's
``pdb/tasks.c`` and a Palm OS date-shifting tool's ``convert.c``, which cites
the palmOne PIM SDK's ``ToDoDB.h``).  Big-endian:

=====================  ====================================================
bytes                  meaning
=====================  ====================================================
0-1                    data flags: 0x8000 due date, 0x4000 completion date,
                       0x2000 alarm, 0x1000 repeat, 0x0800 description,
                       0x0400 note
2-3                    record flags (not interpreted; kept)
4-5                    priority (1 highest .. 5 lowest)
due (2)                a Datebook date
completion (2)         the date the task was completed: present = completed
alarm (4)              time of day (hour, minute), days before the due date
repeat (10)            the first due date, then the Datebook's 8-byte repeat
                       information (type, end date, frequency, "on"...)
strings                description, note: NUL-terminated, each if flagged
=====================  ====================================================

Rules: calsync reads Tasks databases and never writes them: which record
flag bits a Tasks application sets when a task is completed, and which blobs
it expects, is not documented, and a wrong guess would damage a device's
data.  Items meant for a Tasks-only folder are refused with that reason.
"""

from __future__ import annotations

import struct
from datetime import date

from calsync.plain import Plain
from calsync.stores.palm.datebook import (
    RecordError,
    Repeat,
    read_text,
    unpack_at,
    unpack_date,
    unpack_repeat,
)

DUE = 0x8000
COMPLETION = 0x4000
ALARM = 0x2000
REPEAT = 0x1000
DESCRIPTION = 0x0800
NOTE = 0x0400


class Task(Plain):
    __slots__ = (
        "alarm",
        "completed_on",
        "description",
        "due",
        "note",
        "priority",
        "record_flags",
        "repeat",
        "repeat_start",
    )
    due: date | None
    completed_on: date | None
    priority: int
    record_flags: int
    alarm: tuple[int, int, int] | None  # hour, minute, days before due
    repeat_start: date | None
    repeat: Repeat | None
    description: bytes
    note: bytes

    def __init__(self) -> None:
        self.due = None
        self.completed_on = None
        self.priority = 1
        self.record_flags = 0
        self.alarm = None
        self.repeat_start = None
        self.repeat = None
        self.description = b""
        self.note = b""


def _date(data: bytes, pos: int) -> date:
    return unpack_date(unpack_at(">H", data, pos, "date")[0])


def decode(data: bytes) -> Task:
    if len(data) < 6:
        raise RecordError(f"{len(data)} bytes: too short for a task")
    flags, record_flags, priority = struct.unpack_from(">HHH", data)
    task = Task()
    task.record_flags = record_flags
    task.priority = priority & 0xFF
    pos = 6
    if flags & DUE:
        task.due = _date(data, pos)
        pos += 2
    if flags & COMPLETION:
        task.completed_on = _date(data, pos)
        pos += 2
    if flags & ALARM:
        hour, minute, days = unpack_at(">BBH", data, pos, "alarm")
        if hour > 23 or minute > 59:
            raise RecordError(f"not a time of day: {hour}:{minute}")
        task.alarm = (hour, minute, days)
        pos += 4
    if flags & REPEAT:
        task.repeat_start = _date(data, pos)
        task.repeat = unpack_repeat(data, pos + 2)
        pos += 10
    if flags & DESCRIPTION:
        task.description, pos = read_text(data, pos)
    if flags & NOTE:
        task.note, pos = read_text(data, pos)
    return task
