"""The vCalendar 1.0 converter, property by property (both directions)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

import icalendar
import pytest

from calsync.items import Item, loads_one
from calsync.items.vcal import (
    ical_to_vcal_bytes,
    is_vcal,
    item_to_vcal,
    vcal_to_ical_bytes,
    vcal_to_items,
)


def vcal(*body: str, head: tuple[str, ...] = ()) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:1.0", *head, *body, "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def event(*props: str, head: tuple[str, ...] = ()) -> bytes:
    return vcal("BEGIN:VEVENT", "UID:u1", *props, "END:VEVENT", head=head)


def one(data: bytes) -> Item:
    items, errors = vcal_to_items(data, source="t.vcs")
    assert not errors, errors
    assert len(items) == 1
    return items[0]


def props(item: Item, name: str) -> list[str]:
    """The unfolded content lines of ``name`` in the master."""
    master = item.master()
    assert master is not None
    return [p.to_line() for p in master.all(name)]


def decoded(item: Item) -> icalendar.cal.Component:
    return item.to_icalendar().walk("VEVENT")[0] or item.to_icalendar().walk("VTODO")[0]


def out_lines(item: Item) -> list[str]:
    text = item_to_vcal(item).decode("utf-8")
    assert text.endswith("\r\n")
    return text.split("\r\n")


# -- sniffing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nEND:VCALENDAR\r\n", True),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nAALARM:x\r\nEND:VCALENDAR\r\n", False),
        (b"BEGIN:VCALENDAR\r\nVERSION;ENCODING=BASE64:MS4w\r\nEND:VCALENDAR\r\n", True),
        (b"BEGIN:VEVENT\r\nDTSTART:2009-10-13\r\nEND:VEVENT\r\n", True),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDALARM:20000222T100000Z\r\n", True),
        (b"BEGIN:VEVENT\r\nRRULE:W1 MO #0\r\nEND:VEVENT\r\n", True),
        (b"BEGIN:VEVENT\r\nSUMMARY;ENCODING=QUOTED-PRINTABLE:a=20b\r\nEND:VEVENT\r\n", True),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20090101T000000Z\r\n", False),
    ],
)
def test_is_vcal(data: bytes, expected: bool) -> None:
    assert is_vcal(data) is expected


# -- encodings and charsets ----------------------------------------------------------------


def test_quoted_printable_soft_breaks_and_charsets() -> None:
    item = one(
        event(
            "SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:m=F6chen",
            "LOCATION;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:L=C3=B6rem ips=C3=",
            "=BCm",
            "DESCRIPTION;ENCODING=QUOTED-PRINTABLE:line one=0D=0Aline=",
            " two",
            "CATEGORIES;QUOTED-PRINTABLE:A=3BB",
        )
    )
    ev = decoded(item)
    assert str(ev["SUMMARY"]) == "möchen"
    assert str(ev["LOCATION"]) == "Lörem ipsüm"
    assert str(ev["DESCRIPTION"]) == "line one\nline two"
    assert props(item, "CATEGORIES") == ["CATEGORIES:A,B"]


def test_shift_jis_declared_undeclared_and_8bit() -> None:
    sjis = "今日は誕生日".encode("shift_jis")
    data = vcal(
        "BEGIN:VEVENT",
        "UID:u1",
        "DTSTART:20000222T100000Z",
        "ADR;CHARSET=Shift_JIS:x",  # declares the file's charset
        "END:VEVENT",
    ).replace(
        b"ADR;CHARSET=Shift_JIS:x",
        b"ADR;CHARSET=Shift_JIS:x\r\nSUMMARY:" + sjis + b"\r\nDALARM;ENCODING=8-BIT;"
        b"CHARSET=Shift_JIS:20000222T100000Z;;;" + sjis,
    )
    item = one(data)
    ev = decoded(item)
    assert str(ev["SUMMARY"]) == "今日は誕生日"
    assert str(ev.walk("VALARM")[0]["DESCRIPTION"]) == "今日は誕生日"


def test_base64_text_binary_and_version() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION;ENCODING=BASE64:MS4w\r\n\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        b"DTSTART:20000222T100000Z\r\n"
        b"DESCRIPTION;ENCODING=BASE64;CHARSET=utf-8:\r\n"
        b"    5LuK5pel44Gv\r\n\r\n"
        b"CLASS;ENCODING=BASE64:UFVCTElD\r\n\r\n"
        b"ATTACH;VALUE=BINARY;ENCODING=BASE64;X-FMTTYPE=image/gif:\r\n"
        b"R0lGODlh\r\nAQABAA==\r\n\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert is_vcal(data)
    item = one(data)
    ev = decoded(item)
    assert str(ev["DESCRIPTION"]) == "今日は"
    assert str(ev["CLASS"]) == "PUBLIC"
    (attach,) = props(item, "ATTACH")
    assert attach == "ATTACH;X-FMTTYPE=image/gif;ENCODING=BASE64;VALUE=BINARY:R0lGODlhAQABAA=="
    out = b"\r\n".join(item_to_vcal(item).split(b"\r\n"))
    assert (
        b"ATTACH;X-FMTTYPE=image/gif;VALUE=BINARY;ENCODING=BASE64:\r\n R0lGODlhAQABAA==\r\n\r\n"
        in out
    )


def test_text_escapes_and_long_values_both_ways() -> None:
    item = one(event("SUMMARY:a\\;b\\,c\\\\d C:\\dir", "DESCRIPTION:" + "x" * 90))
    ev = decoded(item)
    assert str(ev["SUMMARY"]) == "a;b,c\\d C:\\dir"
    out = out_lines(item)
    assert "SUMMARY:a\\;b,c\\d C:\\dir" in out  # the smallest escaping that reads back
    # long ASCII lines are not folded (readers unfold them differently)
    assert "DESCRIPTION:" + "x" * 90 in out


def test_non_ascii_and_newlines_go_out_quoted_printable() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20250101T100000Z\r\nSUMMARY:Grüße\\nzwei\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    out = out_lines(item)
    assert "SUMMARY;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Gr=C3=BC=C3=9Fe=0D=0Azwei" in out
    assert str(decoded(one(item_to_vcal(item)))["SUMMARY"]) == "Grüße\nzwei"


def test_unfolding_and_valueless_parameters() -> None:
    data = event(
        "DESCRIPTION;POSTAL;WORK:abc def",
        "  ghi",
        "CATEGORIES;;123:BUSINESS",
    )
    item = one(data)
    assert props(item, "DESCRIPTION") == ["DESCRIPTION;TYPE=POSTAL;TYPE=WORK:abc def ghi"]
    assert props(item, "CATEGORIES") == ["CATEGORIES;TYPE=123:BUSINESS"]


def test_control_characters_are_an_error_naming_the_line() -> None:
    data = vcal(
        "BEGIN:VEVENT", "UID:good", "SUMMARY:fine", "END:VEVENT",
        "BEGIN:VEVENT", "UID;ENCODING=QUOTED-PRINTABLE:a=00b", "END:VEVENT",
    )  # fmt: skip
    # lines: 1 BEGIN, 2 VERSION, 3-6 first event, 7 BEGIN:VEVENT, 8 UID
    items, errors = vcal_to_items(data, source="phone.vcs")
    assert [i.uid for i in items] == ["good"]
    (error,) = errors
    assert error.line == 8
    assert str(error) == (
        "phone.vcs: item a\\x00b: line 8: UID contains the control character U+0000, "
        "which iCalendar cannot carry"
    )


# -- times, zones, all-day ----------------------------------------------------------------

BERLIN_LINES = (
    "TZ:+0100",
    "DAYLIGHT:TRUE;+0200;20070325T020000;20071028T030000;;",
    "DAYLIGHT:TRUE;+0200;20080330T020000;20081026T030000;;",
)


def test_tz_and_daylight_choose_the_olson_zone() -> None:
    item = one(event("DTSTART:20071129T120000", "DTEND:20070701T100000Z", head=BERLIN_LINES))
    assert props(item, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20071129T120000"]
    assert props(item, "DTEND") == ["DTEND;TZID=Europe/Berlin:20070701T120000"]
    (tz,) = item.timezones()
    assert tz.value("TZID") == "Europe/Berlin"
    ev = decoded(item)
    assert ev["DTSTART"].dt.astimezone(UTC) == datetime(2007, 11, 29, 11, 0, tzinfo=UTC)


def test_the_name_in_daylight_decides_between_equal_zones() -> None:
    head = ("TZ:+0100", "DAYLIGHT:TRUE;+0200;20070325T010000Z;20071028T010000Z;Europe/Paris;")
    item = one(event("DTSTART:20070601T120000", head=head))
    assert props(item, "DTSTART") == ["DTSTART;TZID=Europe/Paris:20070601T120000"]


def test_unknown_rules_make_a_zone_of_their_own() -> None:
    head = ("TZ:+0930", "DAYLIGHT:TRUE;+1030;20011001T030000;20020307T020000;CAT;CDT")
    item = one(event("DTSTART:20020228T070000", "DTEND:20020403T191500", head=head))
    (tz,) = item.timezones()
    tzid = tz.value("TZID")
    assert tzid is not None and tzid.startswith("vCalendar TZ+0930 DST+1030")
    ev = decoded(item)
    assert ev["DTSTART"].dt.utcoffset().total_seconds() == 10.5 * 3600
    assert ev["DTEND"].dt.utcoffset().total_seconds() == 9.5 * 3600
    out = out_lines(item)
    assert "TZ:+0930" in out
    assert "DAYLIGHT:TRUE;+1030;20010930T173000Z;20020306T153000Z;CAT;CDT" in out
    assert "DTSTART:20020227T203000Z" in out


def test_fixed_offset_times_become_utc() -> None:
    item = one(event("DTSTART:20071129T120000", "DTEND:20071129T230100", head=("TZ:+01",)))
    assert props(item, "DTSTART") == ["DTSTART:20071129T110000Z"]
    assert item.timezones() == []


def test_going_out_lists_daylight_for_the_years_spanned() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20070301T090000\r\nDTEND;TZID=Europe/Berlin:20070301T100000\r\n"
        "RRULE:FREQ=YEARLY;UNTIL=20090301T080000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    out = out_lines(item)
    assert out[3] == "TZ:+0100"
    daylight = [line for line in out if line.startswith("DAYLIGHT:")]
    assert daylight == [
        f"DAYLIGHT:TRUE;+0200;{a}T010000Z;{b}T010000Z;Europe/Berlin;Europe/Berlin"
        for a, b in (("20070325", "20071028"), ("20080330", "20081026"), ("20090329", "20091025"))
    ]
    assert "DTSTART:20070301T080000Z" in out
    assert "RRULE:YM1 3 20090301T080000Z" in out
    back = one(item_to_vcal(item))
    assert props(back, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20070301T090000"]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("DTSTART:20091023", "DTEND:20091024", ("20091023", "20091024")),
        ("DTSTART:2009-10-23", "DTEND:20091023", ("20091023", "20091024")),
        ("DTSTART:20091023T000000", "DTEND:20091024T235959", ("20091023", "20091025")),
        ("DTSTART:20091023T000000", "DTEND:20091023T235900", ("20091023", "20091024")),
        ("DTSTART:20091023T000000", "DTEND:20091025T000000", ("20091023", "20091025")),
        ("DTSTART:20070411T000000", "DTEND:20070411T000000", ("20070411", "20070412")),
        ("DTSTART:20000110T000000Z", "DTEND:20000112T000000Z", ("20000110", "20000112")),
    ],
)
def test_all_day_conventions(start: str, end: str, expected: tuple[str, str]) -> None:
    item = one(event(start, end))
    assert props(item, "DTSTART") == [f"DTSTART;VALUE=DATE:{expected[0]}"]
    assert props(item, "DTEND") == [f"DTEND;VALUE=DATE:{expected[1]}"]
    out = out_lines(item)
    assert f"DTSTART:{expected[0]}T000000" in out
    last = int(expected[1]) - 1 if expected[1][-2:] != "01" else None
    if last:
        assert f"DTEND:{last}T235959" in out


def test_timed_events_stay_timed() -> None:
    item = one(event("DTSTART:20000105T080000", "DTEND:20000107T235900"))
    assert props(item, "DTSTART") == ["DTSTART:20000105T080000"]
    item = one(event("DTSTART:20091023T000000Z", "DTEND:20091024T000000Z"))
    assert props(item, "DTSTART") == ["DTSTART;VALUE=DATE:20091023"]
    # a UTC midnight that is not midnight on the device's clock is a time
    item = one(event("DTSTART:20091023T000000Z", "DTEND:20091024T000000Z", head=BERLIN_LINES))
    assert props(item, "DTSTART")[0].startswith("DTSTART;TZID=Europe/Berlin:20091023T020000")


def test_a_timed_ical_event_that_looks_all_day_stays_timed() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20100219T000000\r\nDTEND:20100219T235900\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    out = out_lines(item)
    assert "DTSTART:20100219T000000" in out  # what a device reads as all-day ...
    back = one(item_to_vcal(item))
    assert props(back, "DTSTART") == ["DTSTART:20100219T000000"]  # ... but we read it back
    assert props(back, "DTEND") == ["DTEND:20100219T235900"]


def test_hour_24_and_extended_formats() -> None:
    item = one(event("DTSTART:20010703T240000", "DTEND:2001-07-04T01:00:00"))
    assert props(item, "DTSTART") == ["DTSTART:20010704T000000"]
    assert props(item, "DTEND") == ["DTEND:20010704T010000"]


def test_dcreated_last_modified_and_dtstamp() -> None:
    item = one(event("DTSTART:20050101T110000Z", "DCREATED:20050329T131635Z",
                     "LAST-MODIFIED:20050329T131700Z"))  # fmt: skip
    assert props(item, "CREATED") == ["CREATED:20050329T131635Z"]
    assert props(item, "LAST-MODIFIED") == ["LAST-MODIFIED:20050329T131700Z"]
    assert props(item, "DTSTAMP") == ["DTSTAMP:20050329T131700Z"]
    out = out_lines(item)
    assert "DCREATED:20050329T131635Z" in out
    assert "LAST-MODIFIED:20050329T131700Z" in out
    assert not any(line.startswith("DTSTAMP") for line in out)


# -- alarms -------------------------------------------------------------------------------


def test_alarms_both_ways() -> None:
    item = one(
        event(
            "DTSTART:20060308T090000Z",
            "AALARM;TYPE=X-EPOCSOUND:20060308T082000Z;PT5M;2;c:\\mysound",
            "DALARM:20060308T084500Z;;;Meeting is today",
            "PALARM;VALUE=URL:20060308T080000Z;;;file:///shockme.exe",
            "MALARM:20060307T090000Z;;;boss@example.com;Do not forget",
            "AALARM:;;;",
        )
    )
    alarms = decoded(item).walk("VALARM")
    got = [(str(a["ACTION"]), a["TRIGGER"].dt) for a in alarms]
    assert [(action, delta.total_seconds() / 60) for action, delta in got] == [
        ("AUDIO", -40), ("DISPLAY", -15), ("PROCEDURE", -60), ("EMAIL", -1440),
    ]  # fmt: skip
    assert str(alarms[0]["ATTACH"]) == "c:\\mysound"
    assert str(alarms[0]["DURATION"].to_ical().decode()) == "PT5M"
    assert int(alarms[0]["REPEAT"]) == 2
    assert str(alarms[1]["DESCRIPTION"]) == "Meeting is today"
    assert str(alarms[3]["ATTENDEE"]) == "mailto:boss@example.com"
    assert str(alarms[3]["DESCRIPTION"]) == "Do not forget"
    out = out_lines(item)
    assert "AALARM;TYPE=X-EPOCSOUND:20060308T082000Z;PT5M;2;c:\\mysound" in out
    assert "DALARM:20060308T084500Z;;;Meeting is today" in out
    assert "PALARM;VALUE=URL:20060308T080000Z;;;file:///shockme.exe" in out
    assert "MALARM:20060307T090000Z;;;boss@example.com;Do not forget" in out


def test_a_to_do_alarm_is_relative_to_its_due_time() -> None:
    data = vcal("BEGIN:VTODO", "UID:t1", "DUE:20050313T010300Z", "AALARM:20050313T000300Z",
                "END:VTODO")  # fmt: skip
    alarm = one(data).to_icalendar().walk("VALARM")[0]
    assert alarm["TRIGGER"].params["RELATED"] == "END"
    assert alarm["TRIGGER"].dt.total_seconds() == -3600


ALARMS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
    "DTSTART:20250101T100000Z\r\n"
    "BEGIN:VALARM\r\nACTION:NONE\r\nTRIGGER;VALUE=DATE-TIME:19760401T005545Z\r\nEND:VALARM\r\n"
    "BEGIN:VALARM\r\nUID:a2\r\nX-MOZ-LASTACK:20250101T094500Z\r\nACTION:DISPLAY\r\n"
    "DESCRIPTION:Go\r\nTRIGGER;RELATED=START:-PT15M\r\nEND:VALARM\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Plain\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_ical_alarms_travel_whole_beside_the_device_line() -> None:
    """An alarm vCalendar cannot say (ACTION:NONE) is carried alone; one it says only
    in part (UID, X-MOZ-LASTACK, RELATED=START) goes along with its device line; a
    plain one gets no companion.  All come back exactly."""
    item = loads_one(ALARMS)
    out = out_lines(item)
    assert "DALARM:20250101T094500Z;;;Go" in out
    assert "DALARM:20250101T095500Z;;;Plain" in out
    heads = [line.split(":", 1)[0] for line in out if line.startswith("X-CALSYNC-ICAL-VALARM")]
    assert heads == [
        "X-CALSYNC-ICAL-VALARM;ENCODING=QUOTED-PRINTABLE",
        'X-CALSYNC-ICAL-VALARM;X-CALSYNC-FOR="DALARM',
    ]
    back = one(item_to_vcal(item))
    assert back.hash == item.hash


def test_other_sub_components_are_carried_whole() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20250101T100000Z\r\nBEGIN:VLOCATION\r\nUID:loc1\r\nNAME:Room 1\r\n"
        "END:VLOCATION\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert not any(line.startswith(("BEGIN:VLOCATION", "NAME")) for line in out_lines(item))
    back = one(item_to_vcal(item))
    assert back.hash == item.hash
    assert back.master().children("VLOCATION")[0].value("NAME") == "Room 1"  # type: ignore[union-attr]


def test_a_device_edit_of_an_alarm_wins_over_the_companion() -> None:
    item = loads_one(ALARMS)
    edited = re.sub(
        rb"(?m)^DALARM:20250101T094500Z;;;Go\r$",
        b"DALARM:20250101T093000Z;;;Go!\r",
        item_to_vcal(item),
    )
    assert edited.count(b"Go!") == 1
    alarms = one(edited).to_icalendar().walk("VALARM")
    by_text = {str(a.get("DESCRIPTION")): a for a in alarms}
    assert set(by_text) == {"None", "Go!", "Plain"}
    assert by_text["Go!"]["TRIGGER"].dt.total_seconds() == -30 * 60
    assert "UID" not in by_text["Go!"]  # the device's alarm now: the old one's extras went


# -- recurrence ---------------------------------------------------------------------------


def test_rules_dates_and_overrides() -> None:
    data = vcal(
        "BEGIN:VEVENT", "UID:r1", "DTSTART:20050516T133000", "DTEND:20050516T143000",
        "RRULE:D1 20050525T143000", "EXDATE:20050519T133000;20050520T133000",
        "RDATE:20050530T133000", "EXRULE:W1 SU #0", "END:VEVENT",
        "BEGIN:VEVENT", "UID:r1", "X-RECURRENCE-ID:20050518", "DTSTART:20050527T133000",
        "DTEND:20050527T143000", "END:VEVENT",
    )  # fmt: skip
    item = one(data)
    assert props(item, "RRULE") == ["RRULE:FREQ=DAILY;UNTIL=20050525T143000"]
    assert props(item, "EXRULE") == ["EXRULE:FREQ=WEEKLY;BYDAY=SU"]
    assert props(item, "EXDATE") == ["EXDATE:20050519T133000,20050520T133000"]
    assert props(item, "RDATE") == ["RDATE:20050530T133000"]
    comps = item.components()
    assert len(comps) == 2
    assert comps[1].value("RECURRENCE-ID") == "20050518T133000"  # the master's time of day
    out = out_lines(item)
    assert "RRULE:D1 20050525T143000" in out
    assert "EXDATE:20050519T133000;20050520T133000" in out
    assert "X-RECURRENCE-ID:20050518T133000" in out
    assert out.count("BEGIN:VEVENT") == 2


def test_an_end_date_at_midnight_includes_that_day() -> None:
    item = one(event("DTSTART:20060406T170000Z", "RRULE:W1 TH 20060427T000000Z"))
    assert props(item, "RRULE") == ["RRULE:FREQ=WEEKLY;BYDAY=TH;UNTIL=20060427T170000Z"]
    assert len(list(decoded_occurrences(item))) == 4  # "recurs four times due to its end date"


def decoded_occurrences(item: Item) -> list[datetime]:
    from dateutil import rrule as du

    ev = decoded(item)
    return list(du.rrulestr(ev["RRULE"].to_ical().decode(), dtstart=ev["DTSTART"].dt))


def test_a_recurring_to_do_without_dtstart_recurs_from_its_due_date() -> None:
    data = vcal("BEGIN:VTODO", "UID:t1", "DUE:19990418T040000Z", "RRULE:D1 #3", "END:VTODO")
    item = one(data)
    assert props(item, "DTSTART") == ["DTSTART:19990418T040000Z"]
    out = out_lines(item)
    assert not any(line.startswith("DTSTART") for line in out)
    assert "RRULE:D1 #3" in out


def test_an_ical_rule_vcal_cannot_say_is_kept_aside(caplog: pytest.LogCaptureFixture) -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20250101T100000Z\r\nRRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=2SU\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    out = out_lines(item)
    assert not any(line.startswith("RRULE") for line in out)
    assert "X-CALSYNC-ICAL-RRULE;X-CALSYNC-FOR=:FREQ=YEARLY;BYMONTH=5;BYDAY=2SU" in out
    assert props(one(item_to_vcal(item)), "RRULE") == ["RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=2SU"]


# -- status, class, priority, categories, people -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "vcal_status", "ical_status"),
    [
        ("VEVENT", "CONFIRMED", "CONFIRMED"),
        ("VEVENT", "TENTATIVE", "TENTATIVE"),
        ("VEVENT", "DECLINED", "CANCELLED"),
        ("VEVENT", "NEEDS ACTION", None),
        ("VTODO", "NEEDS ACTION", "NEEDS-ACTION"),
        ("VTODO", "NEEDS_ACTION", "NEEDS-ACTION"),
        ("VTODO", "COMPLETED", "COMPLETED"),
        ("VTODO", "ACCEPTED", "IN-PROCESS"),
        ("VTODO", "SENT", "NEEDS-ACTION"),
        ("VTODO", "DECLINED", "CANCELLED"),
    ],
)
def test_status_mapping_and_the_device_value_written_back(
    kind: str, vcal_status: str, ical_status: str | None
) -> None:
    data = vcal(f"BEGIN:{kind}", "UID:s1", "DTSTART:20250101T100000Z", f"STATUS:{vcal_status}",
                f"END:{kind}")  # fmt: skip
    item = one(data)
    expected = [f"STATUS:{ical_status}"] if ical_status else []
    assert props(item, "STATUS") == expected
    assert f"STATUS:{vcal_status}" in out_lines(item)


def test_a_changed_status_wins_over_the_kept_device_value() -> None:
    item = one(vcal("BEGIN:VTODO", "UID:s1", "STATUS:SENT", "END:VTODO"))
    changed = Item(item.raw.replace(b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED"), item.uid, "VTODO")
    out = out_lines(changed)
    assert "STATUS:COMPLETED" in out
    assert "STATUS:SENT" not in out


def test_class_priority_transp_categories_geo() -> None:
    item = one(
        event(
            "CLASS:CONFIDENTIAL", "PRIORITY:3", "TRANSP:1",
            "CATEGORIES:APPOINTMENT;EDUCATION;X-Custom", "GEO:37.24,-17.87",
        )
    )  # fmt: skip
    assert props(item, "CLASS") == ["CLASS:CONFIDENTIAL"]
    assert props(item, "PRIORITY") == ["PRIORITY:3"]
    assert props(item, "TRANSP") == ["TRANSP:TRANSPARENT"]
    assert props(item, "CATEGORIES") == ["CATEGORIES:APPOINTMENT,EDUCATION,X-Custom"]
    assert props(item, "GEO") == ["GEO:37.24;-17.87"]
    out = out_lines(item)
    for line in ("CLASS:CONFIDENTIAL", "PRIORITY:3", "TRANSP:1",
                 "CATEGORIES:APPOINTMENT;EDUCATION;X-Custom", "GEO:37.24,-17.87"):  # fmt: skip
        assert line in out


def test_outlook_comma_categories_and_odd_priorities() -> None:
    item = one(event("CATEGORIES:Business,Goals/Objectives,Time & Expenses", "PRIORITY:225"))
    assert props(item, "CATEGORIES") == ["CATEGORIES:Business,Goals/Objectives,Time & Expenses"]
    assert props(item, "PRIORITY") == []
    assert "PRIORITY:225" in out_lines(item)


def test_attendees_roles_and_statuses() -> None:
    item = one(
        event(
            "ATTENDEE;ROLE=ORGANIZER;STATUS=CONFIRMED:Boss <boss@example.com>",
            "ATTENDEE;ROLE=ATTENDEE;STATUS=NEEDS ACTION;RSVP=YES;EXPECT=REQUEST:a@example.com",
            "ATTENDEE;ROLE=OWNER;STATUS=TENTATIVE:Person A",
            "ATTENDEE;STATUS=DECLINED;EXPECT=FYI:MAILTO:Some One <one@example.com>",
        )
    )
    assert props(item, "ORGANIZER")[0].startswith("ORGANIZER;CN=Boss;")
    assert props(item, "ORGANIZER")[0].endswith(":mailto:boss@example.com")
    attendees = props(item, "ATTENDEE")
    assert attendees[0] == (
        "ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:a@example.com"
    )
    assert (
        attendees[1]
        == "ATTENDEE;CN=Person A;ROLE=CHAIR;PARTSTAT=TENTATIVE:urn:x-vcal-name:Person%20A"
    )
    assert attendees[2].startswith("ATTENDEE;CN=Some One;ROLE=NON-PARTICIPANT;PARTSTAT=DECLINED")
    out = out_lines(item)
    assert "ATTENDEE;ROLE=ORGANIZER;STATUS=CONFIRMED:Boss <boss@example.com>" in out
    assert "ATTENDEE;ROLE=ATTENDEE;EXPECT=REQUEST;STATUS=NEEDS ACTION;RSVP=YES:a@example.com" in out
    assert "ATTENDEE;ROLE=OWNER;STATUS=TENTATIVE:Person A" in out


def test_ical_people_go_out_as_vcal_attendees() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20250101T100000Z\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\n"
        "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:bob@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    out = out_lines(item)
    assert "ATTENDEE;ROLE=ORGANIZER:Ann <ann@example.com>" in out
    assert (
        "ATTENDEE;ROLE=ATTENDEE;EXPECT=REQUIRE;STATUS=ACCEPTED;RSVP=YES:Bob <bob@example.com>"
        in out
    )


# -- to-dos --------------------------------------------------------------------------------


def test_todo_due_completed_priority() -> None:
    data = vcal(
        "BEGIN:VTODO", "UID:t1", "DTSTART:2009-10-13", "DUE:2009-10-14", "PRIORITY:1",
        "COMPLETED:20091013T120000Z", "PERCENT-COMPLETE:100", "STATUS:COMPLETED", "END:VTODO",
    )  # fmt: skip
    item = one(data)
    assert item.kind == "VTODO"
    assert props(item, "DUE") == ["DUE;VALUE=DATE:20091014"]
    assert props(item, "DTSTART") == ["DTSTART;VALUE=DATE:20091013"]
    assert props(item, "COMPLETED") == ["COMPLETED:20091013T120000Z"]
    assert props(item, "PRIORITY") == ["PRIORITY:1"]
    out = out_lines(item)
    for line in ("DUE:20091014", "DTSTART:20091013", "COMPLETED:20091013T120000Z", "PRIORITY:1",
                 "STATUS:COMPLETED", "PERCENT-COMPLETE:100"):  # fmt: skip
        assert line in out


# -- what the other format cannot say -------------------------------------------------------


def test_x_properties_and_unknown_ones_are_kept_both_ways() -> None:
    item = one(event("X-EPOCAGENDAENTRYTYPE:APPOINTMENT", "X-SYMBIAN-LUID:13", "FN:A N Other",
                     "X-NOK;QUOTED-PRINTABLE:a=0D=0Ab"))  # fmt: skip
    assert props(item, "X-EPOCAGENDAENTRYTYPE") == ["X-EPOCAGENDAENTRYTYPE:APPOINTMENT"]
    assert props(item, "FN") == ["FN:A N Other"]
    assert props(item, "X-NOK") == ["X-NOK:a\\nb"]
    out = out_lines(item)
    assert "X-EPOCAGENDAENTRYTYPE:APPOINTMENT" in out
    assert "X-SYMBIAN-LUID:13" in out
    assert "FN:A N Other" in out


def test_ical_only_properties_are_carried_through_a_vcs_file() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        "DTSTAMP:20250101T000000Z\r\nDTSTART:20250101T100000Z\r\nDURATION:PT1H\r\n"
        "COMMENT:a comment\r\nCONTACT:someone\r\nX-MOZ-GENERATION:3\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    item = loads_one(text)
    out = out_lines(item)
    assert "DTEND:20250101T110000Z" in out
    assert "X-CALSYNC-ICAL-COMMENT:a comment" in out
    back = one(item_to_vcal(item))
    assert props(back, "COMMENT") == ["COMMENT:a comment"]
    assert props(back, "CONTACT") == ["CONTACT:someone"]
    assert props(back, "DTSTAMP") == ["DTSTAMP:20250101T000000Z"]
    assert props(back, "X-MOZ-GENERATION") == ["X-MOZ-GENERATION:3"]


def test_vjournal_is_refused() -> None:
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VJOURNAL\r\nUID:j1\r\nDTSTAMP:20250101T000000Z\r\n"
        "END:VJOURNAL\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(ValueError, match="VJOURNAL"):
        item_to_vcal(item)


# -- streams, errors, UIDs -------------------------------------------------------------------


def test_bad_entries_are_errors_the_others_convert() -> None:
    data = vcal(
        "BEGIN:VEVENT", "UID:a", "DTSTART:20250101T100000Z", "END:VEVENT",
        "BEGIN:VEVENT", "UID:b", "DTSTART:2025-13-45", "END:VEVENT",
        "BEGIN:VEVENT", "UID:c", "RRULE:XYZ", "DTSTART:20250101T100000Z", "END:VEVENT",
        "BEGIN:VTODO", "UID:d", "SUMMARY:ok", "END:VTODO",
    )  # fmt: skip
    items, errors = vcal_to_items(data, source="phone.vcs")
    assert sorted(i.uid for i in items) == ["a", "d"]
    assert [(e.id, e.line) for e in errors] == [("b", 9), ("c", 13)]
    assert str(errors[0]) == "phone.vcs: item b: line 9: DTSTART: not a valid date: '2025-13-45'"
    assert "RRULE 'XYZ'" in str(errors[1])


def test_entries_without_uid_get_a_stable_one() -> None:
    data = vcal("BEGIN:VEVENT", "SUMMARY:Help", "DTSTART:20021001T090000", "END:VEVENT")
    first, second = one(data), one(data)
    assert first.uid == second.uid and first.uid.startswith("calsync-")
    assert first.uid_derived
    assert f"UID:{first.uid}" in out_lines(first)


def test_several_calendars_and_bare_components() -> None:
    data = vcal("BEGIN:VEVENT", "UID:a", "END:VEVENT") + vcal("BEGIN:VTODO", "UID:b", "END:VTODO")
    data += b"BEGIN:VEVENT\r\nUID:c\r\nDTSTART:2009-10-13\r\nEND:VEVENT\r\n"
    items, errors = vcal_to_items(data)
    assert not errors
    assert sorted((i.uid, i.kind) for i in items) == [("a", "VEVENT"), ("b", "VTODO"),
                                                     ("c", "VEVENT")]  # fmt: skip


def test_whole_stream_conveniences() -> None:
    data = vcal("BEGIN:VEVENT", "UID:a", "DTSTART:20071129T120000", "END:VEVENT",
                head=BERLIN_LINES) + vcal("BEGIN:VEVENT", "UID:b", "DTSTART:20080601T120000",
                                          "END:VEVENT", head=BERLIN_LINES)  # fmt: skip
    ical = vcal_to_ical_bytes(data)
    cal = icalendar.Calendar.from_ical(ical)
    assert len(cal.walk("VEVENT")) == 2
    assert len(cal.walk("VTIMEZONE")) == 1  # one per TZID, observances merged
    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    starts = sorted(e["DTSTART"].dt for e in cal.walk("VEVENT"))
    assert starts == [datetime(2007, 11, 29, 12, tzinfo=tz), datetime(2008, 6, 1, 12, tzinfo=tz)]
    back = ical_to_vcal_bytes(ical)
    assert back.count(b"BEGIN:VCALENDAR") == 2
    with pytest.raises(ValueError, match="item x: line 5: DTSTART: not a date or time: 'junk'"):
        vcal_to_ical_bytes(vcal("BEGIN:VEVENT", "UID:x", "DTSTART:junk", "END:VEVENT"))
