"""The web page at ``/``: everything the daemon knows, on one page, and buttons to act.

What it shows (``routes``): each pair (and a collection's sub-pairs under it)
with its last sync, outcome, counts, next run, a plot of its recent runs and
a "sync now" button; each device (SyncML devices, paired devices, CalDAV
clients) with when it was last seen, its protocol and its pairs, and a
revoke button for a paired one; a "Pair a phone" button (the QR code and
one-time URL of a new pairing); changes waiting to be written (Thunderbird's
queue); the last sync errors in words; the conflicts, each with both
versions side by side, what differs, and buttons to keep one, the other, or
both; an item's saved versions with a restore button.  The live part
refreshes itself every few seconds (htmx polling, answered 204 when nothing
changed); a small script of ours (``static/countdown.js``) counts down a
pairing's minutes.

Who may see and use it: ``security`` (loopback without a password, the LAN
over TLS with an account or the API token; sessions; CSRF); what each
session sees and may do: ``gateway.authz`` (the owner everything, an account
its own pairs, items and devices).

Why these pieces: server-rendered Jinja2 templates and Starlette routes (the
gateway's own stack), and htmx (vendored in ``static/`` with its licence, no
build step) for the polling and for submitting forms in place.  The page
works without scripts too: every action is a plain form answered with a
redirect.  Nothing is loaded from anywhere else (the Content-Security-Policy
says so to the browser).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from calsync.credentials import Login, app_passwords
from calsync.gateway.authz import scope_of
from calsync.gateway.logins import account_login
from calsync.gateway.web.routes import Handler, Pages
from calsync.gateway.web.security import SECURITY_HEADERS, Sessions

if TYPE_CHECKING:
    from calsync.gateway.daemon import Daemon

BROWSER_PATHS = ("/", "/web")  # the root page alone, and everything under /web


def secured(handler: Handler) -> Handler:
    """``handler`` whose every answer (refusals and redirects too) carries
    ``SECURITY_HEADERS`` (those it set itself win)."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        response = await handler(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key.lower(), value)
        return response

    return wrapped


class WebFeature:
    """The page's routes, for the gateway app (a feature: see ``gateway.app``)."""

    browser_paths = BROWSER_PATHS

    def __init__(self, daemon: Daemon, sessions: Sessions | None = None) -> None:
        self.daemon = daemon
        self.sessions = sessions or self._sessions(daemon)
        self.pages = Pages(daemon, self.sessions)
        p = self.pages
        self.routes: list[BaseRoute] = [
            Route("/", secured(p.viewing(p.index)), methods=["GET"]),
            Route("/web/live", secured(p.viewing(p.live)), methods=["GET"]),
            Route("/web/conflicts/{n}", secured(p.viewing(p.conflict)), methods=["GET"]),
            Route("/web/conflicts/{n}/resolve", secured(p.acting(p.resolve)), methods=["POST"]),
            Route("/web/history", secured(p.viewing(p.history)), methods=["GET"]),
            Route("/web/restore", secured(p.acting(p.restore)), methods=["POST"]),
            Route("/web/sync", secured(p.acting(p.sync)), methods=["POST"]),
            Route("/web/pair", secured(p.acting(p.pair)), methods=["POST"]),
            Route("/web/devices/revoke", secured(p.acting(p.revoke)), methods=["POST"]),
            Route("/web/login", secured(p.login_page), methods=["GET"]),
            Route("/web/login", secured(p.login), methods=["POST"]),
            Route("/web/logout", secured(p.acting(p.logout)), methods=["POST"]),
            Route("/web/static/{file}", secured(p.static), methods=["GET"]),
            Route("/web/{rest:path}", secured(self._unknown)),
        ]

    @staticmethod
    def _sessions(daemon: Daemon) -> Sessions:
        cfg = daemon.cfg
        logins = account_login(cfg)
        devices = app_passwords(cfg.state_dir)

        def account(user: str, password: str) -> Login | None:
            found = logins(user, password)
            return found[0] if found is not None else None

        def device_account(device: str) -> str | None:
            found = devices.get(device)
            return found.account if found is not None else None

        return Sessions(
            token=lambda: daemon.token,
            accounts=account,
            scopes=lambda login: scope_of(cfg, login),
            device_account=device_account,
        )

    async def _unknown(self, request: Request) -> Response:
        refused = self.sessions.refusal(request)
        return refused or PlainTextResponse("not found\n", 404)

    def startup(self) -> None:
        return None

    def shutdown(self) -> None:
        return None
