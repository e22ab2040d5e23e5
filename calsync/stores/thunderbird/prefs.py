"""The calendar registry in a profile's ``prefs.js`` (``calendar.registry.<id>.*``).

Why parse prefs.js ourselves: it is the only place that says which calendars
a profile has, their names, types and URIs; ``<id>`` is the ``cal_id`` of the
rows in the database.  The file is a list of
``user_pref("name", value);`` lines with JavaScript literals (strings with
JS escapes, numbers, true/false), written by Thunderbird.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PREF = re.compile(
    r'^\s*(?:user_pref|pref|sticky_pref)\(\s*("(?:[^"\\]|\\.)*")\s*,\s*(.*?)\s*\)\s*;\s*$'
)
_REGISTRY = "calendar.registry."

STORAGE_URI = "moz-storage-calendar://"


@dataclass
class CalendarInfo:
    """One calendar of a profile, from its registry entries."""

    id: str
    name: str = ""
    type: str = ""
    uri: str = ""
    disabled: bool = False
    read_only: bool = False
    cache_enabled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_storage(self) -> bool:
        return self.type == "storage"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "uri": self.uri,
            "disabled": self.disabled,
            "read_only": self.read_only,
            "writable": self.is_storage and not self.read_only,
        }


def _literal(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    try:
        return int(text)
    except ValueError:
        return text


def read_prefs(path: Path) -> dict[str, Any]:
    """All prefs of a prefs.js file (missing file: none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    prefs: dict[str, Any] = {}
    for line in text.splitlines():
        m = _PREF.match(line)
        if m:
            prefs[str(_literal(m.group(1)))] = _literal(m.group(2))
    return prefs


def calendars(profile: Path) -> list[CalendarInfo]:
    """The profile's calendars, in Thunderbird's sort order."""
    prefs = read_prefs(profile / "prefs.js")
    found: dict[str, CalendarInfo] = {}
    for key, value in prefs.items():
        if not key.startswith(_REGISTRY):
            continue
        rest = key[len(_REGISTRY) :]
        cal_id, dot, prop = rest.partition(".")
        if not dot:
            continue
        info = found.setdefault(cal_id, CalendarInfo(cal_id))
        if prop == "name":
            info.name = str(value)
        elif prop == "type":
            info.type = str(value)
        elif prop == "uri":
            info.uri = str(value)
        elif prop == "disabled":
            info.disabled = bool(value)
        elif prop == "readOnly":
            info.read_only = bool(value)
        elif prop == "cache.enabled":
            info.cache_enabled = bool(value)
        else:
            info.extra[prop] = value
    order = str(prefs.get("calendar.list.sortOrder", "")).split()
    rank = {cal_id: i for i, cal_id in enumerate(order)}
    return sorted(found.values(), key=lambda c: (rank.get(c.id, len(rank)), c.name, c.id))


class CalendarNotFound(LookupError):
    pass


def find_calendar(profile: Path, selector: str) -> CalendarInfo:
    """The calendar with this id, else this name (exactly one)."""
    cals = calendars(profile)
    for info in cals:
        if info.id == selector:
            return info
    named = [c for c in cals if c.name == selector] or [
        c for c in cals if c.name.casefold() == selector.casefold()
    ]
    if len(named) == 1:
        return named[0]
    listing = "; ".join(f"{c.name!r} ({c.type}, id {c.id})" for c in cals) or "none"
    if named:
        raise CalendarNotFound(
            f"{len(named)} calendars are named {selector!r} in {profile}; use the id "
            f"instead (calendars: {listing})"
        )
    raise CalendarNotFound(f"no calendar {selector!r} in {profile} (calendars: {listing})")
