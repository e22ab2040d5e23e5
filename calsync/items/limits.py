"""What an item from a device must satisfy: one check for every device input.

Why: an item that one of calsync's conversions cannot compute with (a start
in year 9999, whose end overflows Python's dates; components nested 10,000
deep, which every recursive walk of the tree trips over) used to be accepted
by a SyncML Add and then, stored in the hub, stopped every vCalendar device's
session and every CalDAV query that touched it.  CalDAV PUT refused some of
them (Radicale's parser did), SyncML none.  ``check_input`` is the one rule
both endpoints apply now, before anything is stored, so what one refuses the
other refuses too.

Rules (an item breaking one is refused with an ``ItemError`` naming it):

- it parses, with components nested at most ``lines.MAX_DEPTH`` deep;
- every date and date-time of its events, to-dos and journals (and their
  alarms) -- DTSTART, DTEND, DUE, RECURRENCE-ID, RDATE, EXDATE, COMPLETED, an
  absolute TRIGGER -- lies in the years ``FIRST_YEAR`` to ``LAST_YEAR`` (a
  rule's UNTIL may be any date: 9999-12-31 is how some devices say "forever",
  and nothing is computed from it but where an expansion stops);
- every duration (DURATION, a relative TRIGGER) is at most ``MAX_DURATION``.

Together these keep every value a conversion computes (end = start +
duration, alarm = end + offset, local time <-> UTC) inside the years Python
can hold.  Time zone definitions are not checked (their observances start in
1601 or 1970, and calsync never adds durations to them).  Recurrence rules
are not limited here: an expansion stops at its budget wherever it happens
(``calsync.items.expansion``), and the item is served and synced as usual.
"""

from __future__ import annotations

import re
from datetime import timedelta

from calsync.items.item import Item, ItemError
from calsync.items.lines import Component
from calsync.items.split import ITEM_COMPONENTS

FIRST_YEAR = 100
LAST_YEAR = 9899
MAX_YEARS = 40  # the longest event, or alarm offset (twice that: an alarm after the end)
MAX_DURATION = timedelta(days=MAX_YEARS * 366)

_TIMES = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "RDATE", "EXDATE", "COMPLETED")
_YEAR = re.compile(r"^\s*(\d{4})(?:\d{4}|-\d{2}-\d{2})")
_DURATION = re.compile(
    r"^\s*[+-]?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\s*$", re.I
)


def check_input(item: Item, source: str | None = None) -> None:
    """Refuse (``ItemError``) an item from a device that breaks the rules above."""
    try:
        tree = item.tree
    except ItemError as e:
        raise ItemError(e.reason, source=source, id=item.uid, line=e.line) from None
    for comp in tree.subs:
        if comp.name in ITEM_COMPONENTS:
            for part in comp.walk():
                problem = _problem(part)
                if problem:
                    raise ItemError(problem, source=source, id=item.uid)


def _problem(comp: Component) -> str | None:
    for prop in comp.props:
        values: list[str] = []
        if prop.name in _TIMES or (
            prop.name == "TRIGGER" and (prop.param("VALUE") or "").upper() == "DATE-TIME"
        ):
            values = re.split(r"[,/]", prop.value)  # lists, and a PERIOD's two ends
        elif prop.name in ("DURATION", "TRIGGER"):
            values = [prop.value]
        for value in values:
            year = _YEAR.match(value)
            if year and not FIRST_YEAR <= int(year.group(1)) <= LAST_YEAR:
                return (
                    f"{prop.name} {value.strip()[:20]}: dates from the year {FIRST_YEAR} "
                    f"to {LAST_YEAR} only"
                )
            length = _DURATION.match(value)
            if length and _seconds(length) > MAX_DURATION.total_seconds():
                return f"{prop.name} {value.strip()[:20]}: longer than {MAX_YEARS} years"
    return None


def _seconds(m: re.Match[str]) -> int:
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60 + seconds
