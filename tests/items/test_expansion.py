"""Recurrence expansion is bounded (issue 19, findings 3 and 4).

Every rule calsync expands, and every rule dateutil walks under a budget, stops
after ``MAX_OCCURRENCES`` occurrences, ``MAX_STEPS`` periods or ``MAX_SECONDS``:
a FREQ=SECONDLY rule, a count of a hundred million, a rule that never matches
(dateutil walks it day by day to year 9999 without producing anything) and an
exclusion rule that walks every second all answer in well under a second.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from datetime import UTC, datetime

import pytest
from dateutil import rrule as du

from calsync.items import expansion
from calsync.items.vcal import rules, vcal_to_items

START = datetime(2024, 1, 1, tzinfo=UTC)
# generous: each of these takes minutes (or seconds) without the budget, and at
# most MAX_SECONDS plus a little with it, however loaded the machine
QUICK = 3.0


def timed(fn):  # type: ignore[no-untyped-def]
    began = time.monotonic()
    result = fn()
    return result, time.monotonic() - began


@pytest.mark.timeout(120)
def test_a_rule_every_second_stops_at_the_occurrence_cap() -> None:
    watch = expansion.watch()
    found, took = timed(lambda: rules.occurrences("FREQ=SECONDLY", START, limit=10**9))
    assert len(found) == expansion.MAX_OCCURRENCES
    assert found[:2] == [START, START.replace(second=1)]
    assert watch.truncated
    assert took < QUICK


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # never: dateutil walks every day to 9999
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTHDAY=31;BYMONTH=4,6,9,11",
    ],
)
def test_a_rule_that_never_matches_stops_at_the_step_cap(rule: str) -> None:
    watch = expansion.watch()
    found, took = timed(lambda: rules.occurrences(rule, START, limit=10))
    assert found == []
    assert watch.truncated
    assert took < QUICK


@pytest.mark.timeout(120)
def test_an_exclusion_rule_walking_every_second_is_bounded_too() -> None:
    rset = du.rruleset()
    rset.rrule(du.rrule(du.YEARLY, dtstart=START.replace(tzinfo=None), count=50))
    rset.exrule(du.rrule(du.SECONDLY, dtstart=START.replace(tzinfo=None), bysecond=30))
    watch = expansion.watch()
    found, took = timed(lambda: list(expansion.bounded(rset)))
    assert watch.truncated
    assert took < QUICK
    assert found[0] == START.replace(tzinfo=None)  # what came before the cap is kept


def test_an_ordinary_rule_is_expanded_whole_and_untouched() -> None:
    watch = expansion.watch()
    found = rules.occurrences("FREQ=WEEKLY;COUNT=300", START, limit=1000)
    assert len(found) == 300 and not watch.truncated
    # and a walk outside any budget (someone else's use of dateutil) is not counted
    assert len(list(du.rrule(du.DAILY, dtstart=START, count=30_000))) == 30_000
    assert not watch.truncated


def test_budgets_of_interleaved_walks_do_not_mix() -> None:
    dense = expansion.bounded(du.rrule(du.SECONDLY, dtstart=START))
    fine = expansion.bounded(du.rrule(du.DAILY, dtstart=START, count=5))
    got = [next(dense) for _ in range(10)] + list(fine)
    assert len(got) == 15
    assert len(list(dense)) == expansion.MAX_OCCURRENCES - 10


@pytest.mark.timeout(120)
def test_a_vcal_rule_with_a_huge_count_and_a_far_end_converts_at_once() -> None:
    """Finding 4: ``D1 #100000000 99991231`` expanded ~2.9 million dates (9.8 s, 184 MB)
    to decide whether the count or the end date comes first."""
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:r4@x\r\n"
        b"DTSTART:20000101T100000Z\r\nDTEND:20000101T110000Z\r\n"
        b"RRULE:D1 #100000000 99991231T000000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (items, errors), took = timed(lambda: vcal_to_items(data))
    assert not errors and took < QUICK
    master = items[0].master()
    assert master is not None
    # past the cap, which end comes first is not computed: the end date is kept
    assert master.value("RRULE") == "FREQ=DAILY;UNTIL=99991231T100000Z"


def test_a_count_reached_before_the_end_date_is_still_decided_exactly() -> None:
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:r5@x\r\n"
        b"DTSTART:20000101T100000Z\r\nDTEND:20000101T110000Z\r\n"
        b"RRULE:D1 #5000 20991231T000000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    items, errors = vcal_to_items(data)
    master = items[0].master()
    assert not errors and master is not None
    assert master.value("RRULE") == "FREQ=DAILY;COUNT=5000"


# -- the one hook into dateutil ------------------------------------------------------------

# sha256 of the source of what the hook relies on, as of python-dateutil 2.9.0.post0
HOOKED = {
    "rrule._iter": "cfbde4a5a77f8960",
    "_iterinfo": "4f454a48afc49cae",
}


def _fingerprint(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_the_dateutil_hook_is_in_place_and_dateutil_unchanged() -> None:
    """The budget counts dateutil's walk through its per-period helper; if a new
    dateutil changes the walk, this fails: re-check ``calsync/items/expansion.py``
    (is every period still one call of a day-set helper, whose class is still built
    as it was?), then update HOOKED."""
    assert issubclass(du._iterinfo, expansion.hooked_walk())
    found = {
        "rrule._iter": _fingerprint(du.rrule._iter),
        "_iterinfo": _fingerprint(expansion.hooked_walk().__mro__[1]),
    }
    assert found == HOOKED, (
        "python-dateutil changed what calsync.items.expansion hooks; re-check the hook"
    )
