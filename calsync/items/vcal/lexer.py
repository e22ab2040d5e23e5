"""Reading vCalendar 1.0 streams into a tree of decoded properties.

Why a reader of our own and not the iCalendar one: vCalendar is byte-oriented
(each property may carry its own CHARSET and ENCODING), devices send
quoted-printable soft line breaks that look like new lines, base64 blocks
ended by a blank line, lines broken without folding whitespace, junk before
the calendar, and valueless parameters.  This reader works on bytes, repairs
what has one reading, and records what has none as an error on the component
it belongs to, with its line number, so the other entries still convert.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import logging
import re
from dataclasses import dataclass, field

from calsync.items.lines import MAX_DEPTH

log = logging.getLogger(__name__)

# Property names vCalendar 1.0 defines (plus what devices commonly add), used to
# tell a broken fold ("STATUS=NEEDS" / "ACTION;...") from a new property.
KNOWN_PROPS = frozenset(
    {
        "AALARM", "ATTACH", "ATTENDEE", "BEGIN", "CATEGORIES", "CLASS", "COMPLETED",
        "DALARM", "DAYLIGHT", "DCREATED", "DESCRIPTION", "DTEND", "DTSTART", "DUE",
        "END", "EXDATE", "EXRULE", "GEO", "LAST-MODIFIED", "LOCATION", "MALARM",
        "PALARM", "PRIORITY", "PRODID", "RDATE", "RELATED-TO", "RESOURCES", "RNUM",
        "RRULE", "SEQUENCE", "STATUS", "SUMMARY", "TRANSP", "TZ", "UID", "URL",
        "VERSION", "DTSTAMP", "ORGANIZER", "PERCENT-COMPLETE", "CREATED",
    }
)  # fmt: skip

_ENCODINGS = {
    "QUOTED-PRINTABLE": "QUOTED-PRINTABLE",
    "QP": "QUOTED-PRINTABLE",
    "BASE64": "BASE64",
    "B": "BASE64",
    "8BIT": "8BIT",
    "8-BIT": "8BIT",
    "7BIT": "7BIT",
}
_BARE_CHARSET = re.compile(r"(?i)^(utf-8|us-ascii|iso-8859-\d+|shift_jis|windows-\d+)$")
_CHARSET_ALIASES = {
    "GB 2312-80": "gb2312",
    "JIS": "iso2022_jp",
    "BIG5 LEVEL 1 AND 2": "big5",
    "CHINESE": "gb2312",
}
_BASE64_LINE = re.compile(rb"^[A-Za-z0-9+/=]+$")
_PROP_START = re.compile(rb"^[ \t]*([A-Za-z][A-Za-z0-9-]*)[ \t]*[;:]")
_QP_BYTE = re.compile(rb"=([0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(slots=True)
class VProp:
    """One property: name, parameters (normalized), raw and decoded value."""

    name: str
    params: list[tuple[str, str]]
    raw: bytes
    line: int
    text: str = ""
    data: bytes | None = None  # decoded bytes of a BASE64 value

    def param(self, key: str) -> str | None:
        key = key.upper()
        for k, v in self.params:
            if k == key:
                return v
        return None

    def other_params(self, *drop: str) -> list[tuple[str, str]]:
        """Parameters except the transfer ones (and ``drop``), for carrying along."""
        skip = {"ENCODING", "CHARSET", *drop}
        return [(k, v) for k, v in self.params if k not in skip]


@dataclass
class VComp:
    """A component (VCALENDAR, VEVENT, VTODO...) with its own properties."""

    name: str
    line: int
    props: list[VProp] = field(default_factory=list)
    subs: list[VComp] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    start: int = 0  # byte offsets in the source, for a stable derived UID
    end: int = 0
    implicit: bool = False  # a VCALENDAR wrapped around bare components

    def get(self, name: str) -> VProp | None:
        for p in self.props:
            if p.name == name:
                return p
        return None

    def all(self, name: str) -> list[VProp]:
        return [p for p in self.props if p.name == name]


@dataclass
class Reader:
    """State of one read: the source name for messages and the declared charsets."""

    source: str
    charsets: list[str] = field(default_factory=list)

    def warn(self, line: int, message: str) -> None:
        log.warning("%s: line %d: %s", self.source, line, message)


def _physical_lines(data: bytes) -> list[tuple[bytes, int, int]]:
    """(line without its ending, 1-based number, byte offset) for every line."""
    sep = b"\n" if b"\n" in data or b"\r" not in data else b"\r"
    out: list[tuple[bytes, int, int]] = []
    pos = 0
    for number, chunk in enumerate(data.split(sep), 1):
        line = chunk[:-1] if chunk.endswith(b"\r") else chunk
        out.append((line, number, pos))
        pos += len(chunk) + len(sep)
    return out


def _head(line: bytes) -> bytes | None:
    """The part before the first ':' outside double quotes, or None."""
    quoted = False
    for i, c in enumerate(line):
        if c == 0x22:
            quoted = not quoted
        elif c == 0x3A and not quoted:
            return line[:i]
    return None


def _is_begin_end(line: bytes) -> bool:
    upper = line.lstrip().upper()
    return upper.startswith((b"BEGIN:", b"END:"))


def _looks_like_property(line: bytes) -> bool:
    m = _PROP_START.match(line)
    if not m:
        return False
    name = m.group(1).decode("ascii").upper()
    return name in KNOWN_PROPS or name.startswith("X-")


def _logical_lines(data: bytes, reader: Reader) -> list[tuple[bytes, int, int, int]]:
    """Unfolded logical lines: (bytes, line number, start offset, end offset).

    Handles whitespace folding (one blank removed, as iCalendar and nearly all
    devices do), quoted-printable soft line breaks (a value ending in '='
    continues on the next line verbatim), base64 blocks continued on bare lines,
    and lines broken without folding whitespace (a line with no ':' joined to a
    following line that is not a property of its own).
    """
    lines = _physical_lines(data)
    out: list[tuple[bytes, int, int, int]] = []
    i, n = 0, len(lines)
    while i < n:
        text, number, offset = lines[i]
        i += 1
        if not text.strip():
            continue
        if text[:1] in (b" ", b"\t"):
            reader.warn(number, "continuation line without a property before it; skipped")
            continue
        logical = text
        end = offset + len(text)
        while True:
            head = _head(logical)
            upper_head = (head or b"").upper()
            qp = b"QUOTED-PRINTABLE" in upper_head
            b64 = b"BASE64" in upper_head or b"ENCODING=B" in upper_head
            while i < n:
                nxt, _, noff = lines[i]
                if qp and logical.endswith(b"=") and head is not None:
                    if _is_begin_end(nxt):
                        break
                    logical = logical[:-1] + nxt
                elif nxt[:1] in (b" ", b"\t") and nxt.strip():
                    logical += nxt[1:]
                elif b64 and nxt.strip() and _BASE64_LINE.match(nxt.strip()):
                    logical += nxt.strip()
                else:
                    break
                end = noff + len(nxt)
                i += 1
            if head is not None or _is_begin_end(logical):
                break
            # no ':' at all: a line broken without folding whitespace?
            j = i
            while j < n and not lines[j][0].strip():
                j += 1
            if j < n and not _is_begin_end(lines[j][0]) and not _looks_like_property(lines[j][0]):
                reader.warn(number, "line without ':' joined with the next line (broken folding)")
                logical = logical + b" " + lines[j][0].lstrip()
                end = lines[j][2] + len(lines[j][0])
                i = j + 1
                continue
            break
        out.append((logical, number, offset, end))
    return out


def _split_params(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    parts: list[bytes] = []
    quoted = False
    start = 0
    for i, c in enumerate(head):
        if c == 0x22:
            quoted = not quoted
        elif c == 0x3B and not quoted:
            parts.append(head[start:i])
            start = i + 1
    parts.append(head[start:])
    name = parts[0].strip().decode("ascii", "replace").upper()
    params: list[tuple[str, str]] = []
    for raw in parts[1:]:
        piece = raw.strip().decode("utf-8", "replace")
        if not piece:
            continue
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip().upper()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if key == "ENCODING":
                value = _ENCODINGS.get(value.upper(), value.upper())
            if key:
                params.append((key, value))
        elif piece.upper() in _ENCODINGS:
            params.append(("ENCODING", _ENCODINGS[piece.upper()]))
        elif _BARE_CHARSET.match(piece):
            params.append(("CHARSET", piece))
        else:
            params.append(("TYPE", piece))  # vCalendar: a bare value is a TYPE
    return name, params


def read(data: bytes, source: str) -> tuple[list[VComp], Reader]:
    """Parse a vCalendar stream into its top-level components (usually VCALENDARs).

    Bare components (a VEVENT without a VCALENDAR around it, as some exports
    have) are wrapped in an implicit VCALENDAR.  Problems inside a component are
    recorded in its ``errors``; junk outside any component is skipped with a
    warning.
    """
    reader = Reader(source)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    roots: list[VComp] = []
    stack: list[VComp] = []
    too_deep = 0  # BEGINs skipped past MAX_DEPTH (their ENDs are skipped too)
    for logical, number, start, end in _logical_lines(data, reader):
        head = _head(logical)
        if head is None:
            message = f"line without ':' ({logical[:40]!r}); skipped"
            if stack:
                reader.warn(number, message)
            else:
                reader.warn(number, f"text outside any calendar: {message}")
            continue
        name, params = _split_params(head)
        value = logical[len(head) + 1 :]
        if name in ("BEGIN", "END"):
            what = value.decode("utf-8", "replace").strip().upper()
            if params or not re.fullmatch(r"[A-Z0-9-]+", what):
                target = stack[-1] if stack else None
                shown = logical[:60].decode("utf-8", "replace")
                problem = f"malformed {name} line {shown!r}"
                if target is not None:
                    target.errors.append((number, problem))
                else:
                    reader.warn(number, problem + "; skipped")
                continue
            if name == "BEGIN" and len(stack) >= MAX_DEPTH:
                if not too_deep:  # the entry holding it fails, not the stream
                    entry = stack[1] if len(stack) > 1 else stack[0]
                    entry.errors.append((number, f"components nested more than {MAX_DEPTH} deep"))
                too_deep += 1
                continue
            if name == "END" and too_deep:
                too_deep -= 1
                continue
            if name == "BEGIN":
                if what == "VCALENDAR" and len(stack) == 1 and stack[0].implicit:
                    stack.pop().end = start
                comp = VComp(what, number, start=start)
                if stack:
                    stack[-1].subs.append(comp)
                elif what == "VCALENDAR":
                    roots.append(comp)
                else:
                    wrapper = VComp("VCALENDAR", number, start=start, implicit=True)
                    wrapper.subs.append(comp)
                    roots.append(wrapper)
                    stack.append(wrapper)
                stack.append(comp)
                continue
            names = [c.name for c in stack]
            if what not in names:
                if stack:
                    opened = stack[-1]
                    opened.errors.append(
                        (
                            number,
                            f"END:{what} does not close BEGIN:{opened.name} (line {opened.line})",
                        )
                    )
                else:
                    reader.warn(number, f"END:{what} without BEGIN; skipped")
                continue
            while stack and stack[-1].name != what:
                unclosed = stack.pop()
                unclosed.errors.append(
                    (
                        unclosed.line,
                        f"BEGIN:{unclosed.name} is closed by END:{what} at line {number}",
                    )
                )
                unclosed.end = start
            closed = stack.pop()
            closed.end = end
            continue
        if not stack:
            reader.warn(number, f"text outside any calendar ({logical[:40]!r}); skipped")
            continue
        prop = VProp(name, params, value, number)
        stack[-1].props.append(prop)
        charset = prop.param("CHARSET")
        if charset and charset not in reader.charsets:
            reader.charsets.append(charset)
    while stack:
        comp = stack.pop()
        if comp.implicit:
            comp.end = len(data)
            continue
        comp.errors.append((comp.line, f"BEGIN:{comp.name} is never closed"))
        comp.end = len(data)
    for root in roots:
        _decode_tree(root, reader)
    return roots, reader


# -- value decoding -------------------------------------------------------------


def qp_decode(raw: bytes) -> bytes:
    """Quoted-printable to bytes; a stray '=' stays as it is (devices write them)."""
    return _QP_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def b64_decode(raw: bytes) -> bytes:
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return base64.b64decode(cleaned[: len(cleaned) // 4 * 4] or b"")


def codec_for(charset: str | None) -> str | None:
    if not charset:
        return None
    name = _CHARSET_ALIASES.get(charset.strip().upper(), charset.strip())
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None, reader: Reader, line: int) -> str:
    """Bytes to text: the declared charset, else UTF-8, else a charset the file
    declares elsewhere (Shift_JIS files often leave it off some lines), else
    Windows-1252."""
    declared = codec_for(charset)
    if charset and declared is None:
        reader.warn(line, f"unknown CHARSET {charset!r}; guessing")
    if declared:
        try:
            return data.decode(declared)
        except UnicodeDecodeError:
            reader.warn(line, f"value is not valid {charset}; guessing its charset")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for other in reader.charsets:
        codec = codec_for(other)
        if codec and codec not in ("utf-8", "ascii"):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                continue
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_tree(comp: VComp, reader: Reader) -> None:
    for prop in comp.props:
        _decode_prop(prop, reader)
    for sub in comp.subs:
        _decode_tree(sub, reader)


def _decode_prop(prop: VProp, reader: Reader) -> None:
    encoding = (prop.param("ENCODING") or "").upper()
    raw = prop.raw
    if encoding == "QUOTED-PRINTABLE":
        data = qp_decode(raw)
    elif encoding == "BASE64":
        data = b64_decode(raw)
        prop.data = data
        value_type = (prop.param("VALUE") or "").upper()
        if value_type in ("BINARY", "INLINE") or prop.name == "ATTACH":
            return  # binary content: kept as bytes, not text
    else:
        data = raw
    text = decode_bytes(data, prop.param("CHARSET"), reader, prop.line)
    if encoding == "BASE64":
        prop.data = None
    prop.text = text


def control_character(text: str) -> str | None:
    """The first control character iCalendar cannot carry (TAB/CR/LF are fine)."""
    m = _CONTROL.search(text)
    return f"U+{ord(m.group()):04X}" if m else None
