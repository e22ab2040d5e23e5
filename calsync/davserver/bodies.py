"""What a request body may be before Radicale sees it: sizes, and XML that is safe to parse.

Radicale reads a WebDAV body whole and parses it into an ElementTree, then
walks (and copies) the tree recursively: a PROPFIND nested 20k deep ended in
``RecursionError``, 150k deep crashed the whole process.  Its parser refuses
entities, but as an unhandled exception (500).  So the gateway checks a body
*while it arrives* (``calsync.gateway.caldav``), before any tree is built:

* sizes: a PUT is one calendar object, at most ``[caldav] max_size`` bytes
  (4 MB by default); any other body (PROPFIND, REPORT, PROPPATCH...) is XML
  naming properties or hrefs, at most ``MAX_XML_BODY`` (a multiget of 20,000
  hrefs fits).  A larger Content-Length is refused before a byte is read, a
  chunked body when its count passes the limit (413);
* XML (``XmlGate``): the methods Radicale parses XML for are fed, chunk by
  chunk, to defusedxml's expat SAX reader (no DTD, no entity declarations,
  no external references) with a handler counting the depth and the elements:
  deeper than ``MAX_DEPTH`` or more than ``MAX_ELEMENTS`` elements, a DTD,
  an encoding expat cannot read, or malformed XML is a 400 naming the reason.
  A SAX reader holds no tree, and expat itself is not recursive, so a hostile
  body costs its bytes and no more.

Rules: every refusal is a ``BodyRefused`` with the HTTP status and a message
for the client; nothing here logs a body.  The limits are deliberately far
above what CalDAV clients send (real bodies nest ~8 deep).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from xml.sax import SAXException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

MAX_DEPTH = 64
MAX_ELEMENTS = 100_000
MAX_XML_BODY = 2_000_000

# Radicale parses the body as XML for these (``_read_xml_request_body``).
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL"})


class BodyRefused(ValueError):
    """The request body is not accepted: answer ``status`` with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def limit_for(method: str, max_size: int) -> int:
    """The largest body a request with this method may carry (bytes)."""
    return max_size if method == "PUT" else MAX_XML_BODY


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, f"request body too large (at most {limit} bytes here)")


class _Counter(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.elements = 0

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > MAX_DEPTH:
            raise BodyRefused(400, f"XML elements nested deeper than {MAX_DEPTH}")
        if self.elements > MAX_ELEMENTS:
            raise BodyRefused(400, f"XML body with more than {MAX_ELEMENTS} elements")

    def endElement(self, name: str) -> None:
        self.depth -= 1


class XmlGate:
    """Checks an XML body fed in pieces; ``BodyRefused`` (400) at the first problem."""

    def __init__(self) -> None:
        self._parser = DefusedExpatParser(forbid_dtd=True)
        self._parser.setContentHandler(_Counter())
        self._fed = False

    def feed(self, data: bytes) -> None:
        if data:
            self._fed = True
            with _refusing():
                self._parser.feed(data)

    def close(self) -> None:
        """The body is complete (an empty body is no XML and passes: PROPFIND allprop)."""
        if self._fed:
            with _refusing():
                self._parser.close()


@contextmanager
def _refusing() -> Iterator[None]:
    """The parser's complaints as ``BodyRefused`` (the counter raises that itself)."""
    try:
        yield
    except DefusedXmlException:
        raise BodyRefused(400, "XML with a DTD or entities is not accepted") from None
    except SAXException as e:
        raise BodyRefused(400, f"malformed XML ({e.getMessage()})") from None
    except BodyRefused:
        raise
    except (LookupError, ValueError):
        # expat asks Python for the codec the declaration names: unknown (LookupError),
        # not a text codec, multi-byte (plain ValueError) or failing (UnicodeError)
        raise BodyRefused(400, "malformed XML (an encoding that cannot be read)") from None


def gate_for(method: str) -> XmlGate | None:
    """A fresh gate when Radicale will parse this method's body as XML, else None."""
    return XmlGate() if method in XML_METHODS else None
