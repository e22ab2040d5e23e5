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

A small cache (size, mtime, inode, digest of the file and the listing) lets a
sync of an unchanged file skip converting it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item, ItemError
from calsync.items.canonical import version_hash
from calsync.items.vcal import item_to_vcal
from calsync.items.vcal.reconcile import reconcile
from calsync.items.vcal.to_ical import Converted, Span, convert
from calsync.stores import (
    ItemRejected,
    Listing,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
    StoreError,
    StoreUnavailable,
)
from calsync.stores._copies import WrittenCopies
from calsync.stores._files import expand_path, write_atomic


@dataclass
class _Pending:
    """A buffered write for one UID: its new VCALENDAR, or None to delete it."""

    data: bytes | None
    new: bool
    item: Item | None = None


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _to_newline(data: bytes, newline: bytes) -> bytes:
    lf = data.replace(b"\r\n", b"\n")
    return lf if newline == b"\n" else lf.replace(b"\n", b"\r\n")


def _line_end(data: bytes, end: int) -> int:
    """``end`` moved past the line ending that follows it, if any."""
    if data[end : end + 2] == b"\r\n":
        return end + 2
    if data[end : end + 1] in (b"\n", b"\r"):
        return end + 1
    return end


class VcsStore(Store):
    type = "vcs"
    buffered = True
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "the .vcs file (created empty if missing)", required=True),
    }

    def __init__(self, name: str, ctx: StoreContext, path: Path) -> None:
        super().__init__(name, ctx)
        self.path = path
        self._data: bytes | None = None
        self._stat: list[int] | None = None
        self._digest: str | None = None
        self._converted: Converted | None = None
        self._items: dict[str, Item] = {}
        self._versions: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._file_versions: dict[str, str] = {}
        self._copies = WrittenCopies(ctx.cache_dir / "vcs-written.sqlite")
        self._resolved: dict[str, Item] = {}

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(name, ctx, expand_path(section["path"], ctx.config_dir))

    def identity(self) -> str:
        return f"vcs:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"vcs file {self.path}"

    # -- reading --------------------------------------------------------------------

    @property
    def _cache_file(self) -> Path:
        return self.ctx.cache_dir / "vcs-index.json"

    def _load(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_atomic(self.path, b"", fsync=True, exclusive=True)
            except FileExistsError:
                pass
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except OSError as e:
            raise self.error(StoreUnavailable, f"cannot read {self.path}: {e}") from None
        self._data = data
        self._stat = _stat_key(st)
        self._digest = _digest(data)
        self._converted = None
        self._resolved.clear()
        self._pending.clear()

    def _index(self) -> Converted:
        """Convert the file (once) and index it by UID."""
        if self._converted is None:
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
        return self._converted

    def list(self) -> Listing:
        self._load()
        cache = self._read_cache()
        if (
            cache is not None
            and cache.get("stat") == self._stat
            and cache.get("digest") == self._digest
        ):
            self._versions = dict(cache["versions"])
            self._errors = dict(cache.get("errors", {}))
        else:
            self._index()
            self._write_cache()
        return Listing(dict(self._versions), dict(self._errors), {u: u for u in self._versions})

    def _read_cache(self) -> dict[str, Any] | None:
        try:
            with open(self._cache_file, encoding="utf-8") as f:
                cache: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            return None
        return cache if cache.get("path") == str(self.path) else None

    def _write_cache(self) -> None:
        try:
            self.ctx.cache_dir.mkdir(parents=True, exist_ok=True)
            payload = {
                "path": str(self.path),
                "stat": self._stat,
                "digest": self._digest,
                "versions": self._versions,
                "errors": self._errors,
            }
            write_atomic(self._cache_file, json.dumps(payload).encode(), fsync=False)
        except OSError:
            pass  # a cache, nothing more

    def get(self, id: str) -> tuple[Item, str]:
        if self._data is None:
            self._load()
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

    # -- writing (buffered until flush) -----------------------------------------------

    def _encode(self, item: Item) -> tuple[bytes, str]:
        """The item's VCALENDAR in the file's line endings, and the version it will have."""
        try:
            data = item_to_vcal(item)
        except ItemError as e:
            raise self.error(ItemRejected, f"vCalendar cannot carry it: {e.reason}", item.uid)
        data = _to_newline(data, self._newline())
        return data, _version(data, convert(data, item.uid), item.uid)

    def _newline(self) -> bytes:
        data = self._data or b""
        return b"\r\n" if b"\r\n" in data or not data else b"\n"

    def _check(self, id: str, version: str) -> None:
        if id in self._pending and self._pending[id].data is None:
            raise self.error(NotFound, "already deleted in this sync", id)
        current = self._versions.get(id)
        if current is None:
            raise self.error(NotFound, "no item with this UID in the file", id)
        if current != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)

    def add(self, item: Item) -> tuple[str, str]:
        self._index()
        if item.uid in self._versions or item.uid in self._errors:
            raise self.error(PreconditionFailed, "an item with this UID already exists", item.uid)
        data, version = self._encode(item)
        self._pending[item.uid] = _Pending(data, new=True, item=item)
        self._versions[item.uid] = version
        return item.uid, version

    def update(self, id: str, item: Item, version: str) -> str:
        self._index()
        self._check(id, version)
        if item.uid != id:
            raise self.error(ItemRejected, f"UID {item.uid} does not match", id)
        data, new_version = self._encode(item)
        pending = self._pending.get(id)
        self._pending[id] = _Pending(data, new=pending.new if pending else False, item=item)
        self._versions[id] = new_version
        return new_version

    def delete(self, id: str, version: str) -> None:
        self._index()
        self._check(id, version)
        pending = self._pending.get(id)
        if pending is not None and pending.new:
            del self._pending[id]
        else:
            self._pending[id] = _Pending(None, new=False)
        del self._versions[id]

    def flush(self) -> None:
        if not self._pending:
            return
        assert self._data is not None
        converted = self._index()
        try:
            with open(self.path, "rb") as f:
                on_disk = f.read()
                st = os.fstat(f.fileno())
        except OSError as e:
            raise self.error(StoreError, f"cannot re-read {self.path}: {e}") from None
        if _stat_key(st) != self._stat or _digest(on_disk) != self._digest:
            self._pending.clear()
            raise self.error(
                StoreError,
                f"{self.path} was changed by another program during the sync; "
                "not overwriting it (the next sync will pick up both changes)",
            )
        new = self._render(converted)
        mode = st.st_mode & 0o7777
        write_atomic(self.path, new, fsync=True)
        try:
            os.chmod(self.path, mode)
        except OSError:
            pass
        written = [
            (uid, self._versions[uid], p.item.raw)
            for uid, p in self._pending.items()
            if p.item is not None and uid in self._versions
        ]
        self._pending.clear()
        self._load()
        self._index()
        self._write_cache()
        try:
            self._copies.put(written)
            self._copies.keep_only(self._items)
        except sqlite3.Error:
            pass  # without the copies, entries read as the file says

    def close(self) -> None:
        self._copies.close()

    def _render(self, converted: Converted) -> bytes:
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
            if pending.data is not None:
                out.append(pending.data)
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
