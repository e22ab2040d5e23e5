"""A conflict the items' own clocks cannot settle goes by the server's
``getlastmodified`` against the file's mtime (issue 20, item 9), on each real
server, as far as the server tells:

- Radicale and Cyrus give the time they stored the item;
- Xandikos has no ``getlastmodified`` for items (404 in the PROPFIND);
- DAViCal gives the item's own LAST-MODIFIED (or DTSTAMP), which says nothing
  the item did not: calsync does not take it for the server's time.

Where the server cannot tell, ``newest`` keeps both versions.
"""

from __future__ import annotations

import os
import time
from calendar import timegm
from pathlib import Path

import pytest

from calsync.sync.conflict import UNDECIDED
from calsync.sync.history import History
from calsync.sync.runner import history_file
from tests.conftest import event
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.helpers import config, server_items, summary, sync, vdir_file
from tests.stores.caldav.peers import Peer

pytestmark = pytest.mark.peer

UID = "x@calsync.test"
TELLS = {"radicale": True, "cyrus": True, "xandikos": False, "davical": False}


def last_conflict(cfg: object) -> dict[str, object]:
    h = History(history_file(cfg))  # type: ignore[arg-type]
    try:
        return h.conflicts(1)[0]
    finally:
        h.close()


def test_the_servers_last_modified_settles_a_tie(peer: Peer, calendar: str, tmp_path: Path) -> None:
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "x.ics").write_bytes(event(UID, "Original"))
    cfg = config(tmp_path, calendar, vdir, verify=peer.verify)
    cfg.pairs["main"].conflict = "newest"
    assert sync(cfg).added_b == 1
    client = peer.client()
    (href,) = [h for h, _ in server_items(client, calendar)]

    # what the server answers for one item
    store = make_store(peer, calendar, tmp_path / "probe")
    store.list()
    when = store.modified(href)
    store.close()
    if peer.kind == "xandikos":
        assert when is None
    elif peer.kind == "davical":  # the item's own LAST-MODIFIED (and DTSTAMP)
        assert when == calendar_seconds("20250101T000000Z")
    else:
        assert when is not None and abs(when - time.time()) < 300, when

    rounds = ("server", "file") if TELLS[peer.kind] else ("nobody",)
    for newer in rounds:
        # both sides edit, with the same LAST-MODIFIED, SEQUENCE and DTSTAMP
        vdir_file(vdir, UID).write_bytes(event(UID, f"{newer}: local"))
        peer.put(peer.url_of(href), event(UID, f"{newer}: remote"))
        shift = -86400 if newer == "server" else 86400  # the file a day older, or newer
        os.utime(vdir_file(vdir, UID), (time.time(), time.time() + shift))
        result = sync(cfg)
        assert result.conflicts == 1 and not result.errors, result
        row = last_conflict(cfg)
        on_server = {summary(it) for _, it in server_items(client, calendar)}
        if newer == "nobody":  # both kept: the local one under the UID, the server's a copy
            assert row["clock"] == UNDECIDED and row["winner"] is None, row
            assert on_server == {"nobody: local", "nobody: remote (conflict copy from server)"}
            assert len(list(vdir.glob("*.ics"))) == 2
            continue
        expected = f"{newer}: {'remote' if newer == 'server' else 'local'}"
        assert on_server == {expected}
        assert expected.encode() in vdir_file(vdir, UID).read_bytes()
        assert row["clock"] == "store mtime", row
        assert row["winner"] == ("server" if newer == "server" else "local")


def calendar_seconds(stamp: str) -> float:
    return float(timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
