"""A first listing reads every item along (one calendar-query), get_many serves them
from memory; bounded; and when the query fails in any way, nothing is lost.  Many
wanted items come in large multigets, 50 at a time where those are refused."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from calsync.items import Item
from calsync.stores.caldav import store as store_module
from calsync.stores.caldav.store import CalDAVStore
from tests.conftest import event
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.helpers import requests_sent
from tests.stores.caldav.peers import Peer
from tests.stores.caldav.proxy import Proxy

pytestmark = pytest.mark.peer

NAMES = ["plain-{i}.ics", "with space {i}.ics", "at@sign-{i}.ics"]


def _fill(peer: Peer, calendar: str, n: int) -> dict[str, str]:
    """n events, some at hrefs with a space or an @; UID -> summary."""
    out = {}
    for i in range(n):
        name = NAMES[i % len(NAMES)].format(i=i)
        uid, summary = f"pre-{i}@calsync.test", f"ünïcode summary {i}"
        peer.put(calendar + quote(name), event(uid, summary, extra=f"DESCRIPTION:{'x' * 90}"))
        out[uid] = summary
    return out


def _read_all(store: CalDAVStore, ids: list[str]) -> dict[str, tuple[Item, str]]:
    got: dict[str, tuple[Item, str]] = {}
    for id, item, version in store.get_many(ids):
        assert isinstance(item, Item), item
        assert id not in got
        got[id] = (item, version)
    return got


def _summaries(got: dict[str, tuple[Item, str]]) -> dict[str, str]:
    out = {}
    for item, _ in got.values():
        master = item.master()
        assert master is not None
        out[item.uid] = (master.value("SUMMARY") or "").strip()
    return out


def test_first_listing_reads_every_item_along(peer: Peer, calendar: str, tmp_path: Path) -> None:
    expected = _fill(peer, calendar, 12)
    store = make_store(peer, calendar, tmp_path / "cache", auth="basic")
    versions = store.list().versions
    assert store.last_listing == "full" and len(versions) == 12
    assert len(store._prefetch) == 12, "the server refused or cut the calendar-query"
    before = requests_sent(store)
    got = _read_all(store, list(versions))
    assert requests_sent(store) == before  # all from memory
    assert set(got) == set(versions)
    assert all(version == versions[id] for id, (_, version) in got.items())
    assert _summaries(got) == expected
    # byte for byte what a GET answers (CRLF restored after XML parsing)
    client = peer.client()
    try:
        for id in list(got)[:3]:
            assert got[id][0].raw == client.request("GET", peer.url_of(id)).body
    finally:
        client.close()

    # the next syncs are incremental as ever, and read changed items by multiget
    store.close()
    store = make_store(peer, calendar, tmp_path / "cache")
    edited = next(id for id in versions if id.endswith("plain-0.ics"))
    peer.put(peer.url_of(edited), event("pre-0@calsync.test", "edited"))
    now = store.list().versions
    assert store.last_listing == "delta" and now[edited] != versions[edited]
    assert not store._prefetch
    before = requests_sent(store)
    again = _read_all(store, [edited])
    assert requests_sent(store) == before + 1
    assert _summaries(again) == {"pre-0@calsync.test": "edited"}
    store.close()


def test_prefetch_is_bounded(radicale: Peer, tmp_path: Path) -> None:
    url = radicale.mkcalendar()
    try:
        expected = _fill(radicale, url, 10)
        store = make_store(radicale, url, tmp_path / "cache", auth="basic")
        one = len(event("pre-1@calsync.test", "ünïcode summary 1", extra="DESCRIPTION:" + "x" * 90))
        store.prefetch_bytes = 3 * one + one // 2  # room for three of them
        versions = store.list().versions
        assert len(versions) == 10 and len(store._prefetch) == 3
        kept = sum(len(data) for _, data in store._prefetch.values())
        assert kept <= store.prefetch_bytes
        before = requests_sent(store)
        got = _read_all(store, list(versions))
        assert requests_sent(store) == before + 1  # one multiget for the other seven
        assert _summaries(got) == expected
        assert all(version == versions[id] for id, (_, version) in got.items())
        store.close()
    finally:
        radicale.rmcalendar(url)


class FirstReport:
    """Fault ``kind`` on the first REPORT only (the calendar-query of a first listing)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.done = False

    def __call__(self, n: int, method: str, path: str) -> str | None:
        if method != "REPORT" or self.done:
            return None
        self.done = True
        return self.kind


@pytest.mark.parametrize(
    "kind", ["400", "500", "500-after", "reset", "reset-after", "truncate", "stall"]
)
def test_failed_query_falls_back_without_losing_anything(
    radicale: Peer, tmp_path: Path, kind: str
) -> None:
    url = radicale.mkcalendar()
    fault = FirstReport(kind)
    proxy = Proxy(radicale.base, fault=fault, stall_seconds=3.0).start()
    try:
        expected = _fill(radicale, url, 7)
        path = url.split("/", 3)[3]
        store = make_store(radicale, f"{proxy.url}/{path}", tmp_path / "cache", timeout=1)
        versions = store.list().versions
        assert fault.done
        assert store.last_listing == "full" and len(versions) == 7
        assert not store._prefetch
        got = _read_all(store, list(versions))
        assert _summaries(got) == expected
        assert all(version == versions[id] for id, (_, version) in got.items())
        store.close()
        # what was stored is a complete listing with its token: the next sync is quiet
        store = make_store(radicale, f"{proxy.url}/{path}", tmp_path / "cache")
        assert store.list().versions == versions and store.last_listing == "unchanged"
        store.close()
    finally:
        proxy.stop()
        radicale.rmcalendar(url)


def test_many_items_come_in_large_multigets_and_50_where_refused(
    radicale: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MANY", 30)  # as if 1000
    monkeypatch.setattr(store_module, "LARGE_BATCH", 25)  # as if 500
    url = radicale.mkcalendar()
    refuse = FirstReport("400")
    refuse.done = True  # not yet
    proxy = Proxy(radicale.base, fault=refuse).start()
    try:
        expected = _fill(radicale, url, 60)
        path = url.split("/", 3)[3]
        store = make_store(radicale, f"{proxy.url}/{path}", tmp_path / "cache")
        store.prefetch_bytes = 0  # a listing without the items, as after a delta
        versions = store.list().versions
        ids = list(versions)
        before = requests_sent(store)
        got = _read_all(store, ids)
        assert requests_sent(store) - before == 3  # 25 + 25 + 10
        assert _summaries(got) == expected
        # a server refusing the large REPORT: the same items 50 at a time
        monkeypatch.setattr(store_module, "LARGE_BATCH", 60)
        refuse.done = False
        before = requests_sent(store)
        got = _read_all(store, ids)
        assert refuse.done
        assert requests_sent(store) - before == 3  # 60 refused, then 50 + 10
        assert _summaries(got) == expected
        assert all(version == versions[id] for id, (_, version) in got.items())
        store.close()
    finally:
        proxy.stop()
        radicale.rmcalendar(url)
