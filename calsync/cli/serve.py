"""``calsync serve``: the HTTP gateway (SyncML endpoint for devices at /sync)."""

from __future__ import annotations

import click

from calsync.cli import EXIT_USAGE
from calsync.cli._common import config_option, fail, load_config
from calsync.config import ConfigError


@click.command()
@click.option(
    "--listen", help="HOST:PORT to listen on (default: [server] listen, or 127.0.0.1:8765)"
)
@config_option
@click.pass_context
def serve(ctx: click.Context, listen: str | None) -> None:
    """Serve devices: SyncML (OMA DS 1.1/1.2) over HTTP at /sync.

    Phones log in with a [syncml.accounts.NAME] account of the configuration;
    each device datastore (calendar, tasks) syncs with the store the account
    names.  Listens on 127.0.0.1 only unless [server] says otherwise (with TLS).
    """
    from calsync.gateway.app import create_app, features_for
    from calsync.gateway.server import listen_options, run

    cfg = load_config(ctx)
    try:
        opts = listen_options(cfg, listen)
        features = features_for(cfg)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    if not features:
        fail("nothing to serve: add a [syncml.accounts.NAME] section (see calsync serve --help)")
    accounts = ", ".join(sorted(cfg.section("syncml").get("accounts", {})))
    click.echo(f"calsync: SyncML for {accounts} at {opts.url()} (Ctrl-C stops)", err=True)
    run(create_app(features), opts)
