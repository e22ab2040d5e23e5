"""Crash safety: SIGKILL the sync at every crash point, then sync again.

A 200-item ics <-> vdir pair with adds, edits, deletes, conflicts and
delete-vs-edit on both sides.  For every crash point the engine passes
(before/after each action, each store write, each status commit, each flush),
a forked child runs the sync and is killed there with SIGKILL; the parent then
syncs normally and checks: both sides equal, equal to an uncrashed run, no
duplicates, a further sync does nothing, and every version that existed before
the sync is still in a store or in history.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from calsync.items import Item
from calsync.stores import StoreContext, _forked
from calsync.stores.ics import IcsStore
from calsync.stores.vdir import VdirStore
from calsync.sync import engine as engine_module
from calsync.sync.history import History
from calsync.sync.status import StatusDB
from tests.conftest import event
from tests.sync.helpers import Pair, contents, edit, put, remove

N = 200


def stores(root: Path) -> tuple[IcsStore, VdirStore]:
    a = IcsStore("a", StoreContext(root / "cache-a"), root / "a.ics")
    # SIGKILL, not power loss, is tested here: no need to sync the filesystem
    b = VdirStore("b", StoreContext(root / "cache-b"), root / "b", fsync="never")
    return a, b


def pair(root: Path) -> Pair:
    a, b = stores(root)
    return Pair(a, b, root / "state", conflict="merge", max_delete=1.0)


def build_scenario(root: Path) -> None:
    a, b = stores(root)
    a.list()
    for i in range(N):
        target = a if i % 2 else b
        put(target, event(f"item-{i:03d}", f"Item {i}", extra=f"LOCATION:Room {i}"))
    assert pair(root).sync().errors == []
    later = "20250301T000000Z"
    # a: 20 edits, 10 deletes, 15 adds
    for i in range(0, 20):
        edit(a, f"item-{i:03d}", event(f"item-{i:03d}", f"A edit {i}", last_modified=later))
    for i in range(20, 30):
        remove(a, f"item-{i:03d}")
    for i in range(15):
        put(a, event(f"new-a-{i}", f"New on a {i}"))
    # b: 20 edits, 10 deletes, 15 adds
    for i in range(30, 50):
        edit(b, f"item-{i:03d}", event(f"item-{i:03d}", f"B edit {i}", last_modified=later))
    for i in range(50, 60):
        remove(b, f"item-{i:03d}")
    for i in range(15):
        put(b, event(f"new-b-{i}", f"New on b {i}"))
    # conflicts: same item edited on both sides (some mergeable, some overlapping)
    for i in range(60, 70):
        edit(
            a,
            f"item-{i:03d}",
            event(
                f"item-{i:03d}",
                f"A side {i}",
                extra=f"LOCATION:Room {i}",
                last_modified="20250401T000000Z",
            ),
        )
        extra = f"LOCATION:Hall {i}" if i % 2 else f"LOCATION:Room {i}"
        summary = f"Item {i}" if i % 2 else f"B side {i}"
        edit(
            b,
            f"item-{i:03d}",
            event(f"item-{i:03d}", summary, extra=extra, last_modified="20250402T000000Z"),
        )
    # delete on one side, edit on the other
    for i in range(70, 75):
        remove(a, f"item-{i:03d}")
        edit(b, f"item-{i:03d}", event(f"item-{i:03d}", f"Edited {i}", last_modified=later))


def snapshot(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    a, b = stores(root)
    return (
        {u: i.hash for u, i in contents(a).items()},
        {u: i.hash for u, i in contents(b).items()},
    )


def all_versions(root: Path) -> set[str]:
    a, b = stores(root)
    return {i.hash for i in contents(a).values()} | {i.hash for i in contents(b).values()}


def history_hashes(root: Path) -> set[str]:
    h = History(root / "state" / "history.sqlite")
    try:
        return {v.hash or Item(v.content, v.uid).hash for v in h.versions()}
    finally:
        h.close()


def run_child(root: Path, crash_at: int, *, helpers: bool = False) -> int:
    """Sync in a forked child that SIGKILLs itself at crash point ``crash_at``.

    ``helpers``: the sync may fork helpers as a one-shot ``calsync sync`` does
    (from 4 items on, so this scenario's vdir reads and adds use them).
    """
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            if helpers:
                _forked.allow()
                _forked.MINIMUM = 4
            engine_module._CRASH_AT = crash_at
            engine_module._crash_counter = 0
            engine_module.CHECKPOINT_EVERY = 25
            pair(root).sync()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash-template")
    build_scenario(root)
    return root


def _link_or_copy(src: str, dst: str) -> None:
    # calendar files are only ever replaced by rename, never written in place, so a
    # hard link is a faithful (and fast, same-inode) copy; SQLite files are copied
    if ".sqlite" in src:
        shutil.copy2(src, dst)
    else:
        os.link(src, dst)


def copy(template: Path, dest: Path) -> Path:
    """A copy of the scenario, with the status told that the stores moved with it."""
    shutil.copytree(template, dest, copy_function=_link_or_copy)
    a, b = stores(dest)
    status = StatusDB(dest / "state" / "status.sqlite")
    status.set_meta("identity.a", a.identity())
    status.set_meta("identity.b", b.identity())
    status.close()
    return dest


def count_points(template: Path, tmp: Path) -> int:
    root = copy(template, tmp / "count")
    engine_module._CRASH_AT = 10**9
    engine_module._crash_counter = 0
    old = engine_module.CHECKPOINT_EVERY
    engine_module.CHECKPOINT_EVERY = 25
    try:
        pair(root).sync()
        return engine_module._crash_counter
    finally:
        engine_module._CRASH_AT = 0
        engine_module.CHECKPOINT_EVERY = old


CHUNKS = 4


@pytest.mark.slow
@pytest.mark.parametrize("helpers", [False, True], ids=["serial", "forked-helpers"])
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_kill_at_every_crash_point(
    template: Path, tmp_path: Path, chunk: int, helpers: bool
) -> None:
    """With forked helpers the killed sync's helper dies with it (no orphan
    writing on during the recovery sync) and what it wrote is matched, not copied."""
    reference = copy(template, tmp_path / "reference")
    before = all_versions(template)
    result = pair(reference).sync()
    assert result.errors == [] and result.conflicts == 10
    expected = snapshot(reference)
    assert expected[0] == expected[1]
    points = count_points(template, tmp_path)
    assert points > 300, points
    failures: list[str] = []
    for k in range(1 + chunk, points + 1, CHUNKS):
        root = copy(template, tmp_path / f"k{k}")
        code = run_child(root, k, helpers=helpers)
        assert code == -signal.SIGKILL, f"crash point {k}: child ended with {code}"
        recovery = pair(root).sync()
        got = snapshot(root)
        problems = []
        if recovery.errors or recovery.stopped:
            problems.append(f"recovery errors {recovery.errors} {recovery.stopped}")
        if got[0] != got[1]:
            problems.append("sides differ")
        if got[0] != expected[0]:
            changed = [u for u in got[0] if got[0].get(u) != expected[0].get(u)]
            missing = sorted(set(got[0]) ^ set(expected[0]))
            problems.append(f"differs from uncrashed run: {missing} / changed {changed}")
        lost = before - set(got[0].values()) - set(got[1].values()) - history_hashes(root)
        if lost:
            problems.append(f"{len(lost)} versions lost")
        if pair(root).sync().changes:
            problems.append("a further sync still changed something")
        if problems:
            failures.append(f"crash point {k}: {'; '.join(problems)}")
        shutil.rmtree(root)
    assert not failures, "\n".join(failures[:20])
    print(
        f"crash test chunk {chunk} ({'forked helpers' if helpers else 'serial'}): "
        f"{len(range(1 + chunk, points + 1, CHUNKS))} of {points} "
        "kill points, 0 lost, 0 duplicated"
    )
