"""The watchers in-process: what counts as a change, debouncing, Thunderbird quitting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from calsync.config import parse
from calsync.gateway.watch import Watcher, targets_for
from tests.conftest import event


def config(tmp: Path, extra: str = "") -> object:
    (tmp / "dir").mkdir()
    text = f"""
[stores.dir]
type = "vdir"
path = "{tmp / "dir"}"
create = true
[stores.file]
type = "ics"
path = "{tmp / "file.ics"}"
[stores.remote]
type = "memory"
[pairs.p]
a = "dir"
b = "file"
{extra}
"""
    cfg, errors = parse(text)
    assert not errors, errors
    return cfg


def test_what_is_watched(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (vdir,), _ = targets_for(cfg, "dir")  # type: ignore[arg-type]
    assert vdir.directory == tmp_path / "dir" and vdir.matches("x.ics")
    assert not vdir.matches(".calsync-1-2.tmp") and not vdir.matches("notes.txt")
    (ics,), _ = targets_for(cfg, "file")  # type: ignore[arg-type]
    assert ics.directory == tmp_path and ics.matches("file.ics") and not ics.matches("other.ics")
    assert targets_for(cfg, "remote") == ([], None)  # type: ignore[arg-type]


def test_bursts_are_debounced_and_reads_ignored(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    calls: list[tuple[float, str, str]] = []

    async def scenario() -> None:
        w = Watcher(cfg, lambda store, why: calls.append((time.monotonic(), store, why)))  # type: ignore[arg-type]
        await w.start()
        try:
            await asyncio.sleep(0.2)
            start = time.monotonic()
            for i in range(30):  # a burst: one trigger
                (tmp_path / "dir" / f"e{i}.ics").write_bytes(event(f"e{i}"))
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.5)
            assert [c[1] for c in calls] == ["dir"], calls
            assert calls[0][0] - start < 1.5, "within MAX_DELAY of the first event"
            calls.clear()
            # reading files and writing temporary dot-files are not changes
            for p in (tmp_path / "dir").iterdir():
                p.read_bytes()
            (tmp_path / "dir" / ".calsync-1-1.tmp").write_bytes(b"x")
            (tmp_path / "unrelated.ics").write_bytes(b"x")
            await asyncio.sleep(1.0)
            assert calls == []
            # the .ics file, replaced atomically (rename), is seen
            tmp = tmp_path / ".file.ics.tmp"
            tmp.write_bytes(event("f"))
            tmp.replace(tmp_path / "file.ics")
            await asyncio.sleep(1.0)
            assert [c[1] for c in calls] == ["file"]
        finally:
            await w.stop()

    asyncio.run(scenario())


def test_thunderbird_quitting_is_noticed(tmp_path: Path) -> None:
    from tests.stores.thunderbird.helpers import make_profile
    from tests.stores.thunderbird.lockholder import Holder

    profile = make_profile(tmp_path, "fresh")
    cfg = config(
        tmp_path,
        f'[stores.tb]\ntype = "thunderbird"\nprofile = "{profile}"\ncalendar = "Home"\n'
        '[pairs.t]\na = "tb"\nb = "dir"\n',
    )
    targets, found = targets_for(cfg, "tb")  # type: ignore[arg-type]
    assert found == profile
    assert {t.kind for t in targets} == {"data", "lock"}
    calls: list[tuple[str, str]] = []
    tb = Holder(profile)

    async def scenario() -> None:
        w = Watcher(cfg, lambda store, why: calls.append((store, why)), stores=["tb"])  # type: ignore[arg-type]
        await w.start()
        try:
            assert w.tb_running == {"tb": True}
            await asyncio.to_thread(tb.stop)
            for _ in range(40):
                if ("tb", "Thunderbird quit") in calls:
                    break
                await asyncio.sleep(0.1)
            assert ("tb", "Thunderbird quit") in calls, calls
        finally:
            await w.stop()

    try:
        asyncio.run(scenario())
    finally:
        tb.stop()
