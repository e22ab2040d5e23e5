"""Hrefs as store ids: one canonical spelling per resource.

Servers spell the same resource differently: absolute URL or path, ``@`` or
``%40``, ``%7E`` or ``~``, a space encoded or not.  The id we hand the engine
is the percent-*decoded* path (``/cal/a b@c.ics``), so two spellings of one
resource are one id; requests re-encode it (``quote_path``), escaping space,
``%`` and ``@`` and everything else outside the unreserved set.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urljoin, urlsplit


def normalize(href: str, base: str) -> str:
    """The canonical id of ``href`` (absolute URL or path) as seen from ``base``."""
    href = href.strip()
    if href.startswith("/") and not href.startswith("//"):  # the usual case: a path
        path = href.split("?", 1)[0].split("#", 1)[0]
        if "/." not in path:  # no dot segments to resolve
            return unquote(path) if "%" in path else path
    absolute = urljoin(base, href)
    path = urlsplit(absolute).path or "/"
    return unquote(path)


def quote_path(path: str) -> str:
    """A canonical id back to a path that is safe in a URL and in an XML href."""
    return quote(path, safe="/")


def to_url(base: str, path: str) -> str:
    """Absolute URL for an id on the server of ``base``."""
    return urljoin(base, quote_path(path))


def same(a: str, b: str) -> bool:
    """Two collection paths equal up to a trailing slash."""
    return a.rstrip("/") == b.rstrip("/")
