"""The CalDAV endpoint (``/dav/``) of the gateway: Radicale inside our ASGI server.

Routes:

* ``/dav/...``: Radicale's WSGI application (``calsync.davserver.app``) run
  through a2wsgi's WSGI-to-ASGI adapter (each request in a worker thread);
* ``/.well-known/caldav``: 301 to ``/dav/`` (RFC 6764 discovery: iOS, macOS,
  DAVx5 and GNOME start there with only the host name), and a PROPFIND of
  ``/`` likewise (clients given ``http://host:port/``).

In front of Radicale, ``DavGuard`` decides on the event loop what must be
settled before a worker thread (8 of them) or Radicale is involved:

* a request from another machine over plain HTTP (403): Basic credentials
  cross a network only inside TLS (``[server]`` refuses a non-loopback
  ``listen`` without a certificate; this holds even behind a proxy);
* a request without credentials (401 with a Basic challenge): nothing is
  served anonymously, not even OPTIONS or the root; an Authorization header
  that does not decode is a 401 too;
* the password, checked here (``DavSettings.check``), before any body is
  read.  A failed login waits ``FAILURE_DELAY`` in the event loop, not in a
  worker, and is counted per source address (``gateway.logins``): a source
  over its budget gets 429 without a check.  Radicale checks the password
  again (cheap: a constant-time compare), with no delay of its own;
* the body, read here in full before the worker gets the request, so a slow
  client holds a coroutine, never a thread: a Content-Length over the
  method's limit is a 413 before a byte is read, a chunked body is counted
  while it arrives, and an XML body goes through ``davserver.bodies.XmlGate``
  on the way (too deep, DTDs, entities: 400) so Radicale only ever parses
  XML that is safe to parse;
* a path whose escapes are not UTF-8 (400): uvicorn would pass it on with
  U+FFFD in place of the bytes, an item name no client could ask for again.

Nothing here logs a header or a body; a failed login logs the user name it
tried (shortened) and the address.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio.to_thread
from a2wsgi import WSGIMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calsync.config import Config
from calsync.credentials import Login
from calsync.davserver.app import REALM, build
from calsync.davserver.bodies import BodyRefused, XmlGate, gate_for, limit_for, too_large
from calsync.davserver.config import DavSettings, load
from calsync.davserver.service import DavService
from calsync.davserver.state import DavState
from calsync.gateway.connections import skip_when_gone
from calsync.gateway.logins import (
    FAILURE_DELAY,
    FailureThrottle,
    MalformedCredentials,
    parse_basic,
    source_key,
)
from calsync.gateway.server import is_loopback

log = logging.getLogger("calsync.gateway")

PREFIX = "/dav"
WORKERS = 8
MAX_WAITING = 512  # failed logins waiting out their delay at once; more are answered at once
CHALLENGE = (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


async def _read_body(scope: Scope, receive: Receive, limit: int, gate: XmlGate | None) -> bytes:
    """The whole body, within ``limit`` and through ``gate``; BodyRefused otherwise."""
    length = (_header(scope, b"content-length") or b"").strip()
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise too_large(limit)
        if gate is not None:
            gate.feed(piece)
        parts.append(piece)
        if not message.get("more_body", False):
            break
    if gate is not None:
        gate.close()
    return b"".join(parts)


def _utf8_path(scope: Scope) -> bool:
    """Whether the path's escapes spell UTF-8 (the server decoded them already,
    putting U+FFFD for what is not: a name the client could never ask for again)."""
    raw = scope.get("raw_path")
    if raw is None:
        return True
    try:
        unquote_to_bytes(bytes(raw)).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the WSGI adapter: the body read already, then the client's events."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


class DavGuard:
    """TLS-or-loopback, the password, and the body, before Radicale sees anything."""

    def __init__(
        self,
        app: ASGIApp,
        settings: DavSettings,
        throttle: FailureThrottle | None = None,
        *,
        state: DavState | None = None,
    ) -> None:
        """``state``: where logins are remembered (who, with which program, when)."""
        self.app = app
        self.settings = settings
        self.throttle = throttle or FailureThrottle()
        self.state = state
        self._waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else ""
        if scope.get("scheme") != "https" and not is_loopback(host):
            await _plain(send, 403, "CalDAV needs TLS from other machines (https)\n", [])
            return
        auth = _header(scope, b"authorization")
        if auth is None or not auth.lower().startswith(b"basic"):
            await _plain(send, 401, "log in with your CalDAV user name and password\n", [CHALLENGE])
            return
        try:
            user, password = parse_basic(auth)
        except MalformedCredentials as e:
            await _plain(send, 401, f"{e}\n", [CHALLENGE])
            return
        login = await self._logged_in(host, user, password, send)
        if login is None:
            return
        await self._seen(scope, user, host, login.device or "")
        method = scope["method"]
        if not _utf8_path(scope):
            await _plain(send, 400, "the path is not UTF-8 (escape it as UTF-8)\n", [])
            return
        try:
            body = await _read_body(
                scope, receive, limit_for(method, self.settings.max_size), gate_for(method)
            )
        except BodyRefused as e:
            log.info("%s %s: %d %s", method, scope.get("path", ""), e.status, e.message)
            await _plain(send, e.status, e.message + "\n", [(b"connection", b"close")])
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _logged_in(self, host: str, user: str, password: str, send: Send) -> Login | None:
        """Check the password unless the source is throttled; answer the failures
        (None: answered)."""
        key = source_key(host)
        wait = self.throttle.refusal(key)
        if wait is not None:
            await self._delay()
            retry = str(max(1, math.ceil(wait))).encode()
            await _plain(
                send,
                429,
                "too many failed logins from your address: try again later\n",
                [(b"retry-after", retry)],
            )
            return None
        login = self.settings.login(user, password)
        if login is not None:
            return login
        self.throttle.failed(key)
        if self.throttle.locked(key):
            log.warning("CalDAV: failed login as %r from %s; refusing it a while", user[:64], host)
        else:
            log.warning("CalDAV: failed login as %r from %s", user[:64], host)
        await self._delay()
        await _plain(send, 401, "wrong user name or password\n", [CHALLENGE])
        return None

    async def _seen(self, scope: Scope, user: str, host: str, device: str) -> None:
        """Remember the login (in a worker: a write, at most once a minute per client);
        ``device``: the paired device whose app password it was ("": the user's own)."""
        if self.state is None:
            return
        agent = (_header(scope, b"user-agent") or b"").decode("latin-1")
        now = time.time()
        if self.state.client_due(user, agent, now, device):
            await anyio.to_thread.run_sync(self.state.client_seen, user, agent, host, now, device)

    async def _delay(self) -> None:
        """Make a failure slow to learn, in the event loop (a worker must never wait)."""
        if self._waiting >= MAX_WAITING:
            return
        self._waiting += 1
        try:
            await asyncio.sleep(FAILURE_DELAY)
        finally:
            self._waiting -= 1


class WellKnown:
    """``/.well-known/caldav`` -> ``/dav/`` (any method: clients PROPFIND it).

    With ``propfind_only`` (the server's root ``/``): clients given only
    ``http://host:port/`` PROPFIND it; anything else there is not ours.
    """

    def __init__(self, *, propfind_only: bool = False) -> None:
        self.propfind_only = propfind_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.propfind_only and scope.get("method") != "PROPFIND":
            await _plain(send, 404, "not found\n", [])
            return
        root = scope.get("root_path", "")
        await _plain(send, 301, "see /dav/\n", [(b"location", f"{root}{PREFIX}/".encode())])


class CalDAVFeature:
    """The ``/dav`` mount and the well-known redirect, for the gateway app."""

    def __init__(self, service: DavService) -> None:
        self.service = service
        wsgi = build(service)
        self.routes: list[BaseRoute] = [
            Mount(
                PREFIX,
                app=DavGuard(
                    WSGIMiddleware(skip_when_gone(wsgi), workers=WORKERS),  # type: ignore[arg-type]
                    service.settings,
                    state=service.state,
                ),
            ),
            Route("/.well-known/caldav", WellKnown()),
            Route("/", WellKnown(propfind_only=True)),
        ]

    @classmethod
    def from_config(
        cls, cfg: Config, *, on_store_changed: Callable[[str, str], None] | None = None
    ) -> CalDAVFeature:
        return cls(DavService(cfg, load(cfg), on_store_changed=on_store_changed))

    def startup(self) -> None:
        users = ", ".join(
            f"{u.name} ({', '.join(u.calendars)})" for u in self.service.settings.users.values()
        )
        log.info("CalDAV endpoint ready at %s/; users: %s", PREFIX, users or "none")

    def shutdown(self) -> None:
        self.service.close()

    def devices(self) -> list[dict[str, Any]]:
        """CalDAV clients that logged in (the web page's device list): user, program,
        address, when, the paired device whose app password it was (``app_password``,
        None for the user's own), and the user's calendars."""
        calendars = {u.name: list(u.calendars) for u in self.service.settings.users.values()}
        return [
            {
                "protocol": "caldav",
                "account": user,
                "device": agent or "(no User-Agent)",
                "address": address,
                "last_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)),
                "app_password": paired or None,
                "stores": calendars.get(user, []),
            }
            for user, agent, address, last, paired in self.service.state.clients()
        ]
