"""``calsync convert``, ``import`` and ``export``: formats, errors, exit codes, history."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import icalendar
import pytest
from click.testing import CliRunner, Result

from calsync.cli import cli
from calsync.items import Item, items_from_stream
from calsync.items.vcal import vcal_to_items
from calsync.sync.history import History
from calsync.sync.lock import pair_lock
from tests.conftest import event
from tests.items.vcal_compare import differences

PHONE = (
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nTZ:+01\r\n"
    "DAYLIGHT:TRUE;+02;20250330T010000Z;20251026T010000Z;CET;CEST\r\n"
    "BEGIN:VEVENT\r\nUID:dentist\r\nSUMMARY:Dentist\r\nDTSTART:20250601T080000Z\r\n"
    "DTEND:20250601T090000Z\r\nRRULE:W2 MO TH #4\r\nAALARM:20250601T074500Z;;;\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:gruss\r\nSUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=C3=BC=C3=9Fe\r\n"
    "DTSTART:20250602T080000Z\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VTODO\r\nUID:taxes\r\nSUMMARY:Taxes\r\n"
    "DUE:20250610T170000Z\r\nPRIORITY:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)
BROKEN = (
    "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:broken\r\n"
    "DTSTART:2025-13-45\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
JOURNAL = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    "BEGIN:VJOURNAL\r\nUID:diary\r\nDTSTAMP:20250101T000000Z\r\nSUMMARY:Diary\r\n"
    "END:VJOURNAL\r\nEND:VCALENDAR\r\n"
)
CONFIG = """\
[stores.laptop]
type = "ics"
path = "{tmp}/laptop.ics"
[stores.phone]
type = "vcs"
path = "{tmp}/phone.vcs"
[stores.folder]
type = "vdir"
path = "{tmp}/folder"
create = true
[pairs.main]
a = "laptop"
b = "phone"
[general]
state_dir = "{tmp}/state"
"""


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def summaries(data: bytes) -> dict[str, str]:
    cal = icalendar.Calendar.from_ical(data)
    return {str(c["UID"]): str(c.get("SUMMARY")) for c in cal.walk() if "UID" in c}


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    config = tmp_path / "_config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(tmp=tmp_path))
    (tmp_path / "folder").mkdir()
    return tmp_path


# -- convert ---------------------------------------------------------------------


def test_convert_vcal_to_ical_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "phone.vcs").write_text(PHONE)
    result = run("convert", "--to", "ical", str(tmp_path / "phone.vcs"))
    assert result.exit_code == 0, result.stderr
    cal = icalendar.Calendar.from_ical(result.stdout_bytes)
    assert cal["VERSION"] == "2.0"
    by_uid = {str(c["UID"]): c for c in cal.walk() if "UID" in c}
    assert str(by_uid["gruss"]["SUMMARY"]) == "Grüße"
    assert (
        by_uid["dentist"]["RRULE"].to_ical()
        == b"FREQ=WEEKLY;COUNT=4;INTERVAL=2;BYDAY=MO,TH;WKST=SU"
    )
    assert by_uid["dentist"].walk("VALARM")[0]["TRIGGER"].dt.total_seconds() == -15 * 60
    assert by_uid["taxes"].name == "VTODO" and by_uid["taxes"]["PRIORITY"] == 1


def test_convert_ical_to_vcal_to_file_and_back_keeps_meaning(tmp_path: Path) -> None:
    src = tmp_path / "in.ics"
    src.write_bytes(event("e1", "Stand-up", extra="RRULE:FREQ=DAILY;COUNT=5\r\n"))
    assert run("convert", "--to", "vcal", str(src), str(tmp_path / "out.vcs")).exit_code == 0
    vcs = (tmp_path / "out.vcs").read_bytes()
    assert b"VERSION:1.0" in vcs and b"RRULE:D1 #5" in vcs
    back = run("convert", "--to", "ical", str(tmp_path / "out.vcs"), "-")
    assert back.exit_code == 0
    (before,), _ = items_from_stream(src.read_bytes())
    (after,), _ = items_from_stream(back.stdout_bytes)
    assert differences(before, after) == []


def test_convert_reads_stdin_and_normalizes_same_format(tmp_path: Path) -> None:
    sjis = (
        "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:j\r\n"
        "SUMMARY;CHARSET=SHIFT_JIS:会議\r\nDTSTART:20250601T080000Z\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    ).encode("shift_jis")
    result = run("convert", "--to", "vcal", "-", stdin=sjis)
    assert result.exit_code == 0, result.stderr
    assert b"CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E4=BC=9A=E8=AD=B0\r\n" in result.stdout_bytes
    (item,), _ = vcal_to_items(result.stdout_bytes)
    assert item.master().value("SUMMARY") == "会議"  # type: ignore[union-attr]


def test_convert_names_bad_entry_line_and_writes_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "mixed.vcs"
    src.write_text(PHONE + BROKEN)
    result = run("convert", "--to", "ical", str(src), str(tmp_path / "out.ics"))
    assert result.exit_code == 1
    first_line_of_broken = PHONE.count("\r\n") + 5
    assert f"{src}: item broken: line {first_line_of_broken}:" in result.stderr
    assert "2025-13-45" in result.stderr
    assert "3 item(s) converted, 1 not" in result.stderr
    assert "Traceback" not in result.output
    assert set(summaries((tmp_path / "out.ics").read_bytes())) == {"dentist", "gruss", "taxes"}


def test_convert_what_vcal_cannot_carry_is_named(tmp_path: Path) -> None:
    src = tmp_path / "mixed.ics"
    src.write_bytes(JOURNAL.encode() + event("e1", "Kept"))
    result = run("convert", "--to", "vcal", str(src))
    assert result.exit_code == 1
    assert f"{src}: item diary:" in result.stderr and "VJOURNAL" in result.stderr
    (kept,), errors = vcal_to_items(result.stdout_bytes)
    assert errors == [] and kept.uid == "e1"


@pytest.mark.parametrize(
    ("content", "message", "code"),
    [
        (None, "cannot read {path}: No such file or directory", 2),
        (b"", "{path}: empty", 1),
        (b"hello\n", "{path}: not a calendar", 1),
    ],
)
def test_convert_input_problems(
    tmp_path: Path, content: bytes | None, message: str, code: int
) -> None:
    path = tmp_path / "in.vcs"
    if content is not None:
        path.write_bytes(content)
    result = run("convert", "--to", "ical", str(path), str(tmp_path / "out.ics"))
    assert result.exit_code == code
    assert message.format(path=path) in result.stderr
    assert not (tmp_path / "out.ics").exists()


@pytest.mark.parametrize(("target", "fmt"), [("vcal", "ics"), ("ical", "vcs")])
def test_convert_names_an_item_at_the_edge_of_time(tmp_path: Path, target: str, fmt: str) -> None:
    """Issue 19: a start in year 9999 raised an unhandled OverflowError."""
    if fmt == "ics":
        far = event("far", "Far", start="99991231T230000Z")  # DURATION:PT1H ends in 10000
    else:
        far = (
            b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nTZ:-05\r\nBEGIN:VEVENT\r\nUID:far\r\n"
            b"DTSTART:99991231T230000\r\nDTEND:99991231T235900\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    src = tmp_path / f"far.{fmt}"
    src.write_bytes(far)
    result = run("convert", "--to", target, str(src), str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"{src}: item far:" in result.stderr and "out of range" in result.stderr
    assert "Traceback" not in result.output


def test_convert_usage_error_exit_2() -> None:
    assert run("convert", "--to", "xml", "-").exit_code == 2
    assert run("convert", "-").exit_code == 2


def test_convert_as_a_real_command_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.vcs").write_text(BROKEN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "calsync", "convert", "--to", "ical", str(tmp_path / "bad.vcs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"{tmp_path / 'bad.vcs'}: item broken: line 5: DTSTART" in out.stderr
    assert "Traceback" not in out.stderr


# -- import ----------------------------------------------------------------------


def test_import_adds_then_skips_then_updates_with_history(configured: Path) -> None:
    src = configured / "export.vcs"
    src.write_text(PHONE)
    first = run("import", str(src), "--into", "laptop")
    assert first.exit_code == 0, first.stderr
    assert "3 added, 0 updated, 0 unchanged, 0 failed" in first.stdout
    laptop = configured / "laptop.ics"
    assert set(summaries(laptop.read_bytes())) == {"dentist", "gruss", "taxes"}

    again = run("import", str(src), "--into", "laptop")
    assert "0 added, 0 updated, 3 unchanged" in again.stdout

    before = {i.uid: i for i in items_from_stream(laptop.read_bytes())[0]}
    src.write_text(PHONE.replace("SUMMARY:Dentist", "SUMMARY:Dentist (moved)"))
    changed = run("import", str(src), "--into", "laptop")
    assert changed.exit_code == 0
    assert "0 added, 1 updated, 2 unchanged" in changed.stdout
    assert summaries(laptop.read_bytes())["dentist"] == "Dentist (moved)"
    history = History(configured / "state" / "history.sqlite")
    try:
        (saved,) = history.versions("dentist")
    finally:
        history.close()
    assert (saved.store, saved.pair, saved.reason) == ("laptop", "import", "update")
    assert Item.from_bytes(saved.content).hash == before["dentist"].hash


def test_import_into_vcs_store_bad_entries_and_refusals(configured: Path) -> None:
    src = configured / "mixed.vcs"
    src.write_text(PHONE + BROKEN)
    result = run("import", str(src), "--into", "phone")
    assert result.exit_code == 1
    assert f"{src}: item broken: line 32: DTSTART: not a valid date" in result.stderr
    assert "3 added, 0 updated, 0 unchanged, 1 failed" in result.stdout
    items, errors = vcal_to_items((configured / "phone.vcs").read_bytes())
    assert errors == [] and {i.uid for i in items} == {"dentist", "gruss", "taxes"}

    journal = configured / "j.ics"
    journal.write_text(JOURNAL)
    refused = run("import", str(journal), "--into", "phone")
    assert refused.exit_code == 1
    assert "cannot import diary:" in refused.stderr and "VJOURNAL" in refused.stderr
    assert "0 added" in refused.stdout and "1 failed" in refused.stdout


def test_import_notes_entries_without_uid(configured: Path) -> None:
    src = configured / "old.vcs"
    src.write_text(PHONE.replace("UID:gruss\r\n", ""))
    result = run("import", str(src), "--into", "folder")
    assert result.exit_code == 0
    assert "1 added item(s) had no UID" in result.stderr
    assert len(list((configured / "folder").iterdir())) == 3


def test_import_refuses_while_a_pair_using_the_store_syncs(configured: Path) -> None:
    src = configured / "export.vcs"
    src.write_text(PHONE)
    with pair_lock(configured / "state" / "locks" / "main.lock"):
        result = run("import", str(src), "--into", "phone")
    assert result.exit_code == 1
    assert "another calsync is syncing pair main" in result.stderr
    assert not (configured / "phone.vcs").exists()
    assert run("import", str(src), "--into", "folder").exit_code == 0  # not in a pair


def test_import_usage_errors(configured: Path) -> None:
    (configured / "x.vcs").write_text(PHONE)
    result = run("import", str(configured / "x.vcs"), "--into", "nowhere")
    assert result.exit_code == 2 and "no store named 'nowhere'" in result.stderr
    assert run("import", str(configured / "x.vcs")).exit_code == 2


# -- export ----------------------------------------------------------------------


def test_export_by_extension_and_format(configured: Path) -> None:
    (configured / "laptop.ics").write_bytes(event("a", "Alpha") + event("b", "Beta"))
    assert run("export", "laptop", str(configured / "out.vcs")).exit_code == 0
    items, errors = vcal_to_items((configured / "out.vcs").read_bytes())
    assert errors == [] and sorted(i.uid for i in items) == ["a", "b"]
    assert (configured / "out.vcs").read_bytes().count(b"VERSION:1.0") == 2

    assert run("export", "laptop", str(configured / "out.ics")).exit_code == 0
    assert summaries((configured / "out.ics").read_bytes()) == {"a": "Alpha", "b": "Beta"}

    stdout = run("export", "laptop", "-", "--format", "vcs")
    assert stdout.exit_code == 0 and stdout.stdout_bytes.count(b"BEGIN:VEVENT") == 2
    assert "2 item(s) written, 0 not" in stdout.stderr

    unknown = run("export", "laptop", str(configured / "out.txt"))
    assert unknown.exit_code == 2 and "use --format" in unknown.stderr


def test_export_names_what_it_cannot_write(configured: Path) -> None:
    (configured / "laptop.ics").write_bytes(
        JOURNAL.encode() + event("a", "Alpha") + b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        b"BEGIN:VEVENT\r\nUID:bad\r\nDTSTART:notadate\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    result = run("export", "laptop", str(configured / "out.vcs"))
    assert result.exit_code == 1
    assert "diary" in result.stderr and "VJOURNAL" in result.stderr
    assert "1 item(s) written, 2 not" in result.stdout
    items, _ = vcal_to_items((configured / "out.vcs").read_bytes())
    assert [i.uid for i in items] == ["a"]


def test_phone_file_round_trip_through_a_store(configured: Path, shared_dir: Path) -> None:
    """The brief's exchange: a phone export in, synced elsewhere, sent back as .vcs."""
    src = shared_dir / "corpus" / "vcal" / "funambol-client__xvcalendar__vcalendar-events.vcs"
    assert run("import", str(src), "--into", "folder").exit_code == 0
    assert run("export", "folder", str(configured / "back.vcs")).exit_code == 0
    original, errors = vcal_to_items(src.read_bytes())
    assert errors == []
    back, errors = vcal_to_items((configured / "back.vcs").read_bytes())
    assert errors == []
    by_uid = {i.uid: i for i in back}
    assert sorted(by_uid) == sorted(i.uid for i in original)
    for item in original:
        assert differences(item, by_uid[item.uid]) == [], item.uid
