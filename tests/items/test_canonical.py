"""The content hash ignores serialization churn and sees every edit."""

from __future__ import annotations

from calsync.items.canonical import content_hash

BASE = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//a//EN\r\n"
    b"BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    b"TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    b"BEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20250101T000000Z\r\n"
    b"DTSTART;TZID=Europe/Berlin:20250101T100000\r\n"
    b'ATTENDEE;ROLE=CHAIR;CN="Ann":mailto:a@example.org\r\n'
    b"DESCRIPTION:line one\\nline two\r\nSUMMARY:Meeting\r\n"
    b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_churn_is_ignored() -> None:
    churned = (
        BASE.replace(b"PRODID:-//a//EN", b"PRODID:-//server//EN")
        .replace(b"DTSTAMP:20250101T000000Z", b"DTSTAMP:20990101T000000Z")
        .replace(b'ATTENDEE;ROLE=CHAIR;CN="Ann"', b"ATTENDEE;CN=Ann;role=CHAIR")
        .replace(b"SUMMARY:Meeting\r\n", b"")
        .replace(b"UID:x\r\n", b"UID:x\r\nSUMMARY:Meet\r\n ing  \r\n")
        .replace(b"line one\\n", b"line one\\N")
        .replace(b"\r\n", b"\n")
    )
    no_tz = BASE[: BASE.index(b"BEGIN:VTIMEZONE")] + BASE[BASE.index(b"BEGIN:VEVENT") :]
    assert content_hash(churned) == content_hash(BASE)
    assert content_hash(no_tz) == content_hash(BASE)


def test_edits_are_seen() -> None:
    for old, new in [
        (b"SUMMARY:Meeting", b"SUMMARY:Meeting!"),
        (b"TRIGGER:-PT5M", b"TRIGGER:-PT10M"),
        (b"ROLE=CHAIR", b"ROLE=REQ-PARTICIPANT"),
        (b"TZID=Europe/Berlin:20250101T100000", b"TZID=Europe/Paris:20250101T100000"),
        (b"line one\\nline two", b"line one\\nline 2"),
    ]:
        assert content_hash(BASE.replace(old, new)) != content_hash(BASE), new


def test_quoted_parameter_values_may_hold_colons_and_semicolons() -> None:
    """Parameters end at the first ':' outside quotes, whichever way they are written."""
    line = b'DESCRIPTION;ALTREP="cid:part1;x@example.org";LANGUAGE=en:Notes: see;there\r\n'
    reordered = b'DESCRIPTION;LANGUAGE=en;ALTREP="cid:part1;x@example.org":Notes: see;there\r\n'
    other_ref = b'DESCRIPTION;ALTREP="cid:part2;x@example.org";LANGUAGE=en:Notes: see;there\r\n'
    other_text = b'DESCRIPTION;ALTREP="cid:part1;x@example.org";LANGUAGE=en:Notes: see\r\n'
    with_line = BASE.replace(b"SUMMARY:Meeting\r\n", b"SUMMARY:Meeting\r\n" + line)
    assert content_hash(with_line) == content_hash(
        BASE.replace(b"SUMMARY:Meeting\r\n", b"SUMMARY:Meeting\r\n" + reordered)
    )
    for changed in (other_ref, other_text):
        edited = BASE.replace(b"SUMMARY:Meeting\r\n", b"SUMMARY:Meeting\r\n" + changed)
        assert content_hash(edited) != content_hash(with_line)
