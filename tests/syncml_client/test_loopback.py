"""The SyncML client against calsync's own server core, in-process (no sockets).

Both ends are real: the ``syncml`` store, its mirror and client session on one
side; ``ServerSession``, the server backend, its device mirror and a vdir on
the other.  Only HTTP is left out (``test_own_server`` covers it), which makes
every sync take milliseconds: the place for modes, protocol corners and
cutting the connection at every single message.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from calsync.sync.runner import run_pair
from calsync.syncml.model import (
    ONE_WAY_FROM_SERVER,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    SLOW_SYNC,
    TWO_WAY,
)
from tests.syncml_client.harness import (
    LOOP_URL,
    Loopback,
    client_section,
    edit,
    items_in,
    pair_config,
    put,
)


def cfg_for(tmp: Path, **kw: str) -> object:
    side = kw.pop("side", "b")
    return pair_config(tmp, client_section(LOOP_URL, **kw), syncml_side=side)


def test_two_way_add_modify_delete_on_each_side(tmp_path: Path, loopback: Loopback) -> None:
    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    put(loopback.store, "s1.ics", "s1", "Server one")
    put(loopback.store, "s2.ics", "s2", "Server two")
    put(local, "l1.ics", "l1", "Local one")
    put(local, "l2.ics", "l2", "Local two")
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    want = {"s1": "Server one", "s2": "Server two", "l1": "Local one", "l2": "Local two"}
    assert items_in(local) == items_in(loopback.store) == want
    assert loopback.alerts[-2:] == [SLOW_SYNC, TWO_WAY]  # first contact, then our changes

    edit(loopback.store, "s1", "Server one, edited")
    (loopback.store / "s2.ics").unlink()
    put(loopback.store, "s3.ics", "s3", "Server three")
    edit(local, "l1", "Local one, edited")
    next(p for p in local.iterdir() if "l2" in p.read_text()).unlink()
    put(local, "l3.ics", "l3", "Local three")
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert (r.added_a, r.updated_a, r.deleted_a) == (1, 1, 1)
    assert (r.added_b, r.updated_b, r.deleted_b) == (1, 1, 1)
    want = {
        "s1": "Server one, edited",
        "s3": "Server three",
        "l1": "Local one, edited",
        "l3": "Local three",
    }
    assert items_in(local) == items_in(loopback.store) == want

    before = loopback.requests
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert r.changes == 0 and not r.errors
    assert loopback.requests - before == 3  # one quiet session: three round trips


@pytest.mark.parametrize("side", ["a", "b"])
def test_every_mode_uses_its_sync_type_and_does_what_it_says(
    tmp_path: Path, loopback: Loopback, side: str
) -> None:
    cfg = cfg_for(tmp_path, side=side)
    local = tmp_path / "local"
    me, them = ("b", "a") if side == "b" else ("a", "b")  # syncml side, local side
    put(loopback.store, "s1.ics", "s1", "S1")
    put(local, "l1.ics", "l1", "L1")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]

    # one-way to the server: local changes go, the server's wait
    edit(local, "l1", "L1 v2")
    edit(loopback.store, "s1", "S1 v2")
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode=f"one-way-{them}-to-{me}")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts == [TWO_WAY, TWO_WAY]  # the server's change waits in the mirror
    assert items_in(loopback.store) == {"s1": "S1 v2", "l1": "L1 v2"}
    assert items_in(local) == {"s1": "S1", "l1": "L1 v2"}

    # one-way from the server: the server's change comes, ours waits
    edit(local, "l1", "L1 v3")
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode=f"one-way-{me}-to-{them}")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts == [ONE_WAY_FROM_SERVER]
    assert items_in(local) == {"s1": "S1 v2", "l1": "L1 v3"}
    assert items_in(loopback.store) == {"s1": "S1 v2", "l1": "L1 v2"}

    # two-way: what waited goes
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert items_in(loopback.store) == items_in(local) == {"s1": "S1 v2", "l1": "L1 v3"}

    # refresh to the server: it becomes a copy of the local side
    put(loopback.store, "s9.ics", "s9", "only on the server")
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode=f"refresh-from-{them}")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts == [REFRESH_FROM_CLIENT]
    assert items_in(loopback.store) == {"s1": "S1 v2", "l1": "L1 v3"}

    # refresh from the server: the local side becomes a copy of it
    put(local, "l9.ics", "l9", "only here")
    edit(local, "s1", "S1 local edit")
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode=f"refresh-from-{me}")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts == [REFRESH_FROM_SERVER]
    assert items_in(local) == {"s1": "S1 v2", "l1": "L1 v3"}

    # slow: everything compared, matched by UID, nothing deleted, nothing doubled
    put(local, "l4.ics", "l4", "L4")
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode="slow")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts == [SLOW_SYNC, TWO_WAY]
    want = {"s1": "S1 v2", "l1": "L1 v3", "l4": "L4"}
    assert items_in(local) == items_in(loopback.store) == want
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert r.changes == 0 and not r.errors


def test_dry_run_fetches_but_sends_nothing(tmp_path: Path, loopback: Loopback) -> None:
    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    put(loopback.store, "s1.ics", "s1", "S1")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    put(local, "l1.ics", "l1", "L1")
    edit(loopback.store, "s1", "S1 v2")
    r = run_pair(cfg, "p", dry_run=True)  # type: ignore[arg-type]
    assert (r.added_b, r.updated_a) == (1, 1)
    assert items_in(loopback.store) == {"s1": "S1 v2"}
    assert items_in(local) == {"s1": "S1", "l1": "L1"}
    loopback.alerts.clear()
    r = run_pair(cfg, "p", mode="refresh-from-b", dry_run=True)  # type: ignore[arg-type]
    assert r.deleted_a == 1  # l1 would go: the server lacks it
    assert loopback.alerts == [TWO_WAY]  # a dry run only fetches
    assert items_in(local) == {"s1": "S1", "l1": "L1"}
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert items_in(loopback.store) == items_in(local) == {"s1": "S1 v2", "l1": "L1"}


def test_md5_first_contact_gets_a_nonce_and_basic_works(tmp_path: Path, loopback: Loopback) -> None:
    cfg = cfg_for(tmp_path)
    put(loopback.store, "s1.ics", "s1", "S1")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    # calsync's server never takes an empty nonce: 401 + challenge, then a new session
    assert loopback.alerts[:2] == [SLOW_SYNC, SLOW_SYNC]
    loopback.alerts.clear()
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    assert loopback.alerts == [TWO_WAY]  # the remembered nonce works at once

    basic = cfg_for(tmp_path / "b", auth="basic", device="calsync-client-2")
    assert not run_pair(basic, "p").errors  # type: ignore[arg-type]
    assert items_in(tmp_path / "b" / "local") == {"s1": "S1"}


def test_wrong_password_stops_the_pair_and_changes_nothing(
    tmp_path: Path, loopback: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    put(loopback.store, "s1.ics", "s1", "S1")
    put(local, "l1.ics", "l1", "L1")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    before = {p.name: p.read_bytes() for p in local.iterdir()}
    put(local, "l2.ics", "l2", "L2")
    bad = cfg_for(tmp_path, password="not-the-password-X1")
    caplog.set_level(logging.DEBUG)
    r = run_pair(bad, "p")  # type: ignore[arg-type]
    assert r.stopped and "refused the credentials" in r.stopped and "test" in r.stopped
    assert "not-the-password-X1" not in r.stopped + caplog.text
    assert {p.name: p.read_bytes() for p in local.iterdir() if p.name != "l2.ics"} == before
    assert items_in(loopback.store) == {"s1": "S1", "l1": "L1"}
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert items_in(loopback.store) == {"s1": "S1", "l1": "L1", "l2": "L2"}


def _anchor(tmp: Path, value: str | None) -> None:
    db = sqlite3.connect(tmp / "state" / "stores" / "server" / "syncml-client.sqlite")
    db.execute("UPDATE datastores SET our_anchor = ?", (value,))
    db.commit()
    db.close()


def test_a_slow_sync_forced_by_the_server_duplicates_nothing(
    tmp_path: Path, loopback: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    for n in range(5):
        put(loopback.store, f"s{n}.ics", f"s{n}", f"S{n}")
        put(local, f"l{n}.ics", f"l{n}", f"L{n}")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    _anchor(tmp_path, "19990101T000000Z")  # our anchor no longer matches the server's
    edit(local, "l1", "L1 v2")
    edit(loopback.store, "s1", "S1 v2")
    caplog.set_level(logging.INFO, "calsync.syncml.client")
    loopback.alerts.clear()
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.alerts[0] == TWO_WAY and "status 508" in caplog.text
    want = {f"s{n}": f"S{n}" for n in range(5)} | {f"l{n}": f"L{n}" for n in range(5)}
    want |= {"s1": "S1 v2", "l1": "L1 v2"}
    assert items_in(local) == items_in(loopback.store) == want
    assert len(list(loopback.store.iterdir())) == 10 == len(list(local.iterdir()))


def test_packages_split_under_the_servers_message_size(tmp_path: Path, make_loopback) -> None:  # type: ignore[no-untyped-def]
    loopback = make_loopback(server_extra="max_msg_size = 12000")
    cfg = cfg_for(tmp_path, encoding="xml")
    local = tmp_path / "local"
    pad = "x" * 300
    for n in range(60):
        put(loopback.store, f"s{n}.ics", f"s{n}", f"S{n} {pad}")
        put(local, f"l{n}.ics", f"l{n}", f"L{n} {pad}")
    before = loopback.requests
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.requests - before > 12  # many messages per package, both ways
    assert len(items_in(local)) == len(items_in(loopback.store)) == 120
    assert items_in(local) == items_in(loopback.store)


def test_large_objects_go_in_chunks(tmp_path: Path, make_loopback) -> None:  # type: ignore[no-untyped-def]
    loopback = make_loopback(server_extra="max_msg_size = 8000")
    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    big = "Ω" + "long description " * 2000  # ~34 kB, a multi-byte character first
    put(local, "big.ics", "big", "Big", extra=f"DESCRIPTION:{big}")
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    from tests.syncml_client.harness import file_of, unfold

    assert big in unfold(file_of(loopback.store, "big").read_bytes())
    assert items_in(loopback.store) == {"big": "Big"}


def test_the_servers_large_objects_and_split_packages_reach_us(
    tmp_path: Path, loopback: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """We announce a small MaxMsgSize: the server splits its package 4 and sends a
    big item in chunks; we put them together."""
    import functools

    import calsync.stores.syncml as store_module
    from calsync.syncml.client import ClientConfig

    small = functools.partial(ClientConfig, max_msg_size=6000)
    monkeypatch.setattr(store_module, "ClientConfig", small)
    cfg = cfg_for(tmp_path)
    big = "Ω" + "a long description " * 1500  # ~28 kB
    put(loopback.store, "big.ics", "big", "Big", extra=f"DESCRIPTION:{big}")
    for n in range(40):
        put(loopback.store, f"s{n}.ics", f"s{n}", f"S{n}")
    before = loopback.requests
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    assert loopback.requests - before > 8
    from tests.syncml_client.harness import file_of, unfold

    assert big in unfold(file_of(tmp_path / "local", "big").read_bytes())
    assert items_in(tmp_path / "local") == items_in(loopback.store)
    assert r.changes == 41


def test_status_shows_what_waits_for_the_server(tmp_path: Path, loopback: Loopback) -> None:
    import json

    from click.testing import CliRunner

    from calsync.cli import cli

    cfg = cfg_for(tmp_path)
    local = tmp_path / "local"
    put(loopback.store, "s1.ics", "s1", "S1")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    put(local, "l1.ics", "l1", "L1")
    loopback.faults[loopback.requests + 4] = "before"  # the session of our change breaks
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert [e.uid for e in r.errors] == ["l1"]
    assert "kept and sent with the next sync" in r.errors[0].message
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[general]
state_dir = "{tmp_path / "state"}"
[stores.local]
type = "vdir"
path = "{local}"
create = true
[stores.server]
{client_section(LOOP_URL)}
[pairs.p]
a = "local"
b = "server"
"""
    )
    config.chmod(0o600)
    out = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
    queued = json.loads(out.stdout)["pairs"]["p"]["queued"]["server"]
    assert queued["count"] == 1
    assert queued["calendars"][0]["items"] == [{"op": "add", "uid": "l1"}]
    assert items_in(loopback.store) == {"s1": "S1"}
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.errors and items_in(loopback.store) == {"s1": "S1", "l1": "L1"}
    out = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
    assert json.loads(out.stdout)["pairs"]["p"]["queued"] == {}


def test_vcalendar_on_the_wire_loses_nothing_it_cannot_carry(
    tmp_path: Path, loopback: Loopback
) -> None:
    """vCalendar has no COMMENT: the server's copy lacks it, and its edit of the
    SUMMARY must not take the COMMENT away from us."""
    cfg = cfg_for(tmp_path, fmt="vcal10", encoding="xml")
    local = tmp_path / "local"
    put(local, "l1.ics", "l1", "L1", extra="COMMENT:only iCalendar says this")
    assert not run_pair(cfg, "p").errors  # type: ignore[arg-type]
    edit(loopback.store, "l1", "L1 edited on the server")
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.errors and r.updated_a == 1
    assert items_in(local) == {"l1": "L1 edited on the server"}
    from tests.syncml_client.harness import file_of, unfold

    assert "COMMENT:only iCalendar says this" in unfold(file_of(local, "l1").read_bytes())
