"""The Palm database container (``.pdb``): header, record list, AppInfo, records.

Layout (all integers big-endian; Palm OS Reference "Palm File Format
Specification", as read by Palm::PDB and pilot-link's pi-file.c):

- a 78-byte header: name (32 bytes, NUL-terminated), attributes, version,
  creation / modification / backup dates (seconds since 1904-01-01),
  modification number, AppInfo and SortInfo offsets (0: none), type and
  creator (4 characters each: ``DATA``/``date`` for the Datebook), the unique
  id seed, the next record list id (0), and the number of records;
- one 8-byte entry per record: offset of its data, one attribute byte, and
  its 24-bit unique id;
- two bytes of padding, the AppInfo block (categories first), the SortInfo
  block, then the records' data in order.  A record's data ends where the
  next one's starts (the last one's at the end of the file).

Record attributes: ``0x80`` delete (the Palm deleted it; Palm OS), ``0x40``
dirty (changed since the last sync), ``0x20`` busy on the device, which
Palm::PDB reads and writes as its "deleted" flag, so a record with either
bit is taken as deleted; ``0x10`` secret (private).  The low four bits are
the category index, or, on a deleted record, ``0x08`` archive (the user asked
for a copy on the desktop).

Rules: ``parse`` keeps every block it does not understand as bytes and
``render`` writes them back unchanged, so a rewrite changes only the records
it was told to change (their index entries and data) and the header fields
that must follow (offsets, record count, unique id seed, modification number
and date).  Why hand-written: no maintained Python library reads or writes
the format (the Perl modules and pilot-link are the references).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

from calsync.plain import Plain

HEADER = struct.Struct(">32sHHIIIIII4s4sIIH")
ENTRY = struct.Struct(">IB3s")
EPOCH_1904 = 2082844800  # seconds from 1904-01-01 to 1970-01-01

DELETE = 0x80
DIRTY = 0x40
BUSY = 0x20  # Palm::PDB's "deleted"
SECRET = 0x10
ARCHIVE = 0x08
CATEGORY = 0x0F
DELETED = DELETE | BUSY
MAX_UNIQUE_ID = 0xFFFFFF

CATEGORIES = 16
CATEGORY_NAME = 16
STD_APPINFO = 2 + CATEGORIES * CATEGORY_NAME + CATEGORIES + 2  # 276 bytes


class PdbError(ValueError):
    """Bytes that are not a Palm record database."""


class Record(Plain):
    """One record: its attribute byte, unique id and data, as in the file."""

    __slots__ = ("attrs", "data", "uid")
    attrs: int
    uid: int
    data: bytes

    def __init__(self, attrs: int, uid: int, data: bytes) -> None:
        self.attrs = attrs
        self.uid = uid
        self.data = data

    @property
    def deleted(self) -> bool:
        return bool(self.attrs & DELETED)

    @property
    def archived(self) -> bool:
        return self.deleted and bool(self.attrs & ARCHIVE)

    @property
    def dirty(self) -> bool:
        return bool(self.attrs & DIRTY)

    @property
    def secret(self) -> bool:
        return bool(self.attrs & SECRET)

    @property
    def category(self) -> int:
        return 0 if self.deleted else self.attrs & CATEGORY

    def key(self) -> bytes:
        """What a record is, without the sync bookkeeping (dirty, busy) bits:
        clearing the dirty flag after a sync does not change it."""
        return (
            bytes([self.attrs & ~(DIRTY | BUSY) & 0xFF]) + self.uid.to_bytes(3, "big") + self.data
        )


class Database(Plain):
    """A parsed ``.pdb`` file (see module docstring)."""

    __slots__ = ("appinfo", "header", "records", "sortinfo")
    header: bytes  # the 78 header bytes as read
    appinfo: bytes
    sortinfo: bytes
    records: list[Record]

    def __init__(
        self, header: bytes, appinfo: bytes, sortinfo: bytes, records: list[Record]
    ) -> None:
        self.header = header
        self.appinfo = appinfo
        self.sortinfo = sortinfo
        self.records = records

    @property
    def name(self) -> str:
        return self.header[:32].split(b"\0", 1)[0].decode("latin-1")

    @property
    def type(self) -> bytes:
        return HEADER.unpack(self.header)[9]

    @property
    def creator(self) -> bytes:
        return HEADER.unpack(self.header)[10]

    @property
    def created(self) -> int:
        """Creation date, seconds since 1904 (0 if unknown)."""
        return int(HEADER.unpack(self.header)[3])

    @property
    def modified(self) -> int:
        return int(HEADER.unpack(self.header)[4])

    def categories(self, encoding: str) -> list[str]:
        """The 16 category names of the standard AppInfo block ("" for unused)."""
        if len(self.appinfo) < STD_APPINFO:
            return [""] * CATEGORIES
        names = []
        for i in range(CATEGORIES):
            start = 2 + i * CATEGORY_NAME
            raw = self.appinfo[start : start + CATEGORY_NAME].split(b"\0", 1)[0]
            names.append(raw.decode(encoding, errors="replace"))
        return names

    def next_uid(self) -> int:
        """A unique id no record has, from the header's seed (as Palm OS does)."""
        seed = HEADER.unpack(self.header)[11] & MAX_UNIQUE_ID
        used = {r.uid for r in self.records}
        candidate = max([seed, *(u + 1 for u in used)]) if used else max(seed, 1)
        if candidate > MAX_UNIQUE_ID:  # wrapped: take the first free one
            candidate = next(u for u in range(1, MAX_UNIQUE_ID + 1) if u not in used)
        return candidate


def parse(data: bytes) -> Database:
    if len(data) < HEADER.size:
        raise PdbError(f"{len(data)} bytes: too short for a Palm database header")
    fields = HEADER.unpack_from(data)
    name, attrs = fields[0], fields[1]
    appinfo_at, sortinfo_at, count = fields[7], fields[8], fields[13]
    if b"\0" not in name:
        raise PdbError("the database name is not NUL-terminated: not a Palm database")
    if attrs & 0x0001:
        raise PdbError("a resource database (.prc), not a record database")
    index_end = HEADER.size + count * ENTRY.size
    if index_end > len(data):
        raise PdbError(f"the header announces {count} records; the file is too short for them")
    entries = [ENTRY.unpack_from(data, HEADER.size + i * ENTRY.size) for i in range(count)]
    offsets = [e[0] for e in entries]
    for off in offsets:
        if off > len(data) or off < index_end:
            raise PdbError(f"a record offset ({off}) lies outside the data area")
    first_record = min(offsets) if offsets else len(data)
    for name_, at in (("AppInfo", appinfo_at), ("SortInfo", sortinfo_at)):
        if at and (at < index_end or at > first_record):
            raise PdbError(f"the {name_} offset ({at}) lies outside the block area")
    appinfo = b""
    if appinfo_at:
        appinfo = data[appinfo_at : sortinfo_at or first_record]
    sortinfo = data[sortinfo_at:first_record] if sortinfo_at else b""
    records = []
    for i, (off, rattrs, uid) in enumerate(entries):
        end = offsets[i + 1] if i + 1 < count and offsets[i + 1] >= off else len(data)
        records.append(Record(rattrs, int.from_bytes(uid, "big"), data[off:end]))
    return Database(bytes(data[: HEADER.size]), appinfo, sortinfo, records)


def render(db: Database, *, seed: int | None = None, now: float | None = None) -> bytes:
    """The file for ``db``: its blocks and records as they are, the header's
    offsets, count, seed, modification number and date brought up to date."""
    fields = list(HEADER.unpack(db.header))
    count = len(db.records)
    blocks_at = HEADER.size + count * ENTRY.size + 2
    appinfo_at = blocks_at if db.appinfo else 0
    sortinfo_at = blocks_at + len(db.appinfo) if db.sortinfo else 0
    fields[4] = int(now if now is not None else time.time()) + EPOCH_1904
    fields[6] = (fields[6] + 1) & 0xFFFFFFFF  # modification number
    fields[7], fields[8] = appinfo_at, sortinfo_at
    if seed is not None:
        fields[11] = seed
    fields[12] = 0
    fields[13] = count
    out = [HEADER.pack(*fields)]
    offset = blocks_at + len(db.appinfo) + len(db.sortinfo)
    for rec in db.records:
        out.append(ENTRY.pack(offset, rec.attrs, rec.uid.to_bytes(3, "big")))
        offset += len(rec.data)
    out += [b"\0\0", db.appinfo, db.sortinfo]
    out += [rec.data for rec in db.records]
    return b"".join(out)


def new_database(
    name: str, creator: bytes, appinfo: bytes, *, now: float | None = None
) -> Database:
    """An empty record database (``DATA`` type) with this AppInfo block."""
    stamp = int(now if now is not None else time.time()) + EPOCH_1904
    header = HEADER.pack(
        name.encode("latin-1")[:31], 0x0008, 0, stamp, stamp, 0, 0, 0, 0, b"DATA", creator, 0, 0, 0
    )  # 0x0008: the backup bit, as the Palm sets it for its own databases
    return Database(header, appinfo, b"", [])


def standard_appinfo(names: Iterable[str], encoding: str, extra: bytes) -> bytes:
    """A standard category AppInfo block (names, ids 0..n) followed by ``extra``."""
    labels = list(names)[:CATEGORIES]
    labels += [""] * (CATEGORIES - len(labels))
    out = bytearray(struct.pack(">H", 0))
    for label in labels:
        out += label.encode(encoding, errors="replace")[: CATEGORY_NAME - 1].ljust(
            CATEGORY_NAME, b"\0"
        )
    used = [i if labels[i] else 0 for i in range(CATEGORIES)]
    out += bytes(used)
    out += bytes([max(used), 0])
    return bytes(out) + extra
