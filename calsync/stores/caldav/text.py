"""Escaping free-text properties before a PUT, so servers cannot truncate them.

RFC 5545 TEXT values must escape ``,`` ``;`` and ``\\``.  Sloppy producers
write them bare, and servers that re-serialise (measured here) then damage the
value: Radicale keeps only the part before the first bare comma of a
DESCRIPTION ("a, b" -> "a"), Cyrus drops an invalid escape ("\\b" -> "b").
Escaping the single-valued free-text properties first makes the body valid, so
every server stores the full text.  Everything else stays byte-for-byte; a body
that needs nothing is returned unchanged.  UIDs are left alone (the engine
matches them byte-wise), and so are list-valued properties such as CATEGORIES.
"""

from __future__ import annotations

import re

FREE_TEXT = frozenset({b"SUMMARY", b"DESCRIPTION", b"LOCATION", b"COMMENT", b"CONTACT"})
_LINE = re.compile(rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)(\r?\n|$)")
_FOLD = re.compile(rb"\r?\n[ \t]")
_VALID_ESCAPE = frozenset(b"\\;,nN")


def _value_start(line: bytes) -> int:
    """Index of the ':' that starts the value (outside quoted parameter values)."""
    quoted = False
    for i, c in enumerate(line):
        if c == 0x22:
            quoted = not quoted
        elif c == 0x3A and not quoted:
            return i
    return -1


def _escape_value(value: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == 0x5C:  # backslash
            if i + 1 < n and value[i + 1] in _VALID_ESCAPE:
                out += value[i : i + 2]
                i += 2
                continue
            out += b"\\\\"
        elif c in (0x2C, 0x3B):  # , ;
            out += b"\\" + bytes((c,))
        else:
            out.append(c)
        i += 1
    return bytes(out)


def _fold(line: bytes, newline: bytes) -> bytes:
    """Fold at 75 octets without splitting a UTF-8 sequence."""
    if len(line) <= 75:
        return line
    parts = []
    start, limit = 0, 75
    while len(line) - start > limit:
        cut = start + limit
        while cut > start + 1 and (line[cut] & 0xC0) == 0x80:
            cut -= 1
        parts.append(line[start:cut])
        start, limit = cut, 74
    parts.append(line[start:])
    return (newline + b" ").join(parts)


def escape_free_text(raw: bytes) -> bytes:
    """``raw`` with bare ``,``/``;``/``\\`` escaped in free-text properties (see module doc)."""
    if b"," not in raw and b";" not in raw and b"\\" not in raw:
        return raw
    out: list[bytes] = []
    changed = False
    for m in _LINE.finditer(raw):
        folded, end = m.group(1), m.group(2)
        if not folded and not end:
            continue
        head = folded[:12].upper()
        name = re.split(rb"[;:]", head, maxsplit=1)[0]
        if name not in FREE_TEXT:
            out.append(folded + end)
            continue
        line = _FOLD.sub(b"", folded)
        colon = _value_start(line)
        if colon < 0:
            out.append(folded + end)
            continue
        value = line[colon + 1 :]
        escaped = _escape_value(value)
        if escaped == value:
            out.append(folded + end)
            continue
        changed = True
        newline = b"\r\n" if b"\r\n" in raw else b"\n"
        out.append(_fold(line[: colon + 1] + escaped, newline) + end)
    return b"".join(out) if changed else raw
