"""What stores keeping many items in one file share (the ``ics`` and ``vcs`` stores).

The file is read once per sync and indexed by UID: an item's id is its UID and
its version a hash of its own bytes in the file.  Writes are buffered and the
file is rewritten once, in ``flush``, atomically, and only if something
changed; a file another program changed during the sync is not overwritten
(the next sync picks up both changes).  A small cache (size, mtime, inode and
digest of the file, and the listing) lets a sync of an unchanged file skip
parsing it altogether.

What the file must be: a symbolic link is followed (the target is read and
replaced, the link stays, see ``_files``); something else than a regular file
(a device, FIFO, socket, directory) is refused, and so is a file that does not
begin like a calendar (after an optional byte-order mark and blank lines):
calsync would otherwise add a VCALENDAR after someone's notes.  Refused means
the pair is not synced (exit 1) and the file is left as it is.  An empty file
is an empty calendar.

Subclasses say how to parse (``_parse``), how to encode one item for the file
(``_encode``), and how to render the new file from the old one and the pending
writes (``_render``).
"""

from __future__ import annotations

import json
import os
import re
from abc import abstractmethod
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar

from calsync.items import Item
from calsync.items.canonical import blake2b
from calsync.plain import Plain
from calsync.stores import (
    ItemRejected,
    Listing,
    NotFound,
    PreconditionFailed,
    Store,
    StoreContext,
    StoreError,
    StoreUnavailable,
)
from calsync.stores._files import (
    NotRegularFile,
    expand_path,
    open_regular,
    regular_target,
    write_atomic,
)

P = TypeVar("P")


class Pending(Plain, Generic[P]):
    """A buffered write for one UID: what to put in the file, or None to delete."""

    __slots__ = ("item", "new", "payload")
    payload: P | None
    new: bool
    item: Item | None

    def __init__(self, payload: P | None, new: bool, item: Item | None = None) -> None:
        self.payload = payload
        self.new = new
        self.item = item


def digest(data: bytes) -> str:
    return blake2b(data, digest_size=20).hexdigest()


def digest_file(f: BinaryIO) -> str:
    """``digest`` of a file's content, read in pieces (no second copy of a big file)."""
    h = blake2b(digest_size=20)
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


# what a calendar file begins with: a BEGIN line of a calendar component (or nothing)
_CALENDAR_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:\Z|BEGIN[ \t]*:[ \t]*"
    rb"V(?:CALENDAR|EVENT|TODO|JOURNAL|TIMEZONE|FREEBUSY)(?![A-Za-z0-9-]))",
    re.I,
)


def is_calendar_text(data: bytes) -> bool:
    """Whether ``data`` begins like iCalendar/vCalendar text (or is empty)."""
    return _CALENDAR_START.match(data) is not None


def to_newline(data: bytes, newline: bytes) -> bytes:
    """``data`` with the line endings ``newline`` (the file's own style)."""
    lf = data.replace(b"\r\n", b"\n")
    return lf if newline == b"\n" else lf.replace(b"\n", b"\r\n")


class SingleFileStore(Store, Generic[P]):
    buffered = True
    path_kind = "file"
    empty_file: ClassVar[bytes] = b""  # what a missing file is created with
    create = True  # make a missing file's directory (the config's own default: no)

    def __init__(self, name: str, ctx: StoreContext, path: Path) -> None:
        super().__init__(name, ctx)
        self.path = path
        self._data: bytes | None = None
        self._stat: list[int] | None = None
        self._digest: str | None = None
        self._versions: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._pending: dict[str, Pending[P]] = {}
        self._file: str | None = None  # the regular file behind ``path`` (links resolved)

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        store = cls(name, ctx, expand_path(section["path"], ctx.config_dir))
        store.create = section.get("create", False)
        return store

    def identity(self) -> str:
        return f"{self.type}:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"{self.type} file {self.path}"

    # -- what subclasses provide ----------------------------------------------------

    @abstractmethod
    def _parse(self) -> None:
        """Parse ``self._data`` (once, lazily) into ``_versions`` and ``_errors``."""

    @abstractmethod
    def _parsed(self) -> bool:
        """Whether ``_parse`` already ran for the current data."""

    @abstractmethod
    def _forget_parse(self) -> None:
        """Drop the parse of the previous data."""

    @abstractmethod
    def _encode(self, item: Item) -> tuple[P, str]:
        """What to put in the file for ``item``, and the version it will have there."""

    @abstractmethod
    def _render(self) -> bytes:
        """The new file: the old one with ``self._pending`` applied."""

    def _written(self, new: bytes, st: os.stat_result) -> None:
        """After a successful write: the state for the new file.  By default it is
        taken as rendered (versions of touched items were updated as written)."""
        self._data = new
        self._stat = stat_key(st)
        self._digest = digest(new)
        self._forget_parse()

    # -- reading --------------------------------------------------------------------

    @property
    def _cache_file(self) -> Path:
        return self.ctx.cache_dir / f"{self.type}-index.json"

    def _load(self) -> None:
        try:
            path = self._file = regular_target(self.path)  # once per sync, not per item
        except NotRegularFile as e:
            raise self.error(StoreUnavailable, str(e)) from None
        if not os.path.exists(path):
            parent = Path(path).parent  # a link's: the file is made where it points
            if self.create:
                parent.mkdir(parents=True, exist_ok=True)
            elif not parent.is_dir():  # gone since the config was checked
                raise self.missing_directory(parent)
            try:
                write_atomic(path, self.empty_file, fsync=True, exclusive=True)
            except FileExistsError:
                pass  # someone else just created it: fine
        try:
            with open_regular(path) as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except NotRegularFile as e:
            raise self.error(StoreUnavailable, str(e)) from None
        except OSError as e:
            raise self.error(StoreUnavailable, f"cannot read {self.path}: {e}") from None
        if not is_calendar_text(data):
            start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:40].decode("utf-8", "replace")
            raise self.error(
                StoreUnavailable,
                f"{self.path} is not a calendar file: it begins with {start!r}, not with "
                "BEGIN:VCALENDAR; not syncing it (the file is left as it is)",
            )
        self._data = data
        self._stat = stat_key(st)
        self._digest = digest(data)
        self._forget_parse()
        self._pending.clear()

    def _index(self) -> None:
        if self._data is None:
            self._load()
        if not self._parsed():
            self._parse()

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

    def modified(self, id: str) -> float | None:
        """The file's mtime as listed: when any of its items last changed, this
        one at that time or before (a file keeps no time per item)."""
        if self._stat is None or id not in self._versions:
            return None
        return self._stat[1] / 1e9

    def _read_cache(self) -> dict[str, Any] | None:
        try:
            with open(self._cache_file, encoding="utf-8") as f:
                cache: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            return None
        return cache if cache.get("path") == str(self.path) else None

    def _write_cache(self) -> None:
        try:
            if not self.ctx.cache_dir.is_dir():  # inside the private state directory
                from calsync.perms import private_dir

                private_dir(self.ctx.cache_dir)
            payload = {
                "path": str(self.path),
                "stat": self._stat,
                "digest": self._digest,
                "versions": self._versions,
                "errors": self._errors,
            }
            write_atomic(self._cache_file, json.dumps(payload).encode(), fsync=False, private=True)
        except OSError:
            pass  # a cache, nothing more

    def _newline(self) -> bytes:
        data = self._data or b""
        head = data[:4096]
        return b"\r\n" if b"\r\n" in head or b"\n" not in head else b"\n"

    # -- writing (buffered until flush) -----------------------------------------------

    def _check(self, id: str, version: str) -> None:
        pending = self._pending.get(id)
        if pending is not None and pending.payload is None:
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
        payload, version = self._encode(item)
        self._pending[item.uid] = Pending(payload, new=True, item=item)
        self._versions[item.uid] = version
        return item.uid, version

    def update(self, id: str, item: Item, version: str) -> str:
        self._index()
        self._check(id, version)
        if item.uid != id:
            raise self.error(ItemRejected, f"UID {item.uid} does not match", id)
        payload, new_version = self._encode(item)
        pending = self._pending.get(id)
        self._pending[id] = Pending(payload, new=pending.new if pending else False, item=item)
        self._versions[id] = new_version
        return new_version

    def delete(self, id: str, version: str) -> None:
        self._index()
        self._check(id, version)
        pending = self._pending.get(id)
        if pending is not None and pending.new:
            del self._pending[id]
        else:
            self._pending[id] = Pending(None, new=False)
        del self._versions[id]

    def flush(self) -> None:
        if not self._pending:
            return
        self._index()
        path = self._file or regular_target(self.path)
        try:
            with open_regular(path) as f:
                st = os.fstat(f.fileno())
                same = stat_key(st) == self._stat and digest_file(f) == self._digest
        except OSError as e:
            raise self.error(StoreError, f"cannot re-read {self.path}: {e}") from None
        if not same:
            self._pending.clear()
            raise self.error(
                StoreError,
                f"{self.path} was changed by another program during the sync; "
                "not overwriting it (the next sync will pick up both changes)",
            )
        new = self._render()
        try:
            written = write_atomic(path, new, fsync=True)  # next to a link's target
        except NotRegularFile as e:
            raise self.error(StoreError, str(e)) from None
        try:
            os.chmod(path, st.st_mode & 0o7777)
        except OSError:
            pass
        self._written(new, written)
        self._pending.clear()
        self._write_cache()
