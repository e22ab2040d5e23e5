"""An item calsync cannot parse is still an item.

Between stores that carry iCalendar text as it is (vdir, ics) it passes
through byte for byte: it syncs, updates and deletes like any other, and is
only left out of property merges (its conflicts go to ``merge_fallback``).  A
store that must understand it (Thunderbird, a vCalendar file) reports it as an
item error, naming it; nothing else is held up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import Item, ItemError
from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.vcs import VcsStore
from calsync.stores.vdir import VdirStore
from tests.conftest import event
from tests.stores.thunderbird.helpers import TEST_ID, make_profile, registry, store
from tests.sync.helpers import Pair, contents


def opaque(summary: str, *, modified: str = "20250101T000000Z", uid: str = "opaque") -> bytes:
    """An item with a line no producer bug explains: calsync cannot parse it."""
    return event(
        uid, summary, last_modified=modified, extra="<<< merged by hand, see notes >>>"
    ).replace(b"\r\n", b"\n")


def vdir(tmp: Path, name: str) -> VdirStore:
    return VdirStore(name, StoreContext(tmp / "cache" / name), tmp / name)


def test_the_fixture_cannot_be_parsed() -> None:
    item = Item.from_bytes(opaque("x"))
    with pytest.raises(ItemError):
        item.tree  # noqa: B018
    assert item.notes is None  # nothing repaired either: it is passed through


def test_it_syncs_updates_and_deletes_byte_for_byte(tmp_path: Path) -> None:
    a, b = vdir(tmp_path, "a"), vdir(tmp_path, "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("First"))
    (tmp_path / "a" / "fine.ics").write_bytes(event("fine", "Fine"))
    pair = Pair(a, b, tmp_path / "state")
    r = pair.sync()
    assert r.added_b == 2 and not r.errors
    assert (tmp_path / "b" / "opaque.ics").read_bytes() == opaque("First")
    # an edit on either side goes across as it is
    (tmp_path / "b" / "opaque.ics").write_bytes(opaque("Second"))
    r = pair.sync()
    assert r.updated_a == 1 and not r.errors
    assert (tmp_path / "a" / "opaque.ics").read_bytes() == opaque("Second")
    assert pair.sync().changes == 0
    # a delete too (the replaced and deleted versions are in history)
    (tmp_path / "a" / "opaque.ics").unlink()
    r = pair.sync()
    assert r.deleted_b == 1 and not r.errors
    assert not (tmp_path / "b" / "opaque.ics").exists()
    assert {v.reason for v in pair.history().versions("opaque")} == {"update", "remote-delete"}


def test_through_an_ics_file_and_back(tmp_path: Path) -> None:
    """vdir -> ics -> vdir: the ics file keeps the component's bytes, and the
    item is the same item on every side (its hash ignores the calendar around it)."""
    a, c = vdir(tmp_path, "a"), vdir(tmp_path, "c")
    b = IcsStore("b", StoreContext(tmp_path / "cache" / "b"), tmp_path / "b.ics")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("Via a file"))
    assert Pair(a, b, tmp_path / "s1").sync().added_b == 1
    assert Pair(b, c, tmp_path / "s2").sync().added_b == 1
    assert b"<<< merged by hand, see notes >>>" in (tmp_path / "b.ics").read_bytes()
    hashes = {contents(s)["opaque"].hash for s in (a, b, c)}
    assert len(hashes) == 1
    # a slow sync compares content afresh: the same item everywhere, nothing to do
    assert Pair(a, b, tmp_path / "s1").sync(mode="slow").changes == 0
    assert Pair(b, c, tmp_path / "s2").sync(mode="slow").changes == 0


@pytest.mark.parametrize(
    ("fallback", "winner"), [("a-wins", "On a"), ("b-wins", "On b"), ("newest", "On b")]
)
def test_its_conflicts_go_to_merge_fallback(tmp_path: Path, fallback: str, winner: str) -> None:
    a, b = vdir(tmp_path, "a"), vdir(tmp_path, "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("Base"))
    pair = Pair(a, b, tmp_path / "state", conflict="merge", merge_fallback=fallback)
    pair.sync()
    # b's copy is the newer one by LAST-MODIFIED, read from the lines of the text
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("On a", modified="20250102T000000Z"))
    (tmp_path / "b" / "opaque.ics").write_bytes(opaque("On b", modified="20250103T000000Z"))
    r = pair.sync()
    assert r.conflicts == 1 and not r.errors
    expected = opaque(
        winner, modified="20250103T000000Z" if winner == "On b" else "20250102T000000Z"
    )
    assert (tmp_path / "a" / "opaque.ics").read_bytes() == expected
    assert (tmp_path / "b" / "opaque.ics").read_bytes() == expected
    lost = [v for v in pair.history().versions("opaque") if v.reason == "conflict-loser"]
    assert len(lost) == 1 and winner.encode() not in lost[0].content
    assert pair.sync().changes == 0


def test_a_vcalendar_file_reports_it_and_takes_the_rest(tmp_path: Path) -> None:
    a = vdir(tmp_path, "a")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("Text"))
    (tmp_path / "a" / "fine.ics").write_bytes(event("fine", "Fine"))
    b = VcsStore("b", StoreContext(tmp_path / "cache" / "b"), tmp_path / "b.vcs")
    r = Pair(a, b, tmp_path / "state").sync()
    assert r.added_b == 1
    (err,) = r.errors
    assert (err.store, err.uid) == ("b", "opaque") and "vCalendar cannot carry it" in err.message
    assert "read from a opaque.ics" in err.message


def test_thunderbird_reports_it_and_takes_the_rest(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
    a = vdir(tmp_path, "a")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "opaque.ics").write_bytes(opaque("Text", uid="opaque@calsync.test"))
    (tmp_path / "a" / "fine.ics").write_bytes(event("fine@calsync.test", "Fine"))
    tb = store(profile, "calsync-test", tmp_path / "cache" / "tb")
    r = Pair(a, tb, tmp_path / "state").sync()
    assert r.added_b == 1
    (err,) = r.errors
    assert (err.store, err.uid) == ("tb", "opaque@calsync.test")
    assert "cannot be parsed, so not stored" in err.message
    tb2 = store(profile, "calsync-test", tmp_path / "cache" / "tb2")
    assert "fine@calsync.test" in tb2.list().versions
    assert "opaque@calsync.test" not in tb2.list().versions
