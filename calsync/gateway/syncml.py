"""The SyncML endpoint (``POST /sync``): a thin transport for ``calsync.syncml``.

Per request: read the body (bounded), find the session by the ``sessionid``
of our RespURI (or start one), run the session's generator in a worker thread
(the backend blocks: SQLite, stores, the engine) and answer with its bytes in
the request's content type.  One request per session at a time; a new
session of a device replaces its old one; idle sessions expire.

A request without a session is a login, and logins need no password, so
they are bounded before anything else runs: failed logins per source address
(``logins.FailureThrottle``, the one CalDAV uses: a source over its budget
gets 429 at once, nothing decoded or looked up; a device's first contact,
the 401 that hands it a nonce, counts as one failure, though not as a guess
that makes the address a suspect), open sessions per
address (``max_per_address``: 503) and in all (``MAX_SESSIONS``: 503); at
most ``logins_at_once`` logins are decoded and checked at the same time (a
decoded message takes memory in proportion to its size, so concurrency must
not multiply it without bound; the others wait holding only their body, at
most ``LOGIN_MAX_BODY``, and are checked against the throttle again when
their turn comes).  No delay is
added to a failed SyncML login: devices retry a 401 at once (SyncEvolution
with the nonce it was just given).  An account keeps at most
``max_per_account`` open sessions: a new one beyond that drops the
account's least recently active session, so one account cannot fill the
table, and its own devices are never locked out by its stale sessions.

HTTP status codes: 200 for every SyncML answer (SyncML errors travel as
SyncML statuses), 400 for undecodable or out-of-order messages, 403 for a
message from another device than the session's, 404 for an unknown or
expired session, 405 for anything but POST, 413 for oversized bodies, 415 for
non-SyncML content types, 429 for an address with too many failed logins,
503 for too many open sessions, 500 for a bug (logged; the session is
dropped).  Bodies are never logged: they carry credentials.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from starlette.requests import Request as HttpRequest
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from calsync.config import Config
from calsync.credentials import AppPassword
from calsync.gateway.logins import FailureThrottle, source_key
from calsync.syncml import codec
from calsync.syncml.backend import Backend
from calsync.syncml.config import load
from calsync.syncml.model import DecodeError, ProtocolError
from calsync.syncml.session import (
    ForeignSession,
    Reply,
    ServerConfig,
    ServerSession,
    drive,
)
from calsync.syncml.session import Request as SessionRequest

log = logging.getLogger("calsync.gateway")

MAX_SESSIONS = 200
MAX_PER_ACCOUNT = 8
MAX_PER_ADDRESS = 8
LOGINS_AT_ONCE = 2  # logins decoded and checked at the same time (the rest wait)
# A login is package 1 (alerts and a DevInf: the largest captured is 13 KB); larger
# ones would wait for their turn holding up to two MaxMsgSize each (150 at once: 375 MB)
LOGIN_MAX_BODY = 262_144


class TooLarge(Exception):
    pass


@dataclass
class _Entry:
    session: ServerSession
    address: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SyncMLEndpoint:
    """Sessions by token, and the request handler."""

    def __init__(
        self,
        server: ServerConfig,
        backend: Callable[[SessionRequest], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        throttle: FailureThrottle | None = None,
        max_per_account: int = MAX_PER_ACCOUNT,
        max_per_address: int = MAX_PER_ADDRESS,
        logins_at_once: int = LOGINS_AT_ONCE,
    ) -> None:
        self.server = server
        self.backend = backend
        self.clock = clock
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.logins = asyncio.Semaphore(logins_at_once)
        self.sessions: dict[str, _Entry] = {}
        self.max_body = server.max_msg_size * 2 + 65536

    async def handle(self, request: HttpRequest) -> Response:
        if request.method != "POST":
            return PlainTextResponse(
                "calsync SyncML endpoint: devices POST SyncML messages here\n",
                status_code=405,
                headers={"Allow": "POST"},
            )
        ctype = request.headers.get("content-type")
        try:
            codec.syncml_encoding(ctype)
        except DecodeError:
            return PlainTextResponse("not a SyncML content type\n", status_code=415)
        self._expire()
        token = request.query_params.get("sessionid")
        address = request.client.host if request.client else "?"
        if token is not None:
            found = self.sessions.get(token)
            if found is None:
                return PlainTextResponse("unknown or expired SyncML session\n", status_code=404)
            entry = found
        else:
            refused = self._admit(address)
            if refused is not None:
                return refused
            url = str(request.url.replace(query=""))
            new = ServerSession(
                self.server, url=url, token=secrets.token_urlsafe(18), now=self.clock()
            )
            entry = _Entry(new, address)
        limit = self.max_body if token is not None else min(self.max_body, LOGIN_MAX_BODY)
        try:
            body = await self._body(request, limit)
        except TooLarge:
            if token is None:
                self._failed(address)
            return PlainTextResponse("message too large\n", status_code=413)
        async with entry.lock:
            if token is None:
                async with self.logins:
                    refused = self._throttled(address)  # failures while it waited
                    if refused is not None:
                        return refused
                    status, reply = await self._run(entry.session, body, ctype)
                if reply is None or not reply.authenticated:
                    self._failed(address, guess=reply is None or reply.guessed)
            else:
                status, reply = await self._run(entry.session, body, ctype)
            if reply is None:
                if status >= 500:
                    self.sessions.pop(entry.session.token, None)
                return PlainTextResponse(_REASONS.get(status, "error") + "\n", status_code=status)
            self._keep(entry, reply, is_new=token is None)
        return Response(reply.body, media_type=reply.content_type)

    def _admit(self, address: str) -> Response | None:
        """None if a new session (a login) from ``address`` may start, else the
        refusal (nothing is decoded, looked up or stored for it)."""
        if len(self.sessions) >= MAX_SESSIONS:
            return PlainTextResponse("too many open sessions\n", status_code=503)
        if sum(e.address == address for e in self.sessions.values()) >= self.max_per_address:
            return PlainTextResponse("too many open sessions from this address\n", 503)
        return self._throttled(address)

    def _throttled(self, address: str) -> Response | None:
        wait = self.throttle.refusal(source_key(address))
        if wait is None:
            return None
        return PlainTextResponse(
            "too many failed logins from this address\n",
            status_code=429,
            headers={"Retry-After": str(max(1, min(math.ceil(wait), 3600)))},
        )

    def _failed(self, address: str, *, guess: bool = True) -> None:
        key = source_key(address)
        self.throttle.failed(key, guess=guess)
        if self.throttle.locked(key):
            log.warning("too many failed SyncML logins from %s: refusing them for now", key)

    async def _body(self, request: HttpRequest, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise TooLarge
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _run(
        self, session: ServerSession, body: bytes, ctype: str | None
    ) -> tuple[int, Reply | None]:
        now = self.clock()

        def work() -> Reply:
            return drive(session.receive(body, ctype, now), self.backend)

        try:
            return 200, await anyio.to_thread.run_sync(work)
        except DecodeError as e:
            log.warning("undecodable SyncML message: %s", e)
            return 400, None
        except ProtocolError as e:
            log.warning("SyncML protocol error from %s: %s", session.device or "?", e)
            return 400, None
        except ForeignSession:
            log.warning("message for session of %s from another device", session.device)
            return 403, None
        except Exception:
            log.exception("SyncML session of %s failed", session.device or "?")
            return 500, None

    def _keep(self, entry: _Entry, reply: Reply, *, is_new: bool) -> None:
        session = entry.session
        if reply.finished:
            self.sessions.pop(session.token, None)
            return
        if is_new:
            for token, other in list(self.sessions.items()):
                old = other.session
                if old.device == session.device and old.account == session.account:
                    log.info("device %s started a new session; dropping the old", old.device)
                    del self.sessions[token]
            same = sorted(
                (e.session.last_active, t)
                for t, e in self.sessions.items()
                if e.session.account == session.account
            )
            for _, token in same[: max(0, len(same) - self.max_per_account + 1)]:
                dropped = self.sessions.pop(token).session
                log.warning(
                    "account %s has %d open sessions: dropping the one of device %s",
                    session.account.name if session.account else "?",
                    len(same),
                    dropped.device,
                )
            self.sessions[session.token] = entry

    def end_sessions_of(self, device: str) -> int:
        """Drop the sessions that logged in with ``device``'s app password (it was
        revoked: their next message gets 404, and a new login fails)."""
        ended = [t for t, e in self.sessions.items() if e.session.app_password == device]
        for token in ended:
            del self.sessions[token]
        if ended:
            log.info("ended %d SyncML session(s) of revoked device %s", len(ended), device)
        return len(ended)

    def _expire(self) -> None:
        now = self.clock()
        for token, entry in list(self.sessions.items()):
            if entry.session.expired(now) and not entry.lock.locked():
                log.info("SyncML session of %s expired", entry.session.device)
                del self.sessions[token]


_REASONS = {
    400: "malformed or out-of-order SyncML message",
    403: "this session belongs to another device",
    500: "internal error (logged)",
}


class SyncMLFeature:
    """The ``/sync`` route for the gateway app."""

    def __init__(self, endpoint: SyncMLEndpoint, path: str = "/sync") -> None:
        self.endpoint = endpoint
        self.routes: list[BaseRoute] = [
            Route(path, endpoint.handle, methods=["POST", "GET", "PUT"])
        ]
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(
        cls, cfg: Config, *, on_store_changed: Callable[[str, str], None] | None = None
    ) -> SyncMLFeature:
        settings = load(cfg)
        backend = Backend(cfg, settings.accounts)
        if on_store_changed is not None:
            backend.on_store_changed.append(on_store_changed)
        return cls(SyncMLEndpoint(settings.server, backend))

    def device_revoked(self, app: AppPassword) -> None:
        """A device's app password was revoked (``pairing.PairingService.revoke``, from
        any thread): its sessions end on the event loop, which owns the table."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running or loop.is_closed():
            self.endpoint.end_sessions_of(app.device)
        else:
            loop.call_soon_threadsafe(self.endpoint.end_sessions_of, app.device)

    def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        names = ", ".join(sorted(self.endpoint.server.accounts)) or "none"
        log.info("SyncML endpoint ready; accounts: %s", names)

    def shutdown(self) -> None:
        self.endpoint.sessions.clear()
