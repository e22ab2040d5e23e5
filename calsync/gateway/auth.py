"""The control API's key: a bearer token in a file only the user can read.

The brief's conduit wants "a key for safe communication" and asks how to hand
it over: here the key is generated at the daemon's first start into
``api-token`` in the config dir (mode 0600), and local clients (``calsync
status``/``sync``) read it from there.  Every ``/api/`` request without it is
refused with 401; the comparison is constant-time.  The token is never logged
and never sent back in any answer.

``BearerAuth`` guards ``/api/``, in this order:

* from another machine: 403, unless ``[server] api_remote = true`` (the API
  steers every pair; it is for this machine's command line by default, even
  when devices reach the gateway over the network);
* another machine whose wrong tokens emptied its bucket in the failed-login
  throttle (``logins.FailureThrottle``: 10, then one per 10 s): 429
  (``Retry-After``), before its token is even looked at.  Not this machine:
  every local process shares 127.0.0.1, so any local user could lock the
  owner's command line out of the daemon, and a 256-bit token is not guessed
  in any case (the throttle bounds what remote guessing costs the daemon);
* a wrong or missing token: 401 (and one failure counted for the address).

Proving the daemon's identity (``proof``): before the command line sends the
token to the URL recorded in ``daemon.json`` (a stale file's port may now be
anyone's), it sends a random nonce to ``/api/identify`` (no token needed) and
checks the answer, HMAC-SHA256(token, "calsync-daemon-identity" NUL nonce):
only a process holding the token file can compute it, and the answer is
worth nothing else (it is never the token, and never accepted as one).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from calsync.config import Config, config_dir
from calsync.gateway.logins import source_key
from calsync.perms import private_dir

if TYPE_CHECKING:  # the CLI reads tokens without loading the web stack
    from starlette.types import ASGIApp, Receive, Scope, Send

    from calsync.gateway.logins import FailureThrottle

TOKEN_FILE = "api-token"
IDENTITY = b"calsync-daemon-identity\0"


def token_path(cfg: Config) -> Path:
    """``[server] token_file``, else ``api-token`` in the platform config dir."""
    custom = cfg.section("server").get("token_file")
    if custom:
        from calsync.stores._files import expand_path

        return expand_path(str(custom), cfg.base_dir)
    return config_dir() / TOKEN_FILE


def write_secret(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600 from the first byte on)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def private(path: Path) -> None:
    """Make an existing secret file owner-only again (someone loosened it)."""
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, 0o600)


def ensure_token(path: Path) -> str:
    """The API token, generated on first use."""
    token = read_token(path)
    if token:
        private(path)
        return token
    token = secrets.token_urlsafe(32)
    write_secret(path, token + "\n")
    return token


def read_token(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def check(header: str | None, token: str) -> bool:
    """Is ``header`` (an Authorization value) ``Bearer <token>``?  Constant-time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def proof(token: str, nonce: str) -> str:
    """What the daemon answers to ``nonce`` on ``/api/identify`` (see the module docstring)."""
    return hmac.new(token.encode("utf-8"), IDENTITY + nonce.encode(), hashlib.sha256).hexdigest()


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    from starlette.responses import JSONResponse  # the daemon's side only

    await JSONResponse({"error": message}, status, headers)(scope, receive, send)


class BearerAuth:
    """ASGI wrapper: the inner app sees only requests carrying the token (see the
    module docstring; ``open_paths``: served without it, from where the API is)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        *,
        remote: bool = False,
        limiter: FailureThrottle | None = None,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        from calsync.gateway.server import from_this_machine  # the daemon's side only

        self.app = app
        self.token = token
        self.remote = remote
        self.limiter = limiter
        self.open_paths = open_paths
        self.from_this_machine = from_this_machine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        local = self.from_this_machine(scope)
        if not self.remote and not local:
            await _refuse(
                scope,
                receive,
                send,
                403,
                "the control API answers this machine only ([server] api_remote = true "
                "opens it to others)",
            )
            return
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if path.removeprefix(root) in self.open_paths:
            await self.app(scope, receive, send)
            return
        limiter = None if local else self.limiter
        source = source_key(address)
        wait = limiter.refusal(source) if limiter else None
        if wait is not None:
            seconds = str(math.ceil(wait))
            await _refuse(
                scope, receive, send, 429, "too many wrong API tokens", {"retry-after": seconds}
            )
            return
        header = None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        if not check(header, self.token):
            if limiter is not None:
                limiter.failed(source)
            await _refuse(
                scope,
                receive,
                send,
                401,
                "missing or wrong API token (see api-token in the config dir)",
                {"www-authenticate": 'Bearer realm="calsync"'},
            )
            return
        await self.app(scope, receive, send)
