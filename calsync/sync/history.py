"""History of every version calsync overwrote or deleted, and of resolved conflicts.

One SQLite file in the state dir, shared by all pairs.  A version is recorded
(and committed) *before* the store write that replaces it, so even a crash
right after the write leaves the old version restorable.

A conflict is logged with both sides' versions as they were (``conflict_sides``:
"a", "b", and the "result" when a merge made a third), so it can be shown side
by side and decided again later (``sync.resolve``); that decision is kept in
``resolutions``.  Both are pruned with their conflict.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calsync.plain import Plain
from calsync.sync.packing import pack, unpack

if TYPE_CHECKING:
    from collections.abc import Callable

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    store TEXT NOT NULL,
    pair TEXT NOT NULL,
    id TEXT,
    time REAL NOT NULL,
    reason TEXT NOT NULL,
    hash TEXT,
    content BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_uid ON versions(uid);
CREATE INDEX IF NOT EXISTS versions_time ON versions(time);
CREATE TABLE IF NOT EXISTS conflicts (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    pair TEXT NOT NULL,
    uid TEXT NOT NULL,
    policy TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conflicts_time ON conflicts(time);
CREATE TABLE IF NOT EXISTS conflict_sides (
    conflict INTEGER NOT NULL,
    side TEXT NOT NULL,
    store TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (conflict, side)
);
CREATE TABLE IF NOT EXISTS resolutions (
    conflict INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    keep TEXT NOT NULL
);
"""

# Why a version was saved.
CONFLICT_LOSER = "conflict-loser"
REMOTE_DELETE = "remote-delete"
UPDATE = "update"
RESTORE = "restore"
RESOLVE = "resolve"  # replaced when a conflict was decided again (sync.resolve)
DUPLICATE = "duplicate"  # a copy of an item its file held twice, not the one synced

# The sides of a logged conflict (``conflict_sides``).
SIDE_A = "a"
SIDE_B = "b"
SIDE_RESULT = "result"  # what a merge made, when it is neither side's version


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Version(Plain):
    __slots__ = ("content", "hash", "id", "n", "pair", "reason", "store", "time", "uid")
    n: int
    uid: str
    store: str
    pair: str
    id: str | None
    time: float
    reason: str
    hash: str | None
    content: bytes

    def __init__(
        self,
        n: int,
        uid: str,
        store: str,
        pair: str,
        id: str | None,
        time: float,
        reason: str,
        hash: str | None,
        content: bytes,
    ) -> None:
        self.n = n
        self.uid = uid
        self.store = store
        self.pair = pair
        self.id = id
        self.time = time
        self.reason = reason
        self.hash = hash
        self.content = content

    def to_json(self, with_content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.n,
            "uid": self.uid,
            "store": self.store,
            "pair": self.pair,
            "id": self.id,
            "time": _iso(self.time),
            "reason": self.reason,
        }
        if with_content:
            out["content"] = self.content.decode("utf-8", "replace")
        return out


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """Opened on first use: a sync that overwrites nothing never touches it."""
        if self._db is None:
            if not self.path.exists():  # created owner-only (its -wal and -shm follow it)
                from calsync.perms import private_file

                private_file(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def record(
        self,
        *,
        uid: str,
        store: str,
        pair: str,
        reason: str,
        content: bytes | None = None,
        packed: bytes | None = None,
        id: str | None = None,
        hash: str | None = None,
    ) -> int:
        """Save one version (committed before returning, unless in ``record_many``).

        The content comes as ``content``, or as ``packed`` when it is already
        packed the way ``packing.pack`` does (a status base): kept as it is."""
        if packed is None:
            if content is None:
                raise TypeError("record() needs content or packed")
            packed = pack(content)
        last = self.db.execute(
            "SELECT hash, store FROM versions WHERE uid = ? ORDER BY n DESC LIMIT 1", (uid,)
        ).fetchone()
        if hash is not None and last is not None and last == (hash, store):
            # the same version again (a sync repeated after a crash): keep one copy
            found = self.db.execute("SELECT max(n) FROM versions WHERE uid = ?", (uid,))
            return int(found.fetchone()[0])
        cur = self.db.execute(
            "INSERT INTO versions(uid, store, pair, id, time, reason, hash, content) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, store, pair, id, time.time(), reason, hash, packed),
        )
        return int(cur.lastrowid or 0)

    def has(self, uid: str, store: str, hash: str) -> bool:
        """Whether this version of ``uid`` from ``store`` is saved already."""
        found = self.db.execute(
            "SELECT 1 FROM versions WHERE uid = ? AND store = ? AND hash = ? LIMIT 1",
            (uid, store, hash),
        )
        return found.fetchone() is not None

    def record_many(self, records: list[dict[str, Any]]) -> None:
        """Save several versions (``record``'s keyword arguments each) in one
        transaction, committed before returning: one commit instead of one each."""
        with self.db:
            self.db.execute("BEGIN")
            for r in records:
                self.record(**r)

    def versions(
        self,
        uid: str | None = None,
        limit: int | None = None,
        *,
        where: Callable[[str, str], bool] | None = None,
    ) -> list[Version]:
        """Saved versions, newest first; ``where(store, pair)``: only those it allows
        (asked in the query, so ``limit`` counts allowed ones)."""
        sql = "SELECT n, uid, store, pair, id, time, reason, hash, content FROM versions"
        conditions: list[str] = []
        args: list[Any] = []
        if uid is not None:
            conditions.append("uid = ?")
            args.append(uid)
        if where is not None:
            self.db.create_function("calsync_allowed", 2, where, deterministic=True)
            conditions.append("calsync_allowed(store, pair)")
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY n DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [
            Version(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], unpack(r[8]))
            for r in self.db.execute(sql, args)
        ]

    def version(self, n: int) -> Version | None:
        found = [v for v in self._by_n(n)]
        return found[0] if found else None

    def _by_n(self, n: int) -> list[Version]:
        r = self.db.execute(
            "SELECT n, uid, store, pair, id, time, reason, hash, content FROM versions WHERE n = ?",
            (n,),
        ).fetchone()
        if r is None:
            return []
        return [Version(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], unpack(r[8]))]

    def record_conflict(
        self,
        *,
        pair: str,
        uid: str,
        policy: str,
        outcome: str,
        details: dict[str, Any],
        sides: dict[str, tuple[str, bytes]] | None = None,
    ) -> int:
        """Log a resolved conflict; ``sides``: side ("a", "b", "result") -> (store,
        content as it was).  Returns the conflict's number."""
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute(
                "INSERT INTO conflicts(time, pair, uid, policy, outcome, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), pair, uid, policy, outcome, json.dumps(details, sort_keys=True)),
            )
            n = int(cur.lastrowid or 0)
            self.db.executemany(
                "INSERT INTO conflict_sides(conflict, side, store, content) VALUES (?, ?, ?, ?)",
                [
                    (n, side, store, pack(content))
                    for side, (store, content) in (sides or {}).items()
                ],
            )
        return n

    def conflicts(
        self, limit: int = 100, *, where: Callable[[str], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Logged conflicts, newest first; ``where(pair)``: only those it allows."""
        allowed = ""
        if where is not None:
            self.db.create_function("calsync_allowed", 1, where, deterministic=True)
            allowed = "WHERE calsync_allowed(c.pair) "
        rows = self.db.execute(
            "SELECT c.n, c.time, c.pair, c.uid, c.policy, c.outcome, c.details, r.time, r.keep "
            "FROM conflicts c LEFT JOIN resolutions r ON r.conflict = c.n "
            f"{allowed}ORDER BY c.n DESC LIMIT ?",
            (limit,),
        )
        return [self._conflict_json(r) for r in rows]

    def conflict(self, n: int) -> dict[str, Any] | None:
        """Conflict ``n`` as ``conflicts()`` lists it, with ``sides``: side -> {store,
        content} (empty for a conflict logged before sides were kept)."""
        r = self.db.execute(
            "SELECT c.n, c.time, c.pair, c.uid, c.policy, c.outcome, c.details, r.time, r.keep "
            "FROM conflicts c LEFT JOIN resolutions r ON r.conflict = c.n WHERE c.n = ?",
            (n,),
        ).fetchone()
        if r is None:
            return None
        out = self._conflict_json(r)
        out["sides"] = {
            side: {"store": store, "content": unpack(blob).decode("utf-8", "replace")}
            for side, store, blob in self.db.execute(
                "SELECT side, store, content FROM conflict_sides WHERE conflict = ?", (n,)
            )
        }
        return out

    def conflict_sides(self, n: int) -> dict[str, tuple[str, bytes]]:
        """The versions logged with conflict ``n``: side -> (store, content)."""
        return {
            side: (store, unpack(blob))
            for side, store, blob in self.db.execute(
                "SELECT side, store, content FROM conflict_sides WHERE conflict = ?", (n,)
            )
        }

    def record_resolution(self, n: int, keep: str) -> None:
        """Conflict ``n`` was decided again: ``keep`` ("a", "b" or "both")."""
        self.db.execute(
            "INSERT INTO resolutions(conflict, time, keep) VALUES (?, ?, ?) "
            "ON CONFLICT(conflict) DO UPDATE SET time = excluded.time, keep = excluded.keep",
            (n, time.time(), keep),
        )

    @staticmethod
    def _conflict_json(r: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "n": r[0],
            "time": _iso(r[1]),
            "pair": r[2],
            "uid": r[3],
            "policy": r[4],
            "outcome": r[5],
            **json.loads(r[6]),
            "resolved": {"time": _iso(r[7]), "keep": r[8]} if r[8] is not None else None,
        }

    def prune(self, retention_days: float) -> int:
        if self._db is None and not self.path.exists():
            return 0
        cutoff = time.time() - retention_days * 86400
        with self.db:
            self.db.execute("BEGIN")
            n = self.db.execute("DELETE FROM versions WHERE time < ?", (cutoff,)).rowcount
            self.db.execute("DELETE FROM conflicts WHERE time < ?", (cutoff,))
            self.db.execute(
                "DELETE FROM conflict_sides WHERE conflict NOT IN (SELECT n FROM conflicts)"
            )
            self.db.execute(
                "DELETE FROM resolutions WHERE conflict NOT IN (SELECT n FROM conflicts)"
            )
        return int(n)
