"""The Timezone blob: its layout, zone -> blob -> zone for ~45 zones, real blobs.

Oracles: the byte layout of MS-ASDTYPE 2.7.6 checked by slicing (not by our
struct), blobs that Exchange itself produced (quoted as test data by the
Android Exchange client's CalendarUtilitiesTests and other EAS clients: the
MS-ASCAL Pacific example among them), and zoneinfo for every transition.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.eas.timezone import (
    SIZE,
    BlobTz,
    SystemTime,
    TimeZoneBlob,
    TimeZoneBlobError,
    blob_for_zone,
    blob_vtimezone,
    nth_weekday,
    zone_for_blob,
)
from calsync.items.vcal.zones import transitions

YEAR = 2026

# Blobs as Exchange sends them (base64, as on the wire).
PACIFIC = (
    "4AEAAFAAYQBjAGkAZgBpAGMAIABTAHQAYQBuAGQAYQByAGQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAsAAAABAAIAAAAAAAAAAAAAAFAAYQBjAGkAZgBpAGMAIABEAGEAeQBsAGkAZwBoAHQAIABUAGkA"
    "bQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAACAAIAAAAAAAAAxP///w=="
)
AUS_EASTERN = (
    "qP3//0EAVQBTACAARQBhAHMAdABlAHIAbgAgAFMAdABhAG4AZABhAHIAZAAgAFQAaQBtAGUAAAAAAAAAAAAA"
    "AAAAAAAAAAQAAAABAAMAAAAAAAAAAAAAAEEAVQBTACAARQBhAHMAdABlAHIAbgAgAEQAYQB5AGwAaQBnAGgA"
    "dAAgAFQAaQBtAGUAAAAAAAAAAAAAAAAAAAAAAAoAAAABAAIAAAAAAAAAxP///w=="
)
INDIA = (
    "tv7//0kAbgBkAGkAYQAgAFMAdABhAG4AZABhAHIAZAAgAFQAaQBtAGUAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEkAbgBkAGkAYQAgAEQAYQB5AGwAaQBnAGgAdAAgAFQAaQBtAGUA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
)
ARIZONA = (
    "pAEAAFUAUwAgAE0AbwB1AG4AdABhAGkAbgAgAFMAdABhAG4AZABhAHIAZAAgAFQAaQBtAGUAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFUAUwAgAE0AbwB1AG4AdABhAGkAbgAgAEQAYQB5AGwAaQBnAGgA"
    "dAAgAFQAaQBtAGUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
)
EASTERN_SHORT_NAMES = (  # a client that writes "EST"/"EDT"
    "LAEAAEUAUwBUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAsAAAABAAIAAAAAAAAAAAAAAEUARABUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAACAAIAAAAAAAAAxP///w=="
)
OLD_MOSCOW = (  # Russia's rules before 2011: no zone has them today
    "TP///1IAdQBzAHMAaQBhAG4AIABTAHQAYQBuAGQAYQByAGQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAoAAAAFAAMAAAAAAAAAAAAAAFIAdQBzAHMAaQBhAG4AIABEAGEAeQBsAGkAZwBoAHQAIABUAGkA"
    "bQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAAFAAIAAAAAAAAAxP///w=="
)

# zone, and whether its rules are "nth weekday" rules in every year checked
ZONES = [
    ("Europe/Berlin", True),
    ("Europe/London", True),
    ("Europe/Dublin", True),  # negative daylight saving in tzdata
    ("Europe/Moscow", True),  # no daylight time
    ("Europe/Helsinki", True),
    ("Europe/Lisbon", True),
    ("America/New_York", True),
    ("America/Chicago", True),
    ("America/Denver", True),
    ("America/Phoenix", True),
    ("America/Los_Angeles", True),
    ("America/Anchorage", True),
    ("America/Halifax", True),
    ("America/St_Johns", True),  # -03:30
    ("America/Sao_Paulo", True),
    ("America/Mexico_City", True),
    ("America/Havana", True),  # midnight transitions
    ("America/Caracas", True),
    ("Pacific/Auckland", True),
    ("Pacific/Chatham", True),  # +12:45 / +13:45
    ("Pacific/Honolulu", True),
    ("Pacific/Kiritimati", True),  # +14
    ("Pacific/Pago_Pago", True),  # -11
    ("Pacific/Norfolk", True),
    ("Australia/Sydney", True),
    ("Australia/Adelaide", True),  # +09:30 / +10:30
    ("Australia/Brisbane", True),
    ("Australia/Lord_Howe", True),  # half-hour daylight shift
    ("Asia/Kolkata", True),  # +05:30
    ("Asia/Kathmandu", True),  # +05:45
    ("Asia/Tehran", True),
    ("Asia/Tokyo", True),
    ("Asia/Jerusalem", True),
    ("Asia/Beirut", True),
    ("Africa/Johannesburg", True),
    ("Africa/Cairo", True),
    ("Atlantic/Azores", True),
    ("America/Santiago", False),  # "first Sunday on or after the 2nd"
    ("Africa/Casablanca", False),  # moves with Ramadan
]


def zone_changes(tz: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    return [t for t in transitions(tz, year, year) if t[0].year == year]


def blob_changes(blob: TimeZoneBlob, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    return [(t.replace(microsecond=0), b, a) for t, b, a in blob.transitions(year)]


# -- layout ---------------------------------------------------------------------------------------


def test_the_layout_is_the_one_of_ms_asdtype() -> None:
    """Each field at its MS-ASDTYPE offset, read by slicing the bytes."""
    blob = TimeZoneBlob(
        bias=-60,
        standard_name="Std",
        standard_date=SystemTime(0, 10, 0, 5, 3, 0, 0, 0),
        standard_bias=0,
        daylight_name="Dlt",
        daylight_date=SystemTime(0, 3, 0, 5, 2, 0, 0, 0),
        daylight_bias=-60,
    )
    raw = blob.to_bytes()
    assert len(raw) == SIZE == 172
    assert int.from_bytes(raw[0:4], "little", signed=True) == -60
    assert raw[4:68].decode("utf-16-le").rstrip("\x00") == "Std"
    assert [int.from_bytes(raw[68 + 2 * i : 70 + 2 * i], "little") for i in range(8)] == [
        0,
        10,
        0,
        5,
        3,
        0,
        0,
        0,
    ]
    assert int.from_bytes(raw[84:88], "little", signed=True) == 0
    assert raw[88:152].decode("utf-16-le").rstrip("\x00") == "Dlt"
    assert [int.from_bytes(raw[152 + 2 * i : 154 + 2 * i], "little") for i in range(8)] == [
        0,
        3,
        0,
        5,
        2,
        0,
        0,
        0,
    ]
    assert int.from_bytes(raw[168:172], "little", signed=True) == -60
    assert TimeZoneBlob.from_bytes(raw) == blob
    assert TimeZoneBlob.from_base64(blob.to_base64()) == blob


def test_exchange_blobs_decode_to_their_fields() -> None:
    blob = TimeZoneBlob.from_base64(PACIFIC)
    assert blob.bias == 480
    assert blob.standard_name == "Pacific Standard Time"
    assert blob.daylight_name == "Pacific Daylight Time"
    assert blob.standard_date == SystemTime(month=11, day_of_week=0, day=1, hour=2)
    assert blob.daylight_date == SystemTime(month=3, day_of_week=0, day=2, hour=2)
    assert blob.daylight_bias == -60


EXCHANGE = [
    (PACIFIC, "America/Los_Angeles"),
    (AUS_EASTERN, "Australia/Sydney"),
    (INDIA, "Asia/Kolkata"),
    (ARIZONA, "America/Phoenix"),
]


@pytest.mark.parametrize(("wire", "zone"), EXCHANGE)
def test_our_blob_for_a_zone_is_byte_for_byte_the_one_exchange_writes(wire: str, zone: str) -> None:
    assert blob_for_zone(ZoneInfo(zone), YEAR).to_base64() == wire


@pytest.mark.parametrize(("wire", "zone"), [*EXCHANGE, (EASTERN_SHORT_NAMES, "America/New_York")])
def test_exchange_blobs_name_their_iana_zone(wire: str, zone: str) -> None:
    found = zone_for_blob(TimeZoneBlob.from_base64(wire), YEAR)
    assert found.tzid == zone
    assert found.vtimezone is None


def test_rules_no_zone_has_today_become_a_zone_of_our_own() -> None:
    blob = TimeZoneBlob.from_base64(OLD_MOSCOW)
    found = zone_for_blob(blob, YEAR)
    assert isinstance(found.tzinfo, BlobTz)
    assert "/" not in found.tzid and "Russian Standard Time" in found.tzid
    tz = found.tzinfo
    assert datetime(YEAR, 1, 10, 12, tzinfo=tz).utcoffset() == timedelta(hours=3)
    assert datetime(YEAR, 7, 10, 12, tzinfo=tz).utcoffset() == timedelta(hours=4)
    # its VTIMEZONE says the same to another reader (icalendar)
    assert found.vtimezone is not None
    other = icalendar.Timezone.from_ical(found.vtimezone.to_bytes()).to_tz()
    for month in range(1, 13):
        moment = datetime(YEAR, month, 15, 12)
        assert other.utcoffset(moment) == tz.utcoffset(moment)


def test_all_zero_and_offset_zero_blobs_are_utc() -> None:
    assert zone_for_blob(TimeZoneBlob.from_bytes(bytes(SIZE)), YEAR).tzid == "UTC"
    named = TimeZoneBlob(standard_name="Coordinated Universal Time", daylight_name="UTC")
    assert zone_for_blob(named, YEAR).tzid == "UTC"
    assert blob_for_zone(UTC, YEAR).to_bytes() == bytes(SIZE)
    assert blob_for_zone(ZoneInfo("UTC"), YEAR).to_bytes() == bytes(SIZE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 171, "172 bytes"),
        (b"\x00" * 178, "172 bytes"),
        (
            struct.pack(
                "<i64s8Hi64s8Hi",
                0,
                b"",
                0,
                13,
                0,
                1,
                2,
                0,
                0,
                0,
                0,
                b"",
                0,
                3,
                0,
                2,
                2,
                0,
                0,
                0,
                -60,
            ),
            "month 13",
        ),
        (
            struct.pack(
                "<i64s8Hi64s8Hi",
                0,
                b"",
                0,
                10,
                9,
                1,
                2,
                0,
                0,
                0,
                0,
                b"",
                0,
                3,
                0,
                2,
                2,
                0,
                0,
                0,
                -60,
            ),
            "weekday 9",
        ),
        (
            struct.pack("<i64s8Hi64s8Hi", 5000, b"", *[0] * 8, 0, b"", *[0] * 8, 0),
            "no UTC offset",
        ),
        (
            struct.pack(
                "<i64s8Hi64s8Hi",
                0,
                b"",
                9999,
                12,
                0,
                31,
                24,
                0,
                0,
                0,
                0,
                b"",
                9999,
                3,
                0,
                2,
                2,
                0,
                0,
                0,
                -60,
            ),
            "year 9999",
        ),
    ],
)
def test_broken_blobs_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(TimeZoneBlobError, match=message):
        TimeZoneBlob.from_bytes(data)


def test_text_that_is_not_base64_is_refused() -> None:
    with pytest.raises(TimeZoneBlobError, match="not base64"):
        TimeZoneBlob.from_base64("not a blob!")


def test_long_and_astral_names_keep_a_terminating_zero() -> None:
    blob = TimeZoneBlob(standard_name="x" * 40, daylight_name="é" * 30 + "😀😀")
    raw = blob.to_bytes()
    assert raw[66:68] == b"\x00\x00" and raw[150:152] == b"\x00\x00"
    back = TimeZoneBlob.from_bytes(raw)
    assert back.standard_name == "x" * 31
    assert back.daylight_name == "é" * 30  # never half a surrogate pair


# -- zones -> blob -> zones -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "regular"), ZONES)
def test_a_zone_blob_has_the_zone_transitions(name: str, regular: bool) -> None:
    """The blob's rules give zoneinfo's transitions, to the second: in the
    reference year always, and in the three years after for "nth weekday" zones."""
    tz = ZoneInfo(name)
    blob = blob_for_zone(tz, YEAR)
    assert blob_changes(blob, YEAR) == zone_changes(tz, YEAR)
    later = [blob_changes(blob, y) == zone_changes(tz, y) for y in range(YEAR + 1, YEAR + 4)]
    assert all(later) if regular else not all(later)


@pytest.mark.parametrize(("name", "regular"), [z for z in ZONES if z[1]])
def test_a_zone_blob_finds_the_zone_back(name: str, regular: bool) -> None:
    tz = ZoneInfo(name)
    blob = blob_for_zone(tz, YEAR)
    found = zone_for_blob(blob, YEAR)
    assert found.tzid == name
    # also without any names (what Android sends)
    anonymous = TimeZoneBlob(
        bias=blob.bias,
        standard_date=blob.standard_date,
        standard_bias=blob.standard_bias,
        daylight_date=blob.daylight_date,
        daylight_bias=blob.daylight_bias,
    )
    other = zone_for_blob(anonymous, YEAR)
    for year in range(YEAR, YEAR + 3):
        assert zone_changes(ZoneInfo(other.tzid), year) == zone_changes(tz, year)
        for month in (1, 4, 7, 10):
            moment = datetime(year, month, 20, 12, tzinfo=UTC)
            assert moment.astimezone(other.tzinfo).utcoffset() == moment.astimezone(tz).utcoffset()


@pytest.mark.parametrize(
    ("standard", "daylight", "zone"),
    [
        # iOS: the zone's long names (a Windows zone of the same rules may win:
        # "Central European Standard Time" is Windows' name for Warsaw's zone)
        ("Central European Standard Time", "Central European Summer Time", "Europe/Warsaw"),
        ("Eastern Standard Time", "Eastern Daylight Time", "America/New_York"),
        (
            "Australian Eastern Standard Time",
            "Australian Eastern Daylight Time",
            "Australia/Sydney",
        ),
        ("Pacific Standard Time", "Pacific Daylight Time", "America/Los_Angeles"),
        # Android: no names at all
        ("", "", "Europe/Berlin"),
        ("", "", "America/New_York"),
        ("", "", "Australia/Sydney"),
        # Outlook: Windows zone names
        ("W. Europe Standard Time", "W. Europe Daylight Time", "Europe/Berlin"),
        ("Eastern Standard Time", "Eastern Daylight Time", "America/New_York"),
        ("AUS Eastern Standard Time", "AUS Eastern Daylight Time", "Australia/Sydney"),
        # a Windows name for a zone the big cities do not list
        ("Romance Standard Time", "Romance Daylight Time", "Europe/Paris"),
        ("Tasmania Standard Time", "Tasmania Daylight Time", "Australia/Hobart"),
    ],
)
def test_client_shaped_blobs_name_the_right_zone(standard: str, daylight: str, zone: str) -> None:
    rules = blob_for_zone(ZoneInfo(zone), YEAR)
    blob = TimeZoneBlob(
        bias=rules.bias,
        standard_name=standard,
        standard_date=rules.standard_date,
        daylight_name=daylight,
        daylight_date=rules.daylight_date,
        daylight_bias=rules.daylight_bias,
    )
    found = zone_for_blob(TimeZoneBlob.from_base64(blob.to_base64()), YEAR)
    assert found.tzid == zone
    for year in range(YEAR, YEAR + 3):
        assert zone_changes(ZoneInfo(found.tzid), year) == blob_changes(rules, year)


def test_a_fixed_offset_without_a_named_zone_is_an_etc_zone_or_our_own() -> None:
    assert zone_for_blob(TimeZoneBlob(bias=-5 * 60 - 50), YEAR).vtimezone is not None
    assert zone_for_blob(TimeZoneBlob(bias=-330), YEAR).tzid == "Asia/Kolkata"
    assert zone_for_blob(TimeZoneBlob(bias=-60), YEAR).tzid == "Africa/Lagos"


def test_the_search_is_cached() -> None:
    blob = TimeZoneBlob.from_base64(EASTERN_SHORT_NAMES)
    first = zone_for_blob(blob, YEAR)
    assert zone_for_blob(blob, YEAR) is first


def test_absolute_transition_dates_are_one_year_rules() -> None:
    """wYear != 0: the dates happen once; Berlin's 2026 dates are Berlin in 2026."""
    berlin = ZoneInfo("Europe/Berlin")
    rules = blob_for_zone(berlin, YEAR)
    (start, _, _), (end, _, _) = zone_changes(berlin, YEAR)
    begin, finish = start + timedelta(hours=1), end + timedelta(hours=2)
    blob = TimeZoneBlob(
        bias=rules.bias,
        standard_date=SystemTime(YEAR, finish.month, 0, finish.day, finish.hour),
        daylight_date=SystemTime(YEAR, begin.month, 0, begin.day, begin.hour),
        daylight_bias=-60,
    )
    assert blob_changes(blob, YEAR) == zone_changes(berlin, YEAR)
    assert blob.transitions(YEAR + 1) == []
    assert zone_for_blob(blob, YEAR).tzid == "Europe/Berlin"
    odd = TimeZoneBlob(
        bias=-60,
        standard_date=SystemTime(2030, 9, 0, 1, 3),
        daylight_date=SystemTime(2030, 5, 0, 1, 2),
        daylight_bias=-60,
    )
    own = zone_for_blob(odd, YEAR)
    assert isinstance(own.tzinfo, BlobTz) and own.vtimezone is not None
    assert datetime(2030, 6, 1, 12, tzinfo=own.tzinfo).utcoffset() == timedelta(hours=2)
    assert datetime(2031, 6, 1, 12, tzinfo=own.tzinfo).utcoffset() == timedelta(hours=1)
    text = own.vtimezone.serialize()
    assert "DTSTART:20300501T020000" in text and "RRULE" not in text


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
def test_our_own_zone_behaves_like_zoneinfo_around_every_change(name: str) -> None:
    """BlobTz (used when no IANA zone matches) on the same rules as a real zone:
    the same offsets for every half hour near the changes, both folds, and
    the same local times from UTC."""
    tz = ZoneInfo(name)
    own = BlobTz(blob_for_zone(tz, YEAR), "probe")
    for year in range(YEAR, YEAR + 3):
        for instant, _, _ in zone_changes(tz, year):
            for step in range(-8, 9):
                utc = (instant + timedelta(minutes=30 * step)).replace(tzinfo=UTC)
                theirs, mine = utc.astimezone(tz), utc.astimezone(own)
                assert mine.replace(tzinfo=None) == theirs.replace(tzinfo=None), utc
                assert mine.fold == theirs.fold, utc
                assert mine.utcoffset() == theirs.utcoffset()
                for fold in (0, 1):
                    local = theirs.replace(tzinfo=None, fold=fold)
                    assert (
                        local.replace(tzinfo=own).utcoffset()
                        == local.replace(tzinfo=tz).utcoffset()
                    ), (local, fold)


def test_the_vtimezone_of_our_own_zone_uses_yearly_rules() -> None:
    blob = blob_for_zone(ZoneInfo("Australia/Sydney"), YEAR)
    text = blob_vtimezone(blob, "X").serialize()
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU" in text
    assert "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU" in text
    assert "TZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100" in text


@pytest.mark.parametrize(
    ("year", "month", "weekday", "week", "day"),
    [
        (2026, 3, 0, 5, 29),  # last Sunday of March
        (2026, 3, 0, 2, 8),  # second Sunday
        (2027, 2, 1, 5, 22),  # last Monday of February
        (2026, 10, 0, 1, 4),
        (2026, 5, 5, 5, 29),  # last Friday
    ],
)
def test_nth_weekday(year: int, month: int, weekday: int, week: int, day: int) -> None:
    assert nth_weekday(year, month, weekday, week) == day
    assert (date(year, month, day).weekday() + 1) % 7 == weekday


def test_the_wire_form_is_base64_of_the_bytes() -> None:
    blob = blob_for_zone(ZoneInfo("Europe/Berlin"), YEAR)
    assert base64.b64decode(blob.to_base64()) == blob.to_bytes()
