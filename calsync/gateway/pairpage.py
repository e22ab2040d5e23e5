"""The pairing page: what a phone gets from the one-time URL of its QR code.

Routes (``{token}``: the pairing's one-time token, ``pairing.py``):

* ``GET /pair/{token}``: the page: the CA fingerprint to compare, then per
  platform (the phone's own first, by its User-Agent; the others below):
  iPhone/iPad/Mac: one profile; Android: the CA certificate, then the
  account in DAVx5; SyncML phones and SyncEvolution: the server URL, user,
  password and datastore names;
* ``GET /pair/{token}/calsync.mobileconfig``: the configuration profile (the
  CA as a ``com.apple.security.root`` payload, the account as a
  ``com.apple.caldav.account`` payload when the account is a CalDAV user);
* ``GET /pair/{token}/ca.crt``: the CA certificate, DER
  (``application/x-x509-ca-cert``: what Android's installer takes);
* ``GET /pair/{token}/account``: the account spelled out (server URLs, user,
  password, datastores, the DAVx5 link ``caldavs://user@host:port/dav/``).

The profile and the account page hand out the device's app password, and
store it then (``PairingService.deliver``).  Every route claims the pairing
for the client that opens it first (a cookie, see ``pairing.py``); others,
and everyone after the 10 minutes, get 410 Gone.

Served in clear to the LAN (``plain_paths``), and only while its pairing is
open (every route answers 410 Gone otherwise, and nothing else is served in
clear): the phone does not trust our CA yet, so it cannot be asked to speak
TLS to us.
What that costs: someone who records the Wi-Fi's traffic during those
minutes can read the app password on its way (the page says to compare the
CA fingerprint, which defeats a forged CA, not a listener).  Revoke a
device that was paired on a network you do not trust, or pair with
``calsync pair --secure`` (the QR code then names the https URL: the phone
warns about the certificate once; compare the fingerprint and go on).

The profile is unsigned (iOS shows "Unverified"): signing needs a
certificate the phone already trusts, which is the thing being installed.

HTML by hand (``html.escape`` on every value): one small page with no
script, under a Content-Security-Policy that allows none; the headers also
keep it out of caches, frames and Referer headers (its URL holds the token).
"""

from __future__ import annotations

import html
import plistlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from calsync.config import Config
from calsync.gateway.pairing import Gone, Pairing, PairingService, Reach
from calsync.gateway.server import Listen

if TYPE_CHECKING:
    from calsync.credentials import AppPassword

PREFIX = "/pair"
COOKIE = "calsync_pair"
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'; form-action 'none'",
}
PROFILE_TYPE = "application/x-apple-aspen-config"
CA_TYPE = "application/x-x509-ca-cert"


def platform(user_agent: str) -> str:
    """``apple``, ``android`` or ``other`` (which section the page shows first)."""
    ua = user_agent.lower()
    if "android" in ua:
        return "android"
    if any(k in ua for k in ("iphone", "ipad", "ipod", "macintosh", "mac os x")):
        return "apple"
    return "other"


# -- what the pairing hands out -------------------------------------------------------------------


class Setup:
    """The account as a phone needs it: hosts, URLs, user, datastores."""

    def __init__(
        self,
        pairing: Pairing,
        *,
        caldav: bool,
        syncml: Sequence[str],
        host: str,
    ) -> None:
        """``caldav``: the account is a CalDAV user; ``syncml``: its SyncML datastore
        names (none: not a SyncML account); ``host``: the address the phone reached us at."""
        self.pairing = pairing
        self.reach = pairing.reach
        self.user = pairing.account
        self.caldav = caldav
        self.syncml = tuple(syncml)
        self.host = host
        # Apple devices resolve <host>.local and keep working when the address changes
        self.apple_host = self.reach.name or host

    def url(self, path: str, host: str | None = None) -> str:
        return self.reach.url(path, host=host or self.host)

    @property
    def davx5(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "caldavs" if self.reach.tls else "caldav"
        return f"{scheme}://{self.user}@{shown}:{self.reach.port}/dav/"


def mobileconfig(setup: Setup, password: str) -> bytes:
    """The configuration profile: our CA (when we have one) and the CalDAV account.

    Every payload has PayloadType, PayloadIdentifier, PayloadUUID and
    PayloadVersion.  UUIDs derive from the host, account and device, so
    installing a device's profile again replaces it instead of adding a copy."""
    p = setup.pairing
    base = f"calsync.{setup.apple_host}.{p.account}.{p.device}"

    def ids(kind: str) -> dict[str, object]:
        return {
            "PayloadIdentifier": f"{base}.{kind}",
            "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/{kind}")).upper(),
            "PayloadVersion": 1,
        }

    content: list[dict[str, object]] = []
    if setup.reach.ca_der is not None:
        content.append(
            {
                "PayloadType": "com.apple.security.root",
                **ids("ca"),
                "PayloadDisplayName": "calsync certificate authority",
                "PayloadCertificateFileName": "calsync-ca.cer",
                "PayloadContent": setup.reach.ca_der,
            }
        )
    if setup.caldav:
        content.append(
            {
                "PayloadType": "com.apple.caldav.account",
                **ids("caldav"),
                "PayloadDisplayName": "calsync calendar",
                "CalDAVAccountDescription": f"calsync ({setup.apple_host})",
                "CalDAVHostName": setup.apple_host,
                "CalDAVPort": setup.reach.port,
                "CalDAVPrincipalURL": setup.url(f"/dav/{p.account}/", setup.apple_host),
                "CalDAVUsername": p.account,
                "CalDAVPassword": password,
                "CalDAVUseSSL": True,
            }
        )
    profile = {
        "PayloadType": "Configuration",
        **ids("profile"),
        "PayloadDisplayName": f"calsync on {setup.apple_host}",
        "PayloadDescription": f"Trusts calsync's certificate and adds the calendar of "
        f"{p.account} (device {p.device}).",
        "PayloadOrganization": "calsync",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": content,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# -- the page -------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em;
line-height:1.45}code,.fp{font-family:ui-monospace,monospace;word-break:break-all}
.fp{background:#f3f3f3;padding:.4em;display:block}section{border-top:1px solid #ccc;
margin-top:1.2em}a.button{display:inline-block;padding:.6em 1em;background:#0a58ca;color:#fff;
border-radius:.4em;text-decoration:none;margin:.3em 0}dt{font-weight:bold}dd{margin:0 0 .5em}"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def landing(setup: Setup, first: str) -> str:
    p = setup.pairing
    here = f"{PREFIX}/{p.token}"
    fp = setup.reach.ca_fingerprint
    intro = (
        f"<p>This sets up <b>{_e(p.device)}</b> to sync the calendar of account "
        f"<b>{_e(p.account)}</b>. The link works on this one device, for 10 minutes.</p>"
    )
    if fp:
        intro += (
            "<p>Compare this fingerprint with the one <code>calsync pair</code> printed "
            "or calsync's web page shows "
            "(and the one your phone shows for the certificate); stop if they differ:</p>"
            f"<code class=fp id=fingerprint>SHA-256 {_e(fp)}</code>"
        )
    apple = "<section id=apple><h2>iPhone, iPad, Mac</h2>"
    if setup.caldav:
        apple += (
            f'<p><a class=button href="{_e(here)}/calsync.mobileconfig">Install the profile'
            "</a></p><ol><li>Allow the download, then open <i>Settings</i> &rarr; "
            "<i>Profile Downloaded</i> &rarr; <i>Install</i> (the profile is unsigned: "
            "iOS calls it <i>Unverified</i>).</li>"
        )
        if fp:
            apple += (
                "<li><i>Settings</i> &rarr; <i>General</i> &rarr; <i>About</i> &rarr; "
                "<i>Certificate Trust Settings</i>: turn on full trust for "
                "<i>calsync certificate authority</i>.</li>"
            )
        apple += "<li>Open <i>Calendar</i>: the calsync calendars are there.</li></ol>"
    else:
        apple += f"<p>Account {_e(p.account)} has no CalDAV calendars to add.</p>"
    apple += "</section>"
    android = "<section id=android><h2>Android (DAVx5)</h2><ol>"
    if fp:
        android += (
            f'<li><a class=button href="{_e(here)}/ca.crt">Download the certificate</a> '
            "and install it: <i>Settings</i> &rarr; <i>Security</i> &rarr; <i>Encryption "
            "&amp; credentials</i> &rarr; <i>Install a certificate</i> &rarr; "
            "<i>CA certificate</i>.</li>"
        )
    if setup.caldav:
        android += (
            f'<li><a class=button href="{_e(here)}/account">Show the password</a></li>'
            f"<li>In DAVx5, add an account with <i>Login with URL and user name</i>: "
            f"<code>{_e(setup.url('/dav/'))}</code>, user <code>{_e(setup.user)}</code> and "
            f'that password, or open <a href="{_e(setup.davx5)}">{_e(setup.davx5)}</a>.</li>'
        )
    android += "</ol></section>"
    other = "<section id=syncml><h2>SyncML phones and SyncEvolution</h2>"
    if setup.syncml:
        other += (
            f'<p><a class=button href="{_e(here)}/account">Show the server and password</a>'
            "</p><p>Enter them in the phone's SyncML settings (<i>Sync</i>, "
            "<i>Remote sync</i> or <i>Synchronisation</i>).</p>"
        )
    else:
        other += f"<p>Account {_e(p.account)} is not a SyncML account.</p>"
    other += "</section>"
    order = {"apple": [apple, android, other], "android": [android, apple, other]}
    sections = order.get(first, [apple, android, other])
    return _page(f"Pair {p.device} with calsync", intro + "".join(sections))


def account_page(setup: Setup, password: str) -> str:
    rows: list[tuple[str, str]] = [("User", setup.user), ("Password", password)]
    if setup.caldav:
        rows += [("CalDAV server", setup.url("/dav/")), ("DAVx5 link", setup.davx5)]
    if setup.syncml:
        rows += [
            ("SyncML server URL", setup.url("/sync")),
            ("Datastores", ", ".join(setup.syncml)),
        ]
    if setup.reach.ca_fingerprint:
        rows.append(("CA fingerprint (SHA-256)", setup.reach.ca_fingerprint))
    body = "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd><code>{_e(v)}</code></dd>" for k, v in rows)
    body += "</dl><p>Only this device sees this page, until the pairing ends.</p>"
    return _page(f"calsync account for {setup.pairing.device}", body)


def _download(body: bytes, media_type: str, name: str) -> Response:
    disposition = f'attachment; filename="{name}"'
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})


# -- the feature ---------------------------------------------------------------------------------


class PairPage:
    """The ``/pair`` routes (a gateway feature; a web page, served in clear while open)."""

    browser_paths = (PREFIX,)

    def __init__(
        self,
        service: PairingService,
        *,
        caldav_users: Sequence[str],
        syncml_accounts: Mapping[str, Sequence[str]],
    ) -> None:
        """``caldav_users``: accounts with CalDAV calendars; ``syncml_accounts``: SyncML
        account -> its datastore names."""
        self.service = service
        self.caldav_users = frozenset(caldav_users)
        self.syncml_accounts = dict(syncml_accounts)
        self.routes: list[BaseRoute] = [
            Route(PREFIX + "/{token}", self.landing, methods=["GET"]),
            Route(PREFIX + "/{token}/calsync.mobileconfig", self.profile, methods=["GET"]),
            Route(PREFIX + "/{token}/ca.crt", self.ca, methods=["GET"]),
            Route(PREFIX + "/{token}/account", self.account, methods=["GET"]),
        ]

    def plain_paths(self) -> Sequence[str]:
        """The paths served in clear to other machines (``app.PlainGuard``): ``/pair``,
        whose every route answers 410 unless its token names an open pairing, so an
        expired link says so from the LAN too."""
        return (PREFIX,)

    def startup(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    # -- routes ------------------------------------------------------------------------------

    def _claim(self, request: Request) -> tuple[Setup, str]:
        pairing, client = self.service.claim(
            request.path_params["token"], request.cookies.get(COOKIE)
        )
        host = request.url.hostname or pairing.reach.address
        setup = Setup(
            pairing,
            caldav=pairing.account in self.caldav_users,
            syncml=self.syncml_accounts.get(pairing.account, ()),
            host=host,
        )
        return setup, client

    def _answer(self, response: Response, setup: Setup, client: str) -> Response:
        response.headers.update(HEADERS)
        response.set_cookie(
            COOKIE,
            client,
            max_age=max(1, int(setup.pairing.remaining(self.service.clock()))),
            path=f"{PREFIX}/{setup.pairing.token}",
            httponly=True,
            samesite="strict",
            secure=False,  # the first contact is in clear (see the module docstring)
        )
        return response

    @staticmethod
    def _gone(e: Gone) -> Response:
        return PlainTextResponse(f"{e}\n", status_code=410, headers=HEADERS)

    async def _deliver(self, setup: Setup) -> AppPassword:
        """The app password (stored the first time: a file write, in a thread)."""
        return await run_in_threadpool(self.service.deliver, setup.pairing)

    async def landing(self, request: Request) -> Response:
        try:
            setup, client = self._claim(request)
        except Gone as e:
            return self._gone(e)
        first = platform(request.headers.get("user-agent", ""))
        return self._answer(HTMLResponse(landing(setup, first)), setup, client)

    async def profile(self, request: Request) -> Response:
        try:
            setup, client = self._claim(request)
            app = await self._deliver(setup)
        except Gone as e:
            return self._gone(e)
        body = mobileconfig(setup, app.password)
        return self._answer(_download(body, PROFILE_TYPE, "calsync.mobileconfig"), setup, client)

    async def ca(self, request: Request) -> Response:
        try:
            setup, client = self._claim(request)
        except Gone as e:
            return self._gone(e)
        if setup.reach.ca_der is None:
            return PlainTextResponse("this server uses its own certificate\n", 404)
        return self._answer(_download(setup.reach.ca_der, CA_TYPE, "calsync-ca.crt"), setup, client)

    async def account(self, request: Request) -> Response:
        try:
            setup, client = self._claim(request)
            app = await self._deliver(setup)
        except Gone as e:
            return self._gone(e)
        return self._answer(HTMLResponse(account_page(setup, app.password)), setup, client)


def pair_page(cfg: Config, reach: Callable[[], Reach]) -> PairPage:
    """The pairing page and service for a configuration's accounts (CalDAV users and
    SyncML accounts), reaching phones as ``reach()`` says."""
    from calsync.credentials import app_passwords

    caldav = list(cfg.section("caldav").get("users", {}))
    syncml: dict[str, list[str]] = {}
    for name, account in cfg.section("syncml").get("accounts", {}).items():
        if isinstance(account, dict):
            syncml[name] = [d for d in ("calendar", "tasks") if d in account]
            syncml[name] += sorted(account.get("aliases", {}))
    names = [*caldav, *(n for n in syncml if n not in caldav)]
    service = PairingService(app_passwords(cfg.state_dir), lambda: names, reach)
    return PairPage(service, caldav_users=caldav, syncml_accounts=syncml)


def loopback_reach(opts: Listen) -> Callable[[], Reach]:
    """Where phones reach a gateway that is not in LAN mode: this machine only, or with
    ``allow_remote`` and the user's own certificate its address, over https alone
    (that port speaks no plain HTTP)."""
    tls = opts.scheme == "https"

    def reach() -> Reach:
        from calsync.gateway.lan import primary_address

        host = opts.host
        if opts.wildcard:
            host = primary_address() if tls else "127.0.0.1"
        return Reach(host, opts.port, tls=tls, clear=not tls)

    return reach
