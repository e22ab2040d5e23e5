"""The quick path of ``calsync sync`` decides exactly what click would, or defers to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from calsync.cli import _common, group, quick
from calsync.cli import sync as sync_command
from calsync.cli._common import verbosity


def through_click(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | None:
    """What click hands ``run_sync`` (and the -v count) for ``args``; None if it refuses them."""
    seen: dict[str, Any] = {}

    levels: list[int] = []

    def run_sync(obj: dict[str, Any], pairs: tuple[str, ...], **options: Any) -> None:
        seen.update(
            options,
            pairs=list(pairs),
            config=obj.get("config_path"),
            insecure_config=bool(obj.get("insecure_config")),
        )
        # the verbosity the whole call asked for is the one logging was set to last
        seen.update(verbose=levels[-1])
        assert verbosity(obj) == levels[-1]

    monkeypatch.setattr(sync_command, "run_sync", run_sync)
    monkeypatch.setattr(group, "setup_logging", levels.append)
    monkeypatch.setattr(_common, "setup_logging", levels.append)
    try:
        group.cli.main(args=args, prog_name="calsync", standalone_mode=False, obj={})
    except Exception:  # click's usage errors
        return None
    return seen or None


def through_quick(args: list[str]) -> dict[str, Any] | None:
    call = quick.parse(args)
    if call is None:
        return None
    return {
        "as_json": call.as_json,
        "force": call.force,
        "dry_run": call.dry_run,
        "mode": call.mode,
        "pairs": call.pairs,
        "config": call.config,
        "insecure_config": call.insecure_config,
        "verbose": call.verbose,
    }


PLAIN = [
    ["sync"],
    ["sync", "--json"],
    ["sync", "main", "other"],
    ["sync", "main", "--json", "other", "--dry-run", "--force"],
    ["sync", "--mode", "slow", "main"],
    ["sync", "--mode=refresh-from-a", "--mode", "one-way-b-to-a"],
    ["--config", "c.toml", "sync"],
    ["--config=c.toml", "-vv", "sync", "--json"],
    ["-v", "--verbose", "sync"],
    ["--config", "a.toml", "sync", "--config", "b.toml"],
    ["sync", "--config=b.toml", "main"],
    ["sync", "sync"],  # a pair named sync
    ["--config", "sync", "sync"],  # a file named sync
    ["sync", "--json", "--json"],
    ["sync", "-v"],
    ["sync", "-vv", "main", "--verbose"],
    ["sync", "-q"],
    ["-q", "sync", "--quiet", "-qq"],
    ["-v", "sync", "-q", "main"],
    ["-vv", "sync", "main", "-v"],
    ["sync", "main", "main"],  # named twice: both ways hand it on as given
    ["--insecure-config", "sync"],
    ["sync", "main", "--insecure-config"],
    ["--insecure-config", "-v", "sync", "--insecure-config", "--json"],
]

UNUSUAL = [
    [],
    ["status"],
    ["--help"],
    ["sync", "--help"],
    ["sync", "-h"],
    ["--version"],
    ["sync", "--mode", "sideways"],
    ["sync", "--mode"],
    ["sync", "--config"],
    ["sync", "--config", ""],
    ["sync", "--config", "."],  # a directory
    ["sync", "--jsn"],
    ["sync", "--json=yes"],
    ["sync", "-vq"],  # click takes it as -v -q; left to it
    ["-qv", "sync"],
    ["sync", "-vx"],
    ["sync", "--verbos"],
    ["sync", "--", "--json"],
    ["sync", "-"],
    ["--bogus", "sync"],
    ["-x", "sync"],
    ["--config", "--json", "sync"],
    ["sync", "--mode", "--json"],
    ["sync", "--insecure-config=yes"],
]


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_a_plain_sync_is_parsed_as_click_parses_it(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = through_quick(args)
    assert mine is not None, "a plain call should take the quick path"
    assert mine == through_click(args, monkeypatch)


@pytest.mark.parametrize("args", UNUSUAL, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_click(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert quick.parse(args) is None


def test_the_quick_path_knows_every_option_of_the_command() -> None:
    """An option added to ``calsync sync`` is taught to the quick path too (or
    calls using it take the slow way: then list it here, on purpose)."""
    import click

    names = {
        opt
        for param in sync_command.sync.params
        if isinstance(param, click.Option)
        for opt in param.opts
    }
    assert names == set(quick._FLAGS) | set(quick._VALUED) | set(quick._COUNTED)


def test_exit_codes_and_output_match_click(tmp_path: Path) -> None:
    """Same stdout, stderr and exit code both ways, for a sync and for a config error."""
    import subprocess
    import sys

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = (
        f'[general]\nstate_dir = "{tmp_path}/state"\n'
        f'[stores.a]\ntype = "vdir"\npath = "{tmp_path}/a"\n'
        f'[stores.b]\ntype = "vdir"\npath = "{tmp_path}/b"\n'
        '[pairs.p]\na = "a"\nb = "b"\n'
    )
    (tmp_path / "good.toml").write_text(good)
    (tmp_path / "bad.toml").write_text("[pairs.p]\na = 'nowhere'\n")
    for config, extra in (("good.toml", []), ("bad.toml", []), ("good.toml", ["nope"])):
        outputs = []
        for way in ("quick", "click"):
            probe = (
                "import sys\n"
                "from calsync.cli import quick\n"
                + ("quick.parse = lambda args: None\n" if way == "click" else "")
                + "from calsync.cli import main\n"
                + f"main(['--config', {config!r}, 'sync', '--json', *{extra!r}])\n"
            )
            out = subprocess.run(
                [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True
            )
            outputs.append((out.returncode, out.stdout, out.stderr))
        assert outputs[0] == outputs[1]
        assert outputs[0][0] == (0 if (config, extra) == ("good.toml", []) else 2)
