"""The authorization rules themselves (``gateway/authz.py``), without HTTP.

What each route does with them is ``test_web_authz.py``; here: which pairs,
sub-pairs, saved versions and devices an account's scope holds, in the
corners a real page rarely shows (collections, a store two accounts share,
a pair whose name has a slash, what else saves versions), and that the
history's filtered queries count only what the scope sees.
"""

from __future__ import annotations

from pathlib import Path

from calsync.config import parse
from calsync.credentials import Login
from calsync.gateway.authz import OWNER, Scope, account_stores, scope_of
from calsync.sync.history import History

CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.a1]
type = "vdir"
path = "{tmp}/a1"
create = true
[stores.shared]
type = "vdir"
path = "{tmp}/shared"
create = true
[stores.b1]
type = "vdir"
path = "{tmp}/b1"
create = true
[stores.remote]
type = "vdir"
path = "{tmp}/remote"
create = true
[stores.roots]
type = "vdir"
path = "{tmp}/roots"
create = true
[stores.broots]
type = "vdir"
path = "{tmp}/broots"
create = true
[pairs.alices]
a = "a1"
b = "remote"
[pairs.family]
a = "shared"
b = "b1"
[pairs.bobs]
a = "b1"
b = "remote"
[pairs."odd/name"]
a = "b1"
b = "shared"
[pairs.work]
a = "roots"
b = "broots"
collections = "from a"
[pairs.bwork]
a = "broots"
b = "remote"
collections = "from a"
[caldav.users.alice]
password = "x"
calendars = ["a1", "shared", "roots"]
[syncml.accounts.bob]
password = "y"
calendar = "b1"
tasks = "broots"
"""


def scopes(tmp: Path) -> tuple[Scope, Scope]:
    text = CONFIG.format(tmp=tmp)
    cfg, errors = parse(text, tmp / "config.toml")
    assert not errors, errors
    return scope_of(cfg, Login("alice", None)), scope_of(cfg, Login("bob", "bobs-phone"))


def test_an_accounts_stores_and_pairs(tmp_path: Path) -> None:
    alice, bob = scopes(tmp_path)
    assert alice.role == "account" and bob.role == "device" and bob.device == "bobs-phone"
    cfg, _ = parse(CONFIG.format(tmp=tmp_path), tmp_path / "config.toml")
    assert account_stores(cfg, "alice") == ["a1", "shared", "roots"]
    assert account_stores(cfg, "bob") == ["b1", "broots"]
    # a pair with one of its stores on either side; a shared store's pair is both's
    assert {p for p, _, _ in alice.pairs} == {"alices", "family", "odd/name", "work"}
    assert {p for p, _, _ in bob.pairs} == {"family", "bobs", "odd/name", "work", "bwork"}
    assert alice.sees_pair("work/projects") and not alice.sees_pair("bwork/projects")
    assert not alice.sees_pair("bobs") and not alice.sees_pair("alices/x")  # no collections
    assert alice.sees_pair("odd/name")  # a pair's own name with a slash, not a sub-pair
    assert OWNER.sees_pair("anything") and OWNER.sees_version("x", "y")


def test_saved_versions_of_an_account(tmp_path: Path) -> None:
    alice, _ = scopes(tmp_path)
    seen = [
        ("a1", "caldav/alice"),  # her CalDAV program's write
        ("a1", "restore"),
        ("remote", "alices"),  # the other side of her pair
        ("b1", "family"),  # the shared pair's other side
        ("roots/projects", "work/projects"),  # a collection of her pair
        ("broots/projects", "work/projects"),
    ]
    unseen = [
        ("b1", "caldav/bob"),
        ("b1", "bobs"),
        ("remote", "bobs"),  # a store she reaches through her pair, saved by bob's
        ("remote", "restore"),
        ("broots/projects", "bwork/projects"),
        ("remote/x", "work/x"),  # not a store of the pair's roots
        ("b1", "alices/x"),  # her pair has no collections
    ]
    for store, pair in seen:
        assert alice.sees_version(store, pair), (store, pair)
    for store, pair in unseen:
        assert not alice.sees_version(store, pair), (store, pair)
    assert alice.sees_store("remote") and alice.sees_store("a1") and not alice.sees_store("x")


def test_devices_and_managing_them(tmp_path: Path) -> None:
    alice, bob = scopes(tmp_path)
    snap = {
        "pairs": {"alices": {}, "bobs": {}, "work": {}, "bwork": {}},
        "devices": [{"account": "alice", "device": "n"}, {"account": "bob", "device": "s"}],
        "clients": [{"account": "bob", "device": "DAVx5"}],
        "paired": [{"account": "alice", "name": "p1"}, {"account": "bob", "name": "p2"}],
        "daemon": {"stopping": False},
    }
    mine = alice.snapshot(snap)
    assert list(mine["pairs"]) == ["alices", "work"]
    assert mine["devices"] == [{"account": "alice", "device": "n"}]
    assert mine["clients"] == [] and mine["paired"] == [{"account": "alice", "name": "p1"}]
    assert OWNER.snapshot(snap) == snap
    # pairing: the owner for anyone, an account for itself, a device for nobody
    assert OWNER.pairing_accounts(["alice", "bob"]) == ["alice", "bob"]
    assert alice.pairing_accounts(["alice", "bob"]) == ["alice"]
    assert bob.pairing_accounts(["alice", "bob"]) == [] and not bob.may_manage_devices
    assert OWNER.revoke_account is None and alice.revoke_account == "alice"
    assert bob.describe() == "bob (app password of bobs-phone)"


def test_the_history_counts_only_what_a_scope_sees(tmp_path: Path) -> None:
    alice, _ = scopes(tmp_path)
    h = History(tmp_path / "history.sqlite")
    try:
        for i in range(30):  # bob's, newest
            h.record(uid=f"b{i}", store="b1", pair="bobs", reason="update", content=b"x")
        for i in range(3):
            h.record(uid=f"a{i}", store="a1", pair="alices", reason="update", content=b"x")
        for i in range(30):
            h.record(uid=f"b{i}", store="b1", pair="bobs", reason="update", content=b"x")
            h.record_conflict(pair="bobs", uid=f"b{i}", policy="newest", outcome="x", details={})
        h.record_conflict(pair="work/projects", uid="a0", policy="newest", outcome="x", details={})
        versions = h.versions(limit=2, where=alice.sees_version)
        assert [v.uid for v in versions] == ["a2", "a1"]  # not "none among the newest 2"
        assert [v.uid for v in h.versions("a0", where=alice.sees_version)] == ["a0"]
        assert h.versions("b0", where=alice.sees_version) == []
        assert len(h.versions("b0")) == 2  # the owner's query is unchanged
        assert [c["pair"] for c in h.conflicts(5, where=alice.sees_conflict)] == ["work/projects"]
        assert len(h.conflicts(5)) == 5
    finally:
        h.close()
