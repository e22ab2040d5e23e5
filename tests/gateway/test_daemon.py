"""The daemon end to end: ``calsync serve`` in a subprocess, changes travel with no command.

What a user relies on: a file edited in one store reaches the other within
seconds; calsync's own writes do not make it sync forever; ``calsync sync``
and ``calsync status`` go through the daemon while it runs; SIGTERM in the
middle of a big sync loses nothing and the next run converges; Thunderbird
quitting gets the changes that waited for it written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from tests.conftest import event
from tests.gateway.helpers import DaemonProcess, env_for, events, wait_for

PAIR_CONFIG = """
[stores.dir]
type = "vdir"
path = "{vdir}"
{vdir_extra}
[stores.file]
type = "ics"
path = "{ics}"

[pairs.p]
a = "dir"
b = "file"
conflict = "newest"
"""


def setup(tmp: Path, vdir_extra: str = "", extra: str = "") -> tuple[Path, Path, Path]:
    vdir = tmp / "dir"
    vdir.mkdir()
    ics = tmp / "file.ics"
    config = tmp / "config.toml"
    config.write_text(
        PAIR_CONFIG.format(vdir=vdir, ics=ics, vdir_extra=vdir_extra) + extra, encoding="utf-8"
    )
    return vdir, ics, config


def summaries(data: bytes) -> list[str]:
    return re.findall(r"SUMMARY:(.*?)\r?\n", data.decode())


def test_a_file_edit_travels_with_no_command_and_it_settles(tmp_path: Path) -> None:
    vdir, ics, config = setup(tmp_path)
    (vdir / "e1.ics").write_bytes(event("e1", "First"))
    with DaemonProcess(tmp_path, config) as d:
        # the first run after start copies what is there
        wait_for(lambda: ics.exists() and b"First" in ics.read_bytes(), 15, "the startup sync")
        wait_for(lambda: d.idle("p"), 10, "the daemon to be idle")
        # a new file in the vdir reaches the .ics file, with no command
        started = time.monotonic()
        (vdir / "e2.ics").write_bytes(event("e2", "Second"))
        wait_for(lambda: b"Second" in ics.read_bytes(), 10, "e2 in the .ics file")
        assert time.monotonic() - started < 4
        # an edit the other way: the .ics file changed by another program
        started = time.monotonic()
        ics.write_bytes(ics.read_bytes().replace(b"SUMMARY:First", b"SUMMARY:First, edited"))
        wait_for(
            lambda: b"First, edited" in (vdir / "e1.ics").read_bytes(), 10, "the edit in the vdir"
        )
        assert time.monotonic() - started < 4
        # and a delete
        (vdir / "e2.ics").unlink()
        wait_for(lambda: b"Second" not in ics.read_bytes(), 10, "the delete in the .ics file")
        # calsync's own writes come back as file events: they settle, no endless syncing
        wait_for(lambda: d.idle("p"), 10, "the daemon to be idle")
        time.sleep(1.5)
        runs = d.runs("p")
        time.sleep(2.5)
        assert d.runs("p") == runs, "the daemon kept syncing after its own writes"
        assert runs <= 12, f"{runs} runs for 4 changes"
        assert summaries(ics.read_bytes()) == ["First, edited"]
        assert sorted(p.name for p in vdir.iterdir()) == ["e1.ics"]
        log = d.logs()
    assert events(log, "sync.start") and 'trigger="file changed (dir)"' in log
    assert "pair p: added e2 to file" in log  # the engine's own lines name pair, item, store


def test_the_command_line_goes_through_the_running_daemon(tmp_path: Path) -> None:
    vdir, _, config = setup(tmp_path)
    (vdir / "e1.ics").write_bytes(event("e1", "First"))
    with DaemonProcess(tmp_path, config, "--no-watch") as d:
        wait_for(lambda: d.runs("p") >= 1 and d.idle("p"), 15, "the startup sync")
        before = d.runs("p")
        (vdir / "e2.ics").write_bytes(event("e2", "Second"))
        out = d.cli("sync", "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data == {
            "pairs": {
                "p": {
                    "added_a": 0,
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
        # the daemon did the run: its counter moved and its log shows the request
        assert d.runs("p") == before + 1
        assert "api.request method=POST path=/api/sync agent=calsync-cli" in d.logs()
        text = d.cli("sync")
        assert text.returncode == 0 and "p: in sync, nothing to do" in text.stdout
        st = d.cli("status", "--json")
        assert st.returncode == 0, st.stderr
        pair = json.loads(st.stdout)["pairs"]["p"]
        assert pair["items"] == 2 and pair["last_run"]
        assert pair["daemon"]["runs"] == before + 2 and pair["daemon"]["next_run"]
        assert "path=/api/status agent=calsync-cli" in d.logs()
        human = d.cli("status")
        assert "daemon: next sync in" in human.stdout
        # usage errors stay usage errors (exit 2), decided before asking the daemon
        assert d.cli("sync", "nope").returncode == 2
    # with no daemon the same commands work standalone, same output
    env = env_for(tmp_path, config)
    from subprocess import run
    from sys import executable

    alone = run(
        [executable, "-m", "calsync", "status", "--json"], env=env, capture_output=True, text=True
    )
    pair = json.loads(alone.stdout)["pairs"]["p"]
    assert pair["items"] == 2 and pair["daemon"] is None
    again = run([executable, "-m", "calsync", "sync", "--json"], env=env, capture_output=True)
    assert again.returncode == 0 and json.loads(again.stdout)["pairs"]["p"]["added_b"] == 0


def test_sigterm_mid_sync_loses_nothing_and_the_next_run_converges(tmp_path: Path) -> None:
    n = 3000
    vdir, _, config = setup(tmp_path)
    target = tmp_path / "copy"
    target.mkdir()
    config.write_text(
        config.read_text()
        + f'\n[stores.copy]\ntype = "vdir"\npath = "{target}"\nfsync = "always"\n'
        '\n[pairs.big]\na = "dir"\nb = "copy"\n',
        encoding="utf-8",
    )
    for i in range(n):
        (vdir / f"e{i}.ics").write_bytes(event(f"e{i}", f"Event {i}"))
    # only the big pair: the .ics pair would compete for the "dir" store
    config.write_text(config.read_text().replace("[pairs.p]", "[pairs.p]\ninterval = 3600"))
    d = DaemonProcess(tmp_path, config, "--no-watch")
    try:
        wait_for(lambda: len(os.listdir(target)) >= 300, 60, "the big sync to be under way", 0.01)
    finally:
        code = d.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), d.logs()
    copied = len(os.listdir(target))
    log = d.logs()
    assert copied < n, "the sync finished before SIGTERM: nothing was interrupted"
    assert "interrupted" in log and "daemon.stopped" in log, log[-3000:]
    # the next (standalone) run copies exactly what is missing: the status DB was
    # consistent with the store at the safe point; nothing doubled, nothing lost
    from subprocess import run
    from sys import executable

    env = env_for(tmp_path, config)
    # fsync per file only made the interrupted run slow enough to catch mid-way
    config.write_text(config.read_text().replace('fsync = "always"', 'fsync = "batch"'))
    out = run(
        [executable, "-m", "calsync", "sync", "big", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)["pairs"]["big"]
    assert counts["added_b"] == n - copied and counts["added_a"] == 0 and not counts["errors"]
    names = sorted(os.listdir(target))
    assert len(names) == n and names == sorted(f"e{i}.ics" for i in range(n))
    again = run(
        [executable, "-m", "calsync", "sync", "big", "--json"], env=env, capture_output=True
    )
    assert json.loads(again.stdout)["pairs"]["big"]["added_b"] == 0


def _pairs(d: DaemonProcess) -> set[str]:
    try:
        return set(d.status()["pairs"])
    except (httpx.HTTPError, AssertionError):
        return set()  # between the old process image and the new one


def test_sighup_reloads_the_configuration_and_refuses_a_broken_one(tmp_path: Path) -> None:
    """``systemctl reload``: a broken file is refused and the daemon runs on as it was;
    a good one takes effect in the same process (same PID), new pairs syncing."""
    vdir, _, config = setup(tmp_path)
    good = config.read_text()
    with DaemonProcess(tmp_path, config, "--no-watch") as d:
        pid = d.proc.pid
        assert _pairs(d) == {"p"}
        config.write_text(good + '\n[pairs.q]\na = "dir"\nb = "tablet"\n')
        d.proc.send_signal(signal.SIGHUP)
        refused = wait_for(
            lambda: events(d.logs(), "daemon.reload_refused"), 30, "the reload to be refused"
        )
        assert "tablet" in refused[0], refused  # the error names what is wrong
        assert d.proc.poll() is None and _pairs(d) == {"p"}

        other = tmp_path / "other"
        config.write_text(
            good + f'\n[stores.other]\ntype = "vdir"\npath = "{other}"\ncreate = true\n'
            '\n[pairs.q]\na = "dir"\nb = "other"\n'
        )
        (vdir / "e1.ics").write_bytes(event("e1", "Before the reload"))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(events(d.logs(), "daemon.start")) == 2, 60, "the daemon to restart")
        wait_for(lambda: _pairs(d) == {"p", "q"}, 30, "the new pair to be served")
        starts = events(d.logs(), "daemon.start")
        assert d.proc.poll() is None and all(f"pid={pid} " in line for line in starts), starts
        assert events(d.logs(), "daemon.reloading")
        # the new pair syncs (its first run at start)
        wait_for(lambda: (other / "e1.ics").exists(), 30, "the new pair's first sync")
        assert summaries((other / "e1.ics").read_bytes()) == ["Before the reload"]


TB_CONFIG = """
[stores.tb]
type = "thunderbird"
profile = "{profile}"
calendar = "Home"

[stores.dir]
type = "vdir"
path = "{vdir}"

[pairs.p]
a = "tb"
b = "dir"
"""


def test_thunderbird_edits_and_quitting_trigger_syncs(tmp_path: Path) -> None:
    from tests.stores.thunderbird.helpers import make_profile
    from tests.stores.thunderbird.lockholder import Holder

    profile = make_profile(tmp_path, "fresh")
    vdir = tmp_path / "dir"
    vdir.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(TB_CONFIG.format(profile=profile, vdir=vdir), encoding="utf-8")
    (vdir / "a.ics").write_bytes(event("a@calsync.test", "From the vdir"))
    with DaemonProcess(tmp_path, config) as d:
        wait_for(lambda: d.runs("p") >= 1 and d.idle("p"), 20, "the startup sync")
        tb = Holder(profile)  # Thunderbird starts
        try:
            # Thunderbird edits an event: its database changes, the pair runs
            from calsync.stores.thunderbird.prefs import find_calendar

            cal = find_calendar(profile, "Home").id
            tb.sql(
                "UPDATE cal_events SET title = 'Renamed in Thunderbird' "
                f"WHERE cal_id = '{cal}' AND id = 'a@calsync.test'"
            )
            wait_for(
                lambda: b"Renamed in Thunderbird" in (vdir / "a.ics").read_bytes(),
                10,
                "Thunderbird's edit in the vdir",
            )
            # a change for Thunderbird while it runs waits in the queue
            (vdir / "b.ics").write_bytes(event("b@calsync.test", "For Thunderbird"))

            def queued() -> bool:
                waiting = d.status()["pairs"]["p"]["queued"]
                return bool(waiting.get("tb", {}).get("count") == 1)

            wait_for(queued, 10, "the change to wait for Thunderbird")
        finally:
            tb.stop()  # Thunderbird quits: the daemon writes what waited

        def written() -> bool:
            conn = sqlite3.connect(profile / "calendar-data" / "local.sqlite", timeout=5)
            try:
                ids = {r[0] for r in conn.execute("SELECT id FROM cal_events")}
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
            return "b@calsync.test" in ids

        wait_for(written, 10, "the queued change in Thunderbird's database")
        wait_for(lambda: not d.status()["pairs"]["p"]["queued"], 10, "an empty queue")
        log = d.logs()
    assert "thunderbird.quit store=tb" in log and 'trigger="Thunderbird quit (tb)' in log
