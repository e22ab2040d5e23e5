"""WebDAV/CalDAV XML: request bodies, and safe, tolerant multistatus parsing.

Parsing goes through ``defusedxml`` (no DTDs, no entities, no external
references), and the client caps the size of every body before it gets here,
so a hostile server can neither expand entities nor exhaust memory.  The
parser is tolerant where servers differ: element order (Xandikos puts the
sync-token after the responses), absolute or relative hrefs, several
propstats per response (only the 200 one counts; iCloud adds a 404 one).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"

NS = {"D": DAV, "C": CALDAV, "CS": CS}


def tag(ns: str, name: str) -> str:
    """Clark notation: ``{DAV:}getetag``."""
    return f"{{{ns}}}{name}"


GETETAG = tag(DAV, "getetag")
GETCTAG = tag(CS, "getctag")
SYNC_TOKEN = tag(DAV, "sync-token")
RESOURCETYPE = tag(DAV, "resourcetype")
DISPLAYNAME = tag(DAV, "displayname")
CONTENTTYPE = tag(DAV, "getcontenttype")
CALENDAR_DATA = tag(CALDAV, "calendar-data")
REPORT_SET = tag(DAV, "supported-report-set")
COMPONENT_SET = tag(CALDAV, "supported-calendar-component-set")
PRINCIPAL = tag(DAV, "current-user-principal")
HOME_SET = tag(CALDAV, "calendar-home-set")


class XmlError(ValueError):
    """The server sent something that is not a usable WebDAV XML body."""


@dataclass
class DavResponse:
    """One ``DAV:response`` of a multistatus."""

    href: str
    status: int | None = None  # response-level status (404 = member removed)
    props: dict[str, ET.Element] = field(default_factory=dict)  # from 2xx propstats only

    def text(self, name: str) -> str | None:
        elem = self.props.get(name)
        if elem is None:
            return None
        return "".join(elem.itertext())


@dataclass
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None = None


_STATUS = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})")


def parse_status(text: str | None) -> int | None:
    m = _STATUS.search(text or "")
    return int(m.group(1)) if m else None


def parse(body: bytes) -> ET.Element:
    """Parse untrusted XML safely; XmlError on anything malformed or dangerous."""
    try:
        root: ET.Element = fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as e:
        raise XmlError(f"invalid XML from the server ({type(e).__name__}: {e})") from None
    return root


def parse_multistatus(body: bytes) -> Multistatus:
    root = parse(body)
    if root.tag != tag(DAV, "multistatus"):
        raise XmlError(f"expected a DAV:multistatus, got {root.tag}")
    out = Multistatus([])
    token = root.find("D:sync-token", NS)
    if token is not None and token.text:
        out.sync_token = token.text.strip()
    for resp in root.findall("D:response", NS):
        href = resp.findtext("D:href", default="", namespaces=NS).strip()
        item = DavResponse(href, parse_status(resp.findtext("D:status", namespaces=NS)))
        for propstat in resp.findall("D:propstat", NS):
            code = parse_status(propstat.findtext("D:status", namespaces=NS))
            if code is None or not 200 <= code < 300:
                continue
            prop = propstat.find("D:prop", NS)
            if prop is None:
                continue
            for child in prop:
                item.props.setdefault(child.tag, child)
        out.responses.append(item)
    return out


def error_conditions(body: bytes) -> tuple[set[str], list[str], str]:
    """Precondition names (``no-uid-conflict``...), hrefs and description of a
    ``DAV:error`` body.  Error bodies are often HTML or empty: that gives
    nothing, not an exception."""
    if not body or b"<" not in body[:200]:
        return set(), [], ""
    try:
        root = parse(body)
    except XmlError:
        return set(), [], ""
    if root.tag != tag(DAV, "error"):
        return set(), [], ""
    names = {child.tag.rsplit("}", 1)[-1] for child in root} - {"responsedescription"}
    hrefs = [h.text.strip() for h in root.iter(tag(DAV, "href")) if h.text]
    text = " ".join(
        "".join(d.itertext()).strip() for d in root.iter(tag(DAV, "responsedescription"))
    ).strip()
    return names, hrefs, text[:300]


def is_collection(resp: DavResponse) -> bool:
    rt = resp.props.get(RESOURCETYPE)
    return rt is not None and rt.find("D:collection", NS) is not None


def is_calendar(resp: DavResponse) -> bool:
    rt = resp.props.get(RESOURCETYPE)
    return rt is not None and rt.find("C:calendar", NS) is not None


def reports(resp: DavResponse) -> set[str]:
    """Local names of the REPORTs a collection advertises."""
    rs = resp.props.get(REPORT_SET)
    if rs is None:
        return set()
    out = set()
    for report in rs.iter(tag(DAV, "report")):
        for child in report:
            out.add(child.tag.rsplit("}", 1)[-1])
    return out


def components(resp: DavResponse) -> set[str] | None:
    """The calendar's supported component names, or None when it does not say."""
    cs = resp.props.get(COMPONENT_SET)
    if cs is None:
        return None
    return {c.get("name", "").upper() for c in cs.findall("C:comp", NS)}


def href_in(resp: DavResponse, name: str) -> str | None:
    """The ``DAV:href`` inside a property (current-user-principal, calendar-home-set)."""
    elem = resp.props.get(name)
    if elem is None:
        return None
    href = elem.find("D:href", NS)
    return href.text.strip() if href is not None and href.text else None


# -- request bodies --------------------------------------------------------------

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_XMLNS = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:CS="{CS}"'


def _prop(props: list[str]) -> str:
    return "<D:prop>" + "".join(f"<{p}/>" for p in props) + "</D:prop>"


def propfind(props: list[str]) -> bytes:
    """``props`` as prefixed names: ``D:getetag``, ``CS:getctag``..."""
    return (_HEAD + f"<D:propfind {_XMLNS}>{_prop(props)}</D:propfind>").encode()


def sync_collection(token: str | None) -> bytes:
    """RFC 6578 sync-collection, level 1, ETags only.  Never a DAV:limit (servers
    that honour it cut the reply without telling; most ignore it)."""
    tok = escape(token or "")
    return (
        _HEAD + f"<D:sync-collection {_XMLNS}><D:sync-token>{tok}</D:sync-token>"
        "<D:sync-level>1</D:sync-level>"
        f"{_prop(['D:getetag', 'D:getcontenttype', 'D:resourcetype'])}</D:sync-collection>"
    ).encode()


def multiget(hrefs: list[str]) -> bytes:
    """calendar-multiget; ``hrefs`` must already be percent-encoded paths."""
    body = "".join(f"<D:href>{escape(h)}</D:href>" for h in hrefs)
    return (
        _HEAD + f"<C:calendar-multiget {_XMLNS}>{_prop(['D:getetag', 'C:calendar-data'])}"
        f"{body}</C:calendar-multiget>"
    ).encode()


def uid_query(uid: str, component: str) -> bytes:
    """calendar-query for resources whose ``component`` has this UID (substring match)."""
    return (
        _HEAD + f"<C:calendar-query {_XMLNS}>{_prop(['D:getetag'])}<C:filter>"
        f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="{escape(component)}">'
        f'<C:prop-filter name="UID"><C:text-match collation="i;octet">{escape(uid)}'
        "</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter>"
        "</C:calendar-query>"
    ).encode()


def mkcalendar(displayname: str, comps: tuple[str, ...] = ()) -> bytes:
    comp_set = ""
    if comps:
        comp_set = (
            "<C:supported-calendar-component-set>"
            + "".join(f'<C:comp name="{escape(c)}"/>' for c in comps)
            + "</C:supported-calendar-component-set>"
        )
    return (
        _HEAD + f"<C:mkcalendar {_XMLNS}><D:set><D:prop>"
        f"<D:displayname>{escape(displayname)}</D:displayname>{comp_set}"
        "</D:prop></D:set></C:mkcalendar>"
    ).encode()
