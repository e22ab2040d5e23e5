"""``calsync thunderbird connect|disconnect``: Thunderbird syncs with the gateway over CalDAV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calsync.cli import EXIT_FAILED, EXIT_USAGE
from calsync.cli._common import config_option, fail, load_config
from calsync.config import Config, ConfigError


@click.group()
def thunderbird() -> None:
    """Point Thunderbird at calsync's CalDAV endpoint (or stop doing so)."""


def _profile(value: str | None) -> Path:
    from calsync.stores.thunderbird import profiles as prof

    try:
        path = prof.resolve(value or "default")
    except (prof.ProfileNotFound, OSError) as e:
        fail(f"{e} (use --profile NAME or a profile directory)")
    if not path.is_dir():
        fail(f"no Thunderbird profile directory at {path}")
    return path


def _not_running(profile: Path) -> None:
    from calsync.stores.thunderbird.running import running

    who = running(profile)
    if who is not None:
        fail(f"{who}: quit Thunderbird first, then run this again ({profile})", EXIT_FAILED)


def _choose(cfg: Config, calendar: str | None, user: str | None) -> tuple[str, str, str]:
    """(user, password, calendar) from [caldav.users]."""
    from calsync.davserver.config import load

    try:
        users = load(cfg).users
    except ConfigError as e:
        fail(str(e))
    if not users:
        fail(
            "no CalDAV user in the configuration: add a [caldav.users.NAME] section "
            '(password = "...", calendars = ["hub"]) and restart the gateway'
        )
    choices = [
        (u.name, u.password, c)
        for u in users.values()
        if user is None or u.name == user
        for c in u.calendars
        if calendar is None or c == calendar
    ]
    if calendar is None:
        hubs = [ch for ch in choices if ch[2] == "hub"]
        choices = hubs or choices
    if len(choices) != 1:
        known = ", ".join(f"{u.name}: {', '.join(u.calendars)}" for u in users.values())
        what = f"calendar {calendar!r}" if calendar else "a calendar"
        fail(
            f"cannot tell which {what} to connect (CalDAV users and calendars: {known}); "
            "use --calendar NAME (and --user NAME)"
        )
    return choices[0]


def _base_url(cfg: Config, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    from calsync.gateway.server import listen_options

    try:
        opts = listen_options(cfg)
    except ConfigError as e:
        fail(str(e))
    host = opts.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"{opts.scheme}://{shown}:{opts.port}"


@thunderbird.command()
@click.option("--profile", help='Thunderbird profile: "default", a profile name, or its directory')
@click.option(
    "--calendar", help="the calendar (store name) to connect; default: hub, or the only one"
)
@click.option("--user", help="the CalDAV user (when several have the calendar)")
@click.option("--url", help="the gateway's base URL (default: from [server] listen)")
@click.option(
    "--no-password",
    is_flag=True,
    help="do not store the password in Thunderbird (it asks at its first sync)",
)
@config_option
@click.pass_context
def connect(
    ctx: click.Context,
    profile: str | None,
    calendar: str | None,
    user: str | None,
    url: str | None,
    no_password: bool,
) -> None:
    """Add a CalDAV calendar on calsync's gateway to a Thunderbird profile.

    Thunderbird must not be running on the profile.  The calendar goes into
    the profile's prefs.js; the password into Thunderbird's own password
    manager, stored by Thunderbird itself (calsync starts it headless for a
    few seconds through Marionette, loopback only).  Thunderbird then syncs
    the calendar over CalDAV while it runs (every minute, and when you edit),
    so calsync never writes its database for it.  Connecting twice updates the
    same calendar.  Exit 1 when Thunderbird runs or the password could not be
    stored (the calendar is added all the same; Thunderbird will ask for it).
    """
    from calsync.davserver import marionette
    from calsync.davserver import thunderbird as tb
    from calsync.davserver.app import REALM

    cfg = load_config(ctx)
    name, password, cal = _choose(cfg, calendar, user)
    uri = f"{_base_url(cfg, url)}/dav/{name}/{cal}/"
    path = _profile(profile)
    _not_running(path)
    conn = tb.add_calendar(path, uri, f"{cal} (calsync)", name)
    verb = "added" if conn.created else "updated"
    click.echo(f"Thunderbird profile {path}: {verb} calendar {conn.name!r} -> {uri} (user {name})")
    for pair in tb.local_pairs_of(
        {p.name: (p.a, p.b) for p in cfg.pairs.values()}, cfg.stores, path, cal
    ):
        click.echo(
            f"calsync: note: pair {pair!r} also syncs {cal!r} with a local calendar of this "
            "profile: Thunderbird will show those events twice; remove that pair from the "
            "configuration",
            err=True,
        )
    if no_password:
        click.echo(f"Thunderbird will ask for the password of {name!r} at its first sync.")
        return
    try:
        how = marionette.save_login(path, tb.origin_of(uri), REALM, name, password)
    except marionette.MarionetteError as e:
        click.echo(
            f"calsync: the password could not be stored in Thunderbird: {e}\n"
            f"Thunderbird will ask for the password of {name!r} at its first sync.",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo(f"Password of {name!r} {how} in Thunderbird's password manager.")
    click.echo("Start Thunderbird: it syncs this calendar with calsync over CalDAV.")


@thunderbird.command()
@click.option("--profile", help='Thunderbird profile: "default", a profile name, or its directory')
@click.option("--calendar", help="only the calendar of this store (default: all calsync's)")
@click.option("--keep-password", is_flag=True, help="leave the login in Thunderbird")
def disconnect(profile: str | None, calendar: str | None, keep_password: bool) -> None:
    """Remove the calendars `connect` added (Thunderbird must not be running).

    Their events stay on the gateway (in calsync's stores); Thunderbird's
    offline copy goes with the calendar.  The stored login is removed too,
    unless another connected calendar uses it or --keep-password is given.
    """
    from calsync.davserver import marionette
    from calsync.davserver import thunderbird as tb
    from calsync.davserver.app import REALM

    path = _profile(profile)
    _not_running(path)
    mine = tb.connected(path)
    chosen = [c for c in mine if calendar is None or c.uri.rstrip("/").endswith(f"/{calendar}")]
    if not chosen:
        fail(
            f"no calendar of calsync in {path}" + (f" for {calendar!r}" if calendar else ""),
            EXIT_USAGE if calendar else EXIT_FAILED,
        )
    for c in chosen:
        tb.remove_calendars(path, c.uri)
        click.echo(f"Thunderbird profile {path}: removed calendar {c.name!r} ({c.uri})")
    if keep_password:
        return
    left = {(tb.origin_of(c.uri), str(c.extra.get("username", ""))) for c in tb.connected(path)}
    logins = {(tb.origin_of(c.uri), str(c.extra.get("username", ""))) for c in chosen} - left
    failed = False
    for origin, name in sorted(logins):
        if not name:
            continue
        try:
            n = marionette.remove_login(path, origin, REALM, name)
        except marionette.MarionetteError as e:
            click.echo(f"calsync: the login of {name!r} could not be removed: {e}", err=True)
            failed = True
            continue
        if n:
            click.echo(f"Removed the login of {name!r} for {origin} from Thunderbird.")
    if failed:
        sys.exit(EXIT_FAILED)
