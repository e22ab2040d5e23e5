"""What a SyncML server holds, as the client side keeps it: the server mirror.

The ``syncml`` store (``calsync.stores.syncml``) is a SyncML *client*.  The
protocol exchanges changes, not a random-access store, so the store keeps a
mirror of the server's datastore in SQLite (``<cache>/syncml-client.sqlite``):
one row per item, addressed by *our* id (the LUID we send and the server
maps), with the server's id (GUID) once known, the content as iCalendar 2.0,
what the server is known to hold (``base``) and what still has to reach it
(``pending``: add / replace / delete).  Per datastore (keyed by the store's
identity: server URL, user, device id, datastore) it also keeps the anchors
of the last good session, the server's last nonce and the session counter.

The engine syncs the mirror (a ``Store``) with the other side of the pair;
``MirrorBackend`` answers a ``ClientSession``'s requests from the same rows.

Rules (why a mirror and not a pass-through):

- Server changes are stored as each message arrives, before we answer it;
  every status we send is true, and a session dying later loses nothing the
  server believes delivered.
- Server Adds are matched to rows by the server's id (an Add re-sent after a
  broken session), then by UID, so nothing is stored twice; each gets a Map.
- Engine writes are one transaction committed in ``flush`` (the store is
  buffered: the engine's status never runs ahead of the mirror); they are
  then *pending* and go out in the next session that may send, until the
  server's status settles them.  A refused change stays pending and listed
  (never taken for a deletion), is retried in ``MAX_ATTEMPTS`` sessions, then
  parked until the item changes again.
- Adds sent without an answer are *in flight*: the next session is a slow
  sync.  So is a first sync, one after lost anchors, one a server forces.
  A slow or refresh session flags the datastore until it finishes well.
- In a slow sync we send nothing and the server sends all it holds: its
  items are matched to our rows by its id, then UID (so an Add of ours that
  did arrive is not stored twice), and what it did not send, it lacks: those
  rows go to it as Adds in the next two-way session, and a pending Delete of
  an item it no longer has is dropped.  (Sending our copies instead lets the
  server match them by its own rules: SyncEvolution's keeps both an item
  changed on its side and our older copy of it, a duplicate.)
- A server change to an item whose local edit has not reached it yet is
  merged three-way (base = what the server last had); a server Delete of such
  an item loses to the edit (it is sent again as an Add).
- With ``format = "vcal10"`` the server's copy of an item we hold is
  reconciled with it (``content.reconcile``): what vCalendar cannot carry is
  not taken for the server's deletion of it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calsync.items import Item, ItemError
from calsync.perms import private_file
from calsync.sync.conflict import resolve
from calsync.syncml import content
from calsync.syncml.client import Applied, LocalChange, ServerChange
from calsync.syncml.model import (
    ALREADY_EXISTS,
    ITEM_ADDED,
    ITEM_NOT_DELETED,
    NOT_FOUND,
    OK,
    ONE_WAY_FROM_SERVER,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    SLOW_SYNC,
    UNSUPPORTED_MEDIA_TYPE,
    is_success,
)

log = logging.getLogger("calsync.syncml.client")

MAX_ATTEMPTS = 3  # sessions in which a refused change is retried

SCHEMA = """
CREATE TABLE IF NOT EXISTS datastores (
    ds INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    our_anchor TEXT,
    server_anchor TEXT,
    nonce TEXT,
    needs_slow INTEGER NOT NULL DEFAULT 0,
    session INTEGER NOT NULL DEFAULT 0,
    next_luid INTEGER NOT NULL DEFAULT 1,
    last_sync REAL,
    last_result TEXT
);
CREATE TABLE IF NOT EXISTS items (
    ds INTEGER NOT NULL,
    luid TEXT NOT NULL,
    guid TEXT,
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
    PRIMARY KEY (ds, luid)
);
CREATE INDEX IF NOT EXISTS items_guid ON items (ds, guid);
CREATE INDEX IF NOT EXISTS items_uid ON items (ds, uid);
"""
# states: live (the server has it, or is to get it); gone (deleted here, the
# server still has it until our Delete is confirmed: not listed to the engine)

_COLUMNS = (
    "luid, guid, uid, kind, content, version, state, pending, inflight, attempts, error, base, seen"
)


@dataclass
class Row:
    luid: str
    guid: str | None
    uid: str
    kind: str
    content: bytes
    version: int
    state: str
    pending: str | None
    inflight: int
    attempts: int
    error: str | None
    base: bytes | None
    seen: int

    @property
    def item(self) -> Item:
        return Item(self.content, self.uid, self.kind)


@dataclass
class SessionState:
    """What the next session starts from."""

    our_anchor: str | None
    server_anchor: str | None
    nonce: str | None
    needs_slow: bool
    session_id: str


def connect(path: Path) -> sqlite3.Connection:
    private_file(path)  # owner-only; SQLite gives its -wal and -shm the same mode
    db = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


def _crlf(data: bytes) -> bytes:
    """Item data that crossed XML lost its CRs (XML normalises line ends): restore them."""
    if b"\r\n" in data or b"\n" not in data:
        return data
    return data.replace(b"\n", b"\r\n")


class ServerMirror:
    """One datastore's rows and session state (see the module docstring)."""

    def __init__(self, db: sqlite3.Connection, identity: str, *, where: str) -> None:
        self.db = db
        self.where = where  # for messages: "SyncML server URL, datastore X"
        found = db.execute("SELECT ds FROM datastores WHERE identity = ?", (identity,)).fetchone()
        if found is None:
            cur = db.execute("INSERT INTO datastores (identity) VALUES (?)", (identity,))
            self.ds = int(cur.lastrowid or 0)
        else:
            self.ds = int(found[0])

    # -- datastore state ---------------------------------------------------------------

    def _get(self, column: str) -> Any:
        return self.db.execute(
            f"SELECT {column} FROM datastores WHERE ds = ?", (self.ds,)
        ).fetchone()[0]

    def _set(self, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE datastores SET {cols} WHERE ds = ?", (*values.values(), self.ds))

    def session_state(self) -> SessionState:
        """The state a session starts from; counts the session (its SessionID)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE datastores SET session = session + 1 WHERE ds = ?", (self.ds,))
            ours, theirs, nonce, slow, session = self.db.execute(
                "SELECT our_anchor, server_anchor, nonce, needs_slow, session FROM datastores "
                "WHERE ds = ?",
                (self.ds,),
            ).fetchone()
        inflight = self.db.execute(
            "SELECT count(*) FROM items WHERE ds = ? AND inflight = 1", (self.ds,)
        ).fetchone()[0]
        return SessionState(ours, theirs, nonce, bool(slow) or inflight > 0, str(session % 10000))

    def save_nonce(self, nonce: str) -> None:
        self._set(nonce=nonce)

    def last_result(self) -> tuple[float | None, str | None]:
        last, result = self.db.execute(
            "SELECT last_sync, last_result FROM datastores WHERE ds = ?", (self.ds,)
        ).fetchone()
        return last, result

    def _new_luid(self) -> str:
        while True:
            found = self.db.execute(
                "UPDATE datastores SET next_luid = next_luid + 1 WHERE ds = ? RETURNING next_luid",
                (self.ds,),
            ).fetchone()
            luid = str(found[0] - 1)
            if self.row(luid) is None:  # (a server may have named one itself)
                return luid

    # -- rows ------------------------------------------------------------------------------

    def rows(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[Row]:
        cur = self.db.execute(
            f"SELECT {_COLUMNS} FROM items WHERE ds = ? AND ({where})", (self.ds, *args)
        )
        return [Row(*r) for r in cur]

    def row(self, luid: str) -> Row | None:
        found = self.rows("luid = ?", (luid,))
        return found[0] if found else None

    def _update(self, luid: str, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(
            f"UPDATE items SET {cols} WHERE ds = ? AND luid = ?", (*values.values(), self.ds, luid)
        )

    def _remove(self, luid: str) -> None:
        self.db.execute("DELETE FROM items WHERE ds = ? AND luid = ?", (self.ds, luid))

    def insert(self, item: Item, *, luid: str | None = None, **values: Any) -> str:
        luid = luid or self._new_luid()
        row: dict[str, Any] = {
            "ds": self.ds,
            "luid": luid,
            "guid": None,
            "uid": item.uid,
            "kind": item.kind,
            "content": item.raw,
            "version": 1,
            "state": "live",
            "pending": None,
            "inflight": 0,
            "attempts": 0,
            "error": None,
            "base": item.raw,
            "seen": 1,
        }
        row.update(values)
        self.db.execute(
            f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return luid

    def listing(self) -> tuple[dict[str, str], dict[str, str]]:
        """(luid -> version, luid -> uid) of the items the engine sees."""
        versions: dict[str, str] = {}
        uids: dict[str, str] = {}
        cur = self.db.execute(
            "SELECT luid, version, uid FROM items WHERE ds = ? AND state = 'live'", (self.ds,)
        )
        for luid, version, uid in cur:
            versions[luid] = str(version)
            uids[luid] = uid
        return versions, uids

    def live(self, ids: Iterable[str]) -> Iterator[Row]:
        wanted = list(ids)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            yield from self.rows(f"luid IN ({marks}) AND state = 'live'", tuple(chunk))

    def pending_count(self) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM items WHERE ds = ? AND pending IS NOT NULL AND attempts < ?",
                (self.ds, MAX_ATTEMPTS),
            ).fetchone()[0]
        )

    def parked(self) -> list[Row]:
        return self.rows("pending IS NOT NULL AND attempts >= ?", (MAX_ATTEMPTS,))

    # -- engine writes (inside the store's transaction) -----------------------------------------

    def engine_add(self, item: Item) -> str:
        return self.insert(item, pending="add", base=None)

    def engine_update(self, row: Row, item: Item) -> int:
        pending = "add" if row.pending == "add" or row.base is None else "replace"
        version = row.version + 1
        self._update(
            row.luid,
            content=item.raw,
            kind=item.kind,
            version=version,
            pending=pending,
            attempts=0,
            error=None,
        )
        return version

    def engine_delete(self, row: Row) -> None:
        if row.base is None and row.guid is None and not row.inflight:
            self._remove(row.luid)  # the server never had it
            return
        self._update(row.luid, state="gone", pending="delete", attempts=0, error=None)


class MirrorBackend:
    """A ``ClientSession``'s backend: the mirror's rows (see ``client.ClientBackend``)."""

    def __init__(self, mirror: ServerMirror, content_type: str) -> None:
        self.m = mirror
        self.db = mirror.db
        self.content_type = content_type
        self.mode: int | None = None
        self._vcal = False  # the server change being applied came as vCalendar

    # -- a session begins ---------------------------------------------------------------------

    def begin(self, mode: int) -> None:
        """The server fixed the sync type: prepare the rows for it."""
        self.mode = mode
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if mode in (SLOW_SYNC, REFRESH_FROM_CLIENT, REFRESH_FROM_SERVER):
                # the server rebuilds its map of our items: its old ids mean nothing now
                self.db.execute("UPDATE items SET guid = NULL WHERE ds = ?", (self.m.ds,))
            if mode == SLOW_SYNC:
                # we send nothing, the server sends all it has; what it does not send,
                # it lacks (see finish)
                self.db.execute("UPDATE items SET seen = 0 WHERE ds = ?", (self.m.ds,))
                self.m._set(needs_slow=1)
            elif mode == REFRESH_FROM_CLIENT:
                self.m._set(needs_slow=1)
            elif mode == REFRESH_FROM_SERVER:
                # the server's content replaces ours: local changes not yet sent are
                # dropped (the engine then carries the server's state to the other side)
                self.db.execute("DELETE FROM items WHERE ds = ? AND state = 'gone'", (self.m.ds,))
                self.db.execute(
                    "UPDATE items SET seen = 0, pending = NULL, attempts = 0, error = NULL, "
                    "inflight = 0 WHERE ds = ?",
                    (self.m.ds,),
                )
                self.m._set(needs_slow=1)

    def outgoing(self, mode: int, push: bool) -> list[LocalChange]:
        """Our changes for package 3 (see the module docstring for slow syncs)."""
        if not push or mode in (ONE_WAY_FROM_SERVER, REFRESH_FROM_SERVER, SLOW_SYNC):
            return []
        out: list[LocalChange] = []
        if mode == REFRESH_FROM_CLIENT:
            rows = self.m.rows("state = 'live'")
        else:
            rows = self.m.rows("pending IS NOT NULL AND attempts < ?", (MAX_ATTEMPTS,))
        order = {"delete": 0, "replace": 1, "add": 2}
        rows.sort(key=lambda r: (order.get(r.pending or "", 1), _num(r.luid)))
        for row in rows:
            if row.state == "gone":
                out.append(LocalChange("Delete", row.luid, None, row.uid))
                continue
            if mode == REFRESH_FROM_CLIENT:
                op = "Add"
            else:
                op = "Add" if row.pending == "add" or row.base is None else "Replace"
            try:
                data = content.encode(row.item, self.content_type)
            except ItemError as e:
                log.error("%s: item %s cannot be sent: %s", self.m.where, row.uid, e.reason)
                self.m._update(row.luid, attempts=MAX_ATTEMPTS, error=e.reason)
                continue
            out.append(LocalChange(op, row.luid, data, row.uid))
        return out

    def sent(self, changes: list[LocalChange]) -> None:
        adds = [(self.m.ds, c.luid) for c in changes if c.op == "Add"]
        if adds:
            self.db.executemany("UPDATE items SET inflight = 1 WHERE ds = ? AND luid = ?", adds)

    # -- the server's answers to our changes ------------------------------------------------------

    def results(self, results: list[tuple[LocalChange, int]]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for change, code in results:
                self._result(change, code)

    def _result(self, change: LocalChange, code: int) -> None:
        row = self.m.row(change.luid)
        if row is None:
            return
        if change.op == "Delete":
            if is_success(code) or code in (NOT_FOUND, 410):
                self.m._remove(row.luid)
            else:
                self._refused(row, code)
            return
        if is_success(code) or (change.op == "Add" and code == ALREADY_EXISTS):
            if row.state == "gone":  # a slow sync re-sent it; its Delete is still due
                self.m._update(row.luid, inflight=0, base=row.content)
                return
            self.m._update(
                row.luid, pending=None, inflight=0, attempts=0, error=None, base=row.content
            )
            return
        if change.op == "Replace" and code in (NOT_FOUND, 410):
            # the server lost it: send it as new
            self.m._update(row.luid, pending="add", base=None, guid=None, inflight=0)
            return
        self._refused(row, code)

    def _refused(self, row: Row, code: int) -> None:
        attempts = row.attempts + 1
        self.m._update(row.luid, inflight=0, attempts=attempts, error=f"status {code}")
        if attempts >= MAX_ATTEMPTS:
            log.error(
                "%s: item %s: the server refused it %d times (status %d); "
                "it is kept here and sent again when it changes",
                self.m.where,
                row.uid,
                attempts,
                code,
            )

    # -- the server's changes ----------------------------------------------------------------------

    def apply(self, changes: list[ServerChange]) -> list[Applied]:
        out: list[Applied] = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for ch in changes:
                try:
                    out.append(self._apply_one(ch))
                except ItemError as e:
                    log.error(
                        "%s: the server's item %s: %s", self.m.where, ch.guid or ch.luid, e.reason
                    )
                    code = UNSUPPORTED_MEDIA_TYPE if "content type" in e.reason else 400
                    out.append(Applied(code))
        return out

    def _apply_one(self, ch: ServerChange) -> Applied:
        if ch.op == "Delete":
            row = self.m.row(ch.luid) if ch.luid else None
            return Applied(self._server_delete(row))
        assert ch.data is not None
        source = f"{self.m.where}, item {ch.guid or ch.luid}"
        data = _crlf(ch.data)
        item = content.decode(data, ch.content_type, source=source)
        self._vcal = content.is_vcal(data, ch.content_type)
        if ch.op == "Add":
            row = None
            if ch.guid:  # sent again (our Map was lost), unless the server reused the id
                found = self.m.rows("guid = ? AND uid = ?", (ch.guid, item.uid))
                row = found[0] if found else None
            if row is None:
                found = self.m.rows("uid = ?", (item.uid,))
                row = found[0] if found else None
            if ch.guid:  # one row per server id
                self.db.execute(
                    "UPDATE items SET guid = NULL WHERE ds = ? AND guid = ?", (self.m.ds, ch.guid)
                )
            if row is None:
                luid = self.m.insert(item, guid=ch.guid)
                return Applied(ITEM_ADDED, luid)
            if ch.guid:
                self.m._update(row.luid, guid=ch.guid)
            self._server_content(row, item)
            return Applied(ITEM_ADDED, row.luid)
        # Replace, by our LUID
        row = self.m.row(ch.luid) if ch.luid else None
        if row is None:
            assert ch.luid is not None
            self.m.insert(item, luid=ch.luid)
            return Applied(ITEM_ADDED, ch.luid)
        self._server_content(row, item)
        return Applied(OK, row.luid)

    def _server_content(self, row: Row, item: Item) -> None:
        """The server holds ``item`` for ``row`` now."""
        if item.uid != row.uid:
            item = item.with_uid(row.uid)  # the row's UID is the item's identity here
        if self._vcal:
            # a vCalendar copy lacks what vCalendar cannot carry: take that from what
            # the server had (or we hold), unless the server changed it
            written = Item(row.base, row.uid, row.kind) if row.base is not None else row.item
            item = content.reconcile(written, item)
        values: dict[str, Any] = {"seen": 1, "inflight": 0, "base": item.raw}
        mine = row.item
        base = Item(row.base, row.uid, row.kind) if row.base is not None else None
        result, pending = item, None
        if row.state == "gone":
            if base is None or base.hash == item.hash:
                self.m._update(row.luid, **values)  # our Delete stands
                return
            values.update(state="live", attempts=0, error=None)  # an edit beats a delete
        elif row.pending in ("add", "replace"):
            if mine.hash == item.hash:
                pass
            elif base is not None and base.hash == item.hash:
                result, pending = mine, row.pending  # unchanged there: ours still to send
                if pending == "add":
                    pending = "replace"  # the server has it now, under our LUID
            else:
                res = resolve("merge", base, item, mine, fallback="newest")
                result = res.result
                pending = "replace" if result.hash != item.hash else None
                log.warning(
                    "%s: item %s changed here and on the server: %s",
                    self.m.where,
                    row.uid,
                    res.outcome,
                )
        values["pending"] = pending
        if pending is None:
            values.update(attempts=0, error=None)
        if row.state != "live" or result.raw != row.content:
            values.update(content=result.raw, kind=result.kind, version=row.version + 1)
        self.m._update(row.luid, **values)

    def _server_delete(self, row: Row | None) -> int:
        if row is None:
            return ITEM_NOT_DELETED
        if row.state == "live" and row.pending in ("add", "replace"):
            # our edit never reached the server, which deleted its copy: the edit wins
            self.m._update(row.luid, pending="add", guid=None, base=None, inflight=0, attempts=0)
            return OK
        self.m._remove(row.luid)
        return OK

    # -- the end ------------------------------------------------------------------------------

    def finish(self, ok: bool, mode: int, our_next: str, server_next: str | None) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            inflight = self.db.execute(
                "SELECT count(*) FROM items WHERE ds = ? AND inflight = 1", (self.m.ds,)
            ).fetchone()[0]
            values: dict[str, Any] = {
                "last_sync": time.time(),
                "last_result": "ok" if ok else "failed",
            }
            if ok:
                if mode == REFRESH_FROM_SERVER:
                    # what the server did not send, it does not have
                    self.db.execute("DELETE FROM items WHERE ds = ? AND seen = 0", (self.m.ds,))
                elif mode == SLOW_SYNC:
                    # what the server did not send, it lacks: ours go to it as new,
                    # and a Delete is moot
                    self.db.execute(
                        "DELETE FROM items WHERE ds = ? AND seen = 0 AND state = 'gone'",
                        (self.m.ds,),
                    )
                    self.db.execute(
                        "UPDATE items SET pending = 'add', base = NULL, guid = NULL, inflight = 0, "
                        "attempts = 0, error = NULL WHERE ds = ? AND seen = 0",
                        (self.m.ds,),
                    )
                values.update(our_anchor=our_next, server_anchor=server_next)
                values["needs_slow"] = 1 if inflight else 0
            elif inflight:
                values["needs_slow"] = 1
            self.db.execute("UPDATE items SET seen = 1 WHERE ds = ? AND seen = 0", (self.m.ds,))
            self.m._set(**values)

    def fail(self) -> None:
        """A session that broke off (before or after the server fixed the sync type)."""
        self.finish(False, self.mode or 0, "", None)


def _num(luid: str) -> tuple[int, str]:
    return (int(luid), "") if luid.isdigit() else (1 << 62, luid)
