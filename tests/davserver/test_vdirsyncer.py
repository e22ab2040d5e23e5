"""vdirsyncer 0.21, an independent CalDAV client, syncing a vdir with the endpoint two-way.

vdirsyncer is installed from PyPI into its own virtualenv in a cache dir on
first use (its dependencies must not mix with ours).  Changes on its side
reach the hub and, through the daemon's pair, the .ics file; changes made in
the .ics file reach vdirsyncer's side.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.conftest import event
from tests.davserver.helpers import PASSWORD, USER, Gateway, wait_for
from tests.davserver.test_hrefs import NAMES

VERSION = "0.21.0"


def vdirsyncer_bin() -> Path:
    cache = Path(os.environ.get("CALSYNC_TEST_CACHE", Path.home() / ".cache" / "calsync-tests"))
    venv = cache / f"vdirsyncer-{VERSION}"
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        cache.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
        )
        assert made.returncode == 0, f"cannot make a venv for vdirsyncer: {made.stderr}"
        got = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"vdirsyncer=={VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert got.returncode == 0, f"cannot install vdirsyncer {VERSION}: {got.stderr}"
    return exe


CONFIG = """
[general]
status_path = "{tmp}/vds/status/"

[pair cal]
a = "phone"
b = "gateway"
collections = null
conflict_resolution = "a wins"

[storage phone]
type = "filesystem"
path = "{tmp}/vds/phone/"
fileext = ".ics"

[storage gateway]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"
"""


def run(exe: Path, config: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(exe), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        input="y\n",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"vdirsyncer {' '.join(args)} failed:\n{out}"
    return out


def settle(gw: Gateway) -> None:
    time.sleep(0.2)  # let a triggered run get queued
    wait_for(gw.idle, 15, "the daemon's pair runs")


@pytest.mark.peer
def test_vdirsyncer_two_way_with_the_endpoint(gw: Gateway, tmp_path: Path) -> None:
    exe = vdirsyncer_bin()
    phone = tmp_path / "vds" / "phone"
    phone.mkdir(parents=True)
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        CONFIG.format(tmp=tmp_path, url=f"{gw.dav}{USER}/hub/", user=USER, password=PASSWORD)
    )
    laptop = tmp_path / "laptop.ics"
    laptop.write_bytes(event("laptop-1@x", "On the laptop", start="20250302T100000Z"))
    gw.daemon.scheduler.store_changed_threadsafe("laptop", "test")
    wait_for(lambda: list((tmp_path / "hub").iterdir()), 10, "the laptop's event in the hub")
    (phone / "phone-1.ics").write_bytes(event("phone-1@x", "On the phone"))

    run(exe, config, "discover")
    out = run(exe, config, "sync")
    assert "phone-1@x" in out or "Copying" in out
    # vdirsyncer's side got the laptop's event; the hub and the .ics file got the phone's
    assert any("On the laptop" in f.read_text() for f in phone.iterdir())
    settle(gw)
    assert "On the phone" in laptop.read_text()

    # edits on both sides
    f = next(p for p in phone.iterdir() if "phone-1@x" in p.read_text())
    f.write_text(f.read_text().replace("On the phone", "Edited on the phone"))
    laptop.write_text(laptop.read_text().replace("On the laptop", "Edited on the laptop"))
    gw.daemon.scheduler.store_changed_threadsafe("laptop", "test")
    settle(gw)
    run(exe, config, "sync")
    settle(gw)
    assert "Edited on the phone" in laptop.read_text()
    assert any("Edited on the laptop" in p.read_text() for p in phone.iterdir())

    # a deletion on vdirsyncer's side travels to the .ics file
    f.unlink()
    run(exe, config, "sync")
    settle(gw)
    assert "phone-1@x" not in laptop.read_text()
    assert "laptop-1@x" in laptop.read_text()
    saved = [(v.pair, v.reason) for v in gw.history("phone-1@x")]
    assert (f"caldav/{USER}", "remote-delete") in saved

    # nothing changed: a sync changes nothing on either side
    before = {p.name: p.read_bytes() for p in (tmp_path / "hub").iterdir()}
    out = run(exe, config, "sync")
    assert "Copying" not in out and "Deleting" not in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "hub").iterdir()} == before


# vdirsyncer's own test_dav_unicode_href, run by its CalDAV storage against the
# endpoint and taken through a whole life: upload under a name of the item's UID
# (the monkeypatch of that test), list, get, update, delete.
UNICODE_HREFS = r"""
import asyncio, json, sys

import aiohttp
from vdirsyncer.storage.dav import CalDAVStorage
from vdirsyncer.vobject import Item

url, user, password, phase, given = sys.argv[1:6]
given = json.loads(given)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//vdirsyncer unicode hrefs//EN\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
    "DTSTART:20250301T100000Z\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def main():
    connector = aiohttp.TCPConnector(limit=4)
    s = CalDAVStorage(url=url, username=user, password=password, connector=connector)
    s._get_href = lambda item: item.ident + s.fileext  # as test_dav_unicode_href does
    out = {}
    if phase == "upload":
        for uid in given:
            item = Item(EVENT.format(uid=uid, summary="Uploaded " + uid))
            href, etag = await s.upload(item)
            got, etag2 = await s.get(href)
            assert got.hash == item.hash and got.ident == uid, (uid, got.raw)
            out[uid] = href
    listed = {href: etag async for href, etag in s.list()}
    if phase == "update":
        for href, uid in given.items():
            item = Item(EVENT.format(uid=uid, summary="Updated " + uid))
            await s.update(href, item, listed[href])
        listed = {href: etag async for href, etag in s.list()}
        async for href, item, etag in s.get_multi(list(given)):
            assert "Updated" in item.raw and etag == listed[href], (href, item.raw)
            out[href] = item.ident
    if phase == "delete":
        for href in given:
            await s.delete(href, listed[href])
        listed = {href: etag async for href, etag in s.list()}
    await connector.close()
    print(json.dumps({"out": out, "listed": sorted(listed)}))


asyncio.run(main())
"""


def storage_phase(exe: Path, tmp: Path, url: str, phase: str, given: object) -> dict[str, Any]:
    script = tmp / "unicode_hrefs.py"
    script.write_text(UNICODE_HREFS)
    proc = subprocess.run(
        [str(exe.parent / "python"), str(script), url, USER, PASSWORD, phase, json.dumps(given)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"vdirsyncer's storage, {phase}:\n{proc.stdout}{proc.stderr}"
    got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return got


@pytest.mark.peer
def test_vdirsyncer_storage_with_unicode_hrefs(gw: Gateway, tmp_path: Path) -> None:
    exe = vdirsyncer_bin()
    url = f"{gw.dav}{USER}/hub/"
    hub = tmp_path / "hub"
    uids = ["град сатану" + str(uuid.uuid4()), *(n.removesuffix(".ics") for n in NAMES)]
    names = {uid + ".ics" for uid in uids}
    up = storage_phase(exe, tmp_path, url, "upload", uids)["out"]
    hrefs = {href: uid for uid, href in up.items()}
    assert {unquote(h).rpartition("/")[2] for h in hrefs} == names
    assert set(os.listdir(os.fsencode(hub))) == {n.encode() for n in names}
    # listed under the hrefs it uploaded to (vdirsyncer compares them as strings)
    assert storage_phase(exe, tmp_path, url, "list", None)["listed"] == sorted(hrefs)
    updated = storage_phase(exe, tmp_path, url, "update", hrefs)
    assert updated["out"] == hrefs and updated["listed"] == sorted(hrefs)
    for uid in uids:
        assert f"Updated {uid}" in (hub / f"{uid}.ics").read_text()
    assert storage_phase(exe, tmp_path, url, "delete", hrefs)["listed"] == []
    assert os.listdir(hub) == []


def status_hrefs(tmp: Path) -> dict[str, str]:
    """UID -> href on the endpoint's side, as vdirsyncer's status records them."""
    (db,) = (tmp / "vds" / "status").rglob("*.items")
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT ident, href_b FROM status"))
    finally:
        con.close()


@pytest.mark.peer
def test_vdirsyncer_syncs_items_whose_names_are_in_any_script(gw: Gateway, tmp_path: Path) -> None:
    """The hub's files carry such names; vdirsyncer lists and fetches them (multiget),
    then updates and deletes them by those hrefs, each change landing in that file."""
    exe = vdirsyncer_bin()
    hub = tmp_path / "hub"
    phone = tmp_path / "vds" / "phone"
    phone.mkdir(parents=True)
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        CONFIG.format(tmp=tmp_path, url=f"{gw.dav}{USER}/hub/", user=USER, password=PASSWORD)
    )
    uids = {name: f"named-{i}@x" for i, name in enumerate(NAMES)}
    for name, uid in uids.items():
        (hub / name).write_bytes(event(uid, f"Hub {uid}"))
    run(exe, config, "discover")
    run(exe, config, "sync")

    def on_phone() -> dict[str, Path]:
        found = {}
        for p in phone.iterdir():
            text = p.read_text()
            found.update({uid: p for uid in uids.values() if f"UID:{uid}\n" in text})
        return found

    assert set(on_phone()) == set(uids.values()) and len(list(phone.iterdir())) == len(NAMES)
    # vdirsyncer knows each item by the file's name (its status: ident -> href on our side)
    assert status_hrefs(tmp_path) == {
        uid: f"/dav/{USER}/hub/{quote(name, safe='/@')}" for name, uid in uids.items()
    }
    out = run(exe, config, "sync")  # the hrefs are stable: nothing to do
    assert "Copying" not in out and "Deleting" not in out, out
    # edits on the phone: PUT with If-Match to each href, into the same file
    files = on_phone()
    for uid in list(uids.values())[::2]:
        f = files[uid]
        f.write_text(f.read_text().replace(f"Hub {uid}", f"Phone {uid}"))
    # an edit in the hub reaches the phone
    (hub / NAMES[1]).write_bytes(
        event(uids[NAMES[1]], "Hub edited", last_modified="20250102T000000Z")
    )
    run(exe, config, "sync")
    assert set(os.listdir(os.fsencode(hub))) == {n.encode() for n in NAMES}
    for i, name in enumerate(NAMES):
        uid = uids[name]
        want = f"Phone {uid}" if i % 2 == 0 else ("Hub edited" if i == 1 else f"Hub {uid}")
        assert want in (hub / name).read_text(), name
    assert "Hub edited" in on_phone()[uids[NAMES[1]]].read_text()
    # deletions on the phone: DELETE of each href, each file gone
    for uid in list(uids.values())[:4]:
        on_phone()[uid].unlink()
    run(exe, config, "sync")
    assert set(os.listdir(os.fsencode(hub))) == {n.encode() for n in NAMES[4:]}
    out = run(exe, config, "sync")
    assert "Copying" not in out and "Deleting" not in out, out
