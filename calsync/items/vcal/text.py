"""Text values: escaping rules of both formats, lists, and the vCalendar writer.

iCalendar TEXT escapes backslash, semicolon, comma and newline.  vCalendar 1.0
escapes only the semicolon (and devices disagree about the backslash), and
carries newlines in quoted-printable.  We read ``\\;``, ``\\,`` and ``\\\\`` as
escapes and leave any other backslash alone (``C:\\dir`` stays), and write the
smallest escaping that reads back the same.
"""

from __future__ import annotations

import base64
import re

_VCAL_ESCAPE = re.compile(r"\\([\\;,])")
_SPLIT_SEMI = re.compile(r"(?<!\\);")
_NEEDS_QUOTES = re.compile(r"[;:,]")


def vcal_unescape(text: str) -> str:
    return _VCAL_ESCAPE.sub(r"\1", text)


def vcal_escape(text: str, *, comma: bool = False) -> str:
    """Escape for a vCalendar value: backslashes only where they would read as one."""
    out = re.sub(r"\\(?=[\\;,]|$)", r"\\\\", text)
    out = out.replace(";", "\\;")
    if comma:
        out = out.replace(",", "\\,")
    return out


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash (escapes stay in the parts)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def vcal_list(text: str) -> list[str]:
    """A vCalendar list value (CATEGORIES, RESOURCES): ';' separated, or ',' when
    the writer used commas throughout (Outlook)."""
    parts = split_unescaped(text, ";")
    if len(parts) == 1:
        parts = split_unescaped(text, ",")
    return [vcal_unescape(p).strip() for p in parts if p.strip()]


def ical_escape(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ical_unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "nN":
                out.append("\n")
            elif nxt in "\\;,":
                out.append(nxt)
            else:
                out.append(c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def ical_list(text: str) -> list[str]:
    return [ical_unescape(p) for p in split_unescaped(text, ",")]


def ical_join(values: list[str]) -> str:
    return ",".join(ical_escape(v) for v in values)


def opaque_to_ical(text: str) -> str:
    """An unknown or X- value: kept as it is, line breaks as iCalendar writes them."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def quote_param(value: str) -> str:
    return f'"{value}"' if _NEEDS_QUOTES.search(value) and '"' not in value else value


# -- writing vCalendar lines -----------------------------------------------------------

_QP_SAFE = frozenset(range(33, 127)) - {ord("=")}
LINE_LIMIT = 75


def _qp_tokens(data: bytes) -> list[str]:
    tokens: list[str] = []
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte in _QP_SAFE or (byte == 0x20 and i != last):
            tokens.append(chr(byte))
        else:
            tokens.append(f"={byte:02X}")
    return tokens


def vcal_line(
    name: str,
    params: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    value: str,
    *,
    binary: bytes | None = None,
) -> list[str]:
    """Physical lines of one property.  ASCII values on one line are written as
    they are (unfolded: vCalendar and iCalendar readers unfold whitespace
    differently); anything else in quoted-printable UTF-8 with soft line
    breaks; binary data in base64 ended by a blank line."""
    params = [(k, v) for k, v in params if k not in ("ENCODING", "CHARSET")]
    if binary is not None:
        head = _head(name, [*params, ("ENCODING", "BASE64")])
        encoded = base64.b64encode(binary).decode("ascii")
        chunks = [encoded[i : i + 72] for i in range(0, len(encoded), 72)] or [""]
        return [head + ":", *(" " + c for c in chunks), ""]
    ascii_only = value.isascii()
    head = _head(name, params)
    if ascii_only and "\n" not in value and "\r" not in value and not value.endswith("="):
        return [f"{head}:{value}"]  # long lines are not folded: readers unfold differently
    extra = [] if ascii_only else [("CHARSET", "UTF-8")]
    head = _head(name, [*params, *extra, ("ENCODING", "QUOTED-PRINTABLE")])
    data = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    lines: list[str] = []
    current = head + ":"
    opened = False  # something written after the head
    for token in _qp_tokens(data):
        if opened and len(current) + len(token) > LINE_LIMIT:
            lines.append(current + "=")
            current = ""
        if not current and token in (" ", "\t", "B", "b", "E", "e"):
            # a blank opening a line would read as folding; "BEGIN:"/"END:" as structure
            token = f"={ord(token):02X}"
        current += token
        opened = True
    lines.append(current)
    return lines


def _head(name: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return name
    return name + "".join(f";{k}={quote_param(v)}" for k, v in params)
