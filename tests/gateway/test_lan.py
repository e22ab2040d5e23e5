"""A phone on the LAN (issue #23): ``calsync serve --lan``, ``calsync pair``, one scan.

The phone is another network namespace (``netns.TestHost``): it reaches the
gateway at a LAN address, over plain HTTP for the pairing page and TLS for
everything else, and sees the mDNS announcements.  What it got from the
pairing page is then used by real clients: the ``caldav`` library, given
exactly the profile's fields and its CA, and SyncEvolution trusting only
that CA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import plistlib
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import caldav
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import event
from tests.gateway import qr
from tests.gateway.helpers import DaemonProcess, wait_for
from tests.gateway.netns import TestHost
from tests.gateway.test_pairing import CONFIG, OWN

pytestmark = pytest.mark.slow

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"

# runs on the phone: GET each URL with one cookie jar, print the answers as JSON
PHONE = """
import base64, json, sys, httpx
steps = json.loads(sys.argv[1])
out = []
with httpx.Client(timeout=20, headers={"User-Agent": steps["agent"]}) as c:
    for method, url in steps["requests"]:
        try:
            r = c.request(method, url)
        except httpx.HTTPError as e:
            out.append({"error": repr(e)})
            continue
        out.append({"status": r.status_code, "type": r.headers.get("content-type", ""),
                    "cookie": r.headers.get("set-cookie", ""),
                    "body": base64.b64encode(r.content).decode()})
print(json.dumps(out))
"""

# runs on the phone: browse DNS-SD for a while, one JSON line per event
BROWSER = """
import json, sys, time
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf
zc = Zeroconf()
def on(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Added:
        info = zeroconf.get_service_info(service_type, name, timeout=5000)
        print(json.dumps({"event": "added", "type": service_type, "name": name,
            "port": info.port if info else None, "server": info.server if info else None,
            "path": (info.properties.get(b"path") or b"").decode() if info else None,
            "addresses": info.parsed_addresses() if info else []}), flush=True)
    elif state_change is ServiceStateChange.Removed:
        print(json.dumps({"event": "removed", "type": service_type, "name": name}), flush=True)
ServiceBrowser(zc, ["_caldavs._tcp.local.", "_https._tcp.local."], handlers=[on])
print(json.dumps({"event": "browsing"}), flush=True)
time.sleep(float(sys.argv[1]))
zc.close()
"""


def lan_daemon(tmp: Path, address: str, *, mdns: bool = False) -> DaemonProcess:
    """``calsync serve --lan`` bound to ``address``, as the user would run it."""
    (tmp / "dir").mkdir(parents=True, exist_ok=True)
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "On the computer"))
    config = tmp / "config.toml"
    text = CONFIG.format(tmp=tmp, password=OWN) + f"[server]\nmdns = {str(mdns).lower()}\n"
    config.write_text(text, encoding="utf-8")
    config.chmod(0o600)
    return DaemonProcess(tmp, config, "--lan", host=address)


def pair(daemon: DaemonProcess, device: str) -> dict[str, Any]:
    """``calsync pair test --device DEVICE --json``: the offer."""
    out = daemon.cli("pair", "test", "--device", device, "--json")
    assert out.returncode == 0, out.stderr
    offer: dict[str, Any] = json.loads(out.stdout)
    return offer


def phone_get(phone: TestHost, *urls: str, agent: str = IPHONE, method: str = "GET") -> list[Any]:
    """GET ``urls`` from the phone with one cookie jar (the answers, bodies decoded)."""
    steps = {"agent": agent, "requests": [[method, u] for u in urls]}
    out = phone.python(PHONE, json.dumps(steps))
    assert out.returncode == 0, out.stderr
    answers: list[Any] = json.loads(out.stdout)
    for a in answers:
        if "body" in a:
            a["body"] = base64.b64decode(a["body"])
    return answers


def password_on(page: bytes) -> str:
    found = re.search(r"<dt>Password</dt><dd><code>([^<]+)</code>", page.decode())
    assert found, page[:500]
    return found.group(1)


@pytest.fixture
def lan(tmp_path: Path) -> Any:
    with TestHost() as phone:
        daemon = lan_daemon(tmp_path, phone.here)
        try:
            yield phone, daemon
        finally:
            daemon.stop()


def test_a_phone_on_the_lan_pairs_with_one_scan_and_syncs_over_tls(
    lan: tuple[TestHost, DaemonProcess], tmp_path: Path
) -> None:
    phone, daemon = lan
    base_plain = f"http://{phone.here}:{daemon.port}"
    # the phone's plain HTTP gets nothing but the pairing page, before and during pairing
    refused = ["/api/status", "/dav/", "/", "/feeds/x.ics", "/.well-known/caldav"]
    for answer in phone_get(phone, *(base_plain + p for p in refused)):
        assert answer["status"] == 403, answer
    [answer] = phone_get(phone, base_plain + "/sync", method="POST")
    assert answer["status"] == 403, answer

    offer = pair(daemon, "iphone")
    assert offer["url"].startswith(f"{base_plain}/pair/"), offer
    assert qr.from_terminal(offer["qr_text"]) == [offer["url"]]
    assert qr.from_svg(offer["qr_svg"]) == [offer["url"]]
    for answer in phone_get(phone, *(base_plain + p for p in refused)):
        assert answer["status"] == 403, answer

    # the scan: the page (the fingerprint to compare), then the profile, then the CA
    page, profile_answer, ca_answer = phone_get(
        phone, offer["url"], offer["url"] + "/calsync.mobileconfig", offer["url"] + "/ca.crt"
    )
    assert page["status"] == 200 and offer["ca_fingerprint"] in page["body"].decode()
    assert "HttpOnly" in page["cookie"] and "SameSite=strict" in page["cookie"]
    assert profile_answer["status"] == 200, profile_answer
    assert profile_answer["type"] == "application/x-apple-aspen-config"
    ca_der = ca_answer["body"]
    assert ca_answer["type"] == "application/x-x509-ca-cert"
    fp = ":".join(f"{b:02X}" for b in hashlib.sha256(ca_der).digest())
    assert fp == offer["ca_fingerprint"]
    # another device opening the same link: gone
    [stranger] = phone_get(phone, offer["url"])
    assert stranger["status"] == 410

    profile = plistlib.loads(profile_answer["body"])
    for p in [profile, *profile["PayloadContent"]]:
        for key in ("PayloadType", "PayloadIdentifier", "PayloadUUID", "PayloadVersion"):
            assert key in p, (key, p)
    root = next(
        p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.security.root"
    )
    dav = next(
        p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.caldav.account"
    )
    assert root["PayloadContent"] == ca_der
    assert dav["CalDAVUseSSL"] is True and dav["CalDAVPort"] == daemon.port
    assert dav["CalDAVHostName"] == phone.here  # no mDNS here: the address it reached

    # the CalDAV account in the profile works: the caldav library, given exactly those
    # fields and the CA (nothing else trusted), lists, reads and writes the calendar
    ca_file = tmp_path / "phone-ca.pem"
    ca_file.write_bytes(
        x509.load_der_x509_certificate(ca_der).public_bytes(serialization.Encoding.PEM)
    )
    scheme = "https" if dav["CalDAVUseSSL"] else "http"
    assert dav["CalDAVPrincipalURL"].startswith(
        f"{scheme}://{dav['CalDAVHostName']}:{dav['CalDAVPort']}/"
    )
    client = caldav.DAVClient(
        url=dav["CalDAVPrincipalURL"],
        username=dav["CalDAVUsername"],
        password=dav["CalDAVPassword"],
        ssl_verify_cert=str(ca_file),
    )
    calendars = client.principal().calendars()
    assert [c.url.path.rstrip("/").rsplit("/", 1)[1] for c in calendars] == ["dir"]
    cal = calendars[0]
    assert "On the computer" in [str(e.icalendar_component["SUMMARY"]) for e in cal.events()]
    cal.save_event(event("from-iphone", "Made on the iPhone").decode())
    wait_for(
        lambda: any(b"Made on the iPhone" in f.read_bytes() for f in (tmp_path / "dir").iterdir()),
        10,
        "the iPhone's event in the store",
    )
    # a client that trusts only the system's CAs refuses the server
    with pytest.raises(Exception, match=r"(?i)certificate"):
        caldav.DAVClient(
            url=dav["CalDAVPrincipalURL"],
            username=dav["CalDAVUsername"],
            password=dav["CalDAVPassword"],
        ).principal()

    # secrets on disk are the user's only
    state = tmp_path / "state"
    for secret in (state / "tls" / "ca.key", state / "tls" / "server.key",
                   state / "app-passwords.json"):  # fmt: skip
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    listed = daemon.cli("devices", "--json")
    assert [d["name"] for d in json.loads(listed.stdout)["devices"]] == ["iphone"]
    assert dav["CalDAVPassword"] not in listed.stdout + daemon.logs()
    shown = daemon.cli("devices", "--show", "iphone")
    assert shown.returncode == 0 and dav["CalDAVPassword"] in shown.stdout

    # revoked: 401 at once
    out = daemon.cli("devices", "revoke", "iphone")
    assert out.returncode == 0, out.stderr
    with pytest.raises(Exception, match=r"(?i)unauthori[sz]ed|401"):
        caldav.DAVClient(
            url=dav["CalDAVPrincipalURL"],
            username=dav["CalDAVUsername"],
            password=dav["CalDAVPassword"],
            ssl_verify_cert=str(ca_file),
        ).principal().calendars()


@pytest.mark.peer
def test_syncevolution_pairs_over_tls_with_only_the_generated_ca(
    lan: tuple[TestHost, DaemonProcess], tmp_path: Path
) -> None:
    """A SyncML client set up from the pairing page (server URL, user, password) and the
    CA it offers syncs over TLS, with md5 and basic; revoked, it is refused."""
    from tests.syncml.test_syncevolution import Peer, _trust

    phone, daemon = lan
    offer = pair(daemon, "sephone")
    _, account, ca = phone_get(
        phone, offer["url"], offer["url"] + "/account", offer["url"] + "/ca.crt"
    )
    assert account["status"] == 200
    text = account["body"].decode()
    password = password_on(account["body"])
    sync_url = f"https://{phone.here}:{daemon.port}/sync"
    assert sync_url in text and ">calendar<" in text.replace("<code>", ">").replace(",", "<")
    ca_file = tmp_path / "se-ca.pem"
    ca_file.write_bytes(
        x509.load_der_x509_certificate(ca["body"]).public_bytes(serialization.Encoding.PEM)
    )
    se = Peer(sync_url, tmp_path / "se", stores="calendar", password=password)
    _trust(se, ca_file)
    se.write("p.ics", "p", "On the SyncML phone")
    se.sync("slow")
    assert {"e1", "p"} <= set(se.items())
    wait_for(
        lambda: any(b"On the SyncML phone" in f.read_bytes() for f in (tmp_path / "dir").iterdir()),
        10,
        "the phone's event in the store",
    )
    basic = Peer(sync_url, tmp_path / "se-basic", stores="calendar", password=password,
                 auth="basic", device="sc-test-client-2")  # fmt: skip
    _trust(basic, ca_file)
    basic.sync("slow")
    assert {"e1", "p"} <= set(basic.items())
    # revoked: the next session is refused, and nothing moves
    assert daemon.cli("devices", "revoke", "sephone").returncode == 0
    se.write("q.ics", "q", "After the revocation")
    run = se.sync("two-way", expect_ok=False)
    assert not run.ok
    assert "status=401" in run.output, run.output  # refused as a login, not otherwise
    assert not any(b"After the revocation" in f.read_bytes() for f in (tmp_path / "dir").iterdir())


def test_the_gateway_is_announced_over_mdns_and_withdrawn(tmp_path: Path) -> None:
    """A DNS-SD browser on the phone finds _caldavs._tcp (port, path=/dev/) and
    _https._tcp naming <host>.local at the gateway's address; gone on shutdown."""
    with TestHost() as phone:
        browser = subprocess.Popen(
            phone.command(sys.executable, "-c", BROWSER, "90"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        events: list[dict[str, Any]] = []
        try:
            assert browser.stdout is not None
            assert json.loads(browser.stdout.readline())["event"] == "browsing"
            daemon = lan_daemon(tmp_path, phone.here, mdns=True)
            try:
                deadline = time.monotonic() + 30
                while (
                    time.monotonic() < deadline
                    and len({e["type"] for e in events if e["event"] == "added"}) < 2
                ):
                    line = browser.stdout.readline()
                    if not line:
                        break
                    events.append(json.loads(line))
            finally:
                daemon.stop()
            added = {e["type"]: e for e in events if e["event"] == "added"}
            assert set(added) == {"_caldavs._tcp.local.", "_https._tcp.local."}, events
            host = socket.gethostname().split(".")[0].lower()
            dav = added["_caldavs._tcp.local."]
            assert (dav["port"], dav["path"]) == (daemon.port, "/dav/"), dav
            assert dav["addresses"] == [phone.here] and dav["server"] == f"{host}.local."
            assert added["_https._tcp.local."]["path"] == "/"
            # withdrawn on shutdown: goodbye packets
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = browser.stdout.readline()
                if not line:
                    break
                events.append(json.loads(line))
                if {e["type"] for e in events if e["event"] == "removed"} == set(added):
                    break
            removed = {e["type"] for e in events if e["event"] == "removed"}
            assert removed == set(added), events
        finally:
            browser.kill()
            browser.wait(10)
    assert os.path.exists(tmp_path / "state" / "tls" / "ca.pem")
    ssl.create_default_context(cafile=str(tmp_path / "state" / "tls" / "ca.pem"))
