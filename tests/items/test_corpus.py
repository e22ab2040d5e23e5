"""Every file of the shared corpus through a real sync: ics -> vdir -> ics.

A parseable file round-trips with no property lost (parsed comparison of each
component); an unparseable item yields an error naming the file and the reason
while the other items of the same sync still sync.  No exception escapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import Item, items_from_stream
from calsync.items.lines import Component
from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.vdir import VdirStore
from tests.conftest import SHARED
from tests.sync.helpers import Pair, contents

CORPUS = sorted(
    p for sub in ("ical", "vcal") for p in (SHARED / "corpus" / sub).glob("*") if p.is_file()
)


def shape(c: Component) -> tuple[str, tuple[str, ...], tuple[object, ...]]:
    """A component as sorted canonical property lines and sub-components."""
    props = tuple(sorted(p.canonical() for p in c.props if p.name not in ("DTSTAMP", "PRODID")))
    return c.name, props, tuple(sorted(shape(s) for s in c.subs))


def item_shape(item: Item) -> list[object]:
    return sorted(shape(c) for c in item.tree.subs)


def test_corpus_is_there() -> None:
    assert len(CORPUS) > 400, f"corpus not found under {SHARED}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_round_trip_through_sync(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    expected, bad = items_from_stream(data, source=str(tmp_path / "a.ics"))
    (tmp_path / "a.ics").write_bytes(data)
    a = IcsStore("a", StoreContext(tmp_path / "ca"), tmp_path / "a.ics")
    b = VdirStore("b", StoreContext(tmp_path / "cb"), tmp_path / "b")
    c = IcsStore("c", StoreContext(tmp_path / "cc"), tmp_path / "c.ics")
    first = Pair(a, b, tmp_path / "s1").sync()
    second = Pair(b, c, tmp_path / "s2").sync()
    assert first.stopped is None and second.stopped is None
    assert second.errors == []
    # every bad item is reported, naming the file and why, and nothing else failed
    reported = {e.id for e in first.errors}
    assert reported == {e.id for e in bad}
    for err in first.errors:
        assert err.store == "a" and err.message
        assert str(tmp_path / "a.ics") in err.message
    # every good item arrived at the far end with all its properties
    far = contents(c)
    assert set(far) == {i.uid for i in expected}
    for item in expected:
        assert item_shape(far[item.uid]) == item_shape(item), item.uid
    # and a second round changes nothing
    assert Pair(a, b, tmp_path / "s1").sync().changes == 0
    assert Pair(b, c, tmp_path / "s2").sync().changes == 0
