"""A small HTTP proxy for tests and benchmarks: counts requests, injects faults.

Sits between a client and one upstream server (plain HTTP or HTTPS), keeps
client connections alive (HTTP/1.1) whatever the upstream does, and for each
request asks ``fault(n, method, path)`` what to do:

- ``None``: forward faithfully;
- ``"500"``: answer 500 without forwarding; ``"500-after"``: forward, then
  answer 500 (the server did the work, the client never learns it); ``"400"``:
  answer 400 without forwarding (a server refusing a request it finds too big);
- ``"reset"`` / ``"reset-after"``: drop the connection with a TCP RST, before
  or after forwarding;
- ``"truncate"``: forward, then send the headers and only half of the body;
- ``"stall"`` / ``"stall-after"``: say nothing for ``stall_seconds``, then hang up.
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}

Fault = Callable[[int, str, str], str | None]


@dataclass
class Record:
    n: int
    method: str
    path: str
    fault: str | None
    status: int | None = None


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[Record] = field(default_factory=list)

    def add(self, method: str, path: str, fault: Fault | None) -> Record:
        with self.lock:
            n = len(self.records) + 1
            rec = Record(n, method, path, fault(n, method, path) if fault else None)
            self.records.append(rec)
            return rec

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def by_method(self) -> Counter[str]:
        with self.lock:
            return Counter(r.method for r in self.records)

    def faults(self) -> Counter[str]:
        with self.lock:
            return Counter(r.fault for r in self.records if r.fault)

    def reset(self) -> None:
        with self.lock:
            self.records.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return None

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        try:
            self._proxy()
            self.wfile.flush()
        except (OSError, ValueError):
            self.close_connection = True

    def _reset(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True

    def _stall(self) -> None:
        time.sleep(self.server.proxy.stall_seconds)
        self.connection.close()
        self.close_connection = True

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server.proxy
        rec = proxy.stats.add(self.command, self.path, proxy.fault)
        fault = rec.fault
        if fault == "500":
            rec.status = 500
            self._send(500, "Internal Server Error", [], b"injected fault\n")
            return
        if fault == "400":
            rec.status = 400
            self._send(400, "Bad Request", [], b"injected refusal\n")
            return
        if fault == "reset":
            return self._reset()
        if fault == "stall":
            return self._stall()
        status, reason, headers, data = proxy.forward(self.command, self.path, self.headers, body)
        rec.status = status
        if fault == "500-after":
            rec.status = 500
            self._send(500, "Internal Server Error", [], b"injected fault\n")
        elif fault == "reset-after":
            self._reset()
        elif fault == "stall-after":
            self._stall()
        elif fault == "truncate":
            self._send(status, reason, headers, data, cut=True)
        else:
            self._send(status, reason, headers, data)

    def _send(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        data: bytes,
        cut: bool = False,
    ) -> None:
        out = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
        for k, v in headers:
            if k.lower() not in HOP:
                out.append(f"{k}: {v}\r\n".encode("latin-1"))
        out.append(f"Content-Length: {len(data)}\r\n\r\n".encode())
        if cut:
            self.wfile.write(b"".join(out) + data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(b"".join(out) + data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: Proxy


class Proxy:
    """``Proxy(upstream).start()`` -> listens on ``proxy.url`` (127.0.0.1, a free port)."""

    def __init__(
        self,
        upstream: str,
        *,
        fault: Fault | None = None,
        stall_seconds: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.up_scheme = parts.scheme
        self.up_host = parts.hostname or "127.0.0.1"
        self.up_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.fault = fault
        self.stall_seconds = stall_seconds
        self.tls = tls
        self.stats = Stats()
        self._server: _Server | None = None

    def start(self) -> Proxy:
        server = _Server(("127.0.0.1", 0), _Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        server.proxy = self
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def forward(
        self, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn: http.client.HTTPConnection
        if self.up_scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(self.up_host, self.up_port, timeout=120, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.up_host, self.up_port, timeout=120)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in HOP}  # type: ignore[attr-defined]
            fwd["Host"] = f"{self.up_host}:{self.up_port}"
            conn.request(method, path, body=body or None, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()
