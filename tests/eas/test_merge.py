"""Nothing lost through a phone: a device's edit merged onto the full item.

The device is sent ``item_to_appointment(full)``; it gives back that
appointment unchanged or edited; ``merge_device_edit`` must keep everything
EAS cannot carry (COMMENT, X- properties, RDATE, the exact TZID, alarm
extras, rules EAS has no pattern for) and apply exactly the device's edits.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.eas.calendar import item_to_appointment
from calsync.eas.merge import merge_device_edit
from calsync.eas.model import (
    AttendeeStatus,
    Body,
    RecurrenceException,
)
from calsync.eas.props import MappingError, Options
from calsync.eas.tasks import item_to_task
from calsync.eas.timezone import blob_for_zone
from calsync.items import Item, ItemError, items_from_stream, loads_one
from calsync.items.lines import Component
from tests.items.test_vcal_reconcile import LAPTOP as VCAL_LAPTOP

V14 = Options(version="14.1", user_email="me@example.com", year=2026)
V16 = Options(version="16.1", user_email="me@example.com", year=2026)

MOZ = "/mozilla.org/20050126_1/Europe/Berlin"
# the zone as Thunderbird writes it (the vCalendar mirror's test item has it)
BERLIN = VCAL_LAPTOP[
    VCAL_LAPTOP.index("BEGIN:VTIMEZONE") : VCAL_LAPTOP.index("END:VTIMEZONE") + 15
].replace("\r\n", "\n")
assert MOZ in BERLIN
LAPTOP = f"""\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
{BERLIN}BEGIN:VEVENT
UID:u1
DTSTAMP:20260101T000000Z
DTSTART;TZID={MOZ}:20260106T100000
DTEND;TZID={MOZ}:20260106T110000
SUMMARY:Review
LOCATION:Room 4
DESCRIPTION:The agenda\\nis long
COMMENT:bring the numbers
X-MOZ-GENERATION:3
X-CUSTOM;X-PARAM=1:kept
ORGANIZER;CN=Ann:mailto:ann@example.com
ATTENDEE;CN=Me;PARTSTAT=NEEDS-ACTION;X-NUM-GUESTS=0;RSVP=TRUE:mailto:me@example.com
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;SCHEDULE-STATUS=2.0:mailto:bob@example.com
RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=20
RDATE;TZID={MOZ}:20260108T100000
EXDATE;TZID={MOZ}:20260113T100000
BEGIN:VALARM
UID:alarm-1
X-MOZ-LASTACK:20260106T085500Z
ACTION:DISPLAY
DESCRIPTION:Review
TRIGGER:-PT15M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:u1
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID={MOZ}:20260120T100000
DTSTART;TZID={MOZ}:20260120T120000
DTEND;TZID={MOZ}:20260120T130000
SUMMARY:Review (moved)
LOCATION:Room 4
DESCRIPTION:The agenda\\nis long
COMMENT:moved because of the fire drill
ORGANIZER;CN=Ann:mailto:ann@example.com
ATTENDEE;CN=Me;PARTSTAT=NEEDS-ACTION;X-NUM-GUESTS=0;RSVP=TRUE:mailto:me@example.com
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;SCHEDULE-STATUS=2.0:mailto:bob@example.com
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def full() -> Item:
    return loads_one(LAPTOP)


def sent(item: Item, opts: Options = V14):  # type: ignore[no-untyped-def]
    out = item_to_appointment(item, opts)
    return out.data, copy.deepcopy(out.data)


def props_of(comp: Component | None) -> dict[str, list[str]]:
    assert comp is not None
    out: dict[str, list[str]] = {}
    for p in comp.props:
        out.setdefault(p.name, []).append(p.to_line())
    return out


def overrides(item: Item) -> list[Component]:
    return [c for c in item.components() if c.get("RECURRENCE-ID") is not None]


@pytest.mark.parametrize("opts", [V14, V16])
def test_an_unchanged_echo_changes_nothing(opts: Options) -> None:
    item = full()
    before, echo = sent(item, opts)
    assert merge_device_edit(item, before, echo, opts).hash == item.hash


def test_a_title_edit_keeps_everything_eas_cannot_carry() -> None:
    item = full()
    before, edited = sent(item)
    edited.subject = "Review with Ann"
    merged = merge_device_edit(item, before, edited, V14)
    m = props_of(merged.master())
    assert m["SUMMARY"] == ["SUMMARY:Review with Ann"]
    assert m["COMMENT"] == ["COMMENT:bring the numbers"]
    assert m["X-MOZ-GENERATION"] == ["X-MOZ-GENERATION:3"]
    assert m["X-CUSTOM"] == ["X-CUSTOM;X-PARAM=1:kept"]
    assert m["RDATE"] == [f"RDATE;TZID={MOZ}:20260108T100000"]
    assert m["DTSTART"] == [f"DTSTART;TZID={MOZ}:20260106T100000"]
    assert m["EXDATE"] == [f"EXDATE;TZID={MOZ}:20260113T100000"]
    assert any("SCHEDULE-STATUS=2.0" in a for a in m["ATTENDEE"])
    (alarm,) = merged.master().children("VALARM")  # type: ignore[union-attr]
    assert alarm.value("X-MOZ-LASTACK") == "20260106T085500Z"
    (override,) = overrides(merged)
    assert override.value("COMMENT") == "moved because of the fire drill"
    assert [tz.value("TZID") for tz in merged.timezones()] == [MOZ]


def test_the_device_edits_win() -> None:
    item = full()
    before, edited = sent(item)
    edited.location = None  # not sent: deleted
    edited.reminder = 30
    edited.start_time = before.start_time + timedelta(hours=1)  # type: ignore[operator]
    edited.end_time = before.end_time + timedelta(hours=2)  # type: ignore[operator]
    assert edited.attendees is not None
    edited.attendees[0].attendee_status = AttendeeStatus.ACCEPTED
    merged = merge_device_edit(item, before, edited, V14)
    m = props_of(merged.master())
    assert "LOCATION" not in m
    assert m["DTSTART"] == [f"DTSTART;TZID={MOZ}:20260106T110000"]  # the exact zone stays
    assert m["DTEND"] == [f"DTEND;TZID={MOZ}:20260106T130000"]
    me = next(a for a in m["ATTENDEE"] if "me@example.com" in a)
    assert "PARTSTAT=ACCEPTED" in me and "X-NUM-GUESTS=0" in me
    (alarm,) = merged.master().children("VALARM")  # type: ignore[union-attr]
    assert alarm.value("TRIGGER") == "-PT30M" and alarm.get("X-MOZ-LASTACK") is None


def test_ghosted_elements_are_as_sent() -> None:
    item = full()
    before, edited = sent(item)
    edited.location = None
    edited.body = None
    merged = merge_device_edit(item, before, edited, V14, ghosted=["Location", "body"])
    m = props_of(merged.master())
    assert m["LOCATION"] == ["LOCATION:Room 4"] and m["DESCRIPTION"] == [
        "DESCRIPTION:The agenda\\nis long"
    ]


def test_a_truncated_body_is_never_stored() -> None:
    opts = Options(version="14.1", body_limit=5, year=2026)
    item = full()
    before, edited = sent(item, opts)
    assert before.body is not None and before.body.truncated
    edited.subject = "x"
    merged = merge_device_edit(item, before, edited, opts)
    assert merged.master().value("DESCRIPTION") == "The agenda\\nis long"  # type: ignore[union-attr]
    edited.body = Body(data="Rewritten on the phone")
    merged = merge_device_edit(item, before, edited, opts)
    assert merged.master().value("DESCRIPTION") == "Rewritten on the phone"  # type: ignore[union-attr]


def test_a_device_reencoding_the_zone_in_its_own_does_not_replace_it() -> None:
    item = full()
    before, edited = sent(item)
    edited.timezone = blob_for_zone(ZoneInfo("America/New_York"), 2026)
    assert merge_device_edit(item, before, edited, V14).hash == item.hash
    edited.start_time = before.start_time + timedelta(hours=1)  # type: ignore[operator]
    moved = merge_device_edit(item, before, edited, V14)
    assert props_of(moved.master())["DTSTART"] == ["DTSTART;TZID=America/New_York:20260106T050000"]


def test_a_moved_event_keeps_an_outlook_zone_of_its_own() -> None:
    """The item's zone is a VTIMEZONE named as Windows names it; the device
    moves the event (and knows the zone only by its rules): the time is
    written in the item's own zone."""
    outlook = LAPTOP.replace(MOZ, "W. Europe Standard Time")
    item = loads_one(outlook)
    before, edited = sent(item)
    edited.start_time = before.start_time + timedelta(minutes=30)  # type: ignore[operator]
    merged = merge_device_edit(item, before, edited, V14)
    assert props_of(merged.master())["DTSTART"] == [
        "DTSTART;TZID=W. Europe Standard Time:20260106T103000"
    ]
    assert [tz.value("TZID") for tz in merged.timezones()] == ["W. Europe Standard Time"]


def test_an_edited_override_stays_one_override_spelled_as_written() -> None:
    item = full()
    before, edited = sent(item)
    assert edited.exceptions is not None
    moved = next(e for e in edited.exceptions if not e.deleted)
    moved.subject = "Moved again"
    moved.start_time = datetime(2026, 1, 20, 14, tzinfo=UTC)
    moved.end_time = datetime(2026, 1, 20, 15, tzinfo=UTC)
    merged = merge_device_edit(item, before, edited, V14)
    (override,) = overrides(merged)
    o = props_of(override)
    assert o["RECURRENCE-ID"] == [f"RECURRENCE-ID;TZID={MOZ}:20260120T100000"]
    assert o["SUMMARY"] == ["SUMMARY:Moved again"]
    assert o["DTSTART"] == [f"DTSTART;TZID={MOZ}:20260120T150000"]
    assert o["COMMENT"] == ["COMMENT:moved because of the fire drill"]


def test_an_occurrence_deleted_on_the_device_is_one_more_exdate() -> None:
    item = full()
    before, edited = sent(item)
    assert edited.exceptions is not None
    edited.exceptions.append(
        RecurrenceException(deleted=True, exception_start_time=datetime(2026, 1, 27, 9, tzinfo=UTC))
    )
    merged = merge_device_edit(item, before, edited, V14)
    exdates = props_of(merged.master())["EXDATE"]
    assert exdates[0] == f"EXDATE;TZID={MOZ}:20260113T100000"
    assert len(exdates) == 2 and exdates[1].endswith("20260127T100000")
    assert len(overrides(merged)) == 1


def test_a_rule_eas_cannot_express_survives_an_edit_of_its_first_occurrence() -> None:
    item = loads_one(
        LAPTOP.replace("RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=20", "RRULE:FREQ=HOURLY;COUNT=5")
    )
    out = item_to_appointment(item, V14)
    assert out.data.recurrence is None and out.warnings
    edited = copy.deepcopy(out.data)
    edited.subject = "Renamed"
    merged = merge_device_edit(item, out.data, edited, V14)
    m = props_of(merged.master())
    assert m["RRULE"] == ["RRULE:FREQ=HOURLY;COUNT=5"] and m["SUMMARY"] == ["SUMMARY:Renamed"]
    assert len(overrides(merged)) == 1


def test_a_task_edit_keeps_what_eas_cannot_carry() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t1\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Taxes\r\nDUE;VALUE=DATE:20260430\r\n"
        "STATUS:IN-PROCESS\r\nPERCENT-COMPLETE:50\r\nRELATED-TO:parent-1\r\n"
        "X-APPLE-SORT-ORDER:42\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    opts = Options(device_zone=ZoneInfo("Europe/Berlin"), year=2026)
    before = item_to_task(item, opts).data
    assert merge_device_edit(item, before, copy.deepcopy(before), opts).hash == item.hash
    done = copy.deepcopy(before)
    done.complete, done.date_completed = True, datetime(2026, 4, 2, 8, tzinfo=UTC)
    merged = props_of(merge_device_edit(item, before, done, opts).master())
    assert merged["STATUS"] == ["STATUS:COMPLETED"] and merged["PERCENT-COMPLETE"] == [
        "PERCENT-COMPLETE:100"
    ]
    assert merged["COMPLETED"] == ["COMPLETED:20260402T080000Z"]
    assert merged["RELATED-TO"] == ["RELATED-TO:parent-1"]
    assert merged["X-APPLE-SORT-ORDER"] == ["X-APPLE-SORT-ORDER:42"]
    assert merged["DUE"] == ["DUE;VALUE=DATE:20260430"]


def test_kinds_must_match() -> None:
    item = full()
    before, _ = sent(item)
    with pytest.raises(MappingError):
        merge_device_edit(
            item,
            before,
            item_to_task(
                loads_one(
                    "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
                ),
                V14,
            ).data,
            V14,
        )  # type: ignore[type-var]


# -- the whole iCalendar corpus -------------------------------------------------------------------


def corpus_items(shared: Path) -> list[tuple[str, Item]]:
    out = []
    for path in sorted((shared / "corpus" / "ical").iterdir()):
        try:
            items, _ = items_from_stream(path.read_bytes(), source=path.name)
        except ItemError:
            continue
        out.extend((path.name, i) for i in items if i.kind in ("VEVENT", "VTODO"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("opts", [V14, V16])
def test_the_ical_corpus_survives_a_phone_that_changed_nothing(
    shared_dir: Path, opts: Options
) -> None:
    """Every event and task of the iCalendar corpus, sent to a device that
    gives it back unchanged, comes back with the same content hash -- except
    where the input was not UTF-8 (read as Latin-1, given back as UTF-8) or
    had a malformed parameter (the same files as the vCalendar mirror's test).
    What cannot be sent at all (no DTSTART, invalid dates) is refused with
    the reason."""
    not_utf8 = {
        "icalnet__Serialization__Bug2148092.ics",
        "thunderbird__unit-data__importLatin1.ics",
        "funambol-server__vcalendar-converter__icalendar-7-input.ics",
    }
    malformed = {"ical4j__data__apple-iphone-os-26-structured-location.ics"}
    checked, refused, differing = 0, [], set()
    for name, item in corpus_items(shared_dir):
        try:
            if item.kind == "VEVENT":
                before = item_to_appointment(item, opts).data
            else:
                before = item_to_task(item, opts).data
        except MappingError as e:
            refused.append(str(e))
            continue
        checked += 1
        merged = merge_device_edit(item, before, copy.deepcopy(before), opts)
        if merged.hash != item.hash:
            differing.add(name)
    assert checked >= 1300
    assert len(refused) < 40
    reasons = ("no DTSTART", "DTSTART:", "DTEND:", "DURATION:", "cannot be parsed:")
    # a refusal of a whole item names it first: "item UID: cannot be parsed: ..."
    unnamed = [r.split(": ", 1)[1] if r.startswith("item ") else r for r in refused]
    assert all(r.startswith(reasons) for r in unnamed), unnamed
    assert differing == not_utf8 | malformed
