"""The schema of Thunderbird's calendar database, as verified on real files.

Why a module of its own: everything that reads or writes ``local.sqlite``
must agree on one description, and it must refuse a file whose schema it has
not seen.  The table definitions below are those of a database made by
Thunderbird 153.7.0esr (schema version 23, unchanged since Thunderbird 91);
``check`` compares a file against them before anything is read or written.
An older version is upgraded in place by Thunderbird on its next start; a
newer one is renamed away by an older Thunderbird: either way, not ours to
touch.
"""

from __future__ import annotations

import sqlite3

# Schema versions whose tables, columns and semantics were verified.
VERIFIED_VERSIONS = frozenset({23})

# fmt: off
TABLES: dict[str, tuple[str, ...]] = {
    "cal_calendar_schema_version": ("version",),
    "cal_tz_version": ("version",),
    "cal_events": (
        "cal_id", "id", "time_created", "last_modified", "title", "priority", "privacy",
        "ical_status", "flags", "event_start", "event_end", "event_stamp", "event_start_tz",
        "event_end_tz", "recurrence_id", "recurrence_id_tz", "alarm_last_ack", "offline_journal",
    ),
    "cal_todos": (
        "cal_id", "id", "time_created", "last_modified", "title", "priority", "privacy",
        "ical_status", "flags", "todo_entry", "todo_due", "todo_completed", "todo_complete",
        "todo_entry_tz", "todo_due_tz", "todo_completed_tz", "recurrence_id", "recurrence_id_tz",
        "alarm_last_ack", "todo_stamp", "offline_journal",
    ),
    "cal_properties": ("item_id", "key", "value", "recurrence_id", "recurrence_id_tz", "cal_id"),
    "cal_parameters": (
        "cal_id", "item_id", "recurrence_id", "recurrence_id_tz", "key1", "key2", "value",
    ),
    "cal_recurrence": ("item_id", "cal_id", "icalString"),
    "cal_attendees": ("item_id", "recurrence_id", "recurrence_id_tz", "cal_id", "icalString"),
    "cal_alarms": ("cal_id", "item_id", "recurrence_id", "recurrence_id_tz", "icalString"),
    "cal_attachments": ("item_id", "cal_id", "recurrence_id", "recurrence_id_tz", "icalString"),
    "cal_relations": ("cal_id", "item_id", "recurrence_id", "recurrence_id_tz", "icalString"),
    "cal_metadata": ("cal_id", "item_id", "value"),
}
# fmt: on

# The tables of one item (main rows and child rows), keyed by item id column.
MAIN_TABLES = {"VEVENT": "cal_events", "VTODO": "cal_todos"}
LINE_TABLES = {  # child tables holding one whole iCalendar property (or VALARM) per row
    "attendees": "cal_attendees",
    "attachments": "cal_attachments",
    "relations": "cal_relations",
    "alarms": "cal_alarms",
}
ITEM_TABLES: tuple[tuple[str, str], ...] = (
    ("cal_events", "id"),
    ("cal_todos", "id"),
    ("cal_properties", "item_id"),
    ("cal_parameters", "item_id"),
    ("cal_recurrence", "item_id"),
    ("cal_attendees", "item_id"),
    ("cal_alarms", "item_id"),
    ("cal_attachments", "item_id"),
    ("cal_relations", "item_id"),
)


class Flag:
    """Bits of the ``flags`` column (CAL_ITEM_FLAG): they gate what Thunderbird reads."""

    PRIVATE = 1  # legacy, never set by current code
    HAS_ATTENDEES = 2
    HAS_PROPERTIES = 4  # gates cal_properties *and* cal_parameters
    EVENT_ALLDAY = 8
    HAS_RECURRENCE = 16
    HAS_EXCEPTIONS = 32
    HAS_ATTACHMENTS = 64
    HAS_RELATIONS = 128
    HAS_ALARMS = 256
    RECURRENCE_ID_ALLDAY = 512


LINE_FLAGS = {
    "attendees": Flag.HAS_ATTENDEES,
    "attachments": Flag.HAS_ATTACHMENTS,
    "relations": Flag.HAS_RELATIONS,
    "alarms": Flag.HAS_ALARMS,
}

OFFLINE_DELETED = 4  # offline_journal value of a row Thunderbird hides


class SchemaError(Exception):
    """The database is not one this code knows how to read or write."""


def version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT version FROM cal_calendar_schema_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    if row is None or row[0] is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        return None


def check(conn: sqlite3.Connection, where: str) -> int:
    """The schema version, after checking it and every table; SchemaError if unknown."""
    found = version(conn)
    if found is None:
        raise SchemaError(
            f"{where} is not a Thunderbird calendar database (no schema version); "
            "start Thunderbird once with this profile so that it creates it"
        )
    if found not in VERIFIED_VERSIONS:
        known = ", ".join(str(v) for v in sorted(VERIFIED_VERSIONS))
        hint = (
            "Thunderbird upgrades it on its next start; start and quit Thunderbird once"
            if found < min(VERIFIED_VERSIONS)
            else "it was made by a newer Thunderbird than calsync knows; "
            "calsync will not touch it until this version has been verified"
        )
        raise SchemaError(
            f"{where} has calendar schema version {found}; calsync reads and writes only "
            f"version {known} (Thunderbird 91 to 153): {hint}"
        )
    for table, columns in TABLES.items():
        have = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
        if have != columns:
            raise SchemaError(
                f"{where}: table {table} has columns {', '.join(have) or '(missing)'}, "
                f"expected {', '.join(columns)}; not touching an unknown layout"
            )
    return found
