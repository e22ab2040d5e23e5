"""The engine's cooperative cancel: stop between two actions, lose nothing, converge."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.config import parse
from calsync.sync.engine import INTERRUPTED
from calsync.sync.runner import run_pair
from calsync.sync.status import StatusDB
from tests.conftest import event

CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.src]
type = "vdir"
path = "{tmp}/src"
create = true
[stores.dst]
type = "{kind}"
path = "{tmp}/{dst}"
[pairs.p]
a = "src"
b = "dst"
"""


def count_items(tmp: Path, kind: str) -> int:
    if kind == "vdir":
        return len(list((tmp / "dst").iterdir()))
    path = tmp / "dst.ics"
    return path.read_bytes().count(b"BEGIN:VEVENT") if path.exists() else 0


@pytest.mark.parametrize("kind", ["vdir", "ics"])
def test_cancel_stops_at_a_safe_point_and_the_next_run_converges(tmp_path: Path, kind: str) -> None:
    (tmp_path / "src").mkdir()
    if kind == "vdir":
        (tmp_path / "dst").mkdir()
    for i in range(40):
        (tmp_path / "src" / f"e{i}.ics").write_bytes(event(f"e{i}", f"Event {i}"))
    cfg, errors = parse(
        CONFIG.format(tmp=tmp_path, kind=kind, dst="dst" if kind == "vdir" else "dst.ics")
    )
    assert not errors
    asked = 0

    def cancel() -> bool:
        nonlocal asked
        asked += 1
        return asked > 15  # after 15 actions

    first = run_pair(cfg, "p", cancel=cancel)
    assert first.stopped and first.stopped.startswith(INTERRUPTED)
    assert "25 of 40 action(s) left" in first.stopped
    assert first.added_b == 15 and not first.errors
    # what was done is durable and recorded (the buffered .ics file was written at the
    # safe point), what was not is simply left for the next run
    assert count_items(tmp_path, kind) == 15
    status = StatusDB(cfg.state_dir / "pairs" / "p.sqlite")
    try:
        assert status.count() == 15
    finally:
        status.close()
    second = run_pair(cfg, "p")
    assert not second.stopped and second.added_b == 25 and second.added_a == 0
    assert count_items(tmp_path, kind) == 40
    third = run_pair(cfg, "p")
    assert third.changes == 0
