"""The embedded default: ``calsync`` with no configuration at all still does the main job.

What it sets up (once; later starts reuse it):

* a hub calendar, a vdir in the platform data dir (``<data>/hub``), which
  every device and calendar syncs with;
* a SyncML account for phones: user ``phone`` and a generated password, kept
  in ``syncml-account.toml`` in the config dir (mode 0600); the same user and
  password log in to the CalDAV endpoint (``/dav/``), whose calendar is the hub;
* Thunderbird: the default profile's own calendar (its first writable local
  calendar, "Home" when it exists), paired with the hub.  Only one: pairing
  two calendars with one hub would merge them into each other.  None when
  the profile was connected to the gateway (``calsync thunderbird connect``):
  Thunderbird then syncs the hub itself, and a pair would show it twice;

and the configuration text for it is written to ``<data>/embedded-config.toml``
so the user can see it, copy it to ``config.toml`` and grow it.  Nothing here
overrides a real configuration file: it is only used when there is none.
"""

from __future__ import annotations

import json
import logging
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from calsync.config import Config, config_dir, data_dir, parse

log = logging.getLogger("calsync.gateway.embedded")

ACCOUNT = "phone"
ACCOUNT_FILE = "syncml-account.toml"
HUB = "hub"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: typed on a phone keypad


@dataclass
class Embedded:
    config: Config
    hub: Path
    user: str
    password: str
    account_file: Path
    thunderbird: dict[str, str] | None  # store name, profile, calendar name
    unpaired: list[str]  # other Thunderbird calendars found (not paired)
    text: str  # the configuration, without the password


def account_file() -> Path:
    return config_dir() / ACCOUNT_FILE


def shown_file() -> Path:
    """Where the configuration in use is written for the user to see (and copy)."""
    return data_dir() / "embedded-config.toml"


def is_set_up() -> bool:
    """Has ``calsync`` (serve) set up the embedded default on this machine?"""
    return account_file().is_file()


def _password() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))


def credentials(path: Path) -> tuple[str, str]:
    """(user, password) of the phone account, generated (0600) on first use."""
    from calsync.gateway.auth import private, write_secret

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        user, password = str(data["user"]), str(data["password"])
        private(path)
        return user, password
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    user, password = ACCOUNT, _password()
    write_secret(
        path,
        "# SyncML account of calsync's embedded default: point your phone at the gateway\n"
        "# (`calsync` prints the URL) with this user and password.\n"
        f"user = {json.dumps(user)}\npassword = {json.dumps(password)}\n",
    )
    return user, password


def _thunderbird() -> tuple[dict[str, str] | None, list[str]]:
    """The default profile's calendar to pair with the hub, and the other ones found."""
    from calsync.stores.thunderbird import profiles as prof
    from calsync.stores.thunderbird.prefs import calendars

    try:
        _, found = prof.discover()
        profile = prof.default_profile(found)
        cals = [c for c in calendars(profile.path) if c.is_storage and not c.read_only]
    except (prof.ProfileNotFound, OSError) as e:
        log.info("no Thunderbird calendar to pair: %s", e)
        return None, []
    from calsync.davserver.thunderbird import connected

    if connected(profile.path):  # Thunderbird syncs with the hub itself, over CalDAV
        return None, [
            f"{c.name} ({profile.path}; this profile syncs with calsync over CalDAV)" for c in cals
        ]
    usable = [c for c in cals if not c.disabled]
    disabled = [f"{c.name} (disabled in Thunderbird; {profile.path})" for c in cals if c.disabled]
    if not usable:
        return None, disabled
    usable.sort(key=lambda c: (c.name != "Home", cals.index(c)))
    chosen = usable[0]
    info = {
        "store": "thunderbird",
        "profile": str(profile.path),
        "calendar": chosen.id,
        "name": chosen.name,
    }
    return info, [f"{c.name} ({profile.path})" for c in usable[1:]] + disabled


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def embedded(*, discover_thunderbird: bool = True) -> Embedded:
    """Set up (or reuse) the embedded default and return its configuration."""
    root = data_dir()
    hub = root / HUB
    hub.mkdir(parents=True, exist_ok=True)
    path = account_file()
    user, password = credentials(path)
    tb, unpaired = _thunderbird() if discover_thunderbird else (None, [])
    lines = [
        "# calsync's embedded default (no config.toml found); copy this file to",
        f"# {config_dir() / 'config.toml'} to change it.",
        "[stores.hub]",
        'type = "vdir"',
        f"path = {_q(str(hub))}",
        "create = true  # the hub is calsync's own: made again if it goes away",
        "",
    ]
    if tb is not None:
        lines += [
            f"# Thunderbird calendar {tb['name']!r}",
            f"[stores.{tb['store']}]",
            'type = "thunderbird"',
            f"profile = {_q(tb['profile'])}",
            f"calendar = {_q(tb['calendar'])}",
            "",
            "[pairs.thunderbird]",
            'a = "hub"',
            f"b = {_q(tb['store'])}",
            "",
        ]
    lines += [
        f"[syncml.accounts.{user}]",
        "PASSWORD",
        'calendar = "hub"',
        'tasks = "hub"',
        "",
        "# the same account for CalDAV (iPhone, DAVx5, `calsync thunderbird connect`)",
        f"[caldav.users.{user}]",
        "PASSWORD",
        'calendars = ["hub"]',
        "",
    ]
    text = "\n".join(lines)
    cfg, errors = parse(text.replace("PASSWORD", f"password = {_q(password)}"))
    if errors:  # pragma: no cover - our own text
        raise RuntimeError("; ".join(str(e) for e in errors))
    reader = "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['password'])"
    shown = text.replace(
        "PASSWORD",
        f"# the password is in {path}\n"
        f'password_command = ["python3", "-c", {_q(reader)}, {_q(str(path))}]',
    )
    try:
        shown_file().write_text(shown, encoding="utf-8")
    except OSError:
        pass
    return Embedded(cfg, hub, user, password, path, tb, unpaired, shown)
