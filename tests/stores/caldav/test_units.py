"""The CalDAV store's pure parts: hrefs, ETags, TEXT escaping, error bodies, state."""

from __future__ import annotations

import pytest

from calsync.items import Item
from calsync.stores.caldav import xml
from calsync.stores.caldav.hrefs import normalize, quote_path
from calsync.stores.caldav.listing import State, norm_etag
from calsync.stores.caldav.text import escape_free_text
from tests.conftest import event

BASE = "https://dav.example:8443/cal/me/"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/cal/me/a%20b.ics", "/cal/me/a b.ics"),
        ("/cal/me/a b.ics", "/cal/me/a b.ics"),
        ("https://dav.example:8443/cal/me/a%40b.ics", "/cal/me/a@b.ics"),
        ("/cal/me/a@b.ics", "/cal/me/a@b.ics"),
        ("/cal/me/100%25.ics", "/cal/me/100%.ics"),
        ("x%7Ey.ics", "/cal/me/x~y.ics"),
        ("/cal/me/../you/z.ics", "/cal/you/z.ics"),
        ("/cal/me/q.ics?x=1", "/cal/me/q.ics"),
    ],
)
def test_one_spelling_per_resource(href: str, expected: str) -> None:
    assert normalize(href, BASE) == expected


@pytest.mark.parametrize("path", ["/c/a b.ics", "/c/100%.ics", "/c/a@b+c=d.ics", "/c/ü日本.ics"])
def test_quoting_round_trips(path: str) -> None:
    quoted = quote_path(path)
    assert " " not in quoted and "@" not in quoted and quoted.isascii()
    assert normalize(quoted, BASE) == path


def test_etags_are_kept_verbatim_but_quoted() -> None:
    assert norm_etag('"abc"') == '"abc"'
    assert norm_etag("abc") == '"abc"'
    assert norm_etag('W/"abc"') == 'W/"abc"'
    assert norm_etag(None) == ""


def test_free_text_is_escaped_and_nothing_else_changes() -> None:
    raw = event("u1", "a, b; c", extra="DESCRIPTION:x\\, ok\\n\\\\ fine, not\nCATEGORIES:a,b")
    out = escape_free_text(raw)
    assert b"SUMMARY:a\\, b\\; c\r\n" in out
    assert b"DESCRIPTION:x\\, ok\\n\\\\ fine\\, not\r\n" in out
    assert b"CATEGORIES:a,b\r\n" in out  # a list: commas separate values
    assert Item.from_bytes(out).uid == "u1"
    clean = event("u2", "nothing to do")
    assert escape_free_text(clean) is clean


def test_long_escaped_lines_are_folded_without_splitting_utf8() -> None:
    raw = event("u3", extra="DESCRIPTION:" + "ä, " * 60)
    out = escape_free_text(raw)
    for line in out.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # no sequence cut in half
    unfolded = out.replace(b"\r\n ", b"")
    assert b"DESCRIPTION:" + "ä\\, ".encode() * 60 in unfolded


def test_error_bodies_of_real_servers() -> None:
    cyrus = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" '
        b'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:unique-scheduling-object-resource>'
        b"<D:href>/dav/calendars/user/test/calendar/first.ics</D:href>"
        b"</C:unique-scheduling-object-resource></D:error>"
    )
    names, hrefs, _ = xml.error_conditions(cyrus)
    assert names == {"unique-scheduling-object-resource"}
    assert hrefs == ["/dav/calendars/user/test/calendar/first.ics"]
    xandikos = (
        b'<ns0:error xmlns:ns0="DAV:" xmlns:ns1="urn:ietf:params:xml:ns:caldav">'
        b"<ns1:no-uid-conflict /><ns0:responsedescription>UID already in use."
        b"</ns0:responsedescription></ns0:error>"
    )
    assert xml.error_conditions(xandikos) == ({"no-uid-conflict"}, [], "UID already in use.")
    assert xml.error_conditions(b"<html><body>Forbidden</body></html>") == (set(), [], "")
    assert xml.error_conditions(b"") == (set(), [], "")


def test_multistatus_takes_values_only_from_2xx_propstats() -> None:
    body = b"""<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">
    <D:response><D:href>/c/a.ics</D:href>
      <D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
      <D:propstat><D:prop><D:getetag>"1"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
    </D:response>
    <D:response><D:href>/c/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
    <D:sync-token>tok-2</D:sync-token></D:multistatus>"""  # noqa: E501
    ms = xml.parse_multistatus(body)
    assert ms.sync_token == "tok-2"
    assert [(r.href, r.status, r.text(xml.GETETAG)) for r in ms.responses] == [
        ("/c/a.ics", None, '"1"'),
        ("/c/gone.ics", 404, None),
    ]


def test_state_round_trips_through_json() -> None:
    state = State("c1", "t1", {"/c/a.ics": '"1"'}, 12.5, {"/c/a.ics"}, True)
    assert State.from_json(state.to_json()) == state
    assert State.from_json({}).etags is None


def test_dav_limit_is_never_sent() -> None:
    """Servers that honour DAV:limit cut the reply without telling (Nextcloud)."""
    for body in (xml.sync_collection("tok"), xml.sync_collection(None), xml.multiget(["/a"])):
        assert b"limit" not in body
        xml.parse(body)  # well-formed
