"""Whole calendar files in either format (.ics or .vcs), for convert/import/export.

Reading sniffs the format (``calsync.items.vcal.is_vcal``); bad entries become
``ItemError``s naming the file and line while the others are read.  Writing
gives one VCALENDAR for iCalendar and one VCALENDAR per item for vCalendar (as
phones' PC suites write them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from calsync.items.item import Item, ItemError, items_from_stream
from calsync.items.vcal import is_vcal, item_to_vcal, join_items, vcal_to_items

Format = Literal["ics", "vcs"]
FORMATS: tuple[Format, ...] = ("ics", "vcs")
EXTENSIONS: dict[str, Format] = {".ics": "ics", ".ical": "ics", ".ifb": "ics", ".vcs": "vcs"}

# a bare VEVENT (no VCALENDAR around it) is read too: some programs write them
_BEGIN_CALENDAR = re.compile(
    rb"^[ \t]*BEGIN[ \t]*:[ \t]*V(?:CALENDAR|EVENT|TODO|JOURNAL)\b", re.I | re.M
)


@dataclass
class Read:
    """What a file held: its format, the items read, and the entries that failed."""

    format: Format
    items: list[Item] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def sniff(data: bytes) -> Format:
    return "vcs" if is_vcal(data) else "ics"


def read_calendar(data: bytes, source: str) -> Read:
    """Every item of a .ics or .vcs stream (format sniffed from the content)."""
    fmt = sniff(data)
    if not _BEGIN_CALENDAR.search(data):
        what = (
            "empty" if not data.strip() else "not a calendar (no BEGIN:VCALENDAR or BEGIN:VEVENT)"
        )
        return Read(fmt, [], [ItemError(what, source=source)])
    if fmt == "vcs":
        items, errors = vcal_to_items(data, source=source)
    else:
        try:
            items, errors = items_from_stream(data, source=source)
        except ItemError as e:
            e.source = e.source or source
            return Read(fmt, [], [e])
    return Read(fmt, items, errors)


def render(items: list[Item], fmt: Format) -> tuple[bytes, list[ItemError]]:
    """The items as one file of format ``fmt``, and the items that format cannot carry."""
    if fmt == "ics":
        return join_items(items), []
    out: list[bytes] = []
    errors: list[ItemError] = []
    for item in items:
        try:
            out.append(item_to_vcal(item))
        except ItemError as e:
            e.id = e.id or item.uid
            errors.append(e)
    return b"".join(out), errors


def format_of_name(name: str) -> Format | None:
    """The format a file name's extension says, if it says one."""
    lower = name.lower()
    for ext, fmt in EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    return None
