"""One sync of a pair at a time, across processes (daemon and command line)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Busy(Exception):
    """Another process is syncing this pair right now."""


@contextmanager
def pair_lock(path: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (waiting up to ``wait`` seconds)."""
    if not path.parent.is_dir():
        from calsync.perms import private_dir

        private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                _lock(fd)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise Busy(str(path)) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
