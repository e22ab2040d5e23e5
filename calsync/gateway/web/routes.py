"""The web page's routes: what each shows, and the actions behind its buttons.

Every route goes through ``Pages._gate`` (the rules of ``security``) first.
What the page shows comes from the daemon's own functions, the ones the
control API answers with (``Daemon.snapshot``, ``conflicts``, ``conflict``,
``history``, ``restore``, ``resolve``, ``scheduler.request``): the page is
another view of the same data, never a second copy of its computation.

Every page and action is given the session, and with it the session's
``Scope`` (``gateway.authz``, fixed at login): the daemon's functions get it
and answer only what it sees, the snapshot is cut to it, and each action
asks it before acting.  Whatever lies outside it is answered as missing
(404 for a page, "no pair named ...", "no conflict number ...", "no device
named ..." for an action, as for one that does not exist); a device
session pressing "Pair a phone" or "Revoke" gets 403.

``GET /`` is the page; ``GET /web/live`` its live part (pairs, devices, the
write queue, errors), which the page fetches every few seconds (htmx
polling) with the digest of what it shows, and which answers 204 when
nothing changed.  Actions are forms (POST, CSRF token), answered with a
redirect (303) to the page they came from, so they work without a script
too; htmx swaps the answer in place.

Pairing a phone (``POST /web/pair``) calls the daemon's ``PairingService``
(the one ``calsync pair`` reaches through the control API); the offer (QR
code, one-time URL, expiry, CA fingerprint) is kept in the session and shown
in the page's "Pair a phone" section until it expires, so the one-time URL
never travels in a URL of the page itself.  htmx asks for that section alone
(``HX-Target: pairing``) and gets it as the answer; without a script the
answer is the redirect.  ``POST /web/devices/revoke`` revokes a paired
device (``PairingService.revoke``).  The device list is one list: a paired
device's row shows what logged in with its app password (protocol, program,
when), from the same snapshot the API answers with.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio.to_thread
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from calsync.gateway.logs import event
from calsync.gateway.scheduler import Options
from calsync.gateway.web.plot import sparkline
from calsync.gateway.web.security import (
    CSRF_FIELD,
    LOGIN_PATH,
    SECURITY_HEADERS,
    Session,
    Sessions,
)
from calsync.sync.runner import status_file

if TYPE_CHECKING:
    from calsync.gateway.daemon import Daemon

log = logging.getLogger("calsync.gateway.web")

HERE = Path(__file__).parent
STATIC = {  # file -> content type: all there is to serve
    "htmx.min.js": "text/javascript; charset=utf-8",
    "htmx.LICENSE": "text/plain; charset=utf-8",
    "countdown.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
MAX_FORM = 16384  # bytes of a form (a few short fields)
MAX_FIELDS = 64  # fields of a form
RUNS_PLOTTED = 30
CONFLICTS_SHOWN = 20
HISTORY_SHOWN = 50
POLL_SECONDS = 3
PROTOCOLS = {"caldav": "CalDAV", "syncml": "SyncML"}  # as the page names them


ISO_UTC = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z")


def _when(iso: str | float | None) -> str:
    """An API time (UTC, ISO; or Unix time) as the daemon's local time, for reading
    on a phone."""
    if not iso:
        return "never"
    if isinstance(iso, float | int):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(iso))
    found = ISO_UTC.fullmatch(iso)
    if found is None:
        return iso
    fields = [int(f) for f in found.groups()]
    utc = calendar.timegm((*fields, 0, 0, 0))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(utc))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


Handler = Callable[[Request], Awaitable[Response]]
ViewBody = Callable[[Request, "Session"], Awaitable[Response]]
ActBody = Callable[[Request, "Session", "Form"], Awaitable[Response]]


class BadForm(Exception):
    pass


Form = dict[str, str]


async def _form(request: Request) -> Form:
    """A URL-encoded form (all the page sends: a few short fields), within ``MAX_FORM``;
    a field given twice keeps its first value.  Read here rather than through
    Starlette's parser, which needs python-multipart for even this."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind and request.headers.get("content-length", "0") == "0":
        return {}  # an empty form (its CSRF check will say what is missing)
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("a form must be sent as application/x-www-form-urlencoded")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FORM:
        raise BadForm("the form is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadForm("the form is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadForm("the form is not UTF-8") from None
    if text.count("&") >= MAX_FIELDS:  # parse_qsl would raise ValueError: our answer first
        raise BadForm(f"a form has at most {MAX_FIELDS} fields")
    out: Form = {}
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS):
        out.setdefault(key, value)
    return out


def _field(form: Form, name: str) -> str:
    return form.get(name, "")


def _no_device_management() -> Response:
    """A device's session asked to pair or revoke (``authz``: never)."""
    return PlainTextResponse(
        "a device's app password cannot pair or revoke devices: "
        "log in with the account's own password\n",
        403,
        headers=SECURITY_HEADERS,
    )


# -- what the page shows -----------------------------------------------------------------------


def _counts(result: dict[str, Any] | None, a: str, b: str) -> str:
    if not result:
        return ""
    parts = []
    for what in ("added", "updated", "deleted"):
        for side, store in (("a", a), ("b", b)):
            n = result.get(f"{what}_{side}", 0)
            if n:
                parts.append(f"{n} {what} in {store}")
    if result.get("conflicts"):
        parts.append(f"{result['conflicts']} conflict(s)")
    return ", ".join(parts) or "nothing to change"


def _problems(st: dict[str, Any]) -> list[str]:
    """The last sync's errors in words."""
    out = []
    result = st.get("last_result") or {}
    if result.get("stopped"):
        why = result["stopped"]
        if result.get("guard"):
            out.append(f"A safety guard stopped the last sync: {why}")
        else:
            out.append(f"The last sync did not run: {why}")
    for err in result.get("errors", []):
        what = err.get("uid") or err.get("id") or "an item"
        out.append(f"{err.get('store')}: {what}: {err.get('message')}")
    daemon = st.get("daemon") or {}
    if daemon.get("failures"):
        out.append(f"{daemon['failures']} failed run(s) in a row: {daemon.get('last_error')}")
    return out


def _schedule(daemon: dict[str, Any] | None) -> str:
    if not daemon:
        return ""
    if daemon.get("running"):
        return "syncing now"
    if daemon.get("queued"):
        return "sync queued"
    if daemon.get("next_run"):
        return f"next sync {_when(daemon['next_run'])}"
    return "stopping"


def pair_views(cfg: Any, pairs: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairs as the page lists them (sub-pairs of collections under their pair),
    with each one's recent runs plotted.  Reads the status DBs: run in a thread."""
    from calsync.sync.status import StatusDB

    def view(name: str, st: dict[str, Any], top: bool) -> dict[str, Any]:
        runs = []
        path = status_file(cfg, name)
        if path.exists():
            db = StatusDB(path)
            try:
                runs = db.runs(RUNS_PLOTTED)
            finally:
                db.close()
        last = runs[-1] if runs else None
        return {
            "name": name,
            "top": top,
            "a": st["a"],
            "b": st["b"],
            "item_count": st["items"],
            "last_run": st["last_run"],
            "counts": _counts(st.get("last_result"), st["a"], st["b"]),
            "seconds": round(last.seconds, 2) if last else None,
            "outcome": (
                "failed" if _problems(st) else ("ok" if st["last_run"] else "never synced")
            ),
            "schedule": _schedule(st.get("daemon")),
            "running": bool((st.get("daemon") or {}).get("running")),
            "problems": _problems(st),
            "queued": st.get("queued") or {},
            "plot": sparkline(runs),
            "subs": [
                view(f"{name}/{coll}", sub, False)
                for coll, sub in (st.get("collections") or {}).items()
            ],
        }

    return [view(name, st, True) for name, st in pairs.items()]


def device_views(snap: dict[str, Any]) -> list[dict[str, Any]]:
    """The status's devices as one list: SyncML devices (per datastore), each paired
    device (its app password) with the CalDAV clients that logged in with it, and the
    clients that used an account's own password.  ``paired``: the row can be revoked.
    (A SyncML session's app password is not recorded with its device yet: a SyncML
    phone that was paired has a row of each kind.)"""
    out = [
        {
            "name": d["device"],
            "protocol": "SyncML",
            "account": d["account"],
            "detail": f"{d['datastore']}: {d['items']} items"
            + (f", last result {d['last_result']}" if d.get("last_result") else ""),
            "seen": d["last_sync"],
            "pairs": d.get("pairs", []),
            "paired": False,
        }
        for d in snap["devices"]
    ]
    clients = snap.get("clients", [])
    paired = snap.get("paired", [])
    names = {p["name"] for p in paired}

    def program(c: dict[str, Any]) -> str:
        return f"{c['device']} from {c.get('address', '?')}"

    for p in paired:
        used = [c for c in clients if c.get("app_password") == p["name"]]
        protocols = dict.fromkeys(PROTOCOLS.get(c["protocol"], c["protocol"]) for c in used)
        out.append(
            {
                "name": p["name"],
                "protocol": ", ".join(protocols) or "paired",
                "account": p["account"],
                "detail": (
                    "; ".join(program(c) for c in used)
                    if used
                    else f"paired {_when(p['created'])}; no CalDAV login with its app password yet"
                ),
                "seen": max((c["last_seen"] for c in used), default=None),
                "pairs": p.get("pairs", []),
                "paired": True,
            }
        )
    for c in clients:
        if c.get("app_password") in names:
            continue
        gone = c.get("app_password")
        out.append(
            {
                "name": c["device"],
                "protocol": PROTOCOLS.get(c["protocol"], c["protocol"]),
                "account": c["account"],
                "detail": f"from {c.get('address', '?')}"
                + (f", with the app password of {gone} (revoked)" if gone else ""),
                "seen": c["last_seen"],
                "pairs": c.get("pairs", []),
                "paired": False,
            }
        )
    return out


class Pages:
    """The handlers, bound to the daemon (its data and actions) and the sessions."""

    def __init__(self, daemon: Daemon, sessions: Sessions) -> None:
        self.daemon = daemon
        self.sessions = sessions
        self.env = environment()

    # -- plumbing ---------------------------------------------------------------------------

    def _html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(**context)
        return HTMLResponse(body, status, headers=SECURITY_HEADERS)

    async def _gate(self, request: Request) -> tuple[Session, bool] | Response:
        refused = self.sessions.refusal(request)
        if refused is not None:
            return refused
        return await self.sessions.session_for(request)

    def viewing(self, body: ViewBody) -> Handler:
        """A page's handler: ``body`` runs once rules 1-3 let the request in (a new
        session's cookie is set on its answer)."""

        async def handler(request: Request) -> Response:
            gate = await self._gate(request)
            if isinstance(gate, Response):
                return gate
            session, new = gate
            return self._finish(request, await body(request, session), session, new)

        return handler

    def acting(self, body: ActBody) -> Handler:
        """An action's handler: ``body`` runs once rules 1 and 4 let the request in."""

        async def handler(request: Request) -> Response:
            acted = await self._action(request)
            if isinstance(acted, Response):
                return acted
            return await body(request, *acted)

        return handler

    def _finish(
        self, request: Request, response: Response, session: Session, new: bool
    ) -> Response:
        if new:
            self.sessions.set_cookie(request, response, session)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    async def _action(self, request: Request) -> tuple[Session, Form] | Response:
        """Rules 1 and 4 for a POST: the session and its form, or the refusal."""
        refused = self.sessions.refusal(request)
        if refused is not None:
            return refused
        session = self.sessions.current(request)
        if session is None:
            basic = await self.sessions.from_basic(request)
            if isinstance(basic, Response):
                return basic
            session = basic
        try:
            form = await _form(request)
        except BadForm as e:
            return PlainTextResponse(f"{e}\n", 400)
        why = self.sessions.action_refusal(request, session, _field(form, CSRF_FIELD))
        if why is not None:
            event(log, "web.refused", logging.WARNING, path=request.url.path, why=why)
            return PlainTextResponse(why + "\n", 403, headers=SECURITY_HEADERS)
        assert session is not None
        return session, form

    def _back(self, request: Request, to: str) -> Response:
        """After an action: back to ``to`` (a 303 both a form and htmx follow)."""
        return RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)

    def _context(self, session: Session, *, flash_shown: bool = True) -> dict[str, Any]:
        """What every page's frame needs; ``flash_shown``: the messages are shown
        now (the live part's refreshes leave them for the next whole page)."""
        flash = session.flash
        if flash_shown:
            session.flash = []
        who = "this machine" if session.who == "local" else "API token"
        return {
            "csrf": session.csrf,
            "who": session.scope.describe() if session.scope.account else who,
            "remote": session.who != "local",
            "flash": flash,
            "poll": POLL_SECONDS,
        }

    async def _live_context(self, session: Session) -> dict[str, Any]:
        scope = session.scope
        snap = scope.snapshot(await self.daemon.snapshot(0))
        pairs = await anyio.to_thread.run_sync(pair_views, self.daemon.cfg, snap["pairs"])
        return {
            "pairs": pairs,
            "devices": device_views(snap),
            "revocable": self.daemon.pairing is not None and scope.may_manage_devices,
            "stopping": snap["daemon"]["stopping"],
        }

    # -- pages ------------------------------------------------------------------------------

    async def index(self, request: Request, session: Session) -> Response:
        live = await self._live_context(session)
        conflicts = await anyio.to_thread.run_sync(
            self.daemon.conflicts, CONFLICTS_SHOWN, session.scope
        )
        digest = self._digest(live)
        response = self._html(
            "index.html",
            **self._context(session),
            **live,
            **self._pairing(session),
            digest=digest,
            conflicts=conflicts,
            notes=[],
        )
        return response

    def _pairing(self, session: Session) -> dict[str, Any]:
        """The "Pair a phone" section's context: the accounts to choose from (those of
        the session's scope), and the session's offer while it lasts (None: this
        daemon does not pair devices; ``allowed`` false: a device's session)."""
        service = self.daemon.pairing
        if service is None:
            return {"pairing": None}
        offer = session.offer
        remaining = offer.expires - service.clock() if offer is not None else 0.0
        if offer is not None and remaining <= 0:
            session.offer = offer = None
        scope = session.scope
        return {
            "pairing": {
                "allowed": scope.may_manage_devices,
                "accounts": scope.pairing_accounts(service.accounts()),
                "offer": offer,
                "remaining": int(remaining),
            }
        }

    @staticmethod
    def _digest(live: dict[str, Any]) -> str:
        return hashlib.blake2b(repr(live).encode(), digest_size=12).hexdigest()

    async def live(self, request: Request, session: Session) -> Response:
        live = await self._live_context(session)
        digest = self._digest(live)
        if request.query_params.get("seen") == digest:
            return Response(status_code=204)
        response = self._html(
            "live.html", **self._context(session, flash_shown=False), **live, digest=digest
        )
        return response

    async def conflict(self, request: Request, session: Session) -> Response:
        text = request.path_params["n"]
        found = None
        if text.isdigit() and len(text) <= 18:
            found = await anyio.to_thread.run_sync(self.daemon.conflict, int(text), session.scope)
        if found is None:
            response: Response = self._html(
                "message.html", 404, **self._context(session), message=f"No conflict {text[:40]}."
            )
        else:
            response = self._html("conflict.html", **self._context(session), c=found)
        return response

    async def history(self, request: Request, session: Session) -> Response:
        uid = request.query_params.get("uid", "").strip() or None
        versions = await anyio.to_thread.run_sync(
            self.daemon.history, uid, HISTORY_SHOWN, session.scope
        )
        response = self._html("history.html", **self._context(session), uid=uid, versions=versions)
        return response

    async def static(self, request: Request) -> Response:
        refused = self.sessions.refusal(request)
        if refused is not None:
            return refused
        name = request.path_params["file"]
        kind = STATIC.get(name)
        if kind is None:
            return PlainTextResponse("not found\n", 404)
        body = (HERE / "static" / name).read_bytes()
        return Response(
            body,
            headers={
                **SECURITY_HEADERS,
                "Content-Type": kind,
                "Cache-Control": "private, max-age=3600",
            },
        )

    # -- logging in and out --------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        refused = self.sessions.refusal(request)
        if refused is not None:
            return refused
        if self.sessions.current(request) is not None:
            return RedirectResponse("/", 303)
        return self._login_html(request, None, 200)

    async def login(self, request: Request) -> Response:
        refused = self.sessions.refusal(request)
        if refused is not None:
            return refused
        try:
            form = await _form(request)
        except BadForm as e:
            return PlainTextResponse(f"{e}\n", 400)
        why = self.sessions.login_refusal(request, _field(form, CSRF_FIELD))
        if why is not None:
            return PlainTextResponse(why + "\n", 403, headers=SECURITY_HEADERS)
        wait = self.sessions.throttled(request)
        if wait is not None:
            await asyncio.sleep(1)
            return self._login_html(request, "Too many failed logins: wait a minute.", 429)
        user = _field(form, "user").strip()
        found = await self.sessions.check_login(request, user, _field(form, "password"))
        if found is None:
            address = request.client.host if request.client else ""
            event(log, "web.login_failed", logging.WARNING, user=user[:64], address=address)
            return self._login_html(request, "Wrong user name or password.", 401)
        who, login = found
        old = self.sessions.current(request)
        session = self.sessions.open(who, login, replacing=old)
        event(
            log,
            "web.login",
            who=who,
            user=user[:64],
            role=session.scope.role,
            device=session.scope.device,
        )
        response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
        self.sessions.set_cookie(request, response, session)
        return response

    def _login_html(self, request: Request, error: str | None, status: int) -> Response:
        token = self.sessions.new_login_token()
        response = self._html("login.html", status, error=error, token=token)
        self.sessions.set_login_cookie(request, response, token)
        return response

    async def logout(self, request: Request, session: Session, form: Form) -> Response:
        self.sessions.close(session)
        response = RedirectResponse(
            LOGIN_PATH if session.who != "local" else "/", 303, headers=SECURITY_HEADERS
        )
        self.sessions.clear_cookie(request, response)
        return response

    # -- actions -----------------------------------------------------------------------------------

    async def sync(self, request: Request, session: Session, form: Form) -> Response:
        name = _field(form, "pair")
        if name not in self.daemon.cfg.pairs or not session.scope.sees_pair(name):
            return PlainTextResponse(f"no pair named {name[:80]!r}\n", 404)
        if self.daemon.scheduler.stopping:
            return PlainTextResponse("the daemon is shutting down\n", 503)
        self.daemon.scheduler.request([name], Options(), "web page")
        event(log, "web.sync", pair=name, who=session.who, role=session.scope.role)
        session.flash.append(f"Sync of {name} queued.")
        return self._back(request, "/")

    async def resolve(self, request: Request, session: Session, form: Form) -> Response:
        text = request.path_params["n"]
        keep = _field(form, "keep")
        if not text.isdigit() or len(text) > 18 or keep not in ("a", "b", "both"):
            return PlainTextResponse("no such conflict or choice\n", 400)
        n = int(text)
        try:
            stores = await self.daemon.resolve(n, keep, session.scope)
        except LookupError as e:
            session.flash.append(str(e))
        except RuntimeError as e:
            session.flash.append(f"Not done: {e}")
        else:
            what = {"a": "the first version", "b": "the second version", "both": "both"}[keep]
            where = ", ".join(stores) if stores else "nothing needed writing"
            session.flash.append(f"Kept {what} ({where}); the pairs sync it now.")
        return self._back(request, f"/web/conflicts/{n}")

    async def restore(self, request: Request, session: Session, form: Form) -> Response:
        uid = _field(form, "uid")
        number = _field(form, "version")
        if not uid or not number.isdigit() or len(number) > 18:
            return PlainTextResponse("uid and version are required\n", 400)
        try:
            n, store = await self.daemon.restore(uid, int(number), None, session.scope)
        except LookupError as e:
            session.flash.append(str(e))
        except RuntimeError as e:
            session.flash.append(f"Not done: {e}")
        else:
            session.flash.append(
                f"Version {n} of {uid} restored into {store}; its pairs sync it now."
            )
        from urllib.parse import quote

        return self._back(request, f"/web/history?uid={quote(uid, safe='')}")

    async def pair(self, request: Request, session: Session, form: Form) -> Response:
        """Open a pairing for the chosen account and device name; its offer is shown in
        the "Pair a phone" section (htmx: that section is the answer)."""
        from calsync.gateway.pairing import PairingRefused

        service = self.daemon.pairing
        if service is None:
            return PlainTextResponse("this daemon does not pair devices\n", 503)
        scope = session.scope
        if not scope.may_manage_devices:
            return _no_device_management()
        account = _field(form, "account").strip() or None
        device = _field(form, "device").strip() or None
        notes = []
        try:
            offer = await anyio.to_thread.run_sync(
                lambda: service.start(account, device, among=scope.pairing_accounts)
            )
        except PairingRefused as e:
            notes.append(f"Not paired: {e}.")
        else:
            session.offer = offer
            event(log, "pairing.start", account=offer.account, device=offer.device, via="web")
        if request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == (
            "pairing"
        ):
            return self._html(
                "pairing.html",
                **self._context(session, flash_shown=False),
                **self._pairing(session),
                notes=notes,
            )
        session.flash += notes
        return self._back(request, "/#pairing")

    async def revoke(self, request: Request, session: Session, form: Form) -> Response:
        """Revoke a paired device: its app password stops working, its sessions end."""
        from calsync.credentials import DEVICE_NAME

        service = self.daemon.pairing
        name = _field(form, "device")
        if service is None or not DEVICE_NAME.match(name):
            return PlainTextResponse("no such device\n", 400)
        scope = session.scope
        if not scope.may_manage_devices:
            return _no_device_management()
        try:
            device = await anyio.to_thread.run_sync(
                lambda: service.revoke(name, account=scope.revoke_account)
            )
        except LookupError as e:
            session.flash.append(f"Not revoked: {e}.")
        else:
            event(log, "device.revoked", device=device.name, account=device.account, via="web")
            if session.offer is not None and session.offer.device == device.name:
                session.offer = None
            session.flash.append(
                f"{device.name} is revoked: its app password stopped working, "
                "and its sessions ended."
            )
        return self._back(request, "/")
