"""A device's rewrite of entries we wrote, merged with what we wrote.

The device (or its PC suite) drops the X-CALSYNC-ICAL-* lines; what vCalendar
cannot carry must survive anyway, and the device's edits must win.
"""

from __future__ import annotations

import re
from pathlib import Path

from calsync.items import Item, ItemError, items_from_stream, loads_one
from calsync.items.vcal import item_to_vcal, vcal_to_items
from calsync.items.vcal.reconcile import device_view, reconcile

LAPTOP = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VTIMEZONE
TZID:/mozilla.org/20050126_1/Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:u1
DTSTAMP:20250101T000000Z
DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250103T100000
DTEND;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250103T110000
SUMMARY:Review
LOCATION:Room 4
COMMENT:bring the numbers
RRULE:FREQ=MONTHLY;BYDAY=1FR,-1FR
BEGIN:VALARM
UID:alarm-1
X-MOZ-LASTACK:20250103T085500Z
ACTION:DISPLAY
DESCRIPTION:Review
TRIGGER:-PT5M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:u1
DTSTAMP:20250101T000000Z
RECURRENCE-ID;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250131T100000
DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250131T120000
DTEND;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250131T130000
SUMMARY:Review (moved)
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def bare(item: Item) -> bytes:
    """What a device that drops unknown X- lines writes back, untouched."""
    data = item_to_vcal(item, companions=False)
    assert b"X-CALSYNC-ICAL" not in data
    return data


def read(data: bytes) -> Item:
    (item,), errors = vcal_to_items(data)
    assert not errors
    return item


def device_edit(item: Item, *changes: tuple[bytes, bytes]) -> Item:
    data = bare(item)
    for old, new in changes:
        assert re.search(old, data, re.M), old
        data = re.sub(old, new, data, flags=re.M)
    return read(data)


def master(item: Item) -> dict[str, list[str]]:
    comp = item.master()
    assert comp is not None
    out: dict[str, list[str]] = {}
    for prop in comp.props:
        out.setdefault(prop.name, []).append(prop.to_line())
    return out


def test_a_rewrite_that_changed_nothing_gives_the_item_back() -> None:
    item = loads_one(LAPTOP)
    rewritten = read(bare(item))
    assert "COMMENT" not in master(rewritten)  # what the device kept...
    assert reconcile(item, rewritten).hash == item.hash  # ...is not a deletion


def test_device_edits_win_and_what_it_could_not_show_stays() -> None:
    item = loads_one(LAPTOP)
    edited = device_edit(
        item, (rb"^SUMMARY:Review\r$", b"SUMMARY:Review with Ann\r"), (rb"^LOCATION:.*\r\n", b"")
    )
    merged = master(reconcile(item, edited))
    assert merged["SUMMARY"] == ["SUMMARY:Review with Ann"]
    assert "LOCATION" not in merged  # the device deleted it
    assert merged["COMMENT"] == ["COMMENT:bring the numbers"]
    assert merged["RRULE"] == ["RRULE:FREQ=MONTHLY;BYDAY=1FR,-1FR"]
    assert merged["DTSTART"] == [
        "DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250103T100000"
    ]


def test_an_alarm_the_device_kept_keeps_its_extras_one_it_changed_is_its() -> None:
    item = loads_one(LAPTOP)
    kept = reconcile(item, device_edit(item, (rb"^SUMMARY:Review\r$", b"SUMMARY:X\r")))
    (alarm,) = kept.master().children("VALARM")  # type: ignore[union-attr]
    assert alarm.value("X-MOZ-LASTACK") == "20250103T085500Z" and alarm.value("UID") == "alarm-1"

    changed = reconcile(
        item, device_edit(item, (rb"^DALARM:20250103T085500Z", b"DALARM:20250103T083000Z"))
    )
    (alarm,) = changed.master().children("VALARM")  # type: ignore[union-attr]
    assert alarm.value("TRIGGER") == "-PT30M" and alarm.get("UID") is None

    gone = reconcile(item, device_edit(item, (rb"^DALARM:.*\r\n", b"")))
    assert gone.master().children("VALARM") == []  # type: ignore[union-attr]


def test_an_override_the_device_edited_stays_one_override() -> None:
    item = loads_one(LAPTOP)
    edited = device_edit(item, (rb"^SUMMARY:Review \(moved\)\r$", b"SUMMARY:Moved again\r"))
    merged = reconcile(item, edited)
    overrides = [c for c in merged.components() if c.get("RECURRENCE-ID") is not None]
    assert len(overrides) == 1
    assert overrides[0].value("SUMMARY") == "Moved again"
    assert overrides[0].get("RECURRENCE-ID").to_line() == (  # type: ignore[union-attr]
        "RECURRENCE-ID;TZID=/mozilla.org/20050126_1/Europe/Berlin:20250131T100000"
    )


def test_a_copy_of_another_item_is_left_alone() -> None:
    item = loads_one(LAPTOP)
    other = read(bare(item).replace(b"UID:u1", b"UID:u2"))
    assert reconcile(item, other) is other


def test_the_ical_corpus_survives_a_rewrite_without_companions(shared_dir: Path) -> None:
    """Every item of the iCalendar corpus, written to vCalendar, given back by a
    device that dropped calsync's X- lines and changed nothing, comes back with
    the same content hash -- except where the input was not UTF-8 (read as
    Latin-1, given back as UTF-8) or had a malformed parameter."""
    not_utf8 = {
        "icalnet__Serialization__Bug2148092.ics",
        "thunderbird__unit-data__importLatin1.ics",
        "funambol-server__vcalendar-converter__icalendar-7-input.ics",
    }
    malformed = {"ical4j__data__apple-iphone-os-26-structured-location.ics"}
    checked, differing = 0, set()
    for path in sorted((shared_dir / "corpus" / "ical").iterdir()):
        try:
            items, _ = items_from_stream(path.read_bytes(), source=path.name)
        except ItemError:
            continue
        for item in items:
            seen = device_view(item) if item.kind != "VJOURNAL" else None
            if seen is None:
                continue  # VJOURNAL or invalid: refused when writing (see the corpus test)
            checked += 1
            if reconcile(item, seen).hash != item.hash:
                differing.add(path.name)
    assert checked >= 1300
    assert differing == not_utf8 | malformed
