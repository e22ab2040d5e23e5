"""The CalDAV store's pure parts: hrefs, ETags, TEXT escaping, error bodies, state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from calsync.items import Item
from calsync.stores.caldav import xml
from calsync.stores.caldav.client import DavClient, DavTimeout, is_loopback
from calsync.stores.caldav.hrefs import normalize, quote_path
from calsync.stores.caldav.listing import State, collect, norm_etag
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


QUERY_REPLY = b"""<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:response><D:href>/c/a%20b.ics</D:href>
  <D:propstat><D:prop><D:getetag>"1"</D:getetag><C:calendar-data>BEGIN:VCALENDAR\r
SUMMARY:a &amp; b &lt;c&gt;\r
END:VCALENDAR\r
</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:propstat><D:prop><D:getetag>"bogus"</D:getetag><D:displayname/></D:prop>
    <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
<D:response><D:href>/c/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
<D:response><D:href>/c/b.ics</D:href>
  <D:propstat><D:prop><D:getetag>"2"</D:getetag><C:calendar-data>BEGIN:VCALENDAR
END:VCALENDAR
</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>"""  # noqa: E501


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_streamed_multistatus_matches_the_tree_parser(size: int) -> None:
    chunks = [QUERY_REPLY[i : i + size] for i in range(0, len(QUERY_REPLY), size)]
    streamed = list(xml.iter_multistatus(iter(chunks)))
    tree = xml.parse_multistatus(QUERY_REPLY).responses
    assert [(r.href, r.status) for r in streamed] == [(r.href, r.status) for r in tree]
    for got, want in zip(streamed, tree, strict=True):
        assert {k: got.text(k) for k in got.props} == {k: want.text(k) for k in want.props}
    first = b"BEGIN:VCALENDAR\r\nSUMMARY:a & b <c>\r\nEND:VCALENDAR\r\n"
    assert xml.calendar_data(streamed[0]) == first
    assert xml.calendar_data(streamed[2]) == b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    assert streamed[0].text(xml.GETETAG) == '"1"'  # not the 404 propstat's


@pytest.mark.parametrize(
    "body",
    [
        QUERY_REPLY[: len(QUERY_REPLY) // 2],  # cut short
        QUERY_REPLY[:-5],
        b"",
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<D:multistatus xmlns:D="DAV:"><D:response><D:href>&b;</D:href></D:response>'
        b"</D:multistatus>",
        b'<!DOCTYPE m SYSTEM "http://example.org/evil.dtd"><D:multistatus xmlns:D="DAV:"/>',
        b'<D:multistatus xmlns:D="DAV:"><D:response><D:href>&xxe;</D:href></D:response>'
        b"</D:multistatus>",
        b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>',
        b"<html><body>Bad Request</body></html>",
    ],
)
def test_streamed_multistatus_refuses_what_is_cut_unsafe_or_not_one(body: bytes) -> None:
    with pytest.raises(xml.XmlError):
        list(xml.iter_multistatus([body[i : i + 10] for i in range(0, len(body), 10)] or [b""]))


def test_query_reply_collected_within_budget() -> None:
    responses = list(xml.iter_multistatus([QUERY_REPLY]))
    got = collect(responses, "http://dav.example/c/", budget=10_000)
    assert got.complete is False  # /c/gone.ics: a member without an ETag
    assert got.etags == {"/c/a b.ics": '"1"', "/c/b.ics": '"2"'}
    assert set(got.bodies) == {"/c/a b.ics", "/c/b.ics"}
    ok = [r for r in responses if r.href != "/c/gone.ics"]
    assert collect(ok, "http://dav.example/c/", budget=10_000).complete is True
    small = collect(ok, "http://dav.example/c/", budget=40)  # room for the second only
    assert small.complete and set(small.etags) == {"/c/a b.ics", "/c/b.ics"}
    assert set(small.bodies) == {"/c/b.ics"}
    assert collect(ok, "http://dav.example/c/", budget=0).bodies == {}


def test_query_reply_cut_by_the_server_is_incomplete() -> None:
    """RFC 5323/6578 style: a 507 for the request-URI says the answer was truncated."""
    cut = QUERY_REPLY.replace(
        b"</D:multistatus>",
        b"<D:response><D:href>/c/</D:href><D:status>HTTP/1.1 507 Insufficient Storage"
        b"</D:status></D:response></D:multistatus>",
    ).replace(b"<D:response><D:href>/c/gone.ics</D:href>", b"<D:response><D:href>/c/x.ics</D:href>")
    responses = [r for r in xml.iter_multistatus([cut]) if r.href != "/c/x.ics"]
    got = collect(responses, "http://dav.example/c/", budget=10_000)
    assert got.complete is False and len(got.etags) == 2


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5232/test/", True),
        ("http://127.1.2.3/", True),
        ("https://localhost/dav/", True),
        ("http://[::1]:8080/", True),
        ("https://dav.example.org/", False),
        ("http://192.168.1.2/", False),
        ("http://[2001:db8::1]/", False),
    ],
)
def test_compression_only_off_the_loopback(url: str, loopback: bool) -> None:
    """Bodies are asked for gzip-compressed, except from a server on this machine."""
    assert is_loopback(url) is loopback
    client = DavClient(username=None, password=lambda: "", compress=not loopback)
    try:
        encoding = client._http.headers["Accept-Encoding"]
    finally:
        client.close()
    assert (encoding == "identity") is loopback
    assert loopback or "gzip" in encoding


class _Slow(BaseHTTPRequestHandler):
    """Answers every request after ``delay`` seconds; counts what it got."""

    delay = 0.0
    seen: ClassVar[list[str]] = []
    BODY = b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"/>'

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        try:
            self.send_response(207)
            self.send_header("Content-Length", str(len(self.BODY)))
            self.end_headers()
            self.wfile.write(self.BODY)
        except OSError:
            pass  # the client gave up on this one

    do_PROPFIND = do_REPORT = do_PUT = _answer


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Slow.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_port}/cal/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_read_that_timed_out_is_tried_again_with_more_patience(slow_server: str) -> None:
    """A slow server is still working on the request: the retry waits PATIENCE times
    longer, and reading a whole calendar is patient from the start; writes are never
    retried."""
    _Slow.delay = 0.6
    client = DavClient(username=None, password=lambda: "", timeout=0.3, retry_delay=0)
    try:
        assert client.propfind(slow_server, ["D:getetag"], "1").status == 207
        assert _Slow.seen == ["PROPFIND", "PROPFIND"]  # 0.3 s: too short; 1.2 s: enough
        _Slow.seen = []
        resp, got = client.stream_report(slow_server, xml.query_all(), "1", lambda c: b"".join(c))
        assert resp.status == 207 and got and _Slow.seen == ["REPORT"]
        _Slow.seen = []
        with pytest.raises(DavTimeout, match=r"no answer within 0\.3 s"):
            client.put(slow_server + "x.ics", event("x@calsync.test"))
        assert _Slow.seen == ["PUT"]
        _Slow.delay = 2.0  # longer than even the patient retry
        with pytest.raises(DavTimeout, match=r"no answer within 1\.2 s"):
            client.propfind(slow_server, ["D:getetag"], "1")
    finally:
        client.close()
