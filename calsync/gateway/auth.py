"""The control API's key: a bearer token in a file only the user can read.

The brief's conduit wants "a key for safe communication" and asks how to hand
it over: here the key is generated at the daemon's first start into
``api-token`` in the config dir (mode 0600), and local clients (``calsync
status``/``sync``) read it from there.  Every ``/api/`` request without it is
refused with 401; the comparison is constant-time.  The token is never logged
and never sent back in any answer.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from calsync.config import Config, config_dir
from calsync.perms import private_dir

if TYPE_CHECKING:  # the CLI reads tokens without loading the web stack
    from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_FILE = "api-token"


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


class BearerAuth:
    """ASGI wrapper: the inner app sees only requests carrying the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = None
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    header = value.decode("latin-1")
                    break
            if not check(header, self.token):
                body = json.dumps(
                    {"error": "missing or wrong API token (see api-token in the config dir)"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="calsync"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
