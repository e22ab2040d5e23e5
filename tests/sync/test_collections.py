"""A pair's ``collections`` over folders of vdirs: expansion, creation, names,
a deleted collection reported and confirmed, status and metadata rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli.group import cli
from calsync.config import Config, parse
from calsync.stores import Collection
from calsync.sync.collections import CollectionsError, parse_spec, plan
from calsync.sync.metadata import decide
from calsync.sync.runner import run_pair
from tests.conftest import event


def config(tmp_path: Path, collections: str, **pair: str) -> Config:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    text = "\n".join(
        [
            "[general]",
            f'state_dir = "{tmp_path / "state"}"',
            "[stores.a]",
            'type = "vdir"',
            f'path = "{tmp_path / "a"}"',
            "[stores.b]",
            'type = "vdir"',
            f'path = "{tmp_path / "b"}"',
            "[pairs.p]",
            'a = "a"',
            'b = "b"',
            f"collections = {collections}",
            *(f"{k} = {v}" for k, v in pair.items()),
        ]
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg, errors = parse(text, path)
    assert not errors, errors
    return cfg


def calendar(root: Path, name: str, *uids: str, **meta: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for uid in uids:
        (folder / f"{uid}.ics").write_bytes(event(uid))
    for key, value in meta.items():
        (folder / key).write_text(value)
    return folder


def test_spec_forms() -> None:
    assert parse_spec("all").from_a and parse_spec("all").from_b
    spec = parse_spec(["from b", "work", ["personal", "Personal", "privat"]])
    assert (spec.from_a, spec.from_b) == (False, True)
    assert spec.named == [("work", "work", "work"), ("personal", "Personal", "privat")]
    for bad in ("everything", [], [["a", "b"]], ["../x"], ["w", "w"], 3):
        with pytest.raises(CollectionsError):
            parse_spec(bad)


def test_plan_creates_new_ones_and_reports_gone_ones() -> None:
    a = [Collection("work", "/a/work"), Collection("new", "/a/new")]
    b = [Collection("home", "/b/home")]
    entries = {
        e.name: e.action
        for e in plan(parse_spec("all"), {"home": ("home", "home")}, a, b, create=True)
    }
    assert entries == {"work": "create-b", "new": "create-b", "home": "gone-a"}
    entries = {e.name: e.action for e in plan(parse_spec("from a"), {}, a, b, create=False)}
    assert entries == {"work": "only-a", "new": "only-a"}


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "[stores.a]",
            'type = "vdir"',
            f'path = "{tmp_path}"',
            "[stores.s]",
            'type = "caldav"',
            'url = "https://example.org/"',
            'calendar = "Work"',
            "[pairs.p]",
            'a = "a"',
            'b = "s"',
            'collections = "from somewhere"',
            'metadata = ["displayname", "colour"]',
        ]
    )
    _, errors = parse(text)
    messages = "\n".join(str(e) for e in errors)
    assert "pairs.p.collections" in messages
    assert "'colour' cannot be synced" in messages
    assert "remove its calendar key" in messages


def test_from_a_syncs_each_collection_as_its_own_pair(tmp_path: Path) -> None:
    cfg = config(tmp_path, '"from a"', metadata='["displayname", "color"]')
    calendar(tmp_path / "a", "work", "w1", "w2", displayname="Work", color="#ff0000")
    calendar(tmp_path / "a", "home", "h1")
    calendar(tmp_path / "b", "other", "o1")  # only on b: not "from a"
    result = run_pair(cfg, "p")
    assert not result.stopped and not result.errors
    assert sorted(result.collections or {}) == ["home", "work"]
    assert result.added_b == 3
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["home", "other", "work"]
    assert (tmp_path / "b" / "work" / "displayname").read_text() == "Work"
    assert (tmp_path / "b" / "work" / "color").read_text() == "#ff0000"
    assert (tmp_path / "state" / "pairs" / "p" / "work.sqlite").is_file()
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "status", "--json"])
    assert out.exit_code == 0, out.output
    st = json.loads(out.output)["pairs"]["p"]
    assert st["items"] == 3 and st["a"] == "a"  # a plain pair's fields, summed
    assert st["collections"]["work"]["items"] == 2
    assert st["collections"]["work"]["a"] == "a/work"
    # a new calendar is picked up by the next sync
    calendar(tmp_path / "a", "later", "l1")
    result = run_pair(cfg, "p")
    assert result.added_b == 1 and (tmp_path / "b" / "later" / "l1.ics").is_file()


def test_mapped_names(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[["personal", "Personal", "privat"]]')
    calendar(tmp_path / "a", "Personal", "p1")
    calendar(tmp_path / "b", "privat", "p2")
    result = run_pair(cfg, "p")
    assert list(result.collections or {}) == ["personal"] and not result.errors
    assert (tmp_path / "b" / "privat" / "p1.ics").is_file()
    assert (tmp_path / "a" / "Personal" / "p2.ics").is_file()


def test_a_deleted_collection_is_reported_then_confirmed(tmp_path: Path) -> None:
    cfg = config(tmp_path, '"all"')
    calendar(tmp_path / "a", "work", "w1", "w2")
    calendar(tmp_path / "a", "home", "h1")
    assert not run_pair(cfg, "p").stopped
    for f in (tmp_path / "a" / "work").iterdir():
        f.unlink()
    (tmp_path / "a" / "work").rmdir()
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(cfg.path), "sync"])
    assert out.exit_code == 3, out.output  # a guard: it waits for a decision
    assert "collection 'work' is gone from a" in out.output
    assert "calsync sync --force p/work" in out.output
    assert sorted(p.name for p in (tmp_path / "b" / "work").iterdir()) == ["w1.ics", "w2.ics"]
    assert not (tmp_path / "a" / "work").exists()  # not made again either
    assert runner.invoke(cli, ["--config", str(cfg.path), "status"]).exit_code == 3
    # --force of the whole pair is no confirmation
    out = runner.invoke(cli, ["--config", str(cfg.path), "sync", "--force", "p"])
    assert out.exit_code == 3 and (tmp_path / "b" / "work" / "w1.ics").exists()
    out = runner.invoke(cli, ["--config", str(cfg.path), "sync", "--force", "p/work"])
    assert out.exit_code == 0, out.output
    assert "2 deleted" in out.output
    assert not (tmp_path / "b" / "work").exists()
    history = runner.invoke(cli, ["--config", str(cfg.path), "history"])
    assert "collection deleted on a (confirmed)" in history.output
    out = runner.invoke(cli, ["--config", str(cfg.path), "sync"])
    assert out.exit_code == 0, out.output
    assert "p/work" not in out.output


def test_create_false_reports_one_sided_collections(tmp_path: Path) -> None:
    cfg = config(tmp_path, '"all"', create="false")
    calendar(tmp_path / "a", "work", "w1")
    result = run_pair(cfg, "p")
    assert result.collections is not None
    assert "exists on a only" in (result.collections["work"].stopped or "")
    assert not (tmp_path / "b" / "work").exists()


def test_metadata_rules() -> None:
    assert decide("x", "x", "y", None) == ("a", "y")
    assert decide("x", "y", "x", None) == ("b", "y")
    assert decide("x", "y", "z", None) == ("conflict", None)
    assert decide("x", "y", "z", "a") == ("b", "y")
    assert decide("x", None, "x", None) == ("b", None)  # removed on a
    assert decide(None, "y", "y", None) is None


def test_metadata_conflict_is_reported_and_nothing_written(tmp_path: Path) -> None:
    cfg = config(tmp_path, '"from a"', metadata='["displayname"]')
    calendar(tmp_path / "a", "work", "w1", displayname="Work")
    run_pair(cfg, "p")
    (tmp_path / "a" / "work" / "displayname").write_text("Job")
    (tmp_path / "b" / "work" / "displayname").write_text("Office")
    result = run_pair(cfg, "p")
    assert any("changed on both sides" in e.message for e in result.errors)
    assert (tmp_path / "a" / "work" / "displayname").read_text() == "Job"
    assert (tmp_path / "b" / "work" / "displayname").read_text() == "Office"
