"""The ``[syncml]`` configuration: accounts devices log in with, and their datastores.

::

    [syncml.accounts.alice]
    password = "secret"          # or password_command = "pass show calsync/alice"
    calendar = "laptop"          # store the device's calendar datastore syncs with
    tasks = "laptop"             # optional: store its task list syncs with
    # auth = "any"               # any | md5 | basic
    # aliases = { agenda = "calendar" }   # more datastore names this account's devices use
    # conflict, merge_fallback, max_delete, on_empty: as for a pair

    [syncml]                     # optional server-wide settings
    # aliases = { "Kalender" = "calendar" }
    # max_msg_size = 1000000
    # session_timeout = 900

Each device that logs in gets its own pair per datastore (``syncml-<account>-
<device>-<datastore>``), between its mirror and the named store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calsync.config import (
    PAIR_OPTIONS,
    Config,
    ConfigError,
    _check_options,
    _Lines,
    parse_max_delete,
    resolve_secret,
)
from calsync.stores import Option
from calsync.syncml import content
from calsync.syncml.session import DEFAULT_ALIASES, Account, ServerConfig

DATASTORES = ("calendar", "tasks")

ACCOUNT_OPTIONS: dict[str, Option] = {
    "password": Option(str, "the password devices log in with", secret=True),
    "password_command": Option(
        (str, list), "a command printing the password (instead of password)"
    ),
    "calendar": Option(str, "name of the store the device's calendar datastore syncs with"),
    "tasks": Option(str, "name of the store the device's task list syncs with (optional)"),
    "auth": Option(
        str,
        "credentials accepted: any (md5 or basic), md5, basic",
        default="any",
        choices=("any", "md5", "basic"),
    ),
    "aliases": Option(dict, "more datastore names devices use -> calendar | tasks"),
    "conflict": PAIR_OPTIONS["conflict"],
    "merge_fallback": PAIR_OPTIONS["merge_fallback"],
    "max_delete": PAIR_OPTIONS["max_delete"],
    "on_empty": Option(
        str,
        "the device's or the store's side had items and now lists none: sync (default for "
        "devices: their deletions arrive as explicit commands; max_delete still guards "
        "mass deletions) or abort",
        default="sync",
        choices=("abort", "sync"),
    ),
}

SYNCML_OPTIONS: dict[str, Option] = {
    "accounts": Option(dict, "[syncml.accounts.NAME]: one table per account"),
    "aliases": Option(dict, "datastore names devices use -> calendar | tasks, for all accounts"),
    "max_msg_size": Option(int, "largest message accepted and advertised (bytes)", default=1000000),
    "max_obj_size": Option(int, "largest item accepted and advertised (bytes)", default=4000000),
    "session_timeout": Option(
        (int, float), "seconds a silent session is kept before it is dropped", default=900
    ),
}


def _alias_errors(aliases: Any, where: str, lines: _Lines, path: Path | None) -> list[ConfigError]:
    errors = []
    if isinstance(aliases, dict):
        for name, target in aliases.items():
            if target not in DATASTORES:
                errors.append(
                    ConfigError(
                        f"alias {name!r} must name calendar or tasks, not {target!r}",
                        path=path,
                        line=lines.key(where, "aliases"),
                        key=f"{where}.aliases",
                    )
                )
    return errors


def validate(values: Any, lines: _Lines, path: Path | None) -> list[ConfigError]:
    """Problems in the ``[syncml]`` section (registered in ``calsync.config``)."""
    if not isinstance(values, dict):
        return [ConfigError("must be a table", path=path, key="syncml")]
    errors = _check_options(SYNCML_OPTIONS, values, "syncml", lines, path)
    errors += _alias_errors(values.get("aliases"), "syncml", lines, path)
    accounts = values.get("accounts", {})
    if not isinstance(accounts, dict):
        return errors
    for name, section in accounts.items():
        where = f"syncml.accounts.{name}"
        if not isinstance(section, dict):
            errors.append(ConfigError("must be a table", path=path, key=where))
            continue
        errors += _check_options(ACCOUNT_OPTIONS, section, where, lines, path)
        if "password" not in section and "password_command" not in section:
            errors.append(
                ConfigError(
                    "needs password or password_command",
                    path=path,
                    line=lines.section(where),
                    key=f"{where}.password",
                )
            )
        if not any(d in section for d in DATASTORES):
            errors.append(
                ConfigError(
                    "names no store: set calendar (and/or tasks) to a store name",
                    path=path,
                    line=lines.section(where),
                    key=f"{where}.calendar",
                )
            )
        if "max_delete" in section:
            try:
                parse_max_delete(section["max_delete"])
            except (ValueError, TypeError) as e:
                errors.append(
                    ConfigError(
                        str(e),
                        path=path,
                        line=lines.key(where, "max_delete"),
                        key=f"{where}.max_delete",
                    )
                )
        errors += _alias_errors(section.get("aliases"), where, lines, path)
    return errors


def store_references(values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The stores the accounts' datastores sync with (checked by ``calsync.config``)."""
    accounts = values.get("accounts")
    return [
        (f"syncml.accounts.{name}", key, account[key])
        for name, account in (accounts.items() if isinstance(accounts, dict) else ())
        if isinstance(account, dict)
        for key in DATASTORES
        if isinstance(account.get(key), str)
    ]


@dataclass
class AccountSettings:
    """An account's pair options and datastores (what the backend needs)."""

    name: str
    datastores: dict[str, str]
    conflict: str = "merge"
    merge_fallback: str = "newest"
    max_delete: float | int = 0.5
    on_empty: str = "sync"

    def kinds(self, datastore: str) -> frozenset[str] | None:
        """Item kinds a datastore carries when calendar and tasks share one store."""
        cal = self.datastores.get("calendar")
        if cal is None or cal != self.datastores.get("tasks"):
            return None
        return frozenset({"VTODO"}) if datastore == "tasks" else frozenset({"VEVENT", "VJOURNAL"})


@dataclass
class SyncMLSettings:
    server: ServerConfig
    accounts: dict[str, AccountSettings] = field(default_factory=dict)


def load(cfg: Config) -> SyncMLSettings:
    """Accounts with resolved passwords; ConfigError for unknown stores or secrets."""
    section = cfg.section("syncml")
    aliases = dict(DEFAULT_ALIASES)
    aliases.update({k.lower(): v for k, v in section.get("aliases", {}).items()})
    server = ServerConfig(
        accounts={},
        aliases=aliases,
        max_msg_size=int(section.get("max_msg_size", 1_000_000)),
        max_obj_size=int(section.get("max_obj_size", 4_000_000)),
        timeout=float(section.get("session_timeout", 900)),
        formats=content.formats(),
    )
    out = SyncMLSettings(server)
    for name, acct in section.get("accounts", {}).items():
        datastores = {d: acct[d] for d in DATASTORES if d in acct}
        for d, store in datastores.items():
            if store not in cfg.stores:
                raise ConfigError(
                    f"no store named {store!r} (stores: {', '.join(sorted(cfg.stores)) or 'none'})",
                    path=cfg.path,
                    key=f"syncml.accounts.{name}.{d}",
                )
        password = resolve_secret(acct)
        if password is None:
            raise ConfigError("needs password or password_command", key=f"syncml.accounts.{name}")
        server.accounts[name] = Account(
            name=name,
            password=password,
            datastores=datastores,
            aliases={k.lower(): v for k, v in acct.get("aliases", {}).items()},
            auth=acct.get("auth", "any"),
        )
        out.accounts[name] = AccountSettings(
            name=name,
            datastores=datastores,
            conflict=acct.get("conflict", "merge"),
            merge_fallback=acct.get("merge_fallback", "newest"),
            max_delete=parse_max_delete(acct.get("max_delete", "50%")),
            on_empty=acct.get("on_empty", "sync"),
        )
    return out
