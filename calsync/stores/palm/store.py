"""palm store: a folder of Palm databases, synced as a HotSync conduit would.

What it reads: the events database (``CalendarDB-PDat.pdb`` if the folder
has one, the Palm OS 5 Calendar's; else ``DatebookDB.pdb``) and the to-do
database (``TasksDB-PTod.pdb`` if present, read only; else ``ToDoDB.pdb``).
A missing Datebook or To Do database is created when the first item of its
kind is written.

Identity and changes come from the Palm's own record attributes:

- an item's id is its database and the record's unique id
  (``DatebookDB-8388609``); its version a hash of the record's bytes and
  attributes *without* the dirty bit (so clearing the flag does not make it
  look changed, and a record a tool rewrote without setting it is still seen);
- a record with the deleted (or Palm::PDB's "deleted"/busy) flag, archived or
  not, is listed as absent: the Palm deleted it;
- after the sync's status is committed (``end_sync``), a dirty record whose
  version the status records is made clean, and a deleted record the status
  no longer holds is purged, as a conduit does after a good sync; a sync
  that fails leaves both marks for the next one.  calsync's own writes are
  clean records (the desktop has them already).

Writes are buffered and each database is rewritten once, in ``flush``,
atomically: records calsync did not change keep their bytes and attributes,
the AppInfo block (categories) and SortInfo block are copied unchanged, a new
record gets the next unique id from the header's seed, a replaced record
keeps its unique id, unknown flag bits, reserved bytes and blobs.  A database
another program changed during the sync is not overwritten (the next sync
picks up both changes).

What a Palm cannot hold is not lost: the store keeps, in its cache dir, the
iCalendar item it last wrote for each record (``_copies``); a record still as
written reads as that item exactly, one the Palm changed is merged onto it
(``ical.reconcile``).  The UID of a record the Palm created is derived from
the database's name, creation date and the record's unique id.
"""

from __future__ import annotations

import codecs
import logging
import os
import sqlite3
import zoneinfo
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Literal

from calsync.items import Item, ItemError
from calsync.items.canonical import blake2b
from calsync.plain import Plain
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
from calsync.stores.palm import datebook, ical, pdb, tasks, todo
from calsync.stores.palm.datebook import RecordError

log = logging.getLogger("calsync.stores.palm")

Kind = Literal["events", "todos", "tasks"]
CALENDAR = "CalendarDB-PDat"
DATEBOOK = "DatebookDB"
TASKS = "TasksDB-PTod"
TODO = "ToDoDB"
CREATORS = {DATEBOOK: b"date", CALENDAR: b"PDat", TODO: b"todo", TASKS: b"PTod"}
NEW_CATEGORIES = ("Unfiled", "Business", "Personal")
APPINFO_EXTRA = {DATEBOOK: b"\0" * 4, TODO: b"\0" * 6}  # start of week; sort order


def _digest(data: bytes) -> str:
    return blake2b(data, digest_size=20).hexdigest()


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class Change(Plain):
    """A buffered write to one record: its new attributes and data, or a removal."""

    __slots__ = ("attrs", "data", "item", "new")
    attrs: int
    data: bytes | None  # None: remove the record
    item: Item | None
    new: bool

    def __init__(self, attrs: int, data: bytes | None, item: Item | None, new: bool) -> None:
        self.attrs = attrs
        self.data = data
        self.item = item
        self.new = new


class PalmFile:
    """One database of the folder: its bytes as read, parsed, and the changes
    buffered for it."""

    def __init__(self, path: Path, kind: Kind) -> None:
        self.path = path
        self.name = path.stem
        self.kind = kind
        self.writable = kind != "tasks"
        self.db: pdb.Database | None = None
        self.stat: tuple[int, int, int] | None = None
        self.digest = ""
        self.changes: dict[int, Change] = {}  # unique id -> change

    def load(self) -> None:
        self.changes.clear()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            self.db, self.stat, self.digest = None, None, ""
            return
        self.db = pdb.parse(data)
        self.stat, self.digest = _stat_key(st), _digest(data)

    def unchanged_on_disk(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return self.stat is None  # it was missing when read, and still is
        return _stat_key(st) == self.stat and _digest(data) == self.digest

    def write(self, db: pdb.Database, seed: int | None) -> None:
        data = pdb.render(db, seed=seed)
        mode = None
        try:
            mode = os.stat(self.path).st_mode & 0o7777
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        st = write_atomic(self.path, data, fsync=True)
        if mode is not None:
            try:
                os.chmod(self.path, mode)
            except OSError:
                pass
        self.db = pdb.parse(data)
        self.stat, self.digest = _stat_key(st), _digest(data)


class PalmStore(Store):
    type = "palm"
    buffered = True
    marks_changes = True
    path_kind = "dir"  # a mistyped folder is a configuration error (create = true makes it)
    options: ClassVar[dict[str, Option]] = {
        "path": Option(
            str,
            "folder holding the Palm databases (a HotSync backup folder or an emulator's export)",
            required=True,
        ),
        "timezone": Option(
            str,
            "the zone the Palm's clock is in (e.g. Europe/Berlin): times read get it as TZID; "
            "unset: they stay floating and items written go by this machine's zone",
        ),
        "encoding": Option(str, "the Palm's character set", default="cp1252"),
    }

    def __init__(
        self,
        name: str,
        ctx: StoreContext,
        path: Path,
        *,
        timezone: str | None = None,
        encoding: str = "cp1252",
    ) -> None:
        super().__init__(name, ctx)
        self.path = path
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise self.error(StoreUnavailable, f"unknown encoding {encoding!r}") from None
        self.encoding = encoding
        self.zone: tzinfo | None = None
        if timezone:
            try:
                self.zone = zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise self.error(StoreUnavailable, f"unknown time zone {timezone!r}") from None
        self._files: dict[Kind, PalmFile] = {}
        self._versions: dict[str, str] = {}
        self._copies = WrittenCopies(ctx.cache_dir / "palm-written.sqlite")
        self._resolved: dict[str, Item] = {}

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(
            name,
            ctx,
            expand_path(section["path"], ctx.config_dir),
            timezone=section.get("timezone"),
            encoding=section.get("encoding") or "cp1252",
        )

    def identity(self) -> str:
        return f"palm:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"palm folder {self.path}"

    # -- the folder -------------------------------------------------------------

    def _pick(self) -> dict[Kind, PalmFile]:
        def there(name: str) -> bool:
            return (self.path / f"{name}.pdb").is_file()

        events = CALENDAR if there(CALENDAR) else DATEBOOK
        todos: tuple[str, Kind] = (TASKS, "tasks") if there(TASKS) else (TODO, "todos")
        return {
            "events": PalmFile(self.path / f"{events}.pdb", "events"),
            todos[1]: PalmFile(self.path / f"{todos[0]}.pdb", todos[1]),
        }

    def _load(self) -> None:
        self._files = self._pick()
        self._versions.clear()
        self._resolved.clear()
        for f in self._files.values():
            try:
                f.load()
            except OSError as e:
                raise self.error(StoreUnavailable, f"cannot read {f.path}: {e}") from None
            except pdb.PdbError as e:
                raise self.error(StoreUnavailable, f"{f.path}: {e}") from None
            if f.db is None:
                continue
            for rec in f.db.records:
                if not rec.deleted:
                    self._versions[self._id(f, rec.uid)] = _digest(rec.key())

    def _id(self, f: PalmFile, uid: int) -> str:
        return f"{f.name}-{uid}"

    def _context(self, f: PalmFile) -> ical.Context:
        db = f.db
        categories = db.categories(self.encoding) if db is not None else list(NEW_CATEGORIES)
        modified = (db.modified - pdb.EPOCH_1904) if db is not None and db.modified else 0
        stamp = datetime.fromtimestamp(max(modified, 0), UTC).strftime("%Y%m%dT%H%M%SZ")
        calendar = db is not None and db.creator == CREATORS[CALENDAR]
        return ical.Context(self.zone, self.encoding, categories, stamp, calendar)

    # -- reading ----------------------------------------------------------------

    def list(self) -> Listing:
        self._load()
        try:
            self._copies.keep_only(self._versions)
        except sqlite3.Error:
            pass  # a damaged cache: records read as the Palm has them
        return Listing(dict(self._versions))

    def _ensure(self) -> None:
        if not self._files:
            self._load()

    def _decode(self, f: PalmFile, rec: pdb.Record, uid: str) -> Item:
        meta = ical.Meta(rec.category, rec.secret)
        ctx = self._context(f)
        if f.kind == "events":
            return ical.event_item(datebook.decode(rec.data, calendar=ctx.calendar), uid, meta, ctx)
        if f.kind == "todos":
            return ical.todo_item(todo.decode(rec.data), uid, meta, ctx)
        return ical.task_item(tasks.decode(rec.data), uid, meta, ctx)

    def _derived_uid(self, f: PalmFile, rec: pdb.Record) -> str:
        created = f.db.created if f.db is not None else 0
        return f"{f.name}-{created:08x}-{rec.uid}@palm.calsync"

    def get(self, id: str) -> tuple[Item, str]:
        self._ensure()
        f, rec = self._find(id)
        version = self._versions.get(id, "")
        found = self._resolved.get(id)
        if found is not None:
            return found, version
        try:
            copy = self._copies.get(id)
        except sqlite3.Error:
            copy = None
        written: Item | None = None
        if copy is not None:
            try:
                written = Item.from_bytes(copy[1], source=f"{self.path} (as written)")
            except ItemError:
                written = None
        uid = written.uid if written is not None else self._derived_uid(f, rec)
        try:
            palm = self._decode(f, rec, uid)
        except (RecordError, ItemError, ValueError) as e:
            raise ItemError(f"unreadable record: {e}", source=str(f.path), id=id) from None
        item = palm
        if written is not None and copy is not None:
            item = written if copy[0] == version else self._merged(f, written, palm)
        self._resolved[id] = item
        return item, version

    def _merged(self, f: PalmFile, written: Item, palm: Item) -> Item:
        """A record the Palm changed, merged onto the item calsync wrote there."""
        try:
            attrs, data = self._encode(f, written, None)
            seen = self._decode(f, pdb.Record(attrs, 0, data), written.uid)
        except (ical.Unfit, RecordError, ItemError):
            return palm
        return ical.reconcile(written, palm, seen)

    # -- writing (buffered until flush) -------------------------------------------

    def _target(self, item: Item) -> PalmFile:
        kind: Kind = "events" if item.kind == "VEVENT" else "todos"
        if item.kind not in ("VEVENT", "VTODO"):
            raise self.error(ItemRejected, f"a Palm holds no {item.kind}", item.uid)
        f = self._files.get(kind) or self._files.get("tasks")
        if f is None or not f.writable:
            raise self.error(
                ItemRejected,
                f"{TASKS}.pdb is read only here: the Palm OS 5 Tasks record layout is not "
                "documented well enough to write it safely",
                item.uid,
            )
        return f

    def _encode(self, f: PalmFile, item: Item, old: pdb.Record | None) -> tuple[int, bytes]:
        ctx = self._context(f)
        if f.kind == "events":
            previous = None
            if old is not None:
                try:
                    previous = datebook.decode(old.data, calendar=ctx.calendar)
                except RecordError:
                    previous = None
            appt, meta = ical.appointment(item, ctx, previous)
            data = datebook.encode(appt, calendar=ctx.calendar)
        else:
            prev_todo = None
            if old is not None:
                try:
                    prev_todo = todo.decode(old.data)
                except RecordError:
                    prev_todo = None
            record, meta = ical.todo(item, ctx, prev_todo)
            data = todo.encode(record)
        attrs = (meta.category & pdb.CATEGORY) | (pdb.SECRET if meta.secret else 0)
        return attrs, data

    def _encode_checked(self, f: PalmFile, item: Item, old: pdb.Record | None) -> tuple[int, bytes]:
        try:
            return self._encode(f, item, old)
        except (ical.Unfit, RecordError) as e:
            raise self.error(ItemRejected, f"a Palm cannot take it: {e}", item.uid) from None

    def _check(self, id: str, version: str) -> tuple[PalmFile, pdb.Record]:
        current = self._versions.get(id)
        if current is None:
            raise self.error(NotFound, "no such record", id)
        if current != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)
        f, rec = self._find(id)
        if not f.writable:
            raise self.error(ItemRejected, f"{f.path.name} is read only here", id)
        return f, rec

    def add(self, item: Item) -> tuple[str, str]:
        self._ensure()
        f = self._target(item)
        attrs, data = self._encode_checked(f, item, None)
        if f.db is None:
            name = f.name
            appinfo = pdb.standard_appinfo(NEW_CATEGORIES, self.encoding, APPINFO_EXTRA[name])
            f.db = pdb.new_database(name, CREATORS[name], appinfo)
        taken = {rec.uid for rec in f.db.records} | set(f.changes)
        uid = f.db.next_uid()
        while uid in taken:
            uid = (uid % pdb.MAX_UNIQUE_ID) + 1
        f.changes[uid] = Change(attrs, data, item, new=True)
        id = self._id(f, uid)
        version = _digest(pdb.Record(attrs, uid, data).key())
        self._versions[id] = version
        self._resolved[id] = item
        return id, version

    def update(self, id: str, item: Item, version: str) -> str:
        self._ensure()
        f, rec = self._check(id, version)
        if self._target(item) is not f:
            raise self.error(ItemRejected, f"a {item.kind} cannot replace this record", id)
        attrs, data = self._encode_checked(f, item, rec)
        change = f.changes.get(rec.uid)
        f.changes[rec.uid] = Change(attrs, data, item, new=bool(change and change.new))
        new_version = _digest(pdb.Record(attrs, rec.uid, data).key())
        self._versions[id] = new_version
        self._resolved[id] = item
        return new_version

    def delete(self, id: str, version: str) -> None:
        self._ensure()
        f, rec = self._check(id, version)
        change = f.changes.get(rec.uid)
        if change is not None and change.new:
            del f.changes[rec.uid]
        else:
            f.changes[rec.uid] = Change(0, None, None, new=False)
        del self._versions[id]
        self._resolved.pop(id, None)

    def _find(self, id: str) -> tuple[PalmFile, pdb.Record]:
        """The record behind ``id``, pending changes included."""
        name, _, number = id.rpartition("-")
        if not number.isdigit():
            raise self.error(NotFound, "no such record", id)
        uid = int(number)
        for f in self._files.values():
            if f.name != name:
                continue
            change = f.changes.get(uid)
            if change is not None:
                if change.data is None:
                    break
                return f, pdb.Record(change.attrs, uid, change.data)
            if f.db is not None:
                for rec in f.db.records:
                    if rec.uid == uid and not rec.deleted:
                        return f, rec
        raise self.error(NotFound, "no such record", id)

    def flush(self) -> None:
        for f in self._files.values():
            if f.changes:
                self._flush_file(f)

    def _flush_file(self, f: PalmFile) -> None:
        changes, f.changes = f.changes, {}
        if not f.unchanged_on_disk():
            raise self.error(
                StoreError,
                f"{f.path} was changed by another program during the sync; "
                "not overwriting it (the next sync will pick up both changes)",
            )
        assert f.db is not None
        records: list[pdb.Record] = []
        for rec in f.db.records:
            change = changes.get(rec.uid)
            if change is None or change.new:
                records.append(rec)
            elif change.data is not None:
                records.append(pdb.Record(change.attrs, rec.uid, change.data))
        tail = len(records)
        while tail and records[tail - 1].deleted:  # deleted records stay at the end
            tail -= 1
        new = [pdb.Record(c.attrs, uid, c.data) for uid, c in changes.items() if c.new and c.data]
        records[tail:tail] = new
        seed = max([pdb.HEADER.unpack(f.db.header)[11], *(r.uid + 1 for r in new)])
        written = [
            (self._id(f, uid), _digest(pdb.Record(c.attrs, uid, c.data).key()), c.item.raw)
            for uid, c in changes.items()
            if c.item is not None and c.data is not None
        ]
        try:
            self._copies.put(written)  # before the file: never a record without its UID
        except sqlite3.Error as e:
            raise self.error(StoreError, f"cannot record what was written: {e}") from None
        db = pdb.Database(f.db.header, f.db.appinfo, f.db.sortinfo, records)
        try:
            f.write(db, min(seed, pdb.MAX_UNIQUE_ID))
        except OSError as e:
            raise self.error(StoreError, f"cannot write {f.path}: {e}") from None

    # -- after a good sync ----------------------------------------------------------

    def end_sync(self, settled: dict[str, str]) -> None:
        for f in self._files.values():
            if not f.writable or f.db is None or f.changes:
                continue
            records: list[pdb.Record] = []
            changed = 0
            for rec in f.db.records:
                id = self._id(f, rec.uid)
                if rec.deleted:
                    if id not in settled:
                        changed += 1  # the deletion is synced (or was never needed)
                        continue
                elif rec.dirty and settled.get(id) == _digest(rec.key()):
                    rec = pdb.Record(rec.attrs & ~pdb.DIRTY, rec.uid, rec.data)
                    changed += 1
                records.append(rec)
            if not changed:
                continue
            if not f.unchanged_on_disk():
                raise self.error(StoreError, f"{f.path} changed since the sync read it")
            db = pdb.Database(f.db.header, f.db.appinfo, f.db.sortinfo, records)
            try:
                f.write(db, None)
            except OSError as e:
                raise self.error(StoreError, f"cannot write {f.path}: {e}") from None
            log.info("%s: %d records made clean or purged after the sync", f.path, changed)

    def close(self) -> None:
        self._copies.close()
