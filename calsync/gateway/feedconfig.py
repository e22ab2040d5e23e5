"""The ``[feeds]`` configuration: stores published as subscription URLs.

::

    [feeds.family]
    store = "hub"                 # any configured store
    name = "Family"               # the calendar's name in the subscriber (X-WR-CALNAME)
    components = ["VEVENT"]       # default: events, to-dos and journal entries
    past_days = 90                # leave out events that ended longer ago (series kept)
    # token = "..."               # the URL's secret; default: generated (see below)
    # token = false               # no secret: only when the gateway listens on loopback

A feed is read at ``/feeds/<feed>.ics?token=<token>``.  Calendar programs
that subscribe (Outlook, Google Calendar, iOS) cannot send credentials, so
the URL itself is the credential (a capability URL, as every calendar
service's "secret address"): each feed has its own token, generated on first
use into ``feed-tokens.json`` beside the control API's token (mode 0600),
unless the configuration gives one.  The token is never logged; ``calsync
feeds`` and ``calsync serve`` print the URLs on the user's own terminal.

This module is imported whenever a configuration has ``[feeds]`` (also by a
plain ``calsync sync``): it holds validation and settings only, no web stack.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calsync.config import Config, ConfigError, _check_options, _Lines
from calsync.stores import Option

FEED_OPTIONS: dict[str, Option] = {
    "store": Option(str, "the store published", required=True),
    "name": Option(str, "the calendar's display name (default: the feed's name)"),
    "components": Option(list, "which components: VEVENT, VTODO, VJOURNAL (default: all)"),
    "past_days": Option(int, "leave out events that ended more than this many days ago"),
    "token": Option(
        (str, bool),
        "the URL's secret (default: generated); false: none (loopback gateway only)",
        secret=True,
    ),
}
COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
TOKENS_FILE = "feed-tokens.json"
# A feed's name is its URL's file name: /feeds/<name>.ics
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MIN_TOKEN = 16


def validate(values: Any, lines: _Lines, path: Path | None) -> list[ConfigError]:
    """Problems in the ``[feeds]`` section (registered in ``calsync.config``)."""
    if not isinstance(values, dict):
        return [ConfigError("must be a table", path=path, key="feeds")]
    errors: list[ConfigError] = []
    for name, section in values.items():
        where = f"feeds.{name}"
        if not isinstance(section, dict):
            errors.append(ConfigError("must be a table ([feeds.NAME])", path=path, key=where))
            continue
        line = lines.section(where)
        if not _NAME.match(name):
            errors.append(
                ConfigError(
                    "a feed name may hold letters, digits and . _ - only (it is in the URL)",
                    path=path,
                    line=line,
                    key=where,
                )
            )
        errors += _check_options(FEED_OPTIONS, section, where, lines, path)
        comps = section.get("components")
        if isinstance(comps, list) and (not comps or any(c not in COMPONENTS for c in comps)):
            errors.append(
                ConfigError(
                    f"components must be some of {', '.join(COMPONENTS)}",
                    path=path,
                    line=lines.key(where, "components"),
                    key=f"{where}.components",
                )
            )
        token = section.get("token")
        if token is True or (isinstance(token, str) and len(token) < _MIN_TOKEN):
            errors.append(
                ConfigError(
                    f"token must be a secret of at least {_MIN_TOKEN} characters, or false",
                    path=path,
                    line=lines.key(where, "token"),
                    key=f"{where}.token",
                )
            )
        past = section.get("past_days")
        if isinstance(past, int) and not isinstance(past, bool) and past < 0:
            errors.append(
                ConfigError("past_days cannot be negative", path=path, key=f"{where}.past_days")
            )
    return errors


def store_references(values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The stores the feeds publish (checked by ``calsync.config``)."""
    return [
        (f"feeds.{name}", "store", feed["store"])
        for name, feed in (values.items() if isinstance(values, dict) else ())
        if isinstance(feed, dict) and isinstance(feed.get("store"), str)
    ]


@dataclass
class Feed:
    name: str
    store: str
    title: str
    components: tuple[str, ...] = COMPONENTS
    past_days: int | None = None
    token: str | None = field(default=None, repr=False)  # None: no token (loopback only)

    @property
    def path(self) -> str:
        return f"/feeds/{self.name}.ics"

    def url(self, base: str) -> str:
        """The subscription URL under ``base`` (``http://127.0.0.1:8765``), token included."""
        query = f"?token={self.token}" if self.token else ""
        return f"{base.rstrip('/')}{self.path}{query}"

    @staticmethod
    def webcal(url: str) -> str:
        """The ``webcal://`` form of an http(s) URL (what a calendar app opens)."""
        return "webcal://" + url.split("://", 1)[1]


def tokens_path(cfg: Config) -> Path:
    from calsync.gateway.auth import token_path

    return token_path(cfg).parent / TOKENS_FILE


def load(cfg: Config) -> dict[str, Feed]:
    """The configured feeds, their tokens generated (and saved, 0600) where missing."""
    section = cfg.section("feeds")
    feeds: dict[str, Feed] = {}
    for name, sect in section.items():
        store = sect["store"]
        if store not in cfg.stores:
            raise ConfigError(
                f"no store named {store!r} (stores: {', '.join(sorted(cfg.stores)) or 'none'})",
                path=cfg.path,
                key=f"feeds.{name}.store",
            )
        feeds[name] = Feed(
            name=name,
            store=store,
            title=str(sect.get("name") or name),
            components=tuple(sect.get("components") or COMPONENTS),
            past_days=sect.get("past_days"),
            token=sect["token"] if isinstance(sect.get("token"), str) else None,
        )
    generated = [n for n, s in section.items() if "token" not in s]
    if generated:
        saved = _ensure_tokens(tokens_path(cfg), generated)
        for name in generated:
            feeds[name].token = saved[name]
    return feeds


def _ensure_tokens(path: Path, names: list[str]) -> dict[str, str]:
    from calsync.gateway.auth import private, write_secret

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            saved = {}
        private(path)
    except FileNotFoundError:
        saved = {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the feed tokens in {path}: {e}") from None
    missing = [n for n in names if not isinstance(saved.get(n), str)]
    if missing:
        for name in missing:
            saved[name] = secrets.token_urlsafe(24)
        write_secret(path, json.dumps(saved, indent=1, sort_keys=True) + "\n")
    return {n: str(saved[n]) for n in names}
