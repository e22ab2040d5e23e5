"""A .pst / .ost file through libpff: folders, messages and their MAPI properties.

libpff (PyPI ``libpff-python``, module ``pypff``) reads the file format (the
NDB and LTP layers of MS-PST, compression, encryption, .ost's 4k pages) and
gives each message's property rows as (tag id, type, bytes).  What it does
not give from Python is the meaning of the named properties (tags 0x8000 and
up, where every appointment and task field lives): the file's name-to-id map
says which (property set GUID, LID or name) each such tag stands for, and its
streams are read here (MS-PST 2.4.7; 8-byte NAMEID entries: dwPropertyID,
wGuid = GUID index << 1 | string flag, wPropIdx = tag - 0x8000).

Rules:
- properties are read by tag (``Message.get(0x0037)``) or by named property
  (``Message.get(APPOINTMENT, 0x820D)``); values are decoded by their MAPI
  type (strings, integers, booleans, FILETIMEs as UTC datetimes, binaries as
  bytes, multi-valued strings as lists);
- libpff is optional (the ``pst`` extra): ``open_pst`` raises ``PstError``
  naming the extra when it is missing, and every failure of the file is a
  ``PstError`` naming it (never a libpff exception escaping to the caller).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# property sets (MS-OXPROPS 1.3.2)
APPOINTMENT = uuid.UUID("00062002-0000-0000-c000-000000000046")
TASK = uuid.UUID("00062003-0000-0000-c000-000000000046")
COMMON = uuid.UUID("00062008-0000-0000-c000-000000000046")
MEETING = uuid.UUID("6ed8da90-450b-101b-98da-00aa003f1305")
PUBLIC_STRINGS = uuid.UUID("00020329-0000-0000-c000-000000000046")
PS_MAPI = uuid.UUID("00020328-0000-0000-c000-000000000046")

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_NAMEID = struct.Struct("<IHH")
# MAPI property types (MS-OXCDATA 2.11.1)
_PT_SHORT, _PT_LONG, _PT_BOOLEAN, _PT_I8 = 0x0002, 0x0003, 0x000B, 0x0014
_PT_DOUBLE, _PT_STRING8, _PT_UNICODE, _PT_SYSTIME, _PT_BINARY = (
    0x0005,
    0x001E,
    0x001F,
    0x0040,
    0x0102,
)
_PT_MV_STRING8, _PT_MV_UNICODE = 0x101E, 0x101F

INSTALL_HINT = "pip install 'calsync[pst]'"


class PstError(Exception):
    """The file cannot be read (missing libpff, not a PST, damaged)."""


def filetime(value: int) -> datetime | None:
    """A FILETIME (100 ns since 1601, UTC) as a datetime; None for 0 and the
    "no date" values Outlook writes (year 4501 and later)."""
    if value <= 0:
        return None
    moment = _FILETIME_EPOCH + timedelta(microseconds=value // 10)
    return None if moment.year >= 4500 else moment


@dataclass(frozen=True)
class Named:
    """A named property: its property set and LID (or string name)."""

    guid: uuid.UUID
    key: int | str


def _pypff() -> Any:
    try:
        import pypff
    except ImportError:
        raise PstError(
            f"reading .pst/.ost files needs libpff-python, calsync's 'pst' extra: {INSTALL_HINT}"
        ) from None
    return pypff


def is_pst(data: bytes) -> bool:
    """Whether ``data`` (the file's first bytes) starts a PST/OST file."""
    return data[:4] == b"!BDN"


class Message:
    """One message's properties (the top-level record set), decoded lazily."""

    def __init__(self, pst: PstFile, raw: Any, folder: str) -> None:
        self.pst = pst
        self.raw = raw
        self.folder = folder
        self.identifier = str(raw.identifier)
        self._props: dict[int, Any] | None = None

    @property
    def props(self) -> dict[int, Any]:
        if self._props is None:
            self._props = self.pst.record_props(self.raw)
        return self._props

    def get(self, key: int | uuid.UUID, lid: int | str | None = None) -> Any:
        """The value of tag ``key``, or of the named property (``key``, ``lid``)."""
        if isinstance(key, uuid.UUID):
            assert lid is not None
            tag = self.pst.tag_of(Named(key, lid))
            return None if tag is None else self.props.get(tag)
        return self.props.get(key)

    @property
    def message_class(self) -> str:
        return str(self.get(0x001A) or "")

    def recipients(self) -> list[dict[int, Any]]:
        """Each recipient row's properties (the recipients table)."""
        table = self.raw.recipients
        if table is None:
            return []
        rows: list[dict[int, Any]] = []
        for i in range(table.number_of_record_sets):
            rows.append(self.pst.decode_set(table.get_record_set(i)))
        return rows

    def embedded_messages(self) -> Iterator[Message]:
        """The messages attached to this one (an appointment's exceptions)."""
        for i in range(self.raw.number_of_attachments):
            try:
                att = self.raw.get_attachment(i)
                sub = att.get_sub_item(0) if att.number_of_sub_items else None
            except OSError:
                continue
            if sub is not None and hasattr(sub, "number_of_record_sets"):
                yield Message(self.pst, sub, self.folder)


class PstFile:
    """An open .pst/.ost file (``open_pst``); ``close`` it when done."""

    def __init__(self, path: Path) -> None:
        pypff = _pypff()
        self.path = path
        self._file = pypff.file()
        try:
            self._file.open(str(path))
        except OSError as e:
            raise PstError(f"{path}: not a readable .pst/.ost file ({e})") from None
        self._tags: dict[Named, int] = self._read_name_map()

    def close(self) -> None:
        self._file.close()

    # -- named properties ---------------------------------------------------------------

    def _read_name_map(self) -> dict[Named, int]:
        item = self._file.name_to_id_map
        if item is None or not item.number_of_record_sets:
            return {}
        streams = {e.entry_type: e.data or b"" for e in item.get_record_set(0).entries}
        guids, entries, strings = streams.get(2, b""), streams.get(3, b""), streams.get(4, b"")
        out: dict[Named, int] = {}
        for offset in range(0, len(entries) - len(entries) % 8, 8):
            prop_id, wguid, index = _NAMEID.unpack_from(entries, offset)
            guid_index = wguid >> 1
            if guid_index == 1:
                guid = PS_MAPI
            elif guid_index == 2:
                guid = PUBLIC_STRINGS
            else:
                start = (guid_index - 3) * 16
                if guid_index < 3 or start + 16 > len(guids):
                    continue
                guid = uuid.UUID(bytes_le=guids[start : start + 16])
            key: int | str = prop_id
            if wguid & 1:
                if prop_id + 4 > len(strings):
                    continue
                (size,) = struct.unpack_from("<I", strings, prop_id)
                key = strings[prop_id + 4 : prop_id + 4 + size].decode("utf-16-le", "replace")
            out[Named(guid, key)] = 0x8000 + index
        return out

    def tag_of(self, name: Named) -> int | None:
        return self._tags.get(name)

    # -- values ---------------------------------------------------------------------------

    def record_props(self, raw: Any) -> dict[int, Any]:
        if not raw.number_of_record_sets:
            return {}
        return self.decode_set(raw.get_record_set(0))

    def decode_set(self, record_set: Any) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for entry in record_set.entries:
            try:
                out[entry.entry_type] = _decode(entry.value_type, entry.data)
            except (ValueError, struct.error, UnicodeDecodeError):
                continue  # a value we cannot decode is as absent
        return out

    # -- folders ----------------------------------------------------------------------------

    def folders(self) -> Iterator[tuple[str, str, Any]]:
        """(path, container class, folder) of every folder, depth first."""

        def walk(folder: Any, path: str) -> Iterator[tuple[str, str, Any]]:
            for i in range(folder.number_of_sub_folders):
                try:
                    sub = folder.get_sub_folder(i)
                    name = sub.name or ""
                    props = self.record_props(sub)
                except OSError:
                    continue
                sub_path = f"{path}/{name}" if path else name
                yield sub_path, str(props.get(0x3613) or ""), sub
                yield from walk(sub, sub_path)

        try:
            root = self._file.get_root_folder()
        except OSError as e:
            raise PstError(f"{self.path}: cannot read its folders ({e})") from None
        yield from walk(root, "")

    def messages(self, folder: Any, path: str) -> Iterator[Message | PstError]:
        for i in range(folder.number_of_sub_messages):
            try:
                yield Message(self, folder.get_sub_message(i), path)
            except OSError as e:
                yield PstError(f"{self.path}: {path}: message {i} cannot be read ({e})")


def open_pst(path: Path) -> PstFile:
    return PstFile(path)


def _decode(kind: int, data: bytes | None) -> Any:
    if data is None:
        return None
    if kind == _PT_UNICODE:
        return data.decode("utf-16-le").rstrip("\x00")
    if kind == _PT_STRING8:
        return data.decode("cp1252", "replace").rstrip("\x00")
    if kind == _PT_LONG:
        return struct.unpack("<i", data[:4])[0]
    if kind == _PT_SHORT:
        return struct.unpack("<h", data[:2])[0]
    if kind == _PT_BOOLEAN:
        return data[:1] not in (b"", b"\x00")
    if kind == _PT_I8:
        return struct.unpack("<q", data[:8])[0]
    if kind == _PT_DOUBLE:
        return struct.unpack("<d", data[:8])[0]
    if kind == _PT_SYSTIME:
        return filetime(struct.unpack("<q", data[:8])[0])
    if kind in (_PT_MV_UNICODE, _PT_MV_STRING8):
        return _multi_strings(data, kind == _PT_MV_UNICODE)
    return bytes(data)


def _multi_strings(data: bytes, wide: bool) -> list[str]:
    """A multi-valued string (MS-PST 2.3.3.4.2): count, offsets, then the strings."""
    if len(data) < 4:
        return []
    (count,) = struct.unpack_from("<I", data)
    offsets = [*struct.unpack_from(f"<{count}I", data, 4), len(data)]
    encoding = "utf-16-le" if wide else "cp1252"
    return [data[offsets[i] : offsets[i + 1]].decode(encoding).rstrip("\x00") for i in range(count)]
