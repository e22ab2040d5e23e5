"""The server quirks the store must handle, each on the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import Item
from calsync.stores import ItemRejected, PreconditionFailed
from calsync.stores.caldav import xml
from tests.conftest import event
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.helpers import config, sync, vdir_uids
from tests.stores.caldav.peers import Peer
from tests.stores.conformance import TODO

pytestmark = pytest.mark.peer

# what each server answers when a UID already lives at another href (measured)
UID_CONFLICT = {"radicale": 409, "xandikos": 412, "cyrus": 403, "davical": None}
# does the server itself refuse a VTODO in a VEVENT-only calendar?
REFUSES_VTODO = {"radicale": False, "xandikos": True, "cyrus": True, "davical": False}


def test_uid_conflict_names_the_existing_href(peer: Peer, calendar: str, tmp_path: Path) -> None:
    peer.put(f"{calendar}theirs.ics", event("shared-uid@calsync.test", "theirs"))
    store = make_store(peer, calendar, tmp_path / "cache")
    store.list()
    expected = UID_CONFLICT[peer.kind]
    if expected is None:  # DAViCal stores the duplicate; the engine reports it (below)
        store.add(Item.from_bytes(event("shared-uid@calsync.test", "ours")))
        assert len(store.list().versions) == 2
        store.close()
        return
    with pytest.raises(ItemRejected) as err:
        store.add(Item.from_bytes(event("shared-uid@calsync.test", "ours")))
    message = str(err.value)
    assert "already exists at" in message and "theirs.ics" in message
    assert f"HTTP {expected}" in message
    assert len(store.list().versions) == 1
    store.close()


def test_uid_conflict_through_the_engine(peer: Peer, calendar: str, tmp_path: Path) -> None:
    """Local item whose UID the server already holds under another href: never duplicated,
    never deleted; an item error on the first sync, adopted as one item afterwards."""
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "mine.ics").write_bytes(event("twice@calsync.test", "same"))
    peer.put(f"{calendar}elsewhere.ics", event("twice@calsync.test", "same"))
    cfg = config(tmp_path, calendar, vdir, verify=peer.verify)
    result = sync(cfg)
    # both sides have it with equal content: adopted, nothing written
    assert result.stopped is None and not result.errors and result.changes == 0, result
    assert vdir_uids(vdir) == {"twice@calsync.test": 1}


def test_cyrus_uid_in_another_calendar(cyrus: Peer, tmp_path: Path) -> None:
    """Cyrus keeps UIDs unique across all of a user's calendars: the add fails with 403
    naming the other calendar's href, as an item error, every sync; nothing deleted."""
    ours, other = cyrus.mkcalendar(), cyrus.mkcalendar()
    try:
        cyrus.put(f"{other}held.ics", event("held@calsync.test"))
        vdir = tmp_path / "vdir"
        vdir.mkdir()
        (vdir / "held.ics").write_bytes(event("held@calsync.test"))
        cfg = config(tmp_path, ours, vdir)
        for _ in range(2):
            result = sync(cfg)
            assert result.stopped is None and result.changes == 0
            (err,) = result.errors
            assert err.uid == "held@calsync.test"
            assert "already exists at" in err.message and other.split("/", 3)[3] in err.message
            assert "HTTP 403" in err.message
        assert vdir_uids(vdir) == {"held@calsync.test": 1}
    finally:
        cyrus.rmcalendar(ours)
        cyrus.rmcalendar(other)


def test_component_refused_is_an_item_error_never_a_deletion(peer: Peer, tmp_path: Path) -> None:
    url = peer.mkcalendar(comps=("VEVENT",))
    try:
        store = make_store(peer, url, tmp_path / "cache")
        store.list()
        with pytest.raises(ItemRejected, match="server refuses this component type"):
            store.add(Item.from_bytes(TODO))
        # the server's own answer, without our check against the advertised set
        store._components = None
        if REFUSES_VTODO[peer.kind]:
            with pytest.raises(ItemRejected, match="server refuses this component type"):
                store.add(Item.from_bytes(TODO))
        else:
            id, _ = store.add(Item.from_bytes(TODO))
            store.delete(id, store.list().versions[id])
        store.close()

        vdir = tmp_path / "vdir"
        vdir.mkdir()
        (vdir / "todo.ics").write_bytes(TODO)
        (vdir / "event.ics").write_bytes(event("ev@calsync.test"))
        cfg = config(tmp_path, url, vdir, verify=peer.verify)
        for _ in range(2):
            result = sync(cfg)
            assert result.stopped is None
            assert [e.message for e in result.errors if e.uid == "todo-1@calsync.test"]
            assert all("refuses this component type" in e.message for e in result.errors)
            assert vdir_uids(vdir) == {"todo-1@calsync.test": 1, "ev@calsync.test": 1}
        assert result.deleted_a == 0
    finally:
        peer.rmcalendar(url)


@pytest.mark.parametrize("name", ["with space.ics", "100%25.ics", "a@b.ics", "a%40c.ics"])
def test_awkward_hrefs(peer: Peer, calendar: str, tmp_path: Path, name: str) -> None:
    """Resources another client named with space, % and @ (raw or encoded)."""
    peer.put(f"{calendar}{name.replace(' ', '%20')}", event(f"href-{name}"))
    store = make_store(peer, calendar, tmp_path / "cache")
    versions = store.list().versions
    assert len(versions) == 1
    (id,) = versions
    assert " " in id or "%" in id or "@" in id  # decoded, one spelling
    got = list(store.get_many([id]))
    assert [(g[0], g[1].uid if isinstance(g[1], Item) else g[1]) for g in got] == [
        (id, f"href-{name}")
    ]
    new_version = store.update(id, Item.from_bytes(event(f"href-{name}", "moved")), versions[id])
    after = store.list()  # a delta: the server may spell the href differently there
    assert after.versions == {id: new_version}
    with pytest.raises(PreconditionFailed):
        store.delete(id, versions[id])
    store.delete(id, new_version)
    assert store.list().versions == {}
    store.close()


def test_put_without_etag_is_fetched_back(peer: Peer, calendar: str, tmp_path: Path) -> None:
    """Cyrus and DAViCal answer the PUT of a scheduling object without an ETag."""
    organizer = "mailto:test@example.net"  # the user's address on DAViCal
    extra = f"ORGANIZER:{organizer}\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:x@elsewhere.example"
    item = Item.from_bytes(event("sched@calsync.test", start="20300101T100000Z", extra=extra))
    store = make_store(peer, calendar, tmp_path / "cache")
    store.list()
    client = peer.client()
    raw = client.put(
        f"{calendar}probe-sched.ics", item.raw.replace(b"sched@", b"probe@"), create=True
    )
    client.close()
    assert raw.ok
    no_etag = raw.etag() is None
    assert no_etag == (peer.kind in ("cyrus", "davical")), raw.headers
    id, version = store.add(item)
    assert version and not version.startswith("W/")
    assert store.list().versions[id] == version
    store.close()


def test_cyrus_refuses_an_event_with_dtstart_only(cyrus: Peer, tmp_path: Path) -> None:
    """A valid event (DTSTART, no DTEND/DURATION) that Cyrus refuses: an item error
    quoting the server's reason."""
    url = cyrus.mkcalendar()
    try:
        store = make_store(cyrus, url, tmp_path / "cache")
        store.list()
        raw = event("dtstart-only@calsync.test").replace(b"DURATION:PT1H\r\n", b"")
        with pytest.raises(ItemRejected, match=r"invalid \(DTEND must occur after DTSTART\)"):
            store.add(Item.from_bytes(raw))
        assert store.list().versions == {}
        store.close()
    finally:
        cyrus.rmcalendar(url)


def test_radicale_initial_sync_tombstones_are_ignored(radicale: Peer, tmp_path: Path) -> None:
    url = radicale.mkcalendar()
    try:
        for i in range(3):
            radicale.put(f"{url}gone-{i}.ics", event(f"gone-{i}@calsync.test"))
            radicale.delete(f"{url}gone-{i}.ics")
        radicale.put(f"{url}alive.ics", event("alive@calsync.test"))
        client = radicale.client()
        resp = client.report(url, xml.sync_collection(None), "1")
        client.close()
        tombstones = [r for r in resp.multistatus().responses if r.status == 404]
        assert len(tombstones) == 3  # the quirk is real
        store = make_store(radicale, url, tmp_path / "cache")
        versions = store.list().versions
        assert [p.rsplit("/", 1)[1] for p in versions] == ["alive.ics"]
        store.close()
    finally:
        radicale.rmcalendar(url)


def test_discovery_by_calendar_name(peer: Peer, tmp_path: Path) -> None:
    store = make_store(peer, peer.base + "/", tmp_path / "cache", calendar="calendar")
    store.list()
    assert store.collection == peer.calendar
    store.close()
    # not a calendar, no name: a clear message listing the calendars found
    store = make_store(peer, peer.home, tmp_path / "cache2")
    with pytest.raises(Exception, match=r"not a calendar collection.*calendar"):
        store.list()
    store.close()
