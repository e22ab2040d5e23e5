"""In-memory store, for tests and as a model of the contract."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from calsync.items import Item
from calsync.stores import (
    Listing,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
)

_counter = itertools.count(1)


class MemoryStore(Store):
    type = "memory"
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, name: str, ctx: StoreContext) -> None:
        super().__init__(name, ctx)
        self.items: dict[str, tuple[bytes, str]] = {}
        self._identity = f"memory:{name}:{next(_counter)}"

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(name, ctx)

    def identity(self) -> str:
        return self._identity

    def _version(self) -> str:
        return str(next(_counter))

    def list(self) -> Listing:
        return Listing({id: ver for id, (_, ver) in self.items.items()})

    def get(self, id: str) -> tuple[Item, str]:
        if id not in self.items:
            raise self.error(NotFound, "no such item", id)
        raw, ver = self.items[id]
        return Item.from_bytes(raw, source=f"{self.name}/{id}"), ver

    def add(self, item: Item) -> tuple[str, str]:
        id = item.uid
        n = 1
        while id in self.items:
            n += 1
            id = f"{item.uid}-{n}"
        ver = self._version()
        self.items[id] = (item.raw, ver)
        return id, ver

    def _check(self, id: str, version: str) -> None:
        if id not in self.items:
            raise self.error(NotFound, "no such item", id)
        if self.items[id][1] != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)

    def update(self, id: str, item: Item, version: str) -> str:
        self._check(id, version)
        ver = self._version()
        self.items[id] = (item.raw, ver)
        return ver

    def delete(self, id: str, version: str) -> None:
        self._check(id, version)
        del self.items[id]

    # test helpers: edit "behind the engine's back", like another program would
    def put_raw(self, id: str, raw: bytes) -> None:
        self.items[id] = (raw, self._version())
