"""Who may see the web page and act on it: the transport, logins, sessions, CSRF.

The page shows every pair's calendar data and can overwrite it, so it is
served under these rules, checked in this order for every route:

1. **Transport.**  Plain HTTP from another machine: 403, whatever the route
   (credentials and calendars cross a network only inside TLS).  Over plain
   HTTP the ``Host`` must be ``localhost`` or an address literal: a page of
   another site whose name was re-pointed at this machine (DNS rebinding)
   would otherwise read it as its own (over TLS the certificate stops that).
2. **Who.**  On this machine (loopback) no password is asked: a session is
   opened on the first visit.  From the LAN (over TLS) a session is opened by
   logging in, at ``/web/login`` (or with an ``Authorization: Basic`` header):
   a CalDAV user's or SyncML account's name and password
   (``logins.account_login``), or the control API's token with no user name.
   Wrong ones count in the failed-login throttle (``logins.FailureThrottle``)
   and are answered after ``FAILURE_DELAY``.  The login fixes the session's
   ``Scope`` (``gateway.authz``): this machine and the token are the owner
   (everything); an account's password, that account's pairs, items and
   devices; one of its app passwords, the same without pairing or revoking.
   A session opened with an app password ends when that device is revoked.
3. **The session** is a random id in a cookie: HttpOnly, SameSite=Strict,
   Path=/, Secure over TLS (named ``__Host-...`` there), never in a URL.  It is
   kept in memory (a restart or a reload logs everyone out), ends after
   ``IDLE`` seconds unused or ``LIFETIME`` in all, and a login replaces the
   session it came with (no fixation).  At most ``MAX_SESSIONS`` are kept,
   the longest unused go first.  A pairing opened with the page's button is
   kept in its session (its one-time URL is shown to that session alone,
   until it expires).
4. **Actions** (every POST) need the session's CSRF token (a synchronizer
   token: form field ``csrf`` or header ``X-CSRF-Token``, compared in
   constant time), and a request whose ``Origin`` (or ``Sec-Fetch-Site``)
   says another site is refused (``app.from_web_page``: the gateway's browser
   guard, which exempts the page's paths, applied here to its actions).
   A POST without a session is refused: its token cannot match anything.
   The login form, sent before there is a session, carries a token that
   must equal a cookie its page set (``LOGIN_COOKIE``, double submit), and
   the same Origin check.

Every answer carries headers that keep it out of frames and caches and allow
scripts and styles from the page's own origin only (``SECURITY_HEADERS``).

Why hand-written: Starlette's SessionMiddleware keeps the session *in* a
signed cookie (its data readable by the client, no server-side revocation),
and its CSRF is left to the application; these few rules are all we need.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from calsync.gateway.app import from_web_page
from calsync.gateway.auth import check as bearer_check
from calsync.gateway.authz import OWNER, Scope
from calsync.gateway.logins import (
    FAILURE_DELAY,
    FailureThrottle,
    MalformedCredentials,
    parse_basic,
    source_key,
)
from calsync.gateway.server import is_loopback

if TYPE_CHECKING:
    from calsync.credentials import Login
    from calsync.gateway.pairing import Offer

IDLE: Final = 12 * 3600.0  # seconds a session lives unused
LIFETIME: Final = 7 * 86400.0  # seconds a session lives at most
MAX_SESSIONS: Final = 1000
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
LOGIN_PATH: Final = "/web/login"
LOGIN_COOKIE: Final = "calsync-login"

Who = Literal["local", "account", "token"]

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    id: str
    who: Who
    user: str  # the account's name; "" on this machine or with the token
    csrf: str
    created: float
    used: float
    scope: Scope = OWNER  # what it sees and may do (``authz``)
    flash: list[str] = field(default_factory=list)  # messages shown once, on the next page
    offer: Offer | None = None  # the pairing this session opened last (shown until it expires)


def cookie_name(request: Request) -> str:
    """The session cookie's name: per port (cookies do not tell ports apart), and
    ``__Host-`` over TLS (the browser then insists on Secure, Path=/, no Domain)."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    base = f"calsync-session-{port}"
    return f"__Host-{base}" if request.url.scheme == "https" else base


def client_host(request: Request) -> str:
    return request.client.host if request.client else ""


def host_allowed(request: Request) -> bool:
    """Rule 1's Host check: over plain HTTP, ``localhost`` or an address literal."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Sessions:
    """The sessions in memory, and the login rules (see the module docstring)."""

    def __init__(
        self,
        *,
        token: Callable[[], str],
        accounts: Callable[[str, str], Login | None],
        scopes: Callable[[Login | None], Scope],
        device_account: Callable[[str], str | None],
        throttle: FailureThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``token``: the API token (asked each time: it is read once by the daemon);
        ``accounts``: whose password it is (``logins.account_login``); ``scopes``: a
        login's scope (``authz.scope_of``, None: the owner); ``device_account``: the
        account a device's app password belongs to now (None: revoked)."""
        self.token = token
        self.accounts = accounts
        self.scopes = scopes
        self.device_account = device_account
        self.throttle = throttle or FailureThrottle()
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first

    # -- the transport ---------------------------------------------------------------------

    def refusal(self, request: Request) -> Response | None:
        """Rule 1: the answer for a request that must not be served at all."""
        if request.url.scheme != "https" and not is_loopback(client_host(request)):
            return PlainTextResponse("the web page needs TLS from other machines (https)\n", 403)
        if not host_allowed(request):
            return PlainTextResponse(
                "over plain HTTP, open the page as localhost or by address\n", 403
            )
        return None

    # -- sessions ------------------------------------------------------------------------------

    def current(self, request: Request) -> Session | None:
        sid = request.cookies.get(cookie_name(request))
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.used > IDLE or now - session.created > LIFETIME:
            del self._sessions[sid]
            return None
        if session.who == "local" and not is_loopback(client_host(request)):
            return None  # opened without a password: good on this machine only
        device = session.scope.device
        if device is not None and self.device_account(device) != session.scope.account:
            del self._sessions[sid]  # its app password was revoked
            return None
        session.used = now
        self._sessions.move_to_end(sid)
        return session

    def open(
        self, who: Who, login: Login | None = None, replacing: Session | None = None
    ) -> Session:
        """A new session for ``who`` (``login``: the account's, for an account)."""
        if replacing is not None:
            self._sessions.pop(replacing.id, None)
        now = self.clock()
        user = login.account if login is not None else ""
        csrf = secrets.token_urlsafe(32)
        scope = self.scopes(login)
        session = Session(secrets.token_urlsafe(32), who, user, csrf, now, now, scope=scope)
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def close(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def count(self) -> int:
        return len(self._sessions)

    def set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            cookie_name(request),
            session.id,
            max_age=int(LIFETIME),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            cookie_name(request),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    # -- logging in -----------------------------------------------------------------------------

    @staticmethod
    def new_login_token() -> str:
        return secrets.token_urlsafe(24)

    def set_login_cookie(self, request: Request, response: Response, value: str) -> None:
        """The login form's CSRF token as a cookie too (double submit)."""
        response.set_cookie(
            f"{LOGIN_COOKIE}-{request.url.port or 443}",
            value,
            max_age=3600,
            path=LOGIN_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def login_refusal(self, request: Request, token: str) -> str | None:
        """Rule 4 for the login form (no session yet: the double-submit cookie)."""
        why = from_web_page(request.headers, request.url.scheme)
        if why is not None:
            return why
        cookie = request.cookies.get(f"{LOGIN_COOKIE}-{request.url.port or 443}", "")
        if not token or not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
            return "the login form is stale or not from this page: reload it"
        return None

    def throttled(self, request: Request) -> float | None:
        """Seconds the source must wait before its next login is checked (None: check it)."""
        return self.throttle.refusal(source_key(client_host(request)))

    async def check_login(
        self, request: Request, user: str, password: str
    ) -> tuple[Who, Login | None] | None:
        """Whether ``user``/``password`` (or the token, with no user) may log in, and
        whose password it was; a failure is counted and answered late (the caller
        checked ``throttled``)."""
        if not user and bearer_check(f"Bearer {password}", self.token()):
            return "token", None
        # no await between the throttle's answer and counting a failure: simultaneous
        # guesses would all be tested (the check is a constant-time compare, no I/O
        # beyond a stat of the app-password file)
        if user:
            login = self.accounts(user, password)
            if login is not None:
                return "account", login
        self.throttle.failed(source_key(client_host(request)))
        await asyncio.sleep(FAILURE_DELAY)
        return None

    async def from_basic(self, request: Request) -> Session | Response | None:
        """A session from an ``Authorization: Basic`` header (None: there is none)."""
        header = request.headers.get("authorization")
        if not header or not header.lower().startswith("basic"):
            return None
        wait = self.throttled(request)
        if wait is not None:
            await asyncio.sleep(FAILURE_DELAY)
            return PlainTextResponse(
                "too many failed logins: try again later\n",
                429,
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        try:
            user, password = parse_basic(header)
        except MalformedCredentials as e:
            return PlainTextResponse(f"{e}\n", 401)
        found = await self.check_login(request, user, password)
        if found is None:
            return PlainTextResponse("wrong user name or password\n", 401)
        return self.open(*found)

    async def session_for(self, request: Request) -> tuple[Session, bool] | Response:
        """Rule 2 for a page view: the session (and whether it is new, so its cookie
        must be set), or the answer: the login page for the LAN."""
        session = self.current(request)
        if session is not None:
            return session, False
        if is_loopback(client_host(request)):
            return self.open("local"), True
        basic = await self.from_basic(request)
        if isinstance(basic, Response):
            return basic
        if basic is not None:
            return basic, True
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(LOGIN_PATH, status_code=303)
        return PlainTextResponse("log in first\n", 401)

    # -- actions -------------------------------------------------------------------------

    def action_refusal(
        self, request: Request, session: Session | None, token: str | None
    ) -> str | None:
        """Rule 4: why a state-changing request is refused (None: it may act)."""
        why = from_web_page(request.headers, request.url.scheme)
        if why is not None:
            return why
        if session is None:
            return "no session: open the page first"
        given = token or request.headers.get(CSRF_HEADER) or ""
        if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            return "the form is stale or not from this page (CSRF token): reload the page"
        return None
