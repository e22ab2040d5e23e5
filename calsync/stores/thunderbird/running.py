"""Is Thunderbird running on a profile?  Read its profile lock, never take it.

Why not simply try the database: while Thunderbird runs it holds
``local.sqlite`` through an exclusive VFS, and it caches every item it has
read, so a write that got through would be invisible to it and overwritten.
The profile lock says whether it runs before we touch the database at all:

* Linux: ``lock`` is a symlink ``<ip>:+<pid>`` and ``.parentlock`` carries an
  fcntl write lock while Thunderbird runs;
* macOS: the fcntl lock on ``.parentlock``;
* Windows: ``parent.lock`` is held open without sharing.

The fcntl lock is only *queried* (F_GETLK), so a Thunderbird starting at the
same moment never finds it taken by us.  A symlink whose process is gone is
stale and ignored.  The final word is the database itself: the writer's
``BEGIN IMMEDIATE`` fails while anyone holds it.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Running:
    """Evidence that Thunderbird runs on the profile."""

    pid: int | None
    how: str  # "profile lock" | "lock symlink" | "parent.lock"

    def __str__(self) -> str:
        pid = f" (pid {self.pid})" if self.pid else ""
        return f"Thunderbird is running on this profile{pid}"


def running(profile: Path) -> Running | None:
    """Who runs on ``profile`` now, or None."""
    if sys.platform == "win32":
        return _windows(profile)
    held = _fcntl_holder(profile / ".parentlock")
    if held is not None:
        return Running(held or _symlink_pid(profile), "profile lock")
    pid = _symlink_pid(profile)
    if pid is not None and _alive(pid) and _looks_like_thunderbird(pid):
        return Running(pid, "lock symlink")
    return None


def _symlink_pid(profile: Path) -> int | None:
    try:
        target = os.readlink(profile / "lock")
    except OSError:
        return None
    _, _, pid = target.rpartition(":+")
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _looks_like_thunderbird(pid: int) -> bool:
    """False only when we can see the process and it is something else (pid reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    program = os.path.basename(cmdline.split(b"\0", 1)[0]).lower()
    return b"thunderbird" in program or b"icedove" in program


def _flock_struct() -> tuple[str, int]:
    """struct flock layout (format, offset of l_pid) of this platform."""
    if sys.platform == "darwin" or "bsd" in sys.platform:
        return "qqihh", 16  # l_start, l_len, l_pid, l_type, l_whence
    return "hhqqi4x", 24  # Linux: l_type, l_whence, l_start, l_len, l_pid


def _fcntl_holder(path: Path) -> int | None:
    """The pid holding a POSIX lock on ``path`` (0 if unknown), or None when free."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fmt, _ = _flock_struct()
        if fmt.startswith("qq"):
            query = struct.pack(fmt, 0, 0, 0, fcntl.F_WRLCK, os.SEEK_SET)
        else:
            query = struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        try:
            answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return 0
            return None
        fields = struct.unpack(fmt, answer)
        if fmt.startswith("qq"):
            l_type, pid = fields[3], fields[2]
        else:
            l_type, pid = fields[0], fields[4]
        if l_type == fcntl.F_UNLCK:
            return None
        return int(pid) if pid > 0 else 0
    finally:
        os.close(fd)


def _windows(profile: Path) -> Running | None:
    lock = profile / "parent.lock"
    if not lock.exists():
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except PermissionError:
        return Running(None, "parent.lock")
    except OSError:
        return None
    os.close(fd)
    return None
