"""``calsync feeds``: the subscription URLs of the ``[feeds]`` (tokens included).

The URLs hold each feed's secret token: they are printed on the user's own
terminal (as ``calsync serve`` does at start), never logged.  ``--json`` gives
the same as a list (``name``, ``store``, ``url``, ``webcal``) for scripts
that hand a URL to a calendar app.
"""

from __future__ import annotations

import click

from calsync.cli import EXIT_USAGE
from calsync.cli._common import config_option, fail, load_config, print_json
from calsync.config import ConfigError


def feed_urls(cfg: object, base: str | None = None) -> list[dict[str, str]]:
    """Each feed's name, store, URL and webcal link (tokens generated if missing),
    under ``base``, else the running daemon's address, else ``[server] listen``."""
    from calsync.config import Config
    from calsync.gateway.feedconfig import Feed, load
    from calsync.gateway.runtime import running_daemon
    from calsync.gateway.server import listen_options

    assert isinstance(cfg, Config)
    if base is None:
        running = running_daemon(cfg.state_dir)
        base = str(running["url"]) if running and running.get("url") else None
    if base is None:
        base = listen_options(cfg).url("")
    out = []
    for feed in load(cfg).values():
        url = feed.url(base)
        out.append({"name": feed.name, "store": feed.store, "url": url, "webcal": Feed.webcal(url)})
    return out


@click.command("feeds")
@click.option("--json", "as_json", is_flag=True, help="print the feeds as JSON")
@config_option
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Print each feed's subscription URL and webcal:// link (they hold its token).

    A calendar app subscribes to the URL (Outlook: Add calendar > From
    Internet; Google Calendar: Other calendars > From URL; iPhone: Settings >
    Calendar > Accounts > Add Subscribed Calendar) while `calsync serve` runs.
    """
    cfg = load_config(ctx)
    if not cfg.section("feeds"):
        fail('no feeds configured: add a [feeds.NAME] section with store = "..."')
    try:
        found = feed_urls(cfg)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    if as_json:
        print_json(found)
        return
    for feed in found:
        click.echo(f"{feed['name']} ({feed['store']}):\n  {feed['url']}\n  {feed['webcal']}")
