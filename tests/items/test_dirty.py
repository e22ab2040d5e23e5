"""The dirty corpus (``tests/items/dirty/``, see its SOURCES.md): every file
through a real sync, with what must come of it.

- repaired: the item reaches the other side as the repaired reading (it
  parses, the listed values are as expected), the repairs are logged once,
  naming the item, the store and what was repaired, and the source file is
  left as it is;
- passed through: an item calsync cannot parse reaches a vdir byte for byte;
- duplicates: one copy syncs, every other copy is in the history;
- refused: the store is refused with the message, and nothing is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from calsync.items import Item, ItemError
from calsync.items.split import ITEM_COMPONENTS, split
from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.vcs import VcsStore
from calsync.stores.vdir import VdirStore
from tests.sync.helpers import Pair, contents

DIRTY = Path(__file__).parent / "dirty"


@dataclass
class Case:
    kind: str  # repaired | passed | duplicates | refused
    uid: str = ""
    repairs: tuple[str, ...] = ()  # each repair as logged
    values: dict[str, str] = field(default_factory=dict)  # the synced master's values
    absent: tuple[bytes, ...] = ()  # never in the synced item
    kept: str = ""  # duplicates: the SUMMARY that syncs
    lost: tuple[str, ...] = ()  # duplicates: the SUMMARYs kept in history
    message: str = ""  # refused: words of the error
    others: tuple[str, ...] = ()  # UIDs of other items of the file that sync as usual


EXCHANGE_UID = (
    "040000008200E00074C5B7101A82E00800000000B0549C15F06DC101000000000000000 "
    "0100000008BF784046BEC174CA6706A51BE3E8B33"
)

CASES: dict[str, Case] = {
    "exchange2000-fold-colon.ics": Case(
        "repaired",
        EXCHANGE_UID,
        repairs=("line 12: folded without a leading space",),
        values={"ATTENDEE": "MAILTO:mmann@example.com"},
    ),
    "exchange2000-fold-param.ics": Case(
        "repaired",
        "exchange-param-fold@example.com",
        repairs=("line 11: folded without a leading space",),
        values={"ATTENDEE": "MAILTO:acave@example.com", "ATTENDEE;ROLE": "REQ-PARTICIPANT"},
    ),
    "qp-soft-breaks.ics": Case(
        "repaired",
        "qp-soft-break@example.com",
        repairs=("line 10: quoted-printable DESCRIPTION decoded",),
        values={
            "DESCRIPTION": "Agenda:\\n1. Budget für 2009\\n2. Next meetingOrt: Raum 5",
            "LOCATION": "Room 5",
        },
        absent=(b"QUOTED-PRINTABLE", b"CHARSET", b"ORT:"),
    ),
    "qp-escapes.ics": Case(
        "repaired",
        "qp-escapes@example.com",
        repairs=("line 9: quoted-printable DESCRIPTION decoded",),
        values={
            "DESCRIPTION": "View the status:\\nhttp://example.com/view.php?act_id=42&task=7\\n",
            "SUMMARY": "Act 42 -- Task 7",
            "SUMMARY;ENCODING": "QUOTED-PRINTABLE",  # nothing to decode: left as it is
        },
        absent=(b"=3D", b"=0A"),
    ),
    "bare-uid.ics": Case(
        "repaired",
        "",  # derived: the file has no UID
        repairs=("line 5: UID without ':' or value dropped",),
        values={"SUMMARY": "Dentist"},
        absent=(b"\r\nUID\r\n",),
    ),
    "seventh-digit.ics": Case(
        "repaired",
        "seventh-digit@example.com",
        repairs=(
            "line 5: DTSTART had a seventh time digit",
            "line 6: DTEND had a seventh time digit",
            "line 8: DTSTAMP had a seventh time digit",
        ),
        values={"DTSTART": "20080720T002300Z", "DTEND": "20080720T012300Z"},
        absent=(b"0Z\r\n" + b"DTEND:20080720T0123000Z",),
    ),
    "google-duration.ics": Case(
        "repaired",
        "google-duration@google.com",
        repairs=(
            "line 8: DURATION mixed weeks with days",
            "line 13: TRIGGER mixed weeks with days",
        ),
        values={"DURATION": "P9D", "VALARM/TRIGGER": "-P8DT2H3M4S"},
    ),
    "dup-outlook.ics": Case(
        "duplicates",
        "040000008200E00074C5B7101A82E0080000000070F8D8A1",
        kept="Team meeting (moved)",
        lost=("Team meeting",),
        others=("other@example.com",),
    ),
    "dup-override-sequence.ics": Case(
        "duplicates",
        "weekly@example.com",
        kept="Weekly (moved to 11:00)",
        lost=("Weekly (moved to 10:30)",),
    ),
    "dup-identical.ics": Case(
        "duplicates", "twice@example.com", kept="Exported twice", lost=("Exported twice",)
    ),
    "passthrough-garbage.ics": Case(
        "passed", "garbage-line@example.com", others=("fine@example.com",)
    ),
    "passthrough-vcal-qp.ics": Case("passed", "vcal-in-ics@example.com"),
    "unclosed.ics": Case("passed", "unclosed@example.com"),
    "not-a-calendar.ics": Case(
        "refused", message="is not a calendar file: it begins with 'hello world\\n'"
    ),
    "junk-first-line.vcs": Case(
        "refused", message="is not a calendar file: it begins with 'Reminder  Type: Remin"
    ),
}


def test_every_fixture_has_an_expectation() -> None:
    files = {p.name for p in DIRTY.iterdir() if p.suffix in (".ics", ".vcs")}
    assert files == set(CASES)
    kinds = {c.kind for c in CASES.values()}
    assert kinds == {"repaired", "passed", "duplicates", "refused"}


def _stores(tmp: Path, name: str) -> tuple[IcsStore | VcsStore, VdirStore, Pair]:
    source = tmp / name
    source.write_bytes((DIRTY / name).read_bytes())
    kind = VcsStore if name.endswith(".vcs") else IcsStore
    a = kind("a", StoreContext(tmp / "ca"), source)
    b = VdirStore("b", StoreContext(tmp / "cb"), tmp / "b")
    return a, b, Pair(a, b, tmp / "state")


def _value(item: Item, key: str) -> str | None:
    """A value of the master: NAME, NAME;PARAM, or SUB/NAME (first sub-component)."""
    comp = item.master()
    assert comp is not None
    if "/" in key:
        sub, key = key.split("/")
        comp = comp.children(sub)[0]
    name, _, param = key.partition(";")
    prop = comp.get(name)
    if prop is None:
        return None
    return prop.param(param) if param else prop.value


def _component_bytes(data: bytes, uid: str) -> list[bytes]:
    """The raw bytes of ``uid``'s components, as split from ``data`` (LF endings)."""
    return [
        c.data.replace(b"\r\n", b"\n").rstrip(b"\n")
        for c in split(data).components
        if c.name in ITEM_COMPONENTS and c.uid == uid
    ]


def _repair_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "repaired on reading" in r.getMessage()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_dirty_file_through_a_sync(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    original = (DIRTY / name).read_bytes()
    a, b, pair = _stores(tmp_path, name)
    caplog.set_level(logging.INFO)
    r = pair.sync()
    assert (tmp_path / name).read_bytes() == original  # the source is never rewritten
    if case.kind == "refused":
        assert r.stopped is not None and case.message in r.stopped, r.stopped
        assert str(tmp_path / name) in r.stopped
        assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())
        return
    assert r.stopped is None and r.errors == [], r.errors
    far = contents(b)
    uid = case.uid or next(iter(far))
    assert uid in far, sorted(far)
    assert set(far) == {uid, *case.others}
    item = far[uid]
    if case.kind == "repaired":
        for key, expected in case.values.items():
            assert _value(item, key) == expected, key
        for absent in case.absent:
            assert absent not in item.raw, absent
        logs = _repair_logs(caplog)
        assert len(logs) == 1, logs  # once per item, naming item, store and what
        assert f"pair test: a: item {uid}: repaired on reading (" in logs[0]
        assert "; ".join(case.repairs) in logs[0]
    elif case.kind == "passed":
        with pytest.raises(ItemError):
            item.tree  # noqa: B018 - calsync cannot parse it, yet it arrived
        assert _component_bytes(item.raw, uid) == _component_bytes(original, uid)
        assert not _repair_logs(caplog)
    else:
        assert _value(item, "SUMMARY") == case.kept or any(
            c.value("SUMMARY") == case.kept for c in item.components()
        )
        for lost in case.lost:
            assert sum(c.value("SUMMARY") == lost for c in item.components()) <= (
                1 if lost == case.kept else 0
            )
        saved = pair.history().versions(uid)
        assert {v.reason for v in saved} == {"duplicate"} and {v.store for v in saved} == {"a"}
        summaries = [Item(v.content, uid).components()[0].value("SUMMARY") for v in saved]
        assert sorted(summaries) == sorted(case.lost)
    # nothing is read again, logged again or saved again: the next sync is quiet
    caplog.clear()
    again = Pair(a, b, tmp_path / "state").sync()
    assert again.changes == 0 and not again.errors
    assert not _repair_logs(caplog)
    if case.kind == "duplicates":
        assert len(pair.history().versions(uid)) == len(case.lost)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.kind == "repaired"))
def test_a_vdir_file_is_repaired_the_same_way(name: str, tmp_path: Path) -> None:
    """One resource read from a vdir (Item.from_bytes) gets the same repairs as the
    same item read from an .ics file, and the vdir file stays as it is."""
    case = CASES[name]
    (tmp_path / "a").mkdir()
    source = tmp_path / "a" / "item.ics"
    source.write_bytes((DIRTY / name).read_bytes())
    a = VdirStore("a", StoreContext(tmp_path / "ca"), tmp_path / "a")
    b = VdirStore("b", StoreContext(tmp_path / "cb"), tmp_path / "b")
    r = Pair(a, b, tmp_path / "state").sync()
    assert r.added_b == 1 and not r.errors
    assert source.read_bytes() == (DIRTY / name).read_bytes()
    (item,) = contents(b).values()
    for key, expected in case.values.items():
        assert _value(item, key) == expected, key
    read = Item.from_bytes(source.read_bytes())
    assert read.notes is not None and tuple(read.notes.repairs) == case.repairs


def test_an_unclosed_component_cannot_go_into_an_ics_file(tmp_path: Path) -> None:
    """A vdir takes it as it is; an .ics file refuses it (it would swallow the
    items after it), naming why and where it came from."""
    _, b, pair = _stores(tmp_path, "unclosed.ics")
    assert pair.sync().added_b == 1
    c = IcsStore("c", StoreContext(tmp_path / "cc"), tmp_path / "c.ics")
    r = Pair(b, c, tmp_path / "state2").sync()
    assert r.added_b == 0
    (err,) = r.errors
    assert err.store == "c" and err.uid == "unclosed@example.com"
    assert "never closed" in err.message and "read from b" in err.message
    assert b"unclosed" not in (tmp_path / "c.ics").read_bytes()
