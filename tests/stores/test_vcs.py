"""The vcs store (one .vcs file of vCalendar 1.0 entries): conformance and its own cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calsync.items import ItemError, loads_one
from calsync.stores import ItemRejected, StoreContext, StoreError, store_class
from calsync.stores.vcs import VcsStore
from tests.conftest import event
from tests.stores.conformance import Conformance, item


def ctx(tmp_path: Path) -> StoreContext:
    return StoreContext(cache_dir=tmp_path / "cache")


class TestVcs(Conformance):
    """Every conformance test passes as is: what vCalendar cannot say travels in
    X-CALSYNC-ICAL-* properties, so items read back hash equal."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> VcsStore:
        return VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")


PHONE = (
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nTZ:+0100\r\n"
    "DAYLIGHT:TRUE;+0200;20250330T010000Z;20251026T010000Z;;\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nSUMMARY:Dentist\r\nDTSTART:20250601T080000Z\r\n"
    "DTEND:20250601T090000Z\r\nAALARM:20250601T074500Z;;;\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:b\r\nSUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=C3=BC=C3=9Fe\r\n"
    "DTSTART:20250602T080000Z\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VTODO\r\nUID:c\r\nDUE:20250610T170000Z\r\n"
    "PRIORITY:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:broken\r\nDTSTART:2025-13-45\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture
def phone(tmp_path: Path) -> VcsStore:
    path = tmp_path / "phone.vcs"
    path.write_bytes(PHONE.encode())
    return VcsStore("phone", ctx(tmp_path), path)


def test_registered() -> None:
    assert store_class("vcs") is VcsStore


def test_reads_a_device_file(phone: VcsStore) -> None:
    listing = phone.list()
    assert sorted(listing.versions) == ["a", "b", "c"]
    assert list(listing.errors) == ["broken"]
    assert "line 30: DTSTART: not a valid date: '2025-13-45'" in listing.errors["broken"]
    a, _ = phone.get("a")
    assert "DTSTART;TZID=Europe/Berlin:20250601T100000" in a.text
    assert "BEGIN:VALARM" in a.text
    b, _ = phone.get("b")
    assert "SUMMARY:Grüße" in b.text
    c, _ = phone.get("c")
    assert c.kind == "VTODO"
    with pytest.raises(ItemError, match="line 30"):
        phone.get("broken")


def test_untouched_entries_and_broken_ones_stay_byte_for_byte(phone: VcsStore) -> None:
    listing = phone.list()
    changed = loads_one(event("b", "Changed"))
    phone.update("b", changed, listing.versions["b"])
    phone.delete("c", listing.versions["c"])
    phone.add(loads_one(event("new", "New one")))
    phone.flush()
    text = phone.path.read_bytes().decode()
    # a's lines and its calendar's TZ/DAYLIGHT are untouched, b left that calendar
    assert text.startswith(PHONE.split("BEGIN:VEVENT\r\nUID:b")[0])
    assert "Gr=C3=BC" not in text
    # c's calendar had nothing else: gone; the broken entry is kept as it was
    assert "UID:c" not in text
    assert "BEGIN:VEVENT\r\nUID:broken\r\nDTSTART:2025-13-45\r\nEND:VEVENT\r\n" in text
    listing = phone.list()
    assert sorted(listing.versions) == ["a", "b", "new"]
    assert phone.get("b")[0].hash == changed.hash
    assert list(listing.errors) == ["broken"]


def test_versions_change_with_the_calendar_lines(phone: VcsStore) -> None:
    before = phone.list().versions
    phone.path.write_bytes(PHONE.replace("TZ:+0100", "TZ:+0000").encode())
    after = phone.list().versions
    assert before["a"] != after["a"]  # a different zone: a different item
    assert before["c"] == after["c"]


def test_refuses_to_overwrite_a_file_changed_meanwhile(phone: VcsStore) -> None:
    listing = phone.list()
    phone.update("a", loads_one(event("a", "Mine")), listing.versions["a"])
    phone.path.write_bytes(PHONE.replace("Dentist", "Doctor").encode())
    with pytest.raises(StoreError, match="changed by another program"):
        phone.flush()
    assert b"Doctor" in phone.path.read_bytes()


def test_journals_are_refused_not_dropped(tmp_path: Path) -> None:
    store = VcsStore("phone", ctx(tmp_path), tmp_path / "p.vcs")
    store.list()
    journal = item(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VJOURNAL\r\nUID:j\r\n"
        b"DTSTAMP:20250101T000000Z\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(ItemRejected, match="VJOURNAL"):
        store.add(journal)


def test_an_unchanged_file_is_not_converted_again(
    phone: VcsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = phone.list()
    import calsync.stores.vcs as vcs

    def fail(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(vcs, "convert", fail)
    again = VcsStore("phone", phone.ctx, phone.path).list()
    assert again.versions == first.versions and again.errors == first.errors
    os.utime(phone.path, ns=(1, 1))
    with pytest.raises(AssertionError, match="converted again"):
        VcsStore("phone", phone.ctx, phone.path).list()


def test_entries_without_uid_get_one_written_in(tmp_path: Path) -> None:
    path = tmp_path / "p.vcs"
    path.write_bytes(
        b"BEGIN:VCALENDAR\nVERSION:1.0\nBEGIN:VEVENT\nSUMMARY:Help\nDTSTART:20021001T090000\n"
        b"END:VEVENT\nEND:VCALENDAR\n"
    )
    store = VcsStore("p", ctx(tmp_path), path)
    listing = store.list()
    (uid,) = listing.versions
    assert uid.startswith("calsync-")
    assert VcsStore("p", ctx(tmp_path / "other"), path).list().versions.keys() == {uid}
    got, version = store.get(uid)
    store.update(uid, got, version)
    store.flush()
    data = path.read_bytes()
    assert f"UID:{uid}\n".encode() in data and b"\r\n" not in data  # the file's line endings
    assert store.list().versions.keys() == {uid}


RICH = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:rich\r\n"
    "DTSTAMP:20250101T000000Z\r\nDTSTART:20250103T090000Z\r\nDTEND:20250103T100000Z\r\n"
    "SUMMARY:Review\r\nCOMMENT:bring the numbers\r\nRRULE:FREQ=MONTHLY;BYDAY=1FR,-1FR\r\n"
    "BEGIN:VALARM\r\nUID:a1\r\nACTION:DISPLAY\r\nDESCRIPTION:Review\r\nTRIGGER:-PT5M\r\n"
    "END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def pc_suite_rewrite(path: Path, *changes: tuple[bytes, bytes]) -> None:
    """The phone's PC suite writes the file again: calsync's X- lines are gone."""
    lines = path.read_bytes().split(b"\r\n")
    kept, skipping = [], False
    for line in lines:
        if line.startswith(b"X-CALSYNC-"):
            skipping = line.endswith(b"=")  # a quoted-printable value goes on
            continue
        if skipping:
            skipping = line.endswith(b"=")
            continue
        kept.append(line)
    data = b"\r\n".join(kept)
    for old, new in changes:
        assert old in data
        data = data.replace(old, new)
    path.write_bytes(data)


def test_what_vcal_cannot_carry_survives_a_pc_suite_rewrite(tmp_path: Path) -> None:
    store = VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")
    store.list()
    store.add(loads_one(RICH))
    store.add(loads_one(event("plain", "Plain")))
    store.flush()
    store.close()
    pc_suite_rewrite(tmp_path / "phone.vcs", (b"SUMMARY:Review\r", b"SUMMARY:Review with Ann\r"))
    assert b"COMMENT" not in (tmp_path / "phone.vcs").read_bytes()

    again = VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")
    again.list()
    rich, _ = again.get("rich")
    comp = rich.master()
    assert comp is not None
    assert comp.value("SUMMARY") == "Review with Ann"  # the phone's edit
    assert comp.value("COMMENT") == "bring the numbers"  # what it never saw
    assert comp.value("RRULE") == "FREQ=MONTHLY;BYDAY=1FR,-1FR"
    assert comp.children("VALARM")[0].value("UID") == "a1"
    plain, _ = again.get("plain")
    assert plain.hash == loads_one(event("plain", "Plain")).hash  # untouched: exactly as written
    again.close()

    # the copies are a cache: without them, the file is read as it says
    for leftover in (tmp_path / "cache").glob("vcs-written.sqlite*"):
        leftover.unlink()
    bare = VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")
    bare.list()
    assert bare.get("rich")[0].master().value("COMMENT") is None  # type: ignore[union-attr]


def test_an_entry_as_written_reads_back_exactly(tmp_path: Path) -> None:
    tzid = "/mozilla.org/20050126_1/Europe/Berlin"
    text = (
        RICH.replace("DTSTART:20250103T090000Z", f"DTSTART;TZID={tzid}:20250103T100000")
        .replace("DTEND:20250103T100000Z", f"DTEND;TZID={tzid}:20250103T110000")
        .replace("BEGIN:VEVENT", "BEGIN:VTIMEZONE\r\nTZID:" + tzid + "\r\nBEGIN:STANDARD\r\n"
                 "DTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\n"
                 "END:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT", 1)
    )  # fmt: skip
    item = loads_one(text)
    store = VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")
    store.list()
    store.add(item)
    store.flush()
    store.close()
    again = VcsStore("phone", ctx(tmp_path), tmp_path / "phone.vcs")
    again.list()
    got, _ = again.get("rich")
    assert got.raw == item.raw  # the TZID's spelling too, which the file alone cannot give


def test_a_pair_keeps_what_the_phone_cannot_show(tmp_path: Path) -> None:
    """laptop.ics <-> phone.vcs: the phone's edit comes back to the laptop, and the
    laptop's COMMENT, rule and alarm extras are not taken for deletions."""
    from calsync.stores.ics import IcsStore
    from tests.sync.helpers import Pair, contents

    laptop_file = tmp_path / "laptop.ics"
    laptop_file.write_bytes(RICH.encode())
    laptop = IcsStore("laptop", StoreContext(cache_dir=tmp_path / "c1"), laptop_file)
    phone = VcsStore("phone", StoreContext(cache_dir=tmp_path / "c2"), tmp_path / "phone.vcs")
    pair = Pair(laptop, phone, tmp_path / "state")
    first = pair.sync()
    assert first.added_b == 1 and not first.errors and not first.stopped
    pc_suite_rewrite(tmp_path / "phone.vcs", (b"SUMMARY:Review\r", b"SUMMARY:Review with Ann\r"))
    laptop = IcsStore("laptop", StoreContext(cache_dir=tmp_path / "c1"), laptop_file)
    phone = VcsStore("phone", StoreContext(cache_dir=tmp_path / "c2"), tmp_path / "phone.vcs")
    pair = Pair(laptop, phone, tmp_path / "state")
    result = pair.sync()
    assert result.updated_a == 1 and result.changes == 1, result.to_json()
    assert not result.errors and not result.stopped
    comp = contents(laptop)["rich"].master()
    assert comp is not None
    assert comp.value("SUMMARY") == "Review with Ann"
    assert comp.value("COMMENT") == "bring the numbers"
    assert comp.value("RRULE") == "FREQ=MONTHLY;BYDAY=1FR,-1FR"
    assert comp.children("VALARM")[0].value("UID") == "a1"
    laptop = IcsStore("laptop", StoreContext(cache_dir=tmp_path / "c1"), laptop_file)
    phone = VcsStore("phone", StoreContext(cache_dir=tmp_path / "c2"), tmp_path / "phone.vcs")
    assert Pair(laptop, phone, tmp_path / "state").sync().changes == 0  # settled
