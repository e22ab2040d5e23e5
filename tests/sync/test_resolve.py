"""Deciding a logged conflict again (``sync.resolve``), and the runs log a pair keeps.

Each test makes a real conflict: a vdir and an .ics file synced once, the same
event edited on both sides, and a sync under the pair's policy.  The decision
is then checked in the files themselves, and in the sync after it (which must
carry it without a new conflict).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from calsync.config import Config, parse
from calsync.sync.history import History
from calsync.sync.resolve import resolve
from calsync.sync.restore import NothingSaved
from calsync.sync.runner import history_file, run_pair, status_file
from calsync.sync.status import RUNS_KEPT, StatusDB
from tests.conftest import event
from tests.sync.test_history import CONFIG as HISTORY_CONFIG

# test_history's pair (a vdir and an .ics file), with the conflict policy to choose
CONFIG = HISTORY_CONFIG.replace('conflict = "a-wins"', 'conflict = "{policy}"')
assert "{policy}" in CONFIG

OLDER, NEWER = "20250102T000000Z", "20250103T000000Z"


def conflicted(root: Path, policy: str) -> tuple[Config, dict[str, object]]:
    """A pair whose event x was edited on both sides ("On A" newer than "On B")
    and synced under ``policy``; the logged conflict."""
    cfg, errors = parse(CONFIG.format(root=root, policy=policy), root / "config.toml")
    assert not errors, errors
    (root / "a").mkdir()
    (root / "a" / "x.ics").write_bytes(event("x", "Base"))
    (root / "a" / "y.ics").write_bytes(event("y", "Other"))
    assert not run_pair(cfg, "p").errors
    (root / "a" / "x.ics").write_bytes(event("x", "On A", last_modified=NEWER))
    text = (root / "b.ics").read_bytes()
    edited = text.replace(b"SUMMARY:Base", b"SUMMARY:On B").replace(
        b"LAST-MODIFIED:20250101T000000Z\r\nDTSTART:20250301T100000Z\r\nDURATION:PT1H\r\n"
        b"SUMMARY:On B",
        b"LAST-MODIFIED:" + OLDER.encode() + b"\r\nDTSTART:20250301T100000Z\r\n"
        b"DURATION:PT1H\r\nSUMMARY:On B",
    )
    assert edited != text
    (root / "b.ics").write_bytes(edited)
    assert run_pair(cfg, "p").conflicts == 1
    h = History(history_file(cfg))
    try:
        (listed,) = h.conflicts()
        logged = h.conflict(int(listed["n"]))
    finally:
        h.close()
    assert logged is not None
    return cfg, logged


def summaries(root: Path) -> tuple[list[bytes], list[bytes]]:
    """The SUMMARY lines in store a (every file) and in store b."""
    a = [
        line
        for f in sorted((root / "a").glob("*.ics"))
        for line in f.read_bytes().splitlines()
        if line.startswith(b"SUMMARY:")
    ]
    b = [
        line for line in (root / "b.ics").read_bytes().splitlines() if line.startswith(b"SUMMARY:")
    ]
    return sorted(a), sorted(b)


def test_a_conflict_is_logged_with_both_versions(tmp_path: Path) -> None:
    _, logged = conflicted(tmp_path, "newest")
    assert logged["winner"] == "a" and logged["stores"] == {"a": "a", "b": "b"}
    sides = logged["sides"]
    assert isinstance(sides, dict) and set(sides) == {"a", "b"}  # no merge: no third version
    assert "SUMMARY:On A" in sides["a"]["content"] and sides["a"]["store"] == "a"
    assert "SUMMARY:On B" in sides["b"]["content"] and sides["b"]["store"] == "b"
    assert logged["resolved"] is None


def test_keep_the_loser_puts_it_on_both_sides_and_the_next_sync_keeps_it(tmp_path: Path) -> None:
    cfg, logged = conflicted(tmp_path, "newest")
    assert summaries(tmp_path) == ([b"SUMMARY:On A", b"SUMMARY:Other"],) * 2
    done = resolve(cfg, int(logged["n"]), "b")
    assert done.changed == ["a", "b"] and done.uid == "x"
    assert summaries(tmp_path) == ([b"SUMMARY:On B", b"SUMMARY:Other"],) * 2
    after = run_pair(cfg, "p")
    assert (after.conflicts, after.changes, after.errors) == (0, 0, [])
    assert summaries(tmp_path) == ([b"SUMMARY:On B", b"SUMMARY:Other"],) * 2
    h = History(history_file(cfg))
    try:
        # what the decision replaced is kept, and the decision is logged
        assert [v.reason for v in h.versions("x")][:2] == ["resolve", "resolve"]
        assert b"On A" in h.versions("x")[0].content
        assert h.conflicts()[0]["resolved"]["keep"] == "b"
    finally:
        h.close()
    # deciding the same again writes nothing
    assert resolve(cfg, int(logged["n"]), "b").changed == []


def test_keep_one_side_deletes_the_copy_keep_both_made(tmp_path: Path) -> None:
    cfg, logged = conflicted(tmp_path, "keep-both")
    copy = b"SUMMARY:On B (conflict copy from b)"
    assert summaries(tmp_path) == ([b"SUMMARY:On A", copy, b"SUMMARY:Other"],) * 2
    assert str(logged["copy_uid"]).startswith("x-conflict-")
    resolve(cfg, int(logged["n"]), "a")
    assert summaries(tmp_path) == ([b"SUMMARY:On A", b"SUMMARY:Other"],) * 2
    after = run_pair(cfg, "p")
    assert (after.conflicts, after.changes, after.errors) == (0, 0, [])
    assert summaries(tmp_path) == ([b"SUMMARY:On A", b"SUMMARY:Other"],) * 2
    # and keeping both again brings the very same copy back (one, not two)
    resolve(cfg, int(logged["n"]), "both")
    assert summaries(tmp_path) == ([b"SUMMARY:On A", copy, b"SUMMARY:Other"],) * 2
    after = run_pair(cfg, "p")
    assert (after.conflicts, after.changes, after.errors) == (0, 0, [])
    assert len(list((tmp_path / "a").glob("*.ics"))) == 3


def test_keep_both_after_a_merge_keeps_each_whole_version(tmp_path: Path) -> None:
    cfg, logged = conflicted(tmp_path, "merge")
    sides = logged["sides"]
    assert isinstance(sides, dict)
    resolve(cfg, int(logged["n"]), "both")
    a, b = summaries(tmp_path)
    assert a == b == [b"SUMMARY:On A", b"SUMMARY:On B (conflict copy from b)", b"SUMMARY:Other"]
    after = run_pair(cfg, "p")
    assert (after.conflicts, after.changes, after.errors) == (0, 0, [])


def test_unknown_conflicts_and_choices_are_refused(tmp_path: Path) -> None:
    cfg, logged = conflicted(tmp_path, "newest")
    with pytest.raises(NothingSaved, match="no conflict number 999"):
        resolve(cfg, 999, "a")
    with pytest.raises(ValueError, match="keep must be one of a, b, both"):
        resolve(cfg, int(logged["n"]), "c")
    # a conflict an older calsync logged has no versions: said so, nothing written
    h = History(history_file(cfg))
    h.db.execute("DELETE FROM conflict_sides")
    h.close()
    before = summaries(tmp_path)
    with pytest.raises(NothingSaved, match="without its versions"):
        resolve(cfg, int(logged["n"]), "b")
    assert summaries(tmp_path) == before


def test_each_run_is_logged_with_its_duration_and_counts(tmp_path: Path) -> None:
    cfg, _ = conflicted(tmp_path, "newest")
    db = StatusDB(status_file(cfg, "p"))
    try:
        runs = db.runs()
        assert [(r.changes, r.conflicts, r.errors, r.outcome) for r in runs] == [
            (2, 0, 0, "ok"),  # x and y added to b
            (1, 1, 0, "ok"),  # b updated to a's newer x
        ]
        assert all(r.seconds > 0 for r in runs)
        assert runs[0].time <= runs[1].time <= time.time()
        # a bounded log: the oldest runs go
        for i in range(RUNS_KEPT + 5):
            db.record_run(float(i), 0.1, i, 0, 0, "ok")
        kept = db.runs()
        assert len(kept) == RUNS_KEPT and kept[-1].changes == RUNS_KEPT + 4
        assert [r.changes for r in db.runs(3)] == [RUNS_KEPT + 2, RUNS_KEPT + 3, RUNS_KEPT + 4]
    finally:
        db.close()
