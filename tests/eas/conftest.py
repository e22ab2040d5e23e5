"""Fixtures of the ActiveSync tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from icalendar.timezone import tzp


@pytest.fixture(autouse=True)
def _clean_icalendar_zones() -> Iterator[None]:
    """Reading an item with a VTIMEZONE (``vcal.zones.resolve``) fills
    icalendar's process-wide zone cache by TZID: later readers then take a
    TZID without VTIMEZONE for that zone.  Leave the cache as found (the
    vCalendar corpus test reads such a TZID)."""
    yield
    tzp.use_default()
