"""Plain ``calsync`` with no configuration: the embedded default, with a real SyncML phone.

The README's promise in one test: install, run ``calsync``, point the phone
at the printed URL with the printed credentials, and an appointment made on
the phone reaches Thunderbird's calendar with no further command.  The phone
is the real SyncEvolution client (``../shared/peers/syncevolution``);
Thunderbird's profile holds a database the real Thunderbird made.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SHARED, event
from tests.gateway.helpers import DaemonProcess, wait_for

CLIENT = SHARED / "peers" / "syncevolution" / "client-sync.sh"


def thunderbird_home(tmp: Path) -> Path:
    """A home directory with a Thunderbird profile registered as the default."""
    from tests.stores.thunderbird.helpers import make_profile

    tbdir = tmp / "home" / ".thunderbird"
    tbdir.mkdir(parents=True)
    profile = make_profile(tbdir, "demo-utc")
    (tbdir / "profiles.ini").write_text(
        "[General]\nStartWithLastProfile=1\n\n"
        "[Profile0]\nName=default-release\nIsRelative=1\nPath=profile\nDefault=1\n",
        encoding="utf-8",
    )
    return profile


def phone_sync(url: str, user: str, password: str, folder: Path, mode: str = "two-way") -> str:
    assert CLIENT.exists(), f"{CLIENT} missing: the SyncEvolution peer is not available"
    proc = subprocess.run(
        ["bash", str(CLIENT), url, user, password, str(folder), mode, "ical20"],
        env={**os.environ, "SE_STORES": "calendar", "SE_LOGLEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert "RESULT: OK" in out and proc.returncode == 0, f"phone sync failed:\n{out}"
    return out


def thunderbird_titles(profile: Path, tables: tuple[str, ...] = ("cal_events",)) -> dict[str, str]:
    """id -> title of the Home calendar's items (masters only)."""
    from calsync.stores.thunderbird.prefs import find_calendar

    home = find_calendar(profile, "Home").id
    conn = sqlite3.connect(profile / "calendar-data" / "local.sqlite", timeout=5)
    try:
        return {
            str(i): str(t)
            for table in tables
            for i, t in conn.execute(
                f"SELECT id, title FROM {table} WHERE cal_id = ? AND recurrence_id IS NULL",
                (home,),
            )
        }
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


@pytest.mark.peer
def test_plain_calsync_phone_to_thunderbird_hands_off(tmp_path: Path) -> None:
    profile = thunderbird_home(tmp_path)
    before = thunderbird_titles(profile)
    everything = thunderbird_titles(profile, ("cal_events", "cal_todos"))
    d = DaemonProcess(tmp_path, None, "--show-credentials")
    try:
        banner = d.logs()
        out = d.out.read_text()
        url = re.search(r"Point your phone's SyncML .* at (\S+)", banner)
        assert url and url.group(1) == f"http://127.0.0.1:{d.port}/sync", banner
        assert "paired with Thunderbird calendar 'Home'" in banner
        user = re.search(r"user: (\S+)", banner)
        password = re.search(r"password: (\S+)", out)
        assert user and password, banner + out
        assert password.group(1) not in banner, "the password went to the log stream"
        # secrets are the user's only
        account = tmp_path / "xdg-config" / "calsync" / "syncml-account.toml"
        token = tmp_path / "xdg-config" / "calsync" / "api-token"
        for secret in (account, token):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
        hub = tmp_path / "data" / "hub"
        assert hub.is_dir()
        wait_for(
            lambda: d.runs("thunderbird") >= 1 and d.idle("thunderbird"), 15, "the startup sync"
        )
        # Thunderbird's events reached the hub
        assert len(list(hub.glob("*.ics"))) == len(everything)
        # the phone adds an appointment and syncs; nothing else is run
        phone = tmp_path / "phone"
        (phone / "calendar").mkdir(parents=True)
        (phone / "calendar" / "dentist.ics").write_bytes(
            event("dentist@phone", "Dentist", start="20250310T080000Z")
        )
        phone_sync(url.group(1), user.group(1), password.group(1), phone)
        wait_for(
            lambda: thunderbird_titles(profile).get("dentist@phone") == "Dentist",
            10,
            "the phone's appointment in Thunderbird",
        )
        status = d.status()
        assert any(dev["datastore"] == "calendar" for dev in status["devices"])
        log = d.logs()
        assert 'store.changed store=hub reason="SyncML device' in log
        # the phone's next sync gets Thunderbird's events too: everything agrees
        phone_sync(url.group(1), user.group(1), password.group(1), phone)
        on_phone = len(list((phone / "calendar").iterdir()))
        assert on_phone == len(before) + 1
        # `calsync status` (no config file: the embedded default) asks the daemon
        st = d.cli("status", "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["pairs"]["thunderbird"]["daemon"]["runs"] >= 2
    finally:
        d.stop()
    assert password.group(1) not in d.logs()


def test_plain_calsync_is_the_gateway_and_demo_stays(tmp_path: Path) -> None:
    from calsync.cli import DEFAULT_COMMAND

    assert DEFAULT_COMMAND == "serve"
    d = DaemonProcess(tmp_path, None)  # no Thunderbird in this home
    try:
        banner = d.logs()
        assert "no Thunderbird calendar found to pair" in banner
        # the first-run text points at the page and at pairing, not at passwords (#23)
        assert f"see what it does at http://127.0.0.1:{d.port}/" in banner
        assert "`calsync pair`" in banner and "calsync serve --lan" in banner
        assert "password" not in banner.lower() and "password" not in d.out.read_text()
        shown = (tmp_path / "data" / "embedded-config.toml").read_text()
        assert "[syncml.accounts.phone]" in shown and "password_command" in shown
    finally:
        d.stop()
    demo = d.cli("demo")
    assert demo.returncode == 0 and "added" in demo.stdout
