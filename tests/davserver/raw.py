"""HTTP requests written by hand on a socket, for what clients libraries will not do.

A body announced but never sent (does the server answer before reading it?),
a body dripped a few bytes at a time, a chunked body without its end, a
request from another loopback address (``127.0.0.N``: each one is a distinct
source for per-address limits).
"""

from __future__ import annotations

import base64
import socket
import time


def connect(port: int, source: str = "127.0.0.1", timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )
    return sock


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def head(
    method: str,
    path: str,
    *,
    authorization: str | None = None,
    length: int | None = None,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A request line and headers (the body is the caller's to send)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes] | None:
    """Status, headers and what arrived of the body within ``timeout`` (None: no answer).

    Reads until the connection closes, the announced body is complete, or the
    time is up; a connection reset after the headers still counts as answered.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        parsed = _parse(data)
        if parsed is not None:
            _, headers, body = parsed
            length = headers.get("content-length")
            if length is not None and len(body) >= int(length):
                return parsed
        left = deadline - time.monotonic()
        if left <= 0:
            return parsed
        sock.settimeout(left)
        try:
            got = sock.recv(65536)
        except TimeoutError:
            return _parse(data)
        except ConnectionError:
            return _parse(data)
        if not got:
            return _parse(data)
        data += got


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = data[:head_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, data[head_end + 4 :]
