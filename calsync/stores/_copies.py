"""The iCalendar items a lossy store last wrote, by UID (SQLite in its cache dir).

A store whose format cannot carry everything (a .vcs file) reads its entries
back through what it wrote: an entry still as written is the item written; one
a device rewrote is reconciled with it (``calsync.items.vcal.reconcile``).
Losing this file loses nothing the store holds; its items then read as the
file says.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS copies (uid TEXT PRIMARY KEY, version TEXT, raw BLOB)"


class WrittenCopies:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            if not self.path.exists():  # created owner-only (its -wal and -shm follow it)
                from calsync.perms import private_file

                private_file(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        return self._db

    def get(self, uid: str) -> tuple[str, bytes] | None:
        """(version of the entry as written, the item written), if we wrote it."""
        if self._db is None and not self.path.exists():
            return None
        try:
            row = self.db.execute(
                "SELECT version, raw FROM copies WHERE uid = ?", (uid,)
            ).fetchone()
        except sqlite3.Error:
            return None  # a damaged cache: read the file as it is
        return (str(row[0]), bytes(row[1])) if row is not None else None

    def put(self, rows: Iterable[tuple[str, str, bytes]]) -> None:
        """Record (uid, version, raw) for entries about to be written."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO copies VALUES (?, ?, ?)", rows)

    def keep_only(self, uids: Iterable[str]) -> None:
        """Forget the UIDs no longer in the file."""
        if self._db is None and not self.path.exists():
            return
        keep = set(uids)
        known = [r[0] for r in self.db.execute("SELECT uid FROM copies")]
        gone = [(uid,) for uid in known if uid not in keep]
        if gone:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("DELETE FROM copies WHERE uid = ?", gone)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
