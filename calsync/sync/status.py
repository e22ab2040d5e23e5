"""The status database of a pair: what each side held after the last sync.

One SQLite file per pair.  Per UID: the id, version and content hash seen on
each side, and the last synced content (zstd, see ``packing``) as the common ancestor for the
three-way merge.  ``meta`` holds the stores' identities (to notice a store
pointed somewhere else) and bookkeeping; ``runs`` the last ``RUNS_KEPT`` runs
(when, how long, what changed: the web page plots them), written by
``record_run`` as the last thing a run does.

Writes are staged and committed in batches by the engine, never before the
store writes they describe are durable (see ``calsync.sync.execute``): a status
that lags behind the stores converges on the next sync, one that ran ahead
would not.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from calsync.plain import Plain
from calsync.sync.packing import pack, unpack

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    uid TEXT PRIMARY KEY,
    a_id TEXT NOT NULL, a_ver TEXT NOT NULL, a_hash TEXT NOT NULL,
    b_id TEXT NOT NULL, b_ver TEXT NOT NULL, b_hash TEXT NOT NULL,
    base BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    seconds REAL NOT NULL,
    changes INTEGER NOT NULL,
    conflicts INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"""

RUNS_KEPT = 200  # runs remembered per pair (older ones are dropped as new ones come)

# A run's outcome in the runs log.
RUN_OK = "ok"
RUN_ERRORS = "errors"  # some items failed, the rest synced
RUN_STOPPED = "stopped"  # the pair did not sync (a store down, a guard, shutdown)


class Run(Plain):
    """One run of the pair, as ``runs()`` returns it (oldest first)."""

    __slots__ = ("changes", "conflicts", "errors", "outcome", "seconds", "time")
    time: float
    seconds: float
    changes: int
    conflicts: int
    errors: int
    outcome: str

    def __init__(
        self, time: float, seconds: float, changes: int, conflicts: int, errors: int, outcome: str
    ) -> None:
        self.time = time
        self.seconds = seconds
        self.changes = changes
        self.conflicts = conflicts
        self.errors = errors
        self.outcome = outcome


class Row(Plain):
    """The last synced state of one UID on both sides."""

    __slots__ = ("a_hash", "a_id", "a_ver", "b_hash", "b_id", "b_ver", "uid")
    uid: str
    a_id: str
    a_ver: str
    a_hash: str
    b_id: str
    b_ver: str
    b_hash: str

    def __init__(
        self, uid: str, a_id: str, a_ver: str, a_hash: str, b_id: str, b_ver: str, b_hash: str
    ) -> None:
        self.uid = uid
        self.a_id = a_id
        self.a_ver = a_ver
        self.a_hash = a_hash
        self.b_id = b_id
        self.b_ver = b_ver
        self.b_hash = b_hash

    def side(self, side: str) -> tuple[str, str, str]:
        if side == "a":
            return self.a_id, self.a_ver, self.a_hash
        return self.b_id, self.b_ver, self.b_hash


class StatusDB:
    """Per-pair status (see module docstring)."""

    def __init__(self, path: Path) -> None:
        if not path.exists():  # created owner-only (its -wal and -shm follow it)
            from calsync.perms import private_file

            private_file(path)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        # uid -> (row, base content or None to keep the stored base)
        self._puts: dict[str, tuple[Row, bytes | None]] = {}
        self._removes: set[str] = set()
        # uid -> (base content, its packed form), packed ahead of a commit
        self._packed: dict[str, tuple[bytes, bytes]] = {}

    def close(self) -> None:
        self.db.close()

    # -- reading --------------------------------------------------------------

    def rows(self) -> dict[str, Row]:
        cur = self.db.execute("SELECT uid, a_id, a_ver, a_hash, b_id, b_ver, b_hash FROM items")
        return {r[0]: Row(*r) for r in cur}

    def base(self, uid: str) -> bytes | None:
        return self.bases([uid]).get(uid)

    def bases(self, uids: Iterable[str]) -> dict[str, bytes]:
        """``base`` of many UIDs in a few queries (those without a base are left out)."""
        return {uid: unpack(blob) for uid, blob in self.packed_bases(uids).items()}

    def packed_bases(self, uids: Iterable[str]) -> dict[str, bytes]:
        """The bases as stored (``packing.pack``): the history keeps them as they are."""
        wanted = list(uids)
        out: dict[str, bytes] = {}
        for i in range(0, len(wanted), 500):  # SQLite limits bound parameters
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.db.execute(f"SELECT uid, base FROM items WHERE uid IN ({marks})", chunk)
            out.update((uid, blob) for uid, blob in cur if blob is not None)
        return out

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(found[0]) if found else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the runs log ----------------------------------------------------------

    def record_run(
        self, when: float, seconds: float, changes: int, conflicts: int, errors: int, outcome: str
    ) -> None:
        """Append a run to the log (committed at once) and drop the oldest past
        ``RUNS_KEPT``."""
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute(
                "INSERT INTO runs(time, seconds, changes, conflicts, errors, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (when, seconds, changes, conflicts, errors, outcome),
            )
            self.db.execute("DELETE FROM runs WHERE n <= ?", ((cur.lastrowid or 0) - RUNS_KEPT,))

    def runs(self, limit: int = RUNS_KEPT) -> list[Run]:
        """The last ``limit`` runs, oldest first."""
        cur = self.db.execute(
            "SELECT time, seconds, changes, conflicts, errors, outcome FROM runs "
            "ORDER BY n DESC LIMIT ?",
            (limit,),
        )
        return [Run(*r) for r in reversed(cur.fetchall())]

    # -- staged writes --------------------------------------------------------

    def stage_put(self, row: Row, base: bytes | None) -> None:
        """Stage a row; ``base`` None keeps the base already stored for the UID.

        The base is packed later, at the commit or ahead of it (``packing_ahead``);
        until then the stage holds the caller's own bytes object, no copy."""
        self._removes.discard(row.uid)
        self._puts[row.uid] = (row, base)

    @contextmanager
    def packing_ahead(self, minimum: int = 256) -> Iterator[None]:
        """Pack the staged bases in a thread while the body runs.

        The engine wraps the stores' flush in this: a flush mostly waits in the
        kernel (syncfs) without the GIL, so a first sync's thousands of bases are
        packed meanwhile rather than after it.  The body must not stage or commit.
        Fewer than ``minimum`` bases are left to the commit (a thread costs more).
        """
        todo = [
            (uid, base)
            for uid, (_, base) in self._puts.items()
            if base is not None and self._packed.get(uid, (None,))[0] is not base
        ]
        if len(todo) < minimum:
            yield
            return
        done: list[tuple[str, tuple[bytes, bytes]]] = []
        worker = threading.Thread(
            target=lambda: done.extend((uid, (base, pack(base))) for uid, base in todo),
            name="calsync-pack",
            daemon=True,
        )
        worker.start()
        try:
            yield
        finally:
            worker.join()
            self._packed.update(d for d in done if d[0] in self._puts)  # not discarded

    def _packed_base(self, uid: str, base: bytes) -> bytes:
        ahead = self._packed.pop(uid, None)
        if ahead is not None and ahead[0] is base:
            return ahead[1]
        return pack(base)

    def stage_remove(self, uid: str) -> None:
        self._puts.pop(uid, None)
        self._packed.pop(uid, None)
        self._removes.add(uid)

    def commit(self, uids: set[str] | None = None) -> None:
        """Write staged changes (only those of ``uids`` when given) in one transaction."""
        if uids is None:
            puts = list(self._puts.values())
            removes = list(self._removes)
            self._puts.clear()
            self._removes.clear()
        else:
            puts = [self._puts.pop(u) for u in list(self._puts) if u in uids]
            removes = [u for u in self._removes if u in uids]
            self._removes.difference_update(removes)
        if not puts and not removes:
            return
        with_base = [
            (
                r.uid,
                r.a_id,
                r.a_ver,
                r.a_hash,
                r.b_id,
                r.b_ver,
                r.b_hash,
                self._packed_base(r.uid, base),
            )
            for r, base in puts
            if base is not None
        ]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)", with_base
            )
            self.db.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT(uid) DO UPDATE SET a_id = excluded.a_id, a_ver = excluded.a_ver, "
                "a_hash = excluded.a_hash, b_id = excluded.b_id, b_ver = excluded.b_ver, "
                "b_hash = excluded.b_hash",
                [
                    (r.uid, r.a_id, r.a_ver, r.a_hash, r.b_id, r.b_ver, r.b_hash)
                    for r, base in puts
                    if base is None
                ],
            )
            self.db.executemany("DELETE FROM items WHERE uid = ?", [(u,) for u in removes])

    def staged(self) -> set[str]:
        """UIDs with staged, uncommitted changes."""
        return set(self._puts) | self._removes

    def discard(self, uids: set[str]) -> None:
        """Drop staged changes of ``uids`` (their store writes did not land)."""
        for u in uids:
            self._puts.pop(u, None)
            self._packed.pop(u, None)
            self._removes.discard(u)

    def reset(self) -> None:
        """Forget everything (the next sync is a first sync)."""
        self._puts.clear()
        self._packed.clear()
        self._removes.clear()
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM items")
            self.db.execute("DELETE FROM meta")
