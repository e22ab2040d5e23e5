"""A palm store in two-way sync with a vdir, as a HotSync conduit would run.

The Palm side is changed by the Perl oracle the way a Palm changes its
databases (dirty flags on edits and adds, delete/archive flags on deletes);
the sync must carry both sides' adds, edits and deletes, then clear the
dirty flags and purge deleted records, and only then: a failed write or a
killed sync leaves the marks of everything not settled.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from calsync.items import Item
from calsync.stores import Listing, StoreContext, StoreError, StoreUnavailable
from calsync.stores.palm import pdb
from calsync.stores.palm.store import PalmStore
from calsync.stores.vdir import VdirStore
from calsync.sync import engine as engine_module
from calsync.sync.history import History
from calsync.sync.status import StatusDB
from tests.conftest import event
from tests.stores.palm import oracle
from tests.sync.helpers import Pair, contents, edit, put, remove

TIMED = {"start_hour": 9, "start_minute": 0, "end_hour": 10, "end_minute": 0}
EVENTS: list[dict[str, Any]] = [
    {
        "id": i,
        "day": i,
        "month": 4,
        "year": 2025,
        **TIMED,
        "description": f"Palm event {i}",
        "attributes": {"dirty": 1},
    }
    for i in range(1, 7)
]
TODOS: list[dict[str, Any]] = [
    {"id": 50 + i, "description": f"Palm task {i}", "priority": i, "attributes": {"dirty": 1}}
    for i in range(1, 3)
]
VTODO = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n"
    "DTSTAMP:20250101T000000Z\r\nSUMMARY:{summary}\r\nDUE;VALUE=DATE:20250501\r\n"
    "PRIORITY:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)

pytestmark = pytest.mark.peer  # the Perl oracle (libpalm-perl)


def stores(root: Path) -> tuple[PalmStore, VdirStore]:
    palm = PalmStore("palm", StoreContext(root / "cache-palm"), root / "palm")
    vdir = VdirStore("vdir", StoreContext(root / "cache-vdir"), root / "vdir", fsync="never")
    return palm, vdir


def pair(root: Path) -> Pair:
    palm, vdir = stores(root)
    return Pair(palm, vdir, root / "state", conflict="merge", max_delete=1.0)


def summaries(store: Any) -> dict[str, str]:
    return {
        uid: (it.master().value("SUMMARY") or "")  # type: ignore[union-attr]
        for uid, it in contents(store).items()
    }


def flags(root: Path) -> dict[str, dict[int, int]]:
    """Record attributes of each database (unique id -> attribute byte)."""
    out = {}
    for name in ("DatebookDB", "ToDoDB"):
        path = root / "palm" / f"{name}.pdb"
        if path.exists():
            out[name] = {r.uid: r.attrs for r in pdb.parse(path.read_bytes()).records}
    return out


def marked(root: Path) -> set[tuple[str, int]]:
    """Records still dirty or deleted."""
    return {
        (name, uid)
        for name, recs in flags(root).items()
        for uid, attrs in recs.items()
        if attrs & (pdb.DIRTY | pdb.DELETED)
    }


def build(root: Path) -> None:
    oracle.write(root / "palm" / "DatebookDB.pdb", "datebook", EVENTS)
    oracle.write(root / "palm" / "ToDoDB.pdb", "todo", TODOS)
    _, vdir = stores(root)
    for i in range(1, 4):
        put(vdir, event(f"desk-{i}@example.org", f"Desk event {i}", start=f"2025041{i}T080000Z"))
    put(vdir, VTODO.format(uid="desk-todo@example.org", summary="Desk task").encode())


def palm_edits(root: Path) -> None:
    """What a Palm user does between syncs: an edit, a delete, an archive, an add."""
    date_db = root / "palm" / "DatebookDB.pdb"
    oracle.edit(
        date_db,
        set={1: {"description": "Palm event 1 (edited on the Palm)"}},
        delete=[2],
        archive=[3],
        add=[
            {
                "id": 90,
                "day": 20,
                "month": 4,
                "year": 2025,
                **TIMED,
                "description": "Added on the Palm",
            }
        ],
    )
    oracle.edit(root / "palm" / "ToDoDB.pdb", set={51: {"completed": 1}})


def desk_edits(root: Path) -> None:
    _, vdir = stores(root)
    by_summary = {s: u for u, s in summaries(vdir).items()}
    uid = by_summary["Palm event 4"]
    edit(vdir, uid, event(uid, "Palm event 4 (edited on the desk)", start="20250404T070000Z"))
    remove(vdir, by_summary["Palm event 5"])
    remove(vdir, "desk-2@example.org")
    put(vdir, event("desk-9@example.org", "Added on the desk", start="20250425T080000Z"))


def test_two_way_sync_with_a_vdir(tmp_path: Path) -> None:
    build(tmp_path)
    assert marked(tmp_path) == {("DatebookDB", i) for i in range(1, 7)} | {
        ("ToDoDB", 51),
        ("ToDoDB", 52),
    }
    first = pair(tmp_path).sync()
    assert first.errors == [] and first.stopped is None
    palm, vdir = stores(tmp_path)
    assert summaries(palm) == summaries(vdir)
    assert len(summaries(palm)) == 12
    assert marked(tmp_path) == set()  # a good sync leaves every record clean

    palm_edits(tmp_path)
    desk_edits(tmp_path)
    assert ("DatebookDB", 2) in marked(tmp_path) and ("DatebookDB", 3) in marked(tmp_path)
    second = pair(tmp_path).sync()
    assert second.errors == [] and second.stopped is None
    palm, vdir = stores(tmp_path)
    got = summaries(vdir)
    assert got == summaries(palm)
    names = set(got.values())
    assert "Palm event 1 (edited on the Palm)" in names
    assert "Palm event 2" not in names and "Palm event 3" not in names  # deleted, archived
    assert "Added on the Palm" in names
    assert "Palm event 4 (edited on the desk)" in names
    assert "Palm event 5" not in names and "Desk event 2" not in names
    assert "Added on the desk" in names
    todos = {it.master().value("SUMMARY"): it for it in contents(vdir).values()}  # type: ignore[union-attr]
    assert todos["Palm task 1"].master().value("STATUS") == "COMPLETED"  # type: ignore[union-attr]
    recs = oracle.records(tmp_path / "palm" / "DatebookDB.pdb")
    assert {r["description"] for r in recs.values()} == set(
        v for v in names if not v.startswith(("Palm task", "Desk task"))
    )
    assert marked(tmp_path) == set()  # edits clean, deleted and archived records purged
    assert 2 not in recs and 3 not in recs
    assert pair(tmp_path).sync().changes == 0


class FailingVdir(VdirStore):
    """A vdir whose writes of some items fail."""

    fail: ClassVar[set[str]] = set()

    def update(self, id: str, item: Item, version: str) -> str:
        if (item.master().value("SUMMARY") or "") in self.fail:  # type: ignore[union-attr]
            raise self.error(StoreError, "disk on fire", id)
        return super().update(id, item, version)

    def delete(self, id: str, version: str) -> None:
        raise self.error(StoreError, "deletes fail today", id)


def test_marks_of_what_failed_to_sync_stay(tmp_path: Path) -> None:
    build(tmp_path)
    assert pair(tmp_path).sync().errors == []
    palm_edits(tmp_path)
    palm, _ = stores(tmp_path)
    vdir = FailingVdir("vdir", StoreContext(tmp_path / "cache-vdir"), tmp_path / "vdir")
    FailingVdir.fail = {"Palm event 1 (edited on the Palm)"}
    result = Pair(palm, vdir, tmp_path / "state", max_delete=1.0).sync()
    assert len(result.errors) == 3  # the edit and the two deletions could not be carried
    assert marked(tmp_path) == {("DatebookDB", 1), ("DatebookDB", 2), ("DatebookDB", 3)}
    attrs = flags(tmp_path)["DatebookDB"]
    assert attrs[3] & pdb.ARCHIVE  # still an archived record for the next sync
    assert not attrs[90] & pdb.DIRTY and not flags(tmp_path)["ToDoDB"][51] & pdb.DIRTY
    # the next good sync settles them
    second = pair(tmp_path).sync()
    assert second.errors == []
    assert marked(tmp_path) == set()
    _, plain = stores(tmp_path)
    assert "Palm event 1 (edited on the Palm)" in summaries(plain).values()


class UnreachableVdir(VdirStore):
    def list(self) -> Listing:
        raise self.error(StoreUnavailable, "the disk is gone")


def test_a_stopped_sync_clears_nothing(tmp_path: Path) -> None:
    build(tmp_path)
    before = flags(tmp_path)
    palm, _ = stores(tmp_path)
    vdir = UnreachableVdir("vdir", StoreContext(tmp_path / "cache-vdir"), tmp_path / "vdir")
    result = Pair(palm, vdir, tmp_path / "state").sync()
    assert result.stopped
    assert flags(tmp_path) == before
    assert marked(tmp_path)


# -- kill -9 at every crash point ---------------------------------------------------


def run_child(root: Path, crash_at: int) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            engine_module._CRASH_AT = crash_at
            engine_module._crash_counter = 0
            pair(root).sync()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    palm, vdir = stores(dest)
    status = StatusDB(dest / "state" / "status.sqlite")
    status.set_meta("identity.a", palm.identity())
    status.set_meta("identity.b", vdir.identity())
    status.close()
    return dest


def settled(root: Path) -> dict[str, str]:
    status = StatusDB(root / "state" / "status.sqlite")
    try:
        return {r.a_id: r.a_ver for r in status.rows().values()}
    finally:
        status.close()


def record_versions(root: Path) -> dict[str, str]:
    palm, _ = stores(root)
    return palm.list().versions


@pytest.mark.slow
def test_kill_at_every_crash_point(tmp_path: Path) -> None:
    template = tmp_path / "template"
    build(template)
    assert pair(template).sync().errors == []
    palm_edits(template)
    desk_edits(template)
    reference = copy(template, tmp_path / "reference")
    assert pair(reference).sync().errors == []
    expected = summaries(stores(reference)[1])
    before_marks = marked(template)
    before = {i.hash for s in stores(template) for i in contents(s).values()}
    engine_module._CRASH_AT = 10**9
    engine_module._crash_counter = 0
    try:
        pair(copy(template, tmp_path / "count")).sync()
        points = engine_module._crash_counter
    finally:
        engine_module._CRASH_AT = 0
    assert points > 20, points
    problems: list[str] = []
    for k in range(1, points + 1):
        root = copy(template, tmp_path / f"k{k}")
        code = run_child(root, k)
        assert code == -signal.SIGKILL, f"crash point {k}: child ended with {code}"
        # never a mark cleared for what the status does not hold
        status_now, versions = settled(root), record_versions(root)
        for name, uid in before_marks - marked(root):
            id = f"{name}-{uid}"
            if id in versions and status_now.get(id) != versions[id]:
                problems.append(f"{k}: {id} made clean, its version not in the status")
            if id not in versions and id in status_now:
                problems.append(f"{k}: {id} purged while the status holds it")
        recovery = pair(root).sync()
        palm, vdir = stores(root)
        if recovery.errors or recovery.stopped:
            problems.append(f"{k}: recovery {recovery.errors} {recovery.stopped}")
        if summaries(palm) != summaries(vdir) or summaries(vdir) != expected:
            problems.append(f"{k}: sides differ or differ from the uncrashed run")
        history = History(root / "state" / "history.sqlite")
        kept = {v.hash or Item(v.content, v.uid).hash for v in history.versions()}
        history.close()
        now = {i.hash for s in (palm, vdir) for i in contents(s).values()}
        if before - now - kept:
            problems.append(f"{k}: {len(before - now - kept)} versions lost")
        if marked(root):
            problems.append(f"{k}: marks left after the recovery sync: {marked(root)}")
        if pair(root).sync().changes:
            problems.append(f"{k}: a further sync still changed something")
        shutil.rmtree(root)
    assert problems == []
