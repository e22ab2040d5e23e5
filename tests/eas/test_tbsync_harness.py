"""The Thunderbird EAS harness (tests/eas/tbsync.py) works, up to the wire.

Before calsync has an ActiveSync server, these show that the real EAS-4-TbSync 5.3.4 in a
real headless Thunderbird 153 can be set up and driven by a test: it registers with the host,
an account is made without a person, and the provider talks to a scratch endpoint
(tbsync_fake_server.py) over TLS with a test CA - OPTIONS, Provision, FolderSync, Sync - with
Basic auth; what the endpoint sends shows up in Thunderbird's calendar, and what the test makes
in Thunderbird reaches the endpoint as Sync Add, Change and Delete.

And why the harness brings its own host: TbSync 5.0.10, the only TbSync snapshot, refuses the
provider's protocol (the test fails the day a compatible snapshot appears, so the harness can
switch to the real TbSync).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eas.tbsync import (
    HOST_ID,
    PROVIDER_ID,
    TbSyncError,
    TbSyncPeer,
    provider_protocol_version,
    tbsync_protocol_version,
)
from tests.eas.tbsync_fake_server import (
    FINAL_POLICY_KEY,
    TEMP_POLICY_KEY,
    FakeEas,
    appointment,
)
from tests.gateway.helpers import wait_for
from tests.pki import make_pki

pytestmark = [pytest.mark.peer, pytest.mark.slow]

USER = "alice"
PASSWORD = "Tb-s3cret-Pw"

NEW_EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
    "BEGIN:VEVENT\r\nUID:tb-made@calsync.test\r\nDTSTAMP:20260301T000000Z\r\n"
    "DTSTART:20260311T100000Z\r\nDTEND:20260311T110000Z\r\n"
    "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
NEW_TASK = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
    "BEGIN:VTODO\r\nUID:tb-task@calsync.test\r\nDTSTAMP:20260301T000000Z\r\n"
    "DUE;VALUE=DATE:20260320\r\nSUMMARY:Task made in Thunderbird\r\n"
    "END:VTODO\r\nEND:VCALENDAR\r\n"
)


def test_tbsync_5_0_10_refuses_the_provider(tmp_path: Path) -> None:
    assert provider_protocol_version() == 3
    assert tbsync_protocol_version() == "1.0"
    peer = TbSyncPeer(tmp_path / "tb")
    peer.start(host="tbsync-5.0.10")
    try:
        active = {a["id"]: a for a in peer.installed() if a["active"]}
        assert active[HOST_ID]["version"] == "5.0.10"
        assert active[PROVIDER_ID]["version"] == "5.3.4"
        # the provider's own announce at start-up was refused: TbSync knows no provider
        assert peer.tbsync_providers() == {}
        # the same announce again, from the provider's page, and the answer
        assert peer.announce_to(HOST_ID, 3) == {
            "ok": False,
            "error": "protocol-version-mismatch",
            "tbsyncProtocolVersion": "1.0",
            "yours": 3,
        }
        # the version is the only obstacle: with TbSync's own it is accepted
        assert peer.announce_to(HOST_ID, "1.0")["ok"] is True
        assert set(peer.tbsync_providers()) == {"eas"}
    finally:
        peer.stop()


def test_the_provider_syncs_with_an_endpoint_both_ways(tmp_path: Path) -> None:
    ca, cert, key = make_pki(tmp_path / "pki")
    with FakeEas(USER, PASSWORD, cert, key) as fake:
        fake.seed(
            "cal1",
            appointment("srv-1@fake", "From the server", "20260310T080000Z", "20260310T090000Z"),
        )
        peer = TbSyncPeer(tmp_path / "tb")
        peer.start()
        try:
            _check(peer, fake, ca)
        finally:
            peer.stop()


def _check(peer: TbSyncPeer, fake: FakeEas, ca: Path) -> None:
    active = {a["id"]: a for a in peer.installed() if a["active"]}
    assert active[PROVIDER_ID]["version"] == "5.3.4" and active[PROVIDER_ID]["temporary"]
    assert active[HOST_ID]["version"] == "3.0.0"
    status = peer.host("status")
    assert status["announces"][0]["providerVersion"] == "5.3.4"
    assert status["announces"][0]["reply"]["ok"] is True
    assert status["connected"] == ["eas"] and status["portName"] == "tbsync-v5"

    # -- the account, through the provider's setup path -------------------------------------
    assert fake.requests == []
    account = peer.add_account(fake.url, USER, PASSWORD, ca=ca, name="probe")
    row = peer.account(account)
    assert row["enabled"] and row["provider"] == "eas" and row["accountName"] == "probe"
    assert row["custom"]["server"] == fake.url and row["custom"]["user"] == USER
    assert row["custom"]["asversion"] == "14.1" and row["custom"]["password"] == "***"
    assert row["custom"]["policykey"] == FINAL_POLICY_KEY

    # every request authenticated with Basic as the user, over TLS to the test CA's server
    assert fake.requests and all(r.user == USER and r.auth_ok for r in fake.requests)
    seen = [(r.method, r.command, r.status, r.headers.get("X-MS-PolicyKey")) for r in fake.requests]
    assert seen == [
        ("OPTIONS", None, 200, None),
        ("POST", "FolderSync", 449, None),
        ("POST", "Provision", 200, "0"),
        ("POST", "Provision", 200, TEMP_POLICY_KEY),
        ("POST", "FolderSync", 200, FINAL_POLICY_KEY),
    ]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert all(r.headers["MS-ASProtocolVersion"] == "14.1" for r in posts)
    assert all(r.query["User"] == USER and r.query["DeviceType"] == "TbSync" for r in posts)
    assert len({r.query["DeviceId"] for r in posts}) == 1
    first_provision = fake.commands("Provision")[0].xml or ""
    assert "DeviceInformation" in first_provision  # 14.1 embeds it in Provision

    folders = {f["folderId"]: f for f in peer.folders(account)}
    assert {(f["targetType"], f["displayName"], f["selected"]) for f in folders.values()} == {
        ("calendars", "Calendar", True),
        ("tasks", "Tasks", True),
    }

    # -- the server's appointment appears in Thunderbird --------------------------------------
    peer.sync(account)
    calendars = peer.calendars(account)
    assert len(calendars["calendars"]) == 1 and len(calendars["tasks"]) == 1
    cal, tasks = calendars["calendars"][0], calendars["tasks"][0]
    info = peer.calendar_info(cal)
    assert info["type"] == f"ext-{PROVIDER_ID}" and info["events"] and not info["tasks"]
    assert peer.calendar_info(tasks)["tasks"]
    shown = peer.events(cal)
    assert set(shown) == {"srv-1@fake"}
    assert "SUMMARY:From the server" in shown["srv-1@fake"]
    assert "DTSTART:20260310T080000Z" in shown["srv-1@fake"]

    # -- what is made in Thunderbird goes to the server ---------------------------------------
    assert peer.add_event(cal, NEW_EVENT.format(summary="Made in Thunderbird")) == (
        "tb-made@calsync.test"
    )
    queued = peer.changelog(account, "f-cal1")
    assert [(e["itemId"], e["status"]) for e in queued] == [
        ("tb-made@calsync.test", "added_by_user")
    ]
    peer.sync(account)
    assert peer.changelog(account, "f-cal1") == []
    [added] = fake.collections["cal1"].adds
    assert added["UID"] == "tb-made@calsync.test" and added["Subject"] == "Made in Thunderbird"
    assert added["StartTime"] == "20260311T100000Z" and added["EndTime"] == "20260311T110000Z"
    assert f"X-EAS-SERVERID:{added['server_id']}" in peer.events(cal)["tb-made@calsync.test"]

    peer.edit_event(cal, NEW_EVENT.format(summary="Edited in Thunderbird"))
    peer.delete_event(cal, "srv-1@fake")
    outcome = peer.sync(account, "f-cal1")  # that folder alone
    assert list(outcome["folders"]) == ["f-cal1"]
    assert outcome["folders"]["f-cal1"]["type"] == "success"
    [changed] = fake.collections["cal1"].changes
    assert changed["server_id"] == added["server_id"]
    assert changed["Subject"] == "Edited in Thunderbird"
    assert fake.collections["cal1"].deletes == ["cal1:1"]
    assert set(peer.events(cal)) == {"tb-made@calsync.test"}

    # a task, and no sync asked for: the provider syncs that calendar itself 15 s after the
    # last edit (its default), through the host's REQUEST_SYNC
    mark = peer.last_seq()
    assert peer.add_task(tasks, NEW_TASK) == "tb-task@calsync.test"
    wait_for(lambda: fake.collections["task1"].adds, 90, "the task to reach the server", step=1)
    [task] = fake.collections["task1"].adds
    assert task["Subject"] == "Task made in Thunderbird"
    assert task["DueDate"].startswith("2026-03-20")
    requested = [e["args"] for e in peer.event_log(mark) if e.get("cmd") == "requestSync"]
    assert {"parentId": tasks} in requested

    # it sends no command the endpoint did not advertise (Settings, GetItemEstimate, Ping)
    assert {r.command for r in fake.requests if r.method == "POST"} == {
        "FolderSync",
        "Provision",
        "Sync",
    }

    # -- a wrong password fails loudly, and no password is ever in what the host hands out ----
    before = len(fake.requests)
    with pytest.raises(TbSyncError, match=r"E:AUTH|401|uthenticat"):
        peer.add_account(fake.url, USER, "not-the-password", name="wrong")
    refused = fake.requests[before:]
    assert refused and all(not r.auth_ok and r.status == 401 for r in refused)
    shared = json.dumps(peer.host("status")) + json.dumps(peer.event_log())
    assert PASSWORD not in shared and "not-the-password" not in shared
