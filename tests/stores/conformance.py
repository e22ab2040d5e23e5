"""The store conformance suite: every store type subclasses ``Conformance``.

A store's test module does::

    class TestMyStore(Conformance):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(...)

Optional hooks: ``supports_vtodo`` (False for a store that refuses VTODO: the
test then checks the refusal is an ItemRejected, never a silent drop),
``max_item_bytes``.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from calsync.items import Item
from calsync.stores import ItemRejected, NotFound, PreconditionFailed, Store
from tests.conftest import event

RECURRING = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//calsync tests//EN\r
BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
TZNAME:CET\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
TZNAME:CEST\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:recurring-1@calsync.test\r
DTSTAMP:20250101T000000Z\r
DTSTART;TZID=Europe/Berlin:20250303T090000\r
DTEND;TZID=Europe/Berlin:20250303T093000\r
RRULE:FREQ=WEEKLY;COUNT=10\r
EXDATE;TZID=Europe/Berlin:20250317T090000\r
SUMMARY:Weekly sync\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:recurring-1@calsync.test\r
DTSTAMP:20250101T000000Z\r
RECURRENCE-ID;TZID=Europe/Berlin:20250310T090000\r
DTSTART;TZID=Europe/Berlin:20250310T110000\r
DTEND;TZID=Europe/Berlin:20250310T113000\r
SUMMARY:Weekly sync (moved)\r
END:VEVENT\r
END:VCALENDAR\r
"""

TODO = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//calsync tests//EN\r
BEGIN:VTODO\r
UID:todo-1@calsync.test\r
DTSTAMP:20250101T000000Z\r
DUE:20250310T170000Z\r
SUMMARY:Write the report\r
PRIORITY:1\r
STATUS:NEEDS-ACTION\r
END:VTODO\r
END:VCALENDAR\r
"""


def item(data: bytes) -> Item:
    return Item.from_bytes(data)


class Conformance:
    """Tests every store must pass.  Subclasses provide the ``store`` fixture."""

    supports_vtodo: ClassVar[bool] = True
    max_item_bytes: ClassVar[int] = 200_000

    def _flush(self, store: Store) -> None:
        store.flush()

    def _get(self, store: Store, id: str) -> Item:
        got, _ = store.get(id)
        return got

    def test_empty_store_lists_nothing(self, store: Store) -> None:
        listing = store.list()
        assert listing.versions == {}
        assert listing.errors == {}

    def test_add_get_list(self, store: Store) -> None:
        store.list()
        new = item(event("add-1@calsync.test", "Lunch"))
        id, _ = store.add(new)
        self._flush(store)
        listing = store.list()
        assert id in listing.versions
        got = self._get(store, id)
        assert got.uid == "add-1@calsync.test"
        assert got.hash == new.hash

    def test_update_with_right_version(self, store: Store) -> None:
        store.list()
        id, version = store.add(item(event("upd-1@calsync.test", "Before")))
        self._flush(store)
        listing = store.list()
        version = listing.versions[id]
        changed = item(event("upd-1@calsync.test", "After"))
        new_version = store.update(id, changed, version)
        self._flush(store)
        listing = store.list()
        assert listing.versions[id] == new_version
        assert new_version != version
        assert self._get(store, id).hash == changed.hash

    def test_update_with_stale_version_fails(self, store: Store) -> None:
        store.list()
        id, v1 = store.add(item(event("stale-1@calsync.test", "One")))
        self._flush(store)
        v1 = store.list().versions[id]
        store.update(id, item(event("stale-1@calsync.test", "Two")), v1)
        self._flush(store)
        store.list()
        with pytest.raises(PreconditionFailed):
            store.update(id, item(event("stale-1@calsync.test", "Three")), v1)

    def test_delete(self, store: Store) -> None:
        store.list()
        id, _ = store.add(item(event("del-1@calsync.test")))
        self._flush(store)
        version = store.list().versions[id]
        store.delete(id, version)
        self._flush(store)
        assert id not in store.list().versions

    def test_delete_with_stale_version_fails(self, store: Store) -> None:
        store.list()
        id, _ = store.add(item(event("del-2@calsync.test", "One")))
        self._flush(store)
        v1 = store.list().versions[id]
        store.update(id, item(event("del-2@calsync.test", "Two")), v1)
        self._flush(store)
        store.list()
        with pytest.raises(PreconditionFailed):
            store.delete(id, v1)

    def test_unknown_id(self, store: Store) -> None:
        store.list()
        with pytest.raises(NotFound):
            store.get("no-such-item.ics")
        with pytest.raises((NotFound, PreconditionFailed)):
            store.update("no-such-item.ics", item(event("no-such-item")), "1")
        with pytest.raises((NotFound, PreconditionFailed)):
            store.delete("no-such-item.ics", "1")

    @pytest.mark.parametrize(
        "uid",
        [
            "with spaces in it",
            "slash/and\\\\backslash",  # an escaped backslash, as RFC 5545 wants
            "ünïcödé-日本語-🗓",
            "../../etc/passwd",
            "CON",
            "a" * 250,
            "percent%20and@at+plus",
        ],
    )
    def test_awkward_uids(self, store: Store, uid: str) -> None:
        store.list()
        new = item(event(uid, "Awkward"))
        id, _ = store.add(new)
        self._flush(store)
        listing = store.list()
        assert id in listing.versions
        got = self._get(store, id)
        assert got.uid == uid
        assert got.hash == new.hash

    def test_two_items_do_not_collide(self, store: Store) -> None:
        store.list()
        ids = {store.add(item(event(u)))[0] for u in ("Same", "same", "SAME")}
        self._flush(store)
        assert len(ids) == 3
        assert {self._get(store, i).uid for i in ids} == {"Same", "same", "SAME"}

    def test_recurrence_with_override_round_trips(self, store: Store) -> None:
        store.list()
        new = item(RECURRING)
        id, _ = store.add(new)
        self._flush(store)
        store.list()
        got = self._get(store, id)
        assert got.hash == new.hash
        comps = got.components()
        assert len(comps) == 2
        assert sum(1 for c in comps if c.get("RECURRENCE-ID") is not None) == 1
        assert any(tz.value("TZID") == "Europe/Berlin" for tz in got.timezones())

    def test_vtodo(self, store: Store) -> None:
        store.list()
        new = item(TODO)
        if not self.supports_vtodo:
            with pytest.raises(ItemRejected):
                store.add(new)
            return
        id, _ = store.add(new)
        self._flush(store)
        store.list()
        got = self._get(store, id)
        assert got.kind == "VTODO"
        assert got.hash == new.hash

    def test_large_item(self, store: Store) -> None:
        store.list()
        description = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1500)[
            : self.max_item_bytes // 2
        ]
        new = item(event("large-1@calsync.test", "Large", extra=f"DESCRIPTION:{description}"))
        id, _ = store.add(new)
        self._flush(store)
        store.list()
        assert self._get(store, id).hash == new.hash

    def test_get_many_returns_what_exists(self, store: Store) -> None:
        store.list()
        ids = [store.add(item(event(f"many-{i}@calsync.test")))[0] for i in range(5)]
        self._flush(store)
        store.list()
        got = {id: it for id, it, _ in store.get_many([*ids, "missing-id.ics"])}
        assert set(got) == set(ids)
        assert all(isinstance(v, Item) for v in got.values())

    def test_identity_is_stable(self, store: Store) -> None:
        assert store.identity() == store.identity()
        assert store.identity()
