"""Where Thunderbird installations keep their profiles, and which one is used.

Why: users should not have to know ``~/.var/app/org.mozilla.Thunderbird/
.thunderbird/x7k2.default-release``.  Each installation has a data dir with
``profiles.ini`` (and ``installs.ini``); since the "dedicated profile per
install" scheme the profile an installation really uses is the ``Default=``
of its ``[Install<hash>]`` section, the legacy ``Default=1`` profile coming
second.  Platform layouts:

=================  ================================================
Linux              ``~/.thunderbird`` (and ``$XDG_CONFIG_HOME/thunderbird``)
Linux Flatpak      ``~/.var/app/org.mozilla.Thunderbird/.thunderbird``
Linux Snap         ``~/snap/thunderbird/common/.thunderbird``
Windows            ``%APPDATA%\\Thunderbird`` (``Path=Profiles/...``)
macOS              ``~/Library/Thunderbird``
=================  ================================================

Sunbird's old data dirs are listed too: their profiles keep calendars in
``storage.sdb`` (Lightning 0.x), which calsync reports but does not sync.
Everything takes ``system``, ``home`` and ``env`` so tests can build any
layout.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DataDir:
    """One installation's data dir (where profiles.ini lives)."""

    kind: str  # linux | flatpak | snap | windows | macos | icedove | sunbird
    path: Path
    installs: dict[str, str] = field(default_factory=dict)  # install hash -> default profile

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "installs": self.installs}


@dataclass
class Profile:
    name: str
    path: Path
    root: DataDir
    legacy_default: bool = False  # Default=1 in its [ProfileN]
    install_default: bool = False  # Default= of an [Install...] section

    @property
    def calendar_db(self) -> Path:
        return self.path / "calendar-data" / "local.sqlite"

    @property
    def has_calendar_db(self) -> bool:
        return self.calendar_db.is_file()

    @property
    def legacy_storage(self) -> bool:
        """Sunbird / Lightning 0.x calendar storage (not synced)."""
        return (self.path / "storage.sdb").is_file()


def data_dirs(
    system: str | None = None, home: Path | None = None, env: Mapping[str, str] | None = None
) -> list[DataDir]:
    """Candidate data dirs for this platform (existing or not)."""
    system = system or sys.platform
    home = home or Path.home()
    env = os.environ if env is None else env
    out: list[DataDir] = []
    if system == "win32":
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        out.append(DataDir("windows", base / "Thunderbird"))
        out.append(DataDir("sunbird", base / "Mozilla" / "Sunbird"))
    elif system == "darwin":
        out.append(DataDir("macos", home / "Library" / "Thunderbird"))
        out.append(DataDir("sunbird", home / "Library" / "Application Support" / "Sunbird"))
    else:
        out.append(DataDir("linux", home / ".thunderbird"))
        xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        out.append(DataDir("linux", xdg / "thunderbird"))
        for app in ("org.mozilla.Thunderbird", "org.mozilla.thunderbird"):
            out.append(DataDir("flatpak", home / ".var" / "app" / app / ".thunderbird"))
        out.append(DataDir("snap", home / "snap" / "thunderbird" / "common" / ".thunderbird"))
        out.append(DataDir("icedove", home / ".icedove"))
        out.append(DataDir("sunbird", home / ".mozilla" / "sunbird"))
    return out


def _ini(path: Path) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        pass
    return cp


def profiles_in(root: DataDir) -> list[Profile]:
    """The profiles registered in a data dir's profiles.ini (and installs.ini)."""
    ini = root.path / "profiles.ini"
    if not ini.is_file():
        return []
    cp = _ini(ini)
    installs: dict[str, str] = {}
    for section in cp.sections():
        if section.startswith("Install") and cp.has_option(section, "Default"):
            installs[section[len("Install") :]] = cp.get(section, "Default")
    extra = _ini(root.path / "installs.ini")
    for section in extra.sections():
        if extra.has_option(section, "Default"):
            installs.setdefault(section, extra.get(section, "Default"))
    root.installs = installs
    defaults = set(installs.values())
    out = []
    for section in cp.sections():
        if not section.startswith("Profile") or not cp.has_option(section, "Path"):
            continue
        rel = cp.get(section, "Path").strip()
        relative = cp.get(section, "IsRelative", fallback="1").strip() == "1"
        path = root.path.joinpath(*rel.replace("\\", "/").split("/")) if relative else Path(rel)
        out.append(
            Profile(
                name=cp.get(section, "Name", fallback=path.name),
                path=path,
                root=root,
                legacy_default=cp.get(section, "Default", fallback="0").strip() == "1",
                install_default=rel in defaults or str(path) in defaults,
            )
        )
    return out


def discover(
    system: str | None = None, home: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[list[DataDir], list[Profile]]:
    """Every data dir that exists, and every profile registered in them."""
    roots: list[DataDir] = []
    profiles: list[Profile] = []
    seen: set[str] = set()
    for root in data_dirs(system, home, env):
        key = os.path.realpath(root.path)
        if key in seen or not (root.path / "profiles.ini").is_file():
            continue
        seen.add(key)
        roots.append(root)
        profiles.extend(profiles_in(root))
    return roots, profiles


def preference(profile: Profile) -> tuple[int, int, int, int]:
    """Sort key: Thunderbird (not Sunbird) first, install default, legacy default, has DB."""
    return (
        0 if profile.root.kind != "sunbird" else 1,
        0 if profile.install_default else 1,
        0 if profile.legacy_default else 1,
        0 if profile.has_calendar_db else 1,
    )


class ProfileNotFound(LookupError):
    pass


def default_profile(profiles: list[Profile]) -> Profile:
    """The profile ``profile = "default"`` means (see the module docstring)."""
    usable = [p for p in profiles if p.root.kind != "sunbird"]
    with_db = [p for p in usable if p.has_calendar_db]
    candidates = with_db or usable
    if not candidates:
        raise ProfileNotFound(
            "no Thunderbird profile found; run `calsync discover` to see where calsync "
            'looked, or set profile = "/path/to/the/profile"'
        )
    candidates.sort(key=preference)
    best = candidates[0]
    ties = [p for p in candidates if preference(p) == preference(best) and p is not best]
    if ties:
        names = ", ".join(str(p.path) for p in [best, *ties])
        raise ProfileNotFound(
            f'several profiles could be "default" ({names}); set profile to one of these paths'
        )
    return best


def resolve(
    value: str,
    *,
    base: Path | None = None,
    system: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The profile dir for a ``profile =`` value: "default", a profile name, or a path."""
    from calsync.stores._files import expand_path

    if value != "default" and ("/" in value or "\\" in value or value.startswith("~")):
        return expand_path(value, base)
    _, profiles = discover(system, home, env)
    if value == "default":
        return default_profile(profiles).path
    named = [p for p in profiles if p.name == value]
    if len(named) == 1:
        return named[0].path
    candidate = expand_path(value, base)
    if candidate.is_dir():
        return candidate
    known = ", ".join(f"{p.name} ({p.path})" for p in profiles) or "none found"
    raise ProfileNotFound(f"no Thunderbird profile {value!r} (profiles: {known})")
