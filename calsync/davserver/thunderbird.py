"""``calsync thunderbird connect``: a Thunderbird profile gets a CalDAV calendar on the gateway.

Thunderbird then syncs that calendar itself, over CalDAV, while it runs;
calsync never writes its database for it.  What connecting does, with
Thunderbird stopped on the profile:

1. ``prefs.js`` gets a calendar registry entry (``calendar.registry.<id>.*``:
   type ``caldav``, the collection's URL, a name, the user name, offline
   cache on, refresh every minute, and ``calsync = true`` so ``disconnect``
   knows it as ours), and the id joins ``calendar.list.sortOrder``.  The
   file is rewritten atomically; the previous one is kept as
   ``prefs.js.calsync-backup``.  Connecting again updates the same entry.
2. The password goes into Thunderbird's password manager *by Thunderbird*
   (``marionette.save_login``): origin = the gateway's scheme://host:port,
   realm = the endpoint's Basic realm, the login Thunderbird's CalDAV code
   looks up before it would prompt.  With ``--no-password`` this is skipped:
   Thunderbird asks for the password at its first sync and can remember it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from calsync.stores.thunderbird.prefs import CalendarInfo, calendars

REGISTRY = "calendar.registry."
SORT_ORDER = "calendar.list.sortOrder"
MARKER = "calsync"
BACKUP = "prefs.js.calsync-backup"
_LINE = re.compile(r'^\s*user_pref\(\s*"((?:[^"\\]|\\.)*)"\s*,')


class ConnectError(RuntimeError):
    pass


@dataclass
class Connection:
    id: str
    uri: str
    name: str
    user: str
    created: bool


def origin_of(uri: str) -> str:
    """Thunderbird's login origin for a URL: scheme://host[:port] (its ``prePath``)."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def connected(profile: Path) -> list[CalendarInfo]:
    """The calendars calsync added to this profile."""
    return [c for c in calendars(profile) if c.extra.get(MARKER) is True]


def _pref(key: str, value: str | bool | int) -> str:
    return f"user_pref({json.dumps(key)}, {json.dumps(value)});"


def _key_of(line: str) -> str | None:
    m = _LINE.match(line)
    if not m:
        return None
    try:
        return str(json.loads(f'"{m.group(1)}"'))
    except ValueError:
        return m.group(1)


def _rewrite(
    profile: Path,
    drop: set[str],
    drop_prefixes: tuple[str, ...],
    add: list[str],
    *,
    backup: bool = True,
) -> None:
    prefs = profile / "prefs.js"
    try:
        text = prefs.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = [
        line
        for line in text.splitlines()
        if (key := _key_of(line)) is None or (key not in drop and not key.startswith(drop_prefixes))
    ]
    new = "\n".join([*lines, *add]) + "\n"
    if text and backup:
        (profile / BACKUP).write_text(text, encoding="utf-8")
    tmp = profile / f".prefs.js.calsync-{os.getpid()}"
    tmp.write_text(new, encoding="utf-8")
    if prefs.exists():
        os.chmod(tmp, prefs.stat().st_mode & 0o777)
    os.replace(tmp, prefs)


def has_pref(profile: Path, key: str) -> bool:
    from calsync.stores.thunderbird.prefs import read_prefs

    return key in read_prefs(profile / "prefs.js")


def drop_pref(profile: Path, key: str) -> None:
    """Remove one pref Thunderbird wrote on its own (the Marionette port of our run)."""
    if has_pref(profile, key):
        _rewrite(profile, {key}, (), [], backup=False)


def _sort_order(profile: Path) -> list[str]:
    from calsync.stores.thunderbird.prefs import read_prefs

    return str(read_prefs(profile / "prefs.js").get(SORT_ORDER, "")).split()


def add_calendar(profile: Path, uri: str, name: str, user: str) -> Connection:
    """Add (or update) the CalDAV calendar for ``uri`` in the profile's prefs.js."""
    mine = [c for c in connected(profile) if c.uri == uri]
    cal_id = mine[0].id if mine else str(uuid.uuid4())
    base = f"{REGISTRY}{cal_id}."
    entries: dict[str, str | bool | int] = {
        "type": "caldav",
        "uri": uri,
        "name": name,
        "username": user,
        "cache.enabled": True,
        "calendar-main-in-composite": True,
        "disabled": False,
        "refreshInterval": "1",
        "readOnly": False,
        MARKER: True,
    }
    order = [i for i in _sort_order(profile) if i != cal_id] + [cal_id]
    add = [_pref(base + k, v) for k, v in entries.items()]
    add.append(_pref(SORT_ORDER, " ".join(order)))
    _rewrite(profile, {SORT_ORDER}, (base,), add)
    return Connection(cal_id, uri, name, user, created=not mine)


def remove_calendars(profile: Path, uri: str | None = None) -> list[CalendarInfo]:
    """Remove calsync's calendars (those for ``uri``, or all); returns what was removed."""
    gone = [c for c in connected(profile) if uri is None or c.uri == uri]
    if not gone:
        return []
    ids = {c.id for c in gone}
    order = [i for i in _sort_order(profile) if i not in ids]
    add = [_pref(SORT_ORDER, " ".join(order))] if order else []
    _rewrite(profile, {SORT_ORDER}, tuple(f"{REGISTRY}{i}." for i in ids), add)
    return gone


def local_pairs_of(
    cfg_pairs: dict[str, tuple[str, str]],
    stores: dict[str, dict[str, object]],
    profile: Path,
    store: str,
) -> list[str]:
    """Pairs that sync ``store`` with a local calendar of this same profile.

    With the CalDAV calendar connected, such a pair would show every event
    twice in Thunderbird (once in each calendar): worth a warning.
    """
    from calsync.stores.thunderbird import profiles as prof

    out = []
    for name, (a, b) in cfg_pairs.items():
        if store not in (a, b):
            continue
        other = b if a == store else a
        section = stores.get(other, {})
        if section.get("type") != "thunderbird":
            continue
        try:
            path = prof.resolve(str(section.get("profile", "default")))
        except (prof.ProfileNotFound, OSError):
            continue
        if path.resolve() == profile.resolve():
            out.append(name)
    return out
