"""The control API on a real uvicorn: the token, every endpoint, the schema, listen rules."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.config import ConfigError, parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.daemon import Daemon
from calsync.gateway.openapi import schema
from calsync.gateway.server import BackgroundServer, listen_options
from tests.conftest import event
from tests.gateway.helpers import PAIR_CONFIG, env_for, free_port, wait_for

CONFIG = (
    PAIR_CONFIG
    + """
[syncml.accounts.alice]
password = "s3cret-Pa55"
calendar = "dir"
[caldav.users.bob]
password = "s3cret-Pa55"
calendars = ["dir"]
"""
)


class Api:
    def __init__(self, url: str, token: str, daemon: Daemon) -> None:
        self.url = url
        self.token = token
        self.daemon = daemon

    def __call__(self, method: str, path: str, token: str | None = "", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token or self.token}")
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "e1.ics").write_bytes(event("e1", "First"))
    cfg, errors = parse(CONFIG.format(tmp=tmp_path), tmp_path / "config.toml")
    assert not errors, errors
    holder: dict[str, Daemon] = {}

    def build(url: str) -> Any:
        daemon = Daemon(cfg, url=url, config_path=tmp_path / "config.toml", watch=False)
        holder["d"] = daemon
        features = [daemon, *features_for(cfg, on_store_changed=daemon.store_changed)]
        daemon.attach(features)
        return create_app(features)

    # the app needs its URL before the port is known: build it with a placeholder
    srv = BackgroundServer(build("http://127.0.0.1:0"))
    daemon = holder["d"]
    daemon.url = f"http://127.0.0.1:{srv.port}"
    with srv:
        yield Api(daemon.url, daemon.token, daemon)


ENDPOINTS = [
    ("GET", "/api/status"),
    ("POST", "/api/sync"),
    ("GET", "/api/conflicts"),
    ("GET", "/api/history"),
    ("POST", "/api/restore"),
    ("GET", "/api/conflicts/1"),
    ("POST", "/api/resolve"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/nonexistent"),
]


def test_every_request_without_the_right_token_is_refused(api: Api, tmp_path: Path) -> None:
    wrong = [
        None,  # no Authorization header
        "Bearer",
        "Bearer x",
        f"Bearer {api.token}x",
        f"Bearer {api.token[:-1]}",
        f"Basic {api.token}",
        f"bearer{api.token}",
        "Bearer " + "A" * len(api.token),
    ]
    for method, path in ENDPOINTS:
        for header in wrong:
            headers = {} if header is None else {"Authorization": header}
            r = api(method, path, token=None, headers=headers, json={})
            assert r.status_code == 401, (method, path, header, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert api.token not in r.text
    # the scheme is case-insensitive, the token is not
    assert (
        api(
            "GET", "/api/status", token=None, headers={"Authorization": f"bearer {api.token}"}
        ).status_code
        == 200
    )
    assert api("GET", "/api/status", token=api.token.swapcase()).status_code == 401
    assert api("GET", "/api/nonexistent").status_code == 404
    # the SyncML endpoint keeps its own authentication (SyncML credentials)
    assert httpx.get(api.url + "/sync").status_code == 405
    # the token file: generated once, owner-only, reused
    token_file = api.daemon.token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == api.token and len(api.token) >= 40
    token_file.chmod(0o644)
    from calsync.gateway.auth import ensure_token

    assert ensure_token(token_file) == api.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_status_sync_and_nothing_secret_in_answers(api: Api, tmp_path: Path) -> None:
    wait_for(
        lambda: api("GET", "/api/status").json()["pairs"]["p"]["daemon"]["runs"] >= 1,
        15,
        "the first run",
    )
    r = api("POST", "/api/sync", json={"pairs": ["p"], "wait": True})
    assert r.status_code == 200
    data = r.json()
    assert data["pairs"]["p"]["added_b"] == 0 and data["exit_code"] == 0
    assert data["details"]["p"]["guard"] is False
    (tmp_path / "dir" / "e2.ics").write_bytes(event("e2", "Second"))
    r = api("POST", "/api/sync", json={})  # all pairs, no waiting
    assert r.status_code == 202 and r.json() == {"queued": ["p"]}
    wait_for(lambda: b"Second" in (tmp_path / "file.ics").read_bytes(), 10, "the queued run")
    status = api("GET", "/api/status").json()
    pair = status["pairs"]["p"]
    assert pair["items"] == 2 and pair["last_result"]["added_b"] == 1
    d = pair["daemon"]
    assert d["last_trigger"] == "API request" and d["next_run"] and d["failures"] == 0
    assert status["daemon"]["pid"] == os.getpid() and status["daemon"]["requests"] >= 3
    assert status["devices"] == [] and status["clients"] == []
    # a CalDAV client that logs in is listed, with its calendars' pairs
    r = httpx.request(
        "PROPFIND",
        api.url + "/dav/bob/",
        auth=("bob", "s3cret-Pa55"),
        headers={"Depth": "0", "User-Agent": "DAVx5/4.4.1-ose (Android 14)"},
    )
    assert r.status_code == 207, r.text
    (client,) = api("GET", "/api/status").json()["clients"]
    assert client["protocol"] == "caldav" and client["account"] == "bob"
    assert client["device"] == "DAVx5/4.4.1-ose (Android 14)" and client["address"] == "127.0.0.1"
    assert client["stores"] == ["dir"] and client["pairs"] == ["p"] and client["last_seen"]
    everything = str(status) + str(api("GET", "/api/openapi.json").json())
    assert api.token not in everything and "s3cret-Pa55" not in everything
    # bad requests name the problem
    for body, message in [
        ({"pairs": ["nope"]}, "no pair named nope"),
        ({"pairs": "p"}, "pairs must be a list"),
        ({"wait": "yes"}, "wait must be true or false"),
        ({"mode": "sideways"}, "mode must be one of"),
    ]:
        r = api("POST", "/api/sync", json=body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    r = api("POST", "/api/sync", content=b"[1, 2", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]


def test_conflicts_history_and_restore(api: Api, tmp_path: Path) -> None:
    wait_for(
        lambda: (
            (tmp_path / "file.ics").exists() and b"First" in (tmp_path / "file.ics").read_bytes()
        ),
        15,
        "the first run",
    )
    wait_for(
        lambda: not api("GET", "/api/status").json()["pairs"]["p"]["daemon"]["running"], 10, "idle"
    )
    # a conflict: both sides edit e1
    (tmp_path / "dir" / "e1.ics").write_bytes(
        event("e1", "Dir edit", last_modified="20250301T000000Z")
    )
    ics = tmp_path / "file.ics"
    ics.write_bytes(
        ics.read_bytes()
        .replace(b"SUMMARY:First", b"SUMMARY:File edit")
        .replace(b"LAST-MODIFIED:20250101T000000Z", b"LAST-MODIFIED:20250201T000000Z")
    )
    r = api("POST", "/api/sync", json={"wait": True})
    assert r.json()["pairs"]["p"]["conflicts"] == 1
    conflicts = api("GET", "/api/conflicts").json()["conflicts"]
    assert conflicts[0]["uid"] == "e1" and conflicts[0]["winner"] == "dir"
    # the loser was kept
    hist = api("GET", "/api/history", params={"uid": "e1"}).json()["history"]
    assert hist and "File edit" in hist[0]["content"]
    assert api("GET", "/api/history", params={"limit": "0"}).status_code == 400
    # restore it: into the file, and the pair spreads it, with no further request
    n = hist[0]["version"]
    r = api("POST", "/api/restore", json={"uid": "e1", "version": n})
    assert r.status_code == 200, r.text
    assert r.json()["restored"] == {"uid": "e1", "version": n, "store": "file"}
    wait_for(
        lambda: b"File edit" in (tmp_path / "dir" / "e1.ics").read_bytes(), 10, "the restore spread"
    )
    assert api("POST", "/api/restore", json={"uid": "nope"}).status_code == 404
    assert api("POST", "/api/restore", json={}).status_code == 400
    assert api("POST", "/api/restore", json={"uid": "e1", "to": "mars"}).status_code == 400


def test_a_conflict_shown_with_both_versions_and_decided_again(api: Api, tmp_path: Path) -> None:
    ics = tmp_path / "file.ics"
    wait_for(lambda: ics.exists() and b"First" in ics.read_bytes(), 15, "the first run")
    wait_for(
        lambda: not api("GET", "/api/status").json()["pairs"]["p"]["daemon"]["running"], 10, "idle"
    )
    (tmp_path / "dir" / "e1.ics").write_bytes(
        event("e1", "Dir edit", last_modified="20250301T000000Z")
    )
    ics.write_bytes(
        ics.read_bytes()
        .replace(b"SUMMARY:First", b"SUMMARY:File edit")
        .replace(b"LAST-MODIFIED:20250101T000000Z", b"LAST-MODIFIED:20250201T000000Z")
    )
    assert api("POST", "/api/sync", json={"wait": True}).json()["pairs"]["p"]["conflicts"] == 1
    (listed,) = api("GET", "/api/conflicts").json()["conflicts"]
    assert listed["stores"] == {"a": "dir", "b": "file"} and listed["resolved"] is None
    r = api("GET", f"/api/conflicts/{listed['n']}")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert "Dir edit" in shown["sides"]["a"]["content"]
    assert "File edit" in shown["sides"]["b"]["content"]
    assert {(d["name"], tuple(d["a"]), tuple(d["b"])) for d in shown["differences"]} == {
        ("SUMMARY", ("Dir edit",), ("File edit",)),
        ("LAST-MODIFIED", ("20250301T000000Z",), ("20250201T000000Z",)),
    }
    assert api("GET", "/api/conflicts/999").status_code == 404
    assert api("GET", "/api/conflicts/x").status_code == 404
    # keep b (the loser): both stores hold it at once, and the pair's next run keeps it
    r = api("POST", "/api/resolve", json={"conflict": listed["n"], "keep": "b"})
    assert r.status_code == 200, r.text
    assert r.json()["resolved"] == {"conflict": listed["n"], "keep": "b", "stores": ["dir", "file"]}
    assert b"SUMMARY:File edit" in (tmp_path / "dir" / "e1.ics").read_bytes()
    assert b"SUMMARY:Dir edit" not in ics.read_bytes()
    after = api("POST", "/api/sync", json={"wait": True}).json()["pairs"]["p"]
    assert after["conflicts"] == 0 and not after["errors"]
    assert b"SUMMARY:File edit" in (tmp_path / "dir" / "e1.ics").read_bytes()
    assert api("GET", "/api/conflicts").json()["conflicts"][0]["resolved"]["keep"] == "b"
    for body, status in [
        ({"conflict": 999, "keep": "a"}, 404),
        ({"conflict": listed["n"], "keep": "c"}, 400),
        ({"conflict": "1", "keep": "a"}, 400),
        ({"keep": "a"}, 400),
    ]:
        assert api("POST", "/api/resolve", json=body).status_code == status, body


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"uid": "no-\xed\xa0\x80uid"}',
        b'{"uid": "\\ud800"}',
        b'{"pairs": ["\\udfff"]}',
        b"\xff\xfe{}",
    ],
    ids=["nested", "surrogate-bytes", "surrogate-escape", "surrogate-in-list", "not-utf8"],
)
@pytest.mark.parametrize("path", ["/api/sync", "/api/restore", "/api/resolve"])
def test_a_malformed_json_body_is_a_400(api: Api, path: str, body: bytes) -> None:
    """Found by tests/adversarial: these were 500s (RecursionError, UnicodeEncodeError)."""
    r = api("POST", path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.json()["error"]


def test_an_oversized_body_is_refused_before_it_is_read(api: Api) -> None:
    """A body announced larger than the API takes is refused from its Content-Length
    (it was read whole first, 49 MB in memory, then refused)."""
    from tests.davserver import raw

    port = int(api.url.rsplit(":", 1)[1])
    with raw.connect(port) as sock:
        sock.sendall(
            raw.head("POST", "/api/restore", length=49_000_000, headers={
                "Authorization": f"Bearer {api.token}", "Content-Type": "application/json"
            })
        )  # fmt: skip
        got = raw.response(sock, 10)
    assert got is not None, "no answer before the body was sent"
    assert got[0] == 400 and b"too large" in got[2]


def test_the_schema_describes_every_endpoint(api: Api) -> None:
    doc = api("GET", "/api/openapi.json").json()
    assert doc == schema() and doc["openapi"].startswith("3.")
    routes = {
        (m, r.path)
        for r in api.daemon.api.router.routes
        for m in r.methods or ()
        if m != "HEAD"  # type: ignore[attr-defined]
    }
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == described
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("401" in op["responses"]) == (op.get("security") != []), path
    # every $ref resolves
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.split("/")[-1] in doc["components"]["schemas"], ref
    # answers carry the documented required fields
    status = api("GET", "/api/status").json()
    for key in doc["components"]["schemas"]["Status"]["required"]:
        assert key in status
    for key in doc["components"]["schemas"]["PairStatus"]["required"]:
        assert key in status["pairs"]["p"]
    result = api("POST", "/api/sync", json={"wait": True}).json()
    for key in doc["components"]["schemas"]["SyncResults"]["required"]:
        assert key in result
    for key in doc["components"]["schemas"]["SyncCounts"]["required"]:
        assert key in result["pairs"]["p"]


def test_non_loopback_listen_is_refused_without_tls(tmp_path: Path) -> None:
    base = CONFIG.format(tmp=tmp_path)

    def opts(server: str) -> Any:
        cfg, errors = parse(base + "[server]\n" + server)
        assert not errors, errors
        return listen_options(cfg)

    with pytest.raises(ConfigError, match="only loopback"):
        opts('listen = "0.0.0.0:8765"')
    with pytest.raises(ConfigError, match="only loopback"):
        opts('listen = "192.168.1.5:8765"\ncert = "c.pem"\nkey = "k.pem"')
    with pytest.raises(ConfigError, match="without TLS"):
        opts('listen = "0.0.0.0:8765"\nallow_remote = true')
    with pytest.raises(ConfigError, match="go together"):
        opts('listen = "0.0.0.0:8765"\nallow_remote = true\ncert = "c.pem"')
    ok = opts('listen = "0.0.0.0:8765"\nallow_remote = true\ncert = "c.pem"\nkey = "k.pem"')
    assert ok.scheme == "https" and ok.tls_cert.name == "c.pem"
    assert opts('listen = "[::1]:8765"').host == "::1"
    # and the command refuses to start (exit 2), naming the key
    config = tmp_path / "config.toml"
    config.write_text(base)
    config.chmod(0o600)  # it holds a password
    (tmp_path / "dir").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "calsync", "serve", "--listen", f"0.0.0.0:{free_port()}"],
        env=env_for(tmp_path, config),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "only loopback" in out.stderr and "server.listen" in out.stderr


def test_a_second_daemon_for_the_same_state_is_refused(tmp_path: Path) -> None:
    from tests.gateway.helpers import DaemonProcess, json_lines

    (tmp_path / "dir").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(tmp=tmp_path))
    config.chmod(0o600)  # it holds a password
    d = DaemonProcess(tmp_path, config, "--no-watch", "--log-json")
    try:
        out = d.cli("serve", "--listen", f"127.0.0.1:{free_port()}")
        assert out.returncode == 2 and "already runs" in out.stderr
        runtime = tmp_path / "state" / "daemon.json"
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o600
        assert d.token not in runtime.read_text()
        wait_for(lambda: d.runs("p") >= 1, 15, "the first run")
    finally:
        code = d.stop(signal.SIGINT)  # Ctrl-C
    assert code in (130, -signal.SIGINT), d.logs()
    lines = json_lines(d.logs())
    names = [line.get("event") for line in lines]
    assert "daemon.start" in names and "sync.done" in names and "daemon.stopped" in names
    done = next(line for line in lines if line.get("event") == "sync.done")
    assert done["pair"] == "p" and done["outcome"] == "ok" and done["level"] == "info"
    assert d.token not in d.logs() and "s3cret-Pa55" not in d.logs()
    deadline = time.monotonic() + 5
    while runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runtime.exists(), "the runtime file outlived the daemon"
