"""Running the engine on stores in tests."""

from __future__ import annotations

from pathlib import Path

from calsync.items import Item
from calsync.stores import Store
from calsync.sync.engine import Engine, PairOptions, SyncResult
from calsync.sync.history import History
from calsync.sync.status import StatusDB


class Pair:
    """Two stores, a status and a history, synced on demand."""

    def __init__(self, a: Store, b: Store, state: Path, **options: object) -> None:
        self.a, self.b = a, b
        self.state = state
        self.options = PairOptions(name="test", **options)  # type: ignore[arg-type]

    def sync(self, **kw: object) -> SyncResult:
        status = StatusDB(self.state / "status.sqlite")
        history = History(self.state / "history.sqlite")
        try:
            return Engine(self.options, self.a, self.b, status, history, **kw).run()  # type: ignore[arg-type]
        finally:
            status.close()
            history.close()

    def history(self) -> History:
        return History(self.state / "history.sqlite")


def contents(store: Store) -> dict[str, Item]:
    """uid -> item of everything in ``store``."""
    listing = store.list()
    out: dict[str, Item] = {}
    for _, got, _ in store.get_many(list(listing.versions)):
        assert isinstance(got, Item), got
        assert got.uid not in out, f"duplicate UID {got.uid}"
        out[got.uid] = got
    return out


def summaries(store: Store) -> dict[str, str]:
    return {uid: (it.master().value("SUMMARY") or "") for uid, it in contents(store).items()}  # type: ignore[union-attr]


def edit(store: Store, uid: str, data: bytes) -> None:
    """Change an item as another program would."""
    listing = store.list()
    for id, got, version in store.get_many(list(listing.versions)):
        if isinstance(got, Item) and got.uid == uid:
            store.update(id, Item.from_bytes(data), version)
            store.flush()
            return
    raise KeyError(uid)


def remove(store: Store, uid: str) -> None:
    listing = store.list()
    for id, got, version in store.get_many(list(listing.versions)):
        if isinstance(got, Item) and got.uid == uid:
            store.delete(id, version)
            store.flush()
            return
    raise KeyError(uid)


def put(store: Store, data: bytes) -> str:
    store.list()
    id, _ = store.add(Item.from_bytes(data))
    store.flush()
    return id
