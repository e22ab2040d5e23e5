"""Running the gateway app on uvicorn: where it listens, and refusing unsafe binds.

``[server] listen = "host:port"`` (default ``127.0.0.1:8765``).  A non-loopback
address is refused unless ``allow_remote = true`` *and* TLS is configured
(``cert``/``key``, or ``tls_cert``/``tls_key``): device passwords and calendars must not cross a
network in clear.

LAN mode (``calsync serve --lan``, ``[server] lan = true``): phones on the
local network reach the gateway over TLS with a certificate from calsync's
own CA (``tls.py``; ``cert``/``key`` are then refused: those are for
``allow_remote``).  Without a ``listen`` it listens on every address, IPv6
and IPv4 on one dual-stack socket (``[::]:8765``; ``0.0.0.0:8765`` where the
system has no IPv6): a phone reaches the machine at whatever address the
Wi-Fi gave it, and the certificate names them all.  IPv4 clients then show
as ``::ffff:a.b.c.d``, which ``is_loopback`` and ``logins.source_key`` read
as the IPv4 address.  The port also answers plain HTTP, for the pairing page
alone (``connections.py`` says how, ``app.PlainGuard`` what it serves).

``bind`` takes the port before anything is announced (a port in use is one
clear error, exit 2), and uvicorn serves that socket.  Every server runs
under the connection limits of ``limits.py``, enforced by
``connections.py`` (timeouts, connection cap, logging once per interval).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette

from calsync.config import Config, ConfigError
from calsync.gateway.connections import ConnectionGuard, GuardedServer, QuietWhenGone
from calsync.gateway.limits import NOFILE_WANTED, Limits, open_file_limit

log = logging.getLogger("calsync.gateway")

DEFAULT_LISTEN = "127.0.0.1:8765"


@dataclass
class Listen:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    lan: bool = False  # LAN mode (see the module docstring)
    context: ssl.SSLContext | None = None  # a TLS context of the caller's (LAN mode)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert or self.context else "http"

    @property
    def wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::", "")

    def url(self, path: str = "/sync") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); ValueError if malformed."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must look like 127.0.0.1:8765, not {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``::ffff:127.0.0.1`` too: a dual-stack socket's
    IPv4 clients)."""
    if host == "localhost":
        return True
    try:
        return _unmapped(host).is_loopback
    except ValueError:
        return False


def from_this_machine(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI request came from this machine: a loopback address, or the very
    address it was sent to (a LAN-bound gateway asked by the command line).  A TCP
    connection from another machine cannot complete its handshake with our own
    address as its source: the answers to it would never leave this machine."""
    client, server = scope.get("client"), scope.get("server")
    host = str(client[0]) if client else ""
    if is_loopback(host):
        return True
    if not server or not host:
        return False
    try:
        return _unmapped(host) == _unmapped(str(server[0]))
    except ValueError:
        return False


def _unmapped(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, an IPv4-mapped IPv6 one as the IPv4 address it carries."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def has_ipv6() -> bool:
    """Can this system bind an IPv6 socket (else LAN mode listens on 0.0.0.0)?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
    except OSError:
        return False
    return True


def listen_options(cfg: Config, override: str | None = None, *, lan: bool = False) -> Listen:
    """Where to listen, from ``--listen`` or ``[server]``; ConfigError when unsafe.
    ``lan``: ``--lan`` (else ``[server] lan``)."""
    section = cfg.section("server")
    lan = lan or bool(section.get("lan"))
    text = override or section.get("listen")
    if text is None and lan:
        port = parse_listen(DEFAULT_LISTEN)[1]
        text = f"[::]:{port}" if has_ipv6() else f"0.0.0.0:{port}"
    try:
        host, port = parse_listen(text or DEFAULT_LISTEN)
    except ValueError as e:
        raise ConfigError(str(e), path=cfg.path, key="server.listen") from None
    from calsync.stores._files import expand_path

    cert = section.get("cert") or section.get("tls_cert")  # cert/key: issue #10's names
    key = section.get("key") or section.get("tls_key")
    opts = Listen(
        host,
        port,
        expand_path(cert, cfg.base_dir) if cert else None,
        expand_path(key, cfg.base_dir) if key else None,
    )
    if bool(cert) != bool(key):
        raise ConfigError("tls_cert and tls_key go together", path=cfg.path, key="server.tls_key")
    if lan:
        if cert:
            raise ConfigError(
                "lan = true serves calsync's own certificate; for your own certificate "
                "use allow_remote = true with cert and key instead",
                path=cfg.path,
                key="server.lan",
            )
        opts.lan = True
        return opts
    if not is_loopback(host):
        if not section.get("allow_remote"):
            raise ConfigError(
                f"refusing to listen on {host}: only loopback addresses unless "
                "allow_remote = true (with tls_cert and tls_key)",
                path=cfg.path,
                key="server.listen",
            )
        if not cert:
            raise ConfigError(
                f"refusing to listen on {host} without TLS: set tls_cert and tls_key",
                path=cfg.path,
                key="server.tls_cert",
            )
    return opts


class PortInUse(Exception):
    """The address to listen on is taken (or not ours to take)."""


def bind(opts: Listen) -> socket.socket:
    """A socket bound to where the gateway listens (uvicorn listens on it); PortInUse."""
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and opts.wildcard:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 clients too
        sock.bind((opts.host, opts.port))
    except OSError as e:
        sock.close()
        why = "address already in use" if e.errno == errno.EADDRINUSE else e.strerror or str(e)
        raise PortInUse(f"cannot listen on {opts.host}:{opts.port}: {why}") from None
    return sock


def _server(app: Starlette, opts: Listen, limits: Limits, open_files: int | None) -> GuardedServer:
    guard = ConnectionGuard(limits, limits.connection_cap(open_files))
    if opts.context is not None:
        guard.tls = opts.context  # kept current in place (tls.LocalCA.reload)
        guard.plain_too = opts.lan  # the pairing page in clear (connections.py)
    config = uvicorn.Config(
        QuietWhenGone(app, guard),
        host=opts.host,
        port=opts.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_certfile=str(opts.tls_cert) if opts.tls_cert and not opts.context else None,
        ssl_keyfile=str(opts.tls_key) if opts.tls_key and not opts.context else None,
        # idle keep-alive connections (a phone, a CalDAV client over TLS) must not hold
        # up a shutdown: after this, the remaining connections are closed
        timeout_graceful_shutdown=3,
        timeout_keep_alive=limits.keep_alive,
        http=guard.protocol(),
        limit_concurrency=max(limits.max_requests, guard.cap + 1),
        backlog=limits.backlog,
    )
    return GuardedServer(config, guard)


class Stoppable(Protocol):
    """Something given a way to stop the server (the daemon, to reload its config)."""

    stop_serving: Callable[[], None] | None


def run(
    app: Starlette,
    opts: Listen,
    *,
    stoppable: Stoppable | None = None,
    sock: socket.socket | None = None,
    limits: Limits | None = None,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), or until ``stoppable.stop_serving()``
    is called.  ``sock``: from ``bind`` (else uvicorn binds itself)."""
    server = _server(app, opts, limits or Limits(), open_file_limit(raise_to=NOFILE_WANTED))
    if stoppable is not None:
        stoppable.stop_serving = lambda: setattr(server, "should_exit", True)
    server.run(sockets=[sock] if sock is not None else None)


class BackgroundServer:
    """The app on a free port in a thread (tests and benchmarks)."""

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        *,
        tls: tuple[Path, Path] | None = None,
        limits: Limits | None = None,
        context: ssl.SSLContext | None = None,
        lan: bool = False,
    ) -> None:
        """``tls``: (certificate, key) to serve HTTPS; ``limits``: other connection limits;
        ``context`` and ``lan``: as in ``Listen`` (LAN mode: with a context)."""
        cert, key = tls or (None, None)
        self.opts = Listen(host, 0, cert, key, lan=lan, context=context)
        self.sock = bind(self.opts)
        self.port = self.opts.port = self.sock.getsockname()[1]
        self.server = _server(app, self.opts, limits or Limits(), open_file_limit())
        self.thread = threading.Thread(target=self._run, name="calsync-gateway", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    @property
    def url(self) -> str:
        return self.opts.url()

    def start(self) -> BackgroundServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("the gateway did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
