"""The web page in a real browser: Debian's chromium, driven by Playwright.

A real daemon (``calsync serve``) serves the page; chromium opens it, reads
the pairs and devices, opens a conflict made by editing both stores, keeps
the losing version and finds it in the store files, and presses "sync now"
and watches the result arrive without reloading.  It presses "Pair a phone",
reads the QR code back from a screenshot of it (zxing-cpp), opens the URL
it encodes as a phone would, and revokes the device the phone became.  From
another machine's
point of view (the daemon listening on this machine's LAN address, over
TLS), the browser logs in through the form and gets a Secure, HttpOnly,
SameSite=Strict cookie.

Chromium comes from Debian (``scripts/test.sh`` installs it); Playwright
drives it (no browser of Playwright's own: none can be downloaded here).  A
browser that cannot start fails these tests: the page is not tested then.
"""

from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import event
from tests.gateway.helpers import DEVICES, PASSWORD, DaemonProcess, wait_for, write_config
from tests.gateway.test_lan import password_on
from tests.pki import make_pki

pytestmark = [pytest.mark.peer, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000  # a loaded machine: generous


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A browser context in a new, empty profile (chromium must start: no skip)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            ignore_https_errors=True,  # the test CA is not in the browser's store
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def conflict_in_both_stores(tmp: Path) -> None:
    """e1 edited in the vdir (newer) and in the .ics file (older)."""
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "Dir edit", last_modified="20250301T000000Z"))
    ics = tmp / "file.ics"
    ics.write_bytes(
        ics.read_bytes()
        .replace(b"SUMMARY:First", b"SUMMARY:File edit")
        .replace(b"LAST-MODIFIED:20250101T000000Z", b"LAST-MODIFIED:20250201T000000Z")
    )


def synced_once(d: DaemonProcess, tmp: Path) -> None:
    ics = tmp / "file.ics"
    r = d.api("POST", "/api/sync", json={"wait": True})
    assert r.status_code == 200, r.text
    assert ics.exists() and b"SUMMARY:First" in ics.read_bytes()


def test_the_page_in_chromium_shows_pairs_devices_and_decides_a_conflict(
    tmp_path: Path, browser: Any
) -> None:
    config = write_config(tmp_path, DEVICES)
    with DaemonProcess(tmp_path, config, "--no-watch") as d:
        synced_once(d, tmp_path)
        # a phone's CalDAV app logs in: it is a device on the page
        r = httpx.request(
            "PROPFIND",
            d.url + "/dav/alice/",
            auth=("alice", PASSWORD),
            headers={"Depth": "0", "User-Agent": "DAVx5/4.4.1-ose (Android 14)"},
        )
        assert r.status_code == 207, r.text
        page = browser.new_page()
        page.goto(d.url + "/")
        pair = page.locator('article[data-pair="p"]')
        assert "dir" in pair.locator(".stores").inner_text()
        assert "file" in pair.locator(".stores").inner_text()
        assert pair.get_attribute("data-outcome") == "ok"
        assert pair.locator("svg.spark rect").count() >= 1  # the runs plot
        device = page.locator("li.device", has_text="DAVx5/4.4.1-ose")
        assert device.locator(".badge").inner_text() == "CalDAV"
        assert device.locator(".device-pairs").inner_text() == "p"

        # a conflict: both stores edited, one sync (newest: the vdir's wins)
        conflict_in_both_stores(tmp_path)
        result = d.api("POST", "/api/sync", json={"wait": True}).json()
        assert result["pairs"]["p"]["conflicts"] == 1
        assert b"SUMMARY:Dir edit" in (tmp_path / "file.ics").read_bytes()
        page.goto(d.url + "/")
        page.locator("li.conflict a", has_text="e1").click()
        page.wait_for_url("**/web/conflicts/*")
        row = page.locator('table.diff tr[data-property="SUMMARY"]')
        assert row.locator("td.side-a").inner_text() == "Dir edit"
        assert row.locator("td.side-b").inner_text() == "File edit"
        # keep the loser (the file's version): both stores hold it at once
        page.locator("#keep-b").click()
        page.locator("#resolved").wait_for()
        assert "kept b" in page.locator("#resolved").inner_text()
        assert "Kept the second version" in page.locator(".flash").inner_text()
        assert b"SUMMARY:File edit" in (tmp_path / "dir" / "e1.ics").read_bytes()
        assert b"SUMMARY:File edit" in (tmp_path / "file.ics").read_bytes()
        wait_for(lambda: d.idle("p"), 30, "the pair to sync the decision")
        assert b"SUMMARY:File edit" in (tmp_path / "dir" / "e1.ics").read_bytes()
        # the item's history: the replaced version, with a restore button
        page.locator("a", has_text="History of e1").click()
        page.wait_for_url("**/web/history?uid=e1")
        saved = page.locator("li.version", has_text="resolve").first
        assert "Dir edit" in saved.locator("pre").text_content()

        # sync now: a new event in the vdir (no watcher), the button, the result live
        (tmp_path / "dir" / "e2.ics").write_bytes(event("e2", "Second"))
        page.goto(d.url + "/")
        runs_before = d.runs("p")
        page.locator('article[data-pair="p"] button.sync-now').click()
        page.locator(".flash", has_text="Sync of p queued").wait_for()
        counts = page.locator('article[data-pair="p"] .counts')
        counts.filter(has_text="1 added in file").wait_for()  # by the page's own refresh
        assert d.runs("p") > runs_before
        assert b"SUMMARY:Second" in (tmp_path / "file.ics").read_bytes()
        assert "Traceback" not in d.logs()


def test_pair_a_phone_from_the_page_scan_it_and_revoke_it(tmp_path: Path, browser: Any) -> None:
    import zxingcpp
    from PIL import Image

    config = write_config(tmp_path, DEVICES + "[server]\nmdns = false\n")
    with DaemonProcess(tmp_path, config, "--no-watch", "--lan") as d:
        page = browser.new_page()
        page.goto(d.url + "/")
        page.select_option("#pair-account", "alice")  # two accounts: alice and phone
        page.fill("#pair-device", "my-phone")
        page.click("#pair-button")
        qr = page.locator("#pair-qr svg")
        qr.wait_for()
        assert page.url == d.url + "/"  # in place (htmx), not a new page
        shown = page.locator("#pair-url").inner_text().strip()
        assert re.fullmatch(rf"http://127\.0\.0\.1:{d.port}/pair/[\w-]+", shown), shown
        # the QR code as the screen shows it, read as a phone's camera would
        picture = Image.open(io.BytesIO(qr.screenshot())).convert("L")
        assert [r.text for r in zxingcpp.read_barcodes(picture)] == [shown]
        fp = page.locator("#pair-fingerprint").inner_text().strip()
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp), fp
        left = page.locator("#pair-left")  # the script counts the 10 minutes down
        wait_for(lambda: re.fullmatch(r"9:[0-5]\d left", left.inner_text()), 30, "a countdown")
        # the phone opens the URL: the pairing page, with the same fingerprint
        with httpx.Client(headers={"User-Agent": "DAVx5/4.4.1-ose (Android 14)"}) as phone:
            landing = phone.get(shown, timeout=30)
            assert landing.status_code == 200 and fp in landing.text, landing.text[:300]
            password = password_on(phone.get(shown + "/account", timeout=30).content)
        r = httpx.request(
            "PROPFIND",
            d.url + "/dav/alice/",
            auth=("alice", password),
            headers={"Depth": "0", "User-Agent": "DAVx5/4.4.1-ose (Android 14)"},
            timeout=30,
        )
        assert r.status_code == 207, r.text
        # one row: the paired device, with what logged in with its password (live)
        row = page.locator('li.device[data-paired="my-phone"]')
        row.locator(".device-detail", has_text="DAVx5/4.4.1-ose").wait_for()
        assert row.locator(".badge").first.inner_text() == "CalDAV"
        assert row.locator(".device-pairs").inner_text() == "p"
        assert time.strftime("%Y-%m-%d") in row.locator(".device-seen").inner_text()
        assert page.locator("li.device", has_text="DAVx5/4.4.1-ose").count() == 1
        # revoke it from the page (after the confirmation): gone, its password refused
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button.revoke").click()
        page.locator(".flash", has_text="my-phone is revoked").wait_for()
        assert page.locator('li.device[data-paired="my-phone"]').count() == 0
        r = httpx.request("PROPFIND", d.url + "/dav/alice/", auth=("alice", password), timeout=30)
        assert r.status_code == 401
        assert "device.revoked" in d.logs() and password not in d.logs()
        assert shown not in d.logs()  # the one-time URL is not logged
        assert "Traceback" not in d.logs()


def lan_address() -> str:
    """This machine's address on its LAN (not loopback): the route's source address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # no packet is sent (UDP connect)
        except OSError as e:
            raise AssertionError(f"this machine has no network address to test with: {e}") from e
        address = str(s.getsockname()[0])
    assert not address.startswith("127."), address
    return address


def test_from_the_lan_the_browser_logs_in_over_tls(tmp_path: Path, browser: Any) -> None:
    address = lan_address()
    ca, cert, key = make_pki(tmp_path / "pki", ips=("127.0.0.1", address))
    extra = (
        DEVICES
        + f"""
[server]
allow_remote = true
tls_cert = "{cert}"
tls_key = "{key}"
"""
    )
    config = write_config(tmp_path, extra)
    port = _free_port(address)
    with DaemonProcess(tmp_path, config, "--no-watch", "--listen", f"{address}:{port}") as d:
        base = f"https://{address}:{port}"
        # plain HTTP from this address is another machine's: refused (403, or no
        # answer at all from a port that speaks TLS only)
        try:
            plain = httpx.get(f"http://{address}:{port}/", timeout=30).status_code
        except httpx.RemoteProtocolError:
            plain = None
        assert plain in (None, 403), plain
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_url("**/web/login")
        page.fill("#user", "alice")
        page.fill("#password", "wrong")
        page.click("button[type=submit]")
        page.locator(".problem", has_text="Wrong user name or password").wait_for()
        page.fill("#user", "alice")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.locator('article[data-pair="p"]').wait_for()
        # alice's page: "Pair a phone" for her alone (no account to choose; phone is
        # another account, whose devices and pairing she never sees)
        page.locator("#pair-button").wait_for()
        assert page.locator("#pair-account").count() == 0
        (cookie,) = [c for c in browser.cookies() if c["name"].startswith("__Host-calsync")]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] not in page.url and PASSWORD not in page.content()
        # log out: back at the form, and the old cookie opens nothing
        page.click("text=Log out")
        page.wait_for_url("**/web/login")
        r = httpx.get(base + "/", cookies={cookie["name"]: cookie["value"]}, verify=str(ca))
        assert r.status_code == 303 and r.headers["location"] == "/web/login"
        assert d.proc.poll() is None


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])
