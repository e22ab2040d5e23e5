"""vcs store: one ``.vcs`` file of vCalendar 1.0 entries (a phone's PC-suite export).

Like the ``ics`` store: the file is read once per sync and indexed by UID (an
entry without UID gets one derived from its content, written into the file the
first time calsync writes that entry); an item's version is a hash of the bytes
of its entries and of the TZ/DAYLIGHT lines of their calendars.  Items are
converted to iCalendar when read (``calsync.items.vcal``) and back when written.
Writes are buffered and the file is rewritten once, in ``flush``, atomically:
untouched entries stay byte for byte (a changed or new item is written as a
VCALENDAR of its own at the end; a calendar left without entries goes away), and
a file another program changed during the sync is not overwritten.  Entries
that cannot be read are listed as errors and kept in the file as they are.

What vCalendar 1.0 cannot say travels in X-CALSYNC-ICAL-* lines beside each
entry, but a phone's PC suite that rewrites the file drops them.  So the store
also keeps, in its cache dir, the iCalendar item it last wrote for each UID:
an entry still as written reads as that item exactly; an entry a device
rewrote is merged with it three-way (``calsync.items.vcal.reconcile``): the
device's edits win, what it could not show (a COMMENT, a rule it cannot
express, an alarm's extras, a TZID's spelling) stays.

The machinery of one-file stores (read once per sync, buffered writes, one
atomic rewrite, never clobbering another program's change, a cache that skips
parsing an unchanged file) is shared with the ``ics`` store in ``_single``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import ClassVar

from calsync.items import Item, ItemError
from calsync.items.canonical import version_hash
from calsync.items.vcal import item_to_vcal
from calsync.items.vcal.reconcile import reconcile
from calsync.items.vcal.to_ical import Converted, Span, convert
from calsync.stores import ItemRejected, NotFound, Option, StoreContext
from calsync.stores._copies import WrittenCopies
from calsync.stores._single import SingleFileStore, to_newline


def _line_end(data: bytes, end: int) -> int:
    """``end`` moved past the line ending that follows it, if any."""
    if data[end : end + 2] == b"\r\n":
        return end + 2
    if data[end : end + 1] in (b"\n", b"\r"):
        return end + 1
    return end


class VcsStore(SingleFileStore[bytes]):
    type = "vcs"
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "the .vcs file (created empty if missing)", required=True),
    }

    def __init__(self, name: str, ctx: StoreContext, path: Path) -> None:
        super().__init__(name, ctx, path)
        self._converted: Converted | None = None
        self._items: dict[str, Item] = {}
        self._file_versions: dict[str, str] = {}
        self._copies = WrittenCopies(ctx.cache_dir / "vcs-written.sqlite")
        self._resolved: dict[str, Item] = {}

    # -- reading --------------------------------------------------------------------

    def _parsed(self) -> bool:
        return self._converted is not None

    def _forget_parse(self) -> None:
        self._converted = None
        self._resolved.clear()

    def _parse(self) -> None:
        """Convert the file and index it by UID."""
        assert self._data is not None
        data = self._data
        converted = convert(data, str(self.path))
        self._converted = converted
        self._items = {item.uid: item for item in converted.items}
        self._versions = {uid: _version(data, converted, uid) for uid in self._items}
        self._file_versions = dict(self._versions)
        self._errors = {}
        for key, err in zip(converted.error_keys, converted.errors, strict=True):
            self._errors.setdefault(key, str(err))

    def get(self, id: str) -> tuple[Item, str]:
        self._index()
        if id in self._errors and id not in self._items:
            raise ItemError(self._errors[id], source=str(self.path), id=id)
        if id not in self._items:
            raise self.error(NotFound, "no item with this UID in the file", id)
        return self._through_copy(id), self._versions.get(id, "")

    def _through_copy(self, id: str) -> Item:
        """The entry as the item we wrote, if it is still as written; reconciled
        with it, if a device rewrote it (keeping what vCalendar cannot carry)."""
        found = self._resolved.get(id)
        if found is not None:
            return found
        item = self._items[id]
        copy = self._copies.get(id)
        if copy is not None:
            version, raw = copy
            try:
                ours = Item.from_bytes(raw, source=f"{self.path} (as written)")
            except ItemError:
                ours = None
            if ours is not None and ours.uid == id:
                item = ours if version == self._file_versions.get(id) else reconcile(ours, item)
        self._resolved[id] = item
        return item

    # -- writing --------------------------------------------------------------------

    def _encode(self, item: Item) -> tuple[bytes, str]:
        """The item's VCALENDAR in the file's line endings, and the version it will have."""
        try:
            data = item_to_vcal(item)
        except ItemError as e:
            raise self.error(ItemRejected, f"vCalendar cannot carry it: {e.reason}", item.uid)
        data = to_newline(data, self._newline())
        return data, _version(data, convert(data, item.uid), item.uid)

    def _written(self, new: bytes, st: os.stat_result) -> None:
        """Read the new file back (its entries' spans are needed) and remember, per
        UID, the item we wrote, for reading rewritten entries later."""
        written = [
            (uid, self._versions[uid], p.item.raw)
            for uid, p in self._pending.items()
            if p.item is not None and uid in self._versions
        ]
        self._load()
        self._index()
        try:
            self._copies.put(written)
            self._copies.keep_only(self._items)
        except sqlite3.Error:
            pass  # without the copies, entries read as the file says

    def close(self) -> None:
        self._copies.close()

    def _render(self) -> bytes:
        self._index()
        converted = self._converted
        assert converted is not None
        data = self._data
        assert data is not None
        newline = self._newline()
        removed: list[Span] = []
        for uid, pending in self._pending.items():
            if not pending.new:
                removed += converted.spans.get(uid, [])
        gone = set(removed)
        cuts: list[Span] = []
        for block, _, entries in converted.calendars:
            if entries and all(span in gone for span in entries):
                cuts.append(block)  # no entry left: the whole calendar goes
            else:
                cuts += [span for span in entries if span in gone]
        out: list[bytes] = []
        pos = 0
        for start, end in sorted(cuts):
            if start < pos:
                continue
            out.append(data[pos:start])
            pos = _line_end(data, end)
        rest = data[pos:]
        out.append(rest)
        if rest and not rest.endswith((b"\n", b"\r")):
            out.append(newline)
        for pending in self._pending.values():
            if pending.payload is not None:
                out.append(pending.payload)
        return b"".join(out)


def _version(data: bytes, converted: Converted, uid: str) -> str:
    """Hash of an item's entries and of their calendars' own lines (VERSION, TZ,
    DAYLIGHT: a different zone is a different item)."""
    heads: dict[Span, bytes] = {}
    for _, (head_start, head_end), entries in converted.calendars:
        for span in entries:
            heads[span] = data[head_start:head_end]
    parts = converted.spans.get(uid, [])
    return version_hash(b"".join(heads.get(s, b"") + data[s[0] : s[1]] for s in parts))
