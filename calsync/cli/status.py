"""``calsync status``: what each pair looked like after its last sync."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from calsync.cli import EXIT_GUARD, EXIT_OK
from calsync.cli._common import (
    NO_EMBEDDED_PAIRS,
    config_option,
    daemon_client,
    load_config,
    print_json,
    root_obj,
)
from calsync.stores import store_class
from calsync.sync.runner import status_file
from calsync.sync.status import StatusDB


def queued(cfg: Any, store: str) -> dict[str, Any] | None:
    """Changes a store holds back until it can write them (e.g. Thunderbird running)."""
    section = cfg.stores.get(store)
    if not section:
        return None
    try:
        hook = getattr(store_class(section["type"]), "queued_status", None)
    except (KeyError, ImportError):
        return None
    if hook is None:
        return None
    info: dict[str, Any] | None = hook(cfg.store_context(store))
    return info


def pair_status(cfg: Any, name: str) -> dict[str, Any]:
    """A pair's status; a pair with collections also has ``collections``, each
    collection's own (the pair's ``items`` and ``last_run`` are their sum and
    latest, so a reader of plain pairs' fields reads it the same)."""
    pair = cfg.pairs[name]
    if pair.collections is not None:
        return _collections_status(cfg, name)
    return _status(cfg, name, pair.a, pair.b)


def _collections_status(cfg: Any, name: str) -> dict[str, Any]:
    from calsync.sync.collections import load_known

    pair = cfg.pairs[name]
    out = _status(cfg, name, pair.a, pair.b)
    subs = {}
    for coll, info in sorted(load_known(cfg, name).items()):
        a = f"{pair.a}/{info.get('name_a', coll)}"
        b = f"{pair.b}/{info.get('name_b', coll)}"
        subs[coll] = _status(cfg, f"{name}/{coll}", a, b, queued_too=False)
    out["collections"] = subs
    out["items"] = sum(st["items"] for st in subs.values())
    runs = [st["last_run"] for st in subs.values() if st["last_run"]]
    out["last_run"] = max(runs) if runs else out["last_run"]
    return out


def _status(cfg: Any, name: str, a: str, b: str, *, queued_too: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "a": a,
        "b": b,
        "items": 0,
        "last_run": None,
        "last_result": None,
        "queued": {},
    }
    for store in (a, b) if queued_too else ():
        waiting = queued(cfg, store)
        if waiting:
            out["queued"][store] = waiting
    path = status_file(cfg, name)
    if not path.exists():
        return out
    db = StatusDB(path)
    try:
        out["items"] = db.count()
        last = db.get_meta("last_run")
        if last:
            out["last_run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(last)))
        result = db.get_meta("last_result")
        if result:
            out["last_result"] = json.loads(result)
    finally:
        db.close()
    return out


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@config_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each pair's items, last sync and its outcome.

    Exits 3 when a safety guard stopped a pair's last sync (as that `sync`
    did): it waits for your decision."""
    cfg = load_config(ctx)
    data = _from_daemon(ctx, cfg)
    if data is None:
        from calsync.gateway.api import devices

        data = {
            "pairs": {name: {**pair_status(cfg, name), "daemon": None} for name in cfg.pairs},
            "devices": devices(cfg.state_dir),
        }
    # like `sync`: 3 when a safety guard stopped a pair's last sync (it waits for you)
    code = EXIT_GUARD if any(_guarded(st) for st in data["pairs"].values()) else EXIT_OK
    if as_json:
        print_json(data)
        sys.exit(code)
    if not data["pairs"]:
        click.echo(f"no pairs: {NO_EMBEDDED_PAIRS}" if cfg.path is None else "no pairs configured")
    for name, st in data["pairs"].items():
        _print_pair(name, st)
        for coll, sub in st.get("collections", {}).items():
            _print_pair(f"{name}/{coll}", sub, "  ")
    for dev in data.get("devices", []):
        click.echo(
            f"device {dev['device']} ({dev['account']}, {dev['datastore']}): "
            f"{dev['items']} items, last sync {dev['last_sync'] or 'never'}"
            + (f" ({dev['last_result']})" if dev.get("last_result") else "")
        )
    sys.exit(code)


def _print_pair(name: str, st: dict[str, Any], indent: str = "") -> None:
    head = f"{indent}{name}: {st['a']} <-> {st['b']}, {st['items']} items"
    if st["last_run"] is None:
        click.echo(f"{head}, never synced")
    else:
        click.echo(f"{head}, last sync {st['last_run']}")
    if st.get("daemon"):
        click.echo(f"{indent}  daemon: {_schedule_line(st['daemon'])}")
    for store, waiting in st["queued"].items():
        click.echo(
            f"{indent}  queued: {store}: {waiting['count']} change(s) waiting since "
            f"{waiting['since']}: {waiting['reason']}"
        )
        for entry in waiting.get("calendars", []):
            for item in entry.get("items", [])[:20]:
                click.echo(f"{indent}    {item['op']} {item['uid']}")
    if st["last_run"] is None:
        return
    res = st["last_result"] or {}
    if res.get("stopped"):
        click.echo(f"{indent}  stopped: {res['stopped']}")
    for err in res.get("errors", []):
        click.echo(
            f"{indent}  error: {err['store']}: {err.get('uid') or err.get('id')}: {err['message']}"
        )


def _guarded(st: dict[str, Any]) -> bool:
    """Whether a pair's (or one of its collections') last sync was stopped by a guard."""
    return bool((st.get("last_result") or {}).get("guard")) or any(
        _guarded(sub) for sub in st.get("collections", {}).values()
    )


def _from_daemon(ctx: click.Context, cfg: Any) -> dict[str, Any] | None:
    """The running daemon's status (it knows next runs and failures), or None."""
    from calsync.gateway.client import DaemonError

    client = daemon_client(root_obj(ctx), cfg)
    if client is None:
        return None
    try:
        answer = client.status()
    except DaemonError as e:
        click.echo(f"calsync: warning: {e}; reading the state directly", err=True)
        return None
    finally:
        client.close()
    return {"pairs": answer.get("pairs", {}), "devices": answer.get("devices", [])}


def _schedule_line(d: dict[str, Any]) -> str:
    if d.get("running"):
        text = "syncing now"
    elif d.get("queued"):
        text = "sync queued"
    elif d.get("next_run_in") is not None:
        text = f"next sync in {int(d['next_run_in'])} s (every {int(d['interval'])} s)"
    else:
        text = "stopping"
    if d.get("failures"):
        text += f"; {d['failures']} failed run(s) in a row: {d.get('last_error')}"
    return text
