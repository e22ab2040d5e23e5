"""The SyncML endpoint (``POST /sync``): a thin transport for ``calsync.syncml``.

Per request: read the body (bounded), find the session by the ``sessionid``
of our RespURI (or start one), run the session's generator in a worker thread
(the backend blocks: SQLite, stores, the engine) and answer with its bytes in
the request's content type.  One request per session at a time; a new
session of a device replaces its old one; idle sessions expire.

HTTP status codes: 200 for every SyncML answer (SyncML errors travel as
SyncML statuses), 400 for undecodable or out-of-order messages, 403 for a
message from another device than the session's, 404 for an unknown or
expired session, 405 for anything but POST, 413 for oversized bodies, 415 for
non-SyncML content types, 500 for a bug (logged; the session is dropped).
Bodies are never logged: they carry credentials.
"""

from __future__ import annotations

import asyncio
import logging
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


class TooLarge(Exception):
    pass


@dataclass
class _Entry:
    session: ServerSession
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SyncMLEndpoint:
    """Sessions by token, and the request handler."""

    def __init__(
        self,
        server: ServerConfig,
        backend: Callable[[SessionRequest], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.backend = backend
        self.clock = clock
        self.sessions: dict[str, _Entry] = {}
        self.max_body = server.max_msg_size * 2 + 65536

    async def handle(self, request: HttpRequest) -> Response:
        if request.method != "POST":
            return PlainTextResponse(
                "calsync SyncML endpoint: devices POST SyncML messages here\n",
                status_code=405,
                headers={"Allow": "POST"},
            )
        try:
            body = await self._body(request)
        except TooLarge:
            return PlainTextResponse("message too large\n", status_code=413)
        ctype = request.headers.get("content-type")
        try:
            codec.encoding_of(ctype, body)
        except DecodeError:
            return PlainTextResponse("not a SyncML content type\n", status_code=415)
        self._expire()
        token = request.query_params.get("sessionid")
        if token is not None:
            entry = self.sessions.get(token)
            if entry is None:
                return PlainTextResponse("unknown or expired SyncML session\n", status_code=404)
        else:
            if len(self.sessions) >= MAX_SESSIONS:
                return PlainTextResponse("too many open sessions\n", status_code=503)
            url = str(request.url.replace(query=""))
            new = ServerSession(
                self.server, url=url, token=secrets.token_urlsafe(18), now=self.clock()
            )
            entry = _Entry(new)
        async with entry.lock:
            status, reply = await self._run(entry.session, body, ctype)
            if reply is None:
                if status >= 500:
                    self.sessions.pop(entry.session.token, None)
                return PlainTextResponse(_REASONS.get(status, "error") + "\n", status_code=status)
            self._keep(entry, reply, is_new=token is None)
        return Response(reply.body, media_type=reply.content_type)

    async def _body(self, request: HttpRequest) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise TooLarge
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
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
            self.sessions[session.token] = entry

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

    @classmethod
    def from_config(
        cls, cfg: Config, *, on_store_changed: Callable[[str, str], None] | None = None
    ) -> SyncMLFeature:
        settings = load(cfg)
        backend = Backend(cfg, settings.accounts)
        if on_store_changed is not None:
            backend.on_store_changed.append(on_store_changed)
        return cls(SyncMLEndpoint(settings.server, backend))

    def startup(self) -> None:
        names = ", ".join(sorted(self.endpoint.server.accounts)) or "none"
        log.info("SyncML endpoint ready; accounts: %s", names)

    def shutdown(self) -> None:
        self.endpoint.sessions.clear()
