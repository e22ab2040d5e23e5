"""Datebook records (``DatebookDB``, creator ``date``) and Palm OS 5 Calendar
records (``CalendarDB-PDat``, creator ``PDat``), both ways, losslessly.

Layout (big-endian; pilot-link's datebook.c and calendar.c, Palm::Datebook):

====================  ==================================================
bytes                 meaning
====================  ==================================================
0-3                   start hour, minute, end hour, minute (all 0xFF:
                      an untimed event)
4-5                   date: year-1904 (7 bits), month (4), day (5)
6-7                   flags: 0x8000 "when" changed, 0x4000 alarm,
                      0x2000 repeat, 0x1000 note, 0x0800 exceptions,
                      0x0400 description, 0x0200 location (Calendar)
alarm (2)             advance (signed byte), unit: 0 minutes, 1 hours,
                      2 days
repeat (8)            type (1 daily, 2 weekly, 3 monthly by weekday,
                      4 monthly by date, 5 yearly), a reserved byte,
                      end date (0xFFFF: forever), frequency, "on" (weekly:
                      bit 0 Sunday .. bit 6 Saturday; monthly by weekday:
                      week * 7 + weekday, week 4 meaning the last), start
                      of week (0 Sunday, 1 Monday), a reserved byte
exceptions            count, then that many dates
strings               description, note, location: NUL-terminated, in
                      that order, each only if its flag is set
blobs (Calendar)      4-byte type, 2-byte length, data; ``Bd00`` is the
                      event's own time zone (see ``pdat``)
====================  ==================================================

Rules: text stays bytes here (the device's character set is the store's
business); flag bits this module does not know, reserved bytes, and whatever
follows the strings are kept, so ``encode(decode(data)) == data`` for every
well-formed record.
"""

from __future__ import annotations

import struct
from datetime import date

from calsync.plain import Plain

WHEN = 0x8000
ALARM = 0x4000
REPEAT = 0x2000
NOTE = 0x1000
EXCEPTIONS = 0x0800
DESCRIPTION = 0x0400
LOCATION = 0x0200  # Calendar (PDat) only

UNTIMED = 0xFF
NO_DATE = 0xFFFF

DAILY, WEEKLY, MONTHLY_BY_DAY, MONTHLY_BY_DATE, YEARLY = 1, 2, 3, 4, 5
MINUTES, HOURS, DAYS = 0, 1, 2
LAST_WEEK = 4


class RecordError(ValueError):
    """Record bytes that do not follow the layout."""


def unpack_date(value: int) -> date:
    try:
        return date((value >> 9) + 1904, (value >> 5) & 0x0F, value & 0x1F)
    except ValueError:
        raise RecordError(f"not a date: 0x{value:04x}") from None


def pack_date(value: date) -> int:
    if not 1904 <= value.year <= 1904 + 127:
        raise RecordError(f"{value.isoformat()}: a Palm stores years 1904-2031 only")
    return ((value.year - 1904) << 9) | (value.month << 5) | value.day


def unpack_at(fmt: str, data: bytes, pos: int, what: str) -> tuple[int, ...]:
    """``struct.unpack_from`` that names the field a short record cuts off."""
    if pos + struct.calcsize(fmt) > len(data):
        raise RecordError(f"the {what} is cut short")
    return tuple(struct.unpack_from(fmt, data, pos))


def read_text(data: bytes, pos: int) -> tuple[bytes, int]:
    """The NUL-terminated text at ``pos``, and where the next field starts."""
    end = data.find(b"\0", pos)
    if end < 0:
        raise RecordError("a text field is not NUL-terminated")
    return data[pos:end], end + 1


class Repeat(Plain):
    __slots__ = ("end", "frequency", "kind", "on", "reserved", "reserved2", "week_start")
    kind: int
    end: date | None
    frequency: int
    on: int
    week_start: int
    reserved: int
    reserved2: int

    def __init__(
        self,
        kind: int,
        end: date | None,
        frequency: int,
        on: int = 0,
        week_start: int = 0,
        reserved: int = 0,
        reserved2: int = 0,
    ) -> None:
        self.kind = kind
        self.end = end
        self.frequency = frequency
        self.on = on
        self.week_start = week_start
        self.reserved = reserved
        self.reserved2 = reserved2

    def pack(self) -> bytes:
        end = pack_date(self.end) if self.end is not None else NO_DATE
        return struct.pack(
            ">BBHBBBB",
            self.kind,
            self.reserved,
            end,
            self.frequency,
            self.on,
            self.week_start,
            self.reserved2,
        )


def unpack_repeat(data: bytes, pos: int) -> Repeat:
    fields = unpack_at(">BBHBBBB", data, pos, "repeat information")
    kind, reserved, end, freq, on, week_start, reserved2 = fields
    return Repeat(
        kind,
        None if end == NO_DATE else unpack_date(end),
        freq,
        on,
        week_start,
        reserved,
        reserved2,
    )


class Appointment(Plain):
    """One Datebook or Calendar record (see module docstring)."""

    __slots__ = (
        "alarm",
        "day",
        "description",
        "end",
        "exceptions",
        "flags",
        "location",
        "note",
        "repeat",
        "start",
        "tail",
    )
    day: date
    start: tuple[int, int] | None  # None: untimed
    end: tuple[int, int] | None
    flags: int  # the bits this module does not interpret (WHEN and unknown ones)
    alarm: tuple[int, int] | None  # (advance, unit)
    repeat: Repeat | None
    exceptions: list[date]
    description: bytes | None
    note: bytes | None
    location: bytes | None
    tail: bytes  # what follows the strings (Calendar blobs)

    def __init__(
        self,
        day: date,
        start: tuple[int, int] | None = None,
        end: tuple[int, int] | None = None,
        *,
        flags: int = 0,
        alarm: tuple[int, int] | None = None,
        repeat: Repeat | None = None,
        exceptions: list[date] | None = None,
        description: bytes | None = None,
        note: bytes | None = None,
        location: bytes | None = None,
        tail: bytes = b"",
    ) -> None:
        self.day = day
        self.start = start
        self.end = end
        self.flags = flags
        self.alarm = alarm
        self.repeat = repeat
        self.exceptions = exceptions if exceptions is not None else []
        self.description = description
        self.note = note
        self.location = location
        self.tail = tail


_KNOWN = ALARM | REPEAT | NOTE | EXCEPTIONS | DESCRIPTION


def decode(data: bytes, *, calendar: bool) -> Appointment:
    """``calendar``: a Calendar (PDat) record, which may have a location and blobs."""
    if len(data) < 8:
        raise RecordError(f"{len(data)} bytes: too short for an appointment")
    sh, sm, eh, em, raw_day, flags = struct.unpack_from(">BBBBHH", data)
    known = _KNOWN | (LOCATION if calendar else 0)
    appt = Appointment(unpack_date(raw_day), flags=flags & ~known)
    if (sh, sm) == (UNTIMED, UNTIMED):
        appt.start = appt.end = None
        if (eh, em) != (UNTIMED, UNTIMED):
            raise RecordError("an untimed appointment with an end time")
    else:
        if sh > 23 or sm > 59 or eh > 23 or em > 59:
            raise RecordError(f"not a time of day: {sh}:{sm} - {eh}:{em}")
        appt.start, appt.end = (sh, sm), (eh, em)
    pos = 8
    if flags & ALARM:
        advance, unit = unpack_at(">bB", data, pos, "alarm")
        appt.alarm = (advance, unit)
        pos += 2
    if flags & REPEAT:
        appt.repeat = unpack_repeat(data, pos)
        pos += 8
    if flags & EXCEPTIONS:
        (count,) = unpack_at(">H", data, pos, "exception count")
        pos += 2
        if pos + 2 * count > len(data):
            raise RecordError(f"{count} exceptions announced, fewer stored")
        appt.exceptions = [
            unpack_date(struct.unpack_from(">H", data, pos + 2 * i)[0]) for i in range(count)
        ]
        pos += 2 * count
    strings: list[bytes | None] = []
    for flag in (DESCRIPTION, NOTE, LOCATION):
        if not flags & flag or (flag == LOCATION and not calendar):
            strings.append(None)
            continue
        text, pos = read_text(data, pos)
        strings.append(text)
    appt.description, appt.note, appt.location = strings
    appt.tail = data[pos:]
    return appt


def encode(appt: Appointment, *, calendar: bool) -> bytes:
    flags = appt.flags
    out = bytearray()
    if appt.alarm is not None:
        flags |= ALARM
        out += struct.pack(">bB", *appt.alarm)
    if appt.repeat is not None:
        flags |= REPEAT
        out += appt.repeat.pack()
    if appt.exceptions:
        flags |= EXCEPTIONS
        out += struct.pack(">H", len(appt.exceptions))
        for d in appt.exceptions:
            out += struct.pack(">H", pack_date(d))
    for flag, text in (
        (DESCRIPTION, appt.description),
        (NOTE, appt.note),
        (LOCATION, appt.location if calendar else None),
    ):
        if text is not None:
            if b"\0" in text:
                raise RecordError("a text field holds a NUL character")
            flags |= flag
            out += text + b"\0"
    out += appt.tail
    if appt.start is None or appt.end is None:
        head = bytes([UNTIMED] * 4)
    else:
        head = bytes([*appt.start, *appt.end])
    return head + struct.pack(">HH", pack_date(appt.day), flags & 0xFFFF) + bytes(out)
