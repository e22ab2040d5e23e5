"""Content keys (slow-sync matching) and device formats."""

from __future__ import annotations

import pytest

from calsync.items import ItemError, loads_one
from calsync.syncml import content
from tests.conftest import event

BERLIN = """BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTART;TZID=Europe/Berlin:20250301T100000\r
SUMMARY:{summary}\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_the_same_event_in_other_clothes_has_one_key() -> None:
    a = loads_one(BERLIN.format(uid="a", summary="Team  meeting"))
    b = loads_one(event("b", "team meeting", start="20250301T090000Z"))
    c = loads_one(BERLIN.format(uid="c", summary="Team meeting\\, short"))
    assert (
        content.content_key(a)
        == content.content_key(b)
        == ("VEVENT", "20250301T090000Z", "team meeting")
    )
    assert content.content_key(c) != content.content_key(a)
    d = loads_one(event("d", "Team meeting", start="20250301T100000Z"))
    assert content.content_key(d) != content.content_key(a)


def test_a_custom_time_zone_goes_the_slow_way() -> None:
    custom = """BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VTIMEZONE\r
TZID:My Office Time\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0200\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:x\r
DTSTART;TZID=My Office Time:20250301T110000\r
SUMMARY:Office\r
END:VEVENT\r
END:VCALENDAR\r
"""
    key = content.content_key(loads_one(custom))
    assert key == ("VEVENT", "20250301T090000Z", "office")


def test_decoding_device_items() -> None:
    item = content.decode(event("u1", "x"), "text/calendar", source="dev/1")
    assert item.uid == "u1"
    with pytest.raises(ItemError, match="content type"):
        content.decode(b"<appointment/>", "text/x-s4j-sife", source="dev/2")
    with pytest.raises(ItemError, match="one"):
        content.decode(event("a", "x") + event("b", "y"), None, source="dev/3")
    with pytest.raises(ItemError):
        content.decode(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", None, source="dev/4")
