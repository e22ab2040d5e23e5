"""The ASGI application factory: routes come from feature modules.

A feature is anything with ``routes`` (starlette routes) and optional
``startup()``/``shutdown()`` hooks.  ``create_app`` composes any number of
them, so the daemon (scheduler, watchers, control API) adds its own without
touching the SyncML endpoint.

Browsers are kept out of every route (``BrowserGuard``, wrapped around the
whole app): devices, CalDAV clients and the CLI are not web pages, but a web
page the user visits can make the browser send requests to the gateway
(a form post to ``/sync``, a fetch to ``/dav/`` with remembered credentials,
or the same through DNS rebinding).  So a request that carries a web
``Origin`` (``http``, ``https`` or ``null``, a sandboxed page) other than the
gateway's own, or ``Sec-Fetch-Site: cross-site``/``same-site``, is answered 403
before any route sees it.  The gateway's own origin passes: Thunderbird's
CalDAV sends it (``Origin: http://127.0.0.1:8765``, same-origin), and no page
is served from it (over plain HTTP only ``localhost`` and address literals
count as ours, so a DNS-rebound name does not).  Other Origin schemes
(``moz-extension://``: a Thunderbird add-on) are not web pages and pass, as do
requests without either header.
A feature that *is* a web page declares its path prefixes in an optional
``browser_paths`` attribute; those are exempt and must then protect their
own actions (CSRF tokens).  ``/`` among them stands for the root page alone,
not for every path.

Plain HTTP from other machines is refused on every route (``PlainGuard``,
403) before any feature sees it: in LAN mode the TLS port also answers in
clear (``connections.py``), for the pairing page alone.  A feature serving
something in clear names the path prefixes it serves so in an optional
``plain_paths()`` method, asked at each request (the pairing page: ``/pair``,
whose routes answer 410 unless a pairing is open).  Each endpoint's own TLS
check (CalDAV's, the feeds', the web page's) stays as a second line.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from calsync.config import Config

log = logging.getLogger("calsync.gateway")


class Feature(Protocol):
    """``routes``; optionally ``browser_paths`` (path prefixes of a web page),
    ``plain_paths()`` (what it serves in clear; see the module docstring)
    and the hooks below."""

    routes: list[BaseRoute]

    def startup(self) -> Awaitable[None] | None: ...

    def shutdown(self) -> Awaitable[None] | None: ...


WEB_ORIGIN_SCHEMES = ("http", "https")
CROSS_SITE = ("cross-site", "same-site")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _own_origin(origin: str, scheme: str, host: str) -> bool:
    """Is ``origin`` the gateway's own (the one the request was sent to), and not a
    DNS-rebound name?  Over plain HTTP only ``localhost`` and address literals
    count: a page of ``evil.example`` rebound to this address would otherwise be
    same-origin to the browser (over HTTPS the certificate stops rebinding)."""
    try:
        given = urlsplit(origin)
        own = urlsplit(f"{scheme}://{host}")
        ports = (given.port, own.port)
    except ValueError:  # a malformed port
        return False
    if given.scheme != own.scheme or not given.hostname or given.hostname != own.hostname:
        return False
    default = DEFAULT_PORTS.get(own.scheme)
    if (ports[0] or default) != (ports[1] or default):
        return False
    if own.scheme == "https" or given.hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(given.hostname)
    except ValueError:
        return False
    return True


def from_web_page(headers: Headers, scheme: str = "http") -> str | None:
    """Why a request looks sent by a web page (None: it does not)."""
    origin = headers.get("origin")
    if origin is not None:
        value = origin.strip().lower()
        web, sep, _ = value.partition("://")
        if value == "null":
            return "requests from web pages are refused (Origin)"
        if not (sep and web in WEB_ORIGIN_SCHEMES):
            return None  # an add-on or another program naming itself
        if not _own_origin(value, scheme, headers.get("host", "").lower()):
            return "requests from web pages are refused (Origin)"
    if headers.get("sec-fetch-site", "").strip().lower() in CROSS_SITE:
        return "requests from other sites are refused (Sec-Fetch-Site)"
    return None


class BrowserGuard:
    """ASGI middleware: 403 for requests from web pages, outside ``browser_paths``
    (each one a path and what lies below it: ``/web`` covers ``/web/x``, not
    ``/website``; ``/`` covers the root alone).  The gateway has no WebSocket
    routes; a feature adding one must extend the guard to that scope type."""

    def __init__(self, app: ASGIApp, browser_paths: Sequence[str] = ()) -> None:
        self.app = app
        self.browser_paths = tuple(p.rstrip("/") for p in browser_paths)

    def _exempt(self, path: str) -> bool:
        return any(
            path == (p or "/") or (p and path.startswith(p + "/")) for p in self.browser_paths
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._exempt(str(scope.get("path", ""))):
            why = from_web_page(Headers(scope=scope), str(scope.get("scheme", "http")))
            if why is not None:
                log.debug("refused %s %s: %s", scope.get("method"), scope.get("path"), why)
                await PlainTextResponse(why + "\n", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


class PlainGuard:
    """ASGI middleware: 403 for plain HTTP from another machine, but on the paths a
    feature serves in clear (``plain_paths()``; see the module docstring).  "Another
    machine": ``server.from_this_machine``."""

    def __init__(self, app: ASGIApp, plain: Sequence[Callable[[], Sequence[str]]] = ()) -> None:
        self.app = app
        self.plain = plain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("scheme") != "https":
            from calsync.gateway.server import from_this_machine

            path = str(scope.get("path", ""))
            if not from_this_machine(scope) and not any(
                _under(path, paths()) for paths in self.plain
            ):
                await PlainTextResponse(
                    "other machines must use https (TLS): plain HTTP is served to this "
                    "machine only\n",
                    status_code=403,
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(features: Sequence[Feature]) -> Starlette:
    """One app serving every feature's routes; hooks run at start and stop.

    The app refuses requests from web pages on every route but the paths the
    features declare as ``browser_paths`` (``BrowserGuard``).
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for f in features:
            started = f.startup()
            if inspect.isawaitable(started):  # hooks may be coroutines (the daemon's are)
                await started
        try:
            yield
        finally:
            for f in reversed(features):
                stopped = f.shutdown()
                if inspect.isawaitable(stopped):
                    await stopped

    routes = [route for f in features for route in f.routes]
    browser_paths = [p for f in features for p in getattr(f, "browser_paths", ())]
    plain = [m for f in features if callable(m := getattr(f, "plain_paths", None))]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(PlainGuard, plain=plain),
            Middleware(BrowserGuard, browser_paths=browser_paths),
        ],
    )


def features_for(
    cfg: Config, *, on_store_changed: Callable[[str, str], None] | None = None
) -> list[Feature]:
    """The features a configuration asks for (ConfigError when it is wrong).

    ``on_store_changed(store, who)`` is told when a device session wrote to a
    store (the daemon then runs that store's pairs).  A section added here is
    checked in ``check_features`` too.
    """
    out: list[Feature] = []
    if cfg.section("syncml").get("accounts"):
        from calsync.gateway.syncml import SyncMLFeature

        out.append(SyncMLFeature.from_config(cfg, on_store_changed=on_store_changed))
    if cfg.section("caldav").get("users"):
        from calsync.gateway.caldav import CalDAVFeature

        out.append(CalDAVFeature.from_config(cfg, on_store_changed=on_store_changed))
    if cfg.section("feeds"):
        from calsync.gateway.feeds import FeedsFeature

        out.append(FeedsFeature.from_config(cfg))
    return out


def check_features(cfg: Config) -> None:
    """ConfigError for what ``features_for`` would refuse, building nothing (a
    reloaded configuration is checked with it while the old features serve on)."""
    if cfg.section("syncml").get("accounts"):
        from calsync.syncml.config import load as syncml_settings

        syncml_settings(cfg)
    if cfg.section("caldav").get("users"):
        from calsync.davserver.config import load as caldav_settings

        caldav_settings(cfg)
    if cfg.section("feeds"):
        from calsync.gateway.feedconfig import load as feed_settings

        feed_settings(cfg)


def build_app(cfg: Config) -> Starlette:
    return create_app(features_for(cfg))
