"""Device mirror + engine: what happens when devices and sessions misbehave.

Every test runs real sessions (``ServerSession`` + ``Backend``: state DB,
mirror, the sync engine, a vdir store) against a simulated phone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from calsync.config import parse as parse_config
from calsync.items import Item
from calsync.sync.history import History
from calsync.syncml.backend import Backend
from calsync.syncml.config import load
from calsync.syncml.mirror import DeviceDB
from tests.conftest import event
from tests.syncml.simdevice import SimPhone

TODO = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n"
    b"DTSTAMP:20250101T000000Z\r\nSUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)


def todo(uid: str, summary: str) -> bytes:
    return TODO.replace(b"{uid}", uid.encode()).replace(b"{summary}", summary.encode())


class World:
    def __init__(self, tmp: Path, extra: str = "") -> None:
        self.store = tmp / "store"
        self.store.mkdir()
        text = f"""
[general]
state_dir = "{tmp / "state"}"
[stores.laptop]
type = "vdir"
path = "{self.store}"
create = true
[syncml.accounts.alice]
password = "secret"
calendar = "laptop"
tasks = "laptop"
{extra}
"""
        cfg, errors = parse_config(text)
        assert not errors, errors
        self.cfg = cfg
        settings = load(cfg)
        self.server = settings.server
        self.backend = Backend(cfg, settings.accounts)

    def phone(self, name: str = "sim-1", datastore: str = "calendar") -> SimPhone:
        return SimPhone(self.server, self.backend, name, datastore=datastore)

    def items(self) -> dict[str, Item]:
        out = {}
        for p in self.store.glob("*.ics"):
            item = Item.from_bytes(p.read_bytes())
            out[item.uid] = item
        return out

    def put(self, data: bytes) -> None:
        item = Item.from_bytes(data)
        (self.store / f"{item.uid}.ics").write_bytes(data)

    def history(self) -> History:
        return History(self.cfg.state_dir / "history.sqlite")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def summaries(items: dict[str, Item]) -> dict[str, str]:
    out = {}
    for uid, item in items.items():
        master = item.master()
        out[uid] = master.value("SUMMARY") if master else ""
    return out


def test_first_sync_both_ways_and_changes(world: World) -> None:
    world.put(event("s1", "On the server"))
    phone = world.phone()
    phone.add(event("p1", "On the phone"))
    log = phone.sync()
    assert log.finished and log.our_alert == 201
    assert sorted(world.items()) == ["p1", "s1"]
    assert phone.uids() == ["p1", "s1"]
    # modify and delete on the phone; modify on the server
    phone.edit(phone.find("UID:p1")[0], event("p1", "Renamed on the phone"))
    world.put(event("s1", "Renamed on the server", last_modified="20250102T000000Z"))
    log = phone.sync()
    assert log.alert_status == 200 and log.finished
    assert summaries(world.items()) == {"p1": "Renamed on the phone", "s1": "Renamed on the server"}
    assert b"Renamed on the server" in phone.items[phone.find("UID:s1")[0]]
    phone.delete(phone.find("UID:s1")[0])
    (world.store / "p1.ics").unlink()
    phone.sync()
    assert world.items() == {} and phone.items == {}
    # both deletions are in history, restorable
    reasons = {(v.uid, v.reason) for v in world.history().versions()}
    assert ("s1", "remote-delete") in reasons and ("p1", "remote-delete") in reasons


def test_a_rejected_add_is_never_taken_for_a_deletion(world: World) -> None:
    world.put(event("keep", "Precious"))
    world.put(event("fine", "Fine"))
    phone = world.phone()
    phone.reject = {"keep"}
    for _ in range(5):  # rejected again and again, then parked
        log = phone.sync()
        assert log.finished
        assert sorted(world.items()) == ["fine", "keep"]
    assert phone.uids() == ["fine"]
    sent = [r for r in log.received if r[0] == "Add"]
    assert sent == []  # parked after three attempts: not re-sent every session
    # the item changes on the server: tried again, and now the phone takes it
    phone.reject = set()
    world.put(event("keep", "Precious, edited", last_modified="20250105T000000Z"))
    phone.sync()
    assert phone.uids() == ["fine", "keep"]
    assert sorted(world.items()) == ["fine", "keep"]


@pytest.mark.parametrize("keep_maps", [False, True])
def test_a_session_dying_before_the_map_leaves_no_duplicates(world: World, keep_maps: bool) -> None:
    phone = world.phone()
    phone.add(event("p1", "Phone"))
    phone.sync()
    for n in range(3):
        world.put(event(f"s{n}", f"Server {n}"))
    log = phone.sync(die_before_map=True, keep_maps=keep_maps)
    assert len([r for r in log.received if r[0] == "Add"]) == 3
    assert not log.finished
    log = phone.sync()
    if not keep_maps:
        assert log.alert_status == 508 and log.our_alert == 201  # forced slow sync
    assert log.finished
    assert phone.uids() == ["p1", "s0", "s1", "s2"]
    assert sorted(world.items()) == ["p1", "s0", "s1", "s2"]
    log = phone.sync()
    assert log.alert_status == 200 and log.received == []


def test_a_lost_reply_after_the_engine_ran_converges(world: World) -> None:
    phone = world.phone()
    phone.add(event("p1", "Phone"))
    phone.sync()
    world.put(event("s1", "Server"))
    luid = phone.add(event("p2", "Phone 2"))
    phone.sync(lose_package_4=True)  # the engine ran; the phone never heard back
    assert sorted(world.items()) == ["p1", "p2", "s1"]
    assert luid in phone.changed
    log = phone.sync()
    assert log.finished
    assert phone.uids() == ["p1", "p2", "s1"]
    assert sorted(world.items()) == ["p1", "p2", "s1"]


def test_a_reset_phone_slow_syncs_without_duplicates(world: World) -> None:
    for n in range(4):
        world.put(event(f"e{n}", f"Event {n}", start=f"2025030{n + 1}T100000Z"))
    phone = world.phone()
    phone.sync()
    assert len(phone.items) == 4
    # the phone forgets its anchors and re-creates its items with new LUIDs and no UIDs
    old = list(phone.items.values())
    phone.items.clear()
    phone.anchor = None
    for data in old:
        phone.add(data)
    phone.strip_uids = True
    log = phone.sync(mode=200)
    assert log.our_alert == 201 and log.finished
    assert sorted(world.items()) == [f"e{n}" for n in range(4)]
    assert len(phone.items) == 4  # nothing sent back twice
    phone.strip_uids = False
    log = phone.sync()
    assert log.alert_status == 200 and log.received == []


def test_a_second_slow_sync_creates_no_duplicates(world: World) -> None:
    phone = world.phone()
    for n in range(5):
        phone.add(event(f"p{n}", f"Phone {n}"))
    world.put(event("s", "Server"))
    phone.sync(mode=201)
    phone.sync(mode=201)
    assert len(world.items()) == 6 and len(phone.items) == 6


def test_device_and_server_edit_the_same_item_are_merged(world: World) -> None:
    phone = world.phone()
    luid = phone.add(event("m", "Original", extra="LOCATION:Room 1"))
    phone.sync()
    # the server renames it, but the phone never gets the Replace
    world.put(
        event("m", "Renamed on server", extra="LOCATION:Room 1", last_modified="20250103T000000Z")
    )
    phone.sync(lose_package_4=True)
    # meanwhile the phone moved it to another room
    phone.edit(
        luid, event("m", "Original", extra="LOCATION:Room 2", last_modified="20250104T000000Z")
    )
    phone.sync()
    merged = world.items()["m"].master()
    assert merged is not None
    assert merged.value("SUMMARY") == "Renamed on server"
    assert merged.value("LOCATION") == "Room 2"
    on_phone = phone.items[luid]
    assert b"Renamed on server" in on_phone and b"Room 2" in on_phone


def test_a_device_delete_loses_to_a_pending_server_edit(world: World) -> None:
    phone = world.phone()
    luid = phone.add(event("d", "Original"))
    phone.sync()
    world.put(event("d", "Edited on server", last_modified="20250103T000000Z"))
    phone.sync(lose_package_4=True)
    phone.delete(luid)
    phone.sync()
    assert summaries(world.items()) == {"d": "Edited on server"}
    assert phone.uids() == ["d"] and phone.find("Edited on server")


def test_a_soft_delete_keeps_the_item_on_the_server(world: World) -> None:
    phone = world.phone()
    luid = phone.add(event("soft", "Archived"))
    phone.sync()
    phone.delete(luid, soft=True)
    phone.sync()
    phone.sync()
    assert "soft" in world.items() and phone.items == {}


def test_two_devices_on_one_account(world: World) -> None:
    one, two = world.phone("sim-1"), world.phone("sim-2")
    one.add(event("x", "From one"))
    one.sync()
    two.sync()
    assert two.uids() == ["x"]
    two.edit(two.find("UID:x")[0], event("x", "Edited on two", last_modified="20250109T000000Z"))
    two.sync()
    one.sync()
    assert one.find("Edited on two")
    one.delete(one.find("UID:x")[0])
    one.sync()
    two.sync()
    assert world.items() == {} and two.items == {}


def test_calendar_and_tasks_share_a_store_without_mixing(world: World) -> None:
    world.put(event("ev", "An event"))
    world.put(todo("td", "A task"))
    cal, tasks = world.phone("mix", "calendar"), world.phone("mix", "todo")
    cal.sync()
    tasks.sync()
    assert cal.uids() == ["ev"] and tasks.uids() == ["td"]
    tasks.add(todo("td2", "Another task"))
    tasks.sync()
    cal.sync()
    assert cal.uids() == ["ev"] and sorted(world.items()) == ["ev", "td", "td2"]


def test_refresh_from_client_is_guarded(world: World) -> None:
    for n in range(10):
        world.put(event(f"e{n}", f"Event {n}"))
    phone = world.phone()
    phone.sync()
    for luid in list(phone.items)[:8]:
        del phone.items[luid]
    log = phone.sync(mode=203)
    assert log.sync_status == 510  # the guard stopped it: reported to the phone
    assert len(world.items()) == 10
    log = phone.sync()  # a later session restores the union
    assert len(world.items()) == 10 and len(phone.items) == 10


def test_refresh_from_server_and_one_way_modes(world: World) -> None:
    world.put(event("s", "Server"))
    phone = world.phone()
    phone.add(event("p", "Phone"))
    phone.sync()
    world.put(event("s2", "Server 2"))
    phone.add(event("p2", "Phone 2"))
    log = phone.sync(mode=202)  # one-way from the phone: nothing comes back
    assert log.received == [] and "p2" in world.items()
    log = phone.sync(mode=204)  # one-way from the server
    assert [op for op, _ in log.received] == ["Add"] and "s2" in phone.uids()
    log = phone.sync(mode=205)  # refresh from the server
    assert sorted(phone.uids()) == sorted(world.items())
    assert len(phone.items) == 4


def test_a_new_phone_holding_the_same_events_matches_them_by_content(world: World) -> None:
    """First sync of a phone that has the calendar already, under other UIDs."""
    for n in range(3):
        world.put(event(f"e{n}", f"Event {n}", start=f"2025030{n + 1}T100000Z"))
    phone = world.phone()
    for n in range(3):
        phone.add(event(f"phone-{n}", f"Event {n}", start=f"2025030{n + 1}T100000Z"))
    phone.add(event("phone-new", "Only on the phone"))
    log = phone.sync()
    assert log.finished
    assert sorted(world.items()) == ["e0", "e1", "e2", "phone-new"]
    assert len(phone.items) == 4


# -- nonces: the state a device reaches without a password (issue 19, finding 6) ---------------


def test_nonces_of_devices_that_never_logged_in_expire_and_are_capped(tmp_path: Path) -> None:
    now = [1_000_000.0]
    db = DeviceDB(tmp_path / "syncml.sqlite", clock=lambda: now[0])
    db.MAX_UNVERIFIED = 50
    first = db.issue_nonce("phone", "n-phone")
    assert first == "n-phone" and db.issue_nonce("phone", "other") == "n-phone"  # unchanged
    assert db.consume_nonce("phone", "n-phone", "n2")  # it logged in: kept for good
    for n in range(200):
        db.issue_nonce(f"junk-{n}", f"n{n}")
        now[0] += 1
    rows = db.db.execute("SELECT count(*) FROM nonces WHERE verified = 0").fetchone()[0]
    assert rows == 50
    assert db.nonce("junk-0") is None and db.nonce("junk-199") == "n199"  # oldest went first
    now[0] += DeviceDB.UNVERIFIED_TTL + 1
    db.issue_nonce("late", "n-late")  # a day later the rest have expired
    assert db.db.execute("SELECT device FROM nonces ORDER BY device").fetchall() == [
        ("late",),
        ("phone",),
    ]
    assert db.nonce("phone") == "n2"
    db.close()


def test_a_nonce_is_consumed_once(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "syncml.sqlite")
    assert not db.consume_nonce("phone", "n1", "n2")  # none issued
    db.issue_nonce("phone", "n1")
    assert not db.consume_nonce("phone", "wrong", "n2")
    assert db.consume_nonce("phone", "n1", "n2")
    assert not db.consume_nonce("phone", "n1", "n3")  # a replay
    assert db.nonce("phone") == "n2"
    db.set_nonce("phone", "n4")  # after a basic login
    assert db.nonce("phone") == "n4"
    db.close()


def test_a_database_of_an_earlier_version_gets_the_verified_column(tmp_path: Path) -> None:
    path = tmp_path / "syncml.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE nonces (device TEXT PRIMARY KEY, nonce TEXT NOT NULL, updated REAL)")
    old.execute("INSERT INTO nonces VALUES ('phone', 'n1', 0)")
    old.commit()
    old.close()
    db = DeviceDB(path)
    assert db.nonce("phone") == "n1"
    assert db.consume_nonce("phone", "n1", "n2")  # the device logs in with what it holds
    assert db.db.execute("SELECT verified FROM nonces").fetchall() == [(1,)]
    db.close()
