"""The one place calsync reaches into Radicale and vobject (``davserver.radicale_hooks``).

Radicale is pinned to the versions tested (pyproject.toml); this test pins the
source of every function the hook replaces or relies on, so an upgrade that
changes one fails here, loudly, instead of silently unbounding an expansion.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import time
from datetime import UTC, datetime
from importlib import metadata

import vobject
from radicale import item as radicale_item
from radicale.app import report
from radicale.item import filter as radicale_filter
from vobject import icalendar as vobject_icalendar

from calsync.davserver import radicale_hooks
from calsync.items import expansion
from tests.conftest import ROOT

# sha256 (first 16 hex digits) of each function's source, as of Radicale 3.9.0 and
# vobject 0.9.9.  Each relies on vobject's getrruleset (or the rruleset property) for
# every expansion it does, or on what the storage plugin's get_filtered returns.
PINNED = {
    "vobject.icalendar.RecurringComponent.getrruleset": "7b9aa0827a3c834e",
    "vobject.icalendar.RecurringComponent.setrruleset": "ce490a1587af4575",
    "radicale.item.filter.visit_time_ranges": "ba4259cf8d713d94",
    "radicale.item.filter.time_range_match": "eab4c465a343f64c",
    "radicale.item.filter.simplify_prefilters": "ac92c3d07dd8da7b",
    "radicale.item.find_time_range": "97be8fabcb895497",
    "radicale.item.check_and_sanitize_items": "e01e9325beb29265",
    "radicale.app.report.test_filter": "7406c2f3e9b68683",
    "radicale.app.report.retrieve_items": "8618e4d2fce040e5",
    "radicale.app.report.xml_report": "cb33991cf7a0efa8",
    "radicale.app.report._expand": "4db07cae48cba073",
    "radicale.app.report.freebusy_periods": "6f2a4e382ed6da88",
    "radicale.app.report.freebusy_collection_text": "0d3bdb2b1b5d6a3c",
}


def _fingerprint(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_radicale_and_vobject_are_what_the_hook_was_written_for() -> None:
    found = {
        "vobject.icalendar.RecurringComponent.getrruleset": _fingerprint(
            radicale_hooks.original_getrruleset
        ),
        "vobject.icalendar.RecurringComponent.setrruleset": _fingerprint(
            vobject_icalendar.RecurringComponent.setrruleset
        ),
        "radicale.item.filter.visit_time_ranges": _fingerprint(radicale_filter.visit_time_ranges),
        "radicale.item.filter.time_range_match": _fingerprint(radicale_filter.time_range_match),
        "radicale.item.filter.simplify_prefilters": _fingerprint(
            radicale_filter.simplify_prefilters
        ),
        "radicale.item.find_time_range": _fingerprint(radicale_item.find_time_range),
        "radicale.item.check_and_sanitize_items": _fingerprint(
            radicale_item.check_and_sanitize_items
        ),
        "radicale.app.report.test_filter": _fingerprint(report.test_filter),
        "radicale.app.report.retrieve_items": _fingerprint(report.retrieve_items),
        "radicale.app.report.xml_report": _fingerprint(report.xml_report),
        "radicale.app.report._expand": _fingerprint(report._expand),
        "radicale.app.report.freebusy_periods": _fingerprint(report.freebusy_periods),
        "radicale.app.report.freebusy_collection_text": _fingerprint(
            report.freebusy_collection_text
        ),
    }
    changed = sorted(k for k in PINNED if found[k] != PINNED[k])
    assert not changed, (
        f"Radicale {metadata.version('radicale')} / vobject {metadata.version('vobject')} "
        f"changed {', '.join(changed)}: re-check calsync/davserver/radicale_hooks.py and "
        "Calendar.get_filtered in storage.py (does every expansion still go through "
        "getrruleset? does get_filtered's 'matched' still spare the item Radicale's own "
        "test?), then update PINNED and the pins in pyproject.toml"
    )


def test_pyproject_pins_the_tested_versions() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(radicale|vobject)(>=[^"]+)"', text))
    assert set(pins) == {"radicale", "vobject"}, "Radicale and vobject must be pinned"
    for name, pin in pins.items():
        low, high = re.fullmatch(r">=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]
        version = tuple(int(p) for p in metadata.version(name).split(".")[:2])
        assert (
            tuple(int(p) for p in low.split(".")[:2])
            <= version
            < tuple(int(p) for p in high.split(".")[:2])
        )


def test_every_vobject_expansion_is_bounded_once_installed() -> None:
    radicale_hooks.install()
    radicale_hooks.install()  # idempotent
    assert radicale_hooks.installed()
    event = vobject.readOne(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:s@x\r\n"
        "DTSTART:20240101T000000Z\r\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).vevent
    watch = expansion.watch()
    began = time.monotonic()
    rules = event.getrruleset(addRDate=True)  # vobject peeks at the first occurrence
    assert isinstance(rules, radicale_hooks.BoundedRuleSet)
    assert isinstance(event.rruleset, radicale_hooks.BoundedRuleSet)
    assert list(rules) == []
    assert rules.between(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)) == []
    assert watch.truncated and time.monotonic() - began < 5
