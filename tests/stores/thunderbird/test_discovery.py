"""Discovery of Thunderbird installations, profiles and calendars on every platform layout.

The trees are built the way Thunderbird lays them out (``profiles.ini`` and
``installs.ini`` of a real first start are in samples/profiles-layout), with
the real sample database and calendar prefs inside.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli import cli
from calsync.config import parse
from calsync.stores.thunderbird import profiles
from calsync.stores.thunderbird.discovery import discover
from calsync.stores.thunderbird.store import ThunderbirdStore
from tests.stores.thunderbird.helpers import SAMPLES, WORK_ID, registry
from tests.stores.thunderbird.lockholder import Holder

CALDAV = registry("caldav-1", "Team", type="caldav", uri="https://dav.example.test/cal/team/")


def fill_profile(path: Path, *, extra: str = "", db: bool = True) -> None:
    (path / "calendar-data").mkdir(parents=True, exist_ok=True)
    if db:
        shutil.copyfile(
            SAMPLES / "demo-utc" / "local.sqlite", path / "calendar-data" / "local.sqlite"
        )
    prefs = (SAMPLES / "demo-utc" / "calendar-prefs.js").read_text(encoding="utf-8")
    (path / "prefs.js").write_text(prefs + extra, encoding="utf-8")


def real_layout(data_dir: Path) -> Path:
    """The profiles.ini/installs.ini of a real first start; returns the used profile."""
    data_dir.mkdir(parents=True)
    for name in ("profiles.ini", "installs.ini"):
        shutil.copyfile(SAMPLES / "profiles-layout" / name, data_dir / name)
    (data_dir / "5yqtoj6g.default").mkdir()  # the legacy "default", empty
    used = data_dir / "60k0poqo.default-default"
    fill_profile(used, extra=CALDAV)
    return used


@pytest.mark.parametrize(
    ("where", "kind"),
    [
        (".thunderbird", "linux"),
        (".var/app/org.mozilla.Thunderbird/.thunderbird", "flatpak"),
        ("snap/thunderbird/common/.thunderbird", "snap"),
        ("Library/Thunderbird", "macos"),
    ],
)
def test_unix_layouts(tmp_path: Path, where: str, kind: str) -> None:
    system = "darwin" if kind == "macos" else "linux"
    used = real_layout(tmp_path / where)
    data = discover(system=system, home=tmp_path, env={})
    assert [i["kind"] for i in data["installations"]] == [kind]
    assert data["installations"][0]["installs"] == {"FDC34C9F024745EB": "60k0poqo.default-default"}
    by_name = {p["name"]: p for p in data["profiles"]}
    assert set(by_name) == {"default", "default-default"}
    chosen = by_name["default-default"]
    assert chosen["default"] and chosen["install_default"] and not by_name["default"]["default"]
    assert by_name["default"]["legacy_default"]
    assert chosen["path"] == str(used) and chosen["calendar_db"]
    cals = {c["name"]: c for c in chosen["calendars"]}
    assert cals["Home"]["writable"] and cals["Home"]["items"] == 11  # one was deleted
    assert cals["Work"]["items"] == 12
    assert not cals["Team"]["writable"] and cals["Team"]["items"] is None
    assert profiles.resolve("default", system=system, home=tmp_path, env={}) == used


def test_windows_layout(tmp_path: Path) -> None:
    appdata = tmp_path / "AppData" / "Roaming"
    data_dir = appdata / "Thunderbird"
    rel = data_dir / "Profiles" / "x1y2z3.default-release"
    absolute = tmp_path / "D" / "Profiles" / "elsewhere"
    fill_profile(rel)
    fill_profile(absolute, db=False)
    (data_dir / "profiles.ini").write_text(
        "[InstallD78BF5DD33499EC2]\nDefault=Profiles/x1y2z3.default-release\nLocked=1\n\n"
        "[Profile1]\nName=other\nIsRelative=0\nPath=" + str(absolute) + "\n\n"
        "[Profile0]\nName=default-release\nIsRelative=1\nPath=Profiles/x1y2z3.default-release\n\n"
        "[General]\nStartWithLastProfile=1\nVersion=2\n",
        encoding="utf-8",
    )
    env = {"APPDATA": str(appdata)}
    data = discover(system="win32", home=tmp_path / "home", env=env)
    assert [i["kind"] for i in data["installations"]] == ["windows"]
    by_name = {p["name"]: p for p in data["profiles"]}
    assert by_name["default-release"]["path"] == str(rel) and by_name["default-release"]["default"]
    assert by_name["other"]["path"] == str(absolute) and by_name["other"]["calendar_db"] is None
    assert profiles.resolve("other", system="win32", home=tmp_path, env=env) == absolute


def test_two_installations_make_default_ambiguous(tmp_path: Path) -> None:
    real_layout(tmp_path / ".thunderbird")
    real_layout(tmp_path / ".var/app/org.mozilla.Thunderbird/.thunderbird")
    with pytest.raises(profiles.ProfileNotFound, match="several profiles"):
        profiles.resolve("default", system="linux", home=tmp_path, env={})
    data = discover(system="linux", home=tmp_path, env={})
    assert {i["kind"] for i in data["installations"]} == {"linux", "flatpak"}
    assert "thunderbird-default-default-home" in data["config"]
    assert "thunderbird-default-default-home-2" in data["config"]


def test_sunbird_profiles_are_reported_not_synced(tmp_path: Path) -> None:
    root = tmp_path / ".mozilla" / "sunbird"
    prof = root / "abcd.default"
    prof.mkdir(parents=True)
    (prof / "storage.sdb").write_bytes(b"SQLite format 3\x00")
    (root / "profiles.ini").write_text(
        "[Profile0]\nName=default\nIsRelative=1\nPath=abcd.default\nDefault=1\n", encoding="utf-8"
    )
    data = discover(system="linux", home=tmp_path, env={})
    assert data["profiles"][0]["kind"] == "sunbird" and data["profiles"][0]["legacy_storage_sdb"]
    assert "[stores." not in data["config"] and "storage.sdb" in data["config"]
    with pytest.raises(profiles.ProfileNotFound):
        profiles.resolve("default", system="linux", home=tmp_path, env={})


def test_config_block_is_ready_to_paste(tmp_path: Path) -> None:
    """The printed block parses, validates and builds working stores."""
    real_layout(tmp_path / ".thunderbird")
    data = discover(system="linux", home=tmp_path, env={})
    block = data["config"]
    assert (
        "is a caldav calendar (https://dav.example.test/cal/team/): sync it at its server" in block
    )
    parsed = tomllib.loads(block)
    assert set(parsed["stores"]) == {"thunderbird-home", "thunderbird-work"}
    cfg, errors = parse(
        block + '\n[stores.phone]\ntype = "vdir"\npath = "x"\ncreate = true\n', tmp_path / "c.toml"
    )
    assert not errors
    store = cfg.store("thunderbird-work")
    assert isinstance(store, ThunderbirdStore) and store.calendar.id == WORK_ID
    assert len(store.list().versions) == 12


def test_running_thunderbird_is_shown(tmp_path: Path) -> None:
    used = real_layout(tmp_path / ".thunderbird")
    holder = Holder(used)
    try:
        data = discover(system="linux", home=tmp_path, env={})
    finally:
        holder.stop()
    chosen = next(p for p in data["profiles"] if p["default"])
    assert chosen["running"] and chosen["pid"] == holder.pid
    assert {c["name"]: c["items"] for c in chosen["calendars"]}["Home"] == 11  # read while locked


def test_cli_discover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_layout(tmp_path / ".thunderbird")
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["discover", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"installations", "profiles", "config"} <= set(data)
    text = CliRunner().invoke(cli, ["discover"])
    assert text.exit_code == 0
    assert "[stores.thunderbird-home]" in text.output and "'Team': caldav" in text.output
    monkeypatch.setenv("HOME", str(tmp_path / "empty"))
    none = CliRunner().invoke(cli, ["discover"])
    assert none.exit_code == 1 and "No Thunderbird installation found" in none.output


def test_network_calendar_is_refused_with_advice(tmp_path: Path) -> None:
    used = real_layout(tmp_path / ".thunderbird")
    cfg, errors = parse(
        f'[stores.t]\ntype = "thunderbird"\nprofile = "{used}"\ncalendar = "Team"\n',
        tmp_path / "c.toml",
    )
    assert not errors
    with pytest.raises(Exception, match="Sync it at its server") as e:
        cfg.store("t")
    assert "cache.sqlite" in str(e.value) and "https://dav.example.test/cal/team/" in str(e.value)
