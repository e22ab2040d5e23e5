"""Whole accounts against the four real servers: discovery, ``collections``
creating calendars (MKCALENDAR), mapped names, metadata both ways, and a
calendar deleted on one side reported, not propagated."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli.group import cli
from calsync.config import Config, parse
from calsync.stores.caldav import xml
from calsync.stores.caldav.discovery import account
from calsync.sync.runner import run_pair
from tests.conftest import event
from tests.stores.caldav.helpers import server_uids, vdir_uids
from tests.stores.caldav.peers import PASSWORD, USER, Peer

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def account_config(tmp_path: Path, peer: Peer, collections: str, **pair: str) -> Config:
    """a = a folder of vdirs, b = the peer's account (its calendar home)."""
    lines = [
        "[general]",
        f'state_dir = "{tmp_path / "state"}"',
        "[stores.local]",
        'type = "vdir"',
        f'path = "{tmp_path / "local"}"',
        "create = true",
        "[stores.server]",
        'type = "caldav"',
        f'url = "{peer.home}"',
        f'username = "{USER}"',
        f'password = "{PASSWORD}"',
        f"verify_tls = {'true' if peer.verify else 'false'}",
        "[pairs.acct]",
        'a = "local"',
        'b = "server"',
        f"collections = {collections}",
        *(f"{k} = {v}" for k, v in pair.items()),
    ]
    text = "\n".join(lines) + "\n"
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    cfg, errors = parse(text, path)
    assert not errors, errors
    return cfg


def props(peer: Peer, url: str) -> dict[str, str | None]:
    c = peer.client()
    try:
        resp = c.propfind(url, ["D:displayname", "A:calendar-color"], "0")
    finally:
        c.close()
    r = resp.multistatus().responses[0]
    return {"displayname": r.text(xml.DISPLAYNAME), "color": r.text(xml.CALENDAR_COLOR)}


def proppatch(peer: Peer, url: str, values: dict[str, str | None]) -> None:
    c = peer.client()
    try:
        resp = c.request("PROPPATCH", url, xml.proppatch(values))
    finally:
        c.close()
    assert resp.status == 207 and not xml.refused_props(resp.body), resp.body[:300]


def test_discover_lists_the_accounts_calendars(peer: Peer, tmp_path: Path) -> None:
    name = f"d-{uuid.uuid4().hex[:8]}"
    url = peer.mkcalendar(comps=("VTODO",), name=name)
    try:
        args = ["discover", peer.home, "--username", USER, "--json"]
        if not peer.verify:  # a self-signed server: through a configured store
            cfg = account_config(tmp_path, peer, '"from a"')
            args = ["--config", str(cfg.path), "discover", "server", "--json"]
        got = CliRunner().invoke(cli, args, env={"CALSYNC_PASSWORD": PASSWORD})
        assert got.exit_code == 0, got.output
        found = {c["name"]: c for c in json.loads(got.output)["collections"]}
        assert name in found, found
        assert found[name]["href"].rstrip("/").endswith(name)
        assert found[name]["components"] == ["VTODO"]
        assert found[name]["read_only"] is False
        assert found[name]["displayname"] == name
    finally:
        peer.rmcalendar(url)


def test_from_a_creates_calendars_with_metadata(peer: Peer, tmp_path: Path) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "local" / name
    folder.mkdir(parents=True)
    (folder / "displayname").write_text("Work (calsync)")
    (folder / "color").write_text("#FF8800")
    (folder / "e1.ics").write_bytes(event("e1", "in a new calendar"))
    cfg = account_config(tmp_path, peer, '"from a"', metadata='["displayname", "color"]')
    url = f"{peer.home}{name}/"
    try:
        result = run_pair(cfg, "acct")
        assert not result.stopped and not result.errors, result.to_json()
        assert result.collections is not None and name in result.collections
        c = peer.client()
        try:
            assert server_uids(c, url) == {"e1": 1}
        finally:
            c.close()
        got = props(peer, url)
        assert got["displayname"] == "Work (calsync)"
        assert (got["color"] or "").upper().startswith("#FF8800")
        again = run_pair(cfg, "acct")
        assert again.changes == 0 and not again.errors, again.to_json()
    finally:
        peer.rmcalendar(url)


def test_mapped_names_and_metadata_both_ways(peer: Peer, tmp_path: Path) -> None:
    remote = f"m-{uuid.uuid4().hex[:8]}"
    url = peer.mkcalendar(name=remote)
    folder = tmp_path / "local" / "privat"
    folder.mkdir(parents=True)
    (folder / "e1.ics").write_bytes(event("e1", "local"))
    cfg = account_config(
        tmp_path,
        peer,
        f'[["personal", "privat", "{remote}"]]',
        metadata='["displayname"]',
        conflict='"b-wins"',
    )
    try:
        result = run_pair(cfg, "acct")
        assert not result.stopped and not result.errors, result.to_json()
        assert list(result.collections or {}) == ["personal"]
        c = peer.client()
        try:
            assert server_uids(c, url) == {"e1": 1}
            peer.put(url + "e2.ics", event("e2", "remote"))
        finally:
            c.close()
        # the server's name reached the vdir (it had none)
        assert (folder / "displayname").read_text() == remote
        proppatch(peer, url, {"D:displayname": "Renamed on the server"})
        result = run_pair(cfg, "acct")
        assert not result.errors, result.to_json()
        assert vdir_uids(folder) == {"e1": 1, "e2": 1}
        assert (folder / "displayname").read_text() == "Renamed on the server"
        (folder / "displayname").write_text("Renamed locally")
        result = run_pair(cfg, "acct")
        assert not result.errors, result.to_json()
        assert props(peer, url)["displayname"] == "Renamed locally"
    finally:
        peer.rmcalendar(url)


def test_a_calendar_deleted_on_the_server_is_reported_not_propagated(
    peer: Peer, tmp_path: Path
) -> None:
    name = f"g-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "local" / name
    folder.mkdir(parents=True)
    (folder / "e1.ics").write_bytes(event("e1", "kept"))
    cfg = account_config(tmp_path, peer, f'["{name}"]')
    url = f"{peer.home}{name}/"
    result = run_pair(cfg, "acct")
    assert not result.stopped, result.to_json()
    peer.rmcalendar(url)
    result = run_pair(cfg, "acct")
    assert result.guard and result.collections is not None
    assert "gone from b" in (result.collections[name].stopped or "")
    assert f"calsync sync --force acct/{name}" in (result.collections[name].stopped or "")
    assert vdir_uids(folder) == {"e1": 1}  # nothing deleted locally
    c = peer.client()
    try:  # and not made again
        assert name not in [coll.name for coll in account(c, peer.home)]
    finally:
        c.close()
