"""What each device holds: the device mirror, in the SyncML state database.

Per (account, device, datastore) calsync keeps one row per item the device
has or is about to get: our id for it (the GUID sent in Adds), the device's
id (LUID, known from its own changes or its Map), the UID, the content as
iCalendar 2.0, and what still has to reach the device (``pending``).

``MirrorStore`` presents those rows as an ordinary ``calsync.stores.Store``,
so the sync engine runs between the mirror (side a) and the account's store
(side b) with all its rules: merge, history, guards.  A session is:

1. the device's changes are applied to its rows (``DeviceDB.apply``);
2. the engine syncs mirror <-> store; whatever it writes into the mirror is
   marked pending (add / replace / delete);
3. pending rows go to the device; its statuses and Map settle them
   (``DeviceDB.progress``); anchors are committed at the end (``finish``).

Failure rules (the reason this is a mirror and not a pass-through):

- A row leaves the engine's view only when the device deleted the item (or
  the engine deleted it).  A device that *rejects* our Add keeps the row
  listed, so the engine never takes the rejection for a deletion; the Add is
  retried in later sessions (``MAX_ATTEMPTS``), then parked until the item
  changes again.
- Adds sent but never mapped are "in flight".  If a session ends with any,
  the next session is a slow sync: the device sends what it has and the rows
  are matched (by LUID, then UID, then content), so nothing is added twice.
- A device edit of an item whose newer server version has not reached it yet
  is merged three-way (base = what the device last had) instead of
  overwriting either side.
- A device delete of an item whose server edit is still pending is undone
  (the edited item is sent again as an Add): an edit beats a delete.
- A vCalendar 1.0 copy of an item is reconciled with the full item first
  (``content.reconcile``): what vCalendar cannot carry is not a deletion.
- Mirror writes by the engine are one transaction committed in ``flush``
  (the store is "buffered"), so the engine's status never runs ahead of it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item, ItemError
from calsync.perms import private_file
from calsync.stores import Listing, NotFound, PreconditionFailed, Store, StoreContext
from calsync.sync.conflict import resolve
from calsync.syncml import content
from calsync.syncml.model import (
    ITEM_ADDED,
    ITEM_NOT_DELETED,
    NOT_FOUND,
    OK,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    SLOW_SYNC,
    UNSUPPORTED_MEDIA_TYPE,
    is_success,
)
from calsync.syncml.session import (
    DatastoreState,
    IncomingChange,
    MapItem,
    OutgoingChange,
)

log = logging.getLogger("calsync.syncml")

MAX_ATTEMPTS = 3  # sessions in which a rejected Add/Replace/Delete is retried

SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    device TEXT PRIMARY KEY, nonce TEXT NOT NULL, updated REAL NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS devinf (
    account TEXT NOT NULL, device TEXT NOT NULL, info TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (account, device)
);
CREATE TABLE IF NOT EXISTS datastores (
    ds INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL, device TEXT NOT NULL, name TEXT NOT NULL,
    device_anchor TEXT, server_anchor TEXT,
    needs_slow INTEGER NOT NULL DEFAULT 0,
    next_guid INTEGER NOT NULL DEFAULT 1,
    last_sync REAL, last_result TEXT,
    UNIQUE (account, device, name)
);
CREATE TABLE IF NOT EXISTS mirror (
    ds INTEGER NOT NULL,
    guid TEXT NOT NULL,
    luid TEXT,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'live',
    pending TEXT,
    inflight INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    base BLOB,
    seen INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (ds, guid)
);
CREATE INDEX IF NOT EXISTS mirror_luid ON mirror (ds, luid);
CREATE INDEX IF NOT EXISTS mirror_uid ON mirror (ds, uid);
CREATE TABLE IF NOT EXISTS kinds (
    store TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,
    kind TEXT NOT NULL, uid TEXT NOT NULL,
    PRIMARY KEY (store, id)
);
"""
# row states: live (the device has it, or will), gone (the engine deleted it; the
# device still has it until our Delete is confirmed), soft (the device dropped it
# with a soft delete: still synced with the store, not sent to the device)
LISTED = ("live", "soft")


def connect(path: Path) -> sqlite3.Connection:
    private_file(path)  # owner-only; SQLite gives its -wal and -shm the same mode
    # generous timeout: another device's engine run holds the write lock meanwhile
    db = sqlite3.connect(path, isolation_level=None, timeout=120, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


@dataclass
class Row:
    guid: str
    luid: str | None
    uid: str
    kind: str
    content: bytes
    version: int
    state: str
    pending: str | None
    inflight: int
    attempts: int
    base: bytes | None
    seen: int

    @property
    def item(self) -> Item:
        return Item(self.content, self.uid, self.kind)


_COLUMNS = "guid, luid, uid, kind, content, version, state, pending, inflight, attempts, base, seen"


def _upgrade_nonces(db: sqlite3.Connection) -> None:
    """Databases of earlier versions lack ``nonces.verified`` (their rows count as
    unverified: a real device logs in again with the nonce it holds)."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(nonces)")]
    if "verified" not in columns:
        db.execute("ALTER TABLE nonces ADD COLUMN verified INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX IF NOT EXISTS nonces_unverified ON nonces (verified, updated)")


class DeviceDB:
    """The SyncML state database: nonces, DevInf, anchors and device mirrors.

    Nonces (one per device ID) are the only state a device reaches *without* a
    password: a first contact stores one for the device's retry.  So those
    rows are bounded: a device that never logged in (``verified = 0``) keeps
    its row for ``UNVERIFIED_TTL`` seconds, and there are at most
    ``MAX_UNVERIFIED`` of them (the oldest go first).  Check-and-rotate is one
    conditional UPDATE (``consume_nonce``), so it holds across threads and
    processes alike: nothing here assumes one process.
    """

    UNVERIFIED_TTL = 86400.0
    MAX_UNVERIFIED = 10_000

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.db = connect(path)
        _upgrade_nonces(self.db)

    def close(self) -> None:
        self.db.close()

    # -- devices ------------------------------------------------------------------------

    def nonce(self, device: str) -> str | None:
        found = self.db.execute("SELECT nonce FROM nonces WHERE device = ?", (device,)).fetchone()
        return str(found[0]) if found else None

    def set_nonce(self, device: str, nonce: str) -> None:
        """The next nonce of a device that has just logged in."""
        self.db.execute(
            "INSERT INTO nonces (device, nonce, updated, verified) VALUES (?, ?, ?, 1) "
            "ON CONFLICT(device) DO UPDATE SET "
            "nonce = excluded.nonce, updated = excluded.updated, verified = 1",
            (device, nonce, self.clock()),
        )

    def consume_nonce(self, device: str, used: str, next_nonce: str) -> bool:
        """Replace the device's nonce ``used`` by ``next_nonce`` after a login with it;
        False when ``used`` is no longer its nonce (another login consumed it)."""
        cur = self.db.execute(
            "UPDATE nonces SET nonce = ?, updated = ?, verified = 1 WHERE device = ? AND nonce = ?",
            (next_nonce, self.clock(), device, used),
        )
        return cur.rowcount == 1

    def issue_nonce(self, device: str, nonce: str) -> str:
        """The nonce to challenge ``device`` with: the one it holds, else ``nonce``
        (stored, unverified; expired and surplus unverified rows go first)."""
        found = self.nonce(device)
        if found is not None:
            return found
        now = self.clock()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "DELETE FROM nonces WHERE verified = 0 AND updated < ?",
                (now - self.UNVERIFIED_TTL,),
            )
            (count,) = self.db.execute("SELECT count(*) FROM nonces WHERE verified = 0").fetchone()
            if count >= self.MAX_UNVERIFIED:
                self.db.execute(
                    "DELETE FROM nonces WHERE device IN (SELECT device FROM nonces "
                    "WHERE verified = 0 ORDER BY updated LIMIT ?)",
                    (count - self.MAX_UNVERIFIED + 1,),
                )
            self.db.execute(
                "INSERT INTO nonces (device, nonce, updated, verified) VALUES (?, ?, ?, 0) "
                "ON CONFLICT(device) DO NOTHING",
                (device, nonce, now),
            )
            found = self.nonce(device)
        assert found is not None
        return found

    def devinf(self, account: str, device: str) -> str | None:
        found = self.db.execute(
            "SELECT info FROM devinf WHERE account = ? AND device = ?", (account, device)
        ).fetchone()
        return str(found[0]) if found else None

    def set_devinf(self, account: str, device: str, info: str) -> None:
        self.db.execute(
            "INSERT INTO devinf VALUES (?, ?, ?, ?) ON CONFLICT(account, device) DO UPDATE SET "
            "info = excluded.info, updated = excluded.updated",
            (account, device, info, time.time()),
        )

    # -- datastores -----------------------------------------------------------------------

    def datastore(self, account: str, device: str, name: str) -> int:
        """The key of a device datastore (created on first use)."""
        found = self.db.execute(
            "SELECT ds FROM datastores WHERE account = ? AND device = ? AND name = ?",
            (account, device, name),
        ).fetchone()
        if found:
            return int(found[0])
        cur = self.db.execute(
            "INSERT INTO datastores (account, device, name) VALUES (?, ?, ?)",
            (account, device, name),
        )
        return int(cur.lastrowid or 0)

    def state(self, ds: int) -> DatastoreState:
        a, s, slow = self.db.execute(
            "SELECT device_anchor, server_anchor, needs_slow FROM datastores WHERE ds = ?", (ds,)
        ).fetchone()
        inflight = self.db.execute(
            "SELECT count(*) FROM mirror WHERE ds = ? AND inflight = 1", (ds,)
        ).fetchone()[0]
        return DatastoreState(a, s, bool(slow) or inflight > 0)

    def _set(self, ds: int, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE datastores SET {cols} WHERE ds = ?", (*values.values(), ds))

    def _guid(self, ds: int) -> str:
        found = self.db.execute(
            "UPDATE datastores SET next_guid = next_guid + 1 WHERE ds = ? RETURNING next_guid",
            (ds,),
        ).fetchone()
        return str(found[0] - 1)

    # -- rows -------------------------------------------------------------------------------

    def rows(self, ds: int, where: str = "1", args: tuple[Any, ...] = ()) -> list[Row]:
        cur = self.db.execute(
            f"SELECT {_COLUMNS} FROM mirror WHERE ds = ? AND ({where})", (ds, *args)
        )
        return [Row(*r) for r in cur]

    def _by_luid(self, ds: int, luid: str) -> Row | None:
        found = self.rows(ds, "luid = ?", (luid,))
        return found[0] if found else None

    def count(self, ds: int) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM mirror WHERE ds = ? AND state IN ('live', 'soft')", (ds,)
            ).fetchone()[0]
        )

    def _update(self, ds: int, guid: str, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(
            f"UPDATE mirror SET {cols} WHERE ds = ? AND guid = ?", (*values.values(), ds, guid)
        )

    def _insert(self, ds: int, luid: str | None, item: Item, **values: Any) -> str:
        guid = self._guid(ds)
        row = {
            "ds": ds,
            "guid": guid,
            "luid": luid,
            "uid": item.uid,
            "kind": item.kind,
            "content": item.raw,
            "version": 1,
            "state": "live",
            "pending": None,
            "inflight": 0,
            "attempts": 0,
            "base": item.raw if luid is not None else None,
            "seen": 1,
        }
        row.update(values)
        self.db.execute(
            f"INSERT INTO mirror ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return guid

    # -- a session begins --------------------------------------------------------------------

    def begin(self, ds: int, mode: int) -> None:
        """Prepare the rows for the device's changes in ``mode``.

        Slow and refresh syncs re-send everything: rows are marked unseen and
        matched as the device's items arrive.  A refresh from the server means
        the device wiped its data.  Until the session finishes well, the
        datastore is flagged for a slow sync, so a session dying half-way
        never leaves the engine believing in deletions.
        """
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if mode in (SLOW_SYNC, REFRESH_FROM_CLIENT):
                self.db.execute("UPDATE mirror SET seen = 0 WHERE ds = ?", (ds,))
                self._set(ds, needs_slow=1)
            elif mode == REFRESH_FROM_SERVER:
                self.db.execute("DELETE FROM mirror WHERE ds = ?", (ds,))
                self._set(ds, needs_slow=1)

    # -- the device's changes ------------------------------------------------------------------

    def apply(
        self,
        ds: int,
        mode: int,
        changes: list[IncomingChange],
        *,
        where: str,
        policy: str = "merge",
        fallback: str = "newest",
    ) -> list[int]:
        """Store the device's changes; one SyncML status per change.

        No conversion runs while the write lock on the shared database is held
        (other devices' sessions wait for it): the device's items are decoded
        and checked first, and a vCalendar copy is reconciled with what we
        wrote between two short transactions.
        """
        slow = mode in (SLOW_SYNC, REFRESH_FROM_CLIENT)
        decoded = [self._decode(ch, where) for ch in changes]
        out: list[int] = []
        later: dict[str, tuple[Item, Item]] = {}  # guid -> (what we wrote, the device's copy)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            index = _Index(self, ds, slow)
            for ch, item in zip(changes, decoded, strict=True):
                if isinstance(item, ItemError):
                    log.error("%s: item %s: %s", where, ch.luid, item.reason)
                    out.append(UNSUPPORTED_MEDIA_TYPE if "content type" in item.reason else 400)
                    continue
                out.append(self._apply_one(ds, index, ch, item, later, policy, fallback))
        if later:
            merged = {guid: content.reconcile(*pair) for guid, pair in later.items()}
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for guid, item in merged.items():
                    for row in self.rows(ds, "guid = ?", (guid,)):
                        self._device_content(ds, row, item, policy, fallback)
        return out

    @staticmethod
    def _decode(ch: IncomingChange, where: str) -> Item | ItemError | None:
        """The item of a device's Add or Replace (None for a Delete)."""
        if ch.op == "Delete":
            return None
        assert ch.data is not None
        try:
            return content.decode(ch.data, ch.content_type, source=f"{where}/{ch.luid}")
        except ItemError as e:
            return e

    def _row(self, ds: int, guid: str) -> Row:
        return self.rows(ds, "guid = ?", (guid,))[0]

    def _apply_one(
        self,
        ds: int,
        index: _Index,
        ch: IncomingChange,
        item: Item | None,
        later: dict[str, tuple[Item, Item]],
        policy: str,
        fallback: str,
    ) -> int:
        guid = index.by_luid.get(ch.luid)
        row = self._row(ds, guid) if guid is not None else None
        if ch.op == "Delete" or item is None:
            index.forget(row)
            if row is not None:
                later.pop(row.guid, None)
            return self._device_delete(ds, row, ch.soft)
        if row is None:
            row = index.match(item)
            if row is not None:
                if row.luid is not None:
                    index.by_luid.pop(row.luid, None)
                self._update(ds, row.guid, luid=ch.luid)
                row.luid = ch.luid
        if row is None:
            guid = self._insert(ds, ch.luid, item)
            index.by_luid[ch.luid] = guid
            return ITEM_ADDED
        index.seen(row, ch.luid)
        if item.uid != row.uid:
            item = item.with_uid(row.uid)  # the row's UID is the item's identity
        if content.is_vcal(ch.data or b"", ch.content_type):
            # a vCalendar copy lacks what vCalendar cannot carry: not a deletion;
            # reconciled once this transaction is over (see ``apply``)
            written = Item(row.base, row.uid, row.kind) if row.base is not None else row.item
            later[row.guid] = (written, item)
        else:
            later.pop(row.guid, None)
            self._device_content(ds, row, item, policy, fallback)
        return ITEM_ADDED if ch.op == "Add" else OK

    def _device_content(self, ds: int, row: Row, item: Item, policy: str, fallback: str) -> None:
        """The device holds ``item`` for ``row`` now (its UID already the row's)."""
        values: dict[str, Any] = {
            "seen": 1,
            "inflight": 0,
            "attempts": 0,
            "error": None,
            "base": item.raw,
        }
        mine = row.item
        base = Item(row.base, row.uid, row.kind) if row.base is not None else None
        result, pending = item, None
        if row.state == "gone":
            if base is not None and base.hash == item.hash:
                self._update(ds, row.guid, seen=1)  # re-sent unchanged: our Delete stands
                return
            values["state"] = "live"  # edited on the device: an edit beats a delete
        elif row.state == "live" and row.pending in ("replace", "add"):
            if mine.hash == item.hash:
                pass  # the device already has our version
            elif base is not None and base.hash == item.hash:
                result, pending = mine, row.pending  # unchanged there: ours still to send
            else:
                # both changed since the device's last known version: merge
                res = resolve(policy, base, item, mine, fallback=fallback)
                result = res.result
                pending = "replace" if result.hash != item.hash else None
                log.warning(
                    "item %s changed on the device and on the server: %s", row.uid, res.outcome
                )
        else:
            values["state"] = "live"
        values["pending"] = pending
        if row.state != "live" or result.hash != mine.hash:
            values.update(content=result.raw, kind=result.kind, version=row.version + 1)
        self._update(ds, row.guid, **values)

    def _device_delete(self, ds: int, row: Row | None, soft: bool) -> int:
        if row is None:
            return ITEM_NOT_DELETED
        if row.state == "gone":
            self.db.execute("DELETE FROM mirror WHERE ds = ? AND guid = ?", (ds, row.guid))
            return OK
        if row.pending == "replace":
            # our edit never reached the device, which deleted its old copy: edit wins
            self._update(ds, row.guid, luid=None, pending="add", attempts=0, base=None, seen=1)
            return OK
        if soft:
            self._update(ds, row.guid, luid=None, state="soft", pending=None, base=None, seen=1)
            return OK
        self.db.execute("DELETE FROM mirror WHERE ds = ? AND guid = ?", (ds, row.guid))
        return OK

    # -- before the engine runs ------------------------------------------------------------------

    def prepare(self, ds: int, mode: int) -> None:
        """Settle what a slow or refresh sync did not see from the device."""
        if mode not in (SLOW_SYNC, REFRESH_FROM_CLIENT):
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            # gone rows the device no longer has: nothing left to delete there
            self.db.execute(
                "DELETE FROM mirror WHERE ds = ? AND seen = 0 AND state = 'gone'", (ds,)
            )
            if mode == SLOW_SYNC:
                # the device lacks these: send them again (a slow sync deletes nothing)
                self.db.execute(
                    "UPDATE mirror SET luid = NULL, pending = 'add', inflight = 0, attempts = 0, "
                    "base = NULL, seen = 1, state = 'live' WHERE ds = ? AND seen = 0",
                    (ds,),
                )
            else:
                # the device is the truth: what it did not send is deleted (the engine
                # then deletes it from the store, history first, guards applying)
                self.db.execute("DELETE FROM mirror WHERE ds = ? AND seen = 0", (ds,))

    def rename_uid(self, ds: int, guid: str, uid: str) -> None:
        """Give a row the UID of the store item it was recognised as."""
        row = self.rows(ds, "guid = ?", (guid,))[0]
        item = row.item.with_uid(uid)
        self._update(ds, guid, uid=uid, content=item.raw, version=row.version + 1)

    # -- what the device must receive -------------------------------------------------------------

    def outgoing(self, ds: int, content_type: str, *, where: str) -> list[OutgoingChange]:
        out: list[OutgoingChange] = []
        rows = self.rows(ds, "pending IS NOT NULL AND attempts < ?", (MAX_ATTEMPTS,))
        order = {"delete": 0, "replace": 1, "add": 2}
        rows.sort(key=lambda r: (order.get(r.pending or "", 3), int(r.guid)))
        for row in rows:
            if row.pending == "delete":
                if row.luid is not None:
                    out.append(OutgoingChange("Delete", row.guid, row.luid, None, content_type))
                continue
            if row.state != "live":
                continue
            op = "Replace" if row.pending == "replace" and row.luid else "Add"
            try:
                data = content.encode(row.item, content_type)
            except ItemError as e:
                log.error("%s: item %s cannot be sent: %s", where, row.uid, e.reason)
                self._update(ds, row.guid, attempts=MAX_ATTEMPTS, error=e.reason)
                continue
            out.append(OutgoingChange(op, row.guid, row.luid, data, content_type))
        return out

    # -- the device's answers ----------------------------------------------------------------------

    def progress(
        self,
        ds: int,
        sent: Iterable[str],
        results: Iterable[tuple[OutgoingChange, int]],
        maps: Iterable[MapItem],
    ) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for guid in sent:
                self._update(ds, guid, inflight=1)
            for change, code in results:
                self._result(ds, change, code)
            for m in maps:
                self._map(ds, m.target, m.source)

    def _result(self, ds: int, change: OutgoingChange, code: int) -> None:
        found = self.rows(ds, "guid = ?", (change.guid,))
        if not found:
            return
        row = found[0]
        if change.op == "Delete":
            if is_success(code) or code == NOT_FOUND:
                self.db.execute("DELETE FROM mirror WHERE ds = ? AND guid = ?", (ds, row.guid))
            else:
                self._update(ds, row.guid, attempts=row.attempts + 1, error=f"status {code}")
            return
        if is_success(code):
            self._update(ds, row.guid, pending=None, attempts=0, error=None, base=row.content)
            return
        if change.op == "Replace" and code in (NOT_FOUND, 410):
            # the device lost it: send it as new
            self._update(ds, row.guid, luid=None, pending="add", base=None)
            return
        # rejected: the row stays listed (so the engine never mistakes this for a
        # deletion) and the change is retried in later sessions, then parked
        self._update(ds, row.guid, inflight=0, attempts=row.attempts + 1, error=f"status {code}")

    def _map(self, ds: int, guid: str, luid: str) -> None:
        self.db.execute(
            "UPDATE mirror SET luid = NULL WHERE ds = ? AND luid = ? AND guid != ?",
            (ds, luid, guid),
        )
        self.db.execute(
            "UPDATE mirror SET luid = ?, inflight = 0 WHERE ds = ? AND guid = ?", (luid, ds, guid)
        )

    def finish(self, ds: int, device_anchor: str | None, server_anchor: str, ok: bool) -> None:
        """Close the session for a datastore; anchors move only when it went well."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE mirror SET seen = 1 WHERE ds = ?", (ds,))
            inflight = self.db.execute(
                "SELECT count(*) FROM mirror WHERE ds = ? AND inflight = 1", (ds,)
            ).fetchone()[0]
            values: dict[str, Any] = {
                "last_sync": time.time(),
                "last_result": "ok" if ok else "failed",
            }
            if ok:
                values.update(device_anchor=device_anchor, server_anchor=server_anchor)
                values["needs_slow"] = 1 if inflight else 0
            elif inflight:
                values["needs_slow"] = 1
            self._set(ds, **values)

    # -- item kinds of other stores (for datastore views) ---------------------------------------

    def kinds(self, store: str) -> dict[str, tuple[str, str, str]]:
        """id -> (version, kind, uid) last seen in ``store``."""
        cur = self.db.execute("SELECT id, version, kind, uid FROM kinds WHERE store = ?", (store,))
        return {r[0]: (r[1], r[2], r[3]) for r in cur}

    def set_kinds(
        self, store: str, entries: list[tuple[str, str, str, str]], gone: list[str]
    ) -> None:
        own = not self.db.in_transaction
        if own:
            self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO kinds VALUES (?, ?, ?, ?, ?)",
                [(store, *e) for e in entries],
            )
            self.db.executemany(
                "DELETE FROM kinds WHERE store = ? AND id = ?", [(store, g) for g in gone]
            )
        except BaseException:
            if own:
                self.db.execute("ROLLBACK")
            raise
        if own:
            self.db.execute("COMMIT")


class _Index:
    """Which row a device item is, for one batch of device changes.

    Built once per batch (a few queries) instead of several queries per item.
    Matching order: the LUID; then a row awaiting its Map with the same UID
    (our Add reached the device, its Map did not reach us); in a slow or
    refresh sync also an unseen row with the same UID, then one with the same
    content key (phones that drop or rewrite UIDs).
    """

    def __init__(self, devdb: DeviceDB, ds: int, slow: bool) -> None:
        self.devdb = devdb
        self.ds = ds
        self.slow = slow
        self.by_luid: dict[str, str] = {}
        self.unmapped: dict[str, str] = {}  # uid -> guid of rows without a LUID
        self.unseen: dict[str, str] = {}  # uid -> guid (slow syncs)
        self.unseen_kind: dict[str, list[str]] = {}
        self._keys: dict[str, tuple[str, str, str] | None] = {}
        cur = devdb.db.execute("SELECT guid, luid, uid, kind, seen FROM mirror WHERE ds = ?", (ds,))
        for guid, luid, uid, kind, seen in cur:
            if luid is not None:
                self.by_luid[luid] = guid
            else:
                self.unmapped.setdefault(uid, guid)
            if slow and not seen:
                self.unseen.setdefault(uid, guid)
                self.unseen_kind.setdefault(kind, []).append(guid)

    def match(self, item: Item) -> Row | None:
        guid = self.unmapped.get(item.uid)
        if guid is None and self.slow:
            guid = self.unseen.get(item.uid)
            if guid is None and self.unseen_kind.get(item.kind):
                guid = self._by_content(item)
        return self.devdb._row(self.ds, guid) if guid is not None else None

    def _by_content(self, item: Item) -> str | None:
        key = content.content_key(item)
        if key is None:
            return None
        for guid in self.unseen_kind.get(item.kind, []):
            if guid not in self._keys:
                self._keys[guid] = content.content_key(self.devdb._row(self.ds, guid).item)
            if self._keys[guid] == key:
                return guid
        return None

    def seen(self, row: Row, luid: str) -> None:
        self.by_luid[luid] = row.guid
        self.unmapped.pop(row.uid, None)
        if self.unseen.get(row.uid) == row.guid:
            del self.unseen[row.uid]
        kind = self.unseen_kind.get(row.kind)
        if kind and row.guid in kind:
            kind.remove(row.guid)

    def forget(self, row: Row | None) -> None:
        if row is not None and row.luid is not None:
            self.by_luid.pop(row.luid, None)


class MirrorStore(Store):
    """A device's mirror as a Store for the engine (see the module docstring)."""

    type = "syncml-mirror"
    buffered: ClassVar[bool] = True

    def __init__(self, name: str, ctx: StoreContext, db: DeviceDB, ds: int, identity: str) -> None:
        super().__init__(name, ctx)
        self.devdb = db
        self.ds = ds
        self._identity = identity
        self._in_tx = False
        self._session_time = time.time()

    def identity(self) -> str:
        return self._identity

    def modified(self, id: str) -> float | None:
        """A device tells no time of its edits: the session's, when its change
        reached calsync (the edit was made then at the latest)."""
        return self._session_time

    def describe(self) -> str:
        return f"device {self.name}"

    def list(self) -> Listing:
        cur = self.devdb.db.execute(
            "SELECT guid, version, uid FROM mirror WHERE ds = ? AND state IN ('live', 'soft')",
            (self.ds,),
        )
        versions: dict[str, str] = {}
        uids: dict[str, str] = {}
        for guid, version, uid in cur:
            versions[guid] = str(version)
            uids[guid] = uid
        return Listing(versions, uids=uids)

    def _row(self, id: str) -> Row:
        found = self.devdb.rows(self.ds, "guid = ? AND state IN ('live', 'soft')", (id,))
        if not found:
            raise self.error(NotFound, "not on the device", id)
        return found[0]

    def get(self, id: str) -> tuple[Item, str]:
        row = self._row(id)
        return row.item, str(row.version)

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        wanted = list(ids)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self.devdb.rows(
                self.ds, f"guid IN ({marks}) AND state IN ('live', 'soft')", tuple(chunk)
            ):
                yield row.guid, row.item, str(row.version)

    def _begin(self) -> None:
        if not self._in_tx:
            self.devdb.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def add(self, item: Item) -> tuple[str, str]:
        self._begin()
        guid = self.devdb._insert(self.ds, None, item, pending="add", base=None)
        return guid, "1"

    def _check(self, id: str, version: str) -> Row:
        row = self._row(id)
        if str(row.version) != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)
        return row

    def update(self, id: str, item: Item, version: str) -> str:
        self._begin()
        row = self._check(id, version)
        if row.state == "soft":
            pending = None
        elif row.luid is None:
            pending = "add"
        else:
            pending = "replace"
        self.devdb._update(
            self.ds,
            id,
            content=item.raw,
            kind=item.kind,
            version=row.version + 1,
            pending=pending,
            attempts=0,
            error=None,
        )
        return str(row.version + 1)

    def delete(self, id: str, version: str) -> None:
        self._begin()
        row = self._check(id, version)
        if row.state == "soft" or (row.luid is None and not row.inflight):
            self.devdb.db.execute("DELETE FROM mirror WHERE ds = ? AND guid = ?", (self.ds, id))
            return
        self.devdb._update(self.ds, id, state="gone", pending="delete", attempts=0)

    def flush(self) -> None:
        if self._in_tx:
            self.devdb.db.execute("COMMIT")
            self._in_tx = False

    def close(self) -> None:
        if self._in_tx:
            self.devdb.db.execute("ROLLBACK")
            self._in_tx = False
