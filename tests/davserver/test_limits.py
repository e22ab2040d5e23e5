"""Items the endpoint cannot fully reason about (issue 19, findings 3 and 5).

A FREQ=SECONDLY event made a one-year time-range REPORT run for minutes (Radicale
walked every second since DTSTART); an item whose time range overflows (a
start in year 9999) was hidden from every listing, so a client could not even
delete it.  Now every expansion stops at its budget, such items are served and
match time-range queries conservatively, and the endpoint answers at once.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from tests.davserver.helpers import PASSWORD, USER, Gateway, ics

# generous: without the budget each of these requests runs for minutes
QUICK = 5.0
WAIT = 30.0  # the client gives up here (what a phone does, long before the server stops)


def query(start: str, end: str, *, expand: bool = False) -> str:
    data = (
        f'<C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data>'
        if expand
        else ""
    )
    return (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/>{data}</D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )


FREEBUSY = (
    '<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<C:time-range start="20250101T000000Z" end="20260101T000000Z"/></C:free-busy-query>'
)
YEAR = ("20250101T000000Z", "20260101T000000Z")


def timed(gw: Gateway, method: str, path: str, body: str = "", **headers: str) -> tuple:  # type: ignore[type-arg]
    began = time.monotonic()
    r = httpx.request(
        method,
        gw.url(path),
        auth=(USER, PASSWORD),
        content=body,
        headers={"Depth": "1", "Content-Type": "application/xml", **headers},
        timeout=WAIT,
    )
    return r, time.monotonic() - began


def found(response: httpx.Response) -> list[str]:
    assert response.status_code == 207, response.text
    root = ET.fromstring(response.content)
    return sorted((h.text or "").rsplit("/", 1)[-1] for h in root.iter("{DAV:}href"))


def put_file(tmp_path: Path, uid: str, text: str) -> None:
    (tmp_path / "hub" / f"{uid}.ics").write_text(text)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY",  # endless: walked from 2024 to the range
        "FREQ=SECONDLY;COUNT=100000000",  # finite: its range needs the last one
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",  # never: walked to year 9999
    ],
)
def test_a_rule_every_second_answers_at_once_and_matches(
    gw: Gateway, tmp_path: Path, rule: str
) -> None:
    put_file(tmp_path, "sec@x", ics("sec@x", "Every second", "20240101T000000Z", "RRULE:" + rule))
    put_file(tmp_path, "in@x", ics("in@x", "In range", "20250601T100000Z"))
    put_file(tmp_path, "out@x", ics("out@x", "Out of range", "20270601T100000Z"))
    r, took = timed(gw, "PROPFIND", f"/dav/{USER}/hub/")
    assert r.status_code == 207 and took < QUICK
    r, took = timed(gw, "REPORT", f"/dav/{USER}/hub/", query(*YEAR))
    assert took < QUICK
    # the item is served, and taken as matching (its expansion stopped at the budget);
    # ordinary items are still filtered exactly
    assert found(r) == ["in%40x.ics", "sec%40x.ics"]


@pytest.mark.timeout(300)
def test_expand_and_free_busy_answer_at_once(gw: Gateway, tmp_path: Path) -> None:
    put_file(
        tmp_path, "sec@x", ics("sec@x", "Every second", "20240101T000000Z", "RRULE:FREQ=SECONDLY")
    )
    put_file(tmp_path, "in@x", ics("in@x", "In range", "20250601T100000Z"))
    r, took = timed(gw, "REPORT", f"/dav/{USER}/hub/", query(*YEAR, expand=True))
    assert took < QUICK and r.status_code == 207
    assert "in%40x.ics" in found(r)
    r, took = timed(gw, "REPORT", f"/dav/{USER}/hub/", FREEBUSY)
    assert took < QUICK and r.status_code == 200 and "VFREEBUSY" in r.text


@pytest.mark.timeout(300)
def test_a_put_whose_rule_explodes_answers_at_once(gw: Gateway, tmp_path: Path) -> None:
    """Radicale's own PUT check estimated this rule at 2 occurrences and then listed
    all 63 million of them."""
    every = ";".join(
        [
            "FREQ=YEARLY;UNTIL=20270101T000000Z",
            "BYMONTH=" + ",".join(map(str, range(1, 13))),
            "BYMONTHDAY=" + ",".join(map(str, range(1, 32))),
            "BYHOUR=" + ",".join(map(str, range(24))),
            "BYMINUTE=" + ",".join(map(str, range(60))),
            "BYSECOND=" + ",".join(map(str, range(60))),
        ]
    )
    text = ics("boom@x", "Boom", "20250101T000000Z", "RRULE:" + every)
    r, took = timed(
        gw, "PUT", f"/dav/{USER}/hub/boom.ics", text, **{"Content-Type": "text/calendar"}
    )
    assert took < QUICK and r.status_code == 201, r.text
    r, took = timed(gw, "REPORT", f"/dav/{USER}/hub/", query(*YEAR))
    assert took < QUICK and found(r) == ["boom.ics"]


def test_a_long_rule_is_accepted_as_a_syncml_device_would_have_it(gw: Gateway) -> None:
    """Radicale refused rules of more than 10,000 occurrences (a daily event until
    2099), which a SyncML device may add: the endpoints take the same items."""
    text = ics("daily@x", "Daily", "20250101T080000Z", "RRULE:FREQ=DAILY;UNTIL=20991231T000000Z")
    r = gw.request("PUT", f"/dav/{USER}/hub/daily.ics", content=text)
    assert r.status_code == 201, r.text


FAR = ics("far@x", "Far", "99991231T230000Z")  # DURATION:PT1H: ends in year 10000


def test_an_item_at_the_edge_of_time_is_served_and_deletable(gw: Gateway, tmp_path: Path) -> None:
    put_file(tmp_path, "far@x", FAR)
    put_file(tmp_path, "in@x", ics("in@x", "In range", "20250601T100000Z"))
    r, _ = timed(gw, "PROPFIND", f"/dav/{USER}/hub/")
    assert "far%40x.ics" in found(r)
    r = gw.request("GET", f"/dav/{USER}/hub/far%40x.ics")
    assert r.status_code == 200 and r.text == FAR
    r, _ = timed(gw, "REPORT", f"/dav/{USER}/hub/", query(*YEAR))
    assert found(r) == ["far%40x.ics", "in%40x.ics"]  # no time range known: it matches
    r = gw.request("DELETE", f"/dav/{USER}/hub/far%40x.ics")
    assert r.status_code in (200, 204)
    assert not (tmp_path / "hub" / "far@x.ics").exists()


FAR_END = FAR.replace("DURATION:PT1H", "DTEND:99991231T235900Z")  # Radicale takes this one


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (FAR, ""),  # Radicale's own check refuses it first (its time range overflows)
        (FAR_END, "item far@x: DTSTART 99991231T230000Z: dates from the year 100 to 9899"),
        (
            ics("n@x").replace(
                "END:VEVENT", "BEGIN:X-A\r\n" * 30 + "END:X-A\r\n" * 30 + "END:VEVENT"
            ),
            "nested more than 16",
        ),
    ],
)
def test_a_put_out_of_limits_is_refused_naming_it(
    gw: Gateway, tmp_path: Path, text: str, words: str
) -> None:
    """The same check as a SyncML device's Add (``items.limits``)."""
    r = gw.request("PUT", f"/dav/{USER}/hub/bad.ics", content=text)
    assert r.status_code in (400, 412) and words in r.text
    assert not list((tmp_path / "hub").iterdir())
