"""Appointments <-> VEVENTs: every field both ways, all-day events across
zones, series with exceptions, 16.x instance edits, what cannot be sent."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calsync.eas.calendar import (
    apply_instance_delete,
    apply_instance_edit,
    appointment_to_item,
    item_to_appointment,
    new_uid,
)
from calsync.eas.model import (
    Appointment,
    Attendee,
    AttendeeStatus,
    AttendeeType,
    Body,
    BodyType,
    BusyStatus,
    EventFields,
    Location,
    MeetingStatus,
    Recurrence,
    RecurrenceException,
    RecurrenceType,
    ResponseType,
    Sensitivity,
)
from calsync.eas.props import MappingError, Options
from calsync.eas.timezone import blob_for_zone
from calsync.items import Item, loads_one
from calsync.items.lines import Component
from tests.eas.test_recurrence import shaped_rrules

YEAR = 2026
V14 = Options(version="14.1", user_email="me@example.com", year=YEAR)
V16 = Options(version="16.1", user_email="me@example.com", year=YEAR)


def ics(*lines: str, extra: str = "") -> Item:
    body = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", *lines, "END:VCALENDAR", ""]
    )
    return loads_one(body + extra)


def event(
    *props: str,
    start: str = "DTSTART;TZID=Europe/Berlin:20260310T100000",
    end: str = "DTEND;TZID=Europe/Berlin:20260310T113000",
) -> Item:
    return ics(
        "BEGIN:VEVENT", "UID:e1", "DTSTAMP:20260101T000000Z", start, end, *props, "END:VEVENT"
    )


def master(item: Item) -> Component:
    comp = item.master()
    assert comp is not None
    return comp


def lines(comp: Component, name: str) -> list[str]:
    return [p.to_line() for p in comp.all(name)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- single fields --------------------------------------------------------------------------------


def test_times_travel_in_utc_with_the_zone_as_blob() -> None:
    appt = item_to_appointment(event(), V14).data
    assert appt.start_time == utc(2026, 3, 10, 9) and appt.end_time == utc(2026, 3, 10, 10, 30)
    assert appt.timezone == blob_for_zone(ZoneInfo("Europe/Berlin"), YEAR)
    assert appt.all_day_event is False and appt.uid == "e1"
    back = master(appointment_to_item(appt, V14))
    assert lines(back, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20260310T100000"]
    assert lines(back, "DTEND") == ["DTEND;TZID=Europe/Berlin:20260310T113000"]
    assert back.value("UID") == "e1"


def test_utc_and_floating_times() -> None:
    appt = item_to_appointment(
        event(start="DTSTART:20260310T100000Z", end="DURATION:PT45M"), V14
    ).data
    assert appt.timezone is not None and appt.timezone.to_bytes() == bytes(172)
    assert appt.end_time == utc(2026, 3, 10, 10, 45)
    assert lines(master(appointment_to_item(appt, V14)), "DTSTART") == ["DTSTART:20260310T100000Z"]
    floating = Options(floating_zone=ZoneInfo("America/New_York"), year=YEAR)
    appt = item_to_appointment(event(start="DTSTART:20260310T100000", end=""), floating).data
    assert appt.start_time == utc(2026, 3, 10, 14) and appt.end_time == appt.start_time


@pytest.mark.parametrize(
    ("zone", "start_utc"),
    [
        ("Europe/Berlin", utc(2026, 3, 9, 23)),
        ("America/New_York", utc(2026, 3, 10, 4)),
        ("Australia/Sydney", utc(2026, 3, 9, 13)),
        ("Pacific/Kiritimati", utc(2026, 3, 9, 10)),
        ("Pacific/Pago_Pago", utc(2026, 3, 10, 11)),
        ("UTC", utc(2026, 3, 10)),
    ],
)
def test_all_day_events_keep_their_dates_in_every_zone(zone: str, start_utc: datetime) -> None:
    """14.x: local midnight of the device's zone, with its blob; 16.x: date-shaped
    UTC midnights and no blob.  Back: the same DATE values, no day east or west."""
    item = event(start="DTSTART;VALUE=DATE:20260310", end="DTEND;VALUE=DATE:20260312")
    device = Options(version="14.1", device_zone=ZoneInfo(zone), year=YEAR)
    appt = item_to_appointment(item, device).data
    assert appt.all_day_event is True
    assert appt.start_time == start_utc
    assert appt.end_time == start_utc + timedelta(days=2)
    assert appt.timezone == blob_for_zone(ZoneInfo(zone), YEAR)
    for opts in (device, Options(version="14.1", year=YEAR)):  # the blob says the zone
        back = master(appointment_to_item(appt, opts))
        assert lines(back, "DTSTART") == ["DTSTART;VALUE=DATE:20260310"]
        assert lines(back, "DTEND") == ["DTEND;VALUE=DATE:20260312"]
    v16 = Options(version="16.1", device_zone=ZoneInfo(zone), year=YEAR)
    appt16 = item_to_appointment(item, v16).data
    assert appt16.timezone is None
    assert (appt16.start_time, appt16.end_time) == (utc(2026, 3, 10), utc(2026, 3, 12))
    back = master(appointment_to_item(appt16, v16))
    assert lines(back, "DTSTART") == ["DTSTART;VALUE=DATE:20260310"]


@pytest.mark.parametrize(
    "zone",
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    ],
)
def test_all_day_events_from_devices_of_every_zone(zone: str) -> None:
    """What a device in ``zone`` sends (its midnight in UTC, its blob; or the
    16.x form; or an echo without a blob) reads as the same dates."""
    tz = ZoneInfo(zone)
    midnight = datetime(2026, 7, 1, tzinfo=tz).astimezone(UTC)
    sent = [
        Appointment(
            all_day_event=True,
            start_time=midnight,
            end_time=midnight + timedelta(days=1),
            timezone=blob_for_zone(tz, YEAR),
        ),
        Appointment(all_day_event=True, start_time=utc(2026, 7, 1), end_time=utc(2026, 7, 2)),
        Appointment(all_day_event=True, start_time=midnight, end_time=midnight + timedelta(days=1)),
    ]
    for appt in sent:
        comp = master(appointment_to_item(appt, Options(device_zone=tz, year=YEAR)))
        assert lines(comp, "DTSTART") == ["DTSTART;VALUE=DATE:20260701"], appt
        assert lines(comp, "DTEND") == ["DTEND;VALUE=DATE:20260702"], appt


def test_naive_wire_times_are_utc_not_the_server_s_local_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        appt = Appointment(start_time=datetime(2026, 3, 10, 9), end_time=datetime(2026, 3, 10, 10))
        berlin = Options(device_zone=ZoneInfo("Europe/Berlin"), year=YEAR)
        assert lines(master(appointment_to_item(appt, berlin)), "DTSTART") == [
            "DTSTART;TZID=Europe/Berlin:20260310T100000"
        ]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_all_day_end_not_after_the_start_is_the_next_day() -> None:
    appt = Appointment(all_day_event=True, start_time=utc(2026, 7, 1), end_time=utc(2026, 7, 1))
    assert lines(master(appointment_to_item(appt, V16)), "DTEND") == ["DTEND;VALUE=DATE:20260702"]


def test_texts_body_location_categories() -> None:
    item = event(
        "SUMMARY:Review\\, part 2",
        "LOCATION:Room 4",
        "DESCRIPTION:first\\nsecond; third",
        "CATEGORIES:Work,Team",
        "CATEGORIES:Q1",
    )
    appt = item_to_appointment(item, V14).data
    assert appt.subject == "Review, part 2"
    assert appt.location == "Room 4"
    assert appt.body == Body(
        type=BodyType.PLAIN, data="first\nsecond; third", estimated_data_size=19, truncated=False
    )
    assert appt.categories == ["Work", "Team", "Q1"]
    back = master(appointment_to_item(appt, V14))
    assert back.value("SUMMARY") == "Review\\, part 2"
    assert back.value("DESCRIPTION") == "first\\nsecond\\; third"
    assert lines(back, "CATEGORIES") == ["CATEGORIES:Work,Team,Q1"]


def test_bodies_the_device_sends_with_crlf_html_or_cut() -> None:
    appt = Appointment(start_time=utc(2026, 1, 1), body=Body(data="a\r\nb"))
    assert master(appointment_to_item(appt, V14)).value("DESCRIPTION") == "a\\nb"
    html = Body(
        type=BodyType.HTML, data="<html><body><p>Hello <b>you</b></p><p>x</p></body></html>"
    )
    comp = master(appointment_to_item(Appointment(start_time=utc(2026, 1, 1), body=html), V14))
    assert comp.value("DESCRIPTION") == "Hello you\\n\\nx"
    assert lines(comp, "X-ALT-DESC")[0].startswith("X-ALT-DESC;FMTTYPE=text/html:<html>")
    cut = Body(data="only the beginn", truncated=True)
    comp = master(appointment_to_item(Appointment(start_time=utc(2026, 1, 1), body=cut), V14))
    assert comp.get("DESCRIPTION") is None


def test_the_body_the_device_asked_for() -> None:
    item = event("DESCRIPTION:Grüße <aus> Köln")
    plain = item_to_appointment(item, Options(body_limit=8, year=YEAR)).data.body
    assert plain is not None and plain.truncated is True and plain.data == "Grüße "
    assert plain.estimated_data_size == len("Grüße <aus> Köln".encode())
    html = item_to_appointment(item, Options(body_type=BodyType.HTML, year=YEAR)).data.body
    assert html is not None and html.type == BodyType.HTML
    assert html.data == "<html><body>Grüße &lt;aus&gt; Köln</body></html>"


def test_location_of_16x_with_coordinates_and_address() -> None:
    loc = Location(
        display_name="Town hall",
        latitude=52.52,
        longitude=13.405,
        street="Rathausstr. 15",
        city="Berlin",
        country="Germany",
        accuracy=10.0,
        location_uri="geo:52.52,13.405",
    )
    appt = Appointment(start_time=utc(2026, 1, 1, 9), location=loc)
    comp = master(appointment_to_item(appt, V16))
    assert comp.value("LOCATION") == "Town hall" and comp.value("GEO") == "52.52;13.405"
    assert comp.value("X-EAS-LOCATION-CITY") == "Berlin"
    assert item_to_appointment(appointment_to_item(appt, V16), V16).data.location == loc
    assert item_to_appointment(appointment_to_item(appt, V16), V14).data.location == "Town hall"


@pytest.mark.parametrize(
    ("status", "transp", "cdo"),
    [
        (BusyStatus.FREE, "TRANSPARENT", None),
        (BusyStatus.TENTATIVE, None, "TENTATIVE"),
        (BusyStatus.BUSY, None, None),
        (BusyStatus.OUT_OF_OFFICE, None, "OOF"),
        (BusyStatus.WORKING_ELSEWHERE, None, "WORKINGELSEWHERE"),
    ],
)
def test_busy_status(status: BusyStatus, transp: str | None, cdo: str | None) -> None:
    comp = master(
        appointment_to_item(Appointment(start_time=utc(2026, 1, 1), busy_status=status), V14)
    )
    assert comp.value("TRANSP") == transp and comp.value("X-MICROSOFT-CDO-BUSYSTATUS") == cdo
    assert item_to_appointment(Item.from_tree(comp_cal(comp)), V14).data.busy_status == status


def comp_cal(comp: Component) -> Component:
    return Component("VCALENDAR", [], [comp])


def test_transparency_wins_over_a_stale_busy_status() -> None:
    item = event("TRANSP:TRANSPARENT", "X-MICROSOFT-CDO-BUSYSTATUS:OOF")
    assert item_to_appointment(item, V14).data.busy_status == BusyStatus.FREE
    item = event("TRANSP:OPAQUE", "X-MICROSOFT-CDO-BUSYSTATUS:FREE")
    assert item_to_appointment(item, V14).data.busy_status == BusyStatus.BUSY


@pytest.mark.parametrize(
    ("sensitivity", "line"),
    [
        (Sensitivity.NORMAL, None),
        (Sensitivity.PERSONAL, "CLASS;X-EAS-SENSITIVITY=1:PRIVATE"),
        (Sensitivity.PRIVATE, "CLASS:PRIVATE"),
        (Sensitivity.CONFIDENTIAL, "CLASS:CONFIDENTIAL"),
    ],
)
def test_sensitivity_and_class(sensitivity: Sensitivity, line: str | None) -> None:
    comp = master(
        appointment_to_item(Appointment(start_time=utc(2026, 1, 1), sensitivity=sensitivity), V14)
    )
    assert lines(comp, "CLASS") == ([line] if line else [])
    read = item_to_appointment(Item.from_tree(comp_cal(comp)), V14).data.sensitivity
    assert read == (None if sensitivity == Sensitivity.NORMAL else sensitivity)  # absent: normal
    assert item_to_appointment(event("CLASS:X-SECRET"), V14).data.sensitivity == Sensitivity.PRIVATE
    assert item_to_appointment(event("CLASS:PUBLIC"), V14).data.sensitivity == Sensitivity.NORMAL


@pytest.mark.parametrize(
    ("alarm", "minutes"),
    [
        (["TRIGGER:-PT15M"], 15),
        (["TRIGGER:-P1D"], 1440),
        (["TRIGGER:PT0S"], 0),
        (["TRIGGER;RELATED=END:-PT2H"], 30),  # the event lasts 1h30
        (["TRIGGER;VALUE=DATE-TIME:20260310T084500Z"], 15),
        (["TRIGGER:PT10M"], None),  # after the start: no EAS reminder
    ],
)
def test_reminders(alarm: list[str], minutes: int | None) -> None:
    item = event("BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:x", *alarm, "END:VALARM")
    assert item_to_appointment(item, V14).data.reminder == minutes


def test_a_reminder_becomes_one_display_alarm() -> None:
    comp = master(appointment_to_item(Appointment(start_time=utc(2026, 1, 1), reminder=90), V14))
    (alarm,) = comp.children("VALARM")
    assert [p.to_line() for p in alarm.props] == [
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        "TRIGGER:-PT1H30M",
    ]
    email_only = event("BEGIN:VALARM", "ACTION:EMAIL", "TRIGGER:-PT5M", "END:VALARM")
    assert item_to_appointment(email_only, V14).data.reminder is None


def test_people() -> None:
    item = event(
        "ORGANIZER;CN=Ann:mailto:ann@example.com",
        "ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:bob@example.com",
        "ATTENDEE;PARTSTAT=DECLINED;ROLE=OPT-PARTICIPANT;RSVP=TRUE:MAILTO:carol@example.com",
        "ATTENDEE;CUTYPE=ROOM;CN=Room 4:mailto:room4@example.com",
        "ATTENDEE;CN=Me;PARTSTAT=TENTATIVE:mailto:me@example.com",
        "ATTENDEE;CN=Group:urn:uuid:1234",
    )
    out = item_to_appointment(item, V14)
    appt = out.data
    assert (appt.organizer_name, appt.organizer_email) == ("Ann", "ann@example.com")
    assert appt.attendees == [
        Attendee("bob@example.com", "Bob", AttendeeStatus.ACCEPTED, AttendeeType.REQUIRED),
        Attendee("carol@example.com", None, AttendeeStatus.DECLINED, AttendeeType.OPTIONAL),
        Attendee("room4@example.com", "Room 4", AttendeeStatus.UNKNOWN, AttendeeType.RESOURCE),
        Attendee("me@example.com", "Me", AttendeeStatus.TENTATIVE, AttendeeType.REQUIRED),
    ]
    assert appt.meeting_status == MeetingStatus.MEETING_RECEIVED
    assert appt.response_type == ResponseType.TENTATIVE
    assert appt.response_requested is True
    assert any("urn:uuid:1234" in w for w in out.warnings)
    back = master(appointment_to_item(appt, V14))
    assert lines(back, "ORGANIZER") == ["ORGANIZER;CN=Ann:mailto:ann@example.com"]
    got = {p.value: p for p in back.all("ATTENDEE")}
    assert got["mailto:bob@example.com"].param("PARTSTAT") == "ACCEPTED"
    assert got["mailto:carol@example.com"].param("ROLE") == "OPT-PARTICIPANT"
    assert got["mailto:room4@example.com"].param("CUTYPE") == "RESOURCE"
    assert got["mailto:room4@example.com"].param("PARTSTAT") is None
    assert got["mailto:me@example.com"].param("PARTSTAT") == "TENTATIVE"
    assert all(p.param("RSVP") == "TRUE" for p in got.values())
    assert item_to_appointment(appointment_to_item(appt, V14), V14).data.attendees == appt.attendees


def test_meeting_status_and_response_of_the_organizer_and_of_cancelled_meetings() -> None:
    mine = event("ORGANIZER:mailto:me@example.com", "ATTENDEE:mailto:bob@example.com")
    appt = item_to_appointment(mine, V14).data
    assert (appt.meeting_status, appt.response_type) == (
        MeetingStatus.MEETING_ORGANIZER,
        ResponseType.ORGANIZER,
    )
    cancelled = event(
        "STATUS:CANCELLED", "ORGANIZER:mailto:ann@example.com", "ATTENDEE:mailto:me@example.com"
    )
    appt = item_to_appointment(cancelled, V14).data
    assert appt.meeting_status == MeetingStatus.CANCELLED_RECEIVED
    assert master(appointment_to_item(appt, V14)).value("STATUS") == "CANCELLED"
    plain = item_to_appointment(event(), V14).data
    assert (plain.meeting_status, plain.response_type) == (MeetingStatus.APPOINTMENT, None)
    # a meeting the device made, without saying who organizes it: the user
    made = Appointment(
        start_time=utc(2026, 1, 1),
        meeting_status=MeetingStatus.MEETING_ORGANIZER,
        attendees=[Attendee("bob@example.com")],
    )
    assert master(appointment_to_item(made, V14)).value("ORGANIZER") == "mailto:me@example.com"


def test_response_type_sets_the_user_s_partstat() -> None:
    appt = Appointment(
        start_time=utc(2026, 1, 1),
        organizer_email="ann@example.com",
        attendees=[Attendee("me@example.com")],
        response_type=ResponseType.ACCEPTED,
    )
    (me,) = master(appointment_to_item(appt, V14)).all("ATTENDEE")
    assert me.param("PARTSTAT") == "ACCEPTED"


def test_disallow_new_time_proposal() -> None:
    appt = Appointment(start_time=utc(2026, 1, 1), disallow_new_time_proposal=True)
    item = appointment_to_item(appt, V14)
    assert master(item).value("X-MICROSOFT-DISALLOW-COUNTER") == "TRUE"
    assert item_to_appointment(item, V14).data.disallow_new_time_proposal is True


def test_uids() -> None:
    assert appointment_to_item(Appointment(start_time=utc(2026, 1, 1), uid="A"), V14).uid == "A"
    client = Appointment(start_time=utc(2026, 1, 1), client_uid="C")
    assert appointment_to_item(client, V16).uid == "C"
    bare = Appointment(start_time=utc(2026, 1, 1))
    one = appointment_to_item(bare, V14, uid_seed="acct/dev/client-7").uid
    assert (
        one
        == appointment_to_item(bare, V14, uid_seed="acct/dev/client-7").uid
        == new_uid("acct/dev/client-7")
    )
    assert appointment_to_item(bare, V14).uid != appointment_to_item(bare, V14).uid
    assert appointment_to_item(client, V16, uid="kept").uid == "kept"


@pytest.mark.parametrize(
    ("appt", "message"),
    [
        (
            Appointment(start_time=datetime(9999, 12, 31, 23, tzinfo=UTC), all_day_event=True),
            "StartTime 9999-12-31",
        ),
        (Appointment(start_time=utc(2026, 1, 1), reminder=10**12), "Reminder"),
        (Appointment(start_time=utc(2026, 1, 1), reminder=-5), "Reminder"),
        (
            Appointment(
                start_time=utc(2026, 1, 1),
                recurrence=Recurrence(until=datetime(1, 1, 1, tzinfo=UTC)),
            ),
            "Recurrence/Until",
        ),
        (
            Appointment(
                start_time=utc(2026, 1, 1),
                recurrence=Recurrence(),
                exceptions=[RecurrenceException(exception_start_time=utc(9990, 1, 1))],
            ),
            "Exceptions/ExceptionStartTime",
        ),
    ],
)
def test_device_data_out_of_limits_is_refused_with_the_element(
    appt: Appointment, message: str
) -> None:
    """Never an OverflowError: what the mapping cannot compute with is a
    MappingError naming the element (the limits of every device input)."""
    with pytest.raises(MappingError, match=message):
        appointment_to_item(appt, V14)
    with pytest.raises(MappingError):
        apply_instance_edit(series(), utc(9999, 1, 1), EventFields(subject="x"), V16)


def test_without_a_start_time_the_appointment_is_refused() -> None:
    with pytest.raises(MappingError, match="StartTime"):
        appointment_to_item(Appointment(subject="x"), V14)
    with pytest.raises(MappingError, match="no VEVENT"):
        item_to_appointment(ics("BEGIN:VTODO", "UID:t", "END:VTODO"), V14)


# -- series ---------------------------------------------------------------------------------------

SERIES = [
    "RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20261231T225959Z",
    "EXDATE;TZID=Europe/Berlin:20260317T100000",
]
MOVED = [
    "BEGIN:VEVENT",
    "UID:e1",
    "DTSTAMP:20260101T000000Z",
    "RECURRENCE-ID;TZID=Europe/Berlin:20260324T100000",
    "DTSTART;TZID=Europe/Berlin:20260324T140000",
    "DTEND;TZID=Europe/Berlin:20260324T153000",
    "SUMMARY:Weekly (moved)",
    "END:VEVENT",
]


def series(*extra: str) -> Item:
    return ics(
        "BEGIN:VEVENT",
        "UID:e1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Europe/Berlin:20260310T100000",
        "DTEND;TZID=Europe/Berlin:20260310T113000",
        "SUMMARY:Weekly",
        "LOCATION:Room 4",
        *SERIES,
        *extra,
        "END:VEVENT",
        *MOVED,
    )


def test_a_weekly_series_with_a_deleted_and_a_moved_occurrence() -> None:
    appt = item_to_appointment(series(), V14).data
    assert appt.recurrence == Recurrence(
        type=RecurrenceType.WEEKLY, interval=1, day_of_week=4, until=utc(2026, 12, 31, 22, 59, 59)
    )
    deleted, moved = appt.exceptions or []
    assert deleted == RecurrenceException(deleted=True, exception_start_time=utc(2026, 3, 17, 9))
    assert moved == RecurrenceException(
        exception_start_time=utc(2026, 3, 24, 9),
        start_time=utc(2026, 3, 24, 13),
        end_time=utc(2026, 3, 24, 14, 30),
        all_day_event=False,
        subject="Weekly (moved)",
        location="",  # the override has none: removed
    )
    back = appointment_to_item(appt, V14)
    comp = master(back)
    assert lines(comp, "RRULE") == ["RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20261231T225959Z"]
    assert lines(comp, "EXDATE") == ["EXDATE;TZID=Europe/Berlin:20260317T100000"]
    (override,) = [c for c in back.components() if c.get("RECURRENCE-ID") is not None]
    assert lines(override, "RECURRENCE-ID") == ["RECURRENCE-ID;TZID=Europe/Berlin:20260324T100000"]
    assert lines(override, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20260324T140000"]
    assert override.value("SUMMARY") == "Weekly (moved)" and override.get("LOCATION") is None


def test_16x_keys_exceptions_by_instance_id() -> None:
    appt = item_to_appointment(series(), V16).data
    assert [e.instance_id for e in appt.exceptions or []] == [
        utc(2026, 3, 17, 9),
        utc(2026, 3, 24, 9),
    ]
    assert all(e.exception_start_time is None for e in appt.exceptions or [])
    assert (
        appointment_to_item(appt, V16).hash
        == appointment_to_item(item_to_appointment(series(), V14).data, V14).hash
    )


def test_an_exception_that_only_changes_fields_inherits_the_rest() -> None:
    appt = item_to_appointment(series(), V14).data
    appt.exceptions = [
        RecurrenceException(exception_start_time=utc(2026, 4, 7, 8), subject="Special", reminder=5)
    ]
    back = appointment_to_item(appt, V14)
    (override,) = [c for c in back.components() if c.get("RECURRENCE-ID") is not None]
    assert lines(override, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20260407T100000"]
    assert lines(override, "DTEND") == ["DTEND;TZID=Europe/Berlin:20260407T113000"]
    assert override.value("LOCATION") == "Room 4" and override.value("SUMMARY") == "Special"
    assert override.get("RRULE") is None and len(override.children("VALARM")) == 1


def test_the_series_keeps_its_local_time_across_daylight_saving() -> None:
    """A weekly Berlin 10:00 series, through the device and back: every
    occurrence for two years is still at 10:00 Berlin (08:00 or 09:00 UTC)."""
    for zone in ("Europe/Berlin", "America/New_York", "Australia/Sydney"):
        tz = ZoneInfo(zone)
        item = event(
            "RRULE:FREQ=WEEKLY;BYDAY=TU",
            start=f"DTSTART;TZID={zone}:20260310T100000",
            end=f"DTEND;TZID={zone}:20260310T110000",
        )
        back = master(appointment_to_item(item_to_appointment(item, V14).data, V14))
        assert back.get("DTSTART").param("TZID") == zone  # type: ignore[union-attr]
        rule = rrulestr(back.value("RRULE") or "", dtstart=datetime(2026, 3, 10, 10, tzinfo=tz))
        hours = {
            o.astimezone(tz).hour
            for o in rule.between(datetime(2026, 3, 1, tzinfo=tz), datetime(2028, 3, 1, tzinfo=tz))
        }
        assert hours == {10}
        assert len({o.astimezone(UTC).hour for o in rule[:60]}) == 2  # it does cross DST


def test_an_all_day_series_with_exceptions() -> None:
    item = ics(
        "BEGIN:VEVENT",
        "UID:a1",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;VALUE=DATE:20260701",
        "DTEND;VALUE=DATE:20260702",
        "SUMMARY:Holiday",
        "RRULE:FREQ=YEARLY;UNTIL=20300701",
        "EXDATE;VALUE=DATE:20270701",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:a1",
        "DTSTAMP:20260101T000000Z",
        "RECURRENCE-ID;VALUE=DATE:20280701",
        "DTSTART;VALUE=DATE:20280703",
        "DTEND;VALUE=DATE:20280704",
        "SUMMARY:Holiday",
        "END:VEVENT",
    )
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin"):
        for version in ("14.1", "16.1"):
            opts = Options(version=version, device_zone=ZoneInfo(zone), year=YEAR)
            appt = item_to_appointment(item, opts).data
            assert appt.recurrence is not None and appt.recurrence.type == RecurrenceType.YEARLY
            back = appointment_to_item(appt, opts)
            comp = master(back)
            assert lines(comp, "RRULE") == [
                "RRULE:FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=1;UNTIL=20300701"
            ]
            assert lines(comp, "EXDATE") == ["EXDATE;VALUE=DATE:20270701"]
            (override,) = [c for c in back.components() if c.get("RECURRENCE-ID") is not None]
            assert lines(override, "RECURRENCE-ID") == ["RECURRENCE-ID;VALUE=DATE:20280701"]
            assert lines(override, "DTSTART") == ["DTSTART;VALUE=DATE:20280703"]


@pytest.mark.parametrize(
    ("props", "warning"),
    [
        (["RRULE:FREQ=HOURLY;INTERVAL=4"], "FREQ=HOURLY"),
        (["RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15"], "several BYMONTHDAY"),
        (["RDATE;TZID=Europe/Berlin:20260401T100000"], "RDATEs without an RRULE"),
        (["RRULE:FREQ=DAILY", "EXRULE:FREQ=WEEKLY;BYDAY=SA,SU"], "EXRULE"),
        (["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"], "several RRULEs"),
    ],
)
def test_rules_eas_cannot_express_send_the_first_occurrence_only(
    props: list[str], warning: str
) -> None:
    out = item_to_appointment(event(*props), V14)
    assert out.data.recurrence is None and out.data.exceptions is None
    assert out.data.start_time == utc(2026, 3, 10, 9)
    assert any(warning in w and "first occurrence only" in w for w in out.warnings), out.warnings


def test_rdates_next_to_a_rule_are_not_sent_and_said_so() -> None:
    out = item_to_appointment(
        event("RRULE:FREQ=DAILY;COUNT=3", "RDATE;TZID=Europe/Berlin:20260401T100000"), V14
    )
    assert out.data.recurrence is not None and out.data.recurrence.occurrences == 3
    assert any("RDATE" in w for w in out.warnings)


def test_an_exception_without_its_key_is_refused() -> None:
    appt = item_to_appointment(series(), V14).data
    appt.exceptions = [RecurrenceException(subject="lost")]
    with pytest.raises(MappingError, match="ExceptionStartTime"):
        appointment_to_item(appt, V14)


# -- 16.x single occurrences ----------------------------------------------------------------------


def test_a_16x_instance_delete_is_an_exdate_and_drops_its_override() -> None:
    item = series()
    gone = apply_instance_delete(item, utc(2026, 3, 31, 8), V16)
    assert lines(master(gone), "EXDATE") == [
        "EXDATE;TZID=Europe/Berlin:20260317T100000",
        "EXDATE;TZID=Europe/Berlin:20260331T100000",
    ]
    again = apply_instance_delete(gone, utc(2026, 3, 31, 8), V16)
    assert len(master(again).all("EXDATE")) == 2  # no duplicate
    moved_gone = apply_instance_delete(item, utc(2026, 3, 24, 9), V16)
    assert [c for c in moved_gone.components() if c.get("RECURRENCE-ID") is not None] == []


def test_a_16x_instance_edit_changes_only_what_the_device_sent() -> None:
    item = series("COMMENT:keep me")
    edited = apply_instance_edit(item, utc(2026, 3, 24, 9), EventFields(subject="Renamed"), V16)
    (override,) = [c for c in edited.components() if c.get("RECURRENCE-ID") is not None]
    assert override.value("SUMMARY") == "Renamed"
    assert lines(override, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20260324T140000"]  # kept
    new = apply_instance_edit(
        item,
        utc(2026, 4, 7, 8),
        EventFields(start_time=utc(2026, 4, 7, 12), end_time=utc(2026, 4, 7, 13), reminder=10),
        V16,
    )
    (fresh,) = [
        c for c in new.components() if (c.value("RECURRENCE-ID") or "").endswith("20260407T100000")
    ]
    assert lines(fresh, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20260407T140000"]
    assert fresh.value("COMMENT") == "keep me" and fresh.value("LOCATION") == "Room 4"
    restored = apply_instance_edit(item, utc(2026, 3, 17, 9), EventFields(subject="Back"), V16)
    assert master(restored).all("EXDATE") == []  # the device edits it: it exists again


def test_instance_helpers_refuse_single_events() -> None:
    with pytest.raises(MappingError, match="not a recurring series"):
        apply_instance_delete(event(), utc(2026, 3, 10, 9), V16)


def test_a_series_brings_the_vtimezone_of_its_years() -> None:
    item = appointment_to_item(item_to_appointment(series(), V14).data, V14)
    (tz,) = item.timezones()
    assert tz.value("TZID") == "Europe/Berlin"
    assert "20261025T030000" in tz.serialize()  # the change of the series' last year
    single = appointment_to_item(Appointment(start_time=utc(2026, 1, 1)), V14)
    assert single.timezones() == []  # UTC needs none


# -- series through a device, property-based ------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shaped_rrules(),
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
    st.sampled_from(["", ";COUNT=12", ";UNTIL=20311231T000000Z"]),
    st.sampled_from(["14.1", "16.1"]),
)
def test_a_series_through_the_device_keeps_its_occurrences(
    rule: str, zone: str, around: datetime, end: str, version: str
) -> None:
    """RRULE -> appointment -> RRULE: the same occurrences (as instants) for
    three years, in zones of both hemispheres, through daylight saving."""
    tz = ZoneInfo(zone)
    rule += end
    local = around.replace(second=0, microsecond=0)
    first = list(rrulestr(rule, dtstart=local.replace(tzinfo=tz))[:1])
    assume(first)
    start = first[0].replace(tzinfo=None)
    stamp = start.strftime("%Y%m%dT%H%M%S")
    dtstart = f"DTSTART:{stamp}Z" if zone == "UTC" else f"DTSTART;TZID={zone}:{stamp}"
    item = event(f"RRULE:{rule}", start=dtstart, end="DURATION:PT1H")
    opts = Options(version=version, year=YEAR)
    out = item_to_appointment(item, opts)
    if out.data.recurrence is None:  # refused (and said so): test_recurrence covers why
        assert any("first occurrence only" in w for w in out.warnings)
        return
    back = master(appointment_to_item(out.data, opts))
    back_start = back.get("DTSTART")
    assert back_start is not None and back_start.param("TZID") == (None if zone == "UTC" else zone)
    limit = start.replace(tzinfo=tz) + timedelta(days=3 * 365)

    def instants(value: str) -> list[datetime]:
        expanded = rrulestr(value, dtstart=start.replace(tzinfo=tz))
        between = expanded.between(start.replace(tzinfo=tz), limit, inc=True)
        return [o.astimezone(UTC) for o in between]

    assert instants(back.value("RRULE") or "") == instants(rule)


def test_an_item_that_cannot_be_parsed_is_refused_for_a_device_naming_it() -> None:
    """Such an item passes between stores that keep iCalendar text as it is, but
    a device must be given fields: it is an item error, never an ItemError
    that stops the device's session (the corpus has one: a broken ATTENDEE)."""
    raw = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:broken-1\r\n"
        b'DTSTART:20260101T100000Z\r\nATTENDEE;CN="unclosed:mailto:a@example.com\r\n'
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    item = Item(raw, "broken-1")
    with pytest.raises(MappingError, match=r"^item broken-1: cannot be parsed: "):
        item_to_appointment(item, V14)
