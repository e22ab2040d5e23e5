"""Item names in any script on the CalDAV endpoint (issue #20, item 6).

A client names the items it creates (``PUT /dav/alice/hub/<name>``); the
endpoint must keep that name exactly as sent, in every method that names an
item: GET, PUT, DELETE, PROPFIND, REPORT (multiget with such hrefs) and
sync-collection.  The names here cover Latin with diacritics in NFC and in
NFD (two different names: nothing is normalised), Cyrillic, CJK and emoji
(UTF-8 bytes in 0x80-0x9F, which are C1 controls when misread as latin-1),
spaces and ``% + @ & '``.

The requests are written by hand on a socket (what curl sends, escapes
upper- or lowercase), so no client library re-quotes anything; the
``caldav`` library and vdirsyncer have their own tests (``test_vdirsyncer``
for the latter).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote

import caldav
import pytest

from calsync.davserver.state import DavState
from tests.davserver.helpers import PASSWORD, USER, Gateway, ics
from tests.davserver.raw import basic, connect, head, response

NAMES = [
    "ävent.ics",  # NFC: C3 A4
    "a\u0308vent.ics",  # NFD of the same: 61 CC 88 (0x88 in 0x80-0x9F)
    "град сатану.ics",  # vdirsyncer's test_dav_unicode_href name: р is D1 80
    "Ѐпизод.ics",  # D0 80
    "日本の会議.ics",  # E6 97 A5 ...
    "🎉 party.ics",  # F0 9F 8E 89
    "50% off + tea @ Bob's & co.ics",
]

MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:prop><d:getetag/><c:calendar-data/></d:prop>
{hrefs}
</c:calendar-multiget>"""

SYNC = """<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token>
<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"""

TOKEN = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>"""


def raw(
    gw: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as written on the wire (``path`` already escaped), one answer."""
    sock = connect(gw.server.port)
    try:
        sock.sendall(
            head(
                method,
                path,
                authorization=basic(USER, PASSWORD),
                length=len(body),
                headers={"Connection": "close", **(headers or {})},
            )
            + body
        )
        got = response(sock, 60)
    finally:
        sock.close()
    assert got is not None, f"{method} {path}: no answer"
    return got


def upper(name: str) -> str:
    return quote(name, safe="")


def lower(name: str) -> str:
    """Escaped as curl does it (lowercase hex), ``@`` ``+`` ``&`` ``'`` left as they are."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(name, safe="@+&'"))


def responses(body: bytes) -> dict[str, ET.Element]:
    """Multistatus responses by their href, unescaped (a name as the client chose it)."""
    root = ET.fromstring(body)
    return {unquote(r.findtext("{DAV:}href") or ""): r for r in root.iter("{DAV:}response")}


def names_listed(gw: Gateway, calendar: str) -> set[str]:
    status, _, body = raw(gw, "PROPFIND", f"/dav/{USER}/{calendar}/", headers={"Depth": "1"})
    assert status == 207, body
    prefix = f"/dav/{USER}/{calendar}/"
    return {h[len(prefix) :] for h in responses(body) if h != prefix}


def sync_token(gw: Gateway, calendar: str) -> str:
    status, _, body = raw(
        gw, "PROPFIND", f"/dav/{USER}/{calendar}/", TOKEN.encode(), {"Depth": "0"}
    )
    assert status == 207, body
    token = ET.fromstring(body).findtext(".//{DAV:}sync-token")
    assert token
    return token


@pytest.mark.parametrize("calendar", ["hub", "laptop"])
def test_names_in_any_script_with_every_method(gw: Gateway, tmp_path: Path, calendar: str) -> None:
    base = f"/dav/{USER}/{calendar}/"
    bodies = {name: ics(f"n{i}@x", f"Named {i}").encode() for i, name in enumerate(NAMES)}
    etags = {}
    # PUT: created under the name as sent (escaped either way), GET: the same bytes
    for i, name in enumerate(NAMES):
        status, headers, answer = raw(
            gw, "PUT", base + (lower(name) if i % 2 else upper(name)), bodies[name]
        )
        assert status == 201, (name, answer)
        etags[name] = headers["etag"]
    for i, name in enumerate(NAMES):
        status, headers, answer = raw(gw, "GET", base + (upper(name) if i % 2 else lower(name)))
        assert status == 200, (name, answer)
        assert headers["etag"] == etags[name]
        if calendar == "hub":  # a vdir keeps the bytes; one .ics file has one VCALENDAR
            assert answer == bodies[name]
        assert f"UID:n{i}@x".encode() in answer and f"Named {i}".encode() in answer
    # PROPFIND: every item listed under its own name, NFC and NFD apart, and
    # escaped the way Radicale escapes (one UTF-8 escape per byte, nothing decoded twice)
    assert names_listed(gw, calendar) == set(NAMES)
    _, _, listing = raw(gw, "PROPFIND", base, headers={"Depth": "1"})
    assert b"%C3%A4vent.ics" in listing and b"a%CC%88vent.ics" in listing
    assert b"%C3%83" not in listing  # the twice-decoded spelling of the bug
    if calendar == "hub":  # the vdir store files each item under the client's name
        assert set(os.listdir(os.fsencode(tmp_path / "hub"))) == {n.encode() for n in NAMES}
    # REPORT calendar-multiget with those hrefs: each one answered with its data
    token = sync_token(gw, calendar)
    hrefs = "\n".join(f"<d:href>{base}{upper(n)}</d:href>" for n in NAMES)
    status, _, answer = raw(
        gw, "REPORT", base, MULTIGET.format(hrefs=hrefs).encode(), {"Depth": "1"}
    )
    assert status == 207, answer
    got = responses(answer)
    assert set(got) == {base + n for n in NAMES}
    for i, name in enumerate(NAMES):
        data = got[base + name].findtext(".//{urn:ietf:params:xml:ns:caldav}calendar-data")
        assert data is not None and f"UID:n{i}@x" in data, name
        assert got[base + name].findtext(".//{DAV:}getetag") == etags[name]
    # PUT over an existing item (If-Match) updates it; sync-collection names what changed
    changed = NAMES[1:4]
    for name in changed:
        body = bodies[name].replace(b"Named", b"Renamed")
        status, headers, answer = raw(
            gw, "PUT", base + upper(name), body, {"If-Match": etags[name]}
        )
        assert status == 204, (name, answer)
        assert b"Renamed" in raw(gw, "GET", base + lower(name))[2]
    assert names_listed(gw, calendar) == set(NAMES)  # updated in place, not added
    status, _, answer = raw(gw, "REPORT", base, SYNC.format(token=token).encode(), {"Depth": "1"})
    assert status == 207, answer
    assert set(responses(answer)) == {base + n for n in changed}
    # DELETE each by its name; the sync report names them gone
    token = sync_token(gw, calendar)
    for i, name in enumerate(NAMES):
        status, _, answer = raw(gw, "DELETE", base + (lower(name) if i % 2 else upper(name)))
        assert status in (200, 204), (name, answer)
        assert raw(gw, "GET", base + upper(name))[0] == 404
    assert names_listed(gw, calendar) == set()
    status, _, answer = raw(gw, "REPORT", base, SYNC.format(token=token).encode(), {"Depth": "1"})
    gone = responses(answer)
    assert set(gone) == {base + n for n in NAMES}
    assert all("404" in (r.findtext("{DAV:}status") or "") for r in gone.values())
    if calendar == "hub":
        assert os.listdir(tmp_path / "hub") == []


def test_a_name_that_is_not_a_file_name_is_kept_by_the_endpoint(
    gw: Gateway, tmp_path: Path
) -> None:
    """Names a vdir does not take as they are (no ``.ics``, ``:`` ``?``): the item is
    filed under its UID, the client's name kept in the endpoint's state."""
    base = f"/dav/{USER}/hub/"
    names = ["Встреча: план?.ics", "会議*", "ä.ICS.bak"]
    for i, name in enumerate(names):
        status, _, answer = raw(gw, "PUT", base + upper(name), ics(f"odd{i}@x").encode())
        assert status == 201, (name, answer)
    assert sorted(os.listdir(tmp_path / "hub")) == ["odd0@x.ics", "odd1@x.ics", "odd2@x.ics"]
    assert names_listed(gw, "hub") == set(names)
    state = DavState(tmp_path / "state" / "davserver.sqlite")
    try:
        assert state.hrefs("hub") == {n: f"odd{i}@x.ics" for i, n in enumerate(names)}
    finally:
        state.close()
    for name in names:
        assert raw(gw, "GET", base + lower(name))[0] == 200
        assert raw(gw, "DELETE", base + upper(name))[0] in (200, 204)
    assert os.listdir(tmp_path / "hub") == []


def test_a_path_that_is_not_utf8_is_refused_and_nothing_is_written(
    gw: Gateway, tmp_path: Path
) -> None:
    status, _, answer = raw(gw, "PUT", f"/dav/{USER}/hub/%FF%FEx.ics", ics("bad@x").encode())
    assert status == 400 and b"UTF-8" in answer, answer
    assert os.listdir(tmp_path / "hub") == []
    assert raw(gw, "GET", f"/dav/{USER}/hub/%C3x.ics")[0] == 400
    # UTF-8 not escaped at all (RFC 3986 wants it escaped; curl escapes it): uvicorn's 400
    body = ics("unescaped@x").encode()
    sock = connect(gw.server.port)
    try:
        request = head(
            "PUT", f"/dav/{USER}/hub/@.ics", authorization=basic(USER, PASSWORD), length=len(body)
        )
        sock.sendall(request.replace(b"/@.ics", "/ä.ics".encode()) + body)
        got = response(sock, 30)
    finally:
        sock.close()
    assert got is not None and got[0] == 400
    assert os.listdir(tmp_path / "hub") == []


def test_the_caldav_library_with_names_in_any_script(gw: Gateway, tmp_path: Path) -> None:
    """python-caldav names a new item after its UID (escaped) and reads it back by href."""
    uids = [n.removesuffix(".ics") for n in NAMES]
    cal = caldav.DAVClient(url=gw.dav, username=USER, password=PASSWORD).calendar(
        url=f"{gw.dav}{USER}/hub/"
    )
    for uid in uids:
        cal.save_event(ics(uid, f"About {uid}"))
    assert set(os.listdir(os.fsencode(tmp_path / "hub"))) == {n.encode() for n in NAMES}
    first = cal.objects_by_sync_token(load_objects=True)
    by_uid = {str(o.icalendar_component["UID"]): o for o in first}
    assert set(by_uid) == set(uids)
    for uid, obj in by_uid.items():
        assert unquote(str(obj.url)).endswith(f"/hub/{uid}.ics")
        again = cal.event_by_url(obj.url)
        assert f"About {uid}" in again.data
    # multiget by those hrefs
    objs = list(cal.multiget([o.url for o in by_uid.values()], raise_notfound=True))
    assert sorted(str(o.icalendar_component["UID"]) for o in objs) == sorted(uids)
    # an edit, then an incremental sync that names only it
    edited = by_uid[uids[2]]
    edited.icalendar_component["SUMMARY"] = "Edited through caldav"
    edited.save()
    changes = list(cal.objects_by_sync_token(sync_token=first.sync_token, load_objects=True))
    assert [str(o.icalendar_component["UID"]) for o in changes] == [uids[2]]
    assert "Edited through caldav" in (tmp_path / "hub" / NAMES[2]).read_text()
    for obj in by_uid.values():
        obj.delete()
    assert os.listdir(tmp_path / "hub") == []
    assert list(cal.events()) == []
