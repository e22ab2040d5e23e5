"""To Do records (``ToDoDB``, creator ``todo``), both ways, losslessly.

Layout (big-endian; pilot-link's todo.c, Palm::ToDo): the due date (2 bytes,
as in the Datebook: year-1904, month, day; 0xFFFF for none), one byte whose
high bit says "completed" and whose low 7 bits are the priority (1 highest
.. 5 lowest), then the description and the note, each NUL-terminated (an
empty note is a lone NUL).

Rules: as in ``datebook``: text stays bytes, and whatever follows the note
is kept, so ``encode(decode(data)) == data`` for every well-formed record.
"""

from __future__ import annotations

import struct
from datetime import date

from calsync.plain import Plain
from calsync.stores.palm.datebook import NO_DATE, RecordError, pack_date, unpack_date

COMPLETED = 0x80


class ToDo(Plain):
    __slots__ = ("completed", "description", "due", "note", "priority", "tail")
    due: date | None
    priority: int
    completed: bool
    description: bytes
    note: bytes
    tail: bytes | None  # after the note; None: the record ends without a note at all

    def __init__(
        self,
        description: bytes,
        *,
        due: date | None = None,
        priority: int = 1,
        completed: bool = False,
        note: bytes = b"",
        tail: bytes | None = b"",
    ) -> None:
        self.description = description
        self.due = due
        self.priority = priority
        self.completed = completed
        self.note = note
        self.tail = tail


def decode(data: bytes) -> ToDo:
    if len(data) < 4:
        raise RecordError(f"{len(data)} bytes: too short for a to-do")
    raw_due, prio = struct.unpack_from(">HB", data)
    end = data.find(b"\0", 3)
    if end < 0:
        raise RecordError("the description is not NUL-terminated")
    description = data[3:end]
    pos = end + 1
    note = b""
    tail: bytes | None = None
    if pos < len(data):
        end = data.find(b"\0", pos)
        if end < 0:
            raise RecordError("the note is not NUL-terminated")
        note, tail = data[pos:end], data[end + 1 :]
    return ToDo(
        description,
        due=None if raw_due == NO_DATE else unpack_date(raw_due),
        priority=prio & 0x7F,
        completed=bool(prio & COMPLETED),
        note=note,
        tail=tail,
    )


def encode(todo: ToDo) -> bytes:
    for text in (todo.description, todo.note):
        if b"\0" in text:
            raise RecordError("a text field holds a NUL character")
    due = pack_date(todo.due) if todo.due is not None else NO_DATE
    prio = (todo.priority & 0x7F) | (COMPLETED if todo.completed else 0)
    head = struct.pack(">HB", due, prio) + todo.description + b"\0"
    if todo.tail is None and not todo.note:
        return head
    return head + todo.note + b"\0" + (todo.tail or b"")
