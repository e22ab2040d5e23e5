"""Incremental listing on each real server: ctag/token shortcut, sync-collection,
fallbacks, periodic full listing, request counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calsync.items import Item
from calsync.stores.caldav import store as store_module
from calsync.stores.caldav.store import CalDAVStore
from tests.conftest import event
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.helpers import requests_sent
from tests.stores.caldav.peers import Peer

pytestmark = pytest.mark.peer


def _listed(store: CalDAVStore) -> tuple[dict[str, str], str, int]:
    before = requests_sent(store) if store._client else 0
    versions = store.list().versions
    return versions, store.last_listing, requests_sent(store) - before


def test_no_change_is_one_request_and_deltas_are_exact(
    peer: Peer, calendar: str, tmp_path: Path
) -> None:
    for i in range(3):
        peer.put(f"{calendar}pre-{i}.ics", event(f"pre-{i}@calsync.test"))
    store = make_store(peer, calendar, tmp_path / "cache", auth="basic")
    versions, how, _ = _listed(store)
    assert how == "full" and len(versions) == 3
    # a new process: the cache and the remembered auth scheme make it one request
    store.close()
    store = make_store(peer, calendar, tmp_path / "cache")
    same, how, n = _listed(store)
    assert (same, how, n) == (versions, "unchanged", 1)

    # another client adds, edits and deletes
    peer.put(f"{calendar}pre-3.ics", event("pre-3@calsync.test"))
    peer.put(f"{calendar}pre-0.ics", event("pre-0@calsync.test", "edited"))
    peer.delete(f"{calendar}pre-1.ics")
    now, how, n = _listed(store)
    assert how == "delta" and n == 2
    assert set(now) == {p for p in versions if not p.endswith("pre-1.ics")} | {
        next(iter(versions)).rsplit("/", 1)[0] + "/pre-3.ics"
    }
    changed = next(p for p in now if p.endswith("pre-0.ics"))
    assert now[changed] != versions[changed]

    # our own writes are repeated by the next delta: not mistaken for a full listing
    store.add(Item.from_bytes(event("mine@calsync.test")))
    store.flush()
    mine, how, _ = _listed(store)
    assert how == "delta" and len(mine) == 4

    # another client adds and deletes something we never saw (and edits one item, so
    # that Xandikos' content-addressed token moves): the removal is ignored
    peer.put(f"{calendar}ghost.ics", event("ghost@calsync.test"))
    peer.put(f"{calendar}pre-3.ics", event("pre-3@calsync.test", "edited"))
    peer.delete(f"{calendar}ghost.ics")
    ghost, how, _ = _listed(store)
    assert how == "delta" and set(ghost) == set(mine)
    edited = next(p for p in ghost if p.endswith("pre-3.ics"))
    assert ghost[edited] != mine[edited]
    store.close()


def _state(cache: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((cache / "caldav-state.json").read_text())["state"]
    return state


def test_first_token_is_read_after_the_listing_and_kept_only_if_nothing_changed(
    peer: Peer, calendar: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token of a first listing is read while the engine works (listing.later_token);
    a change made between the listing and that read voids it, and the next sync
    still sees that change."""
    peer.put(f"{calendar}a.ics", event("a@calsync.test"))
    store = make_store(peer, calendar, tmp_path / "quiet")
    assert len(store.list().versions) == 1
    store.close()
    assert _state(tmp_path / "quiet")["token"]  # nothing changed: kept

    real = store_module.later_token

    def change_first(*args: Any) -> str | None:
        peer.put(f"{calendar}between.ics", event("between@calsync.test"))
        return real(*args)

    monkeypatch.setattr(store_module, "later_token", change_first)
    store = make_store(peer, calendar, tmp_path / "busy")
    first = store.list().versions
    store._settle_token()
    store.flush()
    assert not any(p.endswith("between.ics") for p in first)
    assert _state(tmp_path / "busy")["token"] is None  # the change voided it
    versions, how, _ = _listed(store)
    assert how == "full"
    assert any(p.endswith("between.ics") for p in versions)
    assert _state(tmp_path / "busy")["token"]
    store.close()


def test_rejected_or_unknown_token_falls_back_to_full_listing(
    peer: Peer, calendar: str, tmp_path: Path
) -> None:
    """Radicale/Cyrus answer 403, Xandikos 412; DAViCal answers an unknown token with
    a silent full listing that hides deletions -- recognised and verified."""
    for i in range(4):
        peer.put(f"{calendar}tok-{i}.ics", event(f"tok-{i}@calsync.test"))
    cache = tmp_path / "cache"
    store = make_store(peer, calendar, cache)
    before, _, _ = _listed(store)
    store.close()
    state_file = cache / "caldav-state.json"
    data = json.loads(state_file.read_text())
    token = data["state"]["token"]
    data["state"]["token"] = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    state_file.write_text(json.dumps(data))
    peer.delete(f"{calendar}tok-2.ics")  # a deletion the bad token cannot show

    store = make_store(peer, calendar, cache)
    after, how, _ = _listed(store)
    assert how == "full"
    assert set(after) == {p for p in before if not p.endswith("tok-2.ics")}
    store.close()


def test_periodic_full_listing(peer: Peer, calendar: str, tmp_path: Path) -> None:
    peer.put(f"{calendar}p.ics", event("p@calsync.test"))
    store = make_store(peer, calendar, tmp_path / "cache", full_listing_every=0)
    assert _listed(store)[1] == "full"
    versions, how, n = _listed(store)
    assert how == "full" and n == 2 and len(versions) == 1
    store.close()
    store = make_store(peer, calendar, tmp_path / "cache", full_listing_every=3600)
    assert _listed(store)[1] == "unchanged"
    store.close()


def test_get_many_uses_multiget_batches_of_50(peer: Peer, calendar: str, tmp_path: Path) -> None:
    store = make_store(peer, calendar, tmp_path / "cache")
    store.list()
    ids = [store.add(Item.from_bytes(event(f"batch-{i}@calsync.test")))[0] for i in range(60)]
    versions, _, _ = _listed(store)
    before = requests_sent(store)
    got = {id: (item, v) for id, item, v in store.get_many(ids)}
    assert requests_sent(store) - before == 2  # 50 + 10
    assert set(got) == set(ids)
    assert all(isinstance(item, Item) for item, _ in got.values())
    assert all(v == versions[id] for id, (_, v) in got.items())
    store.close()
