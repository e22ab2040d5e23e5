"""A light, lossless tree of iCalendar content lines.

Why our own tree next to the icalendar library: merging, hashing and format
conversion work on properties as *text* (name, parameters, raw value), and must
not re-encode values they do not touch (a re-encoded DTSTART or a reordered
parameter is churn on the other side).  This tree keeps every property exactly
as written, preserves order, and serializes back with standard folding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from calsync.plain import Frozen, Plain

_FOLD = re.compile(r"\r?\n[ \t]")
# components open at once (VCALENDAR > VEVENT > VALARM is 3): deeper is not a
# calendar but an attack on whatever walks the tree recursively
MAX_DEPTH = 16
_NEEDS_QUOTES = re.compile(r"[;:,]")


class LineError(ValueError):
    """A content line that cannot be parsed."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


class Prop(Frozen):
    """One property: upper-case name, parameters in source order, raw value."""

    __slots__ = ("name", "params", "value")
    name: str
    params: tuple[tuple[str, str | None], ...]  # None: valueless (vCalendar 1.0)
    value: str

    def __init__(self, name: str, params: tuple[tuple[str, str | None], ...], value: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "value", value)

    def param(self, name: str) -> str | None:
        name = name.upper()
        for key, val in self.params:
            if key == name:
                return unquote(val) if val is not None else ""
        return None

    def with_value(self, value: str) -> Prop:
        return Prop(self.name, self.params, value)

    def with_param(self, name: str, value: str | None) -> Prop:
        name = name.upper()
        params: list[tuple[str, str | None]] = [(k, v) for k, v in self.params if k != name]
        if value is not None:
            params.append((name, quote(value)))
        return Prop(self.name, tuple(params), self.value)

    def to_line(self) -> str:
        """The unfolded content line."""
        if not self.params:
            return f"{self.name}:{self.value}"
        params = ";".join(k if v is None else f"{k}={v}" for k, v in self.params)
        return f"{self.name};{params}:{self.value}"

    def canonical(self) -> str:
        """Order- and quoting-independent form, for comparison and hashing."""
        if not self.params:
            return f"{self.name}:{self.value.rstrip()}"
        params = ";".join(sorted(k if v is None else f"{k}={unquote(v)}" for k, v in self.params))
        return f"{self.name};{params}:{self.value.rstrip()}"


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"' and value.count('"') == 2:
        return value[1:-1]
    return value


def quote(value: str) -> str:
    return f'"{value}"' if _NEEDS_QUOTES.search(value) else value


class Component(Plain):
    """A component (VCALENDAR, VEVENT, VALARM...) with properties and children."""

    __slots__ = ("name", "props", "subs")
    name: str
    props: list[Prop]
    subs: list[Component]

    def __init__(
        self, name: str, props: list[Prop] | None = None, subs: list[Component] | None = None
    ) -> None:
        self.name = name
        self.props = props if props is not None else []
        self.subs = subs if subs is not None else []

    def get(self, name: str) -> Prop | None:
        name = name.upper()
        for p in self.props:
            if p.name == name:
                return p
        return None

    def value(self, name: str) -> str | None:
        p = self.get(name)
        return p.value if p is not None else None

    def all(self, name: str) -> list[Prop]:
        name = name.upper()
        return [p for p in self.props if p.name == name]

    def set(self, name: str, value: str, params: tuple[tuple[str, str | None], ...] = ()) -> None:
        """Replace every ``name`` property by one with ``value`` (in place)."""
        name = name.upper()
        new = Prop(name, params, value)
        for i, p in enumerate(self.props):
            if p.name == name:
                self.props[i] = new
                self.props[i + 1 :] = [q for q in self.props[i + 1 :] if q.name != name]
                return
        self.props.append(new)

    def remove(self, name: str) -> None:
        name = name.upper()
        self.props = [p for p in self.props if p.name != name]

    def walk(self, name: str | None = None) -> Iterator[Component]:
        if name is None or self.name == name:
            yield self
        for sub in self.subs:
            yield from sub.walk(name)

    def children(self, name: str) -> list[Component]:
        return [c for c in self.subs if c.name == name]

    def copy(self) -> Component:
        return Component(self.name, list(self.props), [s.copy() for s in self.subs])

    def to_lines(self) -> Iterator[str]:
        yield f"BEGIN:{self.name}"
        for p in self.props:
            yield p.to_line()
        for s in self.subs:
            yield from s.to_lines()
        yield f"END:{self.name}"

    def serialize(self, newline: str = "\r\n") -> str:
        return "".join(fold(line) + newline for line in self.to_lines())

    def to_bytes(self, newline: str = "\r\n") -> bytes:
        return self.serialize(newline).encode("utf-8")


def fold(line: str, limit: int = 75) -> str:
    """Fold a content line at ``limit`` octets without splitting UTF-8 sequences."""
    encoded = line.encode("utf-8")
    if len(encoded) <= limit:
        return line
    return fold_bytes(encoded, limit=limit).decode("utf-8")


def fold_bytes(line: bytes, newline: bytes = b"\r\n", limit: int = 75) -> bytes:
    """``fold`` of an encoded line (a byte that is not UTF-8 is cut like any other)."""
    if len(line) <= limit:
        return line
    parts: list[bytes] = []
    start = 0
    width = limit
    while start < len(line):
        end = min(start + width, len(line))
        while end < len(line) and end > start + 1 and (line[end] & 0xC0) == 0x80:
            end -= 1  # do not cut inside a multi-byte character
        parts.append(line[start:end])
        start = end
        width = limit - 1  # continuation lines start with a space
    return (newline + b" ").join(parts)


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-8, else Windows-1252/Latin-1 (seen in old exports)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def unfold(text: str) -> list[str]:
    """Logical lines of ``text``, unfolded, without blank lines."""
    return [ln.rstrip("\r") for ln in _FOLD.sub("", text).split("\n") if ln.strip("\r \t")]


def parse_prop(line: str, lineno: int | None = None) -> Prop:
    """Parse one unfolded content line."""
    colon = line.find(":")
    semi = line.find(";")
    if colon < 0:
        raise LineError(f"no ':' in content line {line[:60]!r}", lineno)
    if semi < 0 or semi > colon:
        name = line[:colon].strip().upper()
        if not name:
            raise LineError(f"empty property name in {line[:60]!r}", lineno)
        return Prop(name, (), line[colon + 1 :])
    name = line[:semi].strip().upper()
    if not name:
        raise LineError(f"empty property name in {line[:60]!r}", lineno)
    params: list[tuple[str, str | None]] = []
    i = semi + 1
    n = len(line)
    while True:
        eq = i
        while eq < n and line[eq] not in "=;:":
            eq += 1
        key = line[i:eq].strip().upper()
        if eq >= n:
            raise LineError(f"unterminated parameters in {line[:60]!r}", lineno)
        if line[eq] != "=":
            # a valueless parameter (vCalendar 1.0 style: ";QUOTED-PRINTABLE")
            params.append((key, None))
            i = eq
        else:
            j = eq + 1
            in_quotes = False
            while j < n:
                c = line[j]
                if c == '"':
                    in_quotes = not in_quotes
                elif not in_quotes and c in ";:":
                    break
                j += 1
            if j >= n:
                raise LineError(f"no value after parameters in {line[:60]!r}", lineno)
            params.append((key, line[eq + 1 : j]))
            i = j
        if line[i] == ":":
            return Prop(name, tuple(params), line[i + 1 :])
        i += 1  # skip ';'


def parse(text: str) -> list[Component]:
    """Parse a stream into its top-level components (usually one VCALENDAR)."""
    roots: list[Component] = []
    stack: list[Component] = []
    for lineno, line in _numbered(text):
        if line[:6].upper() == "BEGIN:":
            if len(stack) >= MAX_DEPTH:
                raise LineError(f"components nested more than {MAX_DEPTH} deep", lineno)
            comp = Component(line[6:].strip().upper())
            if stack:
                stack[-1].subs.append(comp)
            else:
                roots.append(comp)
            stack.append(comp)
            continue
        if line[:4].upper() == "END:":
            name = line[4:].strip().upper()
            if not stack:
                raise LineError(f"END:{name} without BEGIN", lineno)
            if stack[-1].name != name:
                raise LineError(f"END:{name} closes BEGIN:{stack[-1].name}", lineno)
            stack.pop()
            continue
        if not stack:
            raise LineError(f"content outside any component: {line[:60]!r}", lineno)
        stack[-1].props.append(parse_prop(line, lineno))
    if stack:
        raise LineError(f"BEGIN:{stack[-1].name} is never closed")
    return roots


def _numbered(text: str) -> Iterable[tuple[int, str]]:
    """Unfolded logical lines with the number of their first physical line."""
    lineno = 0
    current: str | None = None
    start = 0
    for physical in text.split("\n"):
        lineno += 1
        physical = physical.rstrip("\r")
        if physical[:1] in (" ", "\t") and current is not None:
            current += physical[1:]
            continue
        if current is not None and current.strip():
            yield start, current
        current = physical
        start = lineno
    if current is not None and current.strip():
        yield start, current
