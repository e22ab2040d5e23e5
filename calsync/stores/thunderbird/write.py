"""Writing an item the way Thunderbird writes it: iCalendar -> rows -> database.

Why each rule (all from CalStorageItemModel and the ical.js property model of
Thunderbird 153, and checked against databases the real Thunderbird made):

* promoted properties (UID, SUMMARY, PRIORITY, CLASS, STATUS, CREATED,
  LAST-MODIFIED, DTSTAMP, DTSTART/DTEND or DTSTART/DUE/COMPLETED,
  RECURRENCE-ID, X-MOZ-LASTACK) go to columns; CLASS also to cal_properties;
* every other property is one cal_properties row, text values *decoded*
  (Thunderbird keeps ical.js "text" values unescaped), others as written; its
  parameters are cal_parameters rows.  Empty values are dropped (Thunderbird
  deletes a property set to ""), and parameters are never written for a
  property without a row: Thunderbird's reader throws on those;
* CATEGORIES (all lines) is one row, names joined with "," and commas inside
  names escaped as "\\,";
* RRULE/EXRULE/RDATE/EXDATE are whole lines in cal_recurrence, one value per
  line (Thunderbird's recurrence-date objects hold one date each);
* ATTENDEE and ORGANIZER, ATTACH, RELATED-TO lines and VALARM texts go to
  their tables, with the instance's recurrence id;
* overridden instances are extra main rows with ``recurrence_id`` set; an
  item of overrides only gets a master faked like Thunderbird's importer does
  (DTSTART = first RECURRENCE-ID, one RDATE per instance, X-MOZ-FAKED-MASTER);
* ``flags`` bits exactly as Thunderbird computes them: they gate its reader;
* a DTEND/DUE is computed from DURATION (the DURATION row is kept too), and an
  event without an end ends at its start (timed) or a day later (all-day).

Replacing an item deletes its rows in every table, cal_parameters included
(Thunderbird forgets those and duplicates them), keeping cal_metadata on an
update as Thunderbird's modifyItem does.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from datetime import UTC, datetime, timedelta

from calsync.items import Item
from calsync.items.lines import Component, Prop
from calsync.items.lines import unquote as unquote_param
from calsync.stores.thunderbird import times
from calsync.stores.thunderbird.read import TEXT_MULTI_PROPS, TEXT_PROPS, unescape_text
from calsync.stores.thunderbird.rows import ORIGINAL_TAG, CompRows, ItemRows, Value
from calsync.stores.thunderbird.schema import (
    ITEM_TABLES,
    LINE_FLAGS,
    LINE_TABLES,
    MAIN_TABLES,
    TABLES,
    Flag,
)

log = logging.getLogger(__name__)

# fmt: off
BASE_PROMOTED = frozenset(
    {
        "CREATED", "UID", "LAST-MODIFIED", "SUMMARY", "PRIORITY", "STATUS", "DTSTAMP", "RRULE",
        "EXDATE", "RDATE", "ATTENDEE", "ATTACH", "CATEGORIES", "ORGANIZER", "RECURRENCE-ID",
        "X-MOZ-LASTACK", "RELATED-TO",
    }
)
# fmt: on
PROMOTED = {
    "VEVENT": BASE_PROMOTED | {"DTSTART", "DTEND"},
    "VTODO": BASE_PROMOTED | {"DTSTART", "DTEND", "DUE", "COMPLETED"},
}
RECURRENCE_PROPS = ("RRULE", "EXRULE", "RDATE", "EXDATE")
_DURATION = re.compile(r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class Unstorable(ValueError):
    """An item Thunderbird's storage cannot hold (the message says why)."""


# -- item -> rows ----------------------------------------------------------------


def item_rows(item: Item) -> ItemRows:
    """The rows Thunderbird would write for ``item`` (Unstorable if it cannot)."""
    try:
        return _item_rows(item)
    except times.TimeError as e:
        raise Unstorable(str(e)) from None


def _item_rows(item: Item) -> ItemRows:
    comps = item.components()
    kinds = {c.name for c in comps}
    if "VJOURNAL" in kinds:
        raise Unstorable("Thunderbird calendars cannot store journal entries (VJOURNAL)")
    if len(kinds) != 1:
        raise Unstorable(f"mixes {' and '.join(sorted(kinds))} under one UID")
    kind = kinds.pop()
    uid = item.uid
    zones = times.Zones(item.timezones())
    masters = [c for c in comps if c.get("RECURRENCE-ID") is None]
    overrides = [c for c in comps if c.get("RECURRENCE-ID") is not None]
    if len(masters) > 1:
        raise Unstorable("holds two master components")
    master = masters[0] if masters else _faked_master(kind, uid, overrides)
    recurrence = _recurrence_lines(master)
    if overrides and not recurrence:
        raise Unstorable(
            "has overridden instances (RECURRENCE-ID) but its master has no RRULE or RDATE; "
            "Thunderbird cannot store that"
        )
    seen: set[tuple[Value, Value]] = set()
    exceptions = []
    for comp in overrides:
        rows = _comp_rows(comp, kind, zones, uid, recurring=False, is_master=False)
        if rows.rid in seen:
            raise Unstorable(f"two overrides for RECURRENCE-ID {comp.value('RECURRENCE-ID')}")
        seen.add(rows.rid)
        exceptions.append(rows)
    exceptions.sort(key=lambda e: int(e.main.get("recurrence_id") or 0))
    master_rows = _comp_rows(master, kind, zones, uid, recurring=bool(recurrence), is_master=True)
    if exceptions:
        master_rows.main["flags"] = master_rows.flags | Flag.HAS_EXCEPTIONS
    for sub in master.subs + [s for c in overrides for s in c.subs]:
        if sub.name != "VALARM":
            log.warning("item %s: Thunderbird cannot store a %s inside it; left out", uid, sub.name)
    return ItemRows(uid, kind, master_rows, exceptions, recurrence, original=item.raw)


def _faked_master(kind: str, uid: str, overrides: list[Component]) -> Component:
    """What Thunderbird's importer makes for an item that has only overrides."""
    first = overrides[0].get("RECURRENCE-ID")
    assert first is not None
    props = [Prop("UID", (), uid), Prop("DTSTART", first.params, first.value)]
    for comp in overrides:
        rid = comp.get("RECURRENCE-ID")
        assert rid is not None
        props.append(Prop("RDATE", rid.params, rid.value))
    props.append(Prop("X-MOZ-FAKED-MASTER", (), "1"))
    return Component(kind, props)


def _recurrence_lines(master: Component) -> list[str]:
    lines = []
    for prop in master.props:
        if prop.name not in RECURRENCE_PROPS:
            continue
        if prop.name in ("RDATE", "EXDATE"):
            for value in prop.value.split(","):
                if value.strip():
                    lines.append(Prop(prop.name, prop.params, value.strip()).to_line() + "\r\n")
        elif prop.value.strip():
            lines.append(prop.to_line() + "\r\n")
    return lines


def _comp_rows(
    comp: Component, kind: str, zones: times.Zones, uid: str, *, recurring: bool, is_master: bool
) -> CompRows:
    table = MAIN_TABLES[kind]
    main: dict[str, Value] = {col: None for col in TABLES[table] if col != "cal_id"}
    main["id"] = uid
    rows = CompRows(main)
    flags = Flag.HAS_PROPERTIES  # Thunderbird's items always have some property
    first = {p.name: p for p in reversed(comp.props)}  # the first of each name wins
    rid = first.get("RECURRENCE-ID")
    if rid is not None and not is_master:
        stored = zones.store(rid)
        main["recurrence_id"], main["recurrence_id_tz"] = stored.prtime, stored.tz
        if stored.is_date and not recurring:
            flags |= Flag.RECURRENCE_ID_ALLDAY
    if recurring:
        flags |= Flag.HAS_RECURRENCE
    for name, column in (("CREATED", "time_created"), ("LAST-MODIFIED", "last_modified")):
        if name in first:
            main[column] = zones.utc(first[name])
    if "DTSTAMP" in first:
        main["event_stamp" if kind == "VEVENT" else "todo_stamp"] = zones.utc(first["DTSTAMP"])
    if "SUMMARY" in first:
        main["title"] = unescape_text(first["SUMMARY"].value) or None
    if "PRIORITY" in first:
        main["priority"] = _int_or_text(first["PRIORITY"].value)
    if "CLASS" in first:
        main["privacy"] = unescape_text(first["CLASS"].value) or None
    if "STATUS" in first:
        main["ical_status"] = unescape_text(first["STATUS"].value) or None
    if "X-MOZ-LASTACK" in first:
        main["alarm_last_ack"] = zones.utc(first["X-MOZ-LASTACK"])
    duration = first.get("DURATION")
    start = zones.store(first["DTSTART"]) if "DTSTART" in first else None
    if kind == "VEVENT":
        end = zones.store(first["DTEND"]) if "DTEND" in first else None
        if end is None and start is not None:
            end = add_duration(
                start, duration.value if duration else ("P1D" if start.is_date else "PT0S")
            )
        _set_date(main, "event_start", start)
        _set_date(main, "event_end", end)
        if start is not None and start.is_date:
            flags |= Flag.EVENT_ALLDAY
    else:
        due = zones.store(first["DUE"]) if "DUE" in first else None
        if due is None and start is not None and duration is not None:
            due = add_duration(start, duration.value)
        _set_date(main, "todo_entry", start)
        _set_date(main, "todo_due", due)
        _set_date(
            main,
            "todo_completed",
            zones.store(first["COMPLETED"]) if "COMPLETED" in first else None,
        )
        some = start or due
        if some is not None and some.is_date:
            flags |= Flag.EVENT_ALLDAY
    attendees = [p for p in comp.props if p.name == "ATTENDEE"]
    attendees += [p for p in comp.props if p.name == "ORGANIZER"][:1]
    rows.attendees = [p.to_line() + "\r\n" for p in attendees]
    rows.attachments = [p.to_line() + "\r\n" for p in comp.props if p.name == "ATTACH"]
    rows.relations = [p.to_line() + "\r\n" for p in comp.props if p.name == "RELATED-TO"]
    rows.alarms = [_component_text(s) for s in comp.subs if s.name == "VALARM"]
    for name in LINE_TABLES:
        if getattr(rows, name):
            flags |= LINE_FLAGS[name]
    _properties(rows, comp, kind)
    main["flags"] = flags
    return rows


def _set_date(main: dict[str, Value], column: str, stored: times.Stored | None) -> None:
    if stored is not None:
        main[column], main[column + "_tz"] = stored.prtime, stored.tz


def _properties(rows: CompRows, comp: Component, kind: str) -> None:
    promoted = PROMOTED[kind]
    for prop in comp.props:
        name = prop.name
        if name in promoted or name == "EXRULE":
            continue
        value = _stored_value(prop)
        if value == "":
            continue  # Thunderbird drops a property set to an empty value
        rows.properties.append((name, value))
        for key, raw in prop.params:
            pvalue = unquote_param(raw) if raw is not None else ""
            if pvalue != "":
                rows.parameters.append((name, key, pvalue))
    categories: list[str] = []
    for prop in comp.all("CATEGORIES"):
        for part in _split_values(prop.value):
            name = unescape_text(part)
            if name:
                categories.append(name)
    if categories:
        rows.properties.append(("CATEGORIES", ",".join(c.replace(",", "\\,") for c in categories)))


def _stored_value(prop: Prop) -> str:
    value_type = (prop.param("VALUE") or "").upper()
    if prop.name in TEXT_PROPS or value_type == "TEXT":
        return unescape_text(prop.value)
    if prop.name in TEXT_MULTI_PROPS:
        return ",".join(unescape_text(v) for v in _split_values(prop.value))
    return prop.value


def _split_values(value: str) -> list[str]:
    from calsync.stores.thunderbird.read import split_unescaped_commas

    return split_unescaped_commas(value)


def _component_text(comp: Component) -> str:
    return "".join(line + "\r\n" for line in comp.to_lines())


def _int_or_text(value: str) -> Value:
    try:
        return int(value.strip())
    except ValueError:
        return value.strip() or None


def add_duration(start: times.Stored, value: str) -> times.Stored:
    """``start`` plus an iCalendar DURATION, in wall-clock time as ical.js adds it."""
    m = _DURATION.match(value.strip())
    if not m:
        raise Unstorable(f"DURATION {value!r} is not an iCalendar duration")
    sign, w, d, h, mi, s = m.groups()
    delta = timedelta(
        weeks=int(w or 0),
        days=int(d or 0),
        hours=int(h or 0),
        minutes=int(mi or 0),
        seconds=int(s or 0),
    )
    if sign == "-":
        delta = -delta
    naive = times.from_prtime(start.prtime)
    if start.is_date or start.tz in ("floating", "UTC"):
        return times.Stored(times.prtime_of(naive + delta), start.tz, start.is_date)
    _, zone = times.zone_for_column(start.tz)
    assert zone is not None
    local = naive.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) + delta
    return times.Stored(times.prtime_of(local.replace(tzinfo=zone)), start.tz, False)


# -- rows -> database --------------------------------------------------------------


def delete_item(conn: sqlite3.Connection, cal_id: str, uid: str, *, keep_meta: bool) -> None:
    """Every row of ``uid`` in ``cal_id``, parameters included (unlike Thunderbird).

    ``keep_meta`` (an update): cal_metadata stays, as in Thunderbird's modify,
    except calsync's own record of the original item, which is rewritten.
    """
    for table, column in ITEM_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE cal_id = ? AND {column} = ?", (cal_id, uid))
    if keep_meta:
        conn.execute(
            "DELETE FROM cal_metadata WHERE cal_id = ? AND item_id = ? AND substr(value, 1, ?) = ?",
            (cal_id, uid, len(ORIGINAL_TAG), ORIGINAL_TAG),
        )
    else:
        conn.execute("DELETE FROM cal_metadata WHERE cal_id = ? AND item_id = ?", (cal_id, uid))


def insert_item(conn: sqlite3.Connection, cal_id: str, rows: ItemRows) -> None:
    table = MAIN_TABLES[rows.kind]
    for line in rows.recurrence:
        conn.execute(
            "INSERT INTO cal_recurrence (cal_id, item_id, icalString) VALUES (?, ?, ?)",
            (cal_id, rows.uid, line),
        )
    for comp in [*rows.exceptions, rows.master]:
        rid, rid_tz = comp.rid
        for name, child in LINE_TABLES.items():
            for text in getattr(comp, name):
                conn.execute(
                    f"INSERT INTO {child} (cal_id, item_id, recurrence_id, recurrence_id_tz, "
                    "icalString) VALUES (?, ?, ?, ?, ?)",
                    (cal_id, rows.uid, rid, rid_tz, text),
                )
        for key, value in comp.properties:
            conn.execute(
                "INSERT INTO cal_properties (cal_id, item_id, recurrence_id, recurrence_id_tz, "
                "key, value) VALUES (?, ?, ?, ?, ?, ?)",
                (cal_id, rows.uid, rid, rid_tz, key, value),
            )
        for key1, key2, value in comp.parameters:
            conn.execute(
                "INSERT INTO cal_parameters (cal_id, item_id, recurrence_id, recurrence_id_tz, "
                "key1, key2, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cal_id, rows.uid, rid, rid_tz, key1, key2, value),
            )
        columns = ["cal_id", *comp.main]
        marks = ", ".join("?" for _ in columns)
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            (cal_id, *comp.main.values()),
        )
    meta = rows.metadata()
    if meta is not None:
        taken = conn.execute(
            "SELECT 1 FROM cal_metadata WHERE cal_id = ? AND item_id = ?", (cal_id, rows.uid)
        ).fetchone()
        if taken is None:  # never displace metadata someone else keeps for the item
            conn.execute(
                "INSERT INTO cal_metadata (cal_id, item_id, value) VALUES (?, ?, ?)",
                (cal_id, rows.uid, meta),
            )


def replace_item(conn: sqlite3.Connection, cal_id: str, uid: str, rows: ItemRows | None) -> None:
    """Thunderbird's modify (rows given) or delete (None), inside the caller's transaction."""
    delete_item(conn, cal_id, uid, keep_meta=rows is not None)
    if rows is not None:
        insert_item(conn, cal_id, rows)


def now_prtime() -> int:
    return times.prtime_of(datetime.now(UTC))
