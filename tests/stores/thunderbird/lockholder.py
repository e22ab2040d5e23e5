"""A process that holds a profile the way a running Thunderbird does.

Thunderbird holds an fcntl lock on ``<profile>/.parentlock``, a ``lock``
symlink to ``<ip>:+<pid>``, and ``local.sqlite`` through an exclusive VFS
(nobody else can even read it).  This holder does the same with Python's
sqlite3 (``locking_mode=EXCLUSIVE`` in WAL mode), so the store's running
detection, hot snapshots and queueing are tested against real locks in a
fraction of Thunderbird's start-up time.  The real Thunderbird is used in
``test_real_thunderbird``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import fcntl, os, sqlite3, sys
profile, profile_lock = sys.argv[1], sys.argv[2] == "1"
link = os.path.join(profile, "lock")
if profile_lock:
    fd = os.open(os.path.join(profile, ".parentlock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.symlink("127.0.0.1:+%d" % os.getpid(), link)
db = os.path.join(profile, "calendar-data", "local.sqlite")
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE cal_tz_version SET version = version")
conn.execute("COMMIT")
print("ready", flush=True)
for line in sys.stdin:
    if line.strip():
        conn.execute(line.strip())
        print("done", flush=True)
conn.close()
if profile_lock:
    os.unlink(link)
"""


class Holder:
    """Start with ``Holder(profile)``; ``sql()`` writes as Thunderbird would; ``stop()``."""

    def __init__(self, profile: Path, *, profile_lock: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(profile), "1" if profile_lock else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", "lock holder did not start"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sql(self, statement: str) -> None:
        """Run one SQL statement in the holder's connection (Thunderbird editing)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(statement.replace("\n", " ") + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
