"""A store as one device datastore sees it: only the item kinds it carries.

When an account sends both its ``calendar`` and its ``tasks`` datastore to the
same store, the calendar side must not receive the store's VTODOs (nor the
tasks side its VEVENTs).  ``KindView`` filters by component kind; kinds are
learnt once per item version and remembered in the SyncML state database, so
a sync fetches only new or changed items, as it would anyway.  Items the
device itself put in this datastore (their UID is in its mirror) always stay
in view, whatever their kind: otherwise the engine would take them for
deleted.  Writes pass straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from calsync.items import Item, ItemError
from calsync.stores import Listing, Store
from calsync.syncml.mirror import DeviceDB


class KindView(Store):
    type = "syncml-view"

    def __init__(
        self,
        inner: Store,
        kinds: frozenset[str],
        db: DeviceDB,
        keep_uids: Callable[[], set[str]],
    ) -> None:
        super().__init__(inner.name, inner.ctx)
        self.inner = inner
        self.kinds = kinds
        self.devdb = db
        self.keep_uids = keep_uids
        self._memo: dict[str, tuple[str, Item | ItemError]] = {}  # id -> (version, item)
        self._learnt: list[tuple[str, str, str, str]] = []

    def identity(self) -> str:
        return f"{self.inner.identity()}#{'+'.join(sorted(self.kinds))}"

    def describe(self) -> str:
        return self.inner.describe()

    def list(self) -> Listing:
        listing = self.inner.list()
        key = self.inner.identity()
        known = self.devdb.kinds(key)
        learn = [
            id
            for id, ver in listing.versions.items()
            if id not in listing.errors and (id not in known or known[id][0] != ver)
        ]
        entries: list[tuple[str, str, str, str]] = []
        for id, got, ver in self.inner.get_many(learn):
            self._memo[id] = (ver, got)
            if isinstance(got, Item):
                known[id] = (ver, got.kind, got.uid)
                entries.append((id, ver, got.kind, got.uid))
        gone = [id for id in known if id not in listing.versions]
        if entries or gone:
            self.devdb.set_kinds(key, entries, gone)
        keep = self.keep_uids()
        out = Listing({}, errors=dict(listing.errors), uids={})
        for id, ver in listing.versions.items():
            entry = known.get(id)
            if entry is None:  # unreadable: let the engine report it
                out.versions[id] = ver
                continue
            _, kind, uid = entry
            if kind in self.kinds or uid in keep:
                out.versions[id] = ver
                out.uids[id] = uid
        return out

    def get(self, id: str) -> tuple[Item, str]:
        return self.inner.get(id)

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        rest = []
        for id in ids:
            memo = self._memo.pop(id, None)
            if memo is not None:
                yield id, memo[1], memo[0]
            else:
                rest.append(id)
        if rest:
            yield from self.inner.get_many(rest)

    def modified(self, id: str) -> float | None:
        return self.inner.modified(id)

    def add(self, item: Item) -> tuple[str, str]:
        id, version = self.inner.add(item)
        self._learnt.append((id, version, item.kind, item.uid))
        return id, version

    def update(self, id: str, item: Item, version: str) -> str:
        new = self.inner.update(id, item, version)
        self._learnt.append((id, new, item.kind, item.uid))
        return new

    def delete(self, id: str, version: str) -> None:
        self.inner.delete(id, version)

    def flush(self) -> None:
        self.inner.flush()
        if self._learnt:  # what we wrote need not be read back to learn its kind
            self.devdb.set_kinds(self.inner.identity(), self._learnt, [])
            self._learnt = []

    def close(self) -> None:
        self.inner.close()


class _BufferedKindView(KindView):
    buffered = True


def kind_view(
    inner: Store, kinds: frozenset[str], db: DeviceDB, keep_uids: Callable[[], set[str]]
) -> KindView:
    """A KindView that is buffered exactly when ``inner`` is."""
    cls = _BufferedKindView if inner.buffered else KindView
    return cls(inner, kinds, db, keep_uids)
