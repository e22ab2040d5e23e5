"""The command line: config errors, exit codes, --json, history and restore."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import event

CONFIG = """\
[stores.laptop]
type = "ics"
path = "laptop.ics"

[stores.phone]
type = "vdir"
path = "phone"
create = true

[pairs.main]
a = "laptop"
b = "phone"
conflict = "newest"
"""


def run(tmp: Path, *args: str, config: str | None = CONFIG) -> subprocess.CompletedProcess[str]:
    if config is not None:
        (tmp / "config.toml").write_text(config)
    env = {**os.environ, "CALSYNC_CONFIG": str(tmp / "config.toml")}
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def sync_json(tmp: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = run(tmp, "sync", "--json", *args)
    return out.returncode, json.loads(out.stdout)


def test_full_cycle_with_json_counts(tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "p1.ics").write_bytes(event("p1", "From phone"))
    (tmp_path / "laptop.ics").write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Laptop\r\n"
        + event("l1", "From laptop").split(b"PRODID:-//calsync tests//EN\r\n")[1]
    )
    code, data = sync_json(tmp_path)
    assert code == 0
    assert data == {
        "pairs": {
            "main": {
                "added_a": 1,
                "added_b": 1,
                "updated_a": 0,
                "updated_b": 0,
                "deleted_a": 0,
                "deleted_b": 0,
                "conflicts": 0,
                "errors": [],
            }
        }
    }
    # edit on the phone, delete on the laptop side, add on the phone
    (phone / "p1.ics").write_bytes(event("p1", "Edited on phone"))
    (phone / "p2.ics").write_bytes(event("p2", "Second"))
    text = (tmp_path / "laptop.ics").read_bytes()
    start = text.index(b"BEGIN:VEVENT\r\nUID:l1")
    end = text.index(b"END:VEVENT\r\n", start) + len(b"END:VEVENT\r\n")
    (tmp_path / "laptop.ics").write_bytes(text[:start] + text[end:])
    code, data = sync_json(tmp_path)
    assert code == 0
    counts = data["pairs"]["main"]
    assert (counts["added_a"], counts["updated_a"], counts["deleted_b"]) == (1, 1, 1)
    laptop = (tmp_path / "laptop.ics").read_text()
    assert "Edited on phone" in laptop and "Second" in laptop and "From laptop" not in laptop
    assert sorted(p.name for p in phone.iterdir()) == ["p1.ics", "p2.ics"]
    # status and a no-op sync
    code, data = sync_json(tmp_path)
    assert code == 0 and data["pairs"]["main"]["added_a"] == 0
    st = json.loads(run(tmp_path, "status", "--json").stdout)
    assert st["pairs"]["main"]["items"] == 2 and st["pairs"]["main"]["last_run"]
    # the deleted event is in history and can be restored
    hist = json.loads(run(tmp_path, "history", "l1", "--json").stdout)["history"]
    assert len(hist) == 1 and hist[0]["reason"] == "remote-delete"
    assert "From laptop" in hist[0]["content"]
    out = run(tmp_path, "restore", "l1", "--to", "phone")
    assert out.returncode == 0, out.stderr
    code, data = sync_json(tmp_path)
    assert data["pairs"]["main"]["added_a"] == 1
    assert "From laptop" in (tmp_path / "laptop.ics").read_text()


def test_item_failure_exit_1_names_item(tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "ok.ics").write_bytes(event("ok"))
    (phone / "bad.ics").write_bytes(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bad\r\n")
    code, data = sync_json(tmp_path)
    assert code == 1
    errors = data["pairs"]["main"]["errors"]
    assert len(errors) == 1
    # a component never closed is still an item (a vdir would take it), but an
    # .ics file cannot hold it: the message says why and which file it came from
    assert errors[0]["store"] == "laptop" and errors[0]["uid"] == "bad"
    assert "never closed" in errors[0]["message"]
    assert "read from phone bad.ics" in errors[0]["message"]
    assert data["pairs"]["main"]["added_a"] == 1


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            CONFIG.replace('type = "vdir"', 'type = "vdirr"'),
            ":6: stores.phone.type: unknown store type",
        ),
        (CONFIG.replace('path = "phone"\n', ""), ":5: stores.phone.path: required key"),
        (CONFIG.replace('conflict = "newest"', 'conflict = "random"'), ":13: pairs.main.conflict"),
        (
            CONFIG.replace('b = "phone"', 'b = "tablet"'),
            ":12: pairs.main.b: no store named 'tablet'",
        ),
        (CONFIG + "pathh = 1\n", ":14: pairs.main.pathh: unknown key"),
        (
            CONFIG + '[syncml.accounts.alice]\npassword = "x"\ncalendar = "tablet"\n',
            ":16: syncml.accounts.alice.calendar: no store named 'tablet'",
        ),
        (
            CONFIG + '[caldav.users.bob]\npassword = "x"\ncalendars = ["phone", "tablet"]\n',
            ":16: caldav.users.bob.calendars: no store named 'tablet'",
        ),
        ("[stores.x\n", ": not valid TOML"),
        (CONFIG.replace("[pairs.main]", '[pairs.main]\nmax_delete = "lots"'), "max_delete"),
    ],
)
def test_config_errors_name_file_line_key(tmp_path: Path, config: str, expected: str) -> None:
    for args in (("check",), ("sync",)):
        out = run(tmp_path, *args, config=config)
        assert out.returncode == 2, out
        assert f"{tmp_path / 'config.toml'}" in out.stderr
        assert expected in out.stderr
        assert "Traceback" not in out.stderr


def test_check_ok_and_missing_config(tmp_path: Path) -> None:
    out = run(tmp_path, "check")
    assert out.returncode == 0 and "OK (2 stores, 1 pairs)" in out.stdout
    (tmp_path / "config.toml").unlink()
    out = run(tmp_path, "sync", config=None)
    assert out.returncode == 2 and "no configuration file" in out.stderr


def test_unknown_pair_is_usage_error(tmp_path: Path) -> None:
    out = run(tmp_path, "sync", "nope")
    assert out.returncode == 2 and "no pair named nope" in out.stderr


def test_guard_exit_3(tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    phone.mkdir()
    for i in range(3):
        (phone / f"e{i}.ics").write_bytes(event(f"e{i}"))
    assert run(tmp_path, "sync").returncode == 0
    for f in phone.iterdir():
        f.unlink()
    out = run(tmp_path, "sync")
    assert out.returncode == 3 and "--force" in out.stdout
    assert (tmp_path / "laptop.ics").read_text().count("BEGIN:VEVENT") == 3
    assert run(tmp_path, "sync", "--force").returncode == 0
    assert "BEGIN:VEVENT" not in (tmp_path / "laptop.ics").read_text()


def test_world_readable_password_is_a_problem(tmp_path: Path) -> None:
    # a secret anywhere in the config (a store's password) triggers the check
    (tmp_path / "config.toml").write_text(
        CONFIG.replace("[stores.phone]", '[stores.phone]\npassword = "hunter2"')
    )
    os.chmod(tmp_path / "config.toml", 0o644)
    out = run(tmp_path, "check", config=None)
    assert out.returncode == 2 and "can be read by other users" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


def test_demo_runs_without_configuration(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CALSYNC_DATA_DIR": str(tmp_path / "data"),
        "CALSYNC_CONFIG": str(tmp_path / "none.toml"),
    }
    first = subprocess.run(
        [sys.executable, "-m", "calsync", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert "laptop: 2 added; phone: 3 added" in first.stdout
    second = subprocess.run(
        [sys.executable, "-m", "calsync", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "nothing to do" in second.stdout


def test_conflicts_listed(tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "x.ics").write_bytes(event("x", "Original"))
    assert run(tmp_path, "sync").returncode == 0
    (phone / "x.ics").write_bytes(event("x", "Phone", last_modified="20250301T000000Z"))
    laptop = (tmp_path / "laptop.ics").read_bytes()
    (tmp_path / "laptop.ics").write_bytes(
        laptop.replace(b"SUMMARY:Original", b"SUMMARY:Laptop").replace(
            b"LAST-MODIFIED:20250101T000000Z", b"LAST-MODIFIED:20250201T000000Z"
        )
    )
    _code, data = sync_json(tmp_path)
    assert data["pairs"]["main"]["conflicts"] == 1
    rows = json.loads(run(tmp_path, "conflicts", "--json").stdout)["conflicts"]
    assert rows[0]["uid"] == "x" and rows[0]["outcome"] == "newest" and rows[0]["winner"] == "phone"


def one_phone_item(tmp: Path) -> None:
    (tmp / "config.toml").write_text(CONFIG)
    (tmp / "phone").mkdir()
    (tmp / "phone" / "p1.ics").write_bytes(event("p1", "From phone"))


def probed_sync(tmp: Path, setup: str, probe: str) -> tuple[dict[str, Any], Any]:
    """``calsync sync --json`` through ``main()`` in a fresh interpreter: the pair's
    counts, and the JSON value of ``probe`` evaluated at exit (after ``setup``)."""
    code = (
        f"import atexit, gc, json, sys\n{setup}\n"
        f"atexit.register(lambda: print(json.dumps({probe})))\n"
        "from calsync.cli import main\n"
        "main(['sync', '--json'])\n"
    )
    env = {**os.environ, "CALSYNC_CONFIG": str(tmp / "config.toml")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    *report, probed = out.stdout.strip().splitlines()
    return json.loads("\n".join(report))["pairs"]["main"], json.loads(probed)


def test_a_one_shot_sync_collects_less_and_an_in_process_caller_is_left_alone(
    tmp_path: Path,
) -> None:
    """calsync's own process freezes and slows the cyclic GC for its sync; a
    program calling the CLI in-process (here: click's test runner) keeps its
    own settings."""
    one_phone_item(tmp_path)
    counts, probed = probed_sync(
        tmp_path,
        "before = gc.get_threshold()",
        "[before, gc.get_threshold(), gc.get_freeze_count() > 0]",
    )
    assert counts["added_a"] == 1
    before, after, frozen = probed
    assert before != after == [100_000, 10, 10] and frozen

    from click.testing import CliRunner

    from calsync.cli import cli

    (tmp_path / "phone" / "p2.ics").write_bytes(event("p2", "From phone"))
    threshold, freezes = gc.get_threshold(), gc.get_freeze_count()
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "sync", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pairs"]["main"]["added_a"] == 1
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == freezes


def test_a_sync_with_nothing_to_do_loads_no_heavy_library(tmp_path: Path) -> None:
    """Start-up is most of a quiet sync: nothing is parsed, packed, served or drawn."""
    one_phone_item(tmp_path)
    assert run(tmp_path, "sync").returncode == 0
    heavy = [
        "zstandard",  # packing: only when content is stored
        "icalendar",  # parsing beyond the fast path
        "httpx",  # CalDAV and SyncML clients
        "starlette",  # the daemon's web stack
        "uvicorn",
        "rich",  # progress bars
        "lxml",
        "watchdog",
        "calsync.gateway.client",  # no daemon runs: nothing to ask
        "_hashlib",  # OpenSSL, via hashlib: content hashes use BLAKE2 alone
        "click",  # a plain `calsync sync` is parsed without it (calsync.cli.quick)
        "dataclasses",  # a sync's own data classes are plain ones (calsync.plain)
        "inspect",
    ]
    counts, loaded = probed_sync(
        tmp_path,
        f"heavy = {heavy!r}",
        "sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy)",
    )
    assert counts["added_a"] == counts["added_b"] == 0 and counts["errors"] == []
    assert loaded == []


def test_a_one_shot_first_sync_forks_helpers_and_an_in_process_caller_does_not(
    tmp_path: Path,
) -> None:
    """calsync's own process gives each vdir's listing, half of a large read
    and half of a large batch of new files to forked helpers (from 4 items here);
    the result is the same as without them, and a library caller's process is
    never forked."""
    config = CONFIG.replace(
        'type = "ics"\npath = "laptop.ics"', 'type = "vdir"\npath = "laptop"\ncreate = true'
    )
    (tmp_path / "config.toml").write_text(config)
    (tmp_path / "phone").mkdir()
    for i in range(30):
        (tmp_path / "phone" / f"p{i}.ics").write_bytes(event(f"p{i}", f"From phone {i}"))
    setup = (
        "from calsync.stores import _forked\n"
        "_forked.MINIMUM = 4\n"
        "forks = []\n"
        "real = _forked.Child.__init__\n"
        "def counting(self, work, part, **kw):\n"
        "    forks.append([work.__name__, len(part), 'calsync.sync.engine' in sys.modules])\n"
        "    real(self, work, part, **kw)\n"
        "_forked.Child.__init__ = counting\n"
    )
    counts, forks = probed_sync(tmp_path, setup, "forks")
    # the phone's listing begins before the engine is loaded (that import is
    # overlapped); the laptop's directory does not exist yet: nothing to list
    assert forks == [
        ["_list_part", 1, False],
        ["_read_part", 15, True],
        ["_add_part", 15, True],
    ]
    assert counts["added_a"] == 30 and counts["errors"] == []
    assert sorted(os.listdir(tmp_path / "laptop")) == sorted(os.listdir(tmp_path / "phone"))
    for name in os.listdir(tmp_path / "phone"):
        assert (tmp_path / "laptop" / name).read_bytes() == (tmp_path / "phone" / name).read_bytes()
    again = json.loads(run(tmp_path, "sync", "--json", config=config).stdout)["pairs"]["main"]
    assert again["added_a"] == again["added_b"] == 0

    from click.testing import CliRunner

    from calsync.cli import cli
    from calsync.stores import _forked

    for i in range(30, 60):
        (tmp_path / "phone" / f"p{i}.ics").write_bytes(event(f"p{i}", f"From phone {i}"))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "sync", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pairs"]["main"]["added_a"] == 30
    assert not _forked.usable(10**6)
