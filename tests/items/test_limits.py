"""Poison items (issue 19, finding 5): nesting, dates out of range, the input check.

A component nested 10,000 deep used to raise RecursionError in whatever walked
the tree (and, in an .ics file, broke the file's other items); a start in year
9999 raised OverflowError in the vCalendar conversion.  Now both are errors of
that one item, and ``limits.check_input`` refuses them at every device input.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from calsync.items import Item, ItemError, items_from_stream, limits, vcal
from calsync.items.exchange import render
from calsync.items.lines import MAX_DEPTH, LineError, parse
from tests.conftest import event


def nested(uid: str, depth: int, name: str = "VEVENT") -> str:
    inner = f"BEGIN:{name}\r\nUID:{uid}\r\nDTSTART:20250101T000000Z\r\n"
    return inner * depth + f"END:{name}\r\n" * depth


def calendar(*bodies: str, version: str = "2.0") -> bytes:
    head = f"BEGIN:VCALENDAR\r\nVERSION:{version}\r\nPRODID:-//t//EN\r\n"
    return (head + "".join(bodies) + "END:VCALENDAR\r\n").encode()


PLAIN = "BEGIN:VEVENT\r\nUID:ok@x\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Fine\r\nEND:VEVENT\r\n"


def test_the_light_parser_refuses_deep_nesting() -> None:
    with pytest.raises(LineError, match="nested more than"):
        parse(calendar(nested("n@x", 10_000)).decode())
    deepest = calendar(nested("a@x", MAX_DEPTH - 1, "X-SUB"))
    assert parse(deepest.decode())  # 16 levels with the VCALENDAR: fine


@pytest.mark.parametrize("name", ["VEVENT", "VALARM"])
def test_a_deeply_nested_resource_is_an_item_error(name: str) -> None:
    body = (
        "BEGIN:VEVENT\r\nUID:n@x\r\nDTSTART:20250101T000000Z\r\n"
        + nested("n@x", 10_000, name)
        + "END:VEVENT\r\n"
    )
    with pytest.raises(ItemError, match="n@x") as caught:
        item = Item.from_bytes(calendar(body))
        item.tree  # noqa: B018  # whichever step finds it, it is an item error
    assert "nested" in str(caught.value) or "never closed" in str(caught.value)


def test_a_nested_item_in_a_file_leaves_the_others_readable() -> None:
    """It used to end as 10,000 stray END lines taken for calendar properties and
    copied into every other item of the file, which then failed to parse."""
    data = calendar(nested("n@x", 10_000), PLAIN)
    items, errors = items_from_stream(data)
    assert [i.uid for i in items] == ["ok@x"] and [e.id for e in errors] == ["n@x"]
    assert items[0].raw.count(b"END:VEVENT") == 1
    assert items[0].hash  # parses
    deep_alarms = calendar(
        "BEGIN:VEVENT\r\nUID:d@x\r\nDTSTART:20250101T000000Z\r\n"
        + nested("d@x", 20_000, "VALARM")
        + "END:VEVENT\r\n",
        PLAIN,
    )
    items, errors = items_from_stream(deep_alarms)
    assert [i.uid for i in items] == ["ok@x"] and [e.id for e in errors] == ["d@x"]
    assert "nested more than" in str(errors[0])


def test_components_without_uid_are_warned_about_a_few_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One device item nested 10k deep is 10k components without a UID: each got its
    own warning (1.6 MB of log for one SyncML Add; found by tests/adversarial)."""
    caplog.set_level(logging.WARNING)
    body = "BEGIN:VEVENT\r\nUID:n@x\r\n" + "BEGIN:VEVENT\r\n" * 10_000 + "END:VEVENT\r\n"
    items, errors = items_from_stream(calendar(body, PLAIN), source="device x/2")
    assert "ok@x" in [i.uid for i in items] and errors  # the rest: the nesting limit's tests
    lines = [r.getMessage() for r in caplog.records if "UID" in r.getMessage()]
    assert 2 <= len(lines) <= 4, len(lines)
    assert lines[0].startswith("device x/2: VEVENT at line 6 has no UID")
    assert lines[-1] == "device x/2: 9997 more components have no UID (UIDs derived likewise)"


def test_a_nested_vcal_entry_is_an_error_of_that_entry() -> None:
    data = calendar(nested("n@x", 10_000), PLAIN, version="1.0")
    items, errors = vcal.vcal_to_items(data)
    assert [i.uid for i in items] == ["ok@x"]
    assert [e.id for e in errors] == ["n@x"] and "nested more than" in str(errors[0])


FAR = "DTSTART:99991231T230000Z\r\nDURATION:PT2H\r\n"


@pytest.mark.parametrize(
    "times",
    [
        FAR,
        "DTSTART;VALUE=DATE:99991231\r\nDURATION:P2D\r\n",
        "DTSTART;TZID=Europe/Berlin:99991231T230000\r\n",
        "DTSTART:00010101T000000\r\nBEGIN:VALARM\r\nTRIGGER:-PT1H\r\nACTION:DISPLAY\r\n"
        "DESCRIPTION:x\r\nEND:VALARM\r\n",
    ],
)
def test_an_item_at_the_edge_of_time_converts_or_fails_as_an_item(times: str) -> None:
    body = f"BEGIN:VEVENT\r\nUID:far@x\r\n{times}SUMMARY:Far\r\nEND:VEVENT\r\n"
    try:
        vcal.item_to_vcal(Item.from_bytes(calendar(body)))
    except ItemError as e:  # never OverflowError or ValueError
        assert e.id == "far@x"


def test_a_rule_until_the_end_of_time_converts_both_ways() -> None:
    """UNTIL=9999-12-31 (how some devices say "forever") is allowed at device input,
    so a zone's local time of it, which overflows, must not stop the conversion."""
    body = (
        "BEGIN:VEVENT\r\nUID:ever@x\r\nDTSTART;TZID=Europe/Berlin:20250101T100000\r\n"
        "RRULE:FREQ=DAILY;UNTIL=99991231T235959Z\r\nSUMMARY:Ever\r\nEND:VEVENT\r\n"
    )
    item = Item.from_bytes(calendar(body))
    limits.check_input(item)
    (back,), errors = vcal.vcal_to_items(vcal.item_to_vcal(item))
    assert not errors
    assert back.master().value("RRULE") == "FREQ=DAILY;UNTIL=99991231T235959Z"  # type: ignore[union-attr]


def test_a_vcal_entry_at_the_edge_of_time_fails_alone() -> None:
    far = (
        "BEGIN:VEVENT\r\nUID:far@x\r\nDTSTART:99991231T230000\r\nDTEND:99991231T235900\r\n"
        "SUMMARY:Far\r\nEND:VEVENT\r\n"
    )
    data = calendar("TZ:-05\r\n", far, PLAIN, version="1.0")
    items, errors = vcal.vcal_to_items(data)
    assert [i.uid for i in items] == ["ok@x"]
    assert [e.id for e in errors] == ["far@x"] and "out of range" in str(errors[0])


def test_rendering_to_vcal_names_the_item_that_cannot_be_converted() -> None:
    body = f"BEGIN:VEVENT\r\nUID:far@x\r\n{FAR}SUMMARY:Far\r\nEND:VEVENT\r\n"
    items, _ = items_from_stream(calendar(body, PLAIN))
    out, errors = render(items, "vcs")
    assert [e.id for e in errors] == ["far@x"] and b"UID:ok@x" in out


# -- the one check of device input -------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "start", "problem"),
    [
        ("", "99991231T230000Z", "DTSTART"),
        ("", "00010101T000000Z", "DTSTART"),
        ("EXDATE:20260101T100000Z,99990101T100000Z", "20250101T100000Z", "EXDATE"),
        ("RDATE;VALUE=PERIOD:99990101T100000Z/PT1H", "20250101T100000Z", "RDATE"),
        ("DURATION:P100000W", "20250101T100000Z", "DURATION"),
        (
            "BEGIN:VALARM\nTRIGGER;VALUE=DATE-TIME:99991231T000000Z\nACTION:DISPLAY\nEND:VALARM",
            "20250101T100000Z",
            "TRIGGER",
        ),
        (
            "BEGIN:VALARM\nTRIGGER:-P3000W\nACTION:DISPLAY\nEND:VALARM",
            "20250101T100000Z",
            "TRIGGER",
        ),
    ],
)
def test_device_input_out_of_range_is_refused(extra: str, start: str, problem: str) -> None:
    item = Item.from_bytes(event("far@x", start=start, extra=extra))
    with pytest.raises(ItemError, match=problem) as caught:
        limits.check_input(item, "device d1")
    assert caught.value.id == "far@x" and caught.value.source == "device d1"


def test_device_input_nested_too_deep_is_refused() -> None:
    data = calendar(
        "BEGIN:VEVENT\r\nUID:n@x\r\nDTSTART:20250101T000000Z\r\n"
        + nested("n@x", 40, "X-PART")
        + "END:VEVENT\r\n"
    )
    with pytest.raises(ItemError, match="nested more than"):
        Item.from_bytes(data)
    with pytest.raises(ItemError, match="nested more than"):  # however the item was made
        limits.check_input(Item(data, "n@x"))


def test_ordinary_device_input_passes() -> None:
    tz = (
        "BEGIN:VTIMEZONE\r\nTZID:W. Europe\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\n"
        "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    body = (
        "BEGIN:VEVENT\r\nUID:ok@x\r\nDTSTART;TZID=W. Europe:19500101T100000\r\n"
        "RRULE:FREQ=YEARLY;UNTIL=99991231T235959Z\r\nRDATE;VALUE=PERIOD:20300101T100000Z/PT1H\r\n"
        "DURATION:PT1H\r\nBEGIN:VALARM\r\nTRIGGER;RELATED=END:-P1W\r\nACTION:DISPLAY\r\n"
        "END:VALARM\r\nEND:VEVENT\r\n"
    )
    limits.check_input(Item.from_bytes(calendar(tz, body)))


def test_the_limits_keep_every_computed_value_inside_python_dates() -> None:
    reach = 2 * limits.MAX_DURATION + timedelta(days=1)  # an alarm after the end, a zone
    assert datetime(limits.FIRST_YEAR, 1, 1) - reach > datetime(1, 1, 1)
    assert datetime(limits.LAST_YEAR, 12, 31) + reach < datetime(9999, 12, 31)
