"""What one client may cost the gateway: every connection limit, in one place.

Why: ``calsync serve`` faces devices, and soon a LAN.  Whatever a client
holds (a socket, a file descriptor, a worker, a log line) must be bounded,
and the bounds must be findable and explained; the code that enforces them
(``connections.py``, ``server.py``) takes them from here.

Connections (enforced below ASGI, in ``connections.GuardedH11Protocol``):

* ``HEADER_TIMEOUT``: a new connection sends its complete request head
  (request line and headers) within this many seconds, and so does a
  kept-alive one once it has sent a byte of its next request; otherwise it is
  closed (a "slowloris" sends headers byte by byte to hold a socket forever);
* ``BODY_IDLE_TIMEOUT``: a request body that stops arriving for this long is
  cut (the handler then sees the client as gone); time the server itself
  does not read (flow control, ``Expect: 100-continue``) does not count;
* ``BODY_TIMEOUT``: the most a whole body may take (a trickle of one byte a
  second is cut here); the largest legitimate bodies (a 4 MB CalDAV item, a
  SyncML message) take seconds;
* ``SEND_TIMEOUT``: a client that stops reading our answer for this long is
  cut (its unread answer would otherwise hold the handler);
* ``KEEP_ALIVE``: an idle kept-alive connection is closed after this long
  (uvicorn's ``timeout_keep_alive``);
* ``MAX_CONNECTIONS``: open client connections at once, and at most the
  process's open-file limit minus ``FD_RESERVE`` and ``BACKLOG`` (databases,
  their -wal and -shm, store files, watchers, logs need descriptors too: with
  none left, an accept fails with EMFILE and asyncio retries it in a tight
  loop).  ``BACKLOG`` is the listen queue, and also how many connections
  asyncio accepts in one go before any of them reaches the guard.  Beyond
  it, a new connection closes the oldest one that is waiting for a request
  head (never sent one, or idle between requests), else the oldest that has
  been sending its body for more than ``BODY_GRACE``; a request being worked
  on is never closed for a newcomer, and if every connection has one, the
  newcomer is closed;
* ``MAX_REQUESTS``: requests being handled at once, counting ones whose client
  has gone while their work finishes; beyond it, 503 (uvicorn's
  ``limit_concurrency``, which also counts open connections: hence above
  ``MAX_CONNECTIONS``, or idle sockets alone would make it refuse everyone);
* ``NOFILE_WANTED``: ``calsync serve`` raises its soft open-file limit toward
  this (never above the hard limit);
* ``LOG_INTERVAL``: connections cut, refused or evicted, and failed accepts,
  are counted and logged at most once per interval (one line with the
  counts), never once per connection.

Failed logins (passwords, API tokens) are throttled per source address by
``logins.FailureThrottle``.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 120.0
BODY_GRACE = 10.0
SEND_TIMEOUT = 60.0
KEEP_ALIVE = 30
MAX_CONNECTIONS = 512
FD_RESERVE = 256
BACKLOG = 128
MAX_REQUESTS = 768
NOFILE_WANTED = 4096
LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class Limits:
    """The connection limits one server applies (the defaults above; tests shorten them)."""

    header_timeout: float = HEADER_TIMEOUT
    body_idle_timeout: float = BODY_IDLE_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    body_grace: float = BODY_GRACE
    send_timeout: float = SEND_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS
    fd_reserve: int = FD_RESERVE
    backlog: int = BACKLOG
    max_requests: int = MAX_REQUESTS
    log_interval: float = LOG_INTERVAL

    def connection_cap(self, open_files: int | None) -> int:
        """``max_connections``, lowered to fit the open-file limit ``open_files``."""
        if open_files is None:
            return self.max_connections
        return max(16, min(self.max_connections, open_files - self.fd_reserve - self.backlog))


def open_file_limit(raise_to: int | None = None) -> int | None:
    """The soft limit on open files (None: unknown or unlimited), first raised toward
    ``raise_to`` if the hard limit allows."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if raise_to is not None and soft != resource.RLIM_INFINITY and soft < raise_to:
        target = raise_to if hard == resource.RLIM_INFINITY else min(raise_to, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    return None if soft == resource.RLIM_INFINITY else int(soft)
