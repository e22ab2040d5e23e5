"""Mutations of real requests, from a seeded RNG (the same seed, the same requests).

Byte level, for any body: bit flips, truncation, slices duplicated (once or
many times), slices replaced by bytes parsers care about.  Structure level:
WBXML by its tokens (a tag's code or page, a missing or extra END, string
lengths and table offsets pointing anywhere, an element repeated or nested
hundreds deep), XML and JSON by their elements (repeated, nested, renamed,
an entity or a DTD slipped in).

Why a tokenizer of our own: the mutations need where each WBXML token starts
and ends, which a decoder does not tell; it reads only what a mutation needs
to find (tokens and element spans) and gives up (byte mutations instead) on
anything it does not understand.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_SIZE = 3_000_000  # mutations that would make a body larger than this are cut back

SPECIAL = [
    b"\x00",
    b"\xff",
    b"\x80",
    b"\x7f",
    b"\xc3",  # WBXML OPAQUE
    b"\x83\xff\xff\xff\x7f",  # WBXML STR_T far away
    b"<",
    b"&",
    b"&x;",
    b"]]>",
    b"<![CDATA[",
    b"<!DOCTYPE x [<!ENTITY e 'e'>]>",
    b"\r\n",
    b"%00",
    b"\xef\xbb\xbf",
    b"\xed\xa0\x80",  # a lone surrogate in UTF-8
    b"99999999999999999999",
    b"-1",
    b"null",
    b'"',
    b"[",
    b"{",
]


def _mb_uint(data: bytes, i: int) -> tuple[int, int]:
    """A WBXML multi-byte integer at ``i``: (value, next index); IndexError at the end."""
    value = 0
    for _ in range(5):
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i
    raise IndexError("integer too long")


@dataclass
class Token:
    start: int
    end: int
    kind: str  # "tag", "end", "page", "str_i", "str_t", "opaque", "other"
    closes: int = -1  # for a tag with content: the index of its END token


def wbxml_tokens(data: bytes) -> tuple[int, list[Token]] | None:
    """Where the body starts and its tokens, or None if this is not WBXML we can walk."""
    try:
        i = 1
        public_id, i = _mb_uint(data, i)
        if public_id == 0:
            _, i = _mb_uint(data, i)
        _, i = _mb_uint(data, i)  # charset
        table, i = _mb_uint(data, i)
        i += table
        body = i
        tokens: list[Token] = []
        open_tags: list[int] = []
        while i < len(data):
            b = data[i]
            start = i
            i += 1
            if b == 0x00:
                i += 1
                kind = "page"
            elif b == 0x01:
                kind = "end"
                if open_tags:
                    tokens[open_tags.pop()].closes = len(tokens)
            elif b == 0x03:
                i = data.index(b"\0", i) + 1
                kind = "str_i"
            elif b in (0x83, 0x80, 0x81, 0x82, 0x02):
                _, i = _mb_uint(data, i)
                kind = "str_t" if b == 0x83 else "other"
            elif b == 0xC3:
                length, i = _mb_uint(data, i)
                i += length
                kind = "opaque"
            elif b in (0x40, 0x41, 0x42):
                i = data.index(b"\0", i) + 1
                kind = "other"
            elif b & 0x80:  # attributes: not in SyncML
                return None
            else:
                kind = "tag"
                if b & 0x40:
                    open_tags.append(len(tokens))
            tokens.append(Token(start, min(i, len(data)), kind))
        return body, tokens
    except (IndexError, ValueError):
        return None


XML_ELEMENT = re.compile(rb"<([A-Za-z][\w:.-]*)(?:\s[^<>]*)?>(?:(?!<\1[\s>]).){0,4000}?</\1>", re.S)


class Mutator:
    """Mutated bodies from one seeded RNG; ``mutate`` names what it did."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- byte level -------------------------------------------------------------------------

    def flip(self, data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            if out:
                out[self.rng.randrange(len(out))] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def truncate(self, data: bytes) -> bytes:
        if not data:
            return data
        at = self.rng.randrange(len(data))
        if self.rng.random() < 0.5:
            return data[:at]
        return data[:at] + data[at + self.rng.randint(1, 256) :]

    def duplicate(self, data: bytes) -> bytes:
        if not data:
            return data
        at = self.rng.randrange(len(data))
        piece = data[at : at + self.rng.randint(1, max(1, len(data) // 4))]
        times = self.rng.choice([1, 2, 10, 100, 1000])
        times = max(1, min(times, (MAX_SIZE - len(data)) // max(1, len(piece))))
        where = self.rng.randrange(len(data) + 1)
        return data[:where] + piece * times + data[where:]

    def special(self, data: bytes) -> bytes:
        at = self.rng.randrange(len(data) + 1)
        cut = self.rng.choice([0, 0, 1, 4])
        return data[:at] + self.rng.choice(SPECIAL) + data[at + cut :]

    # -- WBXML tokens ----------------------------------------------------------------------

    def wbxml(self, data: bytes) -> bytes:
        walked = wbxml_tokens(data)
        if walked is None or not walked[1]:
            return self.flip(data)
        _, tokens = walked
        rng = self.rng
        tok = rng.choice(tokens)
        elements = [t for t in tokens if t.kind == "tag" and t.closes >= 0]
        what = rng.choice(["tag", "end", "page", "length", "repeat", "nest", "str_t"])
        if what == "tag" and elements:
            t = rng.choice(elements)
            return data[: t.start] + bytes([0x45 + rng.randrange(0x3A)]) + data[t.start + 1 :]
        if what == "end":
            if tok.kind == "end":  # a missing END
                return data[: tok.start] + data[tok.end :]
            return data[: tok.end] + b"\x01" + data[tok.end :]  # an extra one
        if what == "page":
            return data[: tok.start] + bytes([0x00, rng.randrange(256)]) + data[tok.start :]
        if what == "length":
            sized = [t for t in tokens if t.kind in ("opaque", "str_t")] or tokens
            t = rng.choice(sized)
            huge = rng.choice([b"\x8f\xff\xff\xff\x7f", b"\x81\x00", b"\x00", b"\xff\x7f"])
            return data[: t.start + 1] + huge + data[t.end if t.kind == "str_t" else t.start + 2 :]
        if what == "str_t":
            offset = rng.choice([b"\x00", b"\x7f", b"\x83\x00", b"\x8f\xff\xff\xff\x7f"])
            return data[: tok.start] + b"\x83" + offset + data[tok.start :]
        if not elements:
            return self.duplicate(data)
        t = rng.choice(elements)
        span = data[t.start : tokens[t.closes].end]
        if what == "repeat":
            times = max(1, min(rng.choice([2, 50, 5000, 50_000]), MAX_SIZE // max(1, len(span))))
            return data[: t.start] + span * times + data[tokens[t.closes].end :]
        depth = rng.choice([10, 65, 1000, 20_000])  # nest: the start tag again and again
        tag = data[t.start : t.start + 1]
        return data[: t.start] + tag * depth + span + b"\x01" * depth + data[tokens[t.closes].end :]

    # -- XML and JSON elements -------------------------------------------------------------

    def xml(self, data: bytes) -> bytes:
        found = list(XML_ELEMENT.finditer(data[:200_000]))
        if not found:
            return self.special(data)
        rng = self.rng
        m = rng.choice(found)
        span, name = m.group(0), m.group(1)
        what = rng.choice(["repeat", "nest", "rename", "entity", "doctype", "attribute"])
        if what == "repeat":
            times = max(1, min(rng.choice([2, 100, 10_000, 100_000]), MAX_SIZE // len(span)))
            return data[: m.start()] + span * times + data[m.end() :]
        if what == "nest":
            depth = rng.choice([10, 65, 1000, 20_000])
            open_, close = b"<%s>" % name, b"</%s>" % name
            return data[: m.start()] + open_ * depth + span + close * depth + data[m.end() :]
        if what == "rename":
            return data[: m.start() + 1] + b"x" + data[m.start() + 1 :]
        if what == "entity":
            at = m.end() - len(name) - 3
            return data[:at] + rng.choice([b"&lol;", b"&#0;", b"&#x110000;", b"&amp"]) + data[at:]
        if what == "doctype":
            dtd = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            head = data.find(b"?>")
            at = head + 2 if head >= 0 else 0
            return data[:at] + dtd + data[at:]
        at = m.start() + 1 + len(name)
        return (
            data[:at]
            + b' a="'
            + b"v" * rng.choice([1, 10_000])
            + b'"' * rng.randint(1, 2)
            + data[at:]
        )

    def json(self, data: bytes) -> bytes:
        rng = self.rng
        what = rng.choice(["nest", "repeat", "value"])
        if what == "nest":
            depth = rng.choice([10, 1000, 30_000])
            return b"[" * depth + data + b"]" * depth
        if what == "repeat" and data:
            return b"{" + b'"a": 1, ' * rng.choice([10, 10_000]) + data[1:]
        value = rng.choice([b"null", b"1e999", b"-1", b'"\\ud800"', b"[]", b"{}", b"true"])
        return re.sub(rb":\s*[^,}]+", lambda _: b": " + value, data, count=1)

    # -- choosing ----------------------------------------------------------------------------

    def mutate(self, data: bytes, structure: str | None = None) -> tuple[str, bytes]:
        """(what was done, the mutated data): one to three mutations; ``structure``
        ("wbxml", "xml", "json") adds the structural ones."""
        ops: list[tuple[str, Callable[[bytes], bytes]]] = [
            ("flip", self.flip),
            ("truncate", self.truncate),
            ("duplicate", self.duplicate),
            ("special", self.special),
        ]
        if structure is not None:
            ops += [(structure, getattr(self, structure))] * 4
        done = []
        for _ in range(self.rng.choice([1, 1, 2, 3])):
            name, op = self.rng.choice(ops)
            data = op(data)[:MAX_SIZE]
            done.append(name)
        return "+".join(done), data
