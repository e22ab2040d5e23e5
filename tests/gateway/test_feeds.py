"""Subscription feeds: ``/feeds/<name>.ics`` of a real ``calsync serve``, read by
curl (a real subprocess, conditional requests) and parsed by ``icalendar``.

Decided and documented (gateway/feeds.py): a request without the right token or
credentials gets 401 with a Basic challenge for an existing and an unknown feed
alike, so the answer never tells which feeds exist; a logged-in user asking for
a feed that is not theirs gets 404.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import icalendar
import pytest

from calsync.config import load as load_config
from calsync.gateway.app import create_app
from calsync.gateway.feeds import FeedsFeature
from tests.gateway.helpers import DaemonProcess

PAST = "20200101T100000Z"


def ics(uid: str, start: str, summary: str, extra: str = "", tz: str = "") -> bytes:
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\n"
        if tz
        else ""
    )
    when = f"DTSTART;TZID=Europe/Berlin:{start}" if tz else f"DTSTART:{start}"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"{zone}BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n{when}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("curl")
    assert tool, "curl is not installed: scripts/test.sh installs it"
    return subprocess.run([tool, "-s", "-S", *args], capture_output=True, timeout=60)


def head_of(out: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of ``curl -i`` output."""
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "old.ics").write_bytes(ics("old@test", PAST, "Long ago"))
    (hub / "series.ics").write_bytes(
        ics("series@test", "20200106T100000", "Weekly", "RRULE:FREQ=WEEKLY\r\n", tz="yes")
    )
    (hub / "soon.ics").write_bytes(ics("soon@test", "20990101T100000", "Later", tz="yes"))
    (hub / "todo.ics").write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
        b"UID:todo@test\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Chore\r\nEND:VTODO\r\n"
        b"END:VCALENDAR\r\n"
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[stores.hub]\ntype = "vdir"\npath = "{hub}"\n'
        f'[stores.other]\ntype = "vdir"\npath = "{tmp_path / "other"}"\n'
        '[feeds.family]\nstore = "hub"\nname = "Family, all"\n'
        'components = ["VEVENT"]\npast_days = 30\n'
        '[caldav.users.alice]\npassword = "alice-secret-pw"\ncalendars = ["hub"]\n'
        '[caldav.users.bob]\npassword = "bob-secret-pw"\ncalendars = ["other"]\n'
    )
    os.chmod(config, 0o600)
    (tmp_path / "other").mkdir()
    return config, hub


@pytest.mark.slow
def test_feed_through_curl(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    config, hub = setup
    with DaemonProcess(tmp_path, config) as daemon:
        listed = daemon.cli("feeds", "--json")
        assert listed.returncode == 0, listed.stderr
        feed = json.loads(listed.stdout)[0]
        url = feed["url"]
        token = url.split("token=")[1]
        assert url == f"{daemon.url}/feeds/family.ics?token={token}" and len(token) >= 16
        assert feed["webcal"] == "webcal://" + url.split("://")[1]
        tokens = tmp_path / "xdg-config" / "calsync" / "feed-tokens.json"
        assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
        assert json.loads(tokens.read_text()) == {"family": token}
        assert token not in daemon.logs()  # stderr is the daemon's log (the journal)

        status, headers, body = head_of(curl("-i", url).stdout)
        assert status == 200
        assert headers["content-type"] == "text/calendar; charset=utf-8"
        assert headers["last-modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"
        etag = headers["etag"]
        cal = icalendar.Calendar.from_ical(body)
        assert b"\r\nX-WR-CALNAME:Family\\, all\r\n" in body  # TEXT, escaped
        summaries = sorted(str(e["SUMMARY"]) for e in cal.walk("VEVENT"))
        assert summaries == ["Later", "Weekly"]  # past event left out, the series kept
        assert cal.walk("VTODO") == []  # components = ["VEVENT"]
        assert [str(z["TZID"]) for z in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]  # once

        status, headers, body = head_of(curl("-i", "-H", f"If-None-Match: {etag}", url).stdout)
        assert (status, body, headers["etag"]) == (304, b"", etag)
        status, headers, body = head_of(curl("-i", "-I", url).stdout)  # HEAD
        assert status == 200 and body == b"" and headers["etag"] == etag

        (hub / "new.ics").write_bytes(ics("new@test", "20990202T100000Z", "Added"))
        status, headers, body = head_of(curl("-i", "-H", f"If-None-Match: {etag}", url).stdout)
        assert status == 200 and headers["etag"] != etag
        assert b"SUMMARY:Added" in body

        # without the token: 401 with a challenge, the same for a feed that does not exist
        base = f"{daemon.url}/feeds"
        for bad in (f"{base}/family.ics", f"{base}/family.ics?token=wrong", f"{base}/nope.ics",
                    f"{base}/nope.ics?token={token}"):  # fmt: skip
            status, headers, body = head_of(curl("-i", bad).stdout)
            assert status == 401 and headers["www-authenticate"].startswith("Basic"), bad
            assert b"BEGIN:VCALENDAR" not in body
        # a CalDAV user of the store may log in instead; one of another store may not
        status, _, body = head_of(
            curl("-i", "-u", "alice:alice-secret-pw", f"{base}/family.ics").stdout
        )
        assert status == 200 and b"SUMMARY:Added" in body
        assert head_of(curl("-i", "-u", "bob:bob-secret-pw", f"{base}/family.ics").stdout)[0] == 404
        assert (
            head_of(curl("-i", "-u", "alice:alice-secret-pw", f"{base}/nope.ics").stdout)[0] == 404
        )
        assert head_of(curl("-i", "-u", "alice:wrong", f"{base}/family.ics").stdout)[0] == 401
        log = daemon.logs()
        assert "feed family: a wrong token" in log
        assert token not in log  # neither at start nor for a request


@pytest.mark.slow
def test_serve_shows_feed_tokens_only_when_asked(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    """The start banner goes to stderr, the daemon's log (the journal under systemd):
    a feed's URL there has no token (found by tests/adversarial).  As the embedded
    default's password, the URL with its token is printed on stdout with
    --show-credentials."""
    config, _ = setup
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with DaemonProcess(tmp_path / "a", config) as daemon:
        token = json.loads(
            (tmp_path / "a" / "xdg-config" / "calsync" / "feed-tokens.json").read_text()
        )["family"]
        assert f"feed family at {daemon.url}/feeds/family.ics (" in daemon.logs()
        assert "calsync feeds" in daemon.logs()
    assert token not in daemon.logs() + daemon.out.read_text()
    with DaemonProcess(tmp_path / "b", config, "--show-credentials") as daemon:
        token = json.loads(
            (tmp_path / "b" / "xdg-config" / "calsync" / "feed-tokens.json").read_text()
        )["family"]
        assert token not in daemon.logs()
    assert f"/feeds/family.ics?token={token}" in daemon.out.read_text()


def test_plain_http_from_another_machine_is_refused(setup: tuple[Path, Path]) -> None:
    config, _ = setup
    cfg = load_config(config)
    app = create_app([FeedsFeature.from_config(cfg)])
    # a request from another machine's address, over plain HTTP
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/feeds/family.ics?token=whatever")

    answer = asyncio.run(get())
    assert answer.status_code == 403 and "TLS" in answer.text


@pytest.mark.parametrize("guess", ["token", "password"])
def test_simultaneous_guesses_are_held_to_the_budget(setup: tuple[Path, Path], guess: str) -> None:
    """30 wrong tokens or passwords sent at once from one address: the first 10 are
    checked, the rest refused (429).  The check of a password ran in a thread after
    the throttle was asked, so every simultaneous guess was tested (found by
    tests/adversarial)."""
    config, _ = setup
    app = create_app([FeedsFeature.from_config(load_config(config))])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 40000))

    async def guesses() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            if guess == "token":
                calls = [client.get(f"/feeds/family.ics?token=guess-{n:020}") for n in range(30)]
            else:
                calls = [
                    client.get("/feeds/family.ics", auth=("alice", f"guess-{n}")) for n in range(30)
                ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert sorted(asyncio.run(guesses())) == [401] * 10 + [429] * 20


def test_config_checks(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    text = config.read_text()
    config.write_text(text + '[feeds.bad]\nstore = "nope"\ntoken = "short"\n')
    from calsync.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    assert "feeds.bad" in message
