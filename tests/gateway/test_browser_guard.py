"""Requests from web pages are refused on every route of the gateway (issue 19).

A page the user visits can make the browser post to ``/sync`` (no Content-Type
needed before, so a WBXML bomb was one form away), fetch ``/dav/`` with
credentials the browser remembers, or reach ``/api/``.  The app refuses a web
``Origin`` (http, https, ``null``) and, without an Origin,
``Sec-Fetch-Site: cross-site``/``same-site``; add-ons (``moz-extension://``)
and programs without those headers pass.  The gateway here is the real one:
daemon (``/api/``), CalDAV (``/dav/``) and SyncML (``/sync``) on uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from calsync.gateway.app import create_app
from calsync.gateway.server import BackgroundServer
from calsync.syncml import codec
from tests.adversarial.bombs import str_t_bomb
from tests.davserver.helpers import PASSWORD, USER, Gateway, config_text, start
from tests.syncml.scripted import Device, alert

SYNCML = """
[syncml.accounts.alice]
password = "s3cret-Pa55"
calendar = "hub"
"""

WEB_PAGES = [
    {"Origin": "http://evil.example"},
    {"Origin": "https://evil.example:8443"},
    {"Origin": "null"},  # a sandboxed page or a file:// one
    {"Origin": "HTTP://127.0.0.1:1"},  # another port of this machine
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of localhost
    {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
]
NOT_WEB_PAGES = [
    {},
    {"Origin": "moz-extension://5b0e1b9c-0000-4000-8000-000000000000"},  # a Thunderbird add-on
    {
        "Origin": "moz-extension://5b0e1b9c-0000-4000-8000-000000000000",
        "Sec-Fetch-Site": "cross-site",  # as seen from the add-on's own origin
    },
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},  # typed into the address bar
]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = start(tmp_path, config_text(tmp_path, SYNCML))
    try:
        yield g
    finally:
        g.stop()


def _requests(gw: Gateway) -> list[tuple[str, str, dict[str, Any]]]:
    """One request per endpoint that each would answer normally."""
    dev = Device(encoding="wbxml", password="s3cret-Pa55")
    login = dev.encode(dev.header("md5"), [alert(201)])
    return [
        ("POST", "/sync", {"content": login, "headers": {"Content-Type": codec.WBXML_TYPE}}),
        ("PROPFIND", "/dav/", {"auth": (USER, PASSWORD), "headers": {"Depth": "0"}}),
        ("GET", "/.well-known/caldav", {}),
        ("GET", "/api/status", {"headers": {"Authorization": f"Bearer {gw.daemon.token}"}}),
    ]


def _send(
    gw: Gateway, method: str, path: str, kw: dict[str, Any], extra: dict[str, str]
) -> httpx.Response:
    options = dict(kw)
    headers = {**options.pop("headers", {}), **extra}
    return httpx.request(method, gw.url(path), headers=headers, timeout=60, **options)


@pytest.mark.parametrize(
    "headers", WEB_PAGES, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items())
)
def test_requests_from_web_pages_are_refused_on_every_endpoint(
    gw: Gateway, headers: dict[str, str]
) -> None:
    for method, path, kw in _requests(gw):
        r = _send(gw, method, path, kw, headers)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.text.startswith("requests from") and r.text.count("\n") == 1
    assert list((gw.tmp / "state").glob("syncml.sqlite")) == []  # /sync never ran


def test_the_gateway_s_own_origin_passes_but_not_a_rebound_name(gw: Gateway) -> None:
    """Thunderbird's CalDAV sends ``Origin: http://127.0.0.1:<port>`` (the calendar's
    own origin) with ``Sec-Fetch-Site: same-origin``: it must pass.  A page of
    ``evil.example`` that DNS-rebinds its name to this address is same-origin to the
    browser too, but over plain HTTP only address literals and localhost count."""
    port = gw.server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        own = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        for method, path, kw in _requests(gw):
            r = _send(gw, method, path, kw, own)
            assert r.status_code != 403, (host, method, path)
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    elsewhere = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"}
    for headers in (rebound, elsewhere):
        for method, path, kw in _requests(gw):
            assert _send(gw, method, path, kw, headers).status_code == 403, (headers, path)


@pytest.mark.parametrize(
    "headers",
    NOT_WEB_PAGES,
    ids=lambda h: ",".join(f"{k}={v[:14]}" for k, v in h.items()) or "none",
)
def test_devices_add_ons_and_programs_pass(gw: Gateway, headers: dict[str, str]) -> None:
    expect = {"/sync": 200, "/dav/": 207, "/.well-known/caldav": 301, "/api/status": 200}
    for method, path, kw in _requests(gw):
        r = _send(gw, method, path, kw, headers)
        assert r.status_code == expect[path], (method, path, r.status_code, r.text)


def test_a_cross_site_form_post_never_reaches_the_decoder(gw: Gateway) -> None:
    """The attack of finding 1: a page posts a WBXML bomb with no Content-Type (a
    form or ``fetch(..., {mode: "no-cors"})``).  Refused by the Origin (403), by
    Sec-Fetch-Site (403), and even without either header by the type (415)."""
    bomb = str_t_bomb(20_000, 5_000)
    url = gw.url("/sync")
    assert (
        httpx.post(url, content=bomb, headers={"Origin": "https://evil.example"}).status_code == 403
    )
    assert (
        httpx.post(url, content=bomb, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    )
    assert httpx.post(url, content=bomb).status_code == 415
    form = {"Content-Type": "text/plain", "Origin": "null"}
    assert httpx.post(url, content=bomb, headers=form).status_code == 403


class _WebPage:
    """A feature that is a web page: its prefix is exempt from the guard."""

    def __init__(self) -> None:
        self.browser_paths = ["/web"]
        self.routes: list[BaseRoute] = [
            Route("/web/page", lambda request: PlainTextResponse("page")),
            Route("/other", lambda request: PlainTextResponse("other")),
            Route("/website", lambda request: PlainTextResponse("not the page")),
        ]

    def startup(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def test_a_feature_declares_its_web_page_paths() -> None:
    """A link to the web page from another site is a cross-site navigation: the
    page's prefix is exempt, every other route still refuses it."""
    with BackgroundServer(create_app([_WebPage()])) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        link = {"Sec-Fetch-Site": "cross-site"}
        assert httpx.get(base + "/web/page", headers=link).text == "page"
        assert httpx.get(base + "/other", headers=link).status_code == 403
        assert httpx.get(base + "/website", headers=link).status_code == 403
        assert httpx.get(base + "/other").text == "other"
