"""The HTTP side: calsync's gateway on a real uvicorn, bad input, config, ``calsync serve``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from calsync.config import ConfigError
from calsync.config import parse as parse_config
from calsync.gateway.app import build_app
from calsync.gateway.server import BackgroundServer, listen_options
from calsync.syncml import codec
from calsync.syncml.model import Message, Status
from tests.conftest import ROOT, event
from tests.syncml.scripted import Device, add, alert, devinf_put, sync
from tests.syncml.test_codecs import BOMB
from tests.syncml.traces import trace_wbxml

CONFIG = """
[general]
state_dir = "{state}"
[stores.laptop]
type = "vdir"
path = "{store}"
[syncml.accounts.alice]
password = "s3cret-Pa55"
calendar = "laptop"
"""


def write_config(tmp: Path, extra: str = "") -> Path:
    (tmp / "store").mkdir(exist_ok=True)
    path = tmp / "config.toml"
    path.write_text(CONFIG.format(state=tmp / "state", store=tmp / "store") + extra)
    path.chmod(0o600)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    cfg, errors = parse_config(write_config(tmp_path).read_text(), tmp_path / "config.toml")
    assert not errors
    with BackgroundServer(build_app(cfg)) as srv:
        yield srv


class HttpDevice(Device):
    """The scripted device speaking HTTP to a running gateway."""

    def __init__(self, url: str, **kw: object) -> None:
        super().__init__(password="s3cret-Pa55", **kw)  # type: ignore[arg-type]
        self.base = url
        self.target = url
        self.http = httpx.Client(timeout=30)

    def new_session(self) -> None:
        super().new_session()
        self.target = self.base

    def post(self, body: bytes, url: str | None = None) -> httpx.Response:
        return self.http.post(
            url or self.target, content=body, headers={"Content-Type": self.content_type}
        )

    def message(self, response: httpx.Response) -> Message:
        assert response.status_code == 200, response.text
        enc = codec.encoding_of(response.headers["content-type"], response.content)
        return codec.decode(response.content, enc)

    def login(self, commands: list) -> Message:  # type: ignore[type-arg]
        for _ in range(2):
            self.new_session()
            self.target = self.base
            msg = self.message(self.post(self.encode(self.header("md5"), list(commands))))
            hdr = next(c for c in msg.commands if isinstance(c, Status) and c.cmd == "SyncHdr")
            assert hdr.chal is not None
            self.nonce = hdr.chal.next_nonce
            if hdr.code == 212:
                assert msg.header.resp_uri
                self.target = msg.header.resp_uri
                return msg
        raise AssertionError("login failed")


def codes(msg: Message, cmd: str) -> list[int]:
    return [c.code for c in msg.commands if isinstance(c, Status) and c.cmd == cmd]


@pytest.mark.parametrize("encoding", ["xml", "wbxml"])
def test_a_session_over_http_replies_in_the_request_type(
    server: BackgroundServer, tmp_path: Path, encoding: str
) -> None:
    dev = HttpDevice(server.url, encoding=encoding)
    dev.login([devinf_put(), alert(201)])
    response = dev.post(dev.encode(dev.header(), [sync([add("1", event("h1", "Over HTTP"))])]))
    assert response.headers["content-type"] == codec.content_type(encoding)
    assert codes(dev.message(response), "Add") == [201]
    assert dev.message(dev.post(dev.encode(dev.header(), []))).final
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["h1.ics"]


def test_bad_requests_get_http_errors_and_the_server_keeps_serving(
    server: BackgroundServer, tmp_path: Path
) -> None:
    http = httpx.Client(timeout=30)
    url = server.url
    wb = {"Content-Type": codec.WBXML_TYPE}
    xml = {"Content-Type": codec.XML_TYPE}
    assert http.get(url).status_code == 405
    assert (
        http.post(url, content=b"\x89PNG", headers={"Content-Type": "image/png"}).status_code == 415
    )
    assert http.post(url, content=b"\x02\xa4\x01\x6a\x00\x6d\x45", headers=wb).status_code == 400
    assert http.post(url, content=b"<SyncML><SyncHdr>", headers=xml).status_code == 400
    assert http.post(url, content=BOMB, headers=xml).status_code == 400
    assert http.post(url, content=b"<SyncML/>", headers=xml).status_code == 400
    assert http.post(url, content=b" " * 3_000_000, headers=xml).status_code == 413
    assert http.post(f"{url}?sessionid=nope", content=b"<x/>", headers=xml).status_code == 404
    # a captured message of another server's session: an unknown session id
    stale = trace_wbxml()[2].read_bytes()
    assert (
        http.post(f"{url}?sessionid=11150343431795624932", content=stale, headers=wb).status_code
        == 404
    )
    # a message that is not package 1, without a session: refused, nothing written
    msg = http.post(url, content=stale, headers=wb)
    assert msg.status_code == 200
    reply = codec.decode(msg.content, "wbxml")
    assert codes(reply, "SyncHdr") == [407]
    # and a real device still syncs
    dev = HttpDevice(url)
    dev.login([alert(201)])
    assert codes(
        dev.message(dev.post(dev.encode(dev.header(), [sync([add("1", event("ok"))])]))), "Add"
    ) == [201]
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["ok.ics"]


def test_a_foreign_device_cannot_use_a_session(server: BackgroundServer, tmp_path: Path) -> None:
    dev = HttpDevice(server.url)
    dev.login([alert(201)])
    thief = HttpDevice(server.url, device="intruder")
    thief.session_id = dev.session_id
    thief.msg_id = dev.msg_id
    r = thief.post(thief.encode(thief.header(), [sync([add("1", event("evil"))])]), dev.target)
    assert r.status_code == 403
    ok = dev.post(dev.encode(dev.header(), [sync([add("2", event("good"))])]))
    assert codes(dev.message(ok), "Add") == [201]
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["good.ics"]


def test_wrong_password_changes_nothing_and_is_not_logged(
    server: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dev = HttpDevice(server.url)
    dev.password = "wrong-password"
    dev.login = None  # type: ignore[assignment]
    for cred in ("md5", "md5", "basic"):
        dev.new_session()
        body = dev.encode(dev.header(cred), [alert(201), sync([add("1", event("no"))])])
        msg = dev.message(dev.post(body, server.url))
        assert set(codes(msg, "SyncHdr")) == {401}
        hdr = next(c for c in msg.commands if isinstance(c, Status) and c.cmd == "SyncHdr")
        assert hdr.chal is not None
        dev.nonce = hdr.chal.next_nonce
    assert list((tmp_path / "store").iterdir()) == []
    text = caplog.text
    assert "wrong-password" not in text and "s3cret-Pa55" not in text
    assert "authentication failed" in text


def test_sessions_expire(tmp_path: Path) -> None:
    cfg, _ = parse_config(write_config(tmp_path, "[syncml]\nsession_timeout = 0.5\n").read_text())
    with BackgroundServer(build_app(cfg)) as srv:
        dev = HttpDevice(srv.url)
        dev.login([alert(201)])
        old = dev.target
        assert dev.post(dev.encode(dev.header(), [sync([])]), old).status_code == 200
        time.sleep(1.0)
        other = HttpDevice(srv.url, device="other")
        other.post(other.encode(other.header(), [alert(201)]))  # any request sweeps
        r = dev.post(dev.encode(dev.header(), [sync([])]), old)
        assert r.status_code == 404


# -- configuration ------------------------------------------------------------------------------


def test_syncml_config_validation(tmp_path: Path) -> None:
    text = (
        CONFIG.format(state=tmp_path, store=tmp_path)
        + """
[syncml]
bogus = 1
aliases = { kal = "kalender" }
[syncml.accounts.bob]
calendar = "laptop"
max_delete = "lots"
[syncml.accounts.carol]
password = "x"
"""
    )
    _, errors = parse_config(text)
    messages = "\n".join(str(e) for e in errors)
    assert "syncml.bogus" in messages
    assert "alias 'kal' must name calendar or tasks" in messages
    assert "syncml.accounts.bob.password: needs password or password_command" in messages
    assert "syncml.accounts.bob.max_delete" in messages
    assert "syncml.accounts.carol.calendar: names no store" in messages


def test_listen_rules(tmp_path: Path) -> None:
    def opts(server: str) -> object:
        cfg, errors = parse_config(
            CONFIG.format(state=tmp_path, store=tmp_path) + "[server]\n" + server
        )
        assert not errors, errors
        return listen_options(cfg)

    assert opts("").__dict__["port"] == 8765  # type: ignore[attr-defined]
    assert opts('listen = "127.0.0.1:9999"').__dict__["port"] == 9999  # type: ignore[attr-defined]
    assert opts('listen = "[::1]:9999"').__dict__["host"] == "::1"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="only loopback"):
        opts('listen = "0.0.0.0:8765"')
    with pytest.raises(ConfigError, match="without TLS"):
        opts('listen = "0.0.0.0:8765"\nallow_remote = true')
    with pytest.raises(ConfigError, match="look like"):
        opts('listen = "nonsense"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_calsync_serve(tmp_path: Path) -> None:
    port = _free_port()
    path = write_config(tmp_path, f'[server]\nlisten = "127.0.0.1:{port}"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALSYNC_CONFIG": str(path)}
    bad = subprocess.run(
        [sys.executable, "-m", "calsync", "serve", "--listen", "0.0.0.0:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "only loopback" in bad.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "calsync", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/sync"
        for _ in range(1200):  # up to a minute on a loaded machine
            try:
                r = httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("calsync serve did not come up")
        assert r.status_code == 405
        dev = HttpDevice(url)
        dev.login([alert(201)])
        assert codes(
            dev.message(dev.post(dev.encode(dev.header(), [sync([add("1", event("cli"))])]))), "Add"
        ) == [201]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert f"127.0.0.1:{port}/sync" in err and "s3cret" not in err
