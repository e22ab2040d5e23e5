"""The web page's "Pair a phone" button and its one device list (in process, fast).

The button's answer (the QR code, the one-time URL, its countdown, the CA
fingerprint) in place for htmx and after a redirect without a script; the
refusals in words; the paired devices merged with what logged in with their
app passwords; revoking from the page.  Who may press the buttons is
``test_web_security.py``; the page in chromium, with the QR code read from
the screen, is ``test_web_browser.py``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from calsync.gateway.pairing import Reach, fingerprint
from calsync.gateway.tls import LocalCA
from tests.gateway import qr
from tests.gateway.helpers import PASSWORD
from tests.gateway.test_web_security import HERE, AnotherClient, app_for, csrf_of, run

HTMX = {"HX-Request": "true", "HX-Target": "pairing"}
DAVX5 = "DAVx5/4.4.1-ose (Android 14)"


def offer_in(html: str) -> dict[str, str]:
    """The offer the page shows: device, URL, QR code (SVG), fingerprint, seconds left."""
    found = {
        "device": re.search(r'class="offer" data-device="([^"]+)"', html),
        "url": re.search(r'id="pair-url">([^<]+)</code>', html),
        "svg": re.search(r'id="pair-qr">(<svg.*?</svg>)', html, re.S),
        "fingerprint": re.search(r'id="pair-fingerprint">([^<]+)</code>', html),
        "remaining": re.search(r'data-remaining="(\d+)"', html),
    }
    return {k: v.group(1) for k, v in found.items() if v is not None}


def devices_in(html: str) -> list[str]:
    section = re.search(r'<section id="devices">(.*?)</section>', html, re.S)
    assert section is not None, html[:300]
    return re.findall(r'<li class="device"(.*?)</li>', section.group(1), re.S)


def test_the_pair_button_shows_the_offer_in_place_and_without_a_script(tmp_path: Path) -> None:
    der = LocalCA(tmp_path / "state" / "tls").ca_der()
    app, daemon = app_for(tmp_path, Reach("127.0.0.1", 8765, tls=True, ca_der=der))
    service = daemon.pairing
    assert service is not None

    async def body(c: httpx.AsyncClient) -> None:
        page = (await c.get("/")).text
        assert 'id="pair-button"' in page and not offer_in(page)
        # two accounts: a select of both
        assert re.findall(r'<option value="([^"]+)"', page) == ["alice", "phone"]
        token = csrf_of(page)
        # htmx: the section alone comes back, with the offer
        r = await c.post(
            "/web/pair",
            data={"account": "alice", "device": "tablet"},
            headers={**HTMX, "X-CSRF-Token": token},
        )
        assert r.status_code == 200 and r.text.startswith('<section id="pairing">'), r.text[:200]
        offer = offer_in(r.text)
        assert offer["device"] == "tablet"
        assert offer["url"].startswith("http://127.0.0.1:8765/pair/")
        assert qr.from_svg(offer["svg"]) == [offer["url"]]  # the QR code is the URL shown
        assert offer["fingerprint"] == fingerprint(der)
        assert 590 <= int(offer["remaining"]) <= 600
        assert service.is_open()
        # refusals are said in the section, and the offer stays
        r = await c.post("/web/pair", data={"csrf": token, "device": "tablet"}, headers=HTMX)
        assert "Not paired: name the account to pair with: alice, phone" in r.text
        r = await c.post(
            "/web/pair", data={"csrf": token, "account": "alice", "device": "tablet"}, headers=HTMX
        )
        assert "a device named &#39;tablet&#39; exists already" in r.text
        assert offer_in(r.text)["url"] == offer["url"]
        # without a script: a redirect to the page, which shows the new offer
        r = await c.post(
            "/web/pair", data={"csrf": token, "account": "phone", "device": "old-phone"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/#pairing"
        page = (await c.get("/")).text
        again = offer_in(page)
        assert again["device"] == "old-phone" and again["url"] != offer["url"]
        assert "account phone" in page
        r = await c.post("/web/pair", data={"csrf": token, "account": "carol"})
        assert r.status_code == 303
        assert "Not paired: no account named &#39;carol&#39;" in (await c.get("/")).text
        # another session never sees this one's one-time URL
        assert again["url"] not in (await AnotherClient.page(app)).text
        # once it expires, the page stops showing it
        service.clock = lambda: time.time() + 601
        assert not offer_in((await c.get("/")).text)

    run(app, HERE, "http", body)


def test_one_device_list_with_what_logged_in_with_each_app_password(tmp_path: Path) -> None:
    app, daemon = app_for(tmp_path)
    service = daemon.pairing
    assert service is not None
    phone = service.passwords.add("alice", "phone-1")
    service.passwords.add("alice", "tablet")

    async def body(c: httpx.AsyncClient) -> None:
        for auth, agent in (
            (("alice", phone.password), DAVX5),
            (("alice", PASSWORD), "Thunderbird/128.0"),
        ):
            r = await c.request(
                "PROPFIND", "/dav/alice/", auth=auth, headers={"Depth": "0", "User-Agent": agent}
            )
            assert r.status_code == 207, (agent, r.text)
        # the API's status says whose password each client used, and lists the paired
        status = await c.get("/api/status", headers={"Authorization": f"Bearer {daemon.token}"})
        data = status.json()
        used = {cl["device"]: cl["app_password"] for cl in data["clients"]}
        assert used == {DAVX5: "phone-1", "Thunderbird/128.0": None}
        paired = {p["name"]: p for p in data["paired"]}
        assert set(paired) == {"phone-1", "tablet"} and paired["tablet"]["pairs"] == ["p"]
        # the page: one row per device, the paired ones under their names
        page = (await c.get("/")).text
        rows = devices_in(page)
        (row,) = [r for r in rows if 'data-paired="phone-1"' in r]
        assert "CalDAV" in row and f"{DAVX5} from 127.0.0.1" in row and "Revoke" in row
        assert "never" not in row
        (row,) = [r for r in rows if 'data-paired="tablet"' in r]
        assert (
            "no CalDAV login with its app password yet" in row
            and 'last seen <span class="device-seen">never' in row
        )
        (row,) = [r for r in rows if "Thunderbird/128.0" in r]
        assert "data-paired" not in row and "Revoke" not in row
        assert sum(DAVX5 in r for r in rows) == 1  # not a second row of its own
        # revoke phone-1 from the page: gone from the list, its password refused at once
        r = await c.post("/web/devices/revoke", data={"csrf": csrf_of(page), "device": "phone-1"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        page = (await c.get("/")).text
        assert "phone-1 is revoked" in page
        rows = devices_in(page)
        assert not [r for r in rows if 'data-paired="phone-1"' in r]
        (row,) = [r for r in rows if DAVX5 in r]
        assert "app password of phone-1 (revoked)" in row
        r = await c.request("PROPFIND", "/dav/alice/", auth=("alice", phone.password))
        assert r.status_code == 401
        # revoking what is not there says so
        r = await c.post("/web/devices/revoke", data={"csrf": csrf_of(page), "device": "phone-1"})
        assert "Not revoked: no device named &#39;phone-1&#39;" in (await c.get("/")).text

    run(app, HERE, "http", body)
