"""A consistent read-only snapshot of ``local.sqlite`` (plus its ``-wal``).

Why copy instead of open: while Thunderbird runs, its exclusive lock makes
even a SELECT fail, yet a copy of the database and its write-ahead log opens
fine (SQLite rebuilds the WAL index from the log).  Reading a copy also never
takes a lock that a starting Thunderbird could trip over.  A copy taken while
Thunderbird checkpoints could be torn, so both files are stat'ed before and
after copying and the copy is retried until nothing moved, then checked with
``PRAGMA quick_check``.  Never copy the database without its ``-wal``: after a
crash the log holds committed data.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ATTEMPTS = 8


class SnapshotError(Exception):
    pass


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


@contextmanager
def snapshot(db: Path, workdir: Path, *, check: bool) -> Iterator[sqlite3.Connection]:
    """A connection to a private copy of ``db`` (deleted afterwards)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tb-snapshot-", dir=workdir))
    try:
        conn = _copy(db, tmp / "local.sqlite", check)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy(db: Path, copy: Path, check: bool) -> sqlite3.Connection:
    last = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(0.05 * attempt)
        before = (_stat(db), _stat(wal_of(db)))
        if before[0] is None:
            raise SnapshotError(f"{db} does not exist")
        try:
            shutil.copyfile(db, copy)
            if before[1] is not None:
                shutil.copyfile(wal_of(db), wal_of(copy))
            else:
                wal_of(copy).unlink(missing_ok=True)
        except OSError as e:
            raise SnapshotError(f"cannot copy {db}: {e}") from None
        if (_stat(db), _stat(wal_of(db))) != before:
            last = "it changed while being copied"
            continue
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            if check:
                result = conn.execute("PRAGMA quick_check").fetchone()
                if not result or result[0] != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {result[0] if result else '?'}")
            else:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.DatabaseError as e:
            conn.close()
            last = str(e)
            if not check:
                raise SnapshotError(f"{db}: {e}") from None
    raise SnapshotError(f"no consistent copy of {db} after {ATTEMPTS} attempts ({last})")
