"""No client can hold the gateway's sockets, workers or log (issue #19, finding 8).

The big one runs ``calsync serve`` as the user would, under a 1024-file limit,
with 1,100 idle connections open; the rest run the real gateway app (daemon,
control API, SyncML, CalDAV) in-process with short limits, so a rule that
holds at 1 s holds at the real 10-120 s.
"""

from __future__ import annotations

import logging
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.config import parse
from calsync.gateway import caldav
from calsync.gateway.app import create_app, features_for
from calsync.gateway.daemon import Daemon
from calsync.gateway.limits import Limits
from calsync.gateway.server import BackgroundServer
from tests.gateway.helpers import DEVICES, PASSWORD, DaemonProcess, wait_for, write_config

SHORT = Limits(
    header_timeout=1.0,
    body_idle_timeout=1.0,
    body_timeout=3.0,
    body_grace=1.0,
    send_timeout=1.0,
    keep_alive=30,
    log_interval=60.0,
)


class Gateway:
    def __init__(self, tmp: Path, limits: Limits) -> None:
        config = write_config(tmp, DEVICES)
        cfg, errors = parse(config.read_text(), config)
        assert not errors, errors
        self.daemon = Daemon(cfg, url="http://127.0.0.1", config_path=None, watch=False)
        app = create_app(
            [self.daemon, *features_for(cfg, on_store_changed=self.daemon.store_changed)]
        )
        self.server = BackgroundServer(app, limits=limits).start()
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.guard = self.server.server.guard
        self.tmp = tmp

    def propfind(self, timeout: float = 30) -> httpx.Response:
        return httpx.request(
            "PROPFIND",
            self.url + "/dav/alice/",
            auth=("alice", PASSWORD),
            headers={"Depth": "0"},
            timeout=timeout,
        )

    def status(self, timeout: float = 30) -> httpx.Response:
        return httpx.get(
            self.url + "/api/status",
            headers={"Authorization": f"Bearer {self.daemon.token}"},
            timeout=timeout,
        )


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(tmp_path, SHORT)
    try:
        yield g
    finally:
        g.server.stop()


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """Records of ERROR and above from uvicorn (which does not propagate to the root
    logger under its default configuration) and calsync."""
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = seen.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "calsync")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield seen
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def closed_by_server(s: socket.socket, within: float) -> float:
    """Seconds until the server closed ``s`` (reading and dropping what it sent)."""
    start = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - start < within:
        try:
            data = s.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if data == b"":
            return time.monotonic() - start
    raise AssertionError(f"the server kept the connection open for {within} s")


def trickle(s: socket.socket, byte: bytes, every: float, most: float = 15) -> float:
    """Send ``byte`` every ``every`` seconds until the server closes ``s``: how long
    that took (``most`` at the most)."""
    s.settimeout(every)
    start = time.monotonic()
    try:
        while time.monotonic() - start < most:
            s.sendall(byte)
            try:
                if s.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        pass
    return time.monotonic() - start


def response(s: socket.socket) -> bytes:
    """One whole HTTP response (with a Content-Length) read from ``s``."""
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def pressure(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if getattr(r, "event", "") == "server.pressure"
    ]


# -- the finding, as found: calsync serve under a 1024-file limit -----------------------


def _open_files(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        assert hard >= n, f"this test opens {n} sockets: raise the hard open-file limit"
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.slow
def test_idle_connections_cannot_starve_the_gateway(tmp_path: Path) -> None:
    _open_files(1100 + 200)
    config = write_config(tmp_path, DEVICES)
    d = DaemonProcess(tmp_path, config, "--no-watch", preexec_fn=_limit_files)
    idle: list[socket.socket] = []
    try:
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
        assert any(
            line.startswith("Max open files") and " 1024 " in line for line in limits.splitlines()
        )
        wait_for(lambda: d.runs("p") >= 1 and d.idle("p"), 30, "the first sync")
        before = d.log.stat().st_size
        idle = [idle_socket(d.port) for _ in range(1100)]
        # for longer than the header timeout, so that cut connections come back
        worst = 0.0
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            for ask in (
                lambda: httpx.request(
                    "PROPFIND",
                    d.url + "/dav/alice/",
                    auth=("alice", PASSWORD),
                    headers={"Depth": "0"},
                    timeout=30,
                ),
                lambda: d.api("GET", "/api/status"),
                lambda: httpx.get(d.url + "/sync", timeout=30),  # 405: devices POST
            ):
                started = time.monotonic()
                r = ask()
                worst = max(worst, time.monotonic() - started)
                assert r.status_code in (200, 207, 405), r.status_code
            # the attacker reconnects what was cut
            for i, s in enumerate(idle):
                if _is_closed(s):
                    s.close()
                    idle[i] = idle_socket(d.port)
            time.sleep(0.5)
        assert worst < 2.5, f"a legitimate request took {worst:.2f} s"
        grown = d.log.read_bytes()[before:].decode(errors="replace").splitlines()
        mine = ("api.request",)  # our own requests' lines
        other = [line for line in grown if not any(m in line for m in mine)]
        assert len(other) <= 2, "\n".join(other[:20])
        assert [line for line in other if "server.pressure" in line], other  # said once
        assert "socket.accept() out of system resource" not in d.logs()
    finally:
        for s in idle:
            s.close()
        d.stop()


def idle_socket(port: int) -> socket.socket:
    """A connection that will never send anything (connecting in the background)."""
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


def _is_closed(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- slow clients -------------------------------------------------------------------------


def test_a_slowloris_head_is_cut(gw: Gateway) -> None:
    s = connect(gw.port)
    s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
    took = trickle(s, b"X", every=0.2)  # one header byte at a time: never a complete head
    assert 0.9 < took < 5.0, took
    s.close()
    # a connection that sends nothing at all goes the same way
    assert 0.9 < closed_by_server(connect(gw.port), 8) < 5.0
    # and the server answers others meanwhile
    assert gw.status().status_code == 200


def test_a_kept_alive_connection_may_idle_but_not_dawdle(gw: Gateway) -> None:
    s = connect(gw.port)
    request = (
        f"GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.daemon.token}\r\n\r\n"
    )
    s.sendall(request.encode())
    assert response(s).startswith(b"HTTP/1.1 200")
    time.sleep(2.0)  # idle for twice the header timeout: still open (keep-alive: 30 s)
    s.sendall(request.encode())
    assert response(s).startswith(b"HTTP/1.1 200")
    s.sendall(b"GET /api/st")  # the start of a next request, and nothing more
    assert 0.9 < closed_by_server(s, 8) < 5.0


@pytest.mark.parametrize(
    "head",
    [
        "POST /sync HTTP/1.1\r\nContent-Type: application/vnd.syncml+xml\r\n",
        "POST /api/sync HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Authorization: Bearer {token}\r\n",
        "PUT /dav/alice/dir/new.ics HTTP/1.1\r\nContent-Type: text/calendar\r\n"
        "Authorization: Basic {basic}\r\n",
    ],
    ids=["sync", "api", "dav"],
)
def test_a_stalled_body_is_cut_on_every_route(
    gw: Gateway, head: str, caplog: pytest.LogCaptureFixture, errors: list[logging.LogRecord]
) -> None:
    import base64

    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    s = connect(gw.port)
    s.sendall(
        (
            head.format(token=gw.daemon.token, basic=basic)
            + "Host: x\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        + b"{" * 10
    )
    took = closed_by_server(s, 8)
    assert took < 5.0, took
    assert gw.status().status_code == 200
    assert not (gw.tmp / "dir" / "new.ics").exists()
    # the handler saw the client gone: counted, not a traceback in the log
    wait_for(lambda: pressure(caplog), 5, "the pressure line")
    assert [r.getMessage() for r in errors] == []
    assert pressure(caplog)[0]["body_idle_timeout"] == 1


def test_a_trickled_body_is_cut(gw: Gateway) -> None:
    s = connect(gw.port)
    s.sendall(
        b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.syncml+xml\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    took = trickle(s, b"<", every=0.3)  # under the idle timeout each time, never done
    assert 2.9 < took < 8.0, took


def test_a_client_that_stops_reading_is_cut(caplog: pytest.LogCaptureFixture) -> None:
    """An answer nobody reads does not hold its handler forever."""
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    produced = []

    async def endless(request: Any) -> StreamingResponse:
        async def chunks() -> Any:
            while True:
                produced.append(1)
                yield b"x" * 65536

        return StreamingResponse(chunks())

    caplog.set_level(logging.INFO, logger="calsync")
    with BackgroundServer(Starlette(routes=[Route("/big", endless)]), limits=SHORT) as srv:
        guard = srv.server.guard
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
        wait_for(lambda: guard.open, 10, "the connection")
        wait_for(lambda: not guard.open, 10, "the server to cut it", step=0.1)
        stalled = len(produced)
        time.sleep(1.0)
        assert len(produced) == stalled  # the handler stopped with the connection
        s.close()
        wait_for(lambda: pressure(caplog), 5, "the pressure line")
    assert pressure(caplog)[0]["send_timeout"] == 1


# -- the cap --------------------------------------------------------------------------------


def test_the_cap_evicts_idle_connections_never_requests_in_progress(tmp_path: Path) -> None:
    g = Gateway(tmp_path, Limits(max_connections=20, header_timeout=60, body_idle_timeout=60))
    try:
        assert g.guard.cap == 20
        # a request being worked on: its body is on its way
        busy = connect(g.port)
        busy.sendall(
            b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.syncml+xml\r\n"
            b"Content-Length: 20\r\n\r\n<SyncML>"
        )
        wait_for(lambda: len(g.guard.bodies) == 1, 10, "the body in progress")
        idle = [connect(g.port) for _ in range(40)]
        wait_for(lambda: len(g.guard.open) == 20, 10, "the cap")
        time.sleep(0.5)
        assert len(g.guard.open) == 20
        # the oldest idle ones went first, the newest are still there
        assert _is_closed_soon(idle[0]) and not _is_closed_soon(idle[-1])
        # a legitimate request gets in, and so does the rest of the busy one's body
        assert g.propfind().status_code == 207
        busy.sendall(b"</SyncML>   ")
        busy.settimeout(30)
        assert busy.recv(65536).startswith(b"HTTP/1.1 ")
        for s in idle:
            s.close()
    finally:
        g.server.stop()


def test_with_every_slot_working_a_newcomer_is_closed(tmp_path: Path) -> None:
    g = Gateway(
        tmp_path,
        Limits(max_connections=16, header_timeout=60, body_idle_timeout=60, body_grace=60),
    )
    try:
        head = (
            b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.syncml+xml\r\n"
            b"Content-Length: 20\r\n\r\n<SyncML>"
        )
        busy = []
        for _ in range(16):
            s = connect(g.port)
            s.sendall(head)
            busy.append(s)
        wait_for(lambda: len(g.guard.bodies) == 16, 10, "16 bodies in progress")
        assert closed_by_server(connect(g.port), 5) < 2.0
        assert len(g.guard.bodies) == 16  # none of them was evicted for it
        for s in busy:
            s.close()
        wait_for(lambda: not g.guard.open, 10, "the slots to free")
        assert g.propfind().status_code == 207
    finally:
        g.server.stop()


def _is_closed_soon(s: socket.socket) -> bool:
    s.settimeout(0.5)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_pressure_is_logged_once_per_interval(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sockets = [connect(gw.port) for _ in range(60)]
    wait_for(lambda: not gw.guard.open, 10, "the header timeouts")
    time.sleep(1.5)
    lines = pressure(caplog)
    assert len(lines) == 1, lines

    def pending() -> int:
        return int(gw.guard.pressure.counts.get("header_timeout", 0))

    # a slow machine spreads 60 connects over two sweeps: what the first line did not
    # count waits for the next line, a minute later
    assert lines[0]["header_timeout"] + pending() == 60
    more = [connect(gw.port) for _ in range(20)]
    wait_for(lambda: pending() == 60 - lines[0]["header_timeout"] + 20, 10, "more timeouts")
    time.sleep(1.5)
    assert len(pressure(caplog)) == 1
    for s in sockets + more:
        s.close()


def test_failed_accepts_are_counted_not_logged_each(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of file descriptors: asyncio's accept fails (EMFILE) and retries; one line."""
    caplog.set_level(logging.INFO)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # clients in another process, so that only the server runs out
    clients = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            f"s = [socket.create_connection(('127.0.0.1', {gw.port})) for _ in range(50)]\n"
            "print('ok', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    held = []
    try:
        import os

        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 2, hard))
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        assert clients.stdout is not None and clients.stdout.readline().strip() == "ok"
        time.sleep(3)  # the accept loop fails and retries meanwhile
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        clients.kill()
        clients.wait()
    assert gw.status().status_code == 200  # serving again
    wait_for(lambda: pressure(caplog), 5, "the pressure line")
    lines = pressure(caplog)
    assert len(lines) == 1 and lines[0].get("accept_failed_EMFILE", 0) >= 1, lines
    raw = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert raw == []


# -- clients that went away -------------------------------------------------------------------


def test_a_dav_request_abandoned_while_waiting_for_a_worker_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Radicale's workers are few: requests queue for them.  One whose client has
    gone meanwhile is not run when its turn comes."""
    release = threading.Event()
    calls: list[str] = []
    real_build = caldav.build

    def build(service: Any) -> Any:
        radicale = real_build(service)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            calls.append(environ["PATH_INFO"])
            if environ["PATH_INFO"].startswith("/block"):
                release.wait(30)
            return radicale(environ, start_response)

        return app

    monkeypatch.setattr(caldav, "build", build)
    g = Gateway(tmp_path, SHORT)
    try:
        import base64

        basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()

        def request(path: str) -> bytes:
            return (
                f"PROPFIND /dav{path} HTTP/1.1\r\nHost: x\r\nDepth: 0\r\n"
                f"Authorization: Basic {basic}\r\nContent-Length: 0\r\n\r\n"
            ).encode()

        blockers = []
        for i in range(caldav.WORKERS):
            s = connect(g.port)
            s.sendall(request(f"/block{i}/"))
            blockers.append(s)
        wait_for(lambda: len(calls) == caldav.WORKERS, 10, "every worker busy")
        for i in range(10):  # queued behind them, and given up on
            s = connect(g.port)
            s.sendall(request(f"/abandoned{i}/"))
            time.sleep(0.05)
            s.close()
        time.sleep(0.5)
        release.set()
        assert g.propfind().status_code == 207
        assert [c for c in calls if c.startswith("/abandoned")] == []
        for s in blockers:
            s.close()
    finally:
        release.set()
        g.server.stop()


# -- over TLS ---------------------------------------------------------------------------------


def test_over_tls_a_handshake_is_held_to_the_same_limits(tmp_path: Path) -> None:
    """A socket that never starts its TLS handshake is cut like one that never sends a
    request head, and counts against the cap while it waits."""
    import ssl

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.pki import make_pki

    ca, cert, key = make_pki(tmp_path / "pki")

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse(request.url.scheme)

    app = Starlette(routes=[Route("/hello", hello)])
    limits = Limits(header_timeout=1.0, max_connections=16, log_interval=60.0)
    with BackgroundServer(app, tls=(cert, key), limits=limits) as srv:
        guard = srv.server.guard
        assert 0.9 < closed_by_server(connect(srv.port), 8) < 5.0
        silent = [connect(srv.port) for _ in range(30)]
        wait_for(lambda: len(guard.open) == 16, 10, "the cap")
        time.sleep(0.3)
        assert len(guard.open) == 16
        # a real client still gets in, over TLS, and the app sees https
        context = ssl.create_default_context(cafile=str(ca))
        r = httpx.get(f"https://127.0.0.1:{srv.port}/hello", verify=context, timeout=10)
        assert r.status_code == 200 and r.text == "https"
        for s in silent:
            s.close()
        # a handshake with garbage is refused without a plain-text answer
        s = connect(srv.port)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            answer = s.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert b"HTTP/1.1" not in answer and b"https" not in answer
