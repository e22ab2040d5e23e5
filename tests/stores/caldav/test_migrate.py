"""``calsync migrate vdirsyncer`` after a real vdirsyncer 0.21 synced a folder of
vdirs with Radicale: the next sync (calsync's first) writes nothing and sends at
most 2 requests per collection, and later edits on both sides sync."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli.group import cli
from calsync.config import load
from calsync.sync.runner import run_pair
from tests.conftest import event
from tests.davserver.test_vdirsyncer import vdirsyncer_bin
from tests.stores.caldav.peers import PASSWORD, USER, Peer
from tests.stores.caldav.proxy import Proxy

pytestmark = [pytest.mark.peer, pytest.mark.slow]

CONFIG = """\
[general]
status_path = "{tmp}/vds-status/"

[pair cal]
a = "local"
b = "server"
collections = ["from a"]
metadata = ["color", "displayname"]
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{tmp}/cals/"
fileext = ".ics"

[storage server]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"
"""


def vdirsyncer(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(vdirsyncer_bin()), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        input="y\n" * 20,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"vdirsyncer {' '.join(args)} failed:\n{out}"
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root``: (mtime_ns, inode)."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def proxy(radicale: Peer) -> Iterator[Proxy]:
    p = Proxy(f"http://127.0.0.1:{radicale.port}").start()
    yield p
    p.stop()


def test_migrated_pair_first_sync_is_a_no_op(
    radicale: Peer, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALSYNC_STATE_DIR", str(tmp_path / "calsync-state"))
    names = [f"mig-{uuid.uuid4().hex[:6]}", f"two-{uuid.uuid4().hex[:6]}"]
    for n, name in enumerate(names):
        folder = tmp_path / "cals" / name
        folder.mkdir(parents=True)
        for i in range(40 if n == 0 else 5):
            (folder / f"{name}-{i}.ics").write_bytes(event(f"{name}-{i}", f"event {i}"))
    (tmp_path / "cals" / names[0] / "color").write_text("#123456")
    (tmp_path / "cals" / names[0] / "displayname").write_text("Migrated")
    vds = tmp_path / "vdirsyncer.conf"
    vds.write_text(
        CONFIG.format(tmp=tmp_path, url=f"{proxy.url}/test/", user=USER, password=PASSWORD)
    )
    vdirsyncer(vds, "discover")
    vdirsyncer(vds, "sync")
    vdirsyncer(vds, "metasync")

    target = tmp_path / "calsync.toml"
    got = CliRunner().invoke(cli, ["migrate", "vdirsyncer", str(vds), "--write", str(target)])
    assert got.exit_code == 0, got.output
    assert f"cal/{names[0]}: took over the status of 40 item(s)" in got.output
    assert oct(target.stat().st_mode & 0o777) == "0o600"

    before = snapshot(tmp_path / "cals")
    proxy.stats.reset()
    cfg = load(target)
    result = run_pair(cfg, "cal")
    assert not result.stopped and not result.errors, result.to_json()
    assert result.changes == 0, result.to_json()
    assert sorted(result.collections or {}) == sorted(names)
    methods = proxy.stats.by_method()
    assert proxy.stats.count() <= 2 * len(names), methods
    assert set(methods) <= {"PROPFIND", "REPORT"}, methods  # nothing written, no GET
    assert snapshot(tmp_path / "cals") == before  # no file written either

    # later edits on both sides sync
    local = tmp_path / "cals" / names[0] / f"{names[0]}-3.ics"
    local.write_bytes(event(f"{names[0]}-3", "edited locally", last_modified="20250202T000000Z"))
    radicale.put(f"{radicale.home}{names[1]}/new.ics", event("from-the-server", "new"))
    result = run_pair(cfg, "cal")
    assert not result.errors, result.to_json()
    assert (result.updated_b, result.added_a) == (1, 1), result.to_json()
    assert any(
        b"from-the-server" in p.read_bytes() for p in (tmp_path / "cals" / names[1]).iterdir()
    )
    for name in names:
        radicale.rmcalendar(f"{radicale.home}{name}/")


def test_unmappable_settings_are_named(tmp_path: Path) -> None:
    vds = tmp_path / "config"
    vds.write_text(
        """\
[general]
status_path = "~/.vdirsyncer/status/"

[pair contacts]
a = "phone_contacts"
b = "server_contacts"
collections = ["from a", "from b"]

[pair cal]
a = "local"
b = "server"
collections = null
conflict_resolution = ["command", "vimdiff"]
partial_sync = "ignore"

[storage phone_contacts]
type = "filesystem"
path = "~/contacts/"
fileext = ".vcf"

[storage server_contacts]
type = "carddav"
url = "https://example.org/"

[storage local]
type = "filesystem"
path = "~/cal/"
fileext = ".ics"
post_hook = "notify"

[storage server]
type = "caldav"
url = "https://example.org/cal/"
username = "me"
password.fetch = ["prompt", "Password"]
"""
    )
    got = CliRunner().invoke(cli, ["migrate", "vdirsyncer", str(vds)])
    assert got.exit_code == 1, got.output
    for named in (
        "[storage server_contacts] type = 'carddav'",
        "[storage phone_contacts] fileext = '.vcf'",
        "[pair contacts]: left out",
        "[pair cal] conflict_resolution",
        "[pair cal] partial_sync = 'ignore'",
        "[storage local] post_hook",
        "[storage server] password.fetch = ['prompt', ...]",
    ):
        assert named in got.output, named
    assert "[pairs.cal]" in got.output and "[pairs.contacts]" not in got.output
