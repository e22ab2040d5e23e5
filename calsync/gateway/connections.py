"""Holding clients to the connection limits (``limits.py``), below ASGI.

Why a protocol class: uvicorn's h11 protocol has a keep-alive timeout but no
timeout for reading a request head or body, and no cap on connections (its
``limit_concurrency`` answers 503 but keeps every idle socket, and counts
them).  An ASGI application sees a request only once its head is complete,
so a client sending headers a byte at a time ("slowloris") can only be cut
at the protocol level.  1,100 idle sockets under a 1024-file limit made every
endpoint time out and asyncio log 7 MB a second of failed accepts.

``GuardedH11Protocol`` is uvicorn's ``H11Protocol`` with a ``ConnectionGuard``
watching every connection (one sweep a second, not a timer per connection):

* waiting for a request head: cut after ``header_timeout`` (from the
  connection's start, or from the first byte of a kept-alive connection's
  next request; an idle kept-alive connection is uvicorn's ``keep_alive``);
  over TLS the handshake is part of this (see below);
* sending a body: cut when nothing arrived for ``body_idle_timeout`` or the
  body took more than ``body_timeout`` in all; time the server does not read
  (flow control paused, ``Expect: 100-continue`` not answered yet) does not
  count;
* not reading our answer for ``send_timeout``: cut;
* beyond the connection cap, a new connection evicts the oldest one waiting
  for a head, else the oldest body in progress for more than ``body_grace``;
  else the newcomer is closed.  A request being worked on is never evicted.

A cut connection is closed; a handler still waiting for its body sees the
client gone (``http.disconnect``).  Each request's scope carries
``scope["extensions"]["calsync.client_gone"]``, a ``threading.Event`` set
when its connection is lost, for work in threads to look at
(``client_gone(scope)``; a WSGI app finds the scope in
``environ["asgi.scope"]``).  What stops when a client goes away:

* an async handler waiting for the body gets ``http.disconnect``; what it
  sends afterwards is dropped by uvicorn (starlette's ``ClientDisconnect``,
  raised by ``request.body()`` then, is counted by ``QuietWhenGone``, not
  logged with a traceback per request);
* a CalDAV request still waiting for one of Radicale's worker threads is
  not started (``skip_when_gone``);
* work already running in a thread (a Radicale request, a SyncML message,
  a sync the API was asked to wait for) runs to its end: Python cannot stop
  a thread from outside, and these keep their stores and sessions consistent
  only by finishing (a sync stops only at its safe points, on shutdown).
  What bounds them is the work itself (expansion caps, message sizes).

Logging: what the guard does (cuts, evictions, refusals), failed accepts
(EMFILE and the like: asyncio logs each, and Python 3.11 retries the accept
up to ``backlog`` times per wake-up) and uvicorn's per-request warnings
("Invalid HTTP request", "Exceeded concurrency limit") are counted and
logged as one ``server.pressure`` line at most once per ``log_interval``.

Limits: uvicorn's h11 protocol only (``http="h11"``: httptools, if
installed, would be picked by "auto" and is not guarded); the attributes of
``H11Protocol`` used here (``conn``, ``cycle``, ``flow``, ``transport``,
``on_response_complete``) are uvicorn's own, and the tests that exercise
every rule fail if a uvicorn release changes them.

TLS: were uvicorn given the certificate, asyncio would complete each
handshake before the protocol hears of the connection, with its own 60 s
timeout, and the cap would not see sockets that never start one.  So
``GuardedServer`` takes uvicorn's TLS context (built from the same
configuration) and listens in plain TCP, and the protocol runs the handshake
itself (``loop.start_tls``): the connection counts from its first byte, the
handshake must end within ``header_timeout``, and a failed one is counted,
never answered in plain text.

Plain HTTP beside TLS (``plain_too``, the LAN mode only): a phone's first
contact is the pairing page over plain HTTP (it does not trust our CA yet),
on the same port as everything else, so the QR code, the firewall rule and
the mDNS announcement name one port.  The protocol peeks at the first byte
of a connection without taking it from the socket (``MSG_PEEK``): 0x16 opens
every TLS connection (a handshake record) and no HTTP request line, so that
one byte decides.  What then arrives in clear reaches the app with scheme
``http``, where ``app.PlainGuard`` refuses it from other machines except on
the pairing page's paths while a pairing is open.  A second port would work
too, but would need its own announcement, rule and URL, for one page.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from calsync.gateway.limits import Limits
from calsync.gateway.logs import event

log = logging.getLogger("calsync.gateway")

GONE = "calsync.client_gone"
TLS_HANDSHAKE = 0x16  # the first byte of a TLS connection (a handshake record)

# accept() failures that mean "out of resources", not a bad client
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# uvicorn's per-request warnings -> the count they go to
UVICORN_NOISE = {
    "Invalid HTTP request received.": "invalid_request",
    "Exceeded concurrency limit.": "overloaded",
}


def client_gone(scope: Any) -> bool:
    """Has the client of this request (an ASGI scope) gone away?"""
    flag = (scope.get("extensions") or {}).get(GONE)
    return isinstance(flag, threading.Event) and flag.is_set()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def skip_when_gone(app: WSGIApp) -> WSGIApp:
    """``app``, except that a request whose client left while it waited for a
    worker thread is not started (answered with nothing: nobody listens)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scope = environ.get("asgi.scope")
        if scope is not None and client_gone(scope):
            start_response("499 Client Closed Request", [("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return wrapped


class Pressure:
    """Counts of what went wrong, logged as one line at most once per interval."""

    def __init__(self, interval: float, clock: Callable[[], float], **context: Any) -> None:
        self.interval = interval
        self.clock = clock
        self.context = context  # callables -> fields of the line (open connections...)
        self.counts: Counter[str] = Counter()
        self.last_logged = float("-inf")

    def note(self, what: str) -> None:
        """Count one; the guard's sweep logs (so a burst is summed up in its first line)."""
        self.counts[what] += 1

    def flush(self, *, final: bool = False) -> None:
        """Log the counts if the interval has passed (``final``: at shutdown, anyway)."""
        now = self.clock()
        if not self.counts or (now - self.last_logged < self.interval and not final):
            return
        fields = {k: f() for k, f in self.context.items()}
        event(
            log, "server.pressure", logging.WARNING, **dict(sorted(self.counts.items())), **fields
        )
        self.counts.clear()
        self.last_logged = now


class _UvicornNoise(logging.Filter):
    """Turns uvicorn's per-request warnings into counts."""

    def __init__(self, pressure: Pressure) -> None:
        super().__init__()
        self.pressure = pressure

    def filter(self, record: logging.LogRecord) -> bool:
        what = UVICORN_NOISE.get(record.msg) if isinstance(record.msg, str) else None
        if what is None:
            return True
        self.pressure.note(what)
        return False


class ConnectionGuard:
    """The open connections of one server, their deadlines, and the cap."""

    def __init__(
        self, limits: Limits, cap: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.cap = cap
        self.clock = clock
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: dict[GuardedH11Protocol, None] = {}  # for a request head, oldest first
        self.bodies: dict[GuardedH11Protocol, None] = {}  # sending a body, oldest first
        self.pressure = Pressure(
            limits.log_interval, clock, open=lambda: len(self.open), cap=lambda: self.cap
        )
        self._noise = _UvicornNoise(self.pressure)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tls: ssl.SSLContext | None = None  # set by GuardedServer: handshakes are ours
        self.plain_too = False  # with tls: plain HTTP on the same port too (see the docstring)

    def protocol(self) -> type[GuardedH11Protocol]:
        """The protocol class for uvicorn's ``http``, bound to this guard."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})

    # -- lifecycle (on the server's loop) --------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.set_exception_handler(self._loop_error)
        logging.getLogger("uvicorn.error").addFilter(self._noise)
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        logging.getLogger("uvicorn.error").removeFilter(self._noise)
        self.pressure.flush(final=True)

    def _schedule(self) -> None:
        assert self._loop is not None
        step = min(1.0, self.limits.header_timeout / 4, self.limits.body_idle_timeout / 4)
        self._timer = self._loop.call_later(step, self._sweep)

    def _sweep(self) -> None:
        now = self.clock()
        for conn in list(self.open):
            conn.check(now)
        self.pressure.flush()
        self._schedule()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            self.pressure.note(f"accept_failed_{errno.errorcode.get(exc.errno, exc.errno)}")
            return
        if isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
            # the retries asyncio queued after failed accepts, run once the socket closed
            self.pressure.note("accept_retry_failed")
            return
        loop.default_exception_handler(context)

    # -- connections ------------------------------------------------------------------------

    def admit(self, conn: GuardedH11Protocol) -> None:
        self.open.add(conn)
        self.waiting[conn] = None
        if len(self.open) <= self.cap:
            return
        victim = self._victim(conn)
        if victim is None:
            conn.cut("refused")
        else:
            victim.cut("evicted")

    def _victim(self, newcomer: GuardedH11Protocol) -> GuardedH11Protocol | None:
        for conn in self.waiting:
            if conn is not newcomer:
                return conn
        for conn in self.bodies:  # the oldest body only: later ones started later
            if self.clock() - conn.body_started > self.limits.body_grace:
                return conn
            break
        return None

    def forget(self, conn: GuardedH11Protocol) -> None:
        self.open.discard(conn)
        self.waiting.pop(conn, None)
        self.bodies.pop(conn, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a ``ConnectionGuard`` (see the module docstring)."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: asyncio.Transport | None = None  # the TCP transport, under TLS
        self.handshake: asyncio.Task[None] | None = None
        self.early = bytearray()  # decrypted before start_tls returned (held for h11)
        self.peek: socket.socket | None = None  # waiting for the first byte (plain_too)
        now = self.guard.clock()
        self.head_since: float | None = now  # waiting for a request head since
        self.body_started = now
        self.body_active = 0.0  # seconds spent reading the body (while we read)
        self.last_read = now
        self.last_check = now
        self.send_stalled: float | None = None
        self.gone: threading.Event | None = None  # the current request's

    # -- uvicorn's protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_since = self.last_read = self.guard.clock()
        if self.guard.tls is not None:  # TCP so far: the handshake first (ours)
            transport.pause_reading()  # no TLS bytes may reach h11
            self.raw = transport
            self.guard.admit(self)
            if transport.is_closing():
                return
            if self.guard.plain_too:
                self._sniff(transport)
            else:
                self._handshake(transport)
            return
        super().connection_made(transport)
        self.guard.admit(self)

    def _handshake(self, raw: asyncio.Transport) -> None:
        assert self.guard.tls is not None
        loop = asyncio.get_running_loop()
        self.handshake = loop.create_task(self._start_tls(raw, self.guard.tls))

    def _sniff(self, raw: asyncio.Transport) -> None:
        """TLS or plain HTTP on one port: wait for the first byte, peek at it (it stays
        in the socket), then run the handshake (0x16, a TLS record) or h11 in clear.

        The wait watches a duplicate of the socket's descriptor: asyncio lets no one
        else watch a transport's own, and the transport must not read yet."""
        loop = asyncio.get_running_loop()
        peek = socket.socket(fileno=os.dup(raw.get_extra_info("socket").fileno()))
        self.peek = peek

        def readable() -> None:
            try:
                first = peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return  # nothing after all: keep waiting
            except OSError:
                first = b""
            self._stop_sniffing()
            if raw.is_closing():
                return
            if not first:  # closed before a byte
                self.guard.forget(self)
                raw.close()
            elif first[0] == TLS_HANDSHAKE:
                self._handshake(raw)
            else:
                self.raw = None
                super(GuardedH11Protocol, self).connection_made(raw)  # h11 in clear
                raw.resume_reading()

        loop.add_reader(peek.fileno(), readable)

    def _stop_sniffing(self) -> None:
        peek, self.peek = self.peek, None
        if peek is not None:
            asyncio.get_running_loop().remove_reader(peek.fileno())
            peek.close()  # the duplicate only: the connection stays

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.guard.limits.header_timeout,
            )
        except OSError:  # ssl.SSLError, the handshake timeout, a reset: all OSError
            self.guard.pressure.note("tls_handshake_failed")
            self.guard.forget(self)
            raw.close()
            return
        if secure is None or secure.is_closing():
            self.guard.forget(self)
            return
        super().connection_made(secure)  # uvicorn's h11 from here
        if self.early:
            data, self.early = bytes(self.early), bytearray()
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_sniffing()
        if self.gone is not None:
            self.gone.set()
        self.guard.forget(self)
        if self.transport is None:  # lost during the TLS handshake: uvicorn never saw it
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:  # the request began with the handshake's last flight
            self.early += data
            return
        now = self.guard.clock()
        self.last_read = now
        if self.head_since is None and self in self.guard.waiting:
            self.head_since = now  # the first byte of a kept-alive connection's next request
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle and self.cycle is not None:
            self._request_started()

    def pause_writing(self) -> None:
        if self.flow is not None:  # None while our TLS handshake runs
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.flow is not None:
            super().resume_writing()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():  # kept alive: waiting for the next request
            self.head_since = None  # idle until its first byte (uvicorn's keep-alive)
            self.guard.bodies.pop(self, None)
            self.guard.waiting[self] = None
        super().on_response_complete()  # may start a pipelined request at once

    # -- the guard's side -------------------------------------------------------------------

    def _request_started(self) -> None:
        now = self.guard.clock()
        self.head_since = None
        self.guard.waiting.pop(self, None)
        self.gone = threading.Event()
        scope: Any = self.cycle.scope  # the handler's task has not run yet
        scope["extensions"] = {**(scope.get("extensions") or {}), GONE: self.gone}
        self.body_started = self.last_read = self.last_check = now
        self.body_active = 0.0
        if self.conn.their_state is h11.SEND_BODY:
            self.guard.bodies[self] = None

    def check(self, now: float) -> None:
        """Cut this connection if it is past a deadline (called by the guard's sweep)."""
        elapsed, self.last_check = now - self.last_check, now
        transport = self.transport or self.raw
        if transport is None or transport.is_closing():
            return
        limits = self.guard.limits
        if self.head_since is not None:
            if now - self.head_since > limits.header_timeout:
                self.cut("header_timeout")
            return
        if self.conn.their_state is h11.SEND_BODY and self.cycle is not None:
            if self.flow.read_paused or self.cycle.waiting_for_100_continue:
                self.last_read = now  # we are not reading: not the client's doing
            else:
                self.body_active += elapsed
            if now - self.last_read > limits.body_idle_timeout:
                self.cut("body_idle_timeout")
                return
            if self.body_active > limits.body_timeout:
                self.cut("body_timeout")
                return
        else:
            self.guard.bodies.pop(self, None)
        if self.flow.write_paused:
            if self.send_stalled is None:
                self.send_stalled = now
            elif now - self.send_stalled > limits.send_timeout:
                self.cut("send_timeout")
        else:
            self.send_stalled = None

    def cut(self, why: str) -> None:
        """Close this connection; counted under ``why`` (never logged one by one)."""
        self.guard.pressure.note(why)
        self.guard.forget(self)
        self._stop_sniffing()
        if self.gone is not None:
            self.gone.set()
        transport = self.transport or self.raw
        if transport is not None:
            transport.close()


class QuietWhenGone:
    """ASGI wrapper: a handler that stops because its client went away
    (starlette's ``ClientDisconnect``) is counted, not logged as a crash with a
    traceback (a client could otherwise fill the log by walking away)."""

    def __init__(self, app: Any, guard: ConnectionGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            self.guard.pressure.note("handler_saw_client_gone")


class GuardedServer(uvicorn.Server):
    """uvicorn's server with the guard's sweep and loop error handler running."""

    def __init__(self, config: uvicorn.Config, guard: ConnectionGuard) -> None:
        super().__init__(config)
        self.guard = guard

    async def startup(self, sockets: Any = None) -> None:
        # uvicorn built its TLS context from the configuration: the protocol uses it,
        # uvicorn listens in plain TCP (see the module docstring)
        if self.config.ssl is not None:  # else the guard was given a context of its own
            self.guard.tls, self.config.ssl = self.config.ssl, None
        self.guard.start(asyncio.get_running_loop())
        await super().startup(sockets=sockets)

    async def shutdown(self, sockets: Any = None) -> None:
        try:
            await super().shutdown(sockets=sockets)
        finally:
            self.guard.stop()
