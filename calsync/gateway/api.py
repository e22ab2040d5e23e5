"""The control API under ``/api/`` (JSON): what the daemon does, and asking it to act.

``GET  /api/status``        pairs (``calsync status --json``'s fields, plus a
                            ``daemon`` object: running, next run, failures,
                            last error...), SyncML devices seen, other
                            devices (``clients``: CalDAV, each with the paired
                            device whose app password it used), the paired
                            devices (``paired``), the daemon;
``POST /api/sync``          ``{"pairs": [...]?, "wait": false, "force", "dry_run",
                            "mode"}``: queue runs (202), or with ``wait`` run them
                            and answer ``calsync sync --json``'s object (200);
``GET  /api/conflicts``     ``?limit=``: conflicts resolved, newest first;
``GET  /api/conflicts/N``   one, with both versions and the properties that differ;
``POST /api/resolve``       ``{"conflict", "keep": "a"|"b"|"both"}``: decide it
                            again (``sync.resolve``), then sync those stores' pairs;
``GET  /api/history``       ``?uid=&limit=``: saved versions (with content);
``POST /api/restore``       ``{"uid", "version"?, "to"?}``: put a version back,
                            then sync that store's pairs;
``POST /api/pair``          ``{"account"?, "device"?, "secure"?}``: open a pairing
                            (``pairing.PairingService.start``): 201 with the
                            offer (one-time URL, QR codes, CA fingerprint), 409
                            when it cannot start (the message says why);
``GET  /api/devices``       the paired devices (never their passwords);
``DELETE /api/devices/{name}``  revoke a device's app password and end its sessions;
``GET  /api/openapi.json``  the schema of all this (``openapi.py``);
``GET  /api/identify``      ``?nonce=``: the daemon proves it holds the token
                            (``auth.proof``); the one route served without it.

Everything is behind ``auth.BearerAuth``; the routes here assume the caller
is the user.  Blocking work (SQLite, stores) runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import string
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from calsync.gateway.auth import proof
from calsync.gateway.logs import event
from calsync.gateway.openapi import schema
from calsync.gateway.scheduler import Options
from calsync.sync import MODES
from calsync.sync.engine import SyncResult

if TYPE_CHECKING:
    from calsync.gateway.daemon import Daemon

log = logging.getLogger("calsync.gateway.api")

MAX_BODY = 65536
MIN_NONCE, MAX_NONCE = 32, 128  # /identify: hex digits


class BadRequest(Exception):
    pass


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object: at most ``MAX_BODY`` bytes (refused from its
    Content-Length, or once that much arrived), UTF-8, nested within Python's
    recursion limit, no lone surrogates (``\\ud800`` decodes, but no store or
    database can take it); BadRequest otherwise, never an exception of its own."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise BadRequest("body too large")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("body too large")
        parts.append(chunk)
    body = b"".join(parts)
    if not body.strip():
        return {}
    import json

    try:
        data = json.loads(body.decode("utf-8"))
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails here
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise BadRequest("body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest("body nested too deep") from None
    except json.JSONDecodeError as e:
        raise BadRequest(f"body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def _limit(request: Request, default: int = 50) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 0 < int(text) <= 10000:
        raise BadRequest("limit must be a number from 1 to 10000")
    return int(text)


def exit_code(results: dict[str, SyncResult]) -> int:
    """``calsync sync``'s exit code for these results (0, 1 or 3)."""
    if any(r.guard for r in results.values()):
        return 3
    if any(r.stopped or r.errors for r in results.values()):
        return 1
    return 0


def sync_answer(results: dict[str, SyncResult]) -> dict[str, Any]:
    """``calsync sync --json``'s object, plus what the command line needs to print lines."""
    return {
        "pairs": {n: r.to_json() for n, r in results.items()},
        "details": {
            n: {"guard": r.guard, "seconds": round(r.seconds, 3)} for n, r in results.items()
        },
        "exit_code": exit_code(results),
    }


def devices(state_dir: Any) -> list[dict[str, Any]]:
    """SyncML devices that ever synced, per datastore (from the device DB, read-only)."""
    path = state_dir / "syncml.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute(
            "SELECT d.account, d.device, d.name, d.last_sync, d.last_result,"
            " (SELECT count(*) FROM mirror m WHERE m.ds = d.ds AND m.state != 'gone')"
            " FROM datastores d ORDER BY d.last_sync DESC"
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [
        {
            "account": account,
            "device": device,
            "datastore": name,
            "last_sync": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)) if last else None,
            "last_result": result,
            "items": items,
        }
        for account, device, name, last, result, items in rows
    ]


class ControlAPI:
    """The routes, bound to a daemon (its config, scheduler, counters)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.requests = 0
        self.router = Router(
            routes=[
                Route("/status", self.status, methods=["GET"]),
                Route("/sync", self.sync, methods=["POST"]),
                Route("/conflicts", self.conflicts, methods=["GET"]),
                Route("/conflicts/{n}", self.conflict, methods=["GET"]),
                Route("/resolve", self.resolve, methods=["POST"]),
                Route("/history", self.history, methods=["GET"]),
                Route("/restore", self.restore, methods=["POST"]),
                Route("/pair", self.pair, methods=["POST"]),
                Route("/devices", self.devices, methods=["GET"]),
                Route("/devices/{name}", self.revoke, methods=["DELETE"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/identify", self.identify, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.router(scope, receive, send)

    def _seen(self, request: Request, **fields: Any) -> None:
        self.requests += 1
        event(
            log,
            "api.request",
            method=request.method,
            path=request.url.path,
            agent=request.headers.get("user-agent", ""),
            **fields,
        )

    # -- endpoints ------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse(await self.daemon.snapshot(self.requests))

    async def sync(self, request: Request) -> Response:
        try:
            data = await _json_body(request)
            names = data.get("pairs")
            if names is None:
                names = list(self.daemon.cfg.pairs)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadRequest("pairs must be a list of pair names")
            unknown = [n for n in names if n not in self.daemon.cfg.pairs]
            if unknown:
                known = ", ".join(self.daemon.cfg.pairs) or "none"
                raise BadRequest(f"no pair named {', '.join(unknown)} (pairs: {known})")
            wait = _flag(data, "wait")
            mode = data.get("mode", "two-way")
            if mode not in MODES:
                raise BadRequest(f"mode must be one of {', '.join(MODES)}")
            options = Options(force=_flag(data, "force"), dry_run=_flag(data, "dry_run"), mode=mode)
        except BadRequest as e:
            self._seen(request, status=400)
            return _error(400, str(e))
        names = list(dict.fromkeys(names))
        self._seen(request, pairs=names, wait=wait)
        if self.daemon.scheduler.stopping:
            return _error(503, "the daemon is shutting down")
        futures = self.daemon.scheduler.request(names, options, "API request")
        if not wait:
            return JSONResponse({"queued": names}, status_code=202)
        results = await asyncio.gather(*futures)
        return JSONResponse(sync_answer(dict(zip(names, results, strict=True))))

    async def conflicts(self, request: Request) -> Response:
        self._seen(request)
        try:
            limit = _limit(request)
        except BadRequest as e:
            return _error(400, str(e))
        rows = await anyio.to_thread.run_sync(self.daemon.conflicts, limit)
        return JSONResponse({"conflicts": rows})

    async def conflict(self, request: Request) -> Response:
        self._seen(request)
        text = request.path_params["n"]
        if not text.isdigit() or len(text) > 18:
            return _error(404, f"no conflict number {text[:40]}")
        n = int(text)
        found = await anyio.to_thread.run_sync(self.daemon.conflict, n)
        if found is None:
            return _error(404, f"no conflict number {n}")
        return JSONResponse(found)

    async def resolve(self, request: Request) -> Response:
        try:
            data = await _json_body(request)
            n = data.get("conflict")
            if isinstance(n, bool) or not isinstance(n, int):
                raise BadRequest("conflict (a conflict's number) is required")
            keep = data.get("keep")
            if keep not in ("a", "b", "both"):
                raise BadRequest("keep must be a, b or both")
        except BadRequest as e:
            self._seen(request, status=400)
            return _error(400, str(e))
        self._seen(request, conflict=n, keep=keep)
        try:
            stores = await self.daemon.resolve(n, keep)
        except LookupError as e:
            return _error(404, str(e))
        except RuntimeError as e:
            return _error(409, str(e))
        return JSONResponse({"resolved": {"conflict": n, "keep": keep, "stores": stores}})

    async def history(self, request: Request) -> Response:
        self._seen(request)
        try:
            limit = _limit(request)
        except BadRequest as e:
            return _error(400, str(e))
        uid = request.query_params.get("uid") or None
        versions = await anyio.to_thread.run_sync(self.daemon.history, uid, limit)
        return JSONResponse({"history": versions})

    async def restore(self, request: Request) -> Response:
        try:
            data = await _json_body(request)
            uid = data.get("uid")
            if not isinstance(uid, str) or not uid:
                raise BadRequest("uid (a string) is required")
            number = data.get("version")
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise BadRequest("version must be a history entry number")
            to = data.get("to")
            if to is not None and to not in self.daemon.cfg.stores:
                raise BadRequest(f"no store named {to!r}")
        except BadRequest as e:
            self._seen(request, status=400)
            return _error(400, str(e))
        self._seen(request, uid=uid)
        try:
            n, store = await self.daemon.restore(uid, number, to)
        except LookupError as e:
            return _error(404, str(e))
        except RuntimeError as e:
            return _error(409, str(e))
        return JSONResponse({"restored": {"uid": uid, "version": n, "store": store}})

    async def pair(self, request: Request) -> Response:
        from calsync.gateway.pairing import PairingRefused

        try:
            data = await _json_body(request)
            account, device = data.get("account"), data.get("device")
            for key, value in (("account", account), ("device", device)):
                if value is not None and not isinstance(value, str):
                    raise BadRequest(f"{key} must be a string")
            secure = _flag(data, "secure")
        except BadRequest as e:
            self._seen(request, status=400)
            return _error(400, str(e))
        self._seen(request, account=account, device=device)
        service = self.daemon.pairing
        if service is None:
            return _error(503, "this daemon does not pair devices")
        try:
            offer = await anyio.to_thread.run_sync(
                lambda: service.start(account, device, secure=secure)
            )
        except PairingRefused as e:
            return _error(409, str(e))
        event(log, "pairing.start", account=offer.account, device=offer.device)
        return JSONResponse(offer.to_json(), status_code=201)

    async def devices(self, request: Request) -> Response:
        self._seen(request)
        service = self.daemon.pairing
        if service is None:
            return JSONResponse({"devices": []})
        found = await anyio.to_thread.run_sync(service.devices)
        return JSONResponse({"devices": [d.to_json() for d in found]})

    async def revoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._seen(request, device=name)
        service = self.daemon.pairing
        if service is None:
            return _error(404, f"no device named {name!r}")
        try:
            device = await anyio.to_thread.run_sync(service.revoke, name)
        except LookupError as e:
            return _error(404, str(e))
        event(log, "device.revoked", device=device.name, account=device.account)
        return JSONResponse({"revoked": device.to_json()})

    async def openapi(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse(schema())

    async def identify(self, request: Request) -> Response:
        """No token needed, nothing logged (anyone may ask): the proof only."""
        nonce = request.query_params.get("nonce", "")
        if not MIN_NONCE <= len(nonce) <= MAX_NONCE or nonce.strip(string.hexdigits):
            return _error(400, f"nonce must be {MIN_NONCE} to {MAX_NONCE} hex digits")
        return JSONResponse(
            {"daemon": "calsync", "pid": os.getpid(), "proof": proof(self.daemon.token, nonce)}
        )
