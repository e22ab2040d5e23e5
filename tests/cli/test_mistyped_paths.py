"""A mistyped store path is a configuration error, not a new directory tree
(issue 20, item 8): ``check`` names it with file, line and key, every command
exits 2, and nothing is created unless the store says ``create = true``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calsync.config import parse
from calsync.sync.runner import run_pair
from tests.cli.helpers import calsync
from tests.conftest import event


def config(tmp: Path, mine: str, *, extra: str = "") -> Path:
    """A pair ``main``: store ``mine`` (the section's body given) and an existing vdir."""
    (tmp / "other").mkdir(exist_ok=True)
    text = (
        f"[stores.mine]\n{mine}{extra}\n"
        '[stores.other]\ntype = "vdir"\npath = "other"\n\n'
        '[pairs.main]\na = "mine"\nb = "other"\n'
    )
    path = tmp / "config.toml"
    path.write_text(text)
    return path


# store type -> (section body with a path under the missing directory "typo", what it names)
MISSING = {
    "vdir": ('type = "vdir"\npath = "typo/cal"\n', "typo/cal"),
    "ics": ('type = "ics"\npath = "typo/cal.ics"\n', "typo"),
    "vcs": ('type = "vcs"\npath = "typo/cal.vcs"\n', "typo"),
}


@pytest.mark.parametrize("kind", [*sorted(MISSING), "palm"])
def test_a_missing_path_is_a_config_error_and_nothing_is_created(tmp_path: Path, kind: str) -> None:
    body, missing = MISSING.get(kind, ('type = "palm"\npath = "typo/backup"\n', "typo/backup"))
    path = config(tmp_path, body)
    (tmp_path / "other" / "x.ics").write_bytes(event("x"))
    for command in ("check", "sync", "status"):
        out = calsync(tmp_path, command)
        assert out.returncode == 2, (command, out)
        # file, line and key, like every other configuration error
        assert f"{path}:3: stores.mine.path:" in out.stderr, out.stderr
        assert str(tmp_path / missing) in out.stderr and "does not exist" in out.stderr
        assert "create = true" in out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("kind", sorted(MISSING))
def test_create_true_creates_the_path(tmp_path: Path, kind: str) -> None:
    body, _ = MISSING[kind]
    config(tmp_path, body, extra="create = true\n")
    (tmp_path / "other" / "x.ics").write_bytes(event("x"))
    out = calsync(tmp_path, "check")
    assert out.returncode == 0 and "OK (2 stores, 1 pairs)" in out.stdout, out
    out = calsync(tmp_path, "sync")
    assert out.returncode == 0, out
    assert (tmp_path / "typo").is_dir()
    if kind == "vdir":
        assert len(list((tmp_path / "typo" / "cal").glob("*.ics"))) == 1
    else:
        assert b"UID:x" in (tmp_path / "typo" / f"cal.{kind}").read_bytes()


@pytest.mark.parametrize("kind", ["ics", "vcs"])
def test_a_new_file_in_an_existing_directory_needs_no_create(tmp_path: Path, kind: str) -> None:
    config(tmp_path, f'type = "{kind}"\npath = "cal.{kind}"\n')
    (tmp_path / "other" / "x.ics").write_bytes(event("x"))
    assert calsync(tmp_path, "check").returncode == 0
    out = calsync(tmp_path, "sync")
    assert out.returncode == 0, out
    assert b"UID:x" in (tmp_path / f"cal.{kind}").read_bytes()


def test_create_must_be_true_or_false(tmp_path: Path) -> None:
    path = config(tmp_path, 'type = "vdir"\npath = "cal"\ncreate = "yes"\n')
    out = calsync(tmp_path, "check")
    assert out.returncode == 2
    assert f"{path}:4: stores.mine.create: must be true/false" in out.stderr


def test_a_vdir_path_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cal").write_text("not a directory")
    path = config(tmp_path, 'type = "vdir"\npath = "cal"\n')
    out = calsync(tmp_path, "check")
    assert out.returncode == 2 and f"{path}:3: stores.mine.path:" in out.stderr
    assert "not a directory" in out.stderr


@pytest.mark.parametrize("kind", sorted(MISSING))
def test_a_path_that_vanishes_after_the_config_was_read_is_not_recreated(
    tmp_path: Path, kind: str
) -> None:
    """The daemon reads its configuration once: a directory unmounted or removed
    later stops the pair (nothing taken for deleted) instead of being made anew."""
    body, missing = MISSING[kind]
    (tmp_path / missing).mkdir(parents=True)
    path = config(tmp_path, body)
    text = f'[general]\nstate_dir = "{tmp_path / "state"}"\n' + path.read_text()
    (tmp_path / "other" / "x.ics").write_bytes(event("x"))
    cfg, errors = parse(text, path)
    assert errors == []
    first = run_pair(cfg, "main")
    assert first.stopped is None and first.added_a == 1, first
    shutil.rmtree(tmp_path / "typo")
    again = run_pair(cfg, "main")
    assert again.stopped and "does not exist" in again.stopped, again
    assert not again.guard
    assert not (tmp_path / "typo").exists()
    assert (tmp_path / "other" / "x.ics").exists()
