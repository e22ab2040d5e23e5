"""The ``syncml`` store's configuration: keys, choices, secrets, warnings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from calsync.config import parse as parse_config
from calsync.stores.syncml import SyncMLStore, sessions_for
from calsync.sync.runner import run_pair
from tests.syncml_client.harness import (
    LOOP_URL,
    Loopback,
    client_section,
    items_in,
    pair_config,
    put,
)


def errors_of(section: str) -> list[str]:
    _, errors = parse_config(f"[stores.s]\n{section}\n")
    return [str(e) for e in errors]


def test_required_keys_choices_and_unknown_keys_are_named() -> None:
    errs = errors_of('type = "syncml"\nusername = "u"\npassword = "p"')
    assert any("stores.s.url" in e and "required" in e for e in errs)
    assert any("stores.s.device_id" in e and "required" in e for e in errs)
    errs = errors_of(client_section(LOOP_URL).replace('"ical20"', '"vcal"'))
    assert any("stores.s.format" in e and "ical20, vcal10" in e for e in errs)
    errs = errors_of(client_section(LOOP_URL).replace('"wbxml"', '"json"'))
    assert any("stores.s.encoding" in e for e in errs)
    errs = errors_of(client_section(LOOP_URL) + 'colour = "red"\n')
    assert any("stores.s.colour" in e and "unknown key" in e for e in errs)
    assert errors_of(client_section(LOOP_URL)) == []


def test_no_password_is_a_clear_error(tmp_path: Path) -> None:
    section = client_section(LOOP_URL).replace('password = "test"\n', "")
    r = run_pair(pair_config(tmp_path, section), "p")
    assert r.stopped and "needs password or password_command" in r.stopped


def test_password_command_and_the_credentials_never_in_the_url(
    tmp_path: Path, loopback: Loopback
) -> None:
    section = client_section(LOOP_URL).replace(
        'password = "test"', 'password_command = "echo test"'
    )
    put(loopback.store, "s1.ics", "s1", "S1")
    r = run_pair(pair_config(tmp_path, section), "p")
    assert not r.stopped and not r.errors, r
    assert items_in(tmp_path / "local") == {"s1": "S1"}
    inline = client_section("http://test:test@127.0.0.1:1/sync")
    r = run_pair(pair_config(tmp_path / "x", inline), "p")
    assert r.stopped and "not in url" in r.stopped and "test:test" not in r.stopped


def test_plain_http_to_another_host_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    cfg = pair_config(tmp_path, client_section("http://sync.example.org/sync", auth="basic"))
    store = cfg.store("server")
    assert isinstance(store, SyncMLStore)
    store._client()
    store.close()
    assert "plain http: the calendar and the password travel unencrypted" in caplog.text
    caplog.clear()
    cfg = pair_config(tmp_path / "y", client_section("http://127.0.0.1:8765/sync"))
    store = cfg.store("server")
    assert isinstance(store, SyncMLStore)
    store._client()
    store.close()
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("mode", "side", "sessions"),
    [
        ("two-way", "b", (200, 200)),
        ("slow", "a", (201, 200)),
        ("one-way-a-to-b", "b", (200, 200)),
        ("one-way-a-to-b", "a", (204, None)),
        ("refresh-from-b", "b", (205, None)),
        ("refresh-from-b", "a", (None, 203)),
    ],
)
def test_engine_modes_map_to_sync_types(mode: str, side: str, sessions: tuple[int, int]) -> None:
    assert sessions_for(mode, side) == sessions
