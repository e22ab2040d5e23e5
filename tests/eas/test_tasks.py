"""Tasks <-> VTODOs: every field both ways, dates and times, recurrence."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from calsync.eas.model import Body, Importance, RecurrenceType, Sensitivity, Task, TaskRecurrence
from calsync.eas.props import MappingError, Options
from calsync.eas.tasks import item_to_task, task_to_item
from calsync.items import Item, loads_one
from calsync.items.lines import Component

BERLIN = ZoneInfo("Europe/Berlin")
V14 = Options(version="14.1", device_zone=BERLIN, year=2026)
V16 = Options(version="16.1", device_zone=BERLIN, year=2026)


def todo(*props: str) -> Item:
    return loads_one(
        "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//t//EN",
                "BEGIN:VTODO",
                "UID:t1",
                "DTSTAMP:20260101T000000Z",
                *props,
                "END:VTODO",
                "END:VCALENDAR",
                "",
            ]
        )
    )


def comp(item: Item) -> Component:
    c = item.master()
    assert c is not None and c.name == "VTODO"
    return c


def line(c: Component, name: str) -> str | None:
    p = c.get(name)
    return p.to_line() if p is not None else None


def test_text_fields_importance_sensitivity_categories() -> None:
    task = item_to_task(
        todo(
            "SUMMARY:File taxes",
            "DESCRIPTION:all\\nof them",
            "PRIORITY:1",
            "CLASS:PRIVATE",
            "CATEGORIES:Home",
        ),
        V14,
    ).data
    assert task.subject == "File taxes"
    assert task.body is not None and task.body.data == "all\nof them"
    assert task.importance == Importance.HIGH
    assert task.sensitivity == Sensitivity.PRIVATE and task.categories == ["Home"]
    assert task.complete is False and task.reminder_set is False
    back = comp(task_to_item(task, V14, uid="t1"))
    for name, value in [
        ("SUMMARY", "File taxes"),
        ("DESCRIPTION", "all\\nof them"),
        ("PRIORITY", "1"),
        ("CLASS", "PRIVATE"),
        ("CATEGORIES", "Home"),
    ]:
        assert back.value(name) == value, name


@pytest.mark.parametrize(
    ("priority", "importance", "back"),
    [
        ("1", Importance.HIGH, "1"),
        ("4", Importance.HIGH, "1"),
        ("5", Importance.NORMAL, None),
        ("0", Importance.NORMAL, None),
        ("9", Importance.LOW, "9"),
        ("7", Importance.LOW, "9"),
    ],
)
def test_priority_and_importance(priority: str, importance: Importance, back: str | None) -> None:
    task = item_to_task(todo(f"PRIORITY:{priority}"), V14).data
    assert task.importance == importance
    assert comp(task_to_item(task, V14)).value("PRIORITY") == back


def test_dated_tasks_are_dates_both_ways() -> None:
    task = item_to_task(todo("DTSTART;VALUE=DATE:20260301", "DUE;VALUE=DATE:20260305"), V14).data
    assert task.start_date == datetime(2026, 3, 1) and task.due_date == datetime(2026, 3, 5)
    assert task.utc_start_date == datetime(2026, 2, 28, 23, tzinfo=UTC)  # Berlin midnight
    assert task.utc_due_date == datetime(2026, 3, 4, 23, tzinfo=UTC)
    back = comp(task_to_item(task, V14))
    assert line(back, "DTSTART") == "DTSTART;VALUE=DATE:20260301"
    assert line(back, "DUE") == "DUE;VALUE=DATE:20260305"


def test_timed_tasks_keep_their_wall_clock_and_instant() -> None:
    task = item_to_task(todo("DUE;TZID=Europe/Berlin:20260710T170000"), V14).data
    assert task.due_date == datetime(2026, 7, 10, 17)
    assert task.utc_due_date == datetime(2026, 7, 10, 15, tzinfo=UTC)
    assert line(comp(task_to_item(task, V14)), "DUE") == "DUE;TZID=Europe/Berlin:20260710T170000"
    # a device in another zone: the instant, in UTC
    ny = Options(device_zone=ZoneInfo("America/New_York"), year=2026)
    assert line(comp(task_to_item(task, ny)), "DUE") == "DUE:20260710T150000Z"
    # a UTC due time: the wall clock of the device's zone
    task = item_to_task(todo("DUE:20260710T150000Z"), V14).data
    assert task.due_date == datetime(2026, 7, 10, 17)
    only_utc = Task(utc_due_date=datetime(2026, 7, 10, 15, tzinfo=UTC))
    assert line(comp(task_to_item(only_utc, V14)), "DUE") == "DUE:20260710T150000Z"


def test_duration_gives_the_due_time() -> None:
    task = item_to_task(todo("DTSTART:20260710T080000Z", "DURATION:PT2H"), V14).data
    assert task.utc_due_date == datetime(2026, 7, 10, 10, tzinfo=UTC)


def test_completion() -> None:
    done = item_to_task(todo("STATUS:COMPLETED", "COMPLETED:20260302T101500Z"), V14).data
    assert done.complete is True and done.date_completed == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    back = comp(task_to_item(done, V14))
    assert (back.value("STATUS"), back.value("COMPLETED"), back.value("PERCENT-COMPLETE")) == (
        "COMPLETED",
        "20260302T101500Z",
        "100",
    )
    stamped = item_to_task(todo("STATUS:COMPLETED"), V14).data
    assert stamped.date_completed == datetime(2026, 1, 1, tzinfo=UTC)  # DateCompleted is required
    open_task = comp(task_to_item(Task(subject="x", complete=False), V14))
    assert open_task.get("STATUS") is None and open_task.get("COMPLETED") is None


def test_reminders() -> None:
    absolute = item_to_task(
        todo(
            "DUE:20260710T150000Z",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:x",
            "TRIGGER;VALUE=DATE-TIME:20260710T140000Z",
            "END:VALARM",
        ),
        V14,
    ).data
    assert absolute.reminder_set is True
    assert absolute.reminder_time == datetime(2026, 7, 10, 14, tzinfo=UTC)
    relative = item_to_task(
        todo(
            "DTSTART:20260710T080000Z",
            "DUE:20260710T150000Z",
            "BEGIN:VALARM",
            "ACTION:AUDIO",
            "TRIGGER;RELATED=END:-PT30M",
            "END:VALARM",
        ),
        V14,
    ).data
    assert relative.reminder_time == datetime(2026, 7, 10, 14, 30, tzinfo=UTC)
    (alarm,) = comp(task_to_item(absolute, V14)).children("VALARM")
    assert line(alarm, "TRIGGER") == "TRIGGER;VALUE=DATE-TIME:20260710T140000Z"


def test_recurring_tasks() -> None:
    item = todo(
        "DTSTART;VALUE=DATE:20260901",
        "DUE;VALUE=DATE:20260902",
        "RRULE:FREQ=MONTHLY;BYDAY=1TU;COUNT=6",
    )
    task = item_to_task(item, V14).data
    rec = task.recurrence
    assert rec is not None and rec.type == RecurrenceType.MONTHLY_NTH
    assert (rec.day_of_week, rec.week_of_month, rec.occurrences) == (4, 1, 6)
    assert rec.start == datetime(2026, 8, 31, 22, tzinfo=UTC)  # 14.x: the UTC instant
    assert item_to_task(item, V16).data.recurrence.start == datetime(2026, 9, 1)  # type: ignore[union-attr]
    back = comp(task_to_item(task, V14))
    assert line(back, "RRULE") == "RRULE:FREQ=MONTHLY;BYDAY=1TU;COUNT=6"


def test_a_recurring_task_without_start_anchors_on_its_due_date() -> None:
    task = item_to_task(todo("DUE;VALUE=DATE:20260901", "RRULE:FREQ=WEEKLY"), V14).data
    assert task.recurrence is not None and task.recurrence.day_of_week == 4
    device = Task(
        subject="water plants",
        due_date=datetime(2026, 9, 1),
        utc_due_date=datetime(2026, 8, 31, 22, tzinfo=UTC),
        recurrence=TaskRecurrence(type=RecurrenceType.WEEKLY, day_of_week=4, regenerate=True),
    )
    back = comp(task_to_item(device, V14))
    assert line(back, "DTSTART") == "DTSTART;VALUE=DATE:20260901"
    assert line(back, "RRULE") == "RRULE;X-EAS-REGENERATE=1:FREQ=WEEKLY;BYDAY=TU"
    again = item_to_task(Item.from_tree(Component("VCALENDAR", [], [back])), V14).data
    assert again.recurrence is not None and again.recurrence.regenerate is True


def test_rules_a_task_cannot_carry_are_said() -> None:
    out = item_to_task(todo("DTSTART:20260901T080000Z", "RRULE:FREQ=HOURLY"), V14)
    assert out.data.recurrence is None
    assert any("FREQ=HOURLY" in w for w in out.warnings)


def test_round_trip_of_a_device_task() -> None:
    task = Task(
        subject="Call",
        body=Body(data="about\r\nthe car"),
        importance=Importance.LOW,
        start_date=datetime(2026, 3, 1),
        utc_start_date=datetime(2026, 2, 28, 23, tzinfo=UTC),
        due_date=datetime(2026, 3, 2, 9, 30),
        utc_due_date=datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
        categories=["Car"],
        complete=False,
        sensitivity=Sensitivity.NORMAL,
        reminder_set=True,
        reminder_time=datetime(2026, 3, 2, 8, tzinfo=UTC),
    )
    again = item_to_task(task_to_item(task, V14), V14).data
    assert (
        again.subject == "Call" and again.body is not None and again.body.data == "about\nthe car"
    )
    for name in (
        "importance",
        "start_date",
        "utc_start_date",
        "due_date",
        "utc_due_date",
        "categories",
        "complete",
        "reminder_set",
        "reminder_time",
    ):
        assert getattr(again, name) == getattr(task, name), name


def test_a_vevent_is_not_a_task() -> None:
    event = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e\r\nDTSTART:20260101T000000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(MappingError, match="no VTODO"):
        item_to_task(event, V14)
