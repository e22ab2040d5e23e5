"""Content hash that ignores churn.

Two serializations of the same item must hash equal when a server or client
merely re-serialized it: different PRODID or DTSTAMP, different line folding
or line endings, properties or parameters in another order, parameter values
quoted or not, VTIMEZONEs reordered, rewritten or dropped (the TZID parameters
on the item's own properties still name the zones), trailing blanks, an
upper-case N in an escaped newline, a comma or semicolon escaped or not in a
text property.  Anything a user could have edited changes the hash.

Works on bytes with a single pass over unfolded lines: it runs for every new or
changed item of a sync, so it must stay cheap.
"""

from __future__ import annotations

import re

from calsync.items.lines import LineError

try:  # BLAKE2 alone: importing hashlib loads OpenSSL first, ~2.5 ms of every start
    from _blake2 import blake2b
except ImportError:  # an interpreter without that module: the usual way
    from hashlib import blake2b

_FOLD = re.compile(rb"\r?\n[ \t]")

# Properties that change without any user edit.
IGNORED_PROPS = frozenset({b"DTSTAMP", b"PRODID"})
# Components that do not carry user content of the item itself.
IGNORED_COMPONENTS = frozenset({b"VTIMEZONE"})


def _canonical_prop(line: bytes, lineno: int) -> bytes | None:
    colon = line.find(b":")
    if colon < 0:
        raise LineError(f"no ':' in content line {line[:60]!r}", lineno)
    semi = line.find(b";")
    if semi < 0 or semi > colon:
        name = line[:colon].upper()
        if name in IGNORED_PROPS:
            return None
        return name + _value(name, line[colon:])
    name = line[:semi].upper()
    if name in IGNORED_PROPS:
        return None
    if b'"' not in line[semi:colon]:  # no quoted parameter value: plain splitting
        params = [_canonical_param(p) for p in line[semi + 1 : colon].split(b";")]
        params.sort()
        return name + b";" + b";".join(params) + _value(name, line[colon:])
    # parameters: split on ';' outside quotes, up to the first ':' outside quotes
    params = []
    i = semi + 1
    start = i
    in_quotes = False
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x22:  # '"'
            in_quotes = not in_quotes
        elif not in_quotes and (c == 0x3B or c == 0x3A):  # ';' or ':'
            params.append(_canonical_param(line[start:i]))
            if c == 0x3A:
                break
            start = i + 1
        i += 1
    else:
        raise LineError(f"no value after parameters in {line[:60]!r}", lineno)
    params.sort()
    return name + b";" + b";".join(params) + _value(name, line[i:])


# Single-valued TEXT properties: a comma or semicolon in them means the same
# escaped or not (RFC 5545 wants it escaped; many writers don't, servers re-escape).
_TEXT = frozenset({b"SUMMARY", b"DESCRIPTION", b"LOCATION", b"COMMENT", b"CONTACT"})
_TEXT_ESCAPE = re.compile(rb"\\(\\)|\\([,;:])")


def _value(name: bytes, value: bytes) -> bytes:
    """Spellings of one value that servers use interchangeably."""
    value = value.rstrip(b" \t")
    if b"\\" not in value:
        return value
    value = value.replace(b"\\N", b"\\n")
    if name in _TEXT:
        value = _TEXT_ESCAPE.sub(lambda m: m.group(0) if m.group(1) else m.group(2), value)
    return value


def _canonical_param(param: bytes) -> bytes:
    eq = param.find(b"=")
    if eq < 0:
        return param.upper()
    value = param[eq + 1 :]
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"' and value.count(b'"') == 2:
        value = value[1:-1]
    return param[:eq].upper() + b"=" + value


def canonical_form(data: bytes) -> bytes:
    """The canonical bytes of a calendar object (all its components)."""
    text = _FOLD.sub(b"", data)
    # stack of (name, props, subs)
    stack: list[tuple[bytes, list[bytes], list[bytes]]] = [(b"", [], [])]
    skip_depth = 0
    lineno = 0
    for raw in text.split(b"\n"):
        lineno += 1
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        head = line[:6].upper()
        if head == b"BEGIN:":
            name = line[6:].strip().upper()
            if skip_depth or name in IGNORED_COMPONENTS:
                skip_depth += 1
                continue
            stack.append((name, [], []))
            continue
        if head[:4] == b"END:":
            if skip_depth:
                skip_depth -= 1
                continue
            if len(stack) < 2:
                raise LineError("END without BEGIN", lineno)
            name, props, subs = stack.pop()
            if name != line[4:].strip().upper():
                raise LineError(
                    f"END:{line[4:].decode('utf-8', 'replace')} closes {name!r}", lineno
                )
            props.sort()
            subs.sort()
            stack[-1][2].append(
                b"B:" + name + b"\n" + b"\n".join(props) + b"\n" + b"".join(subs) + b"E\n"
            )
            continue
        if skip_depth:
            continue
        if len(stack) == 2 and stack[-1][0] == b"VCALENDAR":
            continue  # calendar-level properties are not item content
        prop = _canonical_prop(line, lineno)
        if prop is not None:
            stack[-1][1].append(prop)
    if len(stack) != 1 or skip_depth:
        raise LineError("a component is never closed")
    top = stack[0][2]
    top.sort()
    return b"".join(top)


def content_hash(data: bytes) -> str:
    """Hash of :func:`canonical_form`, hex."""
    return blake2b(canonical_form(data), digest_size=16).hexdigest()


def opaque_hash(data: bytes) -> str:
    """Hash of an item whose text cannot be parsed (it passes through as it is).

    What a store changes around such an item must not change it: the
    VCALENDAR lines, VTIMEZONEs, line endings and folding.  So this hashes the
    item's own components (their bytes, in order, unfolded, LF line endings);
    it never equals a ``content_hash``.
    """
    from calsync.items.split import ITEM_COMPONENTS, own_data, split

    parts = [own_data(c) for c in split(data).components if c.name in ITEM_COMPONENTS]
    lf = [p.replace(b"\r\n", b"\n").rstrip(b"\n") for p in parts or [data]]
    text = _FOLD.sub(b"", b"\n".join(lf))
    return blake2b(b"opaque\n" + text, digest_size=16).hexdigest()


def version_hash(data: bytes) -> str:
    """Cheap hash of exact bytes (for stores whose version is their content)."""
    return blake2b(data, digest_size=12).hexdigest()
