"""The calendar item: one iCalendar object resource.

An item is every component sharing one UID (the master and its RECURRENCE-ID
overrides) plus the VTIMEZONEs they use, wrapped in a VCALENDAR.  It keeps the
bytes it was read from, so an unchanged item is written back byte-identical,
and parses lazily: most items of a sync are only routed and hashed.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from calsync.items.canonical import blake2b, canonical_form, content_hash
from calsync.items.lines import MAX_DEPTH, Component, LineError, decode_text, parse
from calsync.items.split import ITEM_COMPONENTS, RawComponent, split

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


class Item:
    """One calendar object resource (see module docstring)."""

    __slots__ = ("_hash", "_tree", "kind", "raw", "uid", "uid_derived")

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

    def __repr__(self) -> str:
        return f"Item(uid={self.uid!r}, kind={self.kind}, {len(self.raw)} bytes)"

    # -- identity -------------------------------------------------------------

    @property
    def hash(self) -> str:
        """Content hash that ignores serialization churn (see ``canonical``)."""
        if self._hash is None:
            try:
                self._hash = content_hash(self.raw)
            except LineError as e:
                raise ItemError(e.reason, id=self.uid, line=e.line) from None
        return self._hash

    @property
    def known_hash(self) -> str:
        """The hash if it was already computed, else "" (callers decide if it is worth it)."""
        return self._hash or ""

    def canonical(self) -> bytes:
        return canonical_form(self.raw)

    def validate(self, source: str | None = None, first_line: int = 1) -> None:
        """Cheap structural check: every content line has a name and a ':'.

        Much cheaper than hashing (two regex passes over the unfolded text), so
        an item can be checked before it is copied without paying for the
        canonical form.
        """
        framed = b"\n" + unfold_bytes(self.raw) + b"\n"
        if not _LINE_WITHOUT_COLON.search(framed) and not _LINE_WITHOUT_NAME.search(framed):
            return
        problem = find_malformed_line(self.raw)
        if problem is not None:
            line, text = problem
            raise ItemError(
                f"malformed content line {text[:60]!r}",
                source=source,
                id=self.uid,
                line=first_line + line - 1,
            )

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
        """Parse a single object resource (a vdir file, a CalDAV resource)."""
        fast = _fast_single(data, source)
        if fast is not None:
            return fast
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
        if not item.uid_derived:
            item.raw = data  # keep the resource byte-identical
            item.validate(source)
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
        for comp in self.components():
            lm = (comp.value("LAST-MODIFIED") or "").strip()
            try:
                seq = int((comp.value("SEQUENCE") or "0").strip())
            except ValueError:
                seq = 0
            stamp = (comp.value("DTSTAMP") or "").strip()
            best = max(best, (lm, seq, stamp))
        return best


# A logical line (a physical line and its continuations) with no ':' at all.
_NO_COLON = re.compile(
    rb"^(?![ \t\r\n])[^:\r\n]+(?:\r?\n[ \t][^:\r\n]*)*(?=\r?\n(?![ \t])|\r?\n?\Z)", re.M
)
# A line whose ':' or ';' comes first (no property name).
_NO_NAME = re.compile(rb"^[:;]", re.M)
_UID_LINE = re.compile(rb"^UID(?:;[^:\r\n]*)?:(.*?)\r?$", re.M | re.I)


def find_malformed_line(data: bytes) -> tuple[int, bytes] | None:
    """(line number, text) of the first content line without ':' or name, or None."""
    found = [m.start() for m in (_NO_COLON.search(data), _NO_NAME.search(data)) if m]
    if not found:
        return None
    start = min(found)
    end = data.find(b"\n", start)
    return data.count(b"\n", 0, start) + 1, data[start : end if end >= 0 else None].strip()


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
        if len(uids) != 1:
            return None
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
    item = Item(data, text, kind.decode())
    framed = b"\n" + u + b"\n"
    if _LINE_WITHOUT_COLON.search(framed) or _LINE_WITHOUT_NAME.search(framed):
        item.validate(source)  # raises, naming the line in the original text
    return item


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


class Grouped:
    """Components of one stream grouped into items (shared by ics-like stores)."""

    def __init__(self, data: bytes, source: str | None = None) -> None:
        self.source = source
        self.split = split(data)
        self.timezones: dict[str, RawComponent] = {}
        self.groups: dict[str, list[RawComponent]] = defaultdict(list)
        self.derived: set[str] = set()
        self.errors: dict[str, ItemError] = {}
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
                log.warning(
                    "%s: %s at line %d has no UID; using %s",
                    source or "input",
                    comp.name,
                    comp.line,
                    uid,
                )
            self.groups[uid].append(comp)
        for uid, comps in self.groups.items():
            broken = next((c for c in comps if c.error), None)
            if broken is not None:
                self.errors[uid] = ItemError(
                    f"malformed {broken.name}: {broken.error}",
                    source=source,
                    id=uid,
                    line=broken.line,
                )
                continue
            self._check_group(uid, comps)

    def _check_group(self, uid: str, comps: list[RawComponent]) -> None:
        """Same UID twice: overrides are fine, duplicates must be equal or reported."""
        seen: dict[str | None, RawComponent] = {}
        keep: list[RawComponent] = []
        for c in comps:
            key = c.recurrence_id
            if key in seen:
                first = seen[key]
                try:
                    same = canonical_form(first.data) == canonical_form(c.data)
                except LineError:
                    same = False
                if same:
                    log.warning(
                        "%s: UID %s appears twice (lines %d and %d) with equal content; "
                        "keeping one",
                        self.source or "input",
                        uid,
                        first.line,
                        c.line,
                    )
                    continue
                what = "RECURRENCE-ID " + key if key else "master component"
                self.errors[uid] = ItemError(
                    f"UID appears twice with different content ({what} at lines "
                    f"{first.line} and {c.line}); not synced until one is removed",
                    source=self.source,
                    id=uid,
                    line=c.line,
                )
                return
            seen[key] = c
            keep.append(c)
        comps[:] = keep

    def uids(self) -> list[str]:
        return list(self.groups)

    def item(self, uid: str) -> Item:
        if uid in self.errors:
            raise self.errors[uid]
        comps = self.groups[uid]
        nl = self.split.newline
        parts = [c.data for c in comps]
        if uid in self.derived:
            parts = [insert_uid(p, uid, nl) for p in parts]
        used: set[str] = set()
        for c in comps:
            used |= c.tzids_used()
        tzs = [self.timezones[t].data for t in sorted(used) if t in self.timezones]
        cal_index = comps[0].calendar
        props: list[bytes] = []
        if cal_index < len(self.split.calendars):
            props = item_cal_props(self.split.calendars[cal_index].props)
        raw = assemble(props, tzs, parts, nl)
        for c in comps:  # checked on the source slices: line numbers are the file's
            problem = find_malformed_line(c.data)
            if problem is not None:
                line, text = problem
                raise ItemError(
                    f"malformed content line {text[:60]!r}",
                    source=self.source,
                    id=uid,
                    line=c.line + line - 1,
                )
        return Item(raw, uid, comps[0].name, uid_derived=uid in self.derived)


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
