"""``type = "thunderbird"``: one calendar of a Thunderbird profile, read and written in place.

How it fits the engine's contract:

* ``list``/``get`` read a snapshot of ``local.sqlite`` (a copy with its
  ``-wal``: safe whether Thunderbird runs or not), with the queue of changes
  still waiting laid over it (see ``queue``); versions are hashes of each
  item's rows (see ``rows``), so deletions are found by the engine's status,
  never from Thunderbird's ``deleted.sqlite``;
* ``add``/``update``/``delete`` check the version against that view, turn the
  item into Thunderbird's rows (``write``), and stage them;
* ``flush`` (the store is ``buffered``: the engine commits its status only
  after it) writes: if Thunderbird is not running, the whole queue goes into
  the database in one ``BEGIN IMMEDIATE`` transaction, after checking the
  schema version and backing the database up (once per run); if it runs, the
  changes are queued durably and reported (``calsync status``), and the first
  sync after Thunderbird has quit writes them.

Only ``storage`` calendars are written.  A network calendar's rows in
``cache.sqlite`` are Thunderbird's offline copy of a server: the store
refuses it and says to sync the calendar at its server.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item, ItemError
from calsync.perms import private_dir
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
from calsync.stores._files import NotRegularFile, regular_target
from calsync.stores.thunderbird import profiles, schema
from calsync.stores.thunderbird.prefs import (
    STORAGE_URI,
    CalendarInfo,
    CalendarNotFound,
    find_calendar,
)
from calsync.stores.thunderbird.queue import DELETE, PUT, Entry, Queue, queue_dir, reconcile
from calsync.stores.thunderbird.read import CalendarRows, load_calendar, to_ical
from calsync.stores.thunderbird.rows import ItemRows
from calsync.stores.thunderbird.running import Running, running
from calsync.stores.thunderbird.snapshot import SnapshotError, snapshot, wal_of
from calsync.stores.thunderbird.times import from_prtime
from calsync.stores.thunderbird.write import Unstorable, item_rows, replace_item
from calsync.sync.lock import Busy, pair_lock

log = logging.getLogger(__name__)

KEEP_BACKUPS = 10


class ThunderbirdStore(Store):
    type = "thunderbird"
    buffered = True
    lock_wait: ClassVar[float] = 60.0  # how long to wait for another calsync using this store
    options: ClassVar[dict[str, Option]] = {
        "profile": Option(
            str,
            'the Thunderbird profile: "default" (the one Thunderbird starts with), '
            "a profile name, or the profile directory",
            default="default",
        ),
        "calendar": Option(
            str, "the calendar's name or id in that profile (see `calsync discover`)", required=True
        ),
    }

    def __init__(self, name: str, ctx: StoreContext, profile: Path, calendar: CalendarInfo) -> None:
        super().__init__(name, ctx)
        self.profile = profile
        self.calendar = calendar
        self.db = database_path(profile, calendar)
        self.queue = Queue(
            ctx.cache_dir,
            self.identity(),
            {
                "profile": str(profile),
                "calendar": calendar.name,
                "calendar_id": calendar.id,
                "database": str(self.db),
            },
        )
        self._base: CalendarRows | None = None
        self._versions: dict[str, str] = {}
        self._effective: dict[str, Entry] = {}  # uid -> queued entry as it applies now
        self._dirty = False
        self._backed_up = False
        self._held = ExitStack()
        self._locked = False

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        try:
            profile = profiles.resolve(str(section.get("profile", "default")), base=ctx.config_dir)
        except profiles.ProfileNotFound as e:
            raise StoreUnavailable(str(e), store=name) from None
        if not (profile / "prefs.js").is_file():
            raise StoreUnavailable(
                f"{profile} is not a Thunderbird profile (no prefs.js)", store=name
            )
        try:
            calendar = find_calendar(profile, str(section["calendar"]))
        except CalendarNotFound as e:
            raise StoreUnavailable(str(e), store=name) from None
        refuse_network(calendar, name)
        return cls(name, ctx, profile, calendar)

    def identity(self) -> str:
        return f"thunderbird:{os.path.realpath(self.profile)}#{self.calendar.id}"

    def describe(self) -> str:
        return f"Thunderbird calendar {self.calendar.name!r} in {self.profile}"

    # -- reading ------------------------------------------------------------------

    def _running(self) -> Running | None:
        return running(self.profile)

    def _database(self) -> Path:
        """The database file with symbolic links resolved (SQLite keeps the -wal
        next to the target, and so does Thunderbird); StoreUnavailable if it is
        missing or not a regular file (a device, FIFO...: never opened)."""
        try:
            real = Path(regular_target(self.db))
        except NotRegularFile as e:
            raise self.error(StoreUnavailable, str(e)) from None
        if not real.is_file():
            raise self.error(
                StoreUnavailable,
                f"{self.db} does not exist; start Thunderbird once with this profile",
            )
        return real

    def _load_base(self) -> CalendarRows:
        db = self._database()
        hot = self._running() is not None
        try:
            with snapshot(db, self.ctx.cache_dir / "snapshots", check=hot) as conn:
                schema.check(conn, str(self.db))
                return load_calendar(conn, self.calendar.id)
        except (SnapshotError, schema.SchemaError, sqlite3.DatabaseError) as e:
            raise self.error(StoreUnavailable, f"cannot read the calendar: {e}") from None

    def _lock(self) -> None:
        """One calsync at a time per store: the queue is read in list, written in flush."""
        if self._locked:
            return
        try:
            self._held.enter_context(
                pair_lock(self.ctx.cache_dir / "thunderbird.lock", wait=self.lock_wait)
            )
        except Busy:
            raise self.error(
                StoreUnavailable, "another calsync run is using this Thunderbird calendar"
            ) from None
        self._locked = True

    def list(self) -> Listing:
        self._lock()
        base = self._load_base()
        try:
            self.queue.load()
        except OSError as e:
            raise self.error(StoreUnavailable, str(e)) from None
        self._base = base
        self._dirty = False
        self._overlay()
        errors = dict(base.errors)
        return Listing(dict(self._versions), errors, {uid: uid for uid in self._versions})

    def _current(self, uid: str) -> tuple[str, Item] | None:
        assert self._base is not None
        rows = self._base.items.get(uid)
        if rows is None:
            return None
        return rows.version(), to_ical(rows)

    def _overlay(self) -> None:
        """Versions of the database with the queue laid over it."""
        assert self._base is not None
        versions = {uid: rows.version() for uid, rows in self._base.items.items()}
        self._effective = {}
        for uid, entry in self.queue.entries.items():
            if uid in self._base.errors:
                self._effective[uid] = entry  # wait: the database must be sorted out first
                continue
            try:
                now, _ = reconcile(entry, self._current(uid))
            except ItemError as e:
                log.warning("%s: item %s: %s", self.name, uid, e)
                now = entry
            if now is None:
                continue
            self._effective[uid] = now
            if now.op == PUT and now.version is not None:
                versions[uid] = now.version
            else:
                versions.pop(uid, None)
        self._versions = versions

    def _ensure(self) -> None:
        if self._base is None:
            self.list()

    def get(self, id: str) -> tuple[Item, str]:
        self._ensure()
        assert self._base is not None
        entry = self._effective.get(id)
        if entry is not None:
            if entry.op == DELETE or entry.rows is None:
                raise self.error(
                    NotFound, "deleted (the deletion waits for Thunderbird to quit)", id
                )
            rows = entry.rows
        else:
            if id in self._base.errors:
                raise ItemError(self._base.errors[id], source=self.name, id=id)
            found = self._base.items.get(id)
            if found is None:
                raise self.error(NotFound, "no item with this UID in the calendar", id)
            rows = found
        item = to_ical(rows)
        return item, self._versions.get(id, rows.version())

    def modified(self, id: str) -> float | None:
        """Thunderbird's ``last_modified`` of the item (the newest of its rows; it
        sets it on every edit); None when the rows have none (imported items)."""
        self._ensure()
        assert self._base is not None
        entry = self._effective.get(id)
        rows = entry.rows if entry is not None else self._base.items.get(id)
        if rows is None:
            return None
        stamps = [c.main.get("last_modified") for c in (rows.master, *rows.exceptions)]
        known = [int(v) for v in stamps if isinstance(v, int | float)]
        if not known:
            return None
        from datetime import UTC

        return from_prtime(max(known)).replace(tzinfo=UTC).timestamp()

    # -- writing ------------------------------------------------------------------

    def _check_writable(self, id: str) -> None:
        if self.calendar.read_only:
            raise self.error(ItemRejected, "the calendar is read-only in Thunderbird", id)

    def _check(self, id: str, version: str) -> None:
        self._ensure()
        current = self._versions.get(id)
        if current is None:
            raise self.error(NotFound, "no item with this UID in the calendar", id)
        if current != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)

    def _rows(self, item: Item, id: str) -> ItemRows:
        try:
            return item_rows(item)
        except Unstorable as e:
            raise self.error(ItemRejected, str(e), id) from None
        except ItemError as e:  # text passed through unparsed: Thunderbird needs its meaning
            raise self.error(ItemRejected, f"cannot be parsed, so not stored: {e.reason}", id)

    def _stage(self, uid: str, op: str, rows: ItemRows | None) -> None:
        assert self._base is not None
        entry = self._effective.get(uid)
        if entry is not None:
            self.queue.entries[uid] = entry  # stage on top of what applies now
            base_version, base_item = entry.base_version, entry.base_item
        else:
            current = self._current(uid)
            base_version = current[0] if current else None
            base_item = current[1].raw if current else None
        self.queue.stage(uid, op, rows, base_version, base_item)
        staged = self.queue.entries.get(uid)
        if staged is None:
            self._effective.pop(uid, None)
            self._versions.pop(uid, None)
        else:
            self._effective[uid] = staged
            if staged.op == PUT and staged.version is not None:
                self._versions[uid] = staged.version
            else:
                self._versions.pop(uid, None)
        self._dirty = True

    def add(self, item: Item) -> tuple[str, str]:
        self._ensure()
        assert self._base is not None
        uid = item.uid
        self._check_writable(uid)
        if uid in self._versions or uid in self._base.errors:
            raise self.error(PreconditionFailed, "an item with this UID already exists", uid)
        rows = self._rows(item, uid)
        self._stage(uid, PUT, rows)
        return uid, self._versions[uid]

    def update(self, id: str, item: Item, version: str) -> str:
        self._check(id, version)
        self._check_writable(id)
        if item.uid != id:
            raise self.error(ItemRejected, f"UID {item.uid} does not match", id)
        self._stage(id, PUT, self._rows(item, id))
        return self._versions[id]

    def delete(self, id: str, version: str) -> None:
        self._check(id, version)
        self._check_writable(id)
        self._stage(id, DELETE, None)

    def flush(self) -> None:
        if self._base is None:
            return
        if not self._dirty and not self.queue.entries:
            return
        self.queue.entries = dict(self._effective)
        if not self.queue.entries:
            self._save_queue("")
            return
        who = self._running()
        if who is None:
            try:
                if self._apply():
                    return
                who_text = "Thunderbird's database is locked (Thunderbird is starting or running)"
            except StoreError:
                self._forget_staged()
                raise
        else:
            who_text = str(who)
        self._save_queue(who_text)

    def _forget_staged(self) -> None:
        """After a failed write: the queue on disk is the truth again."""
        try:
            self.queue.load()
        except OSError:
            pass
        self._base = None
        self._dirty = False

    def _save_queue(self, why: str) -> None:
        self.queue.reason = why
        try:
            self.queue.save()
        except OSError as e:
            self._forget_staged()
            raise self.error(StoreError, f"cannot save the queue of waiting changes: {e}") from None
        self._dirty = False
        n = len(self.queue.entries)
        if not n:
            return
        log.warning(
            "%s: %s: %d change(s) to calendar %r wait in %s; they are written by the first "
            "sync after Thunderbird has quit (`calsync status` lists them)",
            self.name,
            why,
            n,
            self.calendar.name,
            self.queue.path,
        )

    def _apply(self) -> bool:
        """Write the queue in one transaction; False if the database is locked."""
        db = self._database()
        try:
            conn = sqlite3.connect(db, timeout=1.0, isolation_level=None)
        except sqlite3.Error as e:
            raise self.error(StoreError, f"cannot open {self.db}: {e}") from None
        written = 0
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return False
                raise
            try:
                schema.check(conn, str(self.db))
                self._backup(db)
                current = load_calendar(conn, self.calendar.id)
                left: dict[str, Entry] = {}
                for uid, entry in self.queue.entries.items():
                    if uid in current.errors:
                        log.warning("%s: item %s waits: %s", self.name, uid, current.errors[uid])
                        left[uid] = entry
                        continue
                    rows = current.items.get(uid)
                    now = (rows.version(), to_ical(rows)) if rows is not None else None
                    todo, what = reconcile(entry, now)
                    if what not in ("waiting", "already written", "already gone"):
                        log.warning("%s: item %s: %s", self.name, uid, what)
                    if todo is None:
                        continue
                    replace_item(conn, self.calendar.id, uid, todo.rows if todo.op == PUT else None)
                    written += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except schema.SchemaError as e:
            raise self.error(StoreUnavailable, str(e)) from None
        except (sqlite3.Error, OSError, ItemError) as e:
            raise self.error(
                StoreError, f"writing to {self.db} failed, nothing written: {e}"
            ) from None
        finally:
            conn.close()
        self.queue.entries = left
        self.queue.reason = "the database holds items calsync cannot sort out" if left else ""
        try:
            self.queue.save()
        except OSError as e:  # the next run sees the rows are there and drops the entries
            log.warning("%s: cannot update the queue file: %s", self.name, e)
        self._dirty = False
        self._base = None  # re-read next time
        if written:
            log.info("%s: wrote %d change(s) to %s", self.name, written, self.describe())
        return True

    def _backup(self, db: Path) -> None:
        """Copy the database and its -wal before the first write of this run."""
        if self._backed_up:
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        root = self.ctx.cache_dir / "backups"
        target = root / f"{stamp}-{os.getpid()}"
        private_dir(target)  # copies of calendar data: owner-only, like the state dir
        shutil.copy2(db, target / self.db.name)
        wal = wal_of(db)
        if wal.exists():
            shutil.copy2(wal, target / wal.name)
        self._backed_up = True
        log.info("%s: backed up %s to %s", self.name, self.db, target)
        old = sorted(p for p in root.iterdir() if p.is_dir())
        for stale in old[:-KEEP_BACKUPS]:
            shutil.rmtree(stale, ignore_errors=True)

    def close(self) -> None:
        self._base = None
        self._held.close()
        self._locked = False

    # -- reporting (calsync status) --------------------------------------------------

    @classmethod
    def queued_status(cls, ctx: StoreContext) -> dict[str, Any] | None:
        """What waits in this store's queue(s) and why; None when nothing does."""
        import json

        found: list[dict[str, Any]] = []
        for path in sorted(queue_dir(ctx.cache_dir).glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            entries = data.get("entries", [])
            if not entries:
                continue
            profile = Path(str(data.get("profile", "")))
            who = running(profile) if profile.is_dir() else None
            reason = (
                str(who)
                if who is not None
                else "Thunderbird is not running now: the next sync writes them"
            )
            found.append(
                {
                    "calendar": data.get("calendar"),
                    "profile": str(profile),
                    "file": str(path),
                    "count": len(entries),
                    "since": _iso(min(float(e.get("queued_at", 0)) for e in entries)),
                    "reason": reason,
                    "queued_because": data.get("reason", ""),
                    "items": [{"uid": e["uid"], "op": e["op"]} for e in entries],
                }
            )
        if not found:
            return None
        first = found[0]
        return {
            "count": sum(f["count"] for f in found),
            "since": min(f["since"] for f in found),
            "reason": first["reason"],
            "calendars": found,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def database_path(profile: Path, calendar: CalendarInfo) -> Path:
    """Where a storage calendar's rows live: local.sqlite, or its own file:// database."""
    if calendar.uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(calendar.uri).path))
    return profile / "calendar-data" / "local.sqlite"


def refuse_network(calendar: CalendarInfo, store: str) -> None:
    """Only storage calendars are ours to write (see module docstring)."""
    if calendar.is_storage:
        if calendar.uri and not (
            calendar.uri.startswith(STORAGE_URI) or calendar.uri.startswith("file:")
        ):
            raise StoreUnavailable(
                f"calendar {calendar.name!r} has an unknown storage URI {calendar.uri!r}",
                store=store,
            )
        return
    where = f" at {calendar.uri}" if calendar.uri else ""
    raise StoreUnavailable(
        f"calendar {calendar.name!r} is a {calendar.type or 'network'} calendar{where}: "
        "Thunderbird only keeps an offline copy of it (cache.sqlite), which calsync never "
        "writes. Sync it at its server instead (e.g. a caldav store for that URL).",
        store=store,
    )
