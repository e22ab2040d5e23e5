"""Radicale as a library: its WSGI application, configured for calsync's plugins.

``build(service)`` returns a WSGI app: Radicale's ``Application`` with

* storage = ``storage.Storage`` bound to the ``DavService``;
* auth = ``CalsyncAuth``: the ``[caldav.users.NAME]`` passwords, compared in
  constant time.  The gateway's guard has checked them already, and delays
  and counts failures in its event loop; Radicale's own delay is off (it
  slept in the worker thread, so failed logins could starve the pool);
* rights = ``CalsyncRights``: a user reads the root and their own principal
  and writes items of their own calendars, nothing else (no new or deleted
  collections);
* no web interface, no hooks, no sharing; logs quiet (``WARNING``) unless
  calsync runs with debug logs.  Radicale masks the Authorization header
  in what it logs, and never sees the body logged.

``DavWSGI`` wraps it per request: reads the body once (bounded by
``bodies.limit_for``; the guard read it already, checked, so this is a copy
in memory), keeps the exact bytes for the storage plugin (``context``), and
answers with the plugin's own status when it aborted (412, 503...) instead of
Radicale's generic 400/500.

Item names (hrefs) in any script: PEP 3333 hands the path over as latin-1
characters standing for the URL's bytes, while Radicale expects the decoded
text (its own server sets ``PATH_INFO`` to ``unquote(path)``).  ``as_text``
turns one into the other, once, for Radicale and for the storage plugin
alike; before it, Radicale took ``ä`` (C3 A4) for two characters (its
listing then escaped them again) and refused names with a byte in
0x80-0x9F as control characters.  Radicale's own check of names is set to
refuse only control characters: the storage keeps a name as text and files
it in a store only where the store takes it as it is.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any

from radicale import Application
from radicale import config as radicale_config
from radicale.auth import BaseAuth
from radicale.rights import BaseRights

from calsync.davserver import context
from calsync.davserver.bodies import MAX_XML_BODY, limit_for, too_large
from calsync.davserver.context import DavAbort
from calsync.davserver.service import DavService
from calsync.davserver.state import InvalidToken
from calsync.davserver.storage import Storage

log = logging.getLogger("calsync.davserver")

REALM = "calsync CalDAV"


class CalsyncAuth(BaseAuth):
    """Users and passwords from ``[caldav.users.NAME]``."""

    def __init__(self, configuration: Any, service: DavService) -> None:
        super().__init__(configuration)
        self.service = service

    def _login(self, login: str, password: str) -> str:
        return login if self.service.settings.check(login, password) else ""


class CalsyncRights(BaseRights):
    """R on the root and one's principal; rw on one's calendars (the storage has only
    the configured ones, and refuses to create or delete any)."""

    def __init__(self, configuration: Any, service: DavService) -> None:
        super().__init__(configuration)
        self.service = service

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        if not user:
            return ""
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            return "R"
        if parts[0] != user:
            return ""
        if len(parts) == 1:
            return "R"
        if len(parts) == 2:  # what exists is the storage's answer (404 for the unknown)
            return "rw"
        return ""


def radicale_configuration(service: DavService, *, debug: bool = False) -> Any:
    configuration = radicale_config.load()
    configuration.update(
        {
            "auth": {
                "type": lambda c: CalsyncAuth(c, service),
                "realm": REALM,
                "delay": "0",  # failures wait in the guard's event loop, not in a worker
            },
            "rights": {
                "type": lambda c: CalsyncRights(c, service),
                "permit_delete_collection": "False",
                "permit_overwrite_collection": "False",
            },
            "storage": {"type": lambda c: Storage(c, service)},
            "web": {"type": "none"},
            "hook": {"type": "none"},
            "server": {
                # above our own limits (the guard's and DavWSGI's): Radicale caps an
                # item at 80% of this, and max_resource_size is the item limit
                "max_content_length": str(2 * max(service.settings.max_size, MAX_XML_BODY)),
                "delay_on_error": "0",  # 412 and 404 are normal answers (logins: the guard)
                "max_resource_size": str(service.settings.max_size),
                # no refusal by rule length: SyncML devices may add such items too,
                # and every expansion is bounded (radicale_hooks)
                "max_vevent_rrule_occurrence": "0",
                # item names are the client's, kept as text (see Storage): no refusing
                # of characters a file system might not take
                "validate_path_value": "none",
            },
            "logging": {"mask_passwords": "True", "level": "debug" if debug else "warning"},
        },
        "calsync",
        privileged=True,
    )
    return configuration


class _Expected(logging.Filter):
    """Radicale logs the refusals we raise (412, 403, an old sync token) with a
    traceback; they are answers, not failures: keep the line, drop the trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (DavAbort, InvalidToken)):
            record.exc_info = None
            record.exc_text = None
        return True


def build(service: DavService) -> DavWSGI:
    debug = logging.getLogger("calsync").getEffectiveLevel() <= logging.DEBUG
    radicale_log = logging.getLogger("radicale")
    radicale_log.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not any(isinstance(f, _Expected) for f in radicale_log.filters):
        radicale_log.addFilter(_Expected())
    return DavWSGI(Application(radicale_configuration(service, debug=debug)), service)


def as_text(environ: dict[str, Any], key: str) -> str:
    """A WSGI path as the text it names: PEP 3333 gives the URL's bytes as latin-1
    characters; Radicale takes them for the names themselves (its own server
    puts ``unquote(path)`` there), so UTF-8 is decoded here, once, strictly."""
    value: str = environ.get(key, "")
    return value.encode("latin-1").decode("utf-8")


class DavWSGI:
    """Per-request context around Radicale (see module docstring)."""

    def __init__(self, radicale: Any, service: DavService) -> None:
        self.radicale = radicale
        self.service = service

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        limit = limit_for(method, self.service.settings.max_size)
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            size = int(length)
            if size > limit:
                return _answer(start_response, 413, too_large(limit).message + "\n")
            body = environ["wsgi.input"].read(size) if size else b""
        else:  # chunked: read to the end, bounded
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return _answer(start_response, 413, too_large(limit).message + "\n")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        try:
            path = as_text(environ, "PATH_INFO")
            environ["SCRIPT_NAME"] = as_text(environ, "SCRIPT_NAME")
        except UnicodeDecodeError:
            return _answer(start_response, 400, "the path is not UTF-8 (escape it as UTF-8)\n")
        environ["PATH_INFO"] = path
        ctx = context.RequestContext(method, path, body)
        context.begin(ctx)
        try:
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"] = status
                captured["headers"] = headers
                return lambda data: None

            chunks = list(self.radicale(environ, capture))
            if ctx.abort is not None:
                a = ctx.abort
                log.info("%s %s: %d %s", method, ctx.path, a.status, a.message)
                headers = {"Retry-After": str(a.retry_after)} if a.retry_after else {}
                return _answer(start_response, a.status, a.message + "\n", headers)
            start_response(captured["status"], captured["headers"])
            return chunks
        finally:
            context.end()


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    412: "Precondition Failed",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _answer(
    start_response: Any, status: int, text: str, headers: dict[str, str] | None = None
) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *(headers or {}).items(),
        ],
    )
    return [body]
