"""Helpers for the CalDAV scenario tests: configs, vdir files, server contents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urljoin

from calsync.config import Config, parse
from calsync.items import Item
from calsync.stores.caldav import xml
from calsync.stores.caldav.client import DavClient
from calsync.stores.caldav.hrefs import normalize
from calsync.stores.caldav.store import CalDAVStore
from calsync.sync.engine import SyncResult
from calsync.sync.runner import run_pair
from tests.stores.caldav.peers import PASSWORD, USER


def config(
    tmp_path: Path, url: str, vdir: Path, *, verify: bool = True, **server: object
) -> Config:
    """A pair ``main``: a = vdir, b = the CalDAV calendar at ``url``."""
    lines = [
        "[general]",
        f'state_dir = "{tmp_path / "state"}"',
        "[stores.local]",
        'type = "vdir"',
        f'path = "{vdir}"',
        "create = true",
        "[stores.server]",
        'type = "caldav"',
        f'url = "{url}"',
        f'username = "{USER}"',
        f'password = "{PASSWORD}"',
        f"verify_tls = {'true' if verify else 'false'}",
    ]
    for key, value in server.items():
        lines.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
    lines += ["[pairs.main]", 'a = "local"', 'b = "server"', 'max_delete = "100%"']
    text = "\n".join(lines).replace("'", '"') + "\n"
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg, errors = parse(text, path)
    assert not errors, errors
    return cfg


def sync(cfg: Config) -> SyncResult:
    return run_pair(cfg, "main")


def vdir_uids(vdir: Path) -> Counter[str]:
    """UID -> number of files holding it."""
    out: Counter[str] = Counter()
    for f in vdir.glob("*.ics"):
        out[Item.from_bytes(f.read_bytes()).uid] += 1
    return out


def vdir_items(vdir: Path) -> dict[str, Item]:
    items = {}
    for f in vdir.glob("*.ics"):
        it = Item.from_bytes(f.read_bytes())
        items[it.uid] = it
    return items


def vdir_file(vdir: Path, uid: str) -> Path:
    for f in vdir.glob("*.ics"):
        if Item.from_bytes(f.read_bytes()).uid == uid:
            return f
    raise AssertionError(f"{uid} not in {vdir}")


def server_items(client: DavClient, url: str) -> list[tuple[str, Item]]:
    """(href, item) of every resource in the calendar, read with PROPFIND + GET."""
    resp = client.propfind(url, ["D:resourcetype"], "1")
    assert resp.status == 207, resp.status
    own = normalize(url, url)
    out = []
    for r in resp.multistatus().responses:
        path = normalize(r.href, url)
        if path.rstrip("/") == own.rstrip("/") or xml.is_collection(r):
            continue
        got = client.request("GET", urljoin(url, r.href))
        assert got.ok, (r.href, got.status)
        out.append((path, Item.from_bytes(got.body)))
    return out


def server_uids(client: DavClient, url: str) -> Counter[str]:
    return Counter(item.uid for _, item in server_items(client, url))


def summary(item: Item) -> str:
    master = item.master()
    assert master is not None
    return (master.value("SUMMARY") or "").strip()


def requests_sent(store: CalDAVStore) -> int:
    """Requests the store sent so far, once the sync-token read in the background
    after a first listing (``listing.later_token``) is in: what tests count is the rest."""
    assert store._client is not None
    store._settle_token()
    return store._client.requests
