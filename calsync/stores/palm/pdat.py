"""What a Palm OS 5 Calendar record (``CalendarDB-PDat``) adds to a Datebook one.

A Calendar record is a Datebook record (``datebook``) with flag ``0x0200``
and a location string after the note, followed by *blobs*: a 4-character
type, a 2-byte length and that many bytes each (pilot-link's calendar.c and
blob.c; Palm::Datebook).  Blobs are how the Calendar and other applications
attach data of their own to an event: ``Bd00`` holds the event's own time
zone (a UTC offset in minutes, daylight-saving rules, a country code and a
name such as "London").

Rules: calsync keeps every blob of a record it rewrites, in order, so what
another application attached survives a sync; it reads the time zone blob's
name and offset for the record's description of itself but does not move the
event by it (times are read in the store's ``timezone``, see the README).
"""

from __future__ import annotations

import struct

from calsync.plain import Plain
from calsync.stores.palm.datebook import RecordError

TIMEZONE = b"Bd00"


class Blob(Plain):
    __slots__ = ("data", "type")
    type: bytes
    data: bytes

    def __init__(self, type: bytes, data: bytes) -> None:
        self.type = type
        self.data = data


def split_blobs(tail: bytes) -> list[Blob]:
    """The blobs a Calendar record carries after its strings."""
    blobs = []
    pos = 0
    while pos < len(tail):
        if pos + 6 > len(tail):
            raise RecordError(f"{len(tail) - pos} stray bytes after the blobs")
        kind = tail[pos : pos + 4]
        (size,) = struct.unpack_from(">H", tail, pos + 4)
        if pos + 6 + size > len(tail):
            raise RecordError(f"blob {kind!r} announces {size} bytes, fewer stored")
        blobs.append(Blob(kind, tail[pos + 6 : pos + 6 + size]))
        pos += 6 + size
    return blobs


def join_blobs(blobs: list[Blob]) -> bytes:
    return b"".join(b.type + struct.pack(">H", len(b.data)) + b.data for b in blobs)


def timezone_of(blobs: list[Blob]) -> tuple[int, bytes] | None:
    """(UTC offset in minutes, name) of a ``Bd00`` blob, if there is one."""
    for blob in blobs:
        if blob.type == TIMEZONE and len(blob.data) >= 14:
            (offset,) = struct.unpack_from(">h", blob.data)
            return offset, blob.data[14:].split(b"\0", 1)[0]
    return None
