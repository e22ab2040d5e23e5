"""Large objects (OMA DS MoreData), the rules both session ends share.

An item too big for one message goes in pieces of at least ``MIN_CHUNK``
bytes, never cut inside a UTF-8 sequence; the first piece declares the whole
size, which the receiver checks once the last piece has arrived.  Sizes count
the bytes as sent: on XML, line ends travel as LF (a parser would turn CRLF
into LF anyway), so a sender that counted the CRs is forgiven them.
"""

from __future__ import annotations

MIN_CHUNK = 256


def wire_data(data: bytes | None, encoding: str | None) -> bytes:
    """An item's bytes as they travel in a message of this encoding."""
    data = data or b""
    if encoding == "xml":
        data = data.replace(b"\r\n", b"\n")  # what an XML parser will see anyway
    return data


def utf8_prefix(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``data``, not cutting a UTF-8 sequence."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end] if end > 0 else data[:limit]


def size_matches(actual: int, declared: int, data: bytes, xml: bool) -> bool:
    """Whether a reassembled object has the size its first piece declared."""
    if actual == declared:
        return True
    # an XML parser turns CRLF into LF: the sender counted the CRs
    return xml and actual <= declared <= actual + data.count(b"\n")
