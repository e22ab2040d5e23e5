"""Three-way merge: non-overlapping edits merge, overlapping ones fall back."""

from __future__ import annotations

from calsync.items import Item
from calsync.sync.conflict import resolve

BASE = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//t//EN\r
BEGIN:VEVENT\r
UID:m1\r
DTSTAMP:20250101T000000Z\r
LAST-MODIFIED:20250101T000000Z\r
SEQUENCE:0\r
DTSTART:20250303T090000Z\r
DTEND:20250303T100000Z\r
RRULE:FREQ=WEEKLY;COUNT=10\r
SUMMARY:Weekly\r
LOCATION:Room 1\r
CATEGORIES:Work\r
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:ann@example.org\r
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER:-PT15M\r
DESCRIPTION:Reminder\r
END:VALARM\r
END:VEVENT\r
END:VCALENDAR\r
"""


def item(text: str) -> Item:
    return Item.from_bytes(text.encode())


def edit(text: str, old: str, new: str, stamp: str | None = None) -> str:
    assert old in text, old
    text = text.replace(old, new)
    if stamp:
        text = text.replace("LAST-MODIFIED:20250101T000000Z", f"LAST-MODIFIED:{stamp}")
    return text


def master_props(it: Item, name: str) -> list[str]:
    m = it.master()
    assert m is not None
    return [p.value for p in m.all(name)]


def test_title_on_one_side_location_on_other() -> None:
    a = edit(BASE, "SUMMARY:Weekly", "SUMMARY:Weekly sync", "20250201T000000Z")
    b = edit(BASE, "LOCATION:Room 1", "LOCATION:Room 2", "20250202T000000Z")
    res = resolve("merge", item(BASE), item(a), item(b))
    assert res.outcome == "merged" and res.overlapping == []
    assert master_props(res.result, "SUMMARY") == ["Weekly sync"]
    assert master_props(res.result, "LOCATION") == ["Room 2"]
    assert master_props(res.result, "LAST-MODIFIED") == ["20250202T000000Z"]


def test_override_on_one_side_exdate_on_other() -> None:
    override = (
        "BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20250101T000000Z\r\n"
        "RECURRENCE-ID:20250310T090000Z\r\nDTSTART:20250310T110000Z\r\n"
        "DTEND:20250310T120000Z\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"
    )
    a = BASE.replace("END:VCALENDAR", override + "END:VCALENDAR")
    b = edit(
        BASE,
        "RRULE:FREQ=WEEKLY;COUNT=10\r\n",
        "RRULE:FREQ=WEEKLY;COUNT=10\r\nEXDATE:20250317T090000Z\r\n",
    )
    res = resolve("merge", item(BASE), item(a), item(b))
    assert res.overlapping == []
    comps = res.result.components()
    assert len(comps) == 2
    assert master_props(res.result, "EXDATE") == ["20250317T090000Z"]
    assert any(c.value("RECURRENCE-ID") == "20250310T090000Z" for c in comps)


def test_alarm_added_on_each_side() -> None:
    alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:{t}\r\nDESCRIPTION:{d}\r\nEND:VALARM\r\n"
    a = edit(BASE, "END:VEVENT", alarm.format(t="-PT1H", d="Hour") + "END:VEVENT")
    b = edit(BASE, "END:VEVENT", alarm.format(t="-P1D", d="Day") + "END:VEVENT")
    res = resolve("merge", item(BASE), item(a), item(b))
    assert res.overlapping == []
    m = res.result.master()
    assert m is not None
    triggers = sorted(s.value("TRIGGER") or "" for s in m.subs)
    assert triggers == ["-P1D", "-PT15M", "-PT1H"]


def test_alarm_removed_on_one_side_untouched_on_other_is_removed() -> None:
    start = BASE.index("BEGIN:VALARM")
    end = BASE.index("END:VALARM\r\n") + len("END:VALARM\r\n")
    a = BASE[:start] + BASE[end:]
    b = edit(BASE, "SUMMARY:Weekly", "SUMMARY:Changed")
    res = resolve("merge", item(BASE), item(a), item(b))
    m = res.result.master()
    assert m is not None and m.subs == []
    assert master_props(res.result, "SUMMARY") == ["Changed"]


def test_attendees_and_categories_merge_as_sets() -> None:
    a = edit(
        BASE,
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:ann@example.org",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.org",
    )
    a = edit(a, "CATEGORIES:Work", "CATEGORIES:Work,Urgent")
    b = edit(
        BASE,
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:cy@example.org\r\n",
    )
    b = edit(b, "CATEGORIES:Work", "CATEGORIES:Work,Team")
    res = resolve("merge", item(BASE), item(a), item(b))
    assert res.overlapping == []
    m = res.result.master()
    assert m is not None
    attendees = {p.value: p.param("PARTSTAT") for p in m.all("ATTENDEE")}
    assert attendees == {
        "mailto:ann@example.org": "ACCEPTED",
        "mailto:bob@example.org": "NEEDS-ACTION",
        "mailto:cy@example.org": "NEEDS-ACTION",
    }
    cats = {v for p in m.all("CATEGORIES") for v in p.value.split(",")}
    assert cats == {"Work", "Urgent", "Team"}


def test_one_attendee_edited_on_both_sides_merges_by_parameter() -> None:
    """A's PARTSTAT and B's CN on the same attendee both survive; a parameter
    both changed differently is A's (as the whole line was before)."""
    a = edit(
        BASE,
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:ann@example.org",
        "ATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:ann@example.org",
    )
    b = edit(
        BASE,
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:ann@example.org",
        "ATTENDEE;CN=Ann;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:ann@example.org",
    )
    res = resolve("merge", item(BASE), item(a), item(b))
    m = res.result.master()
    assert m is not None
    ann = next(p for p in m.all("ATTENDEE") if "ann@" in p.value)
    assert (ann.param("PARTSTAT"), ann.param("CN"), ann.param("ROLE")) == (
        "ACCEPTED",
        "Ann",
        "CHAIR",
    )


def test_attendee_removed_on_one_side() -> None:
    a = BASE.replace("ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n", "")
    b = edit(BASE, "SUMMARY:Weekly", "SUMMARY:Other")
    res = resolve("merge", item(BASE), item(a), item(b))
    m = res.result.master()
    assert m is not None
    assert [p.value for p in m.all("ATTENDEE")] == ["mailto:ann@example.org"]


def test_same_property_both_sides_newest_wins() -> None:
    a = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From A", "20250301T000000Z")
    b = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From B", "20250201T000000Z")
    b = edit(b, "LOCATION:Room 1", "LOCATION:Room B")
    res = resolve("merge", item(BASE), item(a), item(b))
    assert res.overlapping == ["VEVENT:SUMMARY"]
    assert res.winner == "a"
    assert master_props(res.result, "SUMMARY") == ["From A"]
    assert master_props(res.result, "LOCATION") == ["Room B"]  # b's clean edit kept


def test_same_property_fallback_b_wins() -> None:
    a = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From A", "20250301T000000Z")
    b = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From B", "20250201T000000Z")
    res = resolve("merge", item(BASE), item(a), item(b), fallback="b-wins")
    assert master_props(res.result, "SUMMARY") == ["From B"]


def test_override_deleted_on_one_side_edited_on_other_is_kept() -> None:
    override = (
        "BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20250101T000000Z\r\n"
        "RECURRENCE-ID:20250310T090000Z\r\nDTSTART:20250310T110000Z\r\n"
        "SUMMARY:Moved\r\nEND:VEVENT\r\n"
    )
    base = BASE.replace("END:VCALENDAR", override + "END:VCALENDAR")
    a = BASE  # a deleted the override
    b = base.replace("SUMMARY:Moved", "SUMMARY:Moved and renamed")
    res = resolve("merge", item(base), item(a), item(b))
    assert len(res.result.components()) == 2


def test_no_base_both_added_differently() -> None:
    a = edit(BASE, "LOCATION:Room 1", "LOCATION:A", "20250301T000000Z")
    b = edit(BASE, "LOCATION:Room 1", "LOCATION:B", "20250201T000000Z")
    res = resolve("merge", None, item(a), item(b))
    assert master_props(res.result, "LOCATION") == ["A"]


def test_keep_both_makes_a_marked_copy() -> None:
    a = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From A", "20250301T000000Z")
    b = edit(BASE, "SUMMARY:Weekly", "SUMMARY:From B", "20250201T000000Z")
    res = resolve("keep-both", item(BASE), item(a), item(b), names=("laptop", "phone"))
    assert master_props(res.result, "SUMMARY") == ["From A"]
    assert res.copy is not None
    assert res.copy.uid.startswith("m1-conflict-")
    assert master_props(res.copy, "SUMMARY") == ["From B (conflict copy from phone)"]


def test_unchanged_properties_keep_their_exact_text() -> None:
    odd = BASE.replace("LOCATION:Room 1", 'LOCATION;ALTREP="http://x/y":Room 1')
    a = edit(odd, "SUMMARY:Weekly", "SUMMARY:New")
    b = edit(odd, "CATEGORIES:Work", "CATEGORIES:Home")
    res = resolve("merge", item(odd), item(a), item(b))
    assert 'LOCATION;ALTREP="http://x/y":Room 1' in res.result.text
