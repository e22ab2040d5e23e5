"""History: every overwritten version is kept, restorable, and pruned after retention."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from calsync.config import parse
from calsync.items import Item
from calsync.sync.engine import HISTORY_BATCH
from calsync.sync.history import History
from calsync.sync.packing import pack
from calsync.sync.restore import restore
from calsync.sync.runner import history_file, run_pair
from tests.conftest import event

CONFIG = """
[general]
state_dir = "{root}/state"
[history]
retention_days = 30
[stores.a]
type = "vdir"
path = "{root}/a"
create = true
[stores.b]
type = "ics"
path = "{root}/b.ics"
[pairs.p]
a = "a"
b = "b"
conflict = "a-wins"
"""


def config(root: Path):  # type: ignore[no-untyped-def]
    cfg, errors = parse(CONFIG.format(root=root), root / "config.toml")
    assert not errors
    return cfg


def test_restore_a_chosen_version(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ics").write_bytes(event("x", "Version 1"))
    (tmp_path / "a" / "y.ics").write_bytes(event("y", "Other"))
    run_pair(cfg, "p")
    for n in (2, 3):
        (tmp_path / "a" / "x.ics").write_bytes(event("x", f"Version {n}"))
        assert run_pair(cfg, "p").updated_b == 1
    h = History(history_file(cfg))
    versions = h.versions("x")
    h.close()
    assert [v.reason for v in versions] == ["update", "update"]
    assert b"Version 2" in versions[0].content and b"Version 1" in versions[1].content
    oldest = versions[1]
    restored, store = restore(cfg, "x", oldest.n, "b")
    assert restored.n == oldest.n and store == "b"
    assert b"SUMMARY:Version 1" in (tmp_path / "b.ics").read_bytes()
    # what the restore overwrote is itself kept
    h = History(history_file(cfg))
    assert h.versions("x")[0].reason == "restore"
    assert b"Version 3" in h.versions("x")[0].content
    h.close()
    # and the next sync spreads the restored version
    r = run_pair(cfg, "p")
    assert r.updated_a == 1
    assert b"SUMMARY:Version 1" in (tmp_path / "a" / "x.ics").read_bytes()


def test_retention_prunes_old_versions(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    h = History(history_file(cfg))
    h.record(uid="old", store="a", pair="p", reason="update", content=event("old"))
    h.record(uid="new", store="a", pair="p", reason="update", content=event("new"))
    h.db.execute("UPDATE versions SET time = ? WHERE uid = 'old'", (time.time() - 31 * 86400,))
    assert h.prune(cfg.retention_days) == 1
    assert [v.uid for v in h.versions()] == ["new"]
    h.close()


def test_many_updates_and_deletes_keep_every_replaced_version(tmp_path: Path) -> None:
    """More updates and deletes than one history batch (engine.HISTORY_BATCH): each
    replaced or deleted version is in history exactly once."""
    cfg = config(tmp_path)
    a = tmp_path / "a"
    a.mkdir()
    n = HISTORY_BATCH + 30
    for i in range(n):
        (a / f"e{i}.ics").write_bytes(event(f"e{i}", f"Old {i}"))
    run_pair(cfg, "p")
    for i in range(n):
        if i % 3:
            (a / f"e{i}.ics").write_bytes(event(f"e{i}", f"New {i}"))
        else:
            (a / f"e{i}.ics").unlink()
    result = run_pair(cfg, "p")
    assert result.updated_b + result.deleted_b == n and not result.errors
    h = History(history_file(cfg))
    versions = h.versions()
    h.close()
    assert len(versions) == n
    assert {v.uid for v in versions} == {f"e{i}" for i in range(n)}
    for v in versions:
        i = int(v.uid[1:])
        assert v.reason == ("remote-delete" if i % 3 == 0 else "update")
        assert f"SUMMARY:Old {i}\r\n".encode() in v.content
        # each is the status's base as it was stored, and its hash is the content's
        assert v.content == event(f"e{i}", f"Old {i}")
        assert v.hash == Item(v.content, v.uid).hash


def test_history_keeps_packed_content_as_it_is_and_needs_some_content(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    blob = pack(event("x", "Packed"))
    h.record(uid="x", store="a", pair="p", reason="update", packed=blob)
    assert h.db.execute("SELECT content FROM versions").fetchone()[0] == blob
    assert h.versions("x")[0].content == event("x", "Packed")
    with pytest.raises(TypeError):
        h.record(uid="y", store="a", pair="p", reason="update")
    h.close()
