"""Faults between calsync and Radicale: 500s, connection resets, truncated bodies,
10 s stalls -- before and after the server did the work.  While they happen, syncs
fail partly; once they stop, the next syncs converge with nothing lost or duplicated."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync.config import Config
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
from tests.stores.caldav.proxy import Proxy

pytestmark = pytest.mark.peer

KINDS = ["500", "reset", "truncate", "500-after", "reset-after", "stall-after", "stall"]
STALLS_PER_PHASE = 2  # each costs the client's 1 s timeout (4 s for a retried read)


class Faults:
    """Every 2nd write (PUT, DELETE) and every 3rd read gets the next fault kind, so
    every sync under fire fails some writes; stalls are rationed."""

    def __init__(self) -> None:
        self.on = False
        self._cycle = itertools.cycle(KINDS)
        self._lock = threading.Lock()
        self._seen = {"write": 0, "read": 0}
        self.stalls = 0

    def __call__(self, n: int, method: str, path: str) -> str | None:
        with self._lock:
            if not self.on:
                return None
            what = "write" if method in ("PUT", "DELETE") else "read"
            self._seen[what] += 1
            if self._seen[what] % (2 if what == "write" else 3):
                return None
            kind = next(self._cycle)
            if kind.startswith("stall"):
                if self.stalls >= STALLS_PER_PHASE:
                    kind = "reset-after"
                else:
                    self.stalls += 1
            return kind


@pytest.fixture
def faulty(radicale: Peer) -> Iterator[tuple[Proxy, Faults]]:
    faults = Faults()
    proxy = Proxy(radicale.base, fault=faults, stall_seconds=10.0).start()
    yield proxy, faults
    proxy.stop()


def _converge(cfg: Config) -> None:
    """Faults are off: at most three syncs to settle, and the last changes nothing."""
    for _ in range(3):
        result = sync(cfg)
        assert result.stopped is None, result.stopped
        if result.changes == 0 and not result.errors and result.conflicts == 0:
            return
    raise AssertionError(f"did not converge: {result}")


def _check(radicale: Peer, url: str, vdir: Path, expected: dict[str, str]) -> None:
    """Exactly the expected UIDs, once each, with the expected summaries, on both sides."""
    assert vdir_uids(vdir) == {u: 1 for u in expected}
    client = radicale.client()
    try:
        assert server_uids(client, url) == {u: 1 for u in expected}
        remote = {item.uid: summary(item) for _, item in server_items(client, url)}
    finally:
        client.close()
    local = {uid: summary(item) for uid, item in vdir_items(vdir).items()}
    assert local == expected
    assert remote == expected


def test_faults_then_convergence(
    radicale: Peer, faulty: tuple[Proxy, Faults], tmp_path: Path
) -> None:
    proxy, faults = faulty
    url = radicale.mkcalendar()
    path = url.split("/", 3)[3]
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    expected: dict[str, str] = {}
    for i in range(30):
        uid = f"v{i}@calsync.test"
        (vdir / f"v{i}.ics").write_bytes(event(uid, f"local {i}"))
        expected[uid] = f"local {i}"
    for i in range(20):
        uid = f"s{i}@calsync.test"
        radicale.put(f"{url}s{i}.ics", event(uid, f"remote {i}"))
        expected[uid] = f"remote {i}"
    cfg = config(tmp_path, f"{proxy.url}/{path}", vdir, timeout=1, auth="basic")

    try:
        # phase 1: the first sync, under fire
        faults.on = True
        hurt = [sync(cfg) for _ in range(3)]
        faults.on = False
        assert any(r.stopped or r.errors for r in hurt)
        _converge(cfg)
        _check(radicale, url, vdir, expected)

        # phase 2: edits, deletes and additions on both sides, under fire again
        vdir_file(vdir, "v1@calsync.test").write_bytes(
            event("v1@calsync.test", "local edit", last_modified="20250301T000000Z")
        )
        vdir_file(vdir, "v3@calsync.test").unlink()
        (vdir / "v30.ics").write_bytes(event("v30@calsync.test", "local new"))
        radicale.put(f"{url}s1.ics", event("s1@calsync.test", "remote edit"))
        radicale.delete(f"{url}s2.ics")
        radicale.put(f"{url}s20.ics", event("s20@calsync.test", "remote new"))
        expected.update(
            {
                "v1@calsync.test": "local edit",
                "v30@calsync.test": "local new",
                "s1@calsync.test": "remote edit",
                "s20@calsync.test": "remote new",
            }
        )
        del expected["v3@calsync.test"], expected["s2@calsync.test"]
        faults.stalls = 0
        faults.on = True
        hurt = [sync(cfg) for _ in range(3)]
        faults.on = False
        assert any(r.stopped or r.errors for r in hurt)
        _converge(cfg)
        _check(radicale, url, vdir, expected)
    finally:
        radicale.rmcalendar(url)
    injected = proxy.stats.faults()
    assert set(injected) == set(KINDS), injected
