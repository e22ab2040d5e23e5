"""Two-way sync vdir <-> each real server through the engine (run_pair, real config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import Item
from tests.conftest import event
from tests.stores.caldav.helpers import (
    config,
    server_items,
    server_uids,
    summary,
    sync,
    vdir_file,
    vdir_items,
    vdir_uids,
)
from tests.stores.caldav.peers import Peer

pytestmark = pytest.mark.peer


def test_two_way_sync(peer: Peer, calendar: str, tmp_path: Path) -> None:
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    local = [f"local-{i}@calsync.test" for i in range(5)]
    remote = [f"remote-{i}@calsync.test" for i in range(4)]
    for uid in local:
        (vdir / f"{uid}.ics").write_bytes(event(uid, f"local {uid}"))
    for uid in remote:  # another client (a phone) made these on the server
        peer.put(f"{calendar}{uid}.ics", event(uid, f"remote {uid}"))
    cfg = config(tmp_path, calendar, vdir, verify=peer.verify)
    client = peer.client()

    first = sync(cfg)
    assert first.stopped is None and not first.errors, first
    assert (first.added_a, first.added_b) == (4, 5)
    everything = set(local) | set(remote)
    assert vdir_uids(vdir) == {u: 1 for u in everything}
    assert server_uids(client, calendar) == {u: 1 for u in everything}

    again = sync(cfg)  # servers rewrite bodies: no phantom changes either way
    assert again.changes == 0 and again.conflicts == 0 and not again.errors, again

    # edits on both sides, a delete on each
    f = vdir_file(vdir, local[1])
    f.write_bytes(event(local[1], "edited locally", last_modified="20250201T000000Z"))
    vdir_file(vdir, local[2]).unlink()
    hrefs = {item.uid: href for href, item in server_items(client, calendar)}
    peer.put(peer.url_of(hrefs[remote[1]]), event(remote[1], "edited remotely"))
    peer.delete(peer.url_of(hrefs[remote[2]]))

    third = sync(cfg)
    assert third.stopped is None and not third.errors, third
    assert (third.updated_a, third.updated_b, third.deleted_a, third.deleted_b) == (1, 1, 1, 1)
    assert third.added_a == third.added_b == third.conflicts == 0
    expected = everything - {local[2], remote[2]}
    assert vdir_uids(vdir) == {u: 1 for u in expected}
    on_server = dict((item.uid, item) for _, item in server_items(client, calendar))
    assert set(on_server) == expected
    assert summary(on_server[local[1]]) == "edited locally"
    assert summary(vdir_items(vdir)[remote[1]]) == "edited remotely"

    last = sync(cfg)
    assert last.changes == 0 and last.conflicts == 0 and not last.errors, last
    client.close()


def test_server_change_during_sync_is_never_overwritten(radicale: Peer, tmp_path: Path) -> None:
    """A phone edits the event on the server between our listing and our PUT: the PUT
    fails with 412 (If-Match), the phone's edit is never overwritten: the engine reads
    the event again and resolves both edits through the conflict policy in the same
    sync (merge: different properties -> both kept)."""
    from calsync.stores import StoreContext
    from calsync.stores.caldav.store import CalDAVStore
    from calsync.stores.vdir import VdirStore
    from calsync.sync.engine import Engine, PairOptions
    from calsync.sync.history import History
    from calsync.sync.status import StatusDB

    url = radicale.mkcalendar()
    uid = "raced@calsync.test"
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "raced.ics").write_bytes(event(uid, "original"))

    def engine() -> tuple[Engine, CalDAVStore]:
        server = CalDAVStore(
            "server",
            StoreContext(tmp_path / "cache"),
            url,
            username="test",
            password=lambda: "test",
        )
        local = VdirStore("local", StoreContext(tmp_path / "lcache"), vdir)
        status = StatusDB(tmp_path / "status.sqlite")
        history = History(tmp_path / "history.sqlite")
        return Engine(PairOptions("main"), local, server, status, history), server

    try:
        eng, server = engine()
        assert eng.run().added_b == 1
        server.close()
        # locally: a new location; on the phone, concurrently: a new summary
        (vdir / "raced.ics").write_bytes(
            event(uid, "original", extra="LOCATION:Room 1", last_modified="20250301T000000Z")
        )
        eng, server = engine()
        real_update = server.update

        raced: list[str] = []

        def racing_update(id: str, item: Item, version: str) -> str:
            if not raced:  # the phone's edit lands just before our first PUT
                raced.append(id)
                radicale.put(radicale.url_of(id), event(uid, "phone edit"))
            return real_update(id, item, version)

        server.update = racing_update  # type: ignore[method-assign]
        result = eng.run()
        server.close()
        assert raced and not result.errors and result.conflicts == 1, result
        client = radicale.client()
        h = History(tmp_path / "history.sqlite")
        saved = [v.content for v in h.versions(uid) if v.reason == "conflict-loser"]
        h.close()
        assert any(b"phone edit" in c for c in saved)  # the phone's version is kept too

        eng, server = engine()
        result = eng.run()
        server.close()
        assert not result.errors and result.changes == 0 and result.conflicts == 0, result
        (on_server,) = [item for _, item in server_items(client, url)]
        client.close()
        local = vdir_items(vdir)[uid]
        for it in (on_server, local):
            master = it.master()
            assert master is not None
            assert (master.value("SUMMARY"), master.value("LOCATION")) == ("phone edit", "Room 1")
    finally:
        radicale.rmcalendar(url)
