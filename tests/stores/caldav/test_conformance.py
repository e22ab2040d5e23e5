"""The store conformance suite against each real server (a fresh calendar per test).

Known gaps, marked xfail(strict=True) in ``conftest.py`` (a fix turns them into
failures, so the mark gets removed):

- ``test_backslash_uid_survives_escaping`` (Cyrus): a UID holding an invalid
  escape (a lone backslash) loses it on Cyrus (libical), so the UID changes.
  Valid escapes survive everywhere (``test_awkward_uids``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync.items import Item
from calsync.items.canonical import canonical_form
from calsync.stores.caldav.store import CalDAVStore
from tests.conftest import event
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.peers import Peer
from tests.stores.conformance import Conformance

pytestmark = pytest.mark.peer

KNOWN_GAPS = {
    "test_backslash_uid_survives_escaping": (
        ("TestCyrus",),
        "Cyrus (libical) drops the invalid escape: 'and\\\\backslash' -> 'andackslash'",
    ),
}


def _unescaped(data: bytes) -> bytes:
    """Canonical form with TEXT escapes decoded (what a reader of the item sees)."""
    out = canonical_form(data)
    for esc, plain in ((b"\\\\", b"\x00"), (b"\\,", b","), (b"\\;", b";"), (b"\x00", b"\\")):
        out = out.replace(esc, plain)
    return out


class _OnServer(Conformance):
    kind = ""

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CalDAVStore]:
        peer: Peer = request.getfixturevalue(self.kind)
        url = peer.mkcalendar()
        store = make_store(peer, url, tmp_path / "cache")
        yield store
        store.close()
        peer.rmcalendar(url)

    def test_large_item_survives_escaping(self, store: CalDAVStore) -> None:
        store.list()
        text = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1500)[:100_000]
        new = Item.from_bytes(event("large-2@calsync.test", "Large", extra=f"DESCRIPTION:{text}"))
        id, _ = store.add(new)
        store.list()
        got, _ = store.get(id)
        assert _unescaped(got.raw) == _unescaped(new.raw)

    def test_backslash_uid_survives_escaping(self, store: CalDAVStore) -> None:
        store.list()
        new = Item.from_bytes(event("slash/and\\backslash", "Awkward"))
        id, _ = store.add(new)
        store.list()
        got, _ = store.get(id)
        assert _unescaped(got.raw) == _unescaped(new.raw)


class TestRadicale(_OnServer):
    kind = "radicale"


class TestXandikos(_OnServer):
    kind = "xandikos"


class TestCyrus(_OnServer):
    kind = "cyrus"


class TestDavical(_OnServer):
    kind = "davical"
