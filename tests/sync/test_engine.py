"""The engine end to end on real local stores: adds, edits, deletes, conflicts, guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.memory import MemoryStore
from calsync.stores.vdir import VdirStore
from tests.conftest import event
from tests.sync.helpers import Pair, contents, edit, put, remove, summaries


def make(kind: str, tmp: Path, name: str):  # type: ignore[no-untyped-def]
    ctx = StoreContext(cache_dir=tmp / "cache" / name)
    if kind == "memory":
        return MemoryStore(name, ctx)
    if kind == "vdir":
        return VdirStore(name, ctx, tmp / name)
    return IcsStore(name, ctx, tmp / f"{name}.ics")


KINDS = [("ics", "vdir"), ("vdir", "vdir"), ("memory", "ics"), ("ics", "ics")]


@pytest.fixture(params=KINDS, ids=["-".join(k) for k in KINDS])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Pair:
    ka, kb = request.param
    return Pair(
        make(ka, tmp_path, "a"), make(kb, tmp_path, "b"), tmp_path / "state", conflict="newest"
    )


def test_first_sync_copies_both_ways(pair: Pair) -> None:
    put(pair.a, event("one", "One"))
    put(pair.b, event("two", "Two"))
    r = pair.sync()
    assert (r.added_a, r.added_b, r.errors) == (1, 1, [])
    assert summaries(pair.a) == summaries(pair.b) == {"one": "One", "two": "Two"}
    again = pair.sync()
    assert again.changes == 0 and not again.errors


def test_identical_items_are_matched_not_duplicated(pair: Pair) -> None:
    put(pair.a, event("same", "Same"))
    put(pair.b, event("same", "Same").replace(b"PRODID:-//calsync tests//EN", b"PRODID:other"))
    r = pair.sync()
    assert r.changes == 0 and r.conflicts == 0
    assert set(contents(pair.a)) == set(contents(pair.b)) == {"same"}


def test_edit_travels_each_way(pair: Pair) -> None:
    put(pair.a, event("x", "Old"))
    pair.sync()
    edit(pair.a, "x", event("x", "New on a"))
    r = pair.sync()
    assert r.updated_b == 1
    assert summaries(pair.b)["x"] == "New on a"
    edit(pair.b, "x", event("x", "New on b"))
    r = pair.sync()
    assert r.updated_a == 1
    assert summaries(pair.a)["x"] == "New on b"


def test_delete_travels_and_is_kept_in_history(pair: Pair) -> None:
    put(pair.a, event("gone", "Gone"))
    put(pair.a, event("stays", "Stays"))
    pair.sync()
    remove(pair.b, "gone")
    r = pair.sync()
    assert r.deleted_a == 1
    assert set(contents(pair.a)) == {"stays"}
    h = pair.history()
    saved = h.versions("gone")
    h.close()
    assert len(saved) == 1 and saved[0].reason == "remote-delete"
    assert b"SUMMARY:Gone" in saved[0].content


def test_delete_against_edit_keeps_the_edit(pair: Pair) -> None:
    put(pair.a, event("other", "Other"))  # so that a is not emptied (on_empty guard)
    put(pair.a, event("x", "Original"))
    pair.sync()
    remove(pair.a, "x")
    edit(pair.b, "x", event("x", "Edited"))
    r = pair.sync()
    assert r.added_a == 1 and r.deleted_b == 0
    assert summaries(pair.a) == summaries(pair.b) == {"x": "Edited", "other": "Other"}


def test_conflict_newest_wins_and_loser_is_saved(pair: Pair) -> None:
    put(pair.a, event("x", "Original"))
    pair.sync()
    edit(pair.a, "x", event("x", "A edit", last_modified="20250201T000000Z"))
    edit(pair.b, "x", event("x", "B edit", last_modified="20250301T000000Z"))
    r = pair.sync()
    assert r.conflicts == 1
    assert summaries(pair.a) == summaries(pair.b) == {"x": "B edit"}
    h = pair.history()
    losers = [v for v in h.versions("x") if v.reason == "conflict-loser"]
    h.close()
    assert len(losers) == 1 and b"SUMMARY:A edit" in losers[0].content


def test_equal_edits_on_both_sides_are_not_a_conflict(pair: Pair) -> None:
    put(pair.a, event("x", "Original"))
    pair.sync()
    edit(pair.a, "x", event("x", "Same edit"))
    edit(pair.b, "x", event("x", "Same edit"))
    r = pair.sync()
    assert r.conflicts == 0 and r.changes == 0


def test_reserialization_is_not_a_change(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("x", "Same"))
    p.sync()
    # another program rewrites b's file: other PRODID/DTSTAMP, LF line ends, folded
    path = next((tmp_path / "b").iterdir())
    text = (
        path.read_bytes()
        .replace(b"\r\n", b"\n")
        .replace(b"DTSTAMP:20250101T000000Z", b"DTSTAMP:20260101T000000Z")
    )
    text = text.replace(b"SUMMARY:Same", b"SUMMARY:Sa\n me")
    path.write_bytes(text)
    r = p.sync()
    assert r.changes == 0 and r.conflicts == 0


def test_unparsable_item_is_reported_and_others_sync(tmp_path: Path) -> None:
    """A component that is never closed is still an item (a vdir would take it
    as it is), but an .ics file cannot hold it: the ics store refuses it,
    naming why and where it came from."""
    a, b = make("vdir", tmp_path, "a"), make("ics", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("good", "Good"))
    (tmp_path / "a" / "broken.ics").write_bytes(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:b\r\n")
    r = p.sync()
    assert r.added_b == 1
    assert len(r.errors) == 1
    err = r.errors[0]
    assert err.store == "b" and err.uid == "b" and "never closed" in err.message
    assert "read from a broken.ics" in err.message
    assert set(contents(b)) == {"good"}
    # fixed later: it syncs then
    (tmp_path / "a" / "broken.ics").write_bytes(event("b", "Fixed"))
    r = p.sync()
    assert r.added_b == 1 and not r.errors


def test_failed_item_is_never_taken_for_deleted(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("x", "Fine"))
    p.sync()
    (tmp_path / "a" / "x.ics").write_bytes(  # one file, two items: not usable as it is
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    r = p.sync()
    assert r.errors and r.deleted_b == 0
    assert set(contents(b)) == {"x"}


def test_on_empty_guard(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    for i in range(3):
        put(a, event(f"e{i}"))
    p.sync()
    for f in (tmp_path / "a").iterdir():
        f.unlink()
    r = p.sync()
    assert r.guard and "empty" in (r.stopped or "")
    assert len(contents(b)) == 3
    r = p.sync(force=True)
    assert r.deleted_b == 3 and not r.guard


def test_max_delete_guard(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    for i in range(10):
        put(a, event(f"e{i}"))
    p.sync()
    for i in range(6):
        remove(a, f"e{i}")
    r = p.sync()
    assert r.guard and "max_delete" in (r.stopped or "")
    assert len(contents(b)) == 10
    r = p.sync(force=True)
    assert r.deleted_b == 6


def test_identity_guard(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("x"))
    p.sync()
    p.b = VdirStore("b", StoreContext(cache_dir=tmp_path / "c2"), tmp_path / "elsewhere")
    r = p.sync()
    assert r.guard and "was vdir:" in (r.stopped or "")
    r = p.sync(force=True)
    assert not r.guard and r.added_b == 1 and r.deleted_a == 0
    assert set(contents(a)) == {"x"}


def test_ics_file_not_rewritten_without_changes(tmp_path: Path) -> None:
    a, b = make("ics", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    for i in range(5):
        put(a, event(f"e{i}"))
    p.sync()
    before = (tmp_path / "a.ics").stat()
    p.sync()
    after = (tmp_path / "a.ics").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_ics_keeps_untouched_items_and_calendar_props_byte_for_byte(tmp_path: Path) -> None:
    original = (
        b"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Some Exporter//EN\nX-WR-CALNAME:Home\n"
        b"BEGIN:VEVENT\nUID:keep\nDTSTAMP:20250101T000000Z\nDTSTART:20250101T100000Z\n"
        b'SUMMARY:Keep me exactly;  \n  folded oddly\nX-ODD;Param="q":v\nEND:VEVENT\n'
        b"BEGIN:VEVENT\nUID:change\nDTSTAMP:20250101T000000Z\nDTSTART:20250102T100000Z\n"
        b"SUMMARY:Old\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    (tmp_path / "a.ics").write_bytes(original)
    a, b = make("ics", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    p.sync()
    edit(b, "change", event("change", "New"))
    put(b, event("added", "Added"))
    r = p.sync()
    assert (r.updated_a, r.added_a) == (1, 1)
    data = (tmp_path / "a.ics").read_bytes()
    keep = original[original.index(b"BEGIN:VEVENT") : original.index(b"END:VEVENT\n") + 11]
    assert keep in data
    assert data.startswith(
        b"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Some Exporter//EN\nX-WR-CALNAME:Home\n"
    )
    assert b"\r\n" not in data  # new content written in the file's own line-ending style
    assert summaries(a) == {
        "keep": "Keep me exactly;   folded oddly",
        "change": "New",
        "added": "Added",
    }


def test_ics_changed_by_another_program_during_sync_is_not_clobbered(tmp_path: Path) -> None:
    a, b = make("ics", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("x", "X"))
    put(b, event("y", "Y"))
    # another program writes the file after calsync listed it, before calsync writes
    real_list = a.list

    def list_then_interfere():  # type: ignore[no-untyped-def]
        listing = real_list()
        data = (tmp_path / "a.ics").read_bytes()
        (tmp_path / "a.ics").write_bytes(data.replace(b"SUMMARY:X", b"SUMMARY:X by other"))
        return listing

    a.list = list_then_interfere  # type: ignore[method-assign]
    r = p.sync()
    assert r.added_a == 0 and any("changed by another program" in e.message for e in r.errors)
    assert b"SUMMARY:X by other" in (tmp_path / "a.ics").read_bytes()
    a.list = real_list  # type: ignore[method-assign]
    r = p.sync()
    assert not r.errors
    assert summaries(a) == summaries(b) == {"x": "X by other", "y": "Y"}


def test_duplicate_uid_in_ics_syncs_the_later_and_keeps_the_other(tmp_path: Path) -> None:
    """Equal SEQUENCE: the later copy in the file is the item; the earlier one
    goes to history; the file itself is left as it is."""
    (tmp_path / "a.ics").write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        b"BEGIN:VEVENT\r\nUID:dup\r\nDTSTART:20250101T100000Z\r\nSUMMARY:First\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:dup\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Second\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:ok\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Ok\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )
    a, b = make("ics", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    before = (tmp_path / "a.ics").read_bytes()
    r = p.sync()
    assert r.added_b == 2 and not r.errors
    assert summaries(b) == {"dup": "Second", "ok": "Ok"}
    saved = p.history().versions("dup")
    assert [(v.reason, v.store) for v in saved] == [("duplicate", "a")]
    assert b"SUMMARY:First" in saved[0].content and b"SUMMARY:Second" not in saved[0].content
    assert (tmp_path / "a.ics").read_bytes() == before
    assert Pair(a, b, tmp_path / "state").sync().changes == 0
    assert len(p.history().versions("dup")) == 1


def test_item_without_uid_gets_a_stable_one(tmp_path: Path) -> None:
    (tmp_path / "a.ics").write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:20250101T100000Z\r\n"
        b"SUMMARY:No uid\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    a, b = make("ics", tmp_path, "a"), make("vdir", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    r = p.sync()
    assert r.added_b == 1
    (uid,) = contents(b)
    assert uid.startswith("calsync-")
    assert p.sync().changes == 0


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    a, b = make("vdir", tmp_path, "a"), make("ics", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state")
    put(a, event("x"))
    r = p.sync(dry_run=True)
    assert r.added_b == 1
    assert contents(b) == {}


def test_precondition_race_is_decided_again_in_the_same_sync(tmp_path: Path) -> None:
    a, b = make("memory", tmp_path, "a"), make("memory", tmp_path, "b")
    p = Pair(a, b, tmp_path / "state", conflict="merge")
    put(a, event("x", "One", extra="LOCATION:Here"))
    put(a, event("y", "Doomed"))
    put(a, event("z", "Keep"))
    p.sync()
    edit(a, "x", event("x", "Two", extra="LOCATION:Here", last_modified="20250201T000000Z"))
    remove(a, "y")
    real_update, real_delete = b.update, b.delete

    def racing_update(id, item, version):  # type: ignore[no-untyped-def]
        # another program edits x on b between calsync's listing and its write
        b.put_raw(id, event("x", "One", extra="LOCATION:There", last_modified="20250301T000000Z"))
        b.update = real_update  # type: ignore[method-assign]
        return real_update(id, item, version)

    def racing_delete(id, version):  # type: ignore[no-untyped-def]
        b.put_raw(id, event("y", "Rescued", last_modified="20250301T000000Z"))
        b.delete = real_delete  # type: ignore[method-assign]
        return real_delete(id, version)

    b.update = racing_update  # type: ignore[method-assign]
    b.delete = racing_delete  # type: ignore[method-assign]
    r = p.sync()
    assert r.errors == []
    assert r.conflicts == 1
    # both edits of x merged (summary from a, location from the racing writer)
    got = contents(a)["x"].master()
    assert got is not None
    assert (got.value("SUMMARY"), got.value("LOCATION")) == ("Two", "There")
    assert summaries(a) == summaries(b) == {"x": "Two", "y": "Rescued", "z": "Keep"}
    assert p.sync().changes == 0
