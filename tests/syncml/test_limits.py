"""Poison items and heavy conversions in device sessions (issue 19, findings 4 and 5).

Real sessions (``ServerSession`` + ``Backend``: state DB, mirror, engine, a
vdir store) against simulated phones:

- a device's item out of limits (a start in year 9999, components nested deep)
  was accepted (201) although CalDAV refuses it, and then stopped every
  vCalendar device's session; now it gets an item status of its own, the
  other items sync, and an item already in the store that one device cannot
  take is an error for that device only;
- a vCalendar rule that expanded 2.9 million dates did so while holding the
  write lock on the shared ``syncml.sqlite`` (other accounts' sessions waited
  46 s); now no conversion runs while that lock is held.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calsync.syncml import content
from tests.adversarial.bombs import far_event, nested_event
from tests.conftest import event
from tests.syncml.simdevice import SimPhone
from tests.syncml.test_mirror import World

VCAL = "text/x-vcalendar"


def vcal_event(uid: str, summary: str, extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nSUMMARY:{summary}\r\nDTSTART:20250301T100000Z\r\n"
        f"DTEND:20250301T110000Z\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


FAR = far_event("far")  # DURATION:PT1H ends in year 10000
NESTED = nested_event("nested")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def vcal_phone(world: World, name: str = "sim-1") -> SimPhone:
    return SimPhone(world.server, world.backend, name, content_type=VCAL)


def test_device_input_out_of_limits_gets_its_own_status(world: World) -> None:
    phone = world.phone()
    far = phone.add(FAR.replace(b"DURATION:PT1H", b"DTEND:99991231T235900Z"))
    nested = phone.add(NESTED)
    fine = phone.add(event("fine", "Fine"))
    log = phone.sync()
    assert log.finished
    assert log.item_status[far] == 400 and log.item_status[nested] == 400
    assert log.item_status[fine] == 201
    assert sorted(world.items()) == ["fine"]
    # and nothing is left behind that would stop the next session
    phone.edit(fine, event("fine", "Still fine"))
    assert phone.sync().finished
    assert world.items()["fine"].master().value("SUMMARY") == "Still fine"  # type: ignore[union-attr]


def test_an_item_one_device_cannot_take_is_an_error_for_that_device_only(world: World) -> None:
    world.put(FAR)  # in the hub by other means (a file, another program)
    world.put(event("fine", "Fine"))
    ical = world.phone("ical-phone")
    vcal = vcal_phone(world, "vcal-phone")
    for _ in range(2):  # and not only once: the next session goes as well
        log = vcal.sync()
        assert log.finished and log.sync_status == 200
        assert vcal.uids() == ["fine"]
        assert ical.sync().finished and ical.uids() == ["far", "fine"]
    assert sorted(world.items()) == ["far", "fine"]  # nothing dropped on either side


@pytest.fixture
def lock_watch(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Each conversion that ran: was the shared database write-locked meanwhile?"""
    calls: dict[str, list[bool]] = {"decode": [], "reconcile": []}
    db_path = world.cfg.state_dir / "syncml.sqlite"

    def watch(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                calls[name].append(False)
            except sqlite3.OperationalError:
                calls[name].append(True)  # "database is locked"
            finally:
                other.close()
            return real(*args, **kw)

        return wrapper

    monkeypatch.setattr(content, "decode", watch("decode", content.decode))
    monkeypatch.setattr(content, "reconcile", watch("reconcile", content.reconcile))
    return calls


@pytest.mark.timeout(300)
def test_no_conversion_runs_under_the_shared_write_lock(
    world: World, lock_watch: dict[str, list[bool]]
) -> None:
    world.put(event("ours", "From the store"))
    phone = vcal_phone(world)
    heavy = phone.add(
        vcal_event("heavy", "Daily forever", "RRULE:D1 #100000000 99991231T000000Z\r\n")
    )
    began = time.monotonic()
    log = phone.sync()
    assert log.finished and log.item_status[heavy] == 201
    assert time.monotonic() - began < 10  # 9.8 s for the conversion alone before
    # the phone edits what we sent it: its vCalendar copy is reconciled with ours
    (ours,) = phone.find("UID:ours")
    phone.edit(ours, phone.items[ours].replace(b"From the store", b"Edited on the phone"))
    assert phone.sync().finished
    assert world.items()["ours"].master().value("SUMMARY") == "Edited on the phone"  # type: ignore[union-attr]
    assert lock_watch["decode"] and lock_watch["reconcile"]  # both ran,
    assert not any(lock_watch["decode"] + lock_watch["reconcile"])  # never under the lock
