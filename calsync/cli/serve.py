"""``calsync serve`` (and plain ``calsync``): the gateway daemon.

SyncML for devices at /sync, the pairs synced hands-off (schedule, file
watchers, device sessions, Thunderbird quitting), the control API at /api/.
With no configuration file it runs the embedded default (``gateway.embedded``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from calsync.cli import EXIT_USAGE
from calsync.cli._common import config_option, config_path, fail, load_config, root_obj
from calsync.config import Config, ConfigError, default_config_path

if TYPE_CHECKING:
    from calsync.gateway.server import Listen


def _api_url(host: str, port: int, scheme: str) -> str:
    """Where local clients reach the API (a wildcard bind is reached on loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


@click.command()
@click.option(
    "--listen", help="HOST:PORT to listen on (default: [server] listen, or 127.0.0.1:8765)"
)
@click.option(
    "--lan",
    is_flag=True,
    help="serve phones on the local network: TLS with calsync's own certificate, "
    "pairing (calsync pair) and mDNS (like [server] lan = true)",
)
@click.option("--log-json", is_flag=True, help="log JSON lines instead of key=value text")
@click.option("--no-watch", is_flag=True, help="do not watch files; sync on the schedule only")
@click.option(
    "--show-credentials/--hide-credentials",
    default=None,
    help="print the embedded default's SyncML URL, user and password, and the feeds' "
    "URLs with their tokens (default: not; `calsync pair` sets a phone up instead, "
    "`calsync feeds` prints the URLs)",
)
@config_option
@click.pass_context
def serve(
    ctx: click.Context,
    listen: str | None,
    lan: bool,
    log_json: bool,
    no_watch: bool,
    show_credentials: bool | None,
) -> None:
    """Run the gateway: keeps every pair in sync by itself, and serves devices.

    \b
    - SyncML (OMA DS 1.1/1.2) for phones at /sync: they log in with a
      [syncml.accounts.NAME] account; a session that changes a store syncs
      that store's pairs right away;
    - each pair syncs every `interval` seconds (default 300), and within about
      a second when one of its local files changes or Thunderbird quits;
    - the control API at /api/ (bearer token in api-token in the config dir),
      which `calsync status` and `calsync sync` use while the daemon runs;
    - with --lan, phones on the local network: over TLS with a certificate
      from calsync's own certificate authority (made on first use), found by
      name over mDNS, and set up with one scan (`calsync pair`).

    With no configuration file it sets up and runs the embedded default: a
    hub calendar, a phone account, and Thunderbird's calendar if there is one.
    Listens on 127.0.0.1 only unless --lan or [server] says otherwise (with TLS).
    Ctrl-C (or SIGTERM) stops it after the running sync reaches a safe point.
    SIGHUP (`systemctl --user reload calsync`) reloads the configuration file:
    a broken one is refused (the error is logged) and the daemon runs on.
    """
    from calsync.gateway import logs
    from calsync.gateway.app import Feature, create_app, features_for
    from calsync.gateway.daemon import Daemon
    from calsync.gateway.runtime import looks_like_calsync, running_daemon
    from calsync.gateway.server import PortInUse, bind, listen_options, run
    from calsync.gateway.web import WebFeature

    emb = None
    explicit = config_path(ctx)
    if explicit is None and not default_config_path().exists():
        from calsync.gateway.embedded import embedded

        emb = embedded()
        cfg: Config = emb.config
        path = None
    else:
        cfg = load_config(ctx)
        path = cfg.path
    server = cfg.section("server")
    verbose = logging.getLogger().getEffectiveLevel()
    logs.setup(
        as_json=log_json or bool(server.get("log_json")),
        level=logging.DEBUG if verbose <= logging.DEBUG else logging.INFO,
    )
    _private_state(cfg)
    try:
        opts = listen_options(cfg, listen, lan=lan)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    other = running_daemon(cfg.state_dir)
    if other is not None and looks_like_calsync(other["pid"]) is None:
        other = _answering(other)  # no command line to look at: the daemon must prove it
    if other is not None:
        fail(
            f"a calsync daemon already runs for this state directory (pid {other['pid']}, "
            f"{other.get('url')}); stop it first",
            EXIT_USAGE,
        )
    try:
        sock = bind(opts)  # before anything is announced: a port in use is one clear error
    except PortInUse as e:
        fail(str(e), EXIT_USAGE)
    lan_feature = None
    if opts.lan:
        from calsync.gateway.lan import lan_mode

        try:
            lan_feature = lan_mode(cfg.state_dir, opts, mdns=bool(server.get("mdns", True)))
        except (OSError, ValueError) as e:
            fail(f"cannot make the TLS certificate for LAN mode: {e}", EXIT_USAGE)
    url = _api_url(opts.host, opts.port, opts.scheme)
    daemon = Daemon(
        cfg,
        url=url,
        config_path=path,
        watch=False if no_watch else None,
        insecure_config=bool(root_obj(ctx).get("insecure_config")),
    )
    try:
        web = WebFeature(daemon)
        devices = features_for(cfg, on_store_changed=daemon.store_changed)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    from calsync.gateway.pairpage import loopback_reach, pair_page

    page = pair_page(cfg, lan_feature.reach if lan_feature else loopback_reach(opts))
    daemon.pairing = page.service
    for feature in devices:  # a revoked device's sessions end
        hook = getattr(feature, "device_revoked", None)
        if callable(hook):
            page.service.on_revoke.append(hook)
    # the page before the device features: CalDAV answers PROPFIND / (and only that)
    features: list[Feature] = [daemon, web, page, *devices]
    if lan_feature is not None:
        features.insert(3, lan_feature)
    daemon.attach(features)
    accounts = sorted(cfg.section("syncml").get("accounts", {}))
    dav_users = sorted(cfg.section("caldav").get("users", {}))
    if not cfg.pairs and not accounts and not dav_users and not cfg.section("feeds"):
        fail(
            "nothing to serve: add a [pairs.NAME] or a [syncml.accounts.NAME] section "
            "(see calsync serve --help)"
        )
    _banner(cfg, opts, url, daemon, accounts, emb, show_credentials)
    if dav_users:
        click.echo(
            f"calsync: CalDAV for {', '.join(dav_users)} at {opts.url('/dav/')} "
            f"(calendars at {opts.url('/dav/')}<user>/<store>/)",
            err=True,
        )
    if cfg.section("feeds"):
        from calsync.cli.feeds import feed_urls

        # stderr is the daemon's log (the journal): a URL with its token goes to stdout,
        # when asked for, as the embedded default's password does
        for feed in feed_urls(cfg, opts.url("")):
            if show_credentials:
                click.echo(f"calsync: feed {feed['name']} at {feed['url']}")
            else:
                bare = feed["url"].partition("?")[0]
                click.echo(
                    f"calsync: feed {feed['name']} at {bare} (its URL with the token: "
                    "calsync feeds)",
                    err=True,
                )
    try:
        run(create_app(features), opts, stoppable=daemon, sock=sock)
    except KeyboardInterrupt:  # Ctrl-C, after the graceful shutdown
        click.echo("calsync: stopped", err=True)
        sys.exit(130)
    if daemon.reload_requested:  # SIGHUP with a good configuration: start afresh
        click.echo("calsync: reloading the configuration", err=True)
        logging.shutdown()
        os.execv(sys.executable, sys.orig_argv)


def _answering(info: dict[str, Any]) -> dict[str, Any] | None:
    """``info`` if the daemon it names proves it runs (``client.identify``), else None."""
    from calsync.gateway.client import proven

    client = proven(info)
    if client is None:
        return None
    client.close()
    return info


def _private_state(cfg: Config) -> None:
    """The state directory and everything in it owner-only (see ``calsync.perms``):
    an older calsync left them readable by every local user."""
    from calsync.gateway.logs import event
    from calsync.perms import private_dir, tighten

    private_dir(cfg.state_dir)
    fixed = tighten(cfg.state_dir)
    if fixed:
        event(
            logging.getLogger("calsync.gateway"),
            "state.private",
            logging.WARNING,
            dir=str(cfg.state_dir),
            fixed=len(fixed),
        )


def _banner(
    cfg: Config,
    opts: Listen,
    api_url: str,
    daemon: object,
    accounts: list[str],
    emb: object,
    show: bool | None,
) -> None:
    from calsync.gateway.daemon import Daemon
    from calsync.gateway.embedded import Embedded

    assert isinstance(daemon, Daemon)
    err = sys.stderr
    sync_url = opts.url()
    if isinstance(emb, Embedded):
        click.echo(
            f"calsync: no configuration file ({default_config_path()}): "
            "running the embedded default",
            err=True,
        )
        click.echo(f"  hub calendar: {emb.hub} (a vdir: one .ics file per event)", file=err)
        if emb.thunderbird:
            tb = emb.thunderbird
            click.echo(
                f"  paired with Thunderbird calendar {tb['name']!r} ({tb['profile']})", file=err
            )
        else:
            click.echo("  no Thunderbird calendar found to pair", file=err)
        for other in emb.unpaired:
            click.echo(f"  not paired (add it to a config to sync it): {other}", file=err)
        click.echo(f"  configuration used: {cfg_text_path()}", file=err)
        if show:  # asked for: the account's own credentials, as before pairing existed
            click.echo(
                f"Point your phone's SyncML (or SyncEvolution) at {sync_url}\n"
                f"  user: {emb.user}   calendar database: calendar   tasks database: tasks",
                err=True,
            )
            click.echo(f"  password: {emb.password}")  # stdout: never into a log
    elif accounts:
        click.echo(f"calsync: SyncML for {', '.join(accounts)} at {sync_url}", err=True)
    if cfg.pairs:
        every = ", ".join(f"{n} every {int(p.interval)} s" for n, p in cfg.pairs.items())
        click.echo(f"calsync: syncing {every}, and on changes", err=True)
    click.echo(f"calsync: see what it does at {api_url}/", err=True)
    if opts.lan:
        click.echo(
            "calsync: phones on this network: run `calsync pair` and scan the code "
            f"(certificate authority: {fingerprint_text(cfg)})",
            err=True,
        )
    else:
        click.echo(
            "calsync: to add a phone: `calsync serve --lan` (this network), then "
            "`calsync pair` and scan the code",
            err=True,
        )
    click.echo(
        f"calsync: control API at {api_url}/api/ (token in {daemon.token_file}); Ctrl-C stops",
        err=True,
    )


def cfg_text_path() -> str:
    from calsync.gateway.embedded import shown_file

    return str(shown_file())


def fingerprint_text(cfg: Config) -> str:
    """The SHA-256 fingerprint of LAN mode's CA (made by now), as the pairing page shows it."""
    from calsync.gateway.pairing import fingerprint
    from calsync.gateway.tls import DIR, LocalCA

    return "SHA-256 " + fingerprint(LocalCA(cfg.state_dir / DIR).ca_der())
