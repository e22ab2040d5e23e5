"""The ``[caldav]`` configuration: who may log in to the CalDAV endpoint, and what they see.

::

    [caldav.users.alice]             # the user name a phone or Thunderbird logs in with
    password = "secret"              # or password_command = "pass show calsync/alice"
    calendars = ["laptop", "hub"]    # stores served as her calendars (/dav/alice/<store>/)

    [caldav]                          # optional
    # max_size = 4000000              # largest calendar object accepted (bytes)

Devices paired with ``calsync pair`` log in with the user's name and their own
app password (``calsync.credentials``).

A calendar's collection name is the store's name; its display name defaults
to the store name too (a client may rename it: that is kept per collection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calsync import credentials
from calsync.config import Config, ConfigError, _check_options, _Lines, resolve_secret
from calsync.credentials import AppPasswordStore
from calsync.stores import Option

USER_OPTIONS: dict[str, Option] = {
    "password": Option(str, "the password CalDAV clients log in with", secret=True),
    "password_command": Option(
        (str, list), "a command printing the password (instead of password)"
    ),
    "calendars": Option(list, "names of the stores served as this user's calendars"),
}

CALDAV_OPTIONS: dict[str, Option] = {
    "users": Option(dict, "[caldav.users.NAME]: one table per user"),
    "max_size": Option(int, "largest calendar object accepted (bytes)", default=4_000_000),
}

# A user name is a path segment (/dav/<user>/): keep it plain.
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
# A store name is the collection's path segment.
_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def validate(values: Any, lines: _Lines, path: Path | None) -> list[ConfigError]:
    """Problems in the ``[caldav]`` section (registered in ``calsync.config``)."""
    if not isinstance(values, dict):
        return [ConfigError("must be a table", path=path, key="caldav")]
    errors = _check_options(CALDAV_OPTIONS, values, "caldav", lines, path)
    users = values.get("users", {})
    if not isinstance(users, dict):
        return errors
    for name, section in users.items():
        where = f"caldav.users.{name}"
        if not isinstance(section, dict):
            errors.append(ConfigError("must be a table", path=path, key=where))
            continue
        line = lines.section(where)
        if not _USER.match(name):
            errors.append(
                ConfigError(
                    "a user name may hold letters, digits and . _ @ + - only",
                    path=path,
                    line=line,
                    key=where,
                )
            )
        errors += _check_options(USER_OPTIONS, section, where, lines, path)
        if "password" not in section and "password_command" not in section:
            errors.append(
                ConfigError(
                    "needs password or password_command",
                    path=path,
                    line=line,
                    key=f"{where}.password",
                )
            )
        cals = section.get("calendars")
        if not isinstance(cals, list) or not cals:
            errors.append(
                ConfigError(
                    'names no calendar: set calendars = ["<store>", ...]',
                    path=path,
                    line=lines.key(where, "calendars") or line,
                    key=f"{where}.calendars",
                )
            )
            continue
        for cal in cals:
            if not isinstance(cal, str) or not _COLLECTION.match(cal):
                errors.append(
                    ConfigError(
                        f"{cal!r} is not a store name usable in a URL "
                        "(letters, digits and . _ @ + - only)",
                        path=path,
                        line=lines.key(where, "calendars"),
                        key=f"{where}.calendars",
                    )
                )
    return errors


def store_references(values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The stores the users' calendars are (checked by ``calsync.config``)."""
    users = values.get("users")
    return [
        (f"caldav.users.{name}", "calendars", cal)
        for name, user in (users.items() if isinstance(users, dict) else ())
        if isinstance(user, dict) and isinstance(user.get("calendars"), list)
        for cal in user["calendars"]
        if isinstance(cal, str)
    ]


@dataclass
class User:
    name: str
    password: str = field(repr=False)
    calendars: tuple[str, ...]


@dataclass
class DavSettings:
    users: dict[str, User]
    max_size: int = 4_000_000
    app_passwords: AppPasswordStore | None = None  # the devices' (calsync.credentials)

    def check(self, login: str, password: str) -> bool:
        """Whether ``password`` is ``login``'s or one of its devices' app passwords,
        compared in constant time (an unknown user costs what a known one does)."""
        return self.login(login, password) is not None

    def login(self, login: str, password: str) -> credentials.Login | None:
        """``check``, saying whose password it was (``Login.device``: the paired
        device's, None for the user's own)."""
        user = self.users.get(login)
        found = credentials.check(
            login, password, user.password if user else "\0" * 16, self.app_passwords
        )
        return found if user is not None else None

    def stores_of(self, user: str) -> tuple[str, ...]:
        found = self.users.get(user)
        return found.calendars if found else ()


def load(cfg: Config) -> DavSettings:
    """Users with resolved passwords; ConfigError for unknown stores or missing secrets."""
    section = cfg.section("caldav")
    users: dict[str, User] = {}
    for name, sect in section.get("users", {}).items():
        for store in sect.get("calendars", []):
            if store not in cfg.stores:
                raise ConfigError(
                    f"no store named {store!r} (stores: {', '.join(sorted(cfg.stores)) or 'none'})",
                    path=cfg.path,
                    key=f"caldav.users.{name}.calendars",
                )
        password = resolve_secret(sect)
        if not password:
            raise ConfigError(
                "needs a non-empty password or password_command",
                path=cfg.path,
                key=f"caldav.users.{name}.password",
            )
        users[name] = User(name, password, tuple(dict.fromkeys(sect.get("calendars", []))))
    return DavSettings(
        users,
        int(section.get("max_size", 4_000_000)),
        credentials.app_passwords(cfg.state_dir),
    )
