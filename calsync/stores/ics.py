"""ics store: one ``.ics`` file holding many items.

What Sunbird/Lightning export and phones' PC suites write.  The machinery of
one-file stores (read once per sync, buffered writes, one atomic rewrite, never
clobbering another program's change, a cache that skips parsing an unchanged
file) is in ``_single``; this module says how an .ics file is split and how
it is rewritten: every item not touched, and the calendar's own properties
(X-WR-CALNAME...), stay byte-for-byte; a changed item is replaced where it
stands, a new one goes at the end of the calendar, with the VTIMEZONEs it
needs that the file lacks.
"""

from __future__ import annotations

from typing import ClassVar

from calsync.items import Item
from calsync.items.canonical import version_hash
from calsync.items.item import PRODID, Grouped
from calsync.items.split import ITEM_COMPONENTS, is_closed, own_data, split
from calsync.stores import ItemRejected, NotFound, Option
from calsync.stores._single import SingleFileStore, to_newline

EMPTY_CALENDAR = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:" + PRODID + b"\r\nEND:VCALENDAR\r\n"

# what is written for one item: its components, and the VTIMEZONEs it uses
Payload = tuple[bytes, dict[str, bytes]]


def _version(data: bytes) -> str:
    """An item's version: its bytes, whatever their line endings.

    A tool that rewrites the whole file with LF for CRLF (or the reverse)
    changes no item: with the line endings in the version, the next sync read
    and compared every item of the file (~4 s at 10k items) to find nothing."""
    return version_hash(data.replace(b"\r\n", b"\n"))


class IcsStore(SingleFileStore[Payload]):
    type = "ics"
    empty_file = EMPTY_CALENDAR
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "the .ics file (created empty if missing)", required=True),
    }

    _grouped: Grouped | None = None

    # -- parsing --------------------------------------------------------------------

    def _parsed(self) -> bool:
        return self._grouped is not None

    def _forget_parse(self) -> None:
        self._grouped = None

    def _parse(self) -> None:
        """Split the file and index it by UID."""
        assert self._data is not None
        self._grouped = Grouped(self._data, str(self.path))
        grouped = self._grouped
        self._versions = {  # of all its copies: an edit to a dropped duplicate counts
            uid: _version(b"".join(c.data for c in grouped.members(uid)))
            for uid in grouped.groups
            if uid not in grouped.errors
        }
        self._errors = {uid: str(e) for uid, e in self._grouped.errors.items()}

    def _index_grouped(self) -> Grouped:
        self._index()
        assert self._grouped is not None
        return self._grouped

    def get(self, id: str) -> tuple[Item, str]:
        grouped = self._index_grouped()
        if id not in grouped.groups:
            raise self.error(NotFound, "no item with this UID in the file", id)
        return grouped.item(id), self._versions.get(id, "")

    # -- writing --------------------------------------------------------------------

    def _encode(self, item: Item) -> tuple[Payload, str]:
        """The item's own components and VTIMEZONEs, in the file's line-ending style."""
        newline = self._index_grouped().split.newline
        parts = split(item.raw)
        comps = [c for c in parts.components if c.name in ITEM_COMPONENTS]
        if not comps:
            raise self.error(ItemRejected, "no VEVENT, VTODO or VJOURNAL", item.uid)
        for c in comps:
            if not is_closed(c):  # it would swallow the items after it in the file
                raise self.error(
                    ItemRejected,
                    f"its {c.name} is never closed (no END:{c.name}); it cannot go into "
                    "a file with other items",
                    item.uid,
                )
        body = b"".join(to_newline(c.data, newline) for c in comps)
        tzs = {
            c.tzid: to_newline(c.data, newline)
            for c in parts.components
            if c.name == "VTIMEZONE" and c.tzid
        }
        return (body, tzs), _version(body)

    def _render(self) -> bytes:
        grouped = self._index_grouped()
        assert self._data is not None
        data = memoryview(self._data)  # slices without copies: the file is rendered once
        parts = grouped.split
        newline = parts.newline
        out: list[bytes | memoryview] = []
        pos = 0
        done: set[str] = set()
        present_tz = set(grouped.timezones)
        new_tz: dict[str, bytes] = {}
        for p in self._pending.values():
            for tzid, tz in (p.payload[1] if p.payload else {}).items():
                if tzid not in present_tz:
                    new_tz.setdefault(tzid, tz)
        tz_written = not new_tz
        uid_of: dict[int, str] = {}
        for uid in grouped.groups:
            for c in grouped.members(uid):  # dropped duplicates go with their item
                uid_of[id(c)] = uid
        for comp in parts.components:
            if not tz_written and comp.name in ITEM_COMPONENTS:
                out.append(data[pos : comp.start])
                out.extend(new_tz.values())
                pos = comp.start
                tz_written = True
            found = uid_of.get(id(comp))  # (a VFREEBUSY with an item's UID stays)
            if found is None or found not in self._pending or self._pending[found].new:
                continue
            uid = found
            out.append(data[pos : comp.start])
            pos = comp.start + len(own_data(comp))  # not the END:VCALENDAR it ran into
            if uid not in done:
                done.add(uid)
                payload = self._pending[uid].payload
                if payload is not None:
                    out.append(payload[0])
        added = [p.payload[0] for p in self._pending.values() if p.new and p.payload]
        if parts.calendars:
            insert_at = parts.calendars[-1].end_line_start
            out.append(data[pos:insert_at])
            if not tz_written:
                out.extend(new_tz.values())
            out.extend(b for b in added if b)
            out.append(data[insert_at:])
        else:
            rest = data[pos:]
            if bytes(rest).strip():
                out.append(rest)
            if added or not tz_written:
                header = to_newline(EMPTY_CALENDAR, newline).rsplit(b"END:VCALENDAR", 1)[0]
                out.append(header)
                if not tz_written:
                    out.extend(new_tz.values())
                out.extend(b for b in added if b)
                out.append(b"END:VCALENDAR" + newline)
        return b"".join(out)
