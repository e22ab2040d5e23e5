"""vCalendar 1.0 <-> iCalendar 2.0 on the real files of ../shared/corpus.

- every vCalendar file converts, or fails with the precise error listed here;
- every converted entry survives vCalendar -> iCalendar -> vCalendar ->
  iCalendar with its meaning unchanged (compared by ``vcal_compare``, which
  reads values with the icalendar library, not with the converter);
- the Funambol conversion pairs match by parsed comparison, up to the
  differences of Funambol's converter listed here;
- every item of the iCalendar corpus goes iCalendar -> vCalendar -> iCalendar
  keeping every property (README: "vCalendar 1.0 limits" lists what cannot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from calsync.items import Item, ItemError, items_from_stream
from calsync.items.vcal import is_vcal, item_to_vcal, vcal_to_items
from tests.items.vcal_compare import Fact, differences, fact_differences, item_facts

# file -> (line, words of the error): files that must fail, and why
EXPECTED_ERRORS: dict[str, tuple[int, str]] = {
    # Funambol's expected output carries its input's seven-digit time
    "funambol-server__vcalendar-converter__vcalendar-7-output.vcs": (
        8, "DTEND: not a date or time: '20080720T0123000Z'",
    ),
    # Symbian negative tests
    "symbian__ImportvCals__vCal125.vcs": (13, "RRULE 'YM1 15 #10': '15': 15 is not from 1 to 12"),
    "symbian__ImportvCals__vCal132.vcs": (11, "'39': 39 is not from 1 to 31"),
    "symbian__ImportvCals__vCal39.vcs": (12, "UID appears twice with different content"),
    "symbian__TestFiles__EnName1.vcs": (5, "END:VEVE does not close BEGIN:VEVENT (line 3)"),
    "symbian__TestFiles__IEndBa64.vcs": (7, "malformed END line 'END;ENCODING=BASE64:VkVWRU5U'"),
    "symbian__TestFiles__cTestVCal.vcs": (13, "EXRULE 'MP0 1- TU TH 2+ WE #10': interval 0"),
    "symbian__TestvCals-Invalid__2.vcs": (3, "BEGIN:VEVENT is closed by END:VCALENDAR at line 4"),
    "symbian__calendar-tsrc__NewExportLongUID.vcs": (
        4, "UID contains the control character U+0000, which iCalendar cannot carry",
    ),
}  # fmt: skip


def _vcal_files(shared: Path) -> list[Path]:
    return sorted((shared / "corpus" / "vcal").iterdir())


def test_corpus_is_there(shared_dir: Path) -> None:
    assert len(_vcal_files(shared_dir)) >= 190
    assert set(EXPECTED_ERRORS) <= {p.name for p in _vcal_files(shared_dir)}


def test_every_vcal_file(shared_dir: Path) -> None:
    """Converts without error, or with exactly the error listed; round trips keep meaning."""
    problems: list[str] = []
    converted = 0
    for path in _vcal_files(shared_dir):
        data = path.read_bytes()
        assert is_vcal(data), f"{path.name} not recognized as vCalendar"
        items, errors = vcal_to_items(data, source=path.name)
        expected = EXPECTED_ERRORS.get(path.name)
        if expected is None:
            problems += [f"{path.name}: unexpected error {e}" for e in errors]
        else:
            line, words = expected
            if len(errors) != 1 or errors[0].line != line or words not in str(errors[0]):
                problems.append(f"{path.name}: expected line {line} {words!r}, got {errors}")
            elif not str(errors[0]).startswith(path.name + ": "):
                problems.append(f"{path.name}: the error does not name the file: {errors[0]}")
        for item in items:
            converted += 1
            item.to_icalendar()  # a real iCalendar object for other programs
            back, back_errors = vcal_to_items(item_to_vcal(item), source="again")
            if back_errors or len(back) != 1:
                problems.append(f"{path.name}: {item.uid}: reading back: {back_errors}")
                continue
            problems += [f"{path.name}: {item.uid}: {d}" for d in differences(item, back[0])]
    assert not problems, "\n".join(problems)
    assert converted >= 400


def test_device_alarms_written_back_need_no_companion(shared_dir: Path) -> None:
    """A device's alarm reads back line for line, so no X-CALSYNC-ICAL-VALARM goes
    to the device -- except a trigger at a floating time in an entry without
    start (Symbian test data), which a zone could move."""
    with_alarms = 0
    companions: set[str] = set()
    for path in _vcal_files(shared_dir):
        for item in vcal_to_items(path.read_bytes())[0]:
            if b"BEGIN:VALARM" in item.raw:
                with_alarms += 1
                if b"X-CALSYNC-ICAL-VALARM" in item_to_vcal(item):
                    companions.add(path.name)
    assert with_alarms >= 80
    assert companions == {"symbian__TestFiles__CAutoD2.vcs", "symbian__TestFiles__IAutoD2.vcs"}


def _convert(shared: Path, name: str) -> list[Item]:
    items, errors = vcal_to_items((shared / "corpus" / "vcal" / name).read_bytes(), source=name)
    assert not errors
    return items


def _lines(item: Item) -> list[str]:
    return item.text.replace("\r\n ", "").splitlines()


def test_junk_before_the_calendar_is_skipped_with_a_warning(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        items = _convert(shared_dir, "symbian__TestFiles__IJunkLine.vcs")
    assert [i.uid for i in items] == ["8"]
    assert "IJunkLine.vcs: line 1: text outside any calendar" in caplog.text


def test_a_line_broken_without_folding_is_joined(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        (item,) = _convert(shared_dir, "gammu__p990.vcs")
    assert "line 21: line without ':' joined" in caplog.text
    attendees = [line for line in _lines(item) if line.startswith("ATTENDEE")]
    assert attendees == [
        "ATTENDEE;ROLE=NON-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;X-ROLE=REQ-PARTICIPANT;"
        "X-STATUS=NEEDS-ACTION:mailto:test@example.com"
    ]


def test_badformat_alarm_is_a_kept_x_property_not_an_error(shared_dir: Path) -> None:
    """Symbian's "bad format" test has an X-SYMBIAN-ALARM with an unknown VALUE type:
    an X- property, so carried as it is (and written back as it was)."""
    (item,) = _convert(shared_dir, "symbian__TestCalInterimApi__tcal_dataexch_Badformat.vcs")
    assert "X-SYMBIAN-ALARM;VALUE=NOTURL:20060408T100000Z;aCowSaysMoo" in _lines(item)
    assert b"X-SYMBIAN-ALARM;VALUE=NOTURL:20060408T100000Z;aCowSaysMoo\r\n" in item_to_vcal(item)


# -- the Funambol conversion pairs -------------------------------------------------------

Quirk = Callable[[Fact], bool]


def _names(*names: str) -> Quirk:
    return lambda fact: fact[0] in names


def _funambol_quirk(fact: Fact) -> bool:
    """What Funambol's converter adds: CLASS:PUBLIC by default, X-FUNAMBOL-ALLDAY."""
    return fact == ("CLASS", "PUBLIC", ()) or fact[0].startswith("X-FUNAMBOL")


def _compare_pair(ours: Item, expected: Item, source: Item, quirks: Quirk) -> list[str]:
    """Differences that are neither Funambol quirks nor input data Funambol dropped."""
    kept_by_us = item_facts(source).get(("master",), set())
    problems = []
    for key, verb, fact in fact_differences(ours, expected):
        if verb == "added" and (_funambol_quirk(fact) or quirks(fact)):
            continue  # Funambol made it up, or wrote it its own way
        if verb == "lost" and (fact in kept_by_us or quirks(fact)):
            continue  # input data we keep and Funambol dropped
        problems.append(f"{key}: {verb} {fact}")
    return problems


def _ical(shared: Path, name: str) -> Item:
    items, errors = items_from_stream((shared / "corpus" / "ical" / name).read_bytes())
    assert not errors and len(items) == 1
    return items[0]


PREFIX = "funambol-server__vcalendar-converter__"
DERIVED_UID = _names("UID", "DTSTAMP")  # inputs without UID/DTSTAMP: both sides make one up


@pytest.mark.parametrize("n", [18, 19, 21, 22, 23, 25])
def test_funambol_ical_to_vcal_pairs(shared_dir: Path, n: int) -> None:
    """All-day events (DURATION:P1D, DTEND dates) to vCalendar, as Funambol writes them."""
    source = _ical(shared_dir, f"{PREFIX}icalendar-{n}-input.ics")
    ours_vcal = item_to_vcal(source)
    (ours,) = vcal_to_items(ours_vcal)[0]
    (expected,) = _convert(shared_dir, f"{PREFIX}vcalendar-{n}-output.vcs")
    assert not _compare_pair(ours, expected, source, DERIVED_UID)
    # Funambol writes DTSTART:2009-10-23/DTEND:20091024; we write the 00:00-23:59 convention
    start = expected.master().value("DTSTART")  # type: ignore[union-attr]
    assert f"DTSTART:{start}T000000".encode() in ours_vcal
    assert b"T235959\r\n" in ours_vcal


@pytest.mark.parametrize(
    ("source_name", "expected_name", "quirks"),
    [
        ("icalendar-11-input", "icalendar-11-output", DERIVED_UID),
        ("icalendar-12-input", "icalendar-12-output", DERIVED_UID),
        # Funambol drops the attendees, the alarm, CREATED and X- properties (kept by
        # us) and writes DTSTAMP as local time in its zone
        ("icalendar-16-input", "icalendar-16-output", _names("DTSTAMP")),
        # Funambol reads the invalid floating LAST-MODIFIED in the event's zone; we keep
        # it as written (a guess would not read back the same)
        ("icalendar-17-input", "icalendar-17-output", _names("DTSTAMP", "LAST-MODIFIED")),
        # converted with Asia/Tokyo as the device zone: DTEND in Tokyo, same instant
        ("icalendar-1-input", "icalendar-4-output", DERIVED_UID),
    ],
)
def test_funambol_ical_through_vcal_pairs(
    shared_dir: Path, source_name: str, expected_name: str, quirks: Quirk
) -> None:
    """iCalendar -> vCalendar -> iCalendar matches Funambol's back-and-forth outputs."""
    source = _ical(shared_dir, f"{PREFIX}{source_name}.ics")
    (ours,) = vcal_to_items(item_to_vcal(source))[0]
    expected = _ical(shared_dir, f"{PREFIX}{expected_name}.ics")
    assert not _compare_pair(ours, expected, source, quirks)


@pytest.mark.parametrize("n", [4, 6, 9])
def test_funambol_vcal_pairs(shared_dir: Path, n: int) -> None:
    """vCalendar input and Funambol's vCalendar output read as the same events."""
    (source,) = _convert(shared_dir, f"{PREFIX}vcalendar-{n}-input.vcs")
    (expected,) = _convert(shared_dir, f"{PREFIX}vcalendar-{n}-output.vcs")
    (ours,) = vcal_to_items(item_to_vcal(source))[0]
    quirks = DERIVED_UID
    if n == 9:
        # Funambol writes floating times as UTC ("floating" read as UTC); we keep them
        # floating.  Same wall-clock time.
        def quirks(fact: Fact) -> bool:
            return DERIVED_UID(fact) or (fact[0] in ("DTSTART", "DTEND") and fact[1][0] in (
                "utc", "floating"))  # fmt: skip

        times = {f[:2] for f in item_facts(expected)[("master",)] if f[0] in ("DTSTART", "DTEND")}
        assert times == {("DTSTART", ("utc", "2007-05-26T10:00:00")),
                         ("DTEND", ("utc", "2007-05-26T11:00:00"))}  # fmt: skip
        assert ours.master().value("DTSTART") == "20070526T100000"  # type: ignore[union-attr]
    assert not _compare_pair(ours, expected, source, quirks)


def test_funambol_pair_with_the_seventh_digit(shared_dir: Path) -> None:
    """icalendar-8/9-input -> vcalendar-7-output: all carry DTEND:20080720T0123000Z.
    Reading the iCalendar input repairs it (a seventh time digit dropped); the
    vCalendar side is not repaired (its reader rejects the entry, see
    EXPECTED_ERRORS), so it is compared with the digit dropped by hand."""
    expected_vcal = (
        shared_dir / "corpus" / "vcal" / f"{PREFIX}vcalendar-7-output.vcs"
    ).read_bytes()
    fixed = expected_vcal.replace(b"DTEND:20080720T0123000Z", b"DTEND:20080720T012300Z")
    (expected,) = vcal_to_items(fixed)[0]
    for name in ("icalendar-8-input", "icalendar-9-input"):
        source = _ical(shared_dir, f"{PREFIX}{name}.ics")
        assert source.notes is not None
        assert source.notes.repairs == ["line 5: DTEND had a seventh time digit"]
        vcal = item_to_vcal(source)
        assert b"DTEND:20080720T012300Z" in vcal
        (ours,) = vcal_to_items(vcal)[0]
        assert not _compare_pair(ours, expected, source, DERIVED_UID)


# -- the iCalendar corpus through vCalendar ----------------------------------------------

NO_VCAL_ALARM = "VALARM"  # an alarm with ACTION:NONE or no ACTION: no vCalendar alarm says that

# file -> (why, the kind of fact that may differ): inputs whose meaning the two readers
# (calsync, the icalendar library) disagree on, or that vCalendar cannot carry
KNOWN_DIFFERENCES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "ical4j__samples-valid__google_aus_holidays.ics": (
        "DTSTART;TZID=...:20040126 (a date with a TZID, no VALUE=DATE): we read a date, "
        "the icalendar library midnight in the zone",
        lambda d: "'DTSTART'" in d or "'DTEND'" in d or "'RRULE'" in d or "component" in d,
    ),
    "icalnet__Alarm__ALARM5.ics": (
        "a VTIMEZONE whose DAYLIGHT observance lacks BEGIN/END lines: readers disagree on "
        "its offsets",
        lambda d: "'RRULE'" in d or "'VALARM'" in d,
    ),
    "node-ical__test_with_int_tzid.ics": (
        "TZID=' 1': we use its VTIMEZONE, the icalendar library leaves the times floating",
        lambda d: "'DTSTART'" in d or "'DTEND'" in d,
    ),
    "tine20__Calendar-Import__lightning_TehranTZ.ics": (
        "DTEND;TZIDAsia/Tehran (no '='): the icalendar library drops the property",
        lambda d: "added ('DTEND'" in d,
    ),
    "icalendar__calendars__broken_ical.ics": (
        "DTSTART;;VALUE=DATE-TIME: the icalendar library drops the property",
        lambda d: "added ('DTSTART'" in d,
    ),
    "icaljs__samples__google_birthday.ics": (
        "RDATE:20121210Z (a date with a Z): we read a date, the icalendar library cannot",
        lambda d: "'RDATE'" in d,
    ),
    "ical4j__data__apple-iphone-os-26-structured-location.ics": (
        "a parameter value with an unquoted ';' (X-TITLE=a\\; b): read as two parameters",
        lambda d: "X-APPLE-STRUCTURED-LOCATION" in d,
    ),
    "horde__fixtures-vTimezone__exchange.ics": (
        "an empty CLASS (Exchange 2000 writes 'CLASS:'; the item reads since its folding "
        "is repaired): vCalendar has no empty CLASS",
        lambda d: "lost ('CLASS', ''" in d,
    ),
    "libical__perl-test-data__rfc2446.ics": (
        "a to-do's STATUS:IN-PROGRESS (the copy with the highest SEQUENCE of a UID the "
        "file holds several times): vCalendar 1.0 has no such status",
        lambda d: "lost ('STATUS', 'IN-PROGRESS'" in d,
    ),
}


def test_ical_corpus_through_vcal(shared_dir: Path) -> None:
    problems: list[str] = []
    seen_known: set[str] = set()
    rejected: dict[str, str] = {}
    checked = exact = 0
    for path in sorted((shared_dir / "corpus" / "ical").iterdir()):
        try:
            items, _ = items_from_stream(path.read_bytes(), source=path.name)
        except ItemError:
            continue  # not a calendar at all: the iCalendar side reports it
        for item in items:
            try:
                item.to_icalendar()
            except ItemError:
                continue  # an item the icalendar library cannot read has no meaning to compare
            try:
                vcal = item_to_vcal(item)
            except ItemError as e:
                rejected[f"{path.name} {item.uid}"] = e.reason
                continue
            back, errors = vcal_to_items(vcal, source=path.name)
            if errors or len(back) != 1:
                rejected[f"{path.name} {item.uid}"] = f"reading back: {errors}"
                continue
            checked += 1
            exact += back[0].hash == item.hash
            known = KNOWN_DIFFERENCES.get(path.name)
            for diff in differences(item, back[0]):
                if known is not None and known[1](diff):
                    seen_known.add(path.name)
                    continue
                problems.append(f"{path.name}: {item.uid}: {diff}")
    assert not problems, "\n".join(problems)
    assert seen_known == set(KNOWN_DIFFERENCES), "a listed difference no longer occurs"
    assert checked >= 1200
    # most come back byte-for-byte in canonical form; the others differ only by
    # normalizations (TZIDs as Olson names, MAILTO: as mailto:, EXDATEs regrouped,
    # a second zone's times in the first zone, default VALUE types dropped)
    assert exact >= 1000, exact
    for key, reason in rejected.items():
        assert any(words in reason for words in REJECTED_REASONS), f"{key}: {reason}"


# Why an iCalendar corpus item cannot go to vCalendar at all (each is an ItemError):
REJECTED_REASONS = (
    "a journal entry (VJOURNAL): vCalendar 1.0 has no journal entries",
    "not a valid date or time",  # 20241131, 20240230, 00001231...
    "not a date or time",  # 20131009T170000T, INVALID-DATE, 19970701T10300Z...
    "not a duration",
    "no ':' in content line",  # fuzzed files the line parser rejects
    "control character U+001B",  # a fuzzed ATTENDEE read back
    "duration out of range",
)
