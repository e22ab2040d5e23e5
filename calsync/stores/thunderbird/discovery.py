"""What ``calsync discover`` reports: installations, profiles, calendars, a config block.

Why a module apart from the CLI: the data (a JSON-able dict) is the product;
the command only prints it.  Item counts come from a snapshot copy of each
database, so discovery never takes a lock, even while Thunderbird runs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calsync.stores.thunderbird import profiles as prof
from calsync.stores.thunderbird.prefs import CalendarInfo, calendars
from calsync.stores.thunderbird.running import running
from calsync.stores.thunderbird.snapshot import SnapshotError, snapshot
from calsync.stores.thunderbird.store import database_path


def _counts(db: Path, workdir: Path) -> dict[str, int]:
    """Items per calendar id in a database (empty if it cannot be read)."""
    if not db.is_file():
        return {}
    try:
        with snapshot(db, workdir, check=False) as conn:
            rows = conn.execute(
                "SELECT cal_id, count(DISTINCT id) FROM ("
                " SELECT cal_id, id FROM cal_events WHERE recurrence_id IS NULL"
                " UNION ALL SELECT cal_id, id FROM cal_todos WHERE recurrence_id IS NULL"
                ") GROUP BY cal_id"
            )
            return {str(cal_id): int(n) for cal_id, n in rows}
    except (SnapshotError, sqlite3.Error):
        return {}


def _calendar_json(
    info: CalendarInfo, profile: Path, counts: dict[Path, dict[str, int]]
) -> dict[str, Any]:
    out = info.to_json()
    if info.is_storage:
        db = database_path(profile, info)
        out["database"] = str(db)
        out["items"] = counts.get(db, {}).get(info.id, 0) if db in counts else None
    else:
        out["database"] = None
        out["items"] = None
        out["note"] = "network calendar: sync it at its server"
    return out


def discover(
    system: str | None = None, home: Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Everything found, as one JSON-able object (``config`` holds the TOML block)."""
    roots, found = prof.discover(system, home, env)
    try:
        chosen: Path | None = prof.default_profile(found).path
    except prof.ProfileNotFound:
        chosen = None
    profiles_json = []
    with tempfile.TemporaryDirectory(prefix="calsync-discover-") as tmp:
        for p in found:
            cals = calendars(p.path)
            counts: dict[Path, dict[str, int]] = {}
            for info in cals:
                if info.is_storage:
                    db = database_path(p.path, info)
                    if db not in counts:
                        counts[db] = _counts(db, Path(tmp))
            who = running(p.path) if p.path.is_dir() else None
            profiles_json.append(
                {
                    "name": p.name,
                    "path": str(p.path),
                    "kind": p.root.kind,
                    "data_dir": str(p.root.path),
                    "default": chosen is not None and p.path == chosen,
                    "install_default": p.install_default,
                    "legacy_default": p.legacy_default,
                    "exists": p.path.is_dir(),
                    "running": who is not None,
                    "pid": who.pid if who else None,
                    "calendar_db": str(p.calendar_db) if p.has_calendar_db else None,
                    "legacy_storage_sdb": p.legacy_storage,
                    "calendars": [_calendar_json(c, p.path, counts) for c in cals],
                }
            )
    data: dict[str, Any] = {
        "installations": [r.to_json() for r in roots],
        "profiles": profiles_json,
    }
    data["config"] = config_block(profiles_json)
    return data


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "calendar"


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def config_block(profiles_json: list[dict[str, Any]]) -> str:
    """Ready-to-paste ``[stores.*]`` sections, one per storage calendar."""
    lines: list[str] = []
    usable = [p for p in profiles_json if p["kind"] != "sunbird" and p["exists"]]
    many = sum(1 for p in usable if any(c["writable"] for c in p["calendars"])) > 1
    taken: set[str] = set()
    for p in usable:
        what = " (the default)" if p["default"] else ""
        lines.append(f"# Thunderbird profile {p['name']!r}{what}: {p['path']}")
        names = [c["name"] for c in p["calendars"]]
        if not p["calendars"]:
            lines.append("# (no calendars registered in its prefs.js yet)")
        for cal in p["calendars"]:
            if not cal["writable"]:
                why = (
                    "is read-only in Thunderbird"
                    if cal["type"] == "storage"
                    else f"is a {cal['type']} calendar ({cal['uri']}): sync it at its server"
                )
                lines.append(f"# calendar {cal['name']!r} {why}")
                continue
            base = "thunderbird-" + (_slug(p["name"]) + "-" if many else "") + _slug(cal["name"])
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
            selector = cal["name"] if names.count(cal["name"]) == 1 and cal["name"] else cal["id"]
            lines.append(f"[stores.{name}]")
            lines.append('type = "thunderbird"')
            lines.append(f"profile = {_toml(p['path'])}")
            suffix = "  # disabled in Thunderbird" if cal["disabled"] else ""
            lines.append(f"calendar = {_toml(selector)}{suffix}")
            lines.append("")
    for p in profiles_json:
        if p["kind"] == "sunbird" or p["legacy_storage_sdb"]:
            lines.append(
                f"# {p['path']}: Sunbird/Lightning 0.x calendar storage (storage.sdb), "
                "not synced by calsync; open it in a current Thunderbird first"
            )
    if any(line.startswith("[stores.") for line in lines):
        lines.append("# then pair a store with another one, e.g.:")
        lines.append("# [pairs.thunderbird]")
        first = next(line for line in lines if line.startswith("[stores."))
        lines.append(f'# a = "{first[len("[stores.") : -1]}"')
        lines.append('# b = "phone"')
    return "\n".join(lines).rstrip() + "\n"
