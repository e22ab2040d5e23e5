"""Finding the calendar collection: the URL itself, or by name under the user's home.

RFC 6764/4791 discovery: the configured URL (server root, principal, calendar
home or the calendar itself) -> ``current-user-principal`` (falling back to
``/.well-known/caldav``) -> ``calendar-home-set`` -> the home's members that
are calendars (schedule inbox/outbox are not).  A calendar matches by display
name or by its last path segment.  The store caches the result, so this runs
once, not every sync.

``account`` lists every calendar of the home (for ``calsync discover`` and a
pair's ``collections``) with the properties a user picks by: display name,
colour, component types, whether the user may write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urljoin

from calsync.stores import Collection
from calsync.stores.caldav import xml
from calsync.stores.caldav.client import DavClient, DavError, redact
from calsync.stores.caldav.hrefs import normalize, same
from calsync.stores.caldav.listing import Info


class DiscoveryError(DavError):
    """No (unique) calendar found where the configuration points."""


@dataclass
class Calendar:
    url: str
    displayname: str | None


_PROPS = ["D:resourcetype", "D:displayname", "D:current-user-principal", "C:calendar-home-set"]


def _one(client: DavClient, url: str, props: list[str]) -> tuple[str, xml.DavResponse] | None:
    """PROPFIND Depth 0 (following redirects): (final URL, the response) or None."""
    resp = client.propfind(url, props, "0", follow=True)
    if resp.status in (401, 403):
        raise DiscoveryError(
            f"{redact(url)}: access denied (HTTP {resp.status}); check username/password"
        )
    if resp.status >= 500:
        raise DiscoveryError(f"PROPFIND {redact(url)}: HTTP {resp.status}")
    if resp.status != 207:
        return None
    ms = resp.multistatus()
    if not ms.responses:
        return None
    return resp.url, ms.responses[0]


def _calendars(client: DavClient, home: str) -> list[Calendar]:
    resp = client.propfind(home, ["D:resourcetype", "D:displayname"], "1")
    if resp.status != 207:
        return []
    out = []
    for r in resp.multistatus().responses:
        if xml.is_calendar(r):
            url = urljoin(home, r.href)
            out.append(Calendar(url if url.endswith("/") else url + "/", r.text(xml.DISPLAYNAME)))
    return out


def _home(client: DavClient, url: str) -> str | None:
    found = _one(client, url, _PROPS)
    if found is None or (
        xml.href_in(found[1], xml.HOME_SET) is None and xml.href_in(found[1], xml.PRINCIPAL) is None
    ):
        wk = _one(client, urljoin(url, "/.well-known/caldav"), _PROPS)
        found = wk or found
    if found is None:
        return None
    base, resp = found
    home = xml.href_in(resp, xml.HOME_SET)
    if home:
        return urljoin(base, home)
    principal = xml.href_in(resp, xml.PRINCIPAL)
    if principal:
        got = _one(client, urljoin(base, principal), ["C:calendar-home-set"])
        if got is not None:
            home = xml.href_in(got[1], xml.HOME_SET)
            if home:
                return urljoin(got[0], home)
    return base if xml.is_collection(resp) else None


_ACCOUNT_PROPS = [
    "D:resourcetype",
    "CS:getctag",
    "D:supported-report-set",
    "D:displayname",
    "A:calendar-color",
    "C:supported-calendar-component-set",
    "D:current-user-privilege-set",
]


def home_of(client: DavClient, url: str) -> str:
    """The calendar home ``url`` leads to (server root, principal or the home itself)."""
    home = _home(client, url)
    if home is None:
        raise DiscoveryError(f"no calendar home found at {redact(url)}")
    return home if home.endswith("/") else home + "/"


def account(client: DavClient, home: str) -> list[Collection]:
    """Every calendar collection of the home, sorted by name."""
    resp = client.propfind(home, _ACCOUNT_PROPS, "1")
    if resp.status in (401, 403):
        raise DiscoveryError(
            f"{redact(home)}: access denied (HTTP {resp.status}); check username/password"
        )
    if resp.status != 207:
        raise DiscoveryError(f"PROPFIND {redact(home)}: HTTP {resp.status}")
    out = []
    own = normalize(home, home)
    for r in resp.multistatus().responses:
        if not xml.is_calendar(r) or same(normalize(r.href, home), own):
            continue
        url = urljoin(home, r.href)
        url = url if url.endswith("/") else url + "/"
        comps = xml.components(r)
        hint = Info(
            ctag=(r.text(xml.GETCTAG) or "").strip() or None,
            token=None,
            reports=xml.reports(r),
            components=comps,
            is_calendar=True,
            displayname=(r.text(xml.DISPLAYNAME) or "").strip() or None,
            color=(r.text(xml.CALENDAR_COLOR) or "").strip() or None,
        )
        out.append(
            Collection(
                _segment(url),
                url,
                displayname=(r.text(xml.DISPLAYNAME) or "").strip() or None,
                color=(r.text(xml.CALENDAR_COLOR) or "").strip() or None,
                components=tuple(sorted(comps)) if comps else None,
                read_only=xml.read_only(r),
                hint=hint,
            )
        )
    return sorted(out, key=lambda c: c.name)


def find_calendar(client: DavClient, url: str, name: str | None) -> Calendar:
    """The calendar collection the configuration means (DiscoveryError if none/ambiguous)."""
    if name is None:
        found = _one(client, url, _PROPS)
        if found is not None and xml.is_calendar(found[1]):
            final = found[0] if found[0].endswith("/") else found[0] + "/"
            return Calendar(final, found[1].text(xml.DISPLAYNAME))
    home = _home(client, url)
    cals = _calendars(client, home) if home else []
    names = ", ".join(sorted(c.displayname or _segment(c.url) for c in cals)) or "none found"
    if name is None:
        raise DiscoveryError(
            f'{redact(url)} is not a calendar collection; set calendar = "NAME" to pick '
            f"one of the user's calendars ({names})"
        )
    wanted = name.strip("/")
    matches = [c for c in cals if c.displayname == name]
    if not matches:
        matches = [c for c in cals if _segment(c.url) == wanted]
    if not matches:
        matches = [c for c in cals if same(normalize(c.url, c.url), "/" + wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DiscoveryError(f"no calendar named {name!r} at {redact(url)} (calendars: {names})")
    raise DiscoveryError(
        f"{len(matches)} calendars are named {name!r} at {redact(url)}; "
        "use the calendar's URL (or its path segment) instead"
    )


def _segment(url: str) -> str:
    return unquote(url.rstrip("/").rsplit("/", 1)[-1])
