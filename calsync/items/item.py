"""The calendar item: one iCalendar object resource.

An item is every component sharing one UID (the master and its RECURRENCE-ID
overrides) plus the VTIMEZONEs they use, wrapped in a VCALENDAR.  It keeps the
bytes it was read from, so an unchanged item is written back byte-identical,
and parses lazily: most items of a sync are only routed and hashed.

Rules for what real producers write (issue #20):
- known producer bugs are repaired on reading (``calsync.items.repair``); the
  item carries the repaired bytes and says what was repaired (``notes``), the
  source is never rewritten;
- an item calsync still cannot parse is an item all the same: it keeps its
  bytes, hashes by them (``canonical.opaque_hash``), syncs, updates and deletes
  between stores that carry text as it is; only property merges, and stores
  that must understand it (Thunderbird, vCalendar), refuse it;
- a UID (and RECURRENCE-ID) a file holds twice is one item: the copy
  ``repair.settle_duplicates`` picks; the others travel in ``notes.dropped``
  for the history.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from calsync.items.canonical import blake2b, canonical_form, content_hash, opaque_hash
from calsync.items.lines import MAX_DEPTH, Component, LineError, decode_text, parse
from calsync.items.split import ITEM_COMPONENTS, RawComponent, own_data, split
from calsync.plain import Plain

if TYPE_CHECKING:
    import icalendar

log = logging.getLogger(__name__)

PRODID = b"-//calsync//calsync 0.1//EN"


class ItemError(ValueError):
    """An item (or file) that cannot be used, with where and why."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        id: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.id = id
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.id:
            where.append(f"item {self.id}")
        if self.line:
            where.append(f"line {self.line}")
        return f"{': '.join(where)}: {self.reason}" if where else self.reason


class ReadNotes(Plain):
    """What reading an item did about its producer's mistakes: the engine logs
    the repairs and keeps the dropped copies in history (once per item read)."""

    __slots__ = ("dropped", "repairs")
    repairs: list[str]  # what was repaired, one phrase each
    dropped: list[tuple[bytes, str]]  # a losing duplicate (a whole item) and why it lost

    def __init__(self, repairs: list[str], dropped: list[tuple[bytes, str]]) -> None:
        self.repairs = repairs
        self.dropped = dropped


class Item:
    """One calendar object resource (see module docstring)."""

    __slots__ = ("_hash", "_tree", "kind", "notes", "raw", "uid", "uid_derived")

    def __init__(
        self,
        raw: bytes,
        uid: str,
        kind: str = "VEVENT",
        *,
        uid_derived: bool = False,
        hash: str | None = None,
    ) -> None:
        self.raw = raw
        self.uid = uid
        self.kind = kind
        self.uid_derived = uid_derived
        self._hash = hash
        self._tree: Component | None = None
        self.notes: ReadNotes | None = None  # what reading it repaired or dropped

    def __repr__(self) -> str:
        return f"Item(uid={self.uid!r}, kind={self.kind}, {len(self.raw)} bytes)"

    # -- identity -------------------------------------------------------------

    @property
    def hash(self) -> str:
        """Content hash that ignores serialization churn (see ``canonical``)."""
        if self._hash is None:
            try:
                self._hash = content_hash(self.raw)
            except LineError:  # text that cannot be parsed is still an item
                self._hash = opaque_hash(self.raw)
        return self._hash

    @property
    def known_hash(self) -> str:
        """The hash if it was already computed, else "" (callers decide if it is worth it)."""
        return self._hash or ""

    def canonical(self) -> bytes:
        return canonical_form(self.raw)

    # -- parsed views ---------------------------------------------------------

    @property
    def text(self) -> str:
        return decode_text(self.raw)

    @property
    def tree(self) -> Component:
        """The VCALENDAR as a light, lossless tree (parsed once)."""
        if self._tree is None:
            try:
                roots = parse(self.text)
            except LineError as e:
                raise ItemError(e.reason, id=self.uid, line=e.line) from None
            cals = [r for r in roots if r.name == "VCALENDAR"]
            if len(cals) == 1:
                self._tree = cals[0]
            else:  # bare components, or several calendars: wrap them in one
                cal = Component("VCALENDAR")
                for r in roots:
                    if r.name == "VCALENDAR":
                        cal.props.extend(p for p in r.props if cal.get(p.name) is None)
                        cal.subs.extend(r.subs)
                    else:
                        cal.subs.append(r)
                self._tree = cal
        return self._tree

    def components(self) -> list[Component]:
        """The item's own components (master and overrides), not VTIMEZONEs."""
        return [c for c in self.tree.subs if c.name in ITEM_COMPONENTS]

    def master(self) -> Component | None:
        comps = self.components()
        for c in comps:
            if c.get("RECURRENCE-ID") is None:
                return c
        return comps[0] if comps else None

    def timezones(self) -> list[Component]:
        return [c for c in self.tree.subs if c.name == "VTIMEZONE"]

    def to_icalendar(self) -> icalendar.Calendar:
        """The item as an ``icalendar.Calendar`` (for semantic work)."""
        import icalendar

        try:
            return icalendar.Calendar.from_ical(self.raw)
        except Exception as e:  # the library raises several types
            raise ItemError(f"icalendar cannot parse it: {e}", id=self.uid) from None

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_tree(cls, cal: Component, *, newline: str = "\r\n") -> Item:
        """Build an item from a VCALENDAR tree (e.g. a merge result)."""
        comps = [c for c in cal.subs if c.name in ITEM_COMPONENTS]
        if not comps:
            raise ItemError("no VEVENT, VTODO or VJOURNAL in the calendar")
        uid = next((c.value("UID") for c in comps if c.value("UID")), None)
        if not uid:
            raise ItemError("the item has no UID")
        item = cls(cal.to_bytes(newline), uid.strip(), comps[0].name)
        return item

    @classmethod
    def from_bytes_simple(cls, data: bytes, *, source: str | None = None) -> Item | None:
        """``from_bytes`` for the common case (one well-formed resource, one UID),
        None for anything else; it never logs (a forked helper uses it)."""
        return _fast_single(data, source)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str | None = None) -> Item:
        """Parse a single object resource (a vdir file, a CalDAV resource).

        Known producer bugs are repaired (the item then carries the repaired
        bytes and says so in ``notes``); text that still cannot be parsed is
        an item all the same, kept byte for byte."""
        fast = _fast_single(data, source)
        if fast is not None:
            return fast
        repairs: list[str] = []
        if needs_a_look(data) and not _is_vcalendar_text(data):
            from calsync.items.repair import repair

            fixed = repair(data)
            if fixed is not None:
                data, repairs = fixed.data, fixed.repairs
        items, errors = items_from_stream(data, source=source)
        if errors:
            raise errors[0]
        if not items:
            raise ItemError("no VEVENT, VTODO or VJOURNAL in it", source=source)
        if len(items) > 1:
            uids = ", ".join(sorted(i.uid for i in items)[:5])
            raise ItemError(
                f"holds {len(items)} items with different UIDs ({uids}); "
                "one resource must hold one item",
                source=source,
            )
        item = items[0]
        if not item.uid_derived and not (item.notes and item.notes.dropped):
            item.raw = data  # keep the resource byte-identical (as repaired)
        if repairs:
            if item.notes is None:
                item.notes = ReadNotes(repairs, [])
            else:
                item.notes.repairs[:0] = repairs
        return item

    def with_uid(self, uid: str) -> Item:
        cal = self.tree.copy()
        for comp in cal.subs:
            if comp.name in ITEM_COMPONENTS:
                comp.set("UID", uid)
        return Item.from_tree(cal)

    def timestamps(self) -> tuple[str, int, str]:
        """(LAST-MODIFIED, SEQUENCE, DTSTAMP) of the newest component, for ``newest``.

        Timestamps are compared as UTC basic-format strings, which order correctly.
        """
        best: tuple[str, int, str] = ("", -1, "")
        try:
            comps = self.components()
        except ItemError:  # text that cannot be parsed: the three read from its lines
            from calsync.items.repair import raw_timestamps

            return raw_timestamps(self.raw)
        for comp in comps:
            lm = (comp.value("LAST-MODIFIED") or "").strip()
            try:
                seq = int((comp.value("SEQUENCE") or "0").strip())
            except ValueError:
                seq = 0
            stamp = (comp.value("DTSTAMP") or "").strip()
            best = max(best, (lm, seq, stamp))
        return best


_UID_LINE = re.compile(rb"^UID(?:;[^:\r\n]*)?:(.*?)\r?$", re.M | re.I)


def unfold_bytes(data: bytes) -> bytes:
    """Unfold content lines (CRLF or LF) with plain bytes operations."""
    return (
        data.replace(b"\r\n ", b"")
        .replace(b"\r\n\t", b"")
        .replace(b"\n ", b"")
        .replace(b"\n\t", b"")
    )


# a non-blank line without ':' (the text is framed by newlines before searching)
_LINE_WITHOUT_COLON = re.compile(rb"\n[ \t\r]*[^:\s][^:\n]*\n")
_LINE_WITHOUT_NAME = re.compile(rb"\n[:;]")


def _fast_single(data: bytes, source: str | None) -> Item | None:
    """The common case of one well-formed resource with one UID, without splitting.

    Only bytes methods and two simple regex scans: this runs for every item
    read from a vdir or a server.  Returns None when anything is unusual (no
    or several UIDs, lower-case names, BEGIN/END counts differ): the caller
    then takes the general path, which explains precisely.
    """
    u = unfold_bytes(data)
    begins = u.count(b"\nBEGIN:") + u.startswith(b"BEGIN:")
    if begins != u.count(b"\nEND:") + u.startswith(b"END:"):
        return None
    if begins > MAX_DEPTH and _too_deep(u):
        return None
    n_uid = u.count(b"\nUID:") + u.count(b"\nUID;")
    if n_uid == 0:
        return None
    if n_uid == 1:
        i = u.find(b"\nUID:")
        if i < 0:
            i = u.find(b":", u.find(b"\nUID;")) - 4
        end = u.find(b"\n", i + 5)
        uid = u[i + 5 : end if end >= 0 else len(u)].strip()
    else:  # overrides repeat the UID; anything else goes the general way
        uids = {x.strip() for x in _UID_LINE.findall(u)}
        if len(uids) != 1 or u.count(b"\nRECURRENCE-ID") < n_uid - 1:
            return None  # several items, or a duplicate to settle
        uid = uids.pop()
    if not uid:
        return None
    kind = None
    best = len(u)
    for name in (b"VEVENT", b"VTODO", b"VJOURNAL"):
        at = u.find(b"BEGIN:" + name)
        if 0 <= at < best:
            kind, best = name, at
    if kind is None:
        return None
    try:
        text = uid.decode("utf-8")
    except UnicodeDecodeError:
        text = uid.decode("latin-1")
    framed = b"\n" + u + b"\n"
    if _LINE_WITHOUT_COLON.search(framed) or _LINE_WITHOUT_NAME.search(framed):
        return None  # a line to repair, or text to pass through: the general path
    if needs_repair(u, best):
        return None
    return Item(data, text, kind.decode())


# What ``needs_repair`` looks for (see ``calsync.items.repair``): a seventh time
# digit, and weeks followed by more (a week is rare in a calendar: 'W' is searched first).
_SEVENTH_DIGIT = re.compile(rb"T[0-9]{7}")
_WEEKS_AND_MORE = re.compile(rb"W[0-9T]")  # a literal first: a fast scan
_VERSION = re.compile(rb"^VERSION(?:;[^:\r\n]*)?:[ \t]*([^\r\n]*)", re.M | re.I)


def needs_repair(unfolded: bytes, start: int = 0) -> bool:
    """Whether unfolded text (from ``start``, its first item component) may hold
    a value that ``repair`` fixes.  Three byte searches, ~1 µs: a well-formed
    item costs next to nothing, and a false alarm only costs a closer look."""
    return (
        unfolded.find(b"QUOTED-PRINTABLE", start) >= 0
        or _SEVENTH_DIGIT.search(unfolded, start) is not None
        or (b"W" in unfolded and _weeks_and_more(unfolded, start))
    )


def _weeks_and_more(unfolded: bytes, start: int) -> bool:
    """A number of weeks followed by more ('1W2D', '1WT2H')."""
    for found in _WEEKS_AND_MORE.finditer(unfolded, start):
        if unfolded[found.start() - 1 : found.start()].isdigit():
            return True
    return False


def needs_a_look(data: bytes) -> bool:
    """Whether (folded) text has a line without name or ':', or a value that
    ``repair`` may fix."""
    unfolded = unfold_bytes(data)
    framed = b"\n" + unfolded + b"\n"
    if _LINE_WITHOUT_COLON.search(framed) or _LINE_WITHOUT_NAME.search(framed):
        return True
    return needs_repair(unfolded)


def is_vcalendar(cal_props: Iterable[bytes]) -> bool:
    """Whether calendar properties say vCalendar (a VERSION other than 2.0)."""
    for p in cal_props:
        if p[:8].upper() in (b"VERSION:", b"VERSION;"):
            return _is_vcalendar_text(p)
    return False


def _is_vcalendar_text(data: bytes) -> bool:
    found = _VERSION.search(data)
    return found is not None and found.group(1).strip() != b"2.0"


_BEGIN_OR_END = re.compile(rb"(?:^|\n)(BEGIN|END):")


def _too_deep(unfolded: bytes) -> bool:
    """Are components nested more than ``MAX_DEPTH`` deep (the general path says where)?"""
    depth = 0
    for m in _BEGIN_OR_END.finditer(unfolded):
        depth += 1 if m.group(1) == b"BEGIN" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def derive_uid(components: Iterable[RawComponent]) -> str:
    """A stable UID for components that have none: from their content."""
    data = b"".join(c.data for c in components)
    try:
        digest = content_hash(data)
    except LineError:  # malformed: the exact bytes are all we can go by
        digest = blake2b(data, digest_size=16).hexdigest()
    return f"calsync-{digest[:24]}"


def assemble(
    cal_props: Iterable[bytes],
    timezones: Iterable[bytes],
    components: Iterable[bytes],
    newline: bytes = b"\r\n",
) -> bytes:
    """A VCALENDAR from raw (already serialized) parts."""
    out = [b"BEGIN:VCALENDAR" + newline]
    props = list(cal_props)
    names = {p.split(b":", 1)[0].split(b";", 1)[0].upper() for p in props}
    if b"VERSION" not in names:
        out.append(b"VERSION:2.0" + newline)
    if b"PRODID" not in names:
        out.append(b"PRODID:" + PRODID + newline)
    for p in props:
        out.append(p + newline)
    for part in (*timezones, *components):
        out.append(part if part.endswith(b"\n") else part + newline)
    out.append(b"END:VCALENDAR" + newline)
    return b"".join(out)


# Calendar-level properties that belong to a collection, not to one item.
COLLECTION_PROPS = frozenset(
    {b"X-WR-CALNAME", b"X-WR-CALDESC", b"X-WR-RELCALID", b"X-PUBLISHED-TTL", b"METHOD"}
)


def item_cal_props(props: Iterable[bytes]) -> list[bytes]:
    """The calendar properties an item extracted from a bigger file carries along."""
    keep = []
    for p in props:
        name = p.split(b":", 1)[0].split(b";", 1)[0].upper()
        if name not in COLLECTION_PROPS:
            keep.append(p)
    return keep


def insert_uid(component: bytes, uid: str, newline: bytes) -> bytes:
    """Add a UID line right after the BEGIN line of a raw component."""
    first = component.find(b"\n") + 1
    return component[:first] + b"UID:" + uid.encode() + newline + component[first:]


UNNAMED_WARNINGS = 3  # components without a UID warned about one by one, per stream


class Grouped:
    """Components of one stream grouped into items (shared by ics-like stores).

    Producers' mistakes are dealt with here, per item, never for the stream:
    known bugs are repaired (``calsync.items.repair``); text that still cannot
    be parsed is an item all the same (passed through as it is, see
    ``Item.hash``; ``_unusable`` says when it is an error); a UID whose master
    (or one RECURRENCE-ID) appears twice keeps one copy and notes the others in
    ``dropped`` (``repair.settle_duplicates``).
    """

    def __init__(self, data: bytes, source: str | None = None) -> None:
        self.source = source
        self.split = split(data)
        self.timezones: dict[str, RawComponent] = {}
        self.groups: dict[str, list[RawComponent]] = defaultdict(list)
        self.derived: set[str] = set()
        self.errors: dict[str, ItemError] = {}
        # uid -> the copies that lost to another with the same RECURRENCE-ID, and why
        self.dropped: dict[str, list[tuple[RawComponent, str]]] = {}
        unnamed = 0
        for comp in self.split.components:
            if comp.name == "VTIMEZONE":
                if comp.tzid and comp.tzid not in self.timezones:
                    self.timezones[comp.tzid] = comp
                continue
            if comp.name not in ITEM_COMPONENTS:
                continue  # VFREEBUSY, VAVAILABILITY, ...: not synced
            uid = comp.uid
            if uid is None:
                uid = derive_uid([comp])
                self.derived.add(uid)
                unnamed += 1
                if unnamed <= UNNAMED_WARNINGS:
                    log.warning(
                        "%s: %s at line %d has no UID; using %s",
                        source or "input",
                        comp.name,
                        comp.line,
                        uid,
                    )
            self.groups[uid].append(comp)
        if unnamed > UNNAMED_WARNINGS:  # one line, not one per component (a device's input)
            log.warning(
                "%s: %d more components have no UID (UIDs derived likewise)",
                source or "input",
                unnamed - UNNAMED_WARNINGS,
            )
        for uid, comps in self.groups.items():
            broken = _unusable(comps)
            if broken is not None:
                self.errors[uid] = ItemError(
                    f"malformed {broken.name}: {broken.error}",
                    source=source,
                    id=uid,
                    line=broken.line,
                )
            elif len(comps) > 1:
                self._settle(uid, comps)

    def _settle(self, uid: str, comps: list[RawComponent]) -> None:
        """Same UID twice: overrides are fine, duplicates are settled (one kept)."""
        winners: dict[str | None, RawComponent] = {}
        for c in comps:
            key = c.recurrence_id
            first = winners.get(key)
            if first is None:
                winners[key] = c
                continue
            from calsync.items.repair import settle_duplicates  # only for duplicates

            winner, loser, why = settle_duplicates(first, c)
            winners[key] = winner
            what = f"RECURRENCE-ID {key}" if key else "the master"
            self.dropped.setdefault(uid, []).append(
                (loser, f"{what} at line {loser.line}: {why} (kept line {winner.line})")
            )
        if uid in self.dropped:
            comps[:] = [c for c in comps if winners.get(c.recurrence_id) is c]

    def uids(self) -> list[str]:
        return list(self.groups)

    def members(self, uid: str) -> list[RawComponent]:
        """Every component of ``uid`` in the file, the dropped copies too, in file order."""
        comps = self.groups.get(uid, [])
        lost = [c for c, _ in self.dropped.get(uid, ())]
        return sorted([*comps, *lost], key=lambda c: c.start) if lost else comps

    def item(self, uid: str) -> Item:
        if uid in self.errors:
            raise self.errors[uid]
        comps = self.groups[uid]
        props: list[bytes] = []
        cal_index = comps[0].calendar
        if cal_index < len(self.split.calendars):
            props = item_cal_props(self.split.calendars[cal_index].props)
        vcal = is_vcalendar(props)
        repairs: list[str] = []
        parts = [self._part(c, uid, vcal, repairs) for c in comps]
        item = Item(self._assemble(comps, props, parts), uid, comps[0].name)
        item.uid_derived = uid in self.derived
        dropped = [
            (self._assemble([c], props, [self._part(c, uid, vcal, [])]), why)
            for c, why in self.dropped.get(uid, ())
        ]
        if repairs or dropped:
            item.notes = ReadNotes(repairs, dropped)
        return item

    def _part(self, comp: RawComponent, uid: str, vcal: bool, repairs: list[str]) -> bytes:
        """A component's bytes as the item carries them: repaired, with its UID."""
        data = own_data(comp)
        if not vcal and needs_a_look(data):
            from calsync.items.repair import repair

            fixed = repair(data, comp.line)
            if fixed is not None:
                data = fixed.data
                repairs += fixed.repairs
        if uid in self.derived:
            data = insert_uid(data, uid, self.split.newline)
        return data

    def _assemble(self, comps: list[RawComponent], props: list[bytes], parts: list[bytes]) -> bytes:
        used: set[str] = set()
        for c in comps:
            used |= c.tzids_used()
        tzs = [self.timezones[t].data for t in sorted(used) if t in self.timezones]
        return assemble(props, tzs, parts, self.split.newline)


def _unusable(comps: list[RawComponent]) -> RawComponent | None:
    """The component that makes a UID's group an error rather than an item.

    A component whose BEGIN/END lines do not balance is still an item (passed
    through as text), unless it is nested too deep (an attack on whatever walks
    it, not a producer's slip) or its UID has other components too (copies cut
    at each other's BEGIN lines cannot be told apart or settled)."""
    for c in comps:
        if c.error is not None and (len(comps) > 1 or "nested more than" in c.error):
            return c
    return None


def items_from_stream(
    data: bytes, *, source: str | None = None
) -> tuple[list[Item], list[ItemError]]:
    """Split any iCalendar stream into items; bad items become errors, not exceptions.

    Raises ItemError only when the stream as a whole cannot be split.
    """
    grouped = Grouped(data, source)
    items: list[Item] = []
    errors: list[ItemError] = list(grouped.errors.values())
    for uid in grouped.uids():
        if uid in grouped.errors:
            continue
        try:
            items.append(grouped.item(uid))
        except ItemError as e:
            errors.append(e)
    return items, errors


def loads_one(text: str | bytes) -> Item:
    """Convenience for tests and tools: one item from text."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return Item.from_bytes(data)


def summary_of(item: Item) -> str:
    m = item.master()
    return (m.value("SUMMARY") if m else None) or ""
