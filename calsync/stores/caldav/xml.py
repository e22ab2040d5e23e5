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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, fromstring

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"  # calendar-color, as Apple, DAVx5, Thunderbird use it

NS = {"D": DAV, "C": CALDAV, "CS": CS, "A": APPLE}


def tag(ns: str, name: str) -> str:
    """Clark notation: ``{DAV:}getetag``."""
    return f"{{{ns}}}{name}"


GETETAG = tag(DAV, "getetag")
GETLASTMODIFIED = tag(DAV, "getlastmodified")
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
CALENDAR_COLOR = tag(APPLE, "calendar-color")
PRIVILEGES = tag(DAV, "current-user-privilege-set")


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
        out.responses.append(_response(resp))
    return out


def _response(resp: ET.Element) -> DavResponse:
    """One ``DAV:response`` element: href, response-level status, 2xx properties."""
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
    return item


_MULTISTATUS = tag(DAV, "multistatus")
_RESPONSE = tag(DAV, "response")
_HREF = tag(DAV, "href")
_STATUS_TAG = tag(DAV, "status")
_PROPSTAT = tag(DAV, "propstat")
_PROP = tag(DAV, "prop")


class _Responses:
    """Parser target turning a multistatus into DavResponses as elements end.

    No tree is built: only the texts that matter are collected (href, statuses,
    and each property's text -- a property's child elements are not kept, so this
    suits text properties such as getetag and calendar-data).
    """

    def __init__(self) -> None:
        self.done: list[DavResponse] = []
        self._path: list[str] = []
        self._text: list[str] | None = None  # character data being collected
        self._resp: DavResponse | None = None
        self._props: dict[str, ET.Element] = {}  # of the current propstat
        self._code: int | None = None  # of the current propstat

    def start(self, name: str, attrib: dict[str, str]) -> None:
        path = self._path
        path.append(name)
        depth = len(path)
        if depth == 1:
            if name != _MULTISTATUS:
                raise XmlError(f"expected a DAV:multistatus, got {name}")
        elif depth == 2:
            if name == _RESPONSE:
                self._resp = DavResponse("")
        elif self._resp is None or path[1] != _RESPONSE:
            return
        elif depth == 3:
            if name in (_HREF, _STATUS_TAG):
                self._text = []
            elif name == _PROPSTAT:
                self._props, self._code = {}, None
        elif path[2] != _PROPSTAT:
            return
        elif depth == 4:
            if name == _STATUS_TAG:
                self._text = []
        elif depth == 5 and path[3] == _PROP:
            self._text = []

    def data(self, text: str) -> None:
        if self._text is not None:
            self._text.append(text)

    def end(self, name: str) -> None:
        path = self._path
        depth = len(path)
        path.pop()
        resp = self._resp
        if resp is None or depth < 2:
            return
        if depth == 2:
            if name == _RESPONSE:
                self.done.append(resp)
                self._resp = None
            return
        if self._text is not None and depth in (3, 4, 5):
            text = "".join(self._text)
            self._text = None
            if depth == 3:
                if name == _HREF:
                    resp.href = text.strip()
                else:
                    resp.status = parse_status(text)
            elif depth == 4:
                self._code = parse_status(text)
            else:
                elem = ET.Element(name)
                elem.text = text
                self._props.setdefault(name, elem)
        elif depth == 3 and name == _PROPSTAT:
            if self._code is not None and 200 <= self._code < 300:
                for key, elem in self._props.items():
                    resp.props.setdefault(key, elem)
            self._props = {}

    def close(self) -> None:
        return None


def iter_multistatus(chunks: Iterable[bytes]) -> Iterator[DavResponse]:
    """The ``DAV:response`` elements of a multistatus body, parsed as it arrives.

    Same safety as ``parse`` (defusedxml: no DTD, no entities, no external
    references); no tree is kept, so memory stays at the responses of one chunk
    plus what the caller keeps, whatever the body's size.  Only the text of each
    property is kept (see ``_Responses``).  XmlError on anything malformed --
    including a body cut short, which never parses as a complete document, so a
    caller that consumed every response knows it saw them all.
    """
    target = _Responses()
    parser = DefusedXMLParser(target=target, forbid_dtd=True)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if target.done:
                yield from target.done
                target.done = []
        parser.close()
    except (ET.ParseError, DefusedXmlException) as e:
        raise XmlError(f"invalid XML from the server ({type(e).__name__}: {e})") from None
    yield from target.done


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


def calendar_data(resp: DavResponse) -> bytes | None:
    """The resource's calendar-data as bytes, CRLF line ends restored (XML parsing
    normalises them to LF), or None when the response has none."""
    text = resp.text(CALENDAR_DATA)
    if text is None:
        return None
    data = text.encode("utf-8")
    if b"\r\n" in data:
        return data
    return data.replace(b"\n", b"\r\n")


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


def read_only(resp: DavResponse) -> bool:
    """Whether the current user's privileges (when the server says) allow no writes."""
    ps = resp.props.get(PRIVILEGES)
    if ps is None:
        return False
    granted = {p.tag.rsplit("}", 1)[-1] for priv in ps.findall("D:privilege", NS) for p in priv}
    return not granted & {"all", "write", "write-content", "bind"}


def refused_props(body: bytes) -> list[str]:
    """Names of the properties a PROPPATCH's multistatus says were not set."""
    root = parse(body)
    out = []
    for propstat in root.iter(tag(DAV, "propstat")):
        code = parse_status(propstat.findtext("D:status", namespaces=NS))
        if code is not None and 200 <= code < 300:
            continue
        prop = propstat.find("D:prop", NS)
        out += [child.tag.rsplit("}", 1)[-1] for child in (prop if prop is not None else ())]
    return out


def href_in(resp: DavResponse, name: str) -> str | None:
    """The ``DAV:href`` inside a property (current-user-principal, calendar-home-set)."""
    elem = resp.props.get(name)
    if elem is None:
        return None
    href = elem.find("D:href", NS)
    return href.text.strip() if href is not None and href.text else None


# -- request bodies --------------------------------------------------------------

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_XMLNS = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:CS="{CS}" xmlns:A="{APPLE}"'


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


def query_all() -> bytes:
    """calendar-query for every calendar object resource, with its ETag and data
    (the filter every server must accept: VCALENDAR, nothing else)."""
    return (
        _HEAD + f"<C:calendar-query {_XMLNS}>{_prop(['D:getetag', 'C:calendar-data'])}"
        '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
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


def proppatch(values: dict[str, str | None]) -> bytes:
    """PROPPATCH setting (a text) or removing (None) prefixed properties
    (``D:displayname``, ``A:calendar-color``)."""
    sets = "".join(f"<{p}>{escape(v)}</{p}>" for p, v in values.items() if v is not None)
    removes = "".join(f"<{p}/>" for p, v in values.items() if v is None)
    body = (f"<D:set><D:prop>{sets}</D:prop></D:set>" if sets else "") + (
        f"<D:remove><D:prop>{removes}</D:prop></D:remove>" if removes else ""
    )
    return (_HEAD + f"<D:propertyupdate {_XMLNS}>{body}</D:propertyupdate>").encode()


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
