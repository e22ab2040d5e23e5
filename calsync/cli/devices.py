"""``calsync pair`` and ``calsync devices``: phones, their app passwords, their pairing.

``pair`` asks the running daemon (``POST /api/pair``): the pairing URL is
served by the daemon, so without one there is nothing to scan, and the
command says to start it (exit 2).  It prints the QR code, the URL, the
device name, when it expires and the CA fingerprint to compare; on a
terminal it then waits until the phone has fetched its credentials (or the
pairing expired).

``devices`` lists the paired devices from the app-password store
(``calsync.credentials``; no daemon needed), ``devices revoke NAME`` revokes
one (through the daemon when one runs, so the device's open sessions end
too; else in the store directly), and ``devices --show NAME`` prints a
device's app password on stdout (the user's own terminal: never logged,
never in ``--json``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from calsync.cli import EXIT_FAILED, EXIT_USAGE
from calsync.cli._common import (
    config_option,
    daemon_client,
    echo,
    fail,
    load_config,
    print_json,
    root_obj,
)

NO_DAEMON = (
    "no calsync daemon runs for this configuration: start it first (`calsync serve --lan` "
    "for phones on this network); the pairing page is served by the daemon"
)


@click.command("pair")
@click.argument("account", required=False)
@click.option("--device", help="the device's name (default: phone, phone-2, ...)")
@click.option(
    "--secure",
    is_flag=True,
    help="encode the https URL (the phone warns about the certificate once) instead of plain HTTP",
)
@click.option("--json", "as_json", is_flag=True, help="print the offer as JSON")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="wait until the phone has its credentials (default: on a terminal)",
)
@config_option
@click.pass_context
def pair(
    ctx: click.Context,
    account: str | None,
    device: str | None,
    secure: bool,
    as_json: bool,
    wait: bool | None,
) -> None:
    """Pair a phone: show a QR code that sets it up in one scan.

    \b
    The code holds a one-time URL (10 minutes, one device) on the running
    daemon. On the phone it offers:
    - iPhone/iPad/Mac: a profile with calsync's certificate and the account;
    - Android: the certificate, then the account for DAVx5;
    - SyncML phones and SyncEvolution: server URL, user, password, datastores.
    Each phone gets its own app password (see `calsync devices`).
    """
    from calsync.gateway.client import DaemonError

    cfg = load_config(ctx)
    client = daemon_client(root_obj(ctx), cfg)
    if client is None:
        fail(NO_DAEMON, EXIT_USAGE)
    try:
        offer = client.pair(account, device, secure=secure)
    except DaemonError as e:
        client.close()
        fail(str(e), EXIT_USAGE)
    if as_json:
        client.close()
        print_json(offer)
        return
    minutes = max(1, round((float(offer["expires"]) - time.time()) / 60))
    echo(offer["qr_text"].rstrip("\n"))
    echo(f"Scan this with the phone's camera (device {offer['device']}, account "
         f"{offer['account']}), or open {offer['url']}")  # fmt: skip
    echo(f"The link works once, for {minutes} minutes, on the same network as this machine.")
    if offer.get("ca_fingerprint"):
        echo(f"Certificate fingerprint (the phone's page shows it too): SHA-256 "
             f"{offer['ca_fingerprint']}")  # fmt: skip
    if wait if wait is not None else sys.stdout.isatty():
        _wait_for(client, str(offer["device"]), float(offer["expires"]))
    client.close()


def _wait_for(client: Any, device: str, expires: float) -> None:
    from calsync.gateway.client import DaemonError

    echo("Waiting for the phone (Ctrl-C stops waiting; the link stays valid)...")
    try:
        while time.time() < expires:
            try:
                if any(d.get("name") == device for d in client.devices()):
                    echo(f"Paired: {device}. It syncs from now on; `calsync devices` lists it.")
                    return
            except DaemonError as e:
                fail(str(e), EXIT_FAILED)
            time.sleep(1)
    except KeyboardInterrupt:
        echo("")
        return
    fail(f"the pairing of {device} expired unused: run `calsync pair` again", EXIT_FAILED)


@click.group("devices", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print the devices as JSON")
@click.option("--show", metavar="NAME", help="print this device's app password")
@config_option
@click.pass_context
def devices(ctx: click.Context, as_json: bool, show: str | None) -> None:
    """The paired devices (each with its own app password), or revoke one.

    \b
    calsync devices               list them
    calsync devices --show NAME   print NAME's app password (to type it in by hand)
    calsync devices revoke NAME   NAME's password stops working, its sessions end
    """
    if ctx.invoked_subcommand is not None:
        return
    from calsync.credentials import app_passwords

    cfg = load_config(ctx)
    store = app_passwords(cfg.state_dir)
    try:
        found = store.all()
    except OSError as e:
        fail(str(e), EXIT_FAILED)
    if show is not None:
        entry = store.get(show)
        if entry is None:
            fail(f"no device named {show!r} (calsync devices lists them)", EXIT_USAGE)
        echo(f"user {entry.account}, password {entry.password}")
        return
    if as_json:
        print_json(
            {"devices": [{"name": p.device, "account": p.account, "created": p.created}
                         for p in found]}
        )  # fmt: skip
        return
    if not found:
        echo("no paired devices (calsync pair adds one)")
        return
    for p in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.created))
        echo(f"{p.device}  account {p.account}  paired {when}")


@devices.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke device NAME: its app password stops working at once, its sessions end."""
    from calsync.credentials import app_passwords
    from calsync.gateway.client import DaemonError

    cfg = load_config(ctx)
    client = daemon_client(root_obj(ctx), cfg)
    if client is not None:
        try:
            client.revoke(name)
        except DaemonError as e:
            fail(str(e), EXIT_USAGE if "no device" in str(e) else EXIT_FAILED)
        finally:
            client.close()
    elif app_passwords(cfg.state_dir).remove(name) is None:
        fail(f"no device named {name!r} (calsync devices lists them)", EXIT_USAGE)
    echo(f"revoked {name}: its password no longer works")
