"""calsync as SyncML client of calsync as SyncML server, over real HTTP.

``calsync serve`` runs as a subprocess (the command users run) with an
account whose calendar is a vdir; two calsync clients (two devices of one
account, one speaking WBXML and iCalendar 2.0, the other XML and vCalendar
1.0) each sync a vdir of their own with it through ``calsync sync``.  A change
on either client reaches the server's store and, through it, the other
client.  The in-process gateway (``BackgroundServer``) covers the failures
that need the server in our hands: a wrong password, the server going away.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli import cli
from calsync.config import parse as parse_config
from calsync.gateway.app import build_app
from calsync.gateway.server import BackgroundServer
from tests.conftest import ROOT
from tests.pki import make_pki
from tests.syncml_client.conftest import free_port
from tests.syncml_client.harness import client_section, edit, file_of, items_in, put

SERVER_CONFIG = """
[general]
state_dir = "{state}"
[stores.laptop]
type = "vdir"
path = "{store}"
create = true
[syncml.accounts.alice]
password = "s3cret-Pa55"
calendar = "laptop"
"""


def server_config(tmp: Path) -> Path:
    store = tmp / "laptop"
    store.mkdir(parents=True)
    path = tmp / "server.toml"
    path.write_text(SERVER_CONFIG.format(state=tmp / "srvstate", store=store))
    path.chmod(0o600)
    return path


class Client:
    """One calsync client: a vdir paired with the server's calendar."""

    def __init__(self, tmp: Path, url: str, **kw: str) -> None:
        self.local = tmp / "local"
        self.local.mkdir(parents=True)
        self.config = tmp / "config.toml"
        extra = kw.pop("extra", "")
        section = (
            client_section(url, user="alice", password=kw.pop("password", "s3cret-Pa55"), **kw)
            + extra
        )
        self.config.write_text(
            f"""
[general]
state_dir = "{tmp / "state"}"
[stores.local]
type = "vdir"
path = "{self.local}"
create = true
[stores.server]
{section}
[pairs.p]
a = "local"
b = "server"
"""
        )
        self.config.chmod(0o600)

    def run(self, *args: str) -> tuple[int, dict[str, object], str]:
        result = CliRunner().invoke(
            cli, ["sync", "p", "--json", "--config", str(self.config), *args]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result.exit_code, json.loads(result.stdout)["pairs"]["p"], result.output

    def sync(self) -> dict[str, object]:
        code, data, out = self.run()
        assert code == 0 and not data["errors"] and "stopped" not in data, out
        return data

    def items(self) -> dict[str, str]:
        return items_in(self.local)


@contextlib.contextmanager
def calsync_serve(tmp: Path, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[str, Path]]:
    """``calsync serve`` in a subprocess, over TLS with ``tls`` = (cert, key):
    (its URL, its store)."""
    config = server_config(tmp / "server")
    if tls is not None:
        config.write_text(config.read_text() + f'[server]\ncert = "{tls[0]}"\nkey = "{tls[1]}"\n')
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "calsync", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "calsync serve did not start"
                time.sleep(0.05)
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{port}/sync", tmp / "server" / "laptop"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with calsync_serve(tmp_path) as got:
        yield got


def test_two_calsync_clients_meet_through_calsync_serve(
    tmp_path: Path, served: tuple[str, Path]
) -> None:
    url, store = served
    put(store, "s1.ics", "s1", "On the server")
    one = Client(tmp_path / "one", url, device="calsync-one")
    two = Client(tmp_path / "two", url, device="calsync-two", encoding="xml", fmt="vcal10")
    put(one.local, "a1.ics", "a1", "From one", start="20250302T100000Z")
    put(one.local, "a2.ics", "a2", "From one, to be deleted", start="20250303T100000Z")
    put(two.local, "b1.ics", "b1", "From two", start="20250304T100000Z")
    one.sync()
    two.sync()
    one.sync()
    everything = {
        "s1": "On the server",
        "a1": "From one",
        "a2": "From one, to be deleted",
        "b1": "From two",
    }
    assert one.items() == two.items() == items_in(store) == everything

    edit(two.local, "a1", "From one, edited by two")
    file_of(two.local, "a2").unlink()
    edit(one.local, "b1", "From two, edited by one")
    edit(store, "s1", "On the server, edited there")
    two.sync()
    one.sync()
    two.sync()
    want = {
        "s1": "On the server, edited there",
        "a1": "From one, edited by two",
        "b1": "From two, edited by one",
    }
    assert one.items() == two.items() == items_in(store) == want
    assert len(list(store.iterdir())) == 3


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[BackgroundServer, Path]]:
    config = server_config(tmp_path / "server")
    cfg, errors = parse_config(config.read_text(), config)
    assert not errors
    srv = BackgroundServer(build_app(cfg)).start()
    try:
        yield srv, tmp_path / "server" / "laptop"
    finally:
        srv.stop()


def test_wrong_password_and_a_vanished_server(
    tmp_path: Path, gateway: tuple[BackgroundServer, Path]
) -> None:
    srv, store = gateway
    client = Client(tmp_path / "c", srv.url, device="calsync-one")
    put(store, "s1.ics", "s1", "S1")
    put(client.local, "l1.ics", "l1", "L1")
    client.sync()
    assert client.items() == items_in(store) == {"s1": "S1", "l1": "L1"}

    bad = Client(tmp_path / "bad", srv.url, device="calsync-one", password="guess-Me-42")
    put(bad.local, "x.ics", "x", "X")
    code, data, out = bad.run()
    assert code == 1 and "refused the credentials of user 'alice'" in str(data["stopped"])
    assert "guess-Me-42" not in out
    assert bad.items() == {"x": "X"} and items_in(store) == {"s1": "S1", "l1": "L1"}

    srv.stop()
    edit(client.local, "l1", "L1 edited while the server is away")
    before = {p.name: p.read_bytes() for p in client.local.iterdir()}
    code, data, out = client.run()
    assert code == 1 and "cannot reach the SyncML server" in str(data["stopped"]), out
    assert {p.name: p.read_bytes() for p in client.local.iterdir()} == before


def test_over_tls_the_servers_certificate_is_checked(tmp_path: Path) -> None:
    """``calsync serve`` with a certificate, calsync as its client: trusted through
    ``ca_file``; refused by default (nothing changes on either side); or, asked for,
    not checked."""
    ca, cert, key = make_pki(tmp_path / "pki")
    with calsync_serve(tmp_path, tls=(cert, key)) as (url, store):
        assert url.startswith("https://")
        put(store, "s1.ics", "s1", "On the server")
        trusting = Client(tmp_path / "a", url, device="calsync-one", extra=f'ca_file = "{ca}"\n')
        put(trusting.local, "a1.ics", "a1", "From a")
        trusting.sync()
        assert trusting.items() == items_in(store) == {"s1": "On the server", "a1": "From a"}

        default = Client(tmp_path / "b", url, device="calsync-two")
        put(default.local, "b1.ics", "b1", "From b")
        code, data, out = default.run()
        assert code == 1 and "certificate" in str(data["stopped"]), out
        assert "s3cret-Pa55" not in out
        assert default.items() == {"b1": "From b"}
        assert items_in(store) == {"s1": "On the server", "a1": "From a"}

        unchecked = Client(
            tmp_path / "c", url, device="calsync-three", extra="verify_tls = false\n"
        )
        unchecked.sync()
        assert unchecked.items() == items_in(store) == {"s1": "On the server", "a1": "From a"}
