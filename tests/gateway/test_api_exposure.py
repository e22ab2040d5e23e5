"""Who reaches the control API, and whom the command line trusts with its token
(issue #19, finding 10; #20 item 11: a port in use).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import httpx

from calsync.config import parse
from calsync.gateway.app import create_app
from calsync.gateway.daemon import Daemon
from calsync.gateway.server import BackgroundServer
from tests.gateway.helpers import PAIR_CONFIG, DaemonProcess, env_for, free_port, write_config


def test_a_port_in_use_is_one_clear_error_before_anything_is_announced(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = subprocess.run(
            [sys.executable, "-m", "calsync", "serve", "--listen", f"127.0.0.1:{port}"],
            env=env_for(tmp_path, config),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines == [f"calsync: cannot listen on 127.0.0.1:{port}: address already in use"], lines
    assert not (tmp_path / "state" / "daemon.json").exists()


# -- the API on the network ----------------------------------------------------------------


def gateway_app(tmp: Path, extra: str = "") -> tuple[Any, Daemon]:
    config = write_config(tmp, extra)
    cfg, errors = parse(config.read_text(), config)
    assert not errors, errors
    daemon = Daemon(cfg, url="http://127.0.0.1", config_path=None, watch=False)
    return create_app([daemon]), daemon


class AsgiClient:
    """Requests that reach ``app`` as if from ``address`` (the ASGI scope's client),
    over TLS unless ``scheme`` says otherwise (other machines reach the gateway so)."""

    def __init__(self, app: Any, address: str, scheme: str = "https") -> None:
        self.app = app
        self.address = address
        self.scheme = scheme

    def get(self, path: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.address, 50000))  # type: ignore[arg-type]
            base = f"{self.scheme}://gateway"
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                return await c.get(path, **kw)

        return asyncio.run(call())


def test_the_api_redirect_does_not_copy_the_host_header(tmp_path: Path) -> None:
    app, _ = gateway_app(tmp_path)
    with BackgroundServer(app) as srv:
        r = httpx.get(f"http://127.0.0.1:{srv.port}/api", headers={"Host": "evil.example"})
    assert r.is_redirect and r.headers["location"] == "/api/", r.headers


def test_the_api_answers_this_machine_only_unless_api_remote(tmp_path: Path) -> None:
    app, daemon = gateway_app(tmp_path / "a")
    bearer = {"Authorization": f"Bearer {daemon.token}"}
    far, near = AsgiClient(app, "192.0.2.7"), AsgiClient(app, "127.0.0.1")
    for path in ("/api/openapi.json", "/api/status", "/api/identify?nonce=" + "ab" * 16):
        r = far.get(path, headers=bearer)
        assert r.status_code == 403 and "api_remote" in r.json()["error"], (path, r.text)
        assert daemon.token not in r.text
    assert near.get("/api/openapi.json", headers=bearer).status_code == 200
    opened, daemon = gateway_app(tmp_path / "b", "[server]\napi_remote = true\n")
    far = AsgiClient(opened, "192.0.2.7")
    bearer = {"Authorization": f"Bearer {daemon.token}"}
    assert far.get("/api/openapi.json", headers=bearer).status_code == 200
    assert far.get("/api/openapi.json").status_code == 401
    # in clear (LAN mode's port answers plain HTTP too), never, token or not
    r = AsgiClient(opened, "192.0.2.7", "http").get("/api/openapi.json", headers=bearer)
    assert r.status_code == 403 and "https" in r.text, r.text
    # the key is checked like every other
    _, errors = parse(PAIR_CONFIG.format(tmp=tmp_path) + '[server]\napi_remote = "yes"\n')
    assert errors and "server.api_remote" in str(errors[0])


def test_wrong_tokens_are_limited_per_address(tmp_path: Path) -> None:
    app, daemon = gateway_app(tmp_path, "[server]\napi_remote = true\n")
    right = {"Authorization": f"Bearer {daemon.token}"}
    wrong = {"Authorization": "Bearer guess"}
    guesser, other = AsgiClient(app, "192.0.2.7"), AsgiClient(app, "192.0.2.8")
    codes = [guesser.get("/api/openapi.json", headers=wrong).status_code for _ in range(10)]
    assert codes == [401] * 10
    r = guesser.get("/api/openapi.json", headers=wrong)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    # refused before the token is looked at: guessing right does not help now
    assert guesser.get("/api/openapi.json", headers=right).status_code == 429
    # other addresses are not held up
    assert other.get("/api/openapi.json", headers=right).status_code == 200
    assert other.get("/api/openapi.json", headers=wrong).status_code == 401
    # this machine's processes share one address: none of them can lock the others out
    near = AsgiClient(app, "127.0.0.1")
    assert {near.get("/api/openapi.json", headers=wrong).status_code for _ in range(30)} == {401}
    assert near.get("/api/openapi.json", headers=right).status_code == 200


# -- proving the daemon's identity -----------------------------------------------------------


def test_the_identity_answer_proves_the_token_without_showing_it(tmp_path: Path) -> None:
    import hashlib
    import hmac

    app, daemon = gateway_app(tmp_path)
    nonce = "0123456789abcdef" * 2
    near = AsgiClient(app, "127.0.0.1")
    r = near.get("/api/identify", params={"nonce": nonce})  # no token needed
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["daemon"] == "calsync" and answer["pid"] == os.getpid()
    expected = hmac.new(
        daemon.token.encode(), b"calsync-daemon-identity\0" + nonce.encode(), hashlib.sha256
    ).hexdigest()
    assert answer["proof"] == expected and daemon.token not in r.text
    for bad in ("", "short", "zz" * 16, "ab" * 200):
        assert near.get("/api/identify", params={"nonce": bad}).status_code == 400


class Recorder(http.server.BaseHTTPRequestHandler):
    """Something else listening where the daemon was: it records what it is sent."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"{self.command} {self.path}\n{self.headers}")
        body = json.dumps({"daemon": "calsync", "pid": 1, "proof": "0" * 64}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def fake_daemon_json(tmp: Path, pid: int, url: str) -> Path:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    path = state / "daemon.json"
    info = {
        "url": url,
        "pid": pid,
        "token_file": str(tmp / "xdg-config" / "calsync" / "api-token"),
        "config": str((tmp / "config.toml").resolve()),
        "started": "2026-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(info))
    return path


def test_the_cli_sends_its_token_only_to_a_daemon_that_proves_it_holds_it(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    token_file = tmp_path / "xdg-config" / "calsync" / "api-token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("the-real-token-" + "x" * 30 + "\n")
    token_file.chmod(0o600)
    # a process that looks like calsync holds the recorded pid; something else the port
    look_alike = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "calsync", "serve"]
    )
    Recorder.seen = []
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        fake_daemon_json(tmp_path, look_alike.pid, f"http://127.0.0.1:{listener.server_port}")
        for args in (["status", "--json"], ["sync", "--json"]):
            out = subprocess.run(
                [sys.executable, "-m", "calsync", *args],
                env=env_for(tmp_path, config),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, out.stderr  # worked standalone
            assert "not the calsync daemon" in out.stderr, out.stderr
        assert Recorder.seen, "the CLI asked who listens there"
        for request in Recorder.seen:
            assert "the-real-token" not in request and "authorization" not in request.lower()
    finally:
        listener.shutdown()
        look_alike.kill()
        look_alike.wait()


def test_a_daemon_json_of_another_process_does_not_block_serve(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    other = subprocess.Popen(["sleep", "120"])  # alive, but not calsync
    try:
        fake_daemon_json(tmp_path, other.pid, f"http://127.0.0.1:{free_port()}")
        with DaemonProcess(tmp_path, config, "--no-watch") as d:
            info = json.loads((tmp_path / "state" / "daemon.json").read_text())
            assert info["pid"] == d.proc.pid
            # and a command line run goes through this daemon, not the old record
            out = d.cli("status", "--json")
            assert out.returncode == 0 and "daemon" in json.loads(out.stdout)["pairs"]["p"]
    finally:
        other.kill()
        other.wait()


def test_without_a_command_line_to_read_the_daemon_must_prove_it(tmp_path: Path) -> None:
    """Where the system does not show a pid's command line (no /proc), serve believes
    the record only if the daemon it names proves itself (``_answering``)."""
    from calsync.cli.serve import _answering

    config = write_config(tmp_path)
    Recorder.seen = []
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        with DaemonProcess(tmp_path, config, "--no-watch") as d:
            real = json.loads((tmp_path / "state" / "daemon.json").read_text())
            assert _answering(real) == real
            fake = {**real, "url": f"http://127.0.0.1:{listener.server_port}"}
            assert _answering(fake) is None
            assert Recorder.seen and d.token not in "".join(Recorder.seen)
    finally:
        listener.shutdown()
