"""The user's configuration: a TOML file, validated with precise messages.

Where it is: ``--config PATH``, else ``$CALSYNC_CONFIG``, else ``config.toml``
in the platform's config dir.  Every error names the file, the line and the
key.  Store sections are validated against the ``options`` their store class
declares, so a new store type needs no change here.

Other sections have their keys in ``SECTION_OPTIONS`` (``[server]``, ...)
or name the module that validates them in ``EXTRA_SECTIONS`` (``[syncml...]``,
``[caldav...]``), which also says which stores they use.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from calsync.plain import Plain
from calsync.stores import STORE_TYPES, Option, Store, StoreContext, store_class
from calsync.sync.policies import FALLBACKS, POLICIES

APP = "calsync"

PAIR_OPTIONS: dict[str, Option] = {
    "a": Option(str, "name of the first store", required=True),
    "b": Option(str, "name of the second store", required=True),
    "conflict": Option(
        str,
        "what to do when both sides changed an item: merge (three-way, per property), "
        "newest, a-wins, b-wins, keep-both",
        default="merge",
        choices=POLICIES,
    ),
    "merge_fallback": Option(
        str,
        "for conflict = merge: who wins a property both sides changed",
        default="newest",
        choices=FALLBACKS,
    ),
    "on_empty": Option(
        str,
        "a side that had items and now lists none: abort (default) or sync",
        default="abort",
        choices=("abort", "sync"),
    ),
    "max_delete": Option(
        (str, int),
        "most deletions one sync may make on a side: a share ('50%') or a number",
        default="50%",
    ),
    "interval": Option((int, float), "seconds between automatic syncs by the daemon", default=300),
    "collections": Option(
        (str, list),
        'sync whole accounts: "all", "from a", "from b", or a list of collection names '
        '(and ["name", "name on a", "name on b"] for differently named ones); a and b are '
        "then roots (a CalDAV account, a folder of vdirs) and each collection is its own "
        "pair PAIR/NAME",
    ),
    "create": Option(
        bool,
        "with collections: create a collection that exists on one side only on the other",
        default=True,
    ),
    "metadata": Option(
        list,
        'calendar properties to sync: ["displayname", "color"]; '
        "both changed: the conflict rule decides (a-wins, b-wins; else a-wins/b-wins "
        "of merge_fallback; else reported)",
        default=[],
    ),
}

# Top-level sections other than stores/pairs: name -> key -> Option.
SECTION_OPTIONS: dict[str, dict[str, Option]] = {
    "general": {
        "state_dir": Option(str, "where status, history and caches live"),
    },
    "history": {
        "retention_days": Option(
            (int, float), "how long overwritten versions are kept", default=90
        ),
    },
    "server": {
        "listen": Option(str, "host:port of the gateway (default 127.0.0.1:8765)"),
        "allow_remote": Option(bool, "listen on a non-loopback address (needs TLS)"),
        "tls_cert": Option(str, "TLS certificate (PEM) for the gateway"),
        "tls_key": Option(str, "TLS private key (PEM) for the gateway"),
        "cert": Option(str, "TLS certificate (PEM) for the gateway (same as tls_cert)"),
        "key": Option(str, "TLS private key (PEM) for the gateway (same as tls_key)"),
        "watch": Option(bool, "sync a pair as soon as a local store of it changes", default=True),
        "backoff_max": Option(
            (int, float), "longest wait (s) before retrying a failing pair", default=3600
        ),
        "log_json": Option(bool, "daemon logs as JSON lines instead of key=value text"),
        "api_remote": Option(
            bool, "serve the control API (/api/) to other machines too (default: this one only)"
        ),
        "lan": Option(
            bool,
            "serve phones on the local network: TLS from calsync's own certificate authority, "
            "pairing (calsync pair) and mDNS announcements (like calsync serve --lan)",
        ),
        "mdns": Option(bool, "announce the server over mDNS in lan mode", default=True),
    },
}


class ConfigError(Exception):
    """A configuration problem, with file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.path) if self.path else "config"
        if self.line:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


# -- locations ------------------------------------------------------------------


def config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def default_state_dir() -> Path:
    env = os.environ.get("CALSYNC_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def data_dir() -> Path:
    env = os.environ.get("CALSYNC_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def default_config_path() -> Path:
    env = os.environ.get("CALSYNC_CONFIG")
    if env:
        return Path(env)
    return config_dir() / "config.toml"


# -- model ----------------------------------------------------------------------


class PairConfig(Plain):
    __slots__ = (
        "a",
        "b",
        "collections",
        "conflict",
        "create",
        "interval",
        "max_delete",
        "merge_fallback",
        "metadata",
        "name",
        "on_empty",
    )
    name: str
    a: str
    b: str
    conflict: str
    merge_fallback: str
    on_empty: str
    max_delete: float | int
    interval: float
    # None: a plain pair; else the pair's collections (see calsync.sync.collections)
    collections: str | list[Any] | None
    create: bool
    metadata: tuple[str, ...]

    def __init__(
        self,
        name: str,
        a: str,
        b: str,
        conflict: str = "merge",
        merge_fallback: str = "newest",
        on_empty: str = "abort",
        max_delete: float | int = 0.5,
        interval: float = 300.0,
        collections: str | list[Any] | None = None,
        create: bool = True,
        metadata: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.a = a
        self.b = b
        self.conflict = conflict
        self.merge_fallback = merge_fallback
        self.on_empty = on_empty
        self.max_delete = max_delete
        self.interval = interval
        self.collections = collections
        self.create = create
        self.metadata = metadata


class Config(Plain):
    __slots__ = ("exposed", "pairs", "path", "raw", "stores", "warnings")
    path: Path | None
    raw: dict[str, Any]
    stores: dict[str, dict[str, Any]]
    pairs: dict[str, PairConfig]
    warnings: list[str]
    # the file holds passwords and others can read it: what to tell the user (commands
    # refuse to run then, unless --insecure-config; ``calsync check`` reports it)
    exposed: str | None

    def __init__(
        self,
        path: Path | None,
        raw: dict[str, Any],
        stores: dict[str, dict[str, Any]] | None = None,
        pairs: dict[str, PairConfig] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.path = path
        self.raw = raw
        self.stores = stores if stores is not None else {}
        self.pairs = pairs if pairs is not None else {}
        self.warnings = warnings if warnings is not None else []
        self.exposed = None

    @property
    def base_dir(self) -> Path | None:
        return self.path.parent if self.path else None

    @property
    def state_dir(self) -> Path:
        custom = self.raw.get("general", {}).get("state_dir")
        if custom:
            from calsync.stores._files import expand_path

            return expand_path(custom, self.base_dir)
        return default_state_dir()

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}

    @property
    def retention_days(self) -> float:
        return float(self.section("history").get("retention_days", 90))

    def store_context(self, name: str) -> StoreContext:
        """The context (private cache dir...) the named store gets.

        A collection's store ``ROOT/NAME`` (``calsync.sync.collections``) keeps
        its cache below its root's."""
        root, slash, coll = name.partition("/")
        if slash and root in self.stores and name not in self.raw.get("stores", {}):
            from calsync.sync.collections import file_key

            cache = self.state_dir / "stores" / _safe(root) / "collections" / file_key(coll)
        else:
            cache = self.state_dir / "stores" / _safe(name)
        return StoreContext(cache_dir=cache, config_dir=self.base_dir)

    def store(self, name: str) -> Store:
        """Instantiate the named store."""
        section = self.stores[name]
        cls = store_class(section["type"])
        ctx = self.store_context(name)
        options = {k: v for k, v in section.items() if k != "type"}
        return cls.from_config(name, options, ctx)

    def pairs_of_store(self, store: str) -> list[str]:
        return [p.name for p in self.pairs.values() if store in (p.a, p.b)]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# -- loading and validation ---------------------------------------------------


class _Lines:
    """Finds the line of a section or key in the TOML text, for messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def section(self, dotted: str) -> int | None:
        pattern = re.compile(
            r"^\s*\[\s*"
            + r"\s*\.\s*".join(
                rf'(?:"{re.escape(part)}"|{re.escape(part)})' for part in dotted.split(".")
            )
            + r"\s*\]"
        )
        for i, line in enumerate(self.lines, 1):
            if pattern.match(line):
                return i
        return None

    def key(self, dotted_section: str, key: str) -> int | None:
        start = self.section(dotted_section)
        if start is None:
            return None
        pattern = re.compile(rf'^\s*(?:"{re.escape(key)}"|{re.escape(key)})\s*=')
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if line.lstrip().startswith("["):
                break
            if pattern.match(line):
                return i + 1
        return start


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "a table",
    }
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def _check_options(
    options: dict[str, Option],
    values: dict[str, Any],
    where: str,
    lines: _Lines,
    path: Path | None,
    ignore: tuple[str, ...] = (),
) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for key, value in values.items():
        if key in ignore:
            continue
        opt = options.get(key)
        if opt is None:
            known = ", ".join(sorted(options)) or "none"
            errors.append(
                ConfigError(
                    f"unknown key (known keys: {known})",
                    path=path,
                    line=lines.key(where, key),
                    key=f"{where}.{key}",
                )
            )
            continue
        types = opt.type if isinstance(opt.type, tuple) else (opt.type,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            errors.append(
                ConfigError(
                    f"must be {_type_name(opt.type)}, not {type(value).__name__}",
                    path=path,
                    line=lines.key(where, key),
                    key=f"{where}.{key}",
                )
            )
            continue
        if opt.choices and value not in opt.choices:
            errors.append(
                ConfigError(
                    f"must be one of {', '.join(opt.choices)}; got {value!r}",
                    path=path,
                    line=lines.key(where, key),
                    key=f"{where}.{key}",
                )
            )
    for key, opt in options.items():
        if opt.required and key not in values:
            errors.append(
                ConfigError(
                    f"required key {key!r} is missing ({opt.help})",
                    path=path,
                    line=lines.section(where),
                    key=f"{where}.{key}",
                )
            )
    return errors


def parse_max_delete(value: str | int) -> float | int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", value)
    if not m:
        raise ValueError("must be a percentage like '50%' or a number of items")
    return float(m.group(1)) / 100.0


def parse(text: str, path: Path | None = None) -> tuple[Config, list[ConfigError]]:
    """Parse and validate; returns the config and every problem found."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(
            f"not valid TOML: {e}", path=path, line=int(m.group(1)) if m else None
        ) from None
    lines = _Lines(text)
    cfg = Config(path=path, raw=raw)
    errors: list[ConfigError] = []
    known_sections = {"stores", "pairs", *SECTION_OPTIONS, *EXTRA_SECTIONS}
    for key in raw:
        if key not in known_sections:
            errors.append(
                ConfigError(
                    f"unknown section (known: {', '.join(sorted(known_sections))})",
                    path=path,
                    line=lines.section(key) or lines.key("", key),
                    key=key,
                )
            )
    for name, options in SECTION_OPTIONS.items():
        values = raw.get(name, {})
        if isinstance(values, dict):
            errors += _check_options(options, values, name, lines, path)
    for section in EXTRA_SECTIONS:
        if section in raw:
            errors += _section_module(section).validate(raw[section], lines, path)
    stores = raw.get("stores", {})
    for name, section in stores.items():
        where = f"stores.{name}"
        if not isinstance(section, dict):
            errors.append(ConfigError("must be a table", path=path, key=where))
            continue
        type_name = section.get("type")
        if type_name is None:
            errors.append(
                ConfigError(
                    f"required key 'type' is missing (one of {', '.join(sorted(STORE_TYPES))})",
                    path=path,
                    line=lines.section(where),
                    key=f"{where}.type",
                )
            )
            continue
        if type_name not in STORE_TYPES:
            errors.append(
                ConfigError(
                    f"unknown store type {type_name!r} (known: {', '.join(sorted(STORE_TYPES))})",
                    path=path,
                    line=lines.key(where, "type"),
                    key=f"{where}.type",
                )
            )
            continue
        cls = store_class(type_name)
        problems = _check_options(cls.all_options(), section, where, lines, path, ignore=("type",))
        if not problems:
            problems = _path_errors(cls, section, where, lines, path)
        errors += problems
        cfg.stores[name] = section
    for name, section in raw.get("pairs", {}).items():
        where = f"pairs.{name}"
        if not isinstance(section, dict):
            errors.append(ConfigError("must be a table", path=path, key=where))
            continue
        problems = _check_options(PAIR_OPTIONS, section, where, lines, path)
        errors += problems
        if problems:
            continue
        for side in ("a", "b"):
            if section[side] not in stores:
                errors.append(_no_store(section[side], stores, where, side, lines, path))
        if section["a"] == section["b"]:
            errors.append(
                ConfigError(
                    "a and b are the same store",
                    path=path,
                    line=lines.key(where, "b"),
                    key=f"{where}.b",
                )
            )
        try:
            max_delete = parse_max_delete(section.get("max_delete", "50%"))
        except ValueError as e:
            errors.append(
                ConfigError(
                    str(e),
                    path=path,
                    line=lines.key(where, "max_delete"),
                    key=f"{where}.max_delete",
                )
            )
            continue
        shape = _pair_shape_errors(name, section, stores, lines, path)
        if shape:
            errors += shape
            continue
        cfg.pairs[name] = PairConfig(
            name=name,
            a=section["a"],
            b=section["b"],
            conflict=section.get("conflict", "merge"),
            merge_fallback=section.get("merge_fallback", "newest"),
            on_empty=section.get("on_empty", "abort"),
            max_delete=max_delete,
            interval=float(section.get("interval", 300)),
            collections=section.get("collections"),
            create=section.get("create", True),
            metadata=tuple(section.get("metadata", ())),
        )
    errors += _reference_errors(raw, stores, lines, path)
    if path is not None:
        cfg.exposed = _exposed_secrets(raw, path)
    return cfg, errors


def _pair_shape_errors(
    name: str, section: dict[str, Any], stores: dict[str, Any], lines: _Lines, path: Path | None
) -> list[ConfigError]:
    """``collections`` and ``metadata`` of a pair (their forms are vdirsyncer's)."""
    where = f"pairs.{name}"

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(message, path=path, line=lines.key(where, key), key=f"{where}.{key}")

    errors = []
    from calsync.stores import META_KEYS

    for key in section.get("metadata", ()):
        if key not in META_KEYS:
            errors.append(
                error("metadata", f"{key!r} cannot be synced (known: displayname, color)")
            )
    collections = section.get("collections")
    if collections is None:
        return errors
    from calsync.sync.collections import CollectionsError, parse_spec

    try:
        parse_spec(collections)
    except CollectionsError as e:
        errors.append(error("collections", str(e)))
    if "/" in name:
        errors.append(
            ConfigError(
                "a pair with collections cannot have '/' in its name (PAIR/NAME names "
                "its collections)",
                path=path,
                line=lines.section(where),
                key=where,
            )
        )
    for side in ("a", "b"):
        store = stores.get(section[side]) or {}
        if store.get("calendar") is not None:
            errors.append(
                error(
                    side,
                    f"store {section[side]!r} names one calendar; with collections it must "
                    "be an account or folder root (remove its calendar key)",
                )
            )
    return errors


def _path_errors(
    cls: type[Store], section: dict[str, Any], where: str, lines: _Lines, path: Path | None
) -> list[ConfigError]:
    """A store's local path that is not there: a typo (``create = true`` makes it).

    A vdir's directory must exist; for a file (``ics``, ``vcs``) its directory
    must, and a missing file is created empty, as before.  Relative paths are
    the config file's directory's, as the store resolves them.
    """
    if cls.path_kind is None or section.get("create", False):
        return []
    from calsync.stores._files import expand_path

    target = expand_path(section["path"], path.parent if path else None)
    must = target if cls.path_kind == "dir" else target.parent
    if must.is_dir():
        return []
    what = "directory" if cls.path_kind == "dir" else "directory of the file"
    problem = "is not a directory" if must.exists() else "does not exist"
    return [
        ConfigError(
            f"the {what} {must} {problem} (a typo? set create = true to have calsync create it)",
            path=path,
            line=lines.key(where, "path"),
            key=f"{where}.path",
        )
    ]


def _reference_errors(
    raw: dict[str, Any], stores: dict[str, Any], lines: _Lines, path: Path | None
) -> list[ConfigError]:
    """Store names that other sections (SyncML accounts, CalDAV users) refer to."""
    errors = []
    for section in EXTRA_SECTIONS:
        if not isinstance(raw.get(section), dict):
            continue
        for where, key, name in _section_module(section).store_references(raw[section]):
            if name not in stores:
                errors.append(_no_store(name, stores, where, key, lines, path))
    return errors


def _no_store(
    name: str, stores: dict[str, Any], where: str, key: str, lines: _Lines, path: Path | None
) -> ConfigError:
    return ConfigError(
        f"no store named {name!r} (stores: {', '.join(sorted(stores)) or 'none'})",
        path=path,
        line=lines.key(where, key) or lines.section(where),
        key=f"{where}.{key}",
    )


# section name -> the module that owns it: its ``validate(values, lines, path)``
# returns the section's problems, its ``store_references(values)`` the store
# names it uses as (section path, key, name); imported only when the section is used
EXTRA_SECTIONS: dict[str, str] = {
    "syncml": "calsync.syncml.config",
    "caldav": "calsync.davserver.config",
    "feeds": "calsync.gateway.feedconfig",
}


def _section_module(section: str) -> Any:
    import importlib

    return importlib.import_module(EXTRA_SECTIONS[section])


def _has_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (k in ("password", "token", "secret") and isinstance(v, str)) or _has_secret(v)
            for k, v in value.items()
        )
    return False


def _exposed_secrets(raw: dict[str, Any], path: Path) -> str | None:
    """Why ``path`` must not be used as it is: it holds a password (a ``password``,
    ``token`` or ``secret`` key anywhere) and other users can read it."""
    if os.name != "posix" or not _has_secret(raw):
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (
            f"{path} holds passwords and can be read by other users "
            f"(mode {stat.filemode(mode)}); run: chmod 600 {path}"
        )
    return None


def load(path: Path | None = None) -> Config:
    """Load and validate; raises ConfigError (the first problem) when invalid."""
    cfg, errors = load_all(path)
    if errors:
        raise errors[0]
    return cfg


def load_all(path: Path | None = None) -> tuple[Config, list[ConfigError]]:
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no configuration file here; create one (see `calsync --help`) or pass --config",
            path=path,
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read it: {e}", path=path) from None
    return parse(text, path)


def resolve_secret(section: dict[str, Any], key: str = "password") -> str | None:
    """``key`` itself, or the output of ``<key>_command`` (first line, stripped)."""
    if key in section:
        return str(section[key])
    command = section.get(f"{key}_command")
    if command is None:
        return None
    import subprocess

    args = command if isinstance(command, list) else ["sh", "-c", command]
    if sys.platform == "win32" and not isinstance(command, list):
        args = ["cmd", "/c", command]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{key}_command failed: no answer within 60 s") from None
    except OSError as e:
        raise ConfigError(
            f"{key}_command failed: cannot run {args[0]}: {e.strerror or e}"
        ) from None
    secret = out.stdout.splitlines()[0].strip() if out.stdout else ""
    if out.returncode != 0:
        raise ConfigError(
            f"{key}_command failed (exit status {out.returncode})"
            + _command_said(out.stderr, secret)
        )
    return secret


def _command_said(stderr: str, secret: str, limit: int = 500) -> str:
    """What a failed secret command wrote to stderr, for its error message: its
    last lines, with what it printed as the secret (if anything) blanked out."""
    text = stderr.strip()
    if secret:
        text = text.replace(secret, "***")
    if not text:
        return ""
    if len(text) > limit:
        text = "..." + text[-limit:]
    return ": " + " / ".join(line.strip() for line in text.splitlines() if line.strip())
