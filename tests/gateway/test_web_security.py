"""Who may see the web page and act on it (``gateway/web/security.py``), route by route.

Requests reach the real app (the daemon's features and the page) through
httpx's ASGI transport, which lets a test say where a request comes from (the
ASGI scope's client address) and whether it came over TLS (the scheme): a
machine on the LAN is 192.0.2.7 here.  The page in a real browser, over a
real socket, is ``test_web_browser.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from calsync.config import parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.daemon import Daemon
from calsync.gateway.pairing import Reach
from calsync.gateway.pairpage import pair_page
from calsync.gateway.web import WebFeature
from tests.gateway.helpers import DEVICES, PASSWORD, write_config

LAN = "192.0.2.7"
HERE = "127.0.0.1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# every route of the page, with a method it serves
PAGES = [
    ("GET", "/"),
    ("GET", "/web/live"),
    ("GET", "/web/conflicts/1"),
    ("GET", "/web/history"),
    ("GET", "/web/login"),
    ("GET", "/web/static/htmx.min.js"),
    ("GET", "/web/static/style.css"),
    ("GET", "/web/nonexistent"),
]
ACTIONS = [  # state-changing routes, each with a form that would do something
    ("/web/sync", {"pair": "p"}),
    ("/web/conflicts/1/resolve", {"keep": "a"}),
    ("/web/restore", {"uid": "e1", "version": "1"}),
    ("/web/pair", {"account": "alice", "device": "tablet"}),
    ("/web/devices/revoke", {"device": "no-such-device"}),
    ("/web/logout", {}),  # the last: it ends the session
]
ROUTES = PAGES + [("POST", path) for path, _ in ACTIONS] + [("POST", "/web/login")]


def app_for(tmp: Path, reach: Reach | None = None) -> tuple[Any, Daemon]:
    """The gateway as ``calsync serve`` makes it: the daemon, the page, pairing, CalDAV
    and SyncML (phones reach it as ``reach`` says: 127.0.0.1:8765 by default)."""
    config = write_config(tmp, DEVICES)
    cfg, errors = parse(config.read_text(), config)
    assert not errors, errors
    daemon = Daemon(cfg, url="http://127.0.0.1:8765", config_path=None, watch=False)
    where = reach or Reach("127.0.0.1", 8765, tls=False)
    pairing = pair_page(cfg, lambda: where)
    daemon.pairing = pairing.service
    features = [daemon, WebFeature(daemon), pairing, *features_for(cfg)]
    daemon.attach(features)
    return create_app(features), daemon


def run(
    app: Any, address: str, scheme: str, body: Callable[[httpx.AsyncClient], Awaitable[Any]]
) -> Any:
    """``body`` with a client whose requests come from ``address`` over ``scheme``
    (cookies kept between its requests)."""

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))  # type: ignore[arg-type]
        base = f"{scheme}://gateway.example" if scheme == "https" else f"{scheme}://{address}"
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            return await body(c)

    return asyncio.run(go())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def test_no_route_of_the_page_answers_plain_http_from_the_lan(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        for method, path in ROUTES:
            r = await c.request(method, path, data={"csrf": "x"})
            assert r.status_code == 403, (method, path, r.status_code)
            assert "TLS" in r.text and "csrf" not in r.text.lower()
            assert "set-cookie" not in r.headers, (method, path)

    run(app, LAN, "http", body)


def test_over_plain_http_only_localhost_and_addresses_are_the_page(tmp_path: Path) -> None:
    """DNS rebinding: evil.example re-pointed at 127.0.0.1 must not read the page."""
    app, _ = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        for host in ("evil.example", "evil.example:8765", "127.0.0.1.nip.example"):
            for method, path in ROUTES:
                r = await c.request(method, path, headers={"Host": host})
                assert r.status_code == 403, (host, method, path, r.status_code)
        for host in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765"):
            assert (await c.get("/", headers={"Host": host})).status_code == 200, host

    run(app, HERE, "http", body)


def test_the_lan_logs_in_over_tls_and_gets_a_strict_cookie(tmp_path: Path) -> None:
    app, daemon = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        # no session: the page sends to the login form, the live part and actions refuse
        r = await c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/web/login"
        assert (await c.get("/web/live")).status_code == 303
        form = await c.get("/web/login")
        assert form.status_code == 200 and 'name="password"' in form.text
        token = csrf_of(form.text)
        # wrong passwords: 401, no session
        r = await c.post("/web/login", data={"csrf": token, "user": "alice", "password": "no"})
        assert r.status_code == 401 and "Wrong user name or password" in r.text
        assert not any(k.startswith("__Host-calsync-session") for k in c.cookies)
        token = csrf_of(r.text)
        r = await c.post("/web/login", data={"csrf": token, "user": "alice", "password": PASSWORD})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie")
        name = cookie.split("=")[0]
        assert name == "__Host-calsync-session-443"
        flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")[1:]}
        assert "httponly" in flags and "secure" in flags
        assert flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/"
        assert "domain" not in flags
        page = await c.get("/")
        assert page.status_code == 200 and 'data-pair="p"' in page.text
        assert "alice" in page.text  # who is logged in, with a log-out button
        # nothing secret in the page: no password, no token, no session id
        session_id = c.cookies[name]
        for secret in (PASSWORD, daemon.token, session_id):
            assert secret not in page.text
        # log out: the session is gone
        r = await c.post("/web/logout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/web/login"
        c.cookies.set(name, session_id)  # a copy kept by someone
        assert (await c.get("/")).status_code == 303

    run(app, LAN, "https", body)

    async def by_token(c: httpx.AsyncClient) -> None:
        token = csrf_of((await c.get("/web/login")).text)
        r = await c.post("/web/login", data={"csrf": token, "user": "", "password": daemon.token})
        assert r.status_code == 303
        assert (await c.get("/")).status_code == 200

    run(app, LAN, "https", by_token)

    async def by_basic(c: httpx.AsyncClient) -> None:
        assert (await c.get("/", auth=("phone", PASSWORD))).status_code == 200  # SyncML account
        assert (await c.get("/")).status_code == 200  # the cookie carries on
        assert (await c.get("/web/live", auth=("phone", "wrong"))).status_code == 200  # session
        c.cookies.clear()
        assert (await c.get("/", auth=("phone", "wrong"))).status_code == 401

    run(app, LAN, "https", by_basic)


def test_a_session_opened_on_this_machine_is_no_key_from_the_lan(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)

    async def local(c: httpx.AsyncClient) -> str:
        r = await c.get("/")
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("calsync-session-80=") and "secure" not in cookie.lower()
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        return str(c.cookies["calsync-session-80"])

    sid = run(app, HERE, "http", local)

    async def lan(c: httpx.AsyncClient) -> None:
        c.cookies.set("__Host-calsync-session-443", sid)
        assert (await c.get("/")).status_code == 303

    run(app, LAN, "https", lan)


def test_every_action_needs_the_sessions_csrf_token_and_its_own_origin(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)
    origin = "http://127.0.0.1"

    async def body(c: httpx.AsyncClient) -> None:
        # without a session, nothing acts (its token could match nothing)
        for path, form in ACTIONS:
            r = await c.post(path, data={**form, "csrf": "guess"})
            assert r.status_code == 403, (path, r.status_code)
        page = await c.get("/")
        token = csrf_of(page.text)
        other = csrf_of((await AnotherClient.page(app)).text)
        assert other != token
        for path, form in ACTIONS:
            refused = [
                ({**form}, {}),  # no token
                ({**form, "csrf": ""}, {}),
                ({**form, "csrf": token[:-1]}, {}),
                ({**form, "csrf": other}, {}),  # another session's
                ({**form, "csrf": token}, {"Origin": "http://evil.example"}),
                ({**form, "csrf": token}, {"Origin": "null"}),
                ({**form, "csrf": token}, {"Origin": "http://127.0.0.1:9999"}),
                ({**form, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
                ({**form, "csrf": token}, {"Sec-Fetch-Site": "same-site"}),
            ]
            for data, headers in refused:
                r = await c.post(path, data=data, headers=headers)
                assert r.status_code == 403, (path, data, headers, r.status_code)
        # the token in a header does (htmx sends it so), from the page's own origin
        r = await c.post(
            "/web/sync",
            data={"pair": "p"},
            headers={"X-CSRF-Token": token, "Origin": origin, "Sec-Fetch-Site": "same-origin"},
        )
        assert r.status_code == 303, r.text
        for path, form in ACTIONS[:-1]:
            r = await c.post(path, data={**form, "csrf": token}, headers={"Origin": origin})
            assert r.status_code == 303, (path, r.status_code, r.text)
        # a GET changes nothing: the actions are POST only
        for path, form in ACTIONS:
            assert (await c.get(path, params=form)).status_code in (404, 405), path

    run(app, HERE, "http", body)


class AnotherClient:
    @staticmethod
    async def page(app: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(HERE, 50001))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get("/")


def test_the_login_form_has_its_own_csrf_check(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        good = {"user": "alice", "password": PASSWORD}
        # no form token (a page elsewhere posting the form): refused before any check
        assert (await c.post("/web/login", data=good)).status_code == 403
        token = csrf_of((await c.get("/web/login")).text)
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = await c.post("/web/login", data={**good, "csrf": token}, headers=headers)
            assert r.status_code == 403, headers
        c.cookies.clear()  # the token without its cookie
        assert (await c.post("/web/login", data={**good, "csrf": token})).status_code == 403

    run(app, LAN, "https", body)


def test_pairing_and_revoking_need_the_token_the_pages_origin_and_tls(tmp_path: Path) -> None:
    """The new buttons' actions: refused (and nothing done) without the session's CSRF
    token, from another origin, or from the LAN over plain HTTP."""
    app, daemon = app_for(tmp_path)
    service = daemon.pairing
    assert service is not None
    service.passwords.add("alice", "phone-1")
    pair = {"account": "alice", "device": "tablet"}
    revoke = {"device": "phone-1"}

    def nothing_done() -> None:
        assert not service.is_open()  # no pairing opened
        assert service.passwords.get("phone-1") is not None  # not revoked

    async def lan(c: httpx.AsyncClient) -> None:
        for path, form in (("/web/pair", pair), ("/web/devices/revoke", revoke)):
            r = await c.post(path, data={**form, "csrf": "x"}, headers={"HX-Request": "true"})
            assert r.status_code == 403 and "TLS" in r.text, (path, r.status_code)

    run(app, LAN, "http", lan)
    nothing_done()

    async def here(c: httpx.AsyncClient) -> None:
        for path, form in (("/web/pair", pair), ("/web/devices/revoke", revoke)):
            r = await c.post(path, data={**form, "csrf": "guess"})  # no session yet
            assert r.status_code == 403, (path, r.status_code)
        token = csrf_of((await c.get("/")).text)
        htmx = {"HX-Request": "true", "HX-Target": "pairing"}
        for path, form in (("/web/pair", pair), ("/web/devices/revoke", revoke)):
            for data, headers in [
                (form, htmx),  # no token
                ({**form, "csrf": token[:-1]}, htmx),
                (form, {**htmx, "X-CSRF-Token": "wrong"}),
                ({**form, "csrf": token}, {"Origin": "http://evil.example"}),
                ({**form, "csrf": token}, {**htmx, "Origin": "http://127.0.0.1:9999"}),
                ({**form, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
            ]:
                r = await c.post(path, data=data, headers=headers)
                assert r.status_code == 403, (path, data, headers, r.status_code)
                assert "/pair/" not in r.text  # no one-time URL handed out
        nothing_done()
        # with the token, from the page itself: done
        origin = {"Origin": "http://127.0.0.1"}
        r = await c.post("/web/pair", data={**pair, "csrf": token}, headers=origin)
        assert r.status_code == 303 and service.is_open()
        r = await c.post("/web/devices/revoke", data={**revoke, "csrf": token}, headers=origin)
        assert r.status_code == 303 and service.passwords.get("phone-1") is None

    run(app, HERE, "http", here)


def test_a_form_of_too_many_fields_is_a_400(tmp_path: Path) -> None:
    """More fields than a form of the page has: 400 (Python's parser raised ValueError,
    a 500, before any session or login was looked at; found by tests/adversarial)."""
    app, _ = app_for(tmp_path)
    many = "&".join(f"f{n}=1" for n in range(100))

    async def here(c: httpx.AsyncClient) -> None:
        token = csrf_of((await c.get("/")).text)
        r = await c.post("/web/sync", content=f"pair=p&csrf={token}&{many}", headers=FORM)
        assert r.status_code == 400 and "fields" in r.text, (r.status_code, r.text)

    async def lan(c: httpx.AsyncClient) -> None:
        token = csrf_of((await c.get("/web/login")).text)
        body = f"csrf={token}&user=alice&password=x&{many}"
        for path in ("/web/login", "/web/sync"):
            r = await c.post(path, content=body, headers=FORM)
            assert r.status_code == 400 and "fields" in r.text, (path, r.status_code, r.text)

    run(app, HERE, "http", here)
    run(app, LAN, "https", lan)


def test_simultaneous_login_guesses_are_held_to_the_budget(tmp_path: Path) -> None:
    """30 wrong passwords sent at once from one address: 10 are checked, 20 refused
    (429).  The password was checked in a thread after the throttle was asked, so
    every simultaneous guess was tested (found by tests/adversarial)."""
    app, _ = app_for(tmp_path)

    async def lan(c: httpx.AsyncClient) -> list[int]:
        token = csrf_of((await c.get("/web/login")).text)
        guesses = [
            c.post("/web/login", data={"csrf": token, "user": "alice", "password": f"guess-{n}"})
            for n in range(30)
        ]
        return [r.status_code for r in await asyncio.gather(*guesses)]

    assert sorted(run(app, LAN, "https", lan)) == [401] * 10 + [429] * 20


def test_answers_keep_out_of_frames_caches_and_foreign_scripts(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        for path in ("/", "/web/live", "/web/history", "/web/conflicts/1", "/web/login"):
            r = await c.get(path)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"]
        # the live part answers 204 while nothing changed (the page polls it)
        live = (await c.get("/web/live")).text
        seen = re.search(r"seen=([0-9a-f]+)", live)
        assert seen is not None
        assert (await c.get("/web/live", params={"seen": seen.group(1)})).status_code == 204
        assert (await c.get("/web/live", params={"seen": "0" * 24})).status_code == 200

    run(app, HERE, "http", body)


def test_the_browser_guard_still_covers_every_other_route(tmp_path: Path) -> None:
    """The page's paths ("/" and "/web") are exempt from the gateway's guard; "/"
    must not exempt every path under it."""
    app, daemon = app_for(tmp_path)

    async def body(c: httpx.AsyncClient) -> None:
        evil = {"Origin": "http://evil.example"}
        auth = {"Authorization": f"Bearer {daemon.token}"}
        assert (await c.get("/api/status", headers={**evil, **auth})).status_code == 403
        assert (await c.post("/sync", headers=evil)).status_code == 403
        assert (await c.request("PROPFIND", "/dav/", headers=evil)).status_code == 403
        assert (await c.get("/website", headers=evil)).status_code == 403
        # and CalDAV's PROPFIND of the root still finds /dav/ beside the page
        r = await c.request("PROPFIND", "/")
        assert r.status_code == 301 and r.headers["location"] == "/dav/"

    run(app, HERE, "http", body)


def test_a_pairs_collections_are_listed_under_it_from_the_same_status(tmp_path: Path) -> None:
    """Sub-pairs (``PAIR/COLLECTION``) come with the status of their pair: the page
    lists whatever ``pair_status`` gives, nested."""
    from calsync.gateway.web.routes import pair_views

    _, daemon = app_for(tmp_path)
    sub = {"a": "dir/work", "b": "file/work", "items": 3, "last_run": None, "last_result": None}
    status = {
        "a": "dir",
        "b": "file",
        "items": 3,
        "last_run": "2026-01-01T00:00:00Z",
        "last_result": {"added_b": 2, "errors": [], "conflicts": 0},
        "queued": {},
        "daemon": None,
        "collections": {"work": {**sub, "queued": {}}},
    }
    (view,) = pair_views(daemon.cfg, {"p": status})
    assert view["counts"] == "2 added in file" and view["top"]
    (child,) = view["subs"]
    assert child["name"] == "p/work" and not child["top"] and child["outcome"] == "never synced"
    html = WebFeature(daemon).pages.env.get_template("pair.html").render(p=view, csrf="t")
    assert 'data-pair="p/work"' in html and html.count("sync-now") == 1  # the pair's own
