"""Two-way sync vdir <-> each real server through the engine (run_pair, real config)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
