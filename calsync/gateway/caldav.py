"""The CalDAV endpoint (``/dav/``) of the gateway: Radicale inside our ASGI server.

Routes:

* ``/dav/...``: Radicale's WSGI application (``calsync.davserver.app``) run
  through a2wsgi's WSGI-to-ASGI adapter (each request in a worker thread);
* ``/.well-known/caldav``: 301 to ``/dav/`` (RFC 6764 discovery: iOS, macOS,
  DAVx5 and GNOME start there with only the host name), and a PROPFIND of
  ``/`` likewise (clients given ``http://host:port/``).

In front of Radicale, ``DavGuard`` refuses what must never reach it:

* a request from another machine over plain HTTP (403): Basic credentials
  cross a network only inside TLS (``[server]`` refuses a non-loopback
  ``listen`` without a certificate; this holds even behind a proxy);
* a request without credentials (401 with a Basic challenge): nothing is
  served anonymously, not even OPTIONS or the root.

Nothing here logs a header or a body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from a2wsgi import WSGIMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from calsync.config import Config
from calsync.davserver.app import REALM, build
from calsync.davserver.config import load
from calsync.davserver.service import DavService
from calsync.gateway.server import is_loopback

log = logging.getLogger("calsync.gateway")

PREFIX = "/dav"
WORKERS = 8


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


class DavGuard:
    """TLS-or-loopback and credentials-required, before Radicale sees anything."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else ""
        if scope.get("scheme") != "https" and not is_loopback(host):
            await _plain(send, 403, "CalDAV needs TLS from other machines (https)\n", [])
            return
        auth = b""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                auth = value
                break
        if not auth.lower().startswith(b"basic "):
            challenge = f'Basic realm="{REALM}", charset="UTF-8"'.encode()
            await _plain(
                send,
                401,
                "log in with your CalDAV user name and password\n",
                [(b"www-authenticate", challenge)],
            )
            return
        await self.app(scope, receive, send)


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
            Mount(PREFIX, app=DavGuard(WSGIMiddleware(wsgi, workers=WORKERS))),  # type: ignore[arg-type]
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
