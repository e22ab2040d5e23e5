"""Crash safety of the Thunderbird store: SIGKILL at every crash point of the engine.

A Thunderbird calendar (copy of a real database) <-> vdir pair with edits,
deletes, adds and conflicts on both sides.  For every crash point a forked
child syncs and is killed there; then a normal sync recovers, and (when
Thunderbird "ran" during the sync) Thunderbird quits and one more sync writes
the queue.  Both sides must equal an uncrashed run, hold no duplicates, a
further sync must change nothing, and every version that existed before is
still in a store or in history.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from calsync.items import Item
from calsync.stores import StoreContext
from calsync.stores.thunderbird.prefs import find_calendar
from calsync.stores.thunderbird.store import ThunderbirdStore
from calsync.stores.vdir import VdirStore
from calsync.sync import engine as engine_module
from calsync.sync.history import History
from calsync.sync.status import StatusDB
from tests.conftest import event
from tests.stores.thunderbird.helpers import make_profile
from tests.stores.thunderbird.lockholder import Holder
from tests.sync.helpers import Pair, contents, edit, put, remove

N = 12


def stores(root: Path) -> tuple[ThunderbirdStore, VdirStore]:
    profile = root / "profile"
    a = ThunderbirdStore(
        "tb", StoreContext(root / "cache-a"), profile, find_calendar(profile, "Home")
    )
    b = VdirStore("dir", StoreContext(root / "cache-b"), root / "b", fsync="never")
    return a, b


def pair(root: Path) -> Pair:
    a, b = stores(root)
    return Pair(a, b, root / "state", conflict="merge", max_delete=1.0)


def sync(root: Path) -> engine_module.SyncResult:
    p = pair(root)
    try:
        return p.sync()
    finally:
        p.a.close()


def build(root: Path) -> None:
    make_profile(root, "fresh")
    (root / "b").mkdir()
    a, b = stores(root)
    a.list()
    for i in range(N):
        put(a if i % 2 else b, event(f"item-{i:02d}", f"Item {i}", extra=f"LOCATION:Room {i}"))
    a.close()
    assert sync(root).errors == []
    later = "20250301T000000Z"
    a, b = stores(root)
    edit(a, "item-00", event("item-00", "A edit 0", last_modified=later))
    edit(a, "item-01", event("item-01", "A edit 1", last_modified=later))
    remove(a, "item-02")
    put(a, event("new-a-0", "New on a"))
    edit(b, "item-03", event("item-03", "B edit 3", last_modified=later))
    edit(b, "item-04", event("item-04", "B edit 4", last_modified=later))
    remove(b, "item-05")
    put(b, event("new-b-0", "New on b"))
    for i in range(6, 8):  # both sides: mergeable conflicts
        edit(a, f"item-{i:02d}", event(f"item-{i:02d}", f"A side {i}", extra=f"LOCATION:Room {i}"))
        edit(b, f"item-{i:02d}", event(f"item-{i:02d}", f"Item {i}", extra=f"LOCATION:Hall {i}"))
    remove(a, "item-08")  # delete against an edit
    edit(b, "item-08", event("item-08", "Edited 8", last_modified=later))
    a.close()


def hashes(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    a, b = stores(root)
    try:
        return (
            {u: i.hash for u, i in contents(a).items()},
            {u: i.hash for u, i in contents(b).items()},
        )
    finally:
        a.close()


def history_hashes(root: Path) -> set[str]:
    h = History(root / "state" / "history.sqlite")
    try:
        return {v.hash or Item(v.content, v.uid).hash for v in h.versions()}
    finally:
        h.close()


def copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    a, b = stores(dest)
    status = StatusDB(dest / "state" / "status.sqlite")
    status.set_meta("identity.a", a.identity())
    status.set_meta("identity.b", b.identity())
    status.close()
    return dest


def run_child(root: Path, crash_at: int) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            engine_module._CRASH_AT = crash_at
            engine_module._crash_counter = 0
            sync(root)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def finish(root: Path, holder: Holder | None) -> list[str]:
    """Recover after a crash (Thunderbird quitting if it ran); the problems found."""
    problems = []
    recovery = sync(root)
    if recovery.errors or recovery.stopped:
        problems.append(f"recovery: {recovery.errors} {recovery.stopped}")
    if holder is not None:
        holder.stop()
        applied = sync(root)
        if applied.errors or applied.stopped or applied.changes:
            problems.append(f"applying the queue: {applied.to_json()}")
    return problems


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tb-crash")
    build(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
def test_kill_at_every_crash_point(template: Path, tmp_path: Path, running: bool) -> None:
    before = set(hashes(template)[0].values()) | set(hashes(template)[1].values())
    reference = copy(template, tmp_path / "reference")
    holder = Holder(reference / "profile") if running else None
    engine_module._CRASH_AT = 10**9
    engine_module._crash_counter = 0
    try:
        first = sync(reference)  # counts the crash points of the sync to be killed
        points = engine_module._crash_counter
    finally:
        engine_module._CRASH_AT = 0
        if holder is not None:
            holder.stop()
    assert first.errors == [] and first.conflicts == 2
    assert finish(reference, None) == []
    expected = hashes(reference)
    assert expected[0] == expected[1] and len(expected[0]) == N - 2 + 2
    assert points > 30, points
    failures: list[str] = []
    for k in range(1, points + 1):
        root = copy(template, tmp_path / f"k{k}")
        holder = Holder(root / "profile") if running else None
        try:
            code = run_child(root, k)
            problems = [] if code == -signal.SIGKILL else [f"child ended with {code}"]
            problems += finish(root, holder)
        finally:
            if holder is not None:
                holder.stop()
        got = hashes(root)
        if got[0] != got[1]:
            problems.append("sides differ")
        if got[0] != expected[0]:
            problems.append(
                f"differs from the uncrashed run: {sorted(set(got[0]) ^ set(expected[0]))}"
            )
        lost = before - set(got[0].values()) - set(got[1].values()) - history_hashes(root)
        if lost:
            problems.append(f"{len(lost)} versions lost")
        if sync(root).changes:
            problems.append("a further sync still changed something")
        if problems:
            failures.append(f"crash point {k}: {'; '.join(problems)}")
        shutil.rmtree(root)
    assert not failures, "\n".join(failures[:20])
    state = "running" if running else "stopped"
    print(f"Thunderbird {state}: {points} kill points, 0 lost, 0 duplicated")
