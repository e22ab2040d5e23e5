"""``calsync thunderbird connect|disconnect``, and the real Thunderbird syncing over CalDAV.

The end-to-end test is the issue's promise: after ``connect``, an event a
phone (the real SyncEvolution client, over SyncML) adds to the hub appears
in the running Thunderbird's calendar, and one made in Thunderbird reaches
the hub and the phone, with only the daemon in between.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calsync.davserver import thunderbird as tb
from calsync.davserver.app import REALM
from calsync.stores.thunderbird.prefs import calendars, read_prefs
from tests.conftest import ROOT, event
from tests.gateway.helpers import DaemonProcess, free_port, wait_for

CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.hub]
type = "vdir"
path = "{tmp}/hub"
create = true
[server]
listen = "127.0.0.1:{port}"
[caldav.users.alice]
password = "tb-Secret-42"
calendars = ["hub"]
[syncml.accounts.phone]
password = "phone-Secret-7"
calendar = "hub"
"""


def write_config(tmp: Path, port: int, extra: str = "") -> Path:
    (tmp / "hub").mkdir(exist_ok=True)
    path = tmp / "config.toml"
    path.write_text(CONFIG.format(tmp=tmp, port=port) + extra, encoding="utf-8")
    path.chmod(0o600)
    return path


def calsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def connect(
    config: Path, profile: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``calsync thunderbird connect`` for this profile."""
    return calsync(
        "--config", str(config), "thunderbird", "connect", "--profile", str(profile), *args, env=env
    )


def test_connect_writes_the_registry_entry_and_disconnect_removes_it(tmp_path: Path) -> None:
    from tests.stores.thunderbird.helpers import make_profile

    profile = make_profile(tmp_path, "fresh")
    before = {c.id for c in calendars(profile)}
    config = write_config(tmp_path, 8765)
    r = connect(config, profile, "--no-password")
    assert r.returncode == 0, r.stderr
    mine = tb.connected(profile)
    assert len(mine) == 1
    cal = mine[0]
    assert cal.type == "caldav" and cal.uri == "http://127.0.0.1:8765/dav/alice/hub/"
    assert cal.extra["username"] == "alice" and cal.cache_enabled and not cal.disabled
    prefs = read_prefs(profile / "prefs.js")
    assert prefs["calendar.list.sortOrder"].split()[-1] == cal.id
    assert {c.id for c in calendars(profile)} == before | {cal.id}  # the others untouched
    assert "tb-Secret-42" not in (profile / "prefs.js").read_text()
    assert "tb-Secret-42" not in r.stdout + r.stderr
    # connecting again updates the same entry
    r = connect(config, profile, "--no-password", "--url", "https://calsync.example:8443")
    assert r.returncode == 0 and "updated" not in r.stdout  # another URL: another calendar
    assert len(tb.connected(profile)) == 2
    r = connect(config, profile, "--no-password")
    assert r.returncode == 0 and "updated" in r.stdout
    assert len(tb.connected(profile)) == 2
    # disconnect removes only ours, and the sort order follows
    r = calsync("thunderbird", "disconnect", "--profile", str(profile), "--keep-password")
    assert r.returncode == 0, r.stderr
    assert tb.connected(profile) == []
    assert {c.id for c in calendars(profile)} == before
    order = read_prefs(profile / "prefs.js")["calendar.list.sortOrder"].split()
    assert set(order) <= before
    assert (profile / tb.BACKUP).exists()


def test_connect_refuses_while_thunderbird_runs_and_names_the_choices(tmp_path: Path) -> None:
    from tests.stores.thunderbird.helpers import make_profile
    from tests.stores.thunderbird.lockholder import Holder

    profile = make_profile(tmp_path, "fresh")
    config = write_config(
        tmp_path, 8765, '[caldav.users.bob]\npassword = "b"\ncalendars = ["hub"]\n'
    )
    holder = Holder(profile)
    try:
        r = connect(config, profile, "--user", "alice", "--no-password")
        assert r.returncode == 1 and "quit Thunderbird first" in r.stderr
        assert tb.connected(profile) == []
    finally:
        holder.stop()
    r = connect(config, profile, "--no-password")
    assert r.returncode == 2 and "alice: hub" in r.stderr and "bob: hub" in r.stderr
    r = connect(config, profile, "--calendar", "nope", "--no-password")
    assert r.returncode == 2 and "--calendar" in r.stderr


# -- the real Thunderbird -------------------------------------------------------------------

SHOW = """
const c = cal.manager.getCalendars().find(c => c.type == "caldav");
if (!c) return null;
c.refresh();
await tb.sleep(1500);
const items = await c.getItemsAsArray(Ci.calICalendar.ITEM_FILTER_ALL_ITEMS, 0, null, null);
return {name: c.name, uri: c.uri.spec, items: Object.fromEntries(items.map(i => [i.id, i.title]))};
"""

ADD = """
const c = cal.manager.getCalendars().find(c => c.type == "caldav");
const ev = new CalEvent();
ev.id = arguments[0];
ev.title = arguments[1];
ev.startDate = cal.createDateTime("20250305T090000Z");
ev.endDate = cal.createDateTime("20250305T100000Z");
await c.addItem(ev);
return true;
"""

LOGINS = """
const [origin, httpRealm] = arguments;
const found = await Services.logins.searchLoginsAsync({origin, httpRealm});
return found.map(l => l.username);
"""


@pytest.mark.peer
def test_thunderbird_syncs_over_caldav_with_a_syncml_phone(tmp_path: Path) -> None:
    from tests.gateway.test_embedded import phone_sync
    from tests.stores.thunderbird.test_real_thunderbird import tbpeer

    peer = tbpeer().Peer(tmp_path / "tb", log=lambda *a: None)
    profile = Path(peer.init())
    peer.start()  # a first start, as a user's profile has had
    peer.stop()
    port = free_port()
    config = write_config(tmp_path, port)
    tb_env = {k: v for k, v in peer.env().items() if k.startswith(("HOME", "XDG", "MOZ", "TZ"))}
    r = connect(config, profile, env=tb_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "added in Thunderbird's password manager" in r.stdout
    # connecting again updates the entry and the login, adding nothing
    r = connect(config, profile, env=tb_env)
    assert r.returncode == 0 and "updated in Thunderbird's password manager" in r.stdout
    assert len(tb.connected(profile)) == 1
    logins = json.loads((profile / "logins.json").read_text())["logins"]
    assert [(x["hostname"], x["httpRealm"]) for x in logins] == [
        (f"http://127.0.0.1:{port}", REALM)
    ]
    assert "tb-Secret-42" not in (profile / "logins.json").read_text()  # encrypted by Thunderbird

    with DaemonProcess(tmp_path, config, port=port) as d:
        peer.start()
        try:
            shown: dict[str, Any] = wait_for(lambda: peer.js(SHOW), 30, "the CalDAV calendar")
            assert shown["uri"] == f"http://127.0.0.1:{port}/dav/alice/hub/"
            assert shown["items"] == {}
            # the phone adds an appointment over SyncML; the daemon puts it in the hub
            phone = tmp_path / "phone"
            (phone / "calendar").mkdir(parents=True)
            (phone / "calendar" / "dentist.ics").write_bytes(
                event("dentist@phone", "Dentist", start="20250310T080000Z")
            )
            phone_sync(f"{d.url}/sync", "phone", "phone-Secret-7", phone)
            # ... and the running Thunderbird shows it, through CalDAV
            wait_for(
                lambda: peer.js(SHOW)["items"].get("dentist@phone") == "Dentist",
                60,
                "the phone's appointment in Thunderbird",
                step=1,
            )
            # an event made in Thunderbird reaches the hub ...
            assert peer.js(ADD, ["tb-made@thunderbird", "Made in Thunderbird"]) is True
            hub = tmp_path / "hub"
            wait_for(
                lambda: any(b"Made in Thunderbird" in f.read_bytes() for f in hub.iterdir()),
                20,
                "Thunderbird's event in the hub",
            )
            # ... and the phone at its next sync
            phone_sync(f"{d.url}/sync", "phone", "phone-Secret-7", phone)
            texts = [f.read_text() for f in (phone / "calendar").iterdir()]
            assert any("Made in Thunderbird" in t for t in texts)
        finally:
            peer.stop()
        log = d.logs()
    assert "caldav alice added tb-made@thunderbird" in log
    assert "tb-Secret-42" not in log and "phone-Secret-7" not in log
    # disconnect: calendar and login gone (checked through Thunderbird itself)
    r = calsync("thunderbird", "disconnect", "--profile", str(profile), env=tb_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tb.connected(profile) == []
    peer.start()
    try:
        assert peer.js(SHOW) is None
        assert peer.js(LOGINS, [f"http://127.0.0.1:{port}", REALM]) == []
    finally:
        peer.stop()
