"""``calsync migrate vdirsyncer``: a vdirsyncer setup moved over with one command.

The configuration is translated (``calsync.vdirsyncer``: what does not map is
named, by section and key), written with ``--write`` (mode 0600: it may hold
passwords; an existing file is never replaced), and vdirsyncer's status is
adopted (``calsync.sync.adopt``) so the first ``calsync sync`` changes nothing
and downloads no item.  Without ``--write`` the configuration is printed, its
passwords masked, and nothing is adopted.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from calsync.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from calsync.cli._common import fail

if TYPE_CHECKING:
    from calsync.sync.adopt import Adopted


@click.group()
def migrate() -> None:
    """Move another tool's setup over to calsync."""


@migrate.command("vdirsyncer")
@click.argument("config", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--write",
    "target",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write the calsync configuration here (never replaces a file) and take over "
    "vdirsyncer's status",
)
def vdirsyncer(config: Path | None, target: Path | None) -> None:
    """Translate vdirsyncer's CONFIG (default: where vdirsyncer looks) into a
    calsync configuration, and with --write PATH also take over its status: the
    first `calsync sync --config PATH` then writes nothing and reads no item.

    What calsync cannot do the same way is listed, each by its section and
    key, and left out; exits 1 then (0 when everything was carried over)."""
    from calsync import vdirsyncer as vds

    source = config or vds.default_path()
    try:
        got = vds.translate(vds.read(source), source)
    except vds.VdirsyncerError as e:
        fail(str(e))
    for line in got.unmapped:
        click.echo(f"not migrated: {line}", err=True)
    if target is None:
        masked = re.sub(r'(?m)^password = ".*"$', 'password = "***"  # use --write', got.text)
        click.echo(masked, nl=False)
        sys.exit(EXIT_FAILED if got.unmapped else EXIT_OK)
    if target.exists():
        fail(f"{target} exists: not replacing it (choose another path)", EXIT_USAGE)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(got.text)
    click.echo(f"wrote {target}")
    adopted = _adopt(target, got.status_path, list(got.pairs))
    sys.exit(EXIT_FAILED if got.unmapped or not adopted else EXIT_OK)


def _adopt(path: Path, status: Path | None, pairs: list[str]) -> bool:
    """Take over vdirsyncer's status for each pair; whether all of it went well."""
    from calsync.config import ConfigError, load
    from calsync.sync.adopt import AdoptError, adopt

    try:
        cfg = load(path)
    except ConfigError as e:
        click.echo(f"calsync: the migrated configuration does not load: {e}", err=True)
        return False
    if status is None:
        click.echo("no [general] status_path: nothing to take over", err=True)
        return False
    ok = True
    for name in pairs:
        pair = cfg.pairs[name]
        try:
            if pair.collections is None:
                found = status / f"{name}.items"
                if not found.is_file():
                    click.echo(f"{name}: no vdirsyncer status ({found}): the first sync compares")
                    continue
                done = [adopt(cfg, name, found)]
            else:
                done = _adopt_collections(cfg, name, status)
        except (AdoptError, ConfigError) as e:
            click.echo(f"calsync: {name}: {e}", err=True)
            ok = False
            continue
        except Exception as e:  # a store that cannot be reached (StoreError...)
            from calsync.stores import StoreError

            if not isinstance(e, StoreError):
                raise
            click.echo(f"calsync: {name}: cannot take over its status: {e}", err=True)
            ok = False
            continue
        for d in done:
            click.echo(f"{d.name}: took over the status of {d.items} item(s)")
            for note in d.notes:
                click.echo(f"  {note}")
    return ok


def _adopt_collections(cfg: object, name: str, status: Path) -> list[Adopted]:
    """The collections both sides have now, each with vdirsyncer's status file."""
    from calsync.config import Config
    from calsync.sync.adopt import adopt
    from calsync.sync.collections import discover, save_known, sub_config

    assert isinstance(cfg, Config)
    pair = cfg.pairs[name]
    entries, known, _ = discover(cfg, pair, dry_run=True)
    out: list[Adopted] = []
    for entry in entries:
        if entry.action != "sync":
            continue
        assert entry.a is not None and entry.b is not None
        found = status / name / f"{entry.name}.items"
        if not found.is_file():
            out.append(Adopted(f"{name}/{entry.name}", notes=[f"no vdirsyncer status {found}"]))
            continue
        sub = sub_config(cfg, pair, entry)
        where = {"a": entry.a.where, "b": entry.b.where}
        out.append(adopt(sub, f"{name}/{entry.name}", found, where))
    save_known(cfg, name, {n: v for n, v in known.items() if n in {e.name for e in entries}})
    return out
