"""Reading a calendar out of ``local.sqlite``: rows -> ``ItemRows`` -> iCalendar.

Why it mirrors Thunderbird's own reader so closely: the goal is to see
exactly what Thunderbird shows.  So, like CalStorageItemModel:

* child rows of a non-recurring item (and of every overridden instance) are
  read only when the item's ``flags`` bit says so; a recurring master reads
  all of its own;
* overridden instances belong to a recurring master of the same table;
* ``cal_parameters`` rows are applied in insertion order, the last one per
  (property, parameter) winning: this removes the duplicates Thunderbird's
  modify leaves behind, and parameters of a property the item does not have
  (left over from a deleted item with the same UID) are ignored;
* rows a cached calendar marked deleted offline are hidden.

Values Thunderbird keeps decoded (text properties, title, CATEGORIES) are
encoded back to iCalendar; everything else is emitted as stored.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from calsync.items import Item, ItemError
from calsync.items.item import PRODID
from calsync.items.lines import Component, LineError, Prop, parse, parse_prop, quote
from calsync.stores.thunderbird import times
from calsync.stores.thunderbird.rows import CompRows, ItemRows, Value
from calsync.stores.thunderbird.schema import (
    LINE_FLAGS,
    LINE_TABLES,
    MAIN_TABLES,
    OFFLINE_DELETED,
    TABLES,
    Flag,
)

# Properties whose values Thunderbird stores decoded (ical.js "text" type).
# fmt: off
TEXT_PROPS = frozenset(
    {
        "ACTION", "CALSCALE", "CLASS", "COMMENT", "CONTACT", "DESCRIPTION", "LOCATION",
        "METHOD", "PRODID", "RELATED-TO", "STATUS", "SUMMARY", "TRANSP", "TZID", "TZNAME",
        "VERSION", "UID",
    }
)
# fmt: on
# Multi-valued text: values decoded and joined with "," (CATEGORIES has its own escaping).
TEXT_MULTI_PROPS = frozenset({"RESOURCES"})


@dataclass
class CalendarRows:
    """Everything of one calendar: items by UID, and UIDs that cannot be used."""

    items: dict[str, ItemRows] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


# -- text values -----------------------------------------------------------------


def escape_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def unescape_text(value: str) -> str:
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            nxt = value[i + 1]
            if nxt in "nN":
                out.append("\n")
                i += 2
                continue
            if nxt in "\\;,":
                out.append(nxt)
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def split_unescaped_commas(value: str) -> list[str]:
    """Split a multi-valued text value at commas that are not escaped."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if c == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def categories_to_ical(stored: str) -> str:
    """Thunderbird's "a,b\\,c" (commas in names escaped) -> ``CATEGORIES`` value."""
    names = [n.replace("\x1a", ",") for n in stored.replace("\\,", "\x1a").split(",")]
    return ",".join(escape_text(n) for n in names if n != "" or len(names) == 1)


# -- loading --------------------------------------------------------------------


RidKey = tuple[Value, Value]


def _rows(conn: sqlite3.Connection, table: str, cal_id: str) -> Iterable[sqlite3.Row]:
    cols = ", ".join(TABLES[table])
    yield from conn.execute(
        f"SELECT {cols} FROM {table} WHERE cal_id = ? ORDER BY rowid", (cal_id,)
    )


def _text(value: Value | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def load_calendar(conn: sqlite3.Connection, cal_id: str) -> CalendarRows:
    """Read every item of ``cal_id`` (see the module docstring for the rules)."""
    conn.row_factory = sqlite3.Row
    out = CalendarRows()
    masters: dict[str, tuple[str, CompRows]] = {}
    exceptions: dict[tuple[str, str], list[CompRows]] = defaultdict(list)
    for kind, table in MAIN_TABLES.items():
        for row in _rows(conn, table, cal_id):
            main = {k: _value(row[k]) for k in TABLES[table] if k != "cal_id"}
            if main.get("offline_journal") == OFFLINE_DELETED:
                continue
            uid = _text(main["id"])
            comp = CompRows(main)
            if main.get("recurrence_id") is None:
                if uid in masters:
                    other = "event and a task" if masters[uid][0] != kind else "twice"
                    out.errors[uid] = (
                        f"the database holds this UID {other} in calendar {cal_id}; "
                        "not synced until Thunderbird (or you) removes one"
                    )
                    continue
                masters[uid] = (kind, comp)
            else:
                exceptions[(uid, kind)].append(comp)
    children: dict[str, dict[tuple[str, RidKey], list[Value]]] = {}
    for name, table in LINE_TABLES.items():
        found: dict[tuple[str, RidKey], list[Value]] = defaultdict(list)
        for row in _rows(conn, table, cal_id):
            key = (
                _text(row["item_id"]),
                (_value(row["recurrence_id"]), _value(row["recurrence_id_tz"])),
            )
            found[key].append(_text(row["icalString"]))
        children[name] = found
    props: dict[tuple[str, RidKey], list[tuple[str, Value]]] = defaultdict(list)
    for row in _rows(conn, "cal_properties", cal_id):
        key = (
            _text(row["item_id"]),
            (_value(row["recurrence_id"]), _value(row["recurrence_id_tz"])),
        )
        props[key].append((_text(row["key"]), _value(row["value"])))
    params: dict[tuple[str, RidKey], dict[tuple[str, str], Value]] = defaultdict(dict)
    for row in _rows(conn, "cal_parameters", cal_id):
        key = (
            _text(row["item_id"]),
            (_value(row["recurrence_id"]), _value(row["recurrence_id_tz"])),
        )
        pkey = (_text(row["key1"]).upper(), _text(row["key2"]).upper())
        bucket = params[key]
        bucket.pop(pkey, None)  # re-insert: the last row wins, in its position
        bucket[pkey] = _value(row["value"])
    recurrence: dict[str, list[str]] = defaultdict(list)
    for row in _rows(conn, "cal_recurrence", cal_id):
        recurrence[_text(row["item_id"])].append(_text(row["icalString"]))
    metadata: dict[str, str] = {}
    for row in _rows(conn, "cal_metadata", cal_id):
        metadata[_text(row["item_id"])] = _text(row["value"])

    def fill(uid: str, comp: CompRows, gated: bool) -> None:
        key = (uid, comp.rid)
        flags = comp.flags
        for name in LINE_TABLES:
            if not gated or flags & LINE_FLAGS[name]:
                setattr(comp, name, list(children[name].get(key, [])))
        if not gated or flags & Flag.HAS_PROPERTIES:
            comp.properties = list(props.get(key, []))
            present = {k.upper() for k, _ in comp.properties}
            comp.parameters = [
                (k1, k2, v) for (k1, k2), v in params.get(key, {}).items() if k1 in present
            ]

    for uid, (kind, master) in masters.items():
        if uid in out.errors:
            continue
        recurring = bool(master.flags & Flag.HAS_RECURRENCE)
        fill(uid, master, gated=not recurring)
        item = ItemRows(uid, kind, master)
        if recurring:
            item.recurrence = list(recurrence.get(uid, []))
            for exc in exceptions.get((uid, kind), []):
                fill(uid, exc, gated=True)
                item.exceptions.append(exc)
            item.exceptions.sort(key=lambda e: int(e.main.get("recurrence_id") or 0))
        if uid in metadata:
            item.adopt_metadata(metadata[uid])
        out.items[uid] = item
    return out


def _value(v: object) -> Value:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if v is None or isinstance(v, str | int | float):
        return v
    return str(v)


# -- rows -> iCalendar -------------------------------------------------------------


class _Out:
    """Collects the TZIDs an item uses while its components are built."""

    def __init__(self) -> None:
        self.tzids: dict[str, str | None] = {}  # TZID -> foreign VTIMEZONE text or None

    def date(self, name: str, value: Value, tz: Value, is_date: bool) -> Prop | None:
        if value is None:
            return None
        if not isinstance(value, int | float):
            try:
                value = int(str(value))
            except ValueError:
                raise times.TimeError(f"{name} holds {value!r}, not a time") from None
        prop, tzid, foreign = times.to_prop(
            name, value, _text(tz) if tz is not None else None, is_date
        )
        if tzid is not None:
            self.tzids.setdefault(tzid, foreign)
        return prop


def to_ical(rows: ItemRows, *, original: bool = True) -> Item:
    """The iCalendar item Thunderbird would show for these rows.

    ``original``: the exact item calsync wrote, while the rows are still its own.
    """
    if original and rows.original is not None:
        try:
            item = Item.from_bytes(rows.original)
        except ItemError:
            item = None
        if item is not None and item.uid == rows.uid:
            return item
    try:
        return _to_ical(rows)
    except (times.TimeError, LineError, ValueError) as e:
        raise ItemError(f"cannot read it from Thunderbird's database: {e}", id=rows.uid) from None


def _to_ical(rows: ItemRows) -> Item:
    out = _Out()
    comps: list[Component] = []
    master = _component(rows, rows.master, out, is_master=True)
    if not _untouched_faked_master(rows.master):
        comps.append(master)
    for exc in rows.exceptions:
        comps.append(_component(rows, exc, out, is_master=False))
    if not comps:  # a faked master without instances: show what there is
        comps.append(master)
    cal = Component("VCALENDAR", [Prop("VERSION", (), "2.0"), Prop("PRODID", (), PRODID.decode())])
    for tzid, foreign in sorted(out.tzids.items()):
        if foreign is not None:
            cal.subs.append(parse(foreign)[0])
        else:
            cal.subs.append(times.vtimezone(tzid))
    cal.subs.extend(comps)
    return Item.from_tree(cal)


def _untouched_faked_master(master: CompRows) -> bool:
    """The master Thunderbird invents for an item of overrides only, still as invented.

    Hidden so that such an item reads back as it was written; once someone
    gave it a title or anything else, it is a real master and is shown.
    """
    names = {k.upper() for k, _ in master.properties}
    return (
        "X-MOZ-FAKED-MASTER" in names
        and names <= {"X-MOZ-FAKED-MASTER", "X-MOZ-GENERATION"}
        and not master.main.get("title")
        and not (master.attendees or master.alarms or master.attachments or master.relations)
    )


def _component(rows: ItemRows, comp: CompRows, out: _Out, *, is_master: bool) -> Component:
    m = comp.main
    kind = rows.kind
    flags = comp.flags
    allday = bool(flags & Flag.EVENT_ALLDAY)
    c = Component(kind)
    props = c.props
    props.append(Prop("UID", (), rows.uid))  # raw, as the engine and the item model use it
    stored = {k.upper() for k, _ in comp.properties}
    for column, name in (("time_created", "CREATED"), ("last_modified", "LAST-MODIFIED")):
        if m.get(column) is not None:
            props.append(times.utc_prop(name, _num(m[column])))
    stamp = m.get("event_stamp" if kind == "VEVENT" else "todo_stamp")
    if stamp is not None:
        props.append(times.utc_prop("DTSTAMP", _num(stamp)))
    if m.get("title") is not None and _text(m["title"]) != "":
        props.append(Prop("SUMMARY", (), escape_text(_text(m["title"]))))
    if m.get("priority") is not None and _text(m["priority"]) != "":
        props.append(Prop("PRIORITY", (), _text(m["priority"])))
    if m.get("privacy") and "CLASS" not in stored:
        props.append(Prop("CLASS", (), escape_text(_text(m["privacy"]))))
    if m.get("ical_status"):
        props.append(Prop("STATUS", (), escape_text(_text(m["ical_status"]))))
    if m.get("recurrence_id") is not None:
        rid = out.date(
            "RECURRENCE-ID",
            m["recurrence_id"],
            m.get("recurrence_id_tz"),
            bool(flags & Flag.RECURRENCE_ID_ALLDAY),
        )
        if rid is not None:
            props.append(rid)
    duration = any(k.upper() == "DURATION" for k, _ in comp.properties)
    if kind == "VEVENT":
        dates = [("DTSTART", "event_start", allday), ("DTEND", "event_end", allday)]
    else:
        dates = [
            ("DTSTART", "todo_entry", allday),
            ("DUE", "todo_due", allday),
            ("COMPLETED", "todo_completed", False),
        ]
    for name, column, is_date in dates:
        if duration and name in ("DTEND", "DUE"):
            continue  # written from DURATION: show the DURATION the item had
        prop = out.date(name, m.get(column), m.get(column + "_tz"), is_date)
        if prop is not None:
            props.append(prop)
    if kind == "VTODO" and m.get("todo_complete") is not None and "PERCENT-COMPLETE" not in stored:
        props.append(Prop("PERCENT-COMPLETE", (), _text(m["todo_complete"])))
    if m.get("alarm_last_ack") is not None:
        props.append(times.utc_prop("X-MOZ-LASTACK", _num(m["alarm_last_ack"])))
    params: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for k1, k2, v in comp.parameters:
        if v is None or _text(v) == "":
            continue
        params[k1].append((k2, quote(_text(v))))
    for key, value in comp.properties:
        name = key.upper()
        text = _property_value(name, value, dict(params.get(name, [])))
        props.append(Prop(name, tuple(params.get(name, [])), text))
        tzid = dict(params.get(name, [])).get("TZID")
        if tzid:
            _note_tzid(out, tzid)
    if is_master:
        for line in rows.recurrence:
            prop = _line(line)
            props.append(prop)
            tzid = prop.param("TZID")
            if tzid:
                _note_tzid(out, tzid)
    for line in comp.attendees:
        props.append(_line(line))
    for line in comp.attachments:
        props.append(_line(line))
    for line in comp.relations:
        props.append(_line(line))
    for text in comp.alarms:
        roots = parse(_unfold(text))
        c.subs.extend(r for r in roots if r.name == "VALARM")
    return c


def _note_tzid(out: _Out, tzid: str) -> None:
    name = times.known_zone(tzid)
    if name is not None and name != "UTC":
        out.tzids.setdefault(name, None)


def _property_value(name: str, value: Value, params: dict[str, str | None]) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Thunderbird binds calIDateTime values of properties as PRTime integers
        return times.utc_prop(name, value).value if abs(value) > 10**12 else str(value)
    text = _text(value)
    if name == "CATEGORIES":
        return categories_to_ical(text)
    value_type = (params.get("VALUE") or "").upper()
    if name in TEXT_PROPS or value_type == "TEXT":
        return escape_text(text)
    if name in TEXT_MULTI_PROPS:
        return ",".join(escape_text(v) for v in text.split(","))
    return text


def _unfold(text: str) -> str:
    return text.replace("\r\n ", "").replace("\r\n\t", "")


def _line(text: str) -> Prop:
    line = _unfold(text).strip("\r\n")
    return parse_prop(line)


def _num(v: Value) -> int:
    if isinstance(v, int | float):
        return int(v)
    return int(str(v))


__all__ = ["CalendarRows", "escape_text", "load_calendar", "to_ical", "unescape_text"]
