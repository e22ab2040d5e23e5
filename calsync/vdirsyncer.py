"""Reading a vdirsyncer configuration and writing the calsync one that does the same.

vdirsyncer's file is INI with JSON values (``[general]``, ``[pair NAME]``,
``[storage NAME]``).  What maps:

- storages: ``filesystem`` (``.ics``) -> ``vdir``, ``caldav`` -> ``caldav``,
  ``singlefile`` -> ``ics``; ``url``, ``username``, ``password``,
  ``password.fetch = ["command", ...]`` -> ``password_command``, ``verify``
  (false -> ``verify_tls = false``, a path -> ``ca_file``), ``auth``
  (``guess`` -> ``auto``), ``path``, ``fileext``;
- pairs: ``a``, ``b``, ``collections`` (the same forms: null -> a plain pair),
  ``conflict_resolution`` (``"a wins"``/``"b wins"``; null, vdirsyncer's "stop
  at a conflict", -> calsync's three-way merge), ``metadata``;
  ``partial_sync`` only with its default on storages that are not read-only.

Everything else (contacts, ``http`` subscriptions, ``password.fetch =
["prompt"...]``, a conflict command, hooks, date ranges...) is named, by
section and key, in ``Translation.unmapped``; a pair whose storage cannot be
mapped is left out whole (and named).  Reading never runs a command and
never prints a password.
"""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from typing import Any

from calsync.plain import Plain

# keys that map, per vdirsyncer storage type (others are named as unmapped)
_STORAGE_KEYS = {
    "filesystem": {"type", "path", "fileext", "encoding"},
    "caldav": {"type", "url", "username", "password", "password.fetch", "verify", "auth"},
    "singlefile": {"type", "path", "encoding"},
}
_PAIR_KEYS = {"a", "b", "collections", "conflict_resolution", "metadata", "partial_sync"}


class VdirsyncerError(Exception):
    """The vdirsyncer configuration cannot be read."""


class Translation(Plain):
    """The calsync configuration for a vdirsyncer one."""

    __slots__ = ("pairs", "status_path", "storages", "text", "unmapped")
    text: str  # the calsync configuration (TOML)
    unmapped: list[str]  # "[section] key: why", one per thing not carried over
    status_path: Path | None  # vdirsyncer's status directory
    pairs: dict[str, dict[str, Any]]  # mapped pairs: name -> {"a", "b", "collections"}
    storages: dict[str, dict[str, Any]]  # mapped storages: name -> vdirsyncer's section

    def __init__(self) -> None:
        self.text = ""
        self.unmapped = []
        self.status_path = None
        self.pairs = {}
        self.storages = {}


def default_path() -> Path:
    """Where vdirsyncer looks: $VDIRSYNCER_CONFIG, ~/.vdirsyncer/config, then
    $XDG_CONFIG_HOME/vdirsyncer/config."""
    env = os.environ.get("VDIRSYNCER_CONFIG")
    if env:
        return Path(env)
    legacy = Path.home() / ".vdirsyncer" / "config"
    if legacy.exists():
        return legacy
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "vdirsyncer" / "config"


def read(path: Path) -> dict[str, dict[str, Any]]:
    """Section name -> key -> value (JSON-decoded, as vdirsyncer reads them)."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise VdirsyncerError(f"{path}: cannot read it: {e.strerror or e}") from None
    except configparser.Error as e:
        raise VdirsyncerError(f"{path}: not a vdirsyncer configuration: {e}") from None
    out: dict[str, dict[str, Any]] = {}
    for section in parser.sections():
        values = {}
        for key, raw in parser.items(section):
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                raise VdirsyncerError(
                    f"{path}: [{section}] {key}: not a JSON value: {raw!r}"
                ) from None
        out[section] = values
    return out


def _q(value: Any) -> str:
    """A TOML value (strings, booleans, numbers and lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _key(name: str) -> str:
    return name if name.replace("_", "a").replace("-", "a").isalnum() else json.dumps(name)


def _storage(name: str, section: dict[str, Any], unmapped: list[str]) -> list[str] | None:
    """The calsync store lines for a vdirsyncer storage, or None (named in unmapped)."""
    kind = section.get("type")
    where = f"[storage {name}]"
    if kind not in _STORAGE_KEYS:
        why = {
            "carddav": "contacts (calsync syncs calendars)",
            "http": "a read-only subscription (calsync serves and reads feeds differently)",
            "google_calendar": "Google's own API (use its CalDAV URL instead)",
            "google_contacts": "contacts (calsync syncs calendars)",
        }.get(str(kind), "an unknown storage type")
        unmapped.append(f"{where} type = {kind!r}: {why}; its pairs are left out")
        return None
    for key in sorted(set(section) - _STORAGE_KEYS[str(kind)]):
        if key == "read_only" and section[key] is False:
            continue
        unmapped.append(f"{where} {key}: not supported by calsync (left out)")
    if section.get("encoding", "utf-8").lower() not in ("utf-8", "utf8"):
        unmapped.append(f"{where} encoding = {section['encoding']!r}: calsync reads UTF-8 only")
    lines = [f"[stores.{_key(name)}]"]
    if kind == "filesystem":
        ext = section.get("fileext", "")
        if ext != ".ics":
            unmapped.append(f"{where} fileext = {ext!r}: calsync syncs calendars (.ics); left out")
            return None
        lines += ['type = "vdir"', f"path = {_q(section.get('path', ''))}"]
    elif kind == "singlefile":
        lines += ['type = "ics"', f"path = {_q(section.get('path', ''))}"]
    else:
        lines += ['type = "caldav"', f"url = {_q(section.get('url', ''))}"]
        if "username" in section:
            lines.append(f"username = {_q(section['username'])}")
        if "password" in section:
            lines.append(f"password = {_q(section['password'])}")
        fetch = section.get("password.fetch")
        if fetch is not None:
            if isinstance(fetch, list) and len(fetch) >= 2 and fetch[0] == "command":
                lines.append(f"password_command = {_q([str(x) for x in fetch[1:]])}")
            else:
                what = fetch[0] if isinstance(fetch, list) and fetch else fetch
                unmapped.append(
                    f"{where} password.fetch = [{what!r}, ...]: only ['command', ...] maps "
                    "(calsync never prompts while syncing); set password_command yourself"
                )
        verify = section.get("verify", True)
        if verify is False:
            lines.append("verify_tls = false")
        elif isinstance(verify, str):
            lines.append(f"ca_file = {_q(verify)}")
        auth = section.get("auth")
        if auth in ("basic", "digest"):
            lines.append(f"auth = {_q(auth)}")
        elif auth not in (None, "guess"):
            unmapped.append(f"{where} auth = {auth!r}: not supported by calsync")
    return lines


def _pair(
    name: str, section: dict[str, Any], stores: set[str], unmapped: list[str]
) -> tuple[list[str], dict[str, Any]] | None:
    where = f"[pair {name}]"
    for key in sorted(set(section) - _PAIR_KEYS):
        unmapped.append(f"{where} {key}: not supported by calsync (left out)")
    a, b = section.get("a"), section.get("b")
    missing = [s for s in (a, b) if s not in stores]
    if missing:
        unmapped.append(f"{where}: left out: its storage {missing[0]!r} could not be mapped")
        return None
    if "/" in name:
        unmapped.append(f"{where}: left out: calsync pair names cannot hold '/'")
        return None
    lines = [f"[pairs.{_key(name)}]", f"a = {_q(a)}", f"b = {_q(b)}"]
    collections = section.get("collections")
    if collections is not None:
        lines.append(f"collections = {_q(collections)}")
    conflict = section.get("conflict_resolution")
    if conflict in ("a wins", "b wins"):
        lines.append(f"conflict = {_q(conflict.replace(' ', '-'))}")
    elif conflict is not None:
        unmapped.append(
            f"{where} conflict_resolution = {conflict!r}: calsync runs no conflict command; "
            "it merges both sides' changes (conflict = merge)"
        )
    partial = section.get("partial_sync", "revert")
    if partial != "revert":
        unmapped.append(
            f"{where} partial_sync = {partial!r}: calsync has no read-only storages; left out"
        )
    metadata = section.get("metadata") or []
    known = [m for m in metadata if m in ("displayname", "color")]
    for m in metadata:
        if m not in known:
            unmapped.append(f"{where} metadata {m!r}: calsync syncs displayname and color")
    if known:
        lines.append(f"metadata = {_q(known)}")
    lines.append('max_delete = "100%"  # vdirsyncer had no such limit')
    return lines, {"a": a, "b": b, "collections": collections}


def translate(sections: dict[str, dict[str, Any]], source: Path) -> Translation:
    """The calsync configuration for vdirsyncer's ``sections`` (read from ``source``)."""
    out = Translation()
    general = sections.get("general", {})
    status = general.get("status_path")
    if isinstance(status, str):
        out.status_path = Path(os.path.expanduser(os.path.expandvars(status)))
        if not out.status_path.is_absolute():
            out.status_path = source.parent / out.status_path
    for key in sorted(set(general) - {"status_path"}):
        unmapped_general = f"[general] {key}: not supported by calsync (left out)"
        out.unmapped.append(unmapped_general)
    lines = [f"# migrated from the vdirsyncer configuration {source}", ""]
    stores: set[str] = set()
    for section, values in sections.items():
        kind, _, name = section.partition(" ")
        if kind == "storage":
            got = _storage(name, values, out.unmapped)
            if got is not None:
                stores.add(name)
                out.storages[name] = values
                lines += [*got, ""]
        elif kind not in ("general", "pair"):
            out.unmapped.append(f"[{section}]: an unknown section (left out)")
    for section, values in sections.items():
        kind, _, name = section.partition(" ")
        if kind == "pair":
            got_pair = _pair(name, values, stores, out.unmapped)
            if got_pair is not None:
                out.pairs[name] = got_pair[1]
                lines += [*got_pair[0], ""]
    out.text = "\n".join(lines)
    return out
