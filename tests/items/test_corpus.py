"""Every file of the shared corpus through real syncs.

1. Every item reaches a vdir (``test_every_item_reaches_a_vdir``): each file as
   an ``ics`` store synced to an empty vdir.  An item arrives repaired, as it
   is, or passed through as text; the only refusals are the files listed in
   ``REFUSED`` (not a calendar at all), each refused once, as a whole, with its
   message.
2. ics -> vdir -> ics (``test_round_trip_through_sync``): a parseable item
   round-trips with no property lost (parsed comparison of each component);
   an item passed through as text arrives with the same bytes; the only items
   the second .ics refuses are components that are never closed (they would
   swallow the items after them in a file).  A second round changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import Item, ItemError, items_from_stream
from calsync.items.item import derive_uid
from calsync.items.lines import Component
from calsync.items.split import ITEM_COMPONENTS, is_closed, own_data, split
from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.vdir import VdirStore
from tests.conftest import SHARED
from tests.sync.helpers import Pair, contents

CORPUS = sorted(
    p for sub in ("ical", "vcal") for p in (SHARED / "corpus" / sub).glob("*") if p.is_file()
)

# files refused as a whole, and why: the documented refusals (nothing else may fail)
REFUSED = {
    # a line of notes before BEGIN:VCALENDAR: not a calendar file (Symbian's test of
    # a junk line); calsync never writes into such a file
    "symbian__TestFiles__IJunkLine.vcs": "is not a calendar file: it begins with 'Reminder",
}


def shape(c: Component) -> tuple[str, tuple[str, ...], tuple[object, ...]]:
    """A component as sorted canonical property lines and sub-components."""
    props = tuple(sorted(p.canonical() for p in c.props if p.name not in ("DTSTAMP", "PRODID")))
    return c.name, props, tuple(sorted(shape(s) for s in c.subs))


def item_shape(item: Item) -> list[object] | list[bytes]:
    """The parsed shape, or for text calsync cannot parse its components' bytes."""
    try:
        return sorted(shape(c) for c in item.tree.subs)
    except ItemError:
        return [
            own_data(c).replace(b"\r\n", b"\n").rstrip(b"\n")
            for c in split(item.raw).components
            if c.name in ITEM_COMPONENTS
        ]


def as_in_an_ics_file(item: Item) -> Item:
    """``item`` as an .ics file reads it: its components in a VERSION:2.0 calendar.

    The same unless the item came from vCalendar 1.0 text, which an .ics store
    passes on as it is, unrepaired; in an .ics file it stands in a 2.0 calendar,
    and reads by 2.0 rules (quoted-printable decoded, a seventh digit dropped)."""
    parts = [own_data(c) for c in split(item.raw).components]
    data = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + b"".join(parts) + b"END:VCALENDAR\r\n"
    (again,), errors = items_from_stream(data)
    assert not errors
    return again


def uids_in(data: bytes) -> set[str]:
    """The items of a file, counted from its components alone: a UID each
    (components without one: the UID their content derives)."""
    return {c.uid or derive_uid([c]) for c in split(data).components if c.name in ITEM_COMPONENTS}


def test_corpus_is_there() -> None:
    assert len(CORPUS) > 400, f"corpus not found under {SHARED}"
    assert set(REFUSED) <= {p.name for p in CORPUS}


def test_every_item_reaches_a_vdir(tmp_path: Path) -> None:
    """100% of the corpus's items synced: repaired, as they are, or passed through."""
    missing: list[str] = []
    problems: list[str] = []
    refused: dict[str, str] = {}
    total = 0
    for n, path in enumerate(CORPUS):
        data = path.read_bytes()
        work = tmp_path / str(n)
        work.mkdir()
        (work / "a.ics").write_bytes(data)
        a = IcsStore("a", StoreContext(work / "ca"), work / "a.ics")
        b = VdirStore("b", StoreContext(work / "cb"), work / "b")
        r = Pair(a, b, work / "state").sync()
        assert (work / "a.ics").read_bytes() == data, f"{path.name} was rewritten"
        if r.stopped:
            refused[path.name] = r.stopped
            continue
        problems += [f"{path.name}: {e}" for e in r.errors]
        expected = uids_in(data)
        total += len(expected)
        arrived = set(contents(b))
        missing += [f"{path.name}: {uid}" for uid in sorted(expected - arrived)]
        assert arrived <= expected | {u for u in arrived if u.startswith("calsync-")}
    assert not problems, "\n".join(problems)
    assert not missing, "\n".join(missing)
    assert set(refused) == set(REFUSED), refused
    for name, words in REFUSED.items():
        assert words in refused[name], refused[name]
    assert total > 1700


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_round_trip_through_sync(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    expected, bad = items_from_stream(data, source=str(tmp_path / "a.ics"))
    assert bad == []  # every item of every file reads (repaired or as text)
    (tmp_path / "a.ics").write_bytes(data)
    a = IcsStore("a", StoreContext(tmp_path / "ca"), tmp_path / "a.ics")
    b = VdirStore("b", StoreContext(tmp_path / "cb"), tmp_path / "b")
    c = IcsStore("c", StoreContext(tmp_path / "cc"), tmp_path / "c.ics")
    first = Pair(a, b, tmp_path / "s1").sync()
    if path.name in REFUSED:
        assert first.stopped is not None and REFUSED[path.name] in first.stopped
        return
    second = Pair(b, c, tmp_path / "s2").sync()
    assert first.stopped is None and second.stopped is None
    assert first.errors == []
    # an .ics file takes every item but those whose component is never closed
    unclosed = {
        i.uid
        for i in expected
        if any(not is_closed(x) for x in split(i.raw).components if x.name in ITEM_COMPONENTS)
    }
    assert {e.uid for e in second.errors} == unclosed
    for err in second.errors:
        assert err.store == "c" and "never closed" in err.message
    # every other item arrived at the far end with all its properties
    far = contents(c)
    assert set(far) == {i.uid for i in expected} - unclosed
    for item in expected:
        if item.uid not in unclosed:
            assert item_shape(far[item.uid]) == item_shape(as_in_an_ics_file(item)), item.uid
    # and a second round changes nothing
    assert Pair(a, b, tmp_path / "s1").sync().changes == 0
    assert Pair(b, c, tmp_path / "s2").sync().changes == 0
