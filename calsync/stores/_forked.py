"""Bulk file work done by forked children, in calsync's own one-shot sync.

Why: a sync of thousands of files is bound by system calls (stat, open, read,
link, write: 3-40 µs each on a small VM), not by Python.  Two processes do
them in parallel (a store's listing; half of a batch of reads or new files):
reading and parsing 10k files takes 110 ms instead of 220, writing them
200-270 ms instead of 330-460.  Threads do not help: every system call hands
the GIL over, which costs more than it saves.

Rules:
- Only where ``allow()`` was called: the ``calsync sync`` command in its own
  process (``calsync.cli.main``).  Never in the daemon, nor in a program that
  calls calsync as a library: forking a process we do not own is not ours to do.
- Only on Linux (macOS frameworks are not fork-safe, Windows has no fork).
- The child runs one function over its part, sends the result through a pipe
  and leaves with ``os._exit``: no atexit handlers, no buffers flushed twice,
  nothing of the parent's (SQLite, logging, locks) touched.  It must not log:
  its result says what to report.  Results are plain data (str, bytes, bool,
  None, tuples, lists, dicts) sent with ``marshal``: built in (no import),
  and faster than pickle for such data.
- A child that fails gives None: the caller does that part itself, in a way
  that is right whatever the child managed to do before it failed.
- A child that writes dies with its parent (``PR_SET_PDEATHSIG``): a sync
  killed mid-way leaves no orphan writing on while the next sync runs.
"""

from __future__ import annotations

import marshal
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Below this many items a fork (a few ms for a process of some 50 MB) costs
# more than half of the work saves.
MINIMUM = 1000

_allowed = False


def allow() -> None:
    """Let bulk jobs of this process fork (see the module's rules)."""
    global _allowed
    _allowed = True


def usable(n: int) -> bool:
    """Whether a job of ``n`` items should give half of them to a child."""
    return _allowed and n >= MINIMUM and sys.platform == "linux" and hasattr(os, "fork")


_PR_SET_PDEATHSIG = 1
_PIPE_SIZE = 1 << 20  # Linux's default limit for unprivileged processes


def _prctl() -> Any:
    """libc's prctl, looked up in the parent (nothing is loaded in the child)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


class Child(Generic[T]):
    """``work(part)`` computed in a forked child; ``result()`` collects it."""

    def __init__(
        self, work: Callable[[Sequence[Any]], T], part: Sequence[Any], *, writes: bool = False
    ) -> None:
        prctl = _prctl() if writes else None
        parent = os.getpid()
        read_end, write_end = os.pipe()
        try:  # room for a whole result: the child need not wait for the parent to read
            import fcntl  # POSIX only, like fork

            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        except (OSError, AttributeError):
            pass  # a smaller pipe only means the child finishes when it is read
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 1
            try:
                os.close(read_end)
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent reports a Ctrl-C
                if prctl is not None:
                    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                    if os.getppid() != parent:  # it died before that took effect
                        os._exit(1)
                result: Any = work(part)  # plain data (see the module docstring)
                view = memoryview(marshal.dumps(result))
                while view:
                    view = view[os.write(write_end, view) :]
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid: int | None = pid
        self._read_end = read_end

    def result(self) -> T | None:
        """The child's result, or None if it failed (the caller then does the part)."""
        chunks = []
        try:
            while chunk := os.read(self._read_end, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(self._read_end)
            status = self._reap()
        if status != 0:
            return None
        try:
            result: T = marshal.loads(b"".join(chunks))
        except Exception:
            return None
        return result

    def abandon(self) -> None:
        """Stop the child (the parent is failing): kill it and reap it."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self._read_end)
        self._reap()

    def _reap(self) -> int:
        if self._pid is None:
            return 1
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        return os.waitstatus_to_exitcode(status)
