"""Per-request state shared between our WSGI wrapper and the storage plugin.

Radicale calls the storage plugin with Radicale's own objects only; what the
plugin also needs about the request (the body's exact bytes, who is logged
in, the stores it opened, an HTTP answer it wants instead of Radicale's)
lives here, in a thread-local: Radicale handles one request per thread
from start to end (the ASGI adapter runs each WSGI call in a worker thread).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from calsync.stores import Store

log = logging.getLogger("calsync.davserver")


class DavAbort(ValueError):
    """Answer the request with this status and message instead of Radicale's answer.

    A ValueError, so Radicale's PUT/DELETE handlers stop at once (they turn
    it into 400); the wrapper then replaces that answer with ours (412 for a
    store that changed meanwhile, 503 for a busy or unreachable store...).
    """

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class RequestContext:
    method: str
    path: str
    body: bytes = b""
    user: str = ""
    stores: list[Store] = field(default_factory=list)
    views: dict[str, Any] = field(default_factory=dict)  # store -> its View, once per request
    abort: DavAbort | None = None

    def close(self) -> None:
        for store in self.stores:
            try:
                store.close()
            except Exception:  # closing must not hide the answer
                log.exception("closing store %s failed", store.name)
        self.stores.clear()
        self.views.clear()


_local = threading.local()


def current() -> RequestContext | None:
    ctx: RequestContext | None = getattr(_local, "ctx", None)
    return ctx


def begin(ctx: RequestContext) -> None:
    _local.ctx = ctx


def end() -> None:
    ctx = current()
    if ctx is not None:
        ctx.close()
    _local.ctx = None


def fail(abort: DavAbort) -> DavAbort:
    """Remember ``abort`` for the wrapper and return it to be raised."""
    ctx = current()
    if ctx is not None and ctx.abort is None:
        ctx.abort = abort
    return abort
