"""The CalDAV endpoint with a real client (python ``caldav``) and raw requests.

Discovery as phones do it, writes through calsync (history first, the pairs
triggered), incremental sync, ctag/etags, multiget and time-range queries.
"""

from __future__ import annotations

import datetime
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import caldav
import httpx
import pytest
from caldav.lib.error import NotFoundError
from caldav.lib.url import URL

from calsync.davserver.state import TOKEN_PREFIX
from tests.davserver.helpers import PASSWORD, USER, Gateway, ics, start, wait_for


def client(gw: Gateway, url: str | None = None) -> caldav.DAVClient:
    return caldav.DAVClient(url=url or gw.dav, username=USER, password=PASSWORD)


def calendar(gw: Gateway, name: str) -> caldav.Calendar:
    return client(gw).calendar(url=f"{gw.dav}{USER}/{name}/")


PROPFIND_DISCOVERY = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:current-user-principal/><d:principal-URL/><c:calendar-home-set/></d:prop>
</d:propfind>"""


def hrefs(xml: str, prop: str) -> list[str]:
    root = ET.fromstring(xml.encode())
    return [h.text or "" for p in root.iter(prop) for h in p.iter("{DAV:}href")]


def test_discovery_as_a_phone_does_it(gw: Gateway) -> None:
    # 1. only the host is known: /.well-known/caldav redirects to the DAV root
    r = gw.request("PROPFIND", "/.well-known/caldav", headers={"Depth": "0"})
    assert r.status_code == 301 and r.headers["location"] == "/dav/"
    # 2. the root tells who is logged in; principal URLs end in "/"
    r = gw.request("PROPFIND", "/dav/", headers={"Depth": "0"}, content=PROPFIND_DISCOVERY)
    assert r.status_code == 207, r.text
    assert hrefs(r.text, "{DAV:}current-user-principal") == [f"/dav/{USER}/"]
    # 3. the principal names itself and its calendar home
    r = gw.request("PROPFIND", f"/dav/{USER}/", headers={"Depth": "0"}, content=PROPFIND_DISCOVERY)
    assert r.status_code == 207
    assert hrefs(r.text, "{DAV:}principal-URL") == [f"/dav/{USER}/"]
    assert hrefs(r.text, "{urn:ietf:params:xml:ns:caldav}calendar-home-set") == [f"/dav/{USER}/"]
    # 4. the library's own discovery finds exactly the configured calendars
    principal = client(gw, gw.url("/")).principal()
    assert str(principal.url).endswith(f"/dav/{USER}/")
    cals = {str(c.url).rsplit("/", 2)[1]: c for c in principal.calendars()}
    assert set(cals) == {"hub", "laptop"}
    assert cals["hub"].get_display_name() == "hub"
    assert "VEVENT" in cals["hub"].get_supported_components()
    # bob sees only his calendar; alice's are not his
    bob = caldav.DAVClient(url=gw.dav, username="bob", password="bobs-password").principal()
    assert [str(c.url).rsplit("/", 2)[1] for c in bob.calendars()] == ["laptop"]
    r = gw.request("PROPFIND", f"/dav/{USER}/hub/", auth=("bob", "bobs-password"))
    assert r.status_code in (403, 404)


def test_a_device_write_goes_through_calsync_and_reaches_the_other_store(
    gw: Gateway, tmp_path: Path
) -> None:
    hub = calendar(gw, "hub")
    hub.save_event(ics("keep@x", "Stays"))
    # odd but valid: bare LF, a folded line, a parameter vobject would re-case
    body = ics(
        "dev-1@phone", "From the phone", extra="X-PHONE;x-Param=a:long value\n  folded here"
    ).replace("\r\n", "\n")
    r = gw.request("PUT", f"/dav/{USER}/hub/dev-1.ics", content=body.encode())
    assert r.status_code == 201, r.text
    # the device's bytes are stored as they came, not re-serialized, under its name
    assert (tmp_path / "hub" / "dev-1.ics").read_bytes() == body.encode()
    ev = hub.event_by_url(f"{gw.dav}{USER}/hub/dev-1.ics")
    # the daemon ran the pair on its own: the event is in the .ics file
    laptop = tmp_path / "laptop.ics"
    wait_for(lambda: laptop.exists() and "From the phone" in laptop.read_text(), 10, "the pair run")
    # an update saves the overwritten version to history first
    ev.load()
    ev.data = ev.data.replace("From the phone", "Moved on the phone")
    ev.save()
    mine = [v for v in gw.history("dev-1@phone") if v.pair == f"caldav/{USER}"]
    assert mine and mine[0].reason == "update" and b"From the phone" in mine[0].content
    wait_for(lambda: "Moved on the phone" in laptop.read_text(), 10, "the update to travel")
    # a delete too, and it travels
    wait_for(gw.idle, 10, "the daemon to settle")
    ev.delete()
    mine = [v for v in gw.history("dev-1@phone") if v.pair == f"caldav/{USER}"]
    assert mine[0].reason == "remote-delete" and b"Moved on the phone" in mine[0].content
    wait_for(lambda: "dev-1@phone" not in laptop.read_text(), 10, "the delete to travel")
    assert [f.name for f in (tmp_path / "hub").iterdir()] == ["keep@x.ics"]


def test_a_wiped_calendar_does_not_spread(gw: Gateway, tmp_path: Path) -> None:
    """Guards apply: a device emptying its calendar empties the hub (every version
    saved), but the pair's guard keeps the other store until the user decides."""
    hub = calendar(gw, "hub")
    for n in range(2):
        hub.save_event(ics(f"w{n}@x", f"Event {n}"))
    laptop = tmp_path / "laptop.ics"
    wait_for(lambda: laptop.exists() and laptop.read_text().count("BEGIN:VEVENT") == 2, 10, "sync")
    wait_for(gw.idle, 10, "the daemon to settle")
    for ev in hub.events():
        ev.delete()
    assert not list((tmp_path / "hub").iterdir())
    assert {v.uid for v in gw.history(None)} >= {"w0@x", "w1@x"}

    def stopped() -> str | None:
        state = gw.daemon.scheduler.pairs["main"]
        return state.last_error if gw.idle() else None

    assert "is empty but held" in wait_for(stopped, 10, "the guard")
    assert "w1@x" in laptop.read_text() or "w0@x" in laptop.read_text()


def test_changes_made_elsewhere_reach_the_client_incrementally(gw: Gateway, tmp_path: Path) -> None:
    hub = calendar(gw, "hub")
    for n in range(3):
        hub.save_event(ics(f"e{n}@x", f"Event {n}"))
    first = hub.objects_by_sync_token(load_objects=True)
    assert len(list(first)) == 3
    token = first.sync_token
    assert token.startswith(TOKEN_PREFIX)
    # nothing changed: nothing reported, same token, same ctag
    again = hub.objects_by_sync_token(sync_token=token)
    assert list(again) == [] and again.sync_token == token
    # a change made by calsync in the store (here: the other side of the pair, synced)
    laptop = tmp_path / "laptop.ics"
    wait_for(lambda: laptop.exists() and laptop.read_text().count("BEGIN:VEVENT") == 3, 10, "sync")
    wait_for(gw.idle, 10, "the daemon to settle")
    text = laptop.read_text().replace("Event 1", "Event 1 edited on the laptop")
    laptop.write_text(text)
    gw.daemon.scheduler.store_changed_threadsafe("laptop", "test edit")
    wait_for(
        lambda: "edited on the laptop" in (tmp_path / "hub" / "e1@x.ics").read_text(), 10, "sync"
    )
    changed = hub.objects_by_sync_token(sync_token=token, load_objects=True)
    objs = list(changed)
    assert [o.icalendar_component["UID"] for o in objs] == ["e1@x"]
    assert "edited on the laptop" in objs[0].data
    assert changed.sync_token != token
    # a deletion made in the store is reported as gone (404 in the sync report)
    (tmp_path / "hub" / "e2@x.ics").unlink()
    r = gw.request(
        "REPORT",
        f"/dav/{USER}/hub/",
        headers={"Depth": "1"},
        content=SYNC_REPORT.format(token=changed.sync_token),
    )
    assert r.status_code == 207
    assert "e2%40x.ics" in r.text and "404" in r.text and "e0%40x" not in r.text


SYNC_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token>
<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"""

CTAG = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
<d:prop><cs:getctag/><d:sync-token/></d:prop></d:propfind>"""


def _ctag(gw: Gateway) -> str:
    r = gw.request("PROPFIND", f"/dav/{USER}/hub/", headers={"Depth": "0"}, content=CTAG)
    assert r.status_code == 207
    return r.text.split("getctag>")[1]


def test_unknown_sync_tokens_ctag_and_etags(gw: Gateway, tmp_path: Path) -> None:
    for token in ("http://example.invalid/never-issued", TOKEN_PREFIX + "0123-1", "junk"):
        r = gw.request(
            "REPORT",
            f"/dav/{USER}/hub/",
            headers={"Depth": "1"},
            content=SYNC_REPORT.format(token=token),
        )
        assert r.status_code == 403 and "valid-sync-token" in r.text, token
    quiet = _ctag(gw)
    assert _ctag(gw) == quiet
    r = gw.request("PUT", f"/dav/{USER}/hub/a.ics", content=ics("a@x"))
    assert r.status_code == 201
    etag = r.headers["etag"]
    after = _ctag(gw)
    assert after != quiet and _ctag(gw) == after
    # GET gives the same ETag; If-Match with a stale one is refused (412), nothing written
    g = gw.request("GET", f"/dav/{USER}/hub/a.ics")
    assert g.headers["etag"] == etag and "UID:a@x" in g.text
    r = gw.request(
        "PUT", f"/dav/{USER}/hub/a.ics", content=ics("a@x", "v2"), headers={"If-Match": '"stale"'}
    )
    assert r.status_code == 412
    r = gw.request(
        "PUT", f"/dav/{USER}/hub/a.ics", content=ics("a@x", "v2"), headers={"If-Match": etag}
    )
    assert r.status_code == 204 and r.headers["etag"] != etag
    r = gw.request("DELETE", f"/dav/{USER}/hub/a.ics", headers={"If-Match": etag})
    assert r.status_code == 412
    assert "v2" in (tmp_path / "hub" / "a.ics").read_text()


def test_multiget_and_time_range_queries(gw: Gateway) -> None:
    hub = calendar(gw, "hub")
    hub.save_event(ics("march@x", "March", start="20250310T100000Z"))
    hub.save_event(ics("may@x", "May", start="20250510T100000Z"))
    hub.save_event(
        ics("weekly@x", "Weekly", start="20250101T090000Z", extra="RRULE:FREQ=WEEKLY;COUNT=4")
    )
    hub.save_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo@x\r\n"
        "DTSTAMP:20250101T000000Z\r\nSUMMARY:A task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )

    def found(start: datetime.datetime, end: datetime.datetime) -> list[str]:
        got = hub.search(start=start, end=end, event=True)
        return sorted(str(e.icalendar_component["UID"]) for e in got)

    utc = datetime.UTC
    assert found(
        datetime.datetime(2025, 3, 1, tzinfo=utc), datetime.datetime(2025, 3, 31, tzinfo=utc)
    ) == ["march@x"]
    assert found(
        datetime.datetime(2025, 1, 15, tzinfo=utc), datetime.datetime(2025, 1, 16, tzinfo=utc)
    ) == ["weekly@x"]
    assert (
        found(datetime.datetime(2025, 2, 1, tzinfo=utc), datetime.datetime(2025, 2, 2, tzinfo=utc))
        == []
    )
    assert [str(t.icalendar_component["UID"]) for t in hub.search(todo=True)] == ["todo@x"]
    # multiget: known hrefs come with their data, an unknown one is a 404
    objs = hub.multiget(
        [URL.objectify(f"{gw.dav}{USER}/hub/{n}%40x.ics") for n in ("march", "may")],
        raise_notfound=True,
    )
    assert sorted(o.icalendar_component["SUMMARY"] for o in objs) == ["March", "May"]
    with pytest.raises(NotFoundError):
        list(hub.multiget([URL.objectify(f"{gw.dav}{USER}/hub/no.ics")], raise_notfound=True))


def test_a_client_chosen_name_is_kept_across_server_side_changes(
    gw: Gateway, tmp_path: Path
) -> None:
    # a name the vdir does not take as a file name (":"): filed under the UID
    path = f"/dav/{USER}/hub/CHOSEN%3Aby-client%20x.ics"
    r = gw.request("PUT", path, content=ics("real-uid@x", "Named"))
    assert r.status_code == 201
    assert [f.name for f in (tmp_path / "hub").iterdir()] == ["real-uid@x.ics"]
    assert gw.request("GET", path).status_code == 200
    # edited elsewhere (the store file itself): still at the client's name
    f = tmp_path / "hub" / "real-uid@x.ics"
    f.write_text(f.read_text().replace("Named", "Renamed"))
    r = gw.request("GET", path)
    assert r.status_code == 200 and "Renamed" in r.text
    listing = gw.request("PROPFIND", f"/dav/{USER}/hub/", headers={"Depth": "1"})
    assert "CHOSEN%3Aby-client%20x.ics" in listing.text and "real-uid%40x" not in listing.text
    assert gw.request("DELETE", path).status_code in (200, 204)
    assert not f.exists()


def test_refusals_name_the_item_and_change_nothing(gw: Gateway, tmp_path: Path) -> None:
    # not iCalendar at all
    r = gw.request("PUT", f"/dav/{USER}/hub/bad.ics", content="hello")
    assert r.status_code == 400
    # a second item under the same UID elsewhere in the calendar
    assert gw.request("PUT", f"/dav/{USER}/hub/one.ics", content=ics("same@x")).status_code == 201
    r = gw.request("PUT", f"/dav/{USER}/hub/two.ics", content=ics("same@x"))
    assert r.status_code == 409 and "no-uid-conflict" in r.text
    # no new calendars, no deleting configured ones, nothing outside them
    r = gw.request("MKCALENDAR", f"/dav/{USER}/new/")
    assert r.status_code == 403
    r = gw.request("DELETE", f"/dav/{USER}/hub/")
    assert r.status_code in (401, 403)
    r = gw.request("PUT", f"/dav/{USER}/nothere/x.ics", content=ics("x@x"))
    assert r.status_code in (403, 404, 409)
    assert [f.name for f in (tmp_path / "hub").iterdir()] == ["one.ics"]


def test_an_oversized_item_is_refused(tmp_path: Path) -> None:
    from tests.davserver.helpers import config_text

    g = start(
        tmp_path,
        config_text(tmp_path).replace(
            "[caldav.users.alice]", "[caldav]\nmax_size = 2000\n[caldav.users.alice]"
        ),
    )
    try:
        big = ics("big@x", "x" * 5000)
        r = g.request("PUT", f"/dav/{USER}/hub/big.ics", content=big)
        assert r.status_code in (412, 413)
        assert not list((tmp_path / "hub").iterdir())
    finally:
        g.stop()


def test_store_unreachable_is_503_not_empty(tmp_path: Path) -> None:
    """A calendar whose store is gone answers 503: a client must not see it emptied."""
    from tests.davserver.helpers import config_text

    text = config_text(tmp_path).replace(
        f'path = "{tmp_path}/laptop.ics"',
        f'path = "{tmp_path}/no/such/dir/laptop.ics"\ncreate = true',
    )
    (tmp_path / "no").write_text("a file where a directory should be")
    g = start(tmp_path, text)
    try:
        r = g.request("PROPFIND", f"/dav/{USER}/laptop/", headers={"Depth": "1"})
        assert r.status_code in (500, 503), r.text
        assert r.status_code == 503
    finally:
        g.stop()


def test_raw_status_of_plain_http_errors(gw: Gateway) -> None:
    r = httpx.request("PROPFIND", gw.url(f"/dav/{USER}/hub/"), timeout=30)
    assert r.status_code == 401


def test_a_single_file_store_is_a_calendar_too(gw: Gateway, tmp_path: Path) -> None:
    """The .ics store (one file, written once per change) behind a collection."""
    laptop = tmp_path / "laptop.ics"
    path = f"/dav/{USER}/laptop/ev.ics"
    assert gw.request("PUT", path, content=ics("file-1@x", "In the file")).status_code == 201
    assert "In the file" in laptop.read_text()
    etag = gw.request("GET", path).headers["etag"]
    r = gw.request("PUT", path, content=ics("file-1@x", "Changed"), headers={"If-Match": etag})
    assert r.status_code == 204
    assert "Changed" in laptop.read_text() and "In the file" not in laptop.read_text()
    mine = [v for v in gw.history("file-1@x") if v.pair == f"caldav/{USER}"]
    assert mine[0].store == "laptop" and b"In the file" in mine[0].content
    # the pair carried it to the hub; deleting it in the file's calendar travels too
    hub = tmp_path / "hub"
    wait_for(lambda: any("Changed" in f.read_text() for f in hub.iterdir()), 10, "the pair")
    wait_for(gw.idle, 10, "the daemon to settle")
    gw.request("PUT", f"/dav/{USER}/laptop/other.ics", content=ics("file-2@x", "Stays"))
    assert gw.request("DELETE", path).status_code in (200, 204)
    assert "file-1@x" not in laptop.read_text() and "file-2@x" in laptop.read_text()
    wait_for(lambda: not (hub / "file-1@x.ics").exists(), 10, "the delete in the hub")


@pytest.mark.peer
def test_a_remote_caldav_store_is_served_too(tmp_path: Path, shared_dir: Path) -> None:
    """A calendar on another CalDAV server (Radicale here), behind calsync's endpoint."""
    from tests.davserver.helpers import config_text
    from tests.stores.caldav.peers import PASSWORD as UP_PASSWORD
    from tests.stores.caldav.peers import USER as UP_USER
    from tests.stores.caldav.peers import peer_root
    from tests.stores.caldav.peers import start as start_peer

    root = peer_root()
    upstream = start_peer("radicale", shared_dir / "peers" / "caldav", root)
    try:
        url = upstream.mkcalendar()
        extra = (
            f'[stores.remote]\ntype = "caldav"\nurl = "{url}"\n'
            f'username = "{UP_USER}"\npassword = "{UP_PASSWORD}"\n'
        )
        text = config_text(tmp_path).replace(
            'calendars = ["hub", "laptop"]', 'calendars = ["hub", "laptop", "remote"]'
        )
        g = start(tmp_path, text + extra)
        try:
            path = f"/dav/{USER}/remote/"
            r = g.request("PUT", path + "mine.ics", content=ics("via-gw@x", "Through calsync"))
            assert r.status_code == 201, r.text
            up = httpx.get(url, auth=(UP_USER, UP_PASSWORD))  # the upstream has it
            assert "Through calsync" in up.text
            put = httpx.put(
                url + "direct.ics",
                content=ics("direct@x", "Put upstream"),
                auth=(UP_USER, UP_PASSWORD),
            )
            assert put.status_code == 201
            listing = g.request("PROPFIND", path, headers={"Depth": "1"})
            assert "direct.ics" in listing.text and "mine.ics" in listing.text
            got = g.request("GET", path + "direct.ics")
            assert got.status_code == 200 and "Put upstream" in got.text
            assert g.request("DELETE", path + "mine.ics").status_code in (200, 204)
            assert "Through calsync" not in httpx.get(url, auth=(UP_USER, UP_PASSWORD)).text
        finally:
            g.stop()
        upstream.rmcalendar(url)
    finally:
        upstream.stop()
        shutil.rmtree(root, ignore_errors=True)
