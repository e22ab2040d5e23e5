"""Known producer bugs in iCalendar 2.0 text, repaired on reading.

Why: real calendars carry the mistakes of the programs that wrote them, and
each mistake below made an item unreadable (or wrong) for every program that
must understand it, while the fix is unambiguous.  They are repaired when an
item is read; the repaired reading is what goes to the other side.

Rules:

- a repair never rewrites the source: the file stays as it is until that item
  is changed (by the user, or by a sync of an edit made elsewhere);
- only the bugs listed here are repaired, each one only where its shape leaves
  no doubt; anything else stays as it is (an item that still cannot be parsed
  then passes through as text, see ``calsync.items.item``);
- vCalendar 1.0 text (``VERSION`` other than 2.0) is never touched: quoted-
  printable and lines without a leading space are its own syntax, and the
  vCalendar reader (``calsync.items.vcal``) knows it;
- untouched lines keep their exact bytes; a repaired line is written unfolded
  again with standard folding, in the text's own line endings;
- every repair says what it did (for the log, once per item).

The repairs:

1. a line folded without the leading space (Exchange 2000): a physical line
   that begins with ``:`` or ``;`` continues the line before it (Exchange also
   indents what follows with two spaces; the value's leading blanks go);
2. quoted-printable in a 2.0 file (a vCalendar habit): in a property with
   ``ENCODING=QUOTED-PRINTABLE`` whose value has ``=`` escapes, soft line
   breaks are joined (whatever the next line looks like), ``=XX`` decoded in
   the ``CHARSET`` (default UTF-8), line breaks written as ``\\n``, and the
   ``ENCODING`` and ``CHARSET`` parameters dropped;
3. a bare property name without ``:`` (``UID`` alone on a line) is dropped:
   it carries no value (a missing UID is then derived as for any item);
4. a date-time with a seventh time digit (``20080720T0123000Z``) loses it;
5. a duration mixing weeks with days or times (Google's ``-PT1W1D2H3M4S``,
   invalid in RFC 5545) counts the weeks as days: ``-P8DT2H3M4S``.

Another producer mistake is settled rather than repaired: a file holding one
UID (and RECURRENCE-ID) twice.  ``settle_duplicates`` says which copy is the
item (RFC 5545: the higher SEQUENCE); the others are noted, and the engine
keeps them in history.  ``raw_timestamps`` reads LAST-MODIFIED, SEQUENCE and
DTSTAMP from the lines of an item that cannot be parsed (for ``newest``).

Cost: nothing of this runs for a well-formed item.  ``calsync.items.item``
decides with a few byte searches whether an item needs a look at all
(``suspect``); this module is imported only when one does.
"""

from __future__ import annotations

import re

from calsync.items.canonical import canonical_form
from calsync.items.lines import LineError, fold_bytes
from calsync.items.split import ITEM_COMPONENTS, RawComponent, split
from calsync.plain import Plain

# properties whose value is (or holds) date-times: where a seventh digit is fixed
DATE_TIME_PROPS = frozenset(
    {
        b"DTSTART",
        b"DTEND",
        b"DUE",
        b"DTSTAMP",
        b"CREATED",
        b"LAST-MODIFIED",
        b"COMPLETED",
        b"RECURRENCE-ID",
        b"EXDATE",
        b"RDATE",
        b"TRIGGER",
        b"RRULE",
        b"EXRULE",
        b"ACKNOWLEDGED",
    }
)
DURATION_PROPS = frozenset({b"DURATION", b"TRIGGER", b"REFRESH-INTERVAL"})

_SEVENTH_DIGIT = re.compile(rb"(?<![0-9])([0-9]{8}T[0-9]{6})[0-9](Z?)(?![0-9])")
_BARE_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9-]*")
# a duration as producers write it: weeks, days and time parts in any mix
_LOOSE_DURATION = re.compile(
    rb"([+-]?)P(T?)(?:([0-9]+)W)?(?:([0-9]+)D)?T?(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?"
)
_RFC_DURATION = re.compile(
    rb"[+-]?P(?:[0-9]+W|[0-9]+D(?:T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S))?"
    rb"|T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S))"
)
_QP_PARAM = re.compile(rb";(?:ENCODING=)?QUOTED-PRINTABLE(?=[;:])", re.I)
_CHARSET_PARAM = re.compile(rb';CHARSET=("[^"]*"|[^;:]*)(?=[;:])', re.I)


class Repaired(Plain):
    """The repaired text and what was repaired (one phrase each)."""

    __slots__ = ("data", "repairs")
    data: bytes
    repairs: list[str]

    def __init__(self, data: bytes, repairs: list[str]) -> None:
        self.data = data
        self.repairs = repairs


class _Line:
    """One logical line: its physical lines (as read) and its unfolded text."""

    __slots__ = ("changed", "colon_fold", "dropped", "number", "physical", "text")

    def __init__(self, number: int, physical: bytes) -> None:
        self.number = number  # of its first physical line
        self.physical = [physical]
        self.text = physical.rstrip(b"\r")
        self.changed = False
        self.dropped = False
        self.colon_fold = False  # its ':' began a line of its own (Exchange 2000)

    def name(self) -> bytes:
        end = len(self.text)
        for sep in (b":", b";"):
            at = self.text.find(sep)
            if 0 <= at < end:
                end = at
        return self.text[:end].strip().upper()


def repair(data: bytes, first_line: int = 1) -> Repaired | None:
    """``data`` (an item, or one of its components) with the known bugs repaired;
    None if there was nothing to repair.  ``first_line``: the line number of
    ``data``'s first line in its file (for the messages)."""
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    repairs: list[str] = []
    lines = _logical_lines(data, first_line, repairs)
    for line in lines:
        if line.dropped:
            continue
        _repair_value(line, repairs)
    if not repairs:
        return None
    out: list[bytes] = []
    for line in lines:
        if line.dropped:
            continue
        if line.changed:
            out.append(fold_bytes(line.text, newline) + newline)
        else:
            out.extend(p + b"\n" for p in line.physical)
    text = b"".join(out)
    if not data.endswith(b"\n"):
        text = text[: -len(newline)] if text.endswith(newline) else text.rstrip(b"\r\n")
    return Repaired(text, repairs)


def _logical_lines(data: bytes, first_line: int, repairs: list[str]) -> list[_Line]:
    """Group physical lines into logical ones, joining what producers folded wrongly."""
    physical = data.split(b"\n")
    if physical and physical[-1] == b"":
        physical.pop()
    lines: list[_Line] = []
    current: _Line | None = None
    for n, raw in enumerate(physical, first_line):
        text = raw.rstrip(b"\r")
        if current is not None and not _is_begin_end(current.text):
            if _soft_break(current) and not _is_begin_end(text):
                current.physical.append(raw)  # a folding space on top of it goes too
                current.text = current.text[:-1] + (text[1:] if text[:1] in b" \t" else text)
                current.changed = True
                continue
            if text[:1] in (b" ", b"\t"):  # ordinary folding
                current.physical.append(raw)
                current.text += text[1:]
                continue
            if text[:1] in (b":", b";") and _value_start(current.text) < 0:
                current.physical.append(raw)
                current.colon_fold = text[:1] == b":"
                current.text += text
                current.changed = True
                repairs.append(f"line {n}: folded without a leading space")
                continue
        current = _Line(n, raw)
        lines.append(current)
    for line in lines:
        if line.colon_fold:  # what follows the ':' was indented by two spaces
            colon = _value_start(line.text)
            line.text = line.text[: colon + 1] + line.text[colon + 1 :].lstrip(b" \t")
            continue
        if b":" in line.text or _is_begin_end(line.text) or not line.text.strip():
            continue
        bare = line.text.strip()
        if _BARE_NAME.fullmatch(bare) and bare.upper() not in (b"BEGIN", b"END"):
            line.dropped = True
            name = line.text.strip().decode("ascii")
            repairs.append(f"line {line.number}: {name} without ':' or value dropped")
    return lines


def _is_begin_end(text: bytes) -> bool:
    head = text[:6].upper()
    return head == b"BEGIN:" or head[:4] == b"END:"


def _soft_break(line: _Line) -> bool:
    """A quoted-printable value that ends with '=': the next line belongs to it."""
    if not line.text.endswith(b"="):
        return False
    colon = line.text.find(b":")
    return colon > 0 and _QP_PARAM.search(line.text[: colon + 1]) is not None


def _repair_value(line: _Line, repairs: list[str]) -> None:
    colon = _value_start(line.text)
    if colon < 0:
        return
    head, value = line.text[: colon + 1], line.text[colon + 1 :]
    name = line.name()
    if _QP_PARAM.search(head) and b"=" in value:
        decoded = _decode_qp(value, _charset(head))
        head = _CHARSET_PARAM.sub(b"", _QP_PARAM.sub(b"", head))
        value = decoded
        line.changed = True
        repairs.append(f"line {line.number}: quoted-printable {_show(name)} decoded")
    if name in DATE_TIME_PROPS and b"T" in value:
        fixed, n = _SEVENTH_DIGIT.subn(rb"\1\2", value)
        if n:
            value = fixed
            line.changed = True
            repairs.append(f"line {line.number}: {_show(name)} had a seventh time digit")
    if name in DURATION_PROPS and value[:1] in (b"P", b"+", b"-") and b"P" in value[:2]:
        fixed_duration = _duration(value.strip())
        if fixed_duration is not None:
            value = fixed_duration
            line.changed = True
            repairs.append(f"line {line.number}: {_show(name)} mixed weeks with days")
    if line.changed:
        line.text = head + value


def _show(name: bytes) -> str:
    return name.decode("ascii", "replace")


def _value_start(text: bytes) -> int:
    """The offset of the ':' that ends name and parameters (quotes respected)."""
    in_quotes = False
    for i, c in enumerate(text):
        if c == 0x22:
            in_quotes = not in_quotes
        elif c == 0x3A and not in_quotes:
            return i
    return -1


def _charset(head: bytes) -> str:
    found = _CHARSET_PARAM.search(head)
    if found is None:
        return "utf-8"
    return found.group(1).strip(b'"').decode("ascii", "replace") or "utf-8"


def _decode_qp(value: bytes, charset: str) -> bytes:
    import quopri  # only for the rare file that needs it

    raw = quopri.decodestring(value)
    try:
        text = raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return text.encode("utf-8")


def _duration(value: bytes) -> bytes | None:
    """An RFC 5545 duration for a loose one that is not; None if it is fine or unknown."""
    if _RFC_DURATION.fullmatch(value):
        return None
    m = _LOOSE_DURATION.fullmatch(value)
    if m is None:
        return None
    sign, _, weeks, days, hours, minutes, seconds = m.groups()
    total_days = int(weeks or 0) * 7 + int(days or 0)
    out = sign + b"P"
    if total_days:
        out += b"%dD" % total_days
    time = b""
    if hours:
        time += b"%dH" % int(hours)
    if minutes:
        time += b"%dM" % int(minutes)
    if seconds:
        time += b"%dS" % int(seconds)
    if time:
        out += b"T" + time
    if not total_days and not time:
        out += b"T0S"
    return out


# -- duplicates and timestamps, read from a component's lines ------------------------

_TOP_VALUE = {
    name: re.compile(rb"^" + name + rb"(?:;[^:\r\n]*)?:[ \t]*(.*?)[ \t]*\r?$", re.M | re.I)
    for name in (b"SEQUENCE", b"LAST-MODIFIED", b"DTSTAMP")
}


def _value_of(comp: RawComponent, name: bytes) -> str:
    found = _TOP_VALUE[name].search(comp.unfolded())
    return found.group(1).decode("latin-1") if found else ""


def _sequence(comp: RawComponent) -> int:
    try:
        return int(_value_of(comp, b"SEQUENCE") or 0)
    except ValueError:
        return 0


def settle_duplicates(
    first: RawComponent, second: RawComponent
) -> tuple[RawComponent, RawComponent, str]:
    """(winner, loser, why) of two copies of one UID and RECURRENCE-ID in a file.

    Equal content (canonical form): the first is kept, the other is an
    identical copy.  Else the higher SEQUENCE wins (RFC 5545); at equal
    SEQUENCE the newer LAST-MODIFIED, when both carry one; else the later one
    in the file (exports append: the copy written last is the newer one).
    """
    try:
        same = canonical_form(first.data) == canonical_form(second.data)
    except LineError:
        same = first.data.replace(b"\r\n", b"\n") == second.data.replace(b"\r\n", b"\n")
    if same:
        return first, second, "an identical copy"
    seq = _sequence(first), _sequence(second)
    if seq[0] != seq[1]:
        low, high = sorted(seq)
        why = f"lower SEQUENCE ({low} < {high})"
        return (first, second, why) if seq[0] > seq[1] else (second, first, why)
    modified = _value_of(first, b"LAST-MODIFIED"), _value_of(second, b"LAST-MODIFIED")
    if all(modified) and modified[0] != modified[1]:
        why = f"older LAST-MODIFIED ({min(modified)} < {max(modified)})"
        return (first, second, why) if modified[0] > modified[1] else (second, first, why)
    return second, first, "an earlier copy with the same SEQUENCE (the later one is kept)"


def raw_timestamps(data: bytes) -> tuple[str, int, str]:
    """``Item.timestamps`` of text that cannot be parsed, from its components' lines."""
    best: tuple[str, int, str] = ("", -1, "")
    for comp in split(data).components:
        if comp.name in ITEM_COMPONENTS:
            stamp = (_value_of(comp, b"LAST-MODIFIED"), _sequence(comp))
            best = max(best, (*stamp, _value_of(comp, b"DTSTAMP")))
    return best
