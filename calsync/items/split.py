"""Fast, byte-level splitting of iCalendar streams into top-level components.

Why not the icalendar library here: a 10k-event file must be split, indexed by
UID and hashed in well under a second, and most of its items are never looked
at again (their version did not change).  This module only finds component
boundaries and the few properties needed to route a component (UID,
RECURRENCE-ID, TZID references); full parsing is left to ``lines`` (light tree)
and to the icalendar library for the few items that need semantics.

The original bytes of every component are kept as a slice so that untouched
items can be written back byte-for-byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from calsync.items.lines import MAX_DEPTH
from calsync.plain import Plain

# A BEGIN/END line.  Folded BEGIN/END lines do not occur in practice and are
# reported as malformed by the light parser if they do.
_BEGIN_END = re.compile(
    rb"^(?:\xef\xbb\xbf)?(BEGIN|END)[ \t]*:[ \t]*([A-Za-z0-9_-]+)[ \t]*\r?$", re.M | re.I
)
# The same, anchored on the newline before it: much faster than ^ with re.M; used
# unless the stream has lower-case BEGIN/END lines or a byte-order mark.
_BEGIN_END_FAST = re.compile(rb"\n(BEGIN|END):([A-Za-z0-9_-]+)[ \t]*\r?(?=\n|$)")
_FOLD = re.compile(rb"\r?\n[ \t]")
_UID = re.compile(rb"^UID(?:;[^:\r\n]*)?:(.*?)\r?$", re.M | re.I)
_RECURRENCE_ID = re.compile(rb"^RECURRENCE-ID(?:;[^:\r\n]*)?:(.*?)\r?$", re.M | re.I)
_TZID_PARAM = re.compile(rb';TZID=(?:"([^"]*)"|([^;:,\r\n]*))', re.I)
_TZID_PROP = re.compile(rb"^TZID(?:;[^:\r\n]*)?:(.*?)\r?$", re.M | re.I)

ITEM_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})


class RawComponent(Plain):
    """One top-level component (child of VCALENDAR), as bytes of the source."""

    __slots__ = (
        "calendar",
        "data",
        "end",
        "error",
        "line",
        "name",
        "recurrence_id",
        "start",
        "tzid",
        "uid",
    )
    name: str  # upper-case component name, e.g. VEVENT
    start: int  # offset of its BEGIN line in the source
    end: int  # offset just after its END line (line ending included)
    data: bytes  # the slice source[start:end]
    line: int  # 1-based line number of BEGIN, for error messages
    calendar: int  # index of the VCALENDAR block it belongs to
    uid: str | None
    recurrence_id: str | None
    tzid: str | None  # for VTIMEZONE: its own TZID
    error: str | None  # set when its BEGIN/END lines do not balance

    def __init__(
        self,
        name: str,
        start: int,
        end: int,
        data: bytes,
        line: int,
        calendar: int,
        uid: str | None = None,
        recurrence_id: str | None = None,
        tzid: str | None = None,
        error: str | None = None,
    ) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.data = data
        self.line = line
        self.calendar = calendar
        self.uid = uid
        self.recurrence_id = recurrence_id
        self.tzid = tzid
        self.error = error

    def unfolded(self) -> bytes:
        return _FOLD.sub(b"", self.data)

    def tzids_used(self) -> set[str]:
        """TZIDs referenced by parameters of this component's properties."""
        found: set[str] = set()
        for quoted, bare in _TZID_PARAM.findall(self.unfolded()):
            tz = (quoted or bare).decode("utf-8", "replace").strip()
            if tz:
                found.add(tz)
        return found


class CalendarBlock(Plain):
    """One BEGIN:VCALENDAR ... END:VCALENDAR block and its own properties."""

    __slots__ = ("end", "end_line_start", "props", "start")
    start: int
    end: int
    end_line_start: int  # offset of the END:VCALENDAR line (where to insert)
    props: list[bytes]  # raw (folded) property lines

    def __init__(
        self, start: int, end: int, end_line_start: int, props: list[bytes] | None = None
    ) -> None:
        self.start = start
        self.end = end
        self.end_line_start = end_line_start
        self.props = props if props is not None else []


class SplitResult(Plain):
    __slots__ = ("calendars", "components", "newline")
    components: list[RawComponent]
    calendars: list[CalendarBlock]
    newline: bytes  # the source's line ending, for writing new content in its style

    def __init__(
        self, components: list[RawComponent], calendars: list[CalendarBlock], newline: bytes
    ) -> None:
        self.components = components
        self.calendars = calendars
        self.newline = newline


def _nested_spans(unfolded: bytes) -> list[tuple[int, int]]:
    """Byte spans of sub-components (VALARM, STANDARD...) inside one component."""
    if unfolded.count(b"BEGIN:") + unfolded.count(b"begin:") <= 1:
        return []
    marks = [(m.start(), m.group(1).upper()) for m in _BEGIN_END.finditer(unfolded)]
    spans: list[tuple[int, int]] = []
    depth = 0
    start_nested = 0
    for offset, kind in marks[1:-1]:  # skip the component's own BEGIN and END
        if kind == b"BEGIN":
            if depth == 0:
                start_nested = offset
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                spans.append((start_nested, offset))
    return spans


def _first_outside(
    pattern: re.Pattern[bytes], unfolded: bytes, spans: list[tuple[int, int]]
) -> bytes | None:
    """The first match of ``pattern`` outside the nested ``spans``."""
    for m in pattern.finditer(unfolded):
        if not any(a <= m.start() < b for a, b in spans):
            return m.group(1)
    return None


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return value.decode("latin-1").strip()


def split(data: bytes) -> SplitResult:
    """Split ``data`` into its top-level components, leniently.

    Accepts several VCALENDAR blocks in one stream, a byte-order mark, and
    components with no VCALENDAR around them (seen in real exports).  A
    component with unbalanced BEGIN/END lines is kept with ``error`` set, so the
    caller can report that one item and go on with the others.
    """
    head = data[:4096]
    newline = b"\r\n" if b"\r\n" in head or b"\n" not in head else b"\n"
    components: list[RawComponent] = []
    calendars: list[CalendarBlock] = []
    current_cal: CalendarBlock | None = None
    cal_body_start = 0
    prop_spans: list[tuple[int, int]] = []
    # the open top-level component: (name, start offset, line) and its nesting
    top: tuple[str, int, int] | None = None
    nested: list[str] = []
    too_deep = 0  # BEGINs inside the open component skipped past MAX_DEPTH
    top_error: str | None = None

    counted = [0, 1]  # (offset, line number at offset): offsets only grow, so count forward

    def line_no(offset: int) -> int:
        last, line = counted
        if offset < last:
            return data.count(b"\n", 0, offset) + 1
        line += data.count(b"\n", last, offset)
        counted[0], counted[1] = offset, line
        return line

    def close_top(end: int, error: str | None) -> None:
        nonlocal top, top_error, cal_body_start, too_deep
        assert top is not None
        name, start, line = top
        comp = RawComponent(
            name=name,
            start=start,
            end=end,
            data=data[start:end],
            line=line,
            calendar=len(calendars),
        )
        comp.error = error
        _route(comp)
        components.append(comp)
        top, top_error = None, None
        nested.clear()
        too_deep = 0
        if current_cal is not None:
            cal_body_start = end

    for m in _begin_end_lines(data):
        kind = m.group(1).upper()
        name = m.group(2).decode("ascii").upper()
        line_end = m.end()
        if data[line_end : line_end + 1] == b"\n":
            line_end += 1
        if kind == b"BEGIN":
            if top is None:
                if name == "VCALENDAR":
                    if current_cal is not None:  # a VCALENDAR never closed: close it here
                        prop_spans.append((cal_body_start, m.start()))
                        current_cal.end = current_cal.end_line_start = m.start()
                        current_cal.props = _prop_lines(data, prop_spans)
                        calendars.append(current_cal)
                    current_cal = CalendarBlock(start=m.start(), end=-1, end_line_start=-1)
                    cal_body_start = line_end
                    prop_spans = []
                    continue
                if current_cal is not None:
                    prop_spans.append((cal_body_start, m.start()))
                top = (name, m.start(), line_no(m.start()))
                continue
            if name in ITEM_COMPONENTS or name in ("VTIMEZONE", "VCALENDAR"):
                # a new top-level component while one is open: that one was never closed
                close_top(m.start(), top_error or f"BEGIN:{top[0]} is never closed")
                if name == "VCALENDAR":
                    continue
                if current_cal is not None:
                    prop_spans.append((cal_body_start, m.start()))
                top = (name, m.start(), line_no(m.start()))
                continue
            if len(nested) + 2 >= MAX_DEPTH:  # VCALENDAR, the component, its subs
                top_error = top_error or f"components nested more than {MAX_DEPTH} deep"
                too_deep += 1
                continue
            nested.append(name)
            continue
        # END line
        if top is not None and too_deep:
            too_deep -= 1
            continue
        if top is None:
            if name == "VCALENDAR" and current_cal is not None:
                prop_spans.append((cal_body_start, m.start()))
                current_cal.end = line_end
                current_cal.end_line_start = m.start()
                current_cal.props = _prop_lines(data, prop_spans)
                calendars.append(current_cal)
                current_cal = None
            elif current_cal is not None:
                # a stray END (the rest of a broken item) is no calendar property
                prop_spans.append((cal_body_start, m.start()))
                cal_body_start = line_end
            # else: a stray END outside any calendar (END:VCALENDAR twice): ignore
            continue
        if nested and nested[-1] == name:
            nested.pop()
            continue
        if name == top[0]:
            if nested:
                top_error = top_error or f"BEGIN:{nested[-1]} is never closed"
            close_top(line_end, top_error)
            continue
        if name in nested:  # an inner END skipped some levels
            while nested and nested[-1] != name:
                nested.pop()
            nested.pop()
            top_error = top_error or f"END:{name} skips an unclosed component"
            continue
        top_error = top_error or f"END:{name} at line {line_no(m.start())} closes BEGIN:{top[0]}"
    if top is not None:
        close_top(len(data), top_error or f"BEGIN:{top[0]} is never closed")
    if current_cal is not None:
        prop_spans.append((cal_body_start, len(data)))
        current_cal.end = current_cal.end_line_start = len(data)
        current_cal.props = _prop_lines(data, prop_spans)
        calendars.append(current_cal)
    return SplitResult(components=components, calendars=calendars, newline=newline)


def _quick_value(data: bytes, upper: bytes, name: bytes) -> bytes | bool | None:
    """The value of property ``name`` by plain finds, when that is unambiguous.

    Returns None when the property is absent, False when a sub-component comes
    first (the slow path must tell whose property it is).
    """
    pos = -1
    for sep in (b":", b";"):
        found = upper.find(b"\n" + name + sep)
        if found >= 0 and (pos < 0 or found < pos):
            pos = found
    if pos < 0:
        return None if b"\n" + name not in upper else False
    nested = upper.find(b"\nBEGIN:", 1)
    if 0 <= nested < pos:
        return False
    start = data.find(b":", pos) + 1
    end = data.find(b"\n", pos + 1)
    while end >= 0 and data[end + 1 : end + 2] in (b" ", b"\t"):  # folded value
        end = data.find(b"\n", end + 1)
    line = data[start : end if end >= 0 else len(data)]
    return _FOLD.sub(b"", line).rstrip(b"\r")


class _Mark:
    """A BEGIN/END line found by the fast scan (quacks like a re.Match)."""

    __slots__ = ("_end", "_groups", "_start")

    def __init__(self, start: int, end: int, kind: bytes, name: bytes) -> None:
        self._start, self._end, self._groups = start, end, (kind, name)

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self, n: int) -> bytes:
        return self._groups[n - 1]


def _begin_end_lines(data: bytes) -> Iterator[re.Match[bytes] | _Mark]:
    """Every BEGIN/END line in order; the fast pattern for well-behaved streams."""
    upper = data.upper()
    odd = (
        data.startswith(b"\xef\xbb\xbf")
        or upper.count(b"\nBEGIN") != data.count(b"\nBEGIN:")
        or upper.count(b"\nEND") != data.count(b"\nEND:")
    )
    if odd:  # lower-case, spaced or BOM-prefixed BEGIN/END lines: the general pattern
        yield from _BEGIN_END.finditer(data)
        return
    if data.startswith((b"BEGIN:", b"END:")):
        first = _BEGIN_END.match(data)
        if first is not None:
            yield first
    for m in _BEGIN_END_FAST.finditer(data):
        yield _Mark(m.start() + 1, m.end(), m.group(1), m.group(2))


def _route(comp: RawComponent) -> None:
    """Fill in the routing properties of a component (UID, RECURRENCE-ID, TZID)."""
    if comp.name == "VTIMEZONE":
        m = _TZID_PROP.search(comp.unfolded())
        comp.tzid = _decode(m.group(1)) if m else None
        return
    if comp.name not in ITEM_COMPONENTS:
        return
    upper = comp.data.upper()
    uid = _quick_value(comp.data, upper, b"UID")
    rid = _quick_value(comp.data, upper, b"RECURRENCE-ID")
    if uid is not False and rid is not False:
        comp.uid = _decode(uid) if isinstance(uid, bytes) and uid.strip() else None
        comp.recurrence_id = _decode(rid) if isinstance(rid, bytes) else None
        return
    unfolded = comp.unfolded()
    spans = _nested_spans(unfolded)
    uid = _first_outside(_UID, unfolded, spans)
    comp.uid = _decode(uid) if uid is not None and uid.strip() else None
    rid = _first_outside(_RECURRENCE_ID, unfolded, spans)
    comp.recurrence_id = _decode(rid) if rid is not None else None


def _prop_lines(data: bytes, spans: list[tuple[int, int]]) -> list[bytes]:
    """Calendar-level property lines (folded, as in the source) within ``spans``."""
    lines: list[bytes] = []
    for a, b in spans:
        chunk = data[a:b]
        for raw in re.split(rb"\r?\n(?![ \t])", chunk):
            if raw.strip():
                lines.append(raw.rstrip(b"\r\n"))
    return lines


def own_data(comp: RawComponent) -> bytes:
    """The component's bytes without what its slice ran into when it was never
    closed: the END:VCALENDAR lines (and blank lines) of the calendar around it."""
    data = comp.data
    if comp.error is None:
        return data
    end = len(data)
    while True:
        body = data[:end].rstrip(b" \t\r\n")
        start = body.rfind(b"\n") + 1
        if body[start:].strip().upper() != b"END:VCALENDAR":
            break
        end = start
    return data[:end] if end < len(data) else data


def is_closed(comp: RawComponent) -> bool:
    """Whether the component ends with its own END line (its bytes can stand
    among others in a file without swallowing what follows)."""
    body = comp.data.rstrip(b" \t\r\n")
    last = body[body.rfind(b"\n") + 1 :].strip().upper()
    return last.replace(b" ", b"").replace(b"\t", b"") == b"END:" + comp.name.encode()
