"""ics store: one ``.ics`` file holding many items.

What Sunbird/Lightning export and phones' PC suites write.  The file is read
once per sync and indexed by UID; the id of an item is its UID and its version
is a hash of its own bytes in the file.  Writes are buffered and the file is
rewritten once, in ``flush``, atomically, and only if something changed: every
item not touched, and the calendar's own properties (X-WR-CALNAME...), stay
byte-for-byte.  If another program changed the file during the sync, the write
is refused rather than clobbering its change; the next sync picks it up.

A small cache (size, mtime, inode, digest of the file and the listing) lets a
sync of an unchanged file skip splitting it altogether.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item
from calsync.items.canonical import version_hash
from calsync.items.item import PRODID, Grouped
from calsync.items.split import ITEM_COMPONENTS, RawComponent, split
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
from calsync.stores._files import expand_path, write_atomic

EMPTY_CALENDAR = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:" + PRODID + b"\r\nEND:VCALENDAR\r\n"


@dataclass
class _Pending:
    """A buffered write for one UID: new component bytes, or None to delete."""

    components: bytes | None
    timezones: dict[str, bytes]
    new: bool


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _to_newline(data: bytes, newline: bytes) -> bytes:
    lf = data.replace(b"\r\n", b"\n")
    return lf if newline == b"\n" else lf.replace(b"\n", b"\r\n")


class IcsStore(Store):
    type = "ics"
    buffered = True
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "the .ics file (created empty if missing)", required=True),
    }

    def __init__(self, name: str, ctx: StoreContext, path: Path) -> None:
        super().__init__(name, ctx)
        self.path = path
        self._data: bytes | None = None
        self._stat: list[int] | None = None
        self._digest: str | None = None
        self._grouped: Grouped | None = None
        self._versions: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(name, ctx, expand_path(section["path"], ctx.config_dir))

    def identity(self) -> str:
        return f"ics:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"ics file {self.path}"

    # -- reading --------------------------------------------------------------

    @property
    def _cache_file(self) -> Path:
        return self.ctx.cache_dir / "ics-index.json"

    def _load(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, EMPTY_CALENDAR, fsync=True, exclusive=True)
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except OSError as e:
            raise self.error(StoreUnavailable, f"cannot read {self.path}: {e}") from None
        self._data = data
        self._stat = _stat_key(st)
        self._digest = _digest(data)
        self._grouped = None
        self._pending.clear()

    def _index(self) -> Grouped:
        """Split the file (once) and index it by UID."""
        if self._grouped is None:
            assert self._data is not None
            self._grouped = Grouped(self._data, str(self.path))
            self._versions = {
                uid: version_hash(b"".join(c.data for c in comps))
                for uid, comps in self._grouped.groups.items()
                if uid not in self._grouped.errors
            }
            self._errors = {uid: str(e) for uid, e in self._grouped.errors.items()}
        return self._grouped

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
        grouped = self._index()
        if id not in grouped.groups:
            raise self.error(NotFound, "no item with this UID in the file", id)
        return grouped.item(id), self._versions.get(id, "")

    # -- writing (buffered until flush) ---------------------------------------

    def _prepare(self, item: Item) -> tuple[bytes, dict[str, bytes]]:
        """The item's own components and VTIMEZONEs, in the file's line-ending style."""
        newline = self._index().split.newline
        parts = split(item.raw)
        comps = [c for c in parts.components if c.name in ITEM_COMPONENTS]
        if not comps:
            raise self.error(ItemRejected, "no VEVENT, VTODO or VJOURNAL", item.uid)
        body = b"".join(_to_newline(c.data, newline) for c in comps)
        tzs = {
            c.tzid: _to_newline(c.data, newline)
            for c in parts.components
            if c.name == "VTIMEZONE" and c.tzid
        }
        return body, tzs

    def _check(self, id: str, version: str) -> None:
        if id in self._pending and self._pending[id].components is None:
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
        body, tzs = self._prepare(item)
        self._pending[item.uid] = _Pending(body, tzs, new=True)
        version = version_hash(body)
        self._versions[item.uid] = version
        return item.uid, version

    def update(self, id: str, item: Item, version: str) -> str:
        self._index()
        self._check(id, version)
        if item.uid != id:
            raise self.error(ItemRejected, f"UID {item.uid} does not match", id)
        body, tzs = self._prepare(item)
        pending = self._pending.get(id)
        self._pending[id] = _Pending(body, tzs, new=pending.new if pending else False)
        new_version = version_hash(body)
        self._versions[id] = new_version
        return new_version

    def delete(self, id: str, version: str) -> None:
        self._index()
        self._check(id, version)
        pending = self._pending.get(id)
        if pending is not None and pending.new:
            del self._pending[id]
        else:
            self._pending[id] = _Pending(None, {}, new=False)
        del self._versions[id]

    def flush(self) -> None:
        if not self._pending:
            return
        assert self._data is not None
        grouped = self._index()
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
        new = self._render(grouped)
        mode = st.st_mode & 0o7777
        written = write_atomic(self.path, new, fsync=True)
        try:
            os.chmod(self.path, mode)
        except OSError:
            pass
        self._pending.clear()
        # the new file is what we rendered: no need to read and split it again; the
        # versions of touched items were updated as they were written
        self._data = new
        self._stat = _stat_key(written)
        self._digest = _digest(new)
        self._grouped = None
        self._write_cache()

    def _render(self, grouped: Grouped) -> bytes:
        data = self._data
        assert data is not None
        parts = grouped.split
        newline = parts.newline
        out: list[bytes] = []
        pos = 0
        done: set[str] = set()
        present_tz = set(grouped.timezones)
        new_tz: dict[str, bytes] = {}
        for p in self._pending.values():
            for tzid, tz in p.timezones.items():
                if tzid not in present_tz:
                    new_tz.setdefault(tzid, tz)
        tz_written = not new_tz
        uid_of: dict[int, str] = {}
        for uid, comps in grouped.groups.items():
            for c in comps:
                uid_of[id(c)] = uid
        # components that grouping dropped as equal duplicates still sit in the file
        for comp in parts.components:
            if not tz_written and comp.name in ITEM_COMPONENTS:
                out.append(data[pos : comp.start])
                out.extend(new_tz.values())
                pos = comp.start
                tz_written = True
            found = uid_of.get(id(comp)) or _uid_for(comp, grouped)
            if found is None or found not in self._pending or self._pending[found].new:
                continue
            uid = found
            out.append(data[pos : comp.start])
            pos = comp.end
            if uid not in done:
                done.add(uid)
                body = self._pending[uid].components
                if body is not None:
                    out.append(body)
        added = [p.components for p in self._pending.values() if p.new and p.components]
        if parts.calendars:
            insert_at = parts.calendars[-1].end_line_start
            out.append(data[pos:insert_at])
            if not tz_written:
                out.extend(new_tz.values())
            out.extend(b for b in added if b)
            out.append(data[insert_at:])
        else:
            rest = data[pos:]
            if rest.strip():
                out.append(rest)
            if added or not tz_written:
                header = _to_newline(EMPTY_CALENDAR, newline).rsplit(b"END:VCALENDAR", 1)[0]
                out.append(header)
                if not tz_written:
                    out.extend(new_tz.values())
                out.extend(b for b in added if b)
                out.append(b"END:VCALENDAR" + newline)
        return b"".join(out)


def _uid_for(comp: RawComponent, grouped: Grouped) -> str | None:
    """The UID a component was grouped under (derived UIDs included)."""
    if comp.uid is not None:
        return comp.uid
    for uid, comps in grouped.groups.items():
        if any(c.start == comp.start for c in comps):
            return uid
    return None
