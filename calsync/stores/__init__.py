"""Calendar stores behind one small interface.

A store is a set of items addressed by store-specific ids, each with a version
that changes whenever the item changes (an mtime, an ETag, a content hash).
The sync engine only ever needs:

- ``list()``: every id and its version, cheaply (no parsing when possible);
- ``get_many(ids)``: the items for the ids whose version changed;
- ``add``/``update``/``delete`` with optimistic concurrency (``update`` and
  ``delete`` take the version the engine last saw, and fail with
  ``PreconditionFailed`` when the store holds something else);
- ``flush()``: make buffered writes durable (a single-file store writes its
  file once per sync, here).

Each store module registers its ``type`` in ``STORE_TYPES`` below (imported
lazily, so ``calsync sync`` of two vdirs never imports the CalDAV client) and
declares its configuration keys in ``options``, which ``calsync.config``
validates generically.

A store kept at a local ``path`` says what the path names (``path_kind``):
then it also takes ``create`` (``CREATE``), and a path that is not there (a
typo, a disk not mounted) is a configuration error unless ``create = true``;
the store itself never makes a missing path without it either.

Optional, for conflicts only: ``modified(id)``, when the store changed the item
(file mtime, CalDAV ``getlastmodified``...), asked for the few items in
conflict whose own clocks cannot tell which side is newer.

Optional, for whole accounts (a pair's ``collections``, ``calsync discover``):
a store whose configuration can name a *root* of calendars (a CalDAV account,
a folder of vdirs) lists them with ``collections()``, makes a new one with
``create_collection``, and gives the configuration of the store for one of
them with ``collection_section``.  Optional, for ``metadata``: ``get_meta`` and
``set_meta`` read and write a calendar's display name and colour (``META_KEYS``).
"""

from __future__ import annotations

import builtins
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from calsync.items import Item, ItemError
from calsync.plain import Frozen, Plain

# type name -> "module:Class"; each store adds its line here.
STORE_TYPES: dict[str, str] = {
    "memory": "calsync.stores.memory:MemoryStore",
    "vdir": "calsync.stores.vdir:VdirStore",
    "ics": "calsync.stores.ics:IcsStore",
    "thunderbird": "calsync.stores.thunderbird.store:ThunderbirdStore",
    "caldav": "calsync.stores.caldav.store:CalDAVStore",
    "vcs": "calsync.stores.vcs:VcsStore",
    "syncml": "calsync.stores.syncml:SyncMLStore",
    "palm": "calsync.stores.palm.store:PalmStore",
    "pst": "calsync.outlook.store:PstStore",
}


class StoreError(Exception):
    """A store operation failed; says which store and item."""

    def __init__(self, message: str, *, store: str | None = None, id: str | None = None) -> None:
        self.message = message
        self.store = store
        self.id = id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.store:
            where.append(f"store {self.store}")
        if self.id:
            where.append(f"item {self.id}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class NotFound(StoreError):
    """The id does not exist (any more)."""


class PreconditionFailed(StoreError):
    """The item changed since the version the caller saw."""


class ItemRejected(StoreError):
    """The store refuses this item (invalid for it, too large, wrong type...)."""


class StoreUnavailable(StoreError):
    """The store as a whole cannot be used right now (unreachable, locked, corrupt).

    The engine skips the pair for this run; nothing is treated as deleted.
    """


class FlushFailed(StoreError):
    """``flush`` wrote only part of the buffered writes: those of ``uids`` failed.

    The engine then keeps its status as it was for just these items (a plain
    StoreError from ``flush`` means all of them).
    """

    def __init__(self, message: str, *, store: str | None = None, uids: set[str]) -> None:
        self.uids = set(uids)
        super().__init__(message, store=store)


class Listing(Plain):
    """What ``Store.list`` returns.

    ``errors`` holds ids that exist but cannot be used now (e.g. a UID that
    appears twice with different content): the engine reports them and never
    treats them as deleted.  ``uids`` optionally maps ids to UIDs when the store
    knows them without fetching (saves fetching new items twice).
    """

    __slots__ = ("errors", "uids", "versions")
    versions: dict[str, str]
    errors: dict[str, str]
    uids: dict[str, str]

    def __init__(
        self,
        versions: dict[str, str],
        errors: dict[str, str] | None = None,
        uids: dict[str, str] | None = None,
    ) -> None:
        self.versions = versions
        self.errors = errors if errors is not None else {}
        self.uids = uids if uids is not None else {}


# what a pair's ``metadata`` can sync: a calendar's name and its colour
META_KEYS = ("displayname", "color")


class Collection(Plain):
    """One calendar of an account or folder root (see ``Store.collections``).

    ``name`` is what pairs match collections by (vdirsyncer's meaning: the last
    segment of a CalDAV collection's URL, a vdir's directory name); ``where``
    the URL or path; ``components`` the component types it takes (None: any).
    """

    __slots__ = ("color", "components", "displayname", "hint", "name", "read_only", "where")
    name: str
    where: str
    displayname: str | None
    color: str | None
    components: tuple[str, ...] | None
    read_only: bool
    # what the root's listing learnt that saves the collection's store a request
    # (a CalDAV calendar's ctag): handed to it with ``Store.take_hint``
    hint: object

    def __init__(
        self,
        name: str,
        where: str,
        displayname: str | None = None,
        color: str | None = None,
        components: tuple[str, ...] | None = None,
        read_only: bool = False,
        hint: object = None,
    ) -> None:
        self.name = name
        self.where = where
        self.displayname = displayname
        self.color = color
        self.components = components
        self.read_only = read_only
        self.hint = hint

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "href": self.where,
            "displayname": self.displayname,
            "color": self.color,
            "components": list(self.components) if self.components is not None else None,
            "read_only": self.read_only,
        }


class NoCollections(StoreError):
    """This store cannot be a root of collections (or cannot do what was asked of one)."""


class Option(Frozen):
    """One configuration key of a store (or pair): type, default and help."""

    __slots__ = ("choices", "default", "help", "required", "secret", "type")
    type: builtins.type | tuple[builtins.type, ...]
    help: str
    required: bool
    default: Any
    choices: tuple[str, ...] | None
    secret: bool  # never printed, never logged

    def __init__(
        self,
        type: builtins.type | tuple[builtins.type, ...],
        help: str,
        required: bool = False,
        default: Any = None,
        choices: tuple[str, ...] | None = None,
        secret: bool = False,
    ) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "required", required)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "secret", secret)


# the ``create`` key of every store with a ``path_kind`` (see the module docstring)
CREATE = Option(
    bool,
    "create the path (and missing parent directories) when it does not exist; "
    "without it a missing path is a configuration error (a typo, a disk not mounted)",
    default=False,
)


class StoreContext(Plain):
    """What a store gets from its surroundings."""

    __slots__ = ("cache_dir", "config_dir")
    cache_dir: Path  # private, persistent directory for this store's caches
    config_dir: Path | None  # for resolving relative paths

    def __init__(self, cache_dir: Path, config_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self.config_dir = config_dir


class Store(ABC):
    """Base class of all stores (see module docstring for the contract)."""

    type: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    # Stores that write everything in flush() (e.g. one .ics file): the engine
    # commits status rows for their writes only after flush() returned.
    buffered: ClassVar[bool] = False
    # Stores that mark changes themselves (a Palm's dirty and deleted flags):
    # the engine calls end_sync() once the sync's status is committed.
    marks_changes: ClassVar[bool] = False
    # what the ``path`` key names, for a store kept on the local disk: "dir" (it
    # must exist) or "file" (its directory must exist; a missing file is made)
    path_kind: ClassVar[Literal["dir", "file"] | None] = None

    def __init__(self, name: str, ctx: StoreContext) -> None:
        self.name = name
        self.ctx = ctx

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        """Build the store from its (already validated) config section."""
        raise NotImplementedError

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        """``options`` and the keys every store of its kind takes (``create``)."""
        if cls.path_kind is None:
            return cls.options
        return {**cls.options, "create": CREATE}

    # -- the contract ---------------------------------------------------------

    @abstractmethod
    def identity(self) -> str:
        """A stable string for *what* this store points at (path, URL, calendar id).

        The engine remembers it per pair and refuses to sync when it changes, so
        that a store pointed elsewhere is not mistaken for "everything deleted".
        """

    @abstractmethod
    def list(self) -> Listing: ...

    @abstractmethod
    def get(self, id: str) -> tuple[Item, str]:
        """The item and its current version; NotFound, or ItemError if unparsable."""

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        """(id, item or error, version) for each id that still exists.

        Stores with a cheaper bulk read (CalDAV multiget) override this.
        """
        for id in ids:
            try:
                item, version = self.get(id)
            except NotFound:
                continue
            except ItemError as e:
                e.source = e.source or self.name
                e.id = e.id or id
                yield id, e, ""
                continue
            yield id, item, version

    @abstractmethod
    def add(self, item: Item) -> tuple[str, str]:
        """Store a new item; returns (id, version)."""

    def add_named(self, item: Item, name: str) -> tuple[str, str]:
        """Store a new item a client chose ``name`` for (a CalDAV href); (id, version).

        A store whose ids are names it may choose (a vdir's file names) files
        it under ``name`` when that is one it takes as it is; the others
        ignore the name, as ``add`` does (the caller keeps it then).
        """
        return self.add(item)

    def expect_list(self) -> None:
        """The engine will call ``list`` after it read the status.

        A store may start listing now, in the background (a large vdir is
        listed by a helper process); ``list`` then returns that listing.
        """
        return None

    def expect_adds(self, items: Sequence[Item]) -> None:
        """The engine will ``add`` these items, in this order, in this sync.

        A store may start on them early (a vdir writes half of a large batch in
        a helper process).  ``add`` is still called for each and answers as if
        it did the work then; whatever was done early and never asked for is a
        complete item the next sync finds and matches by UID and content.
        """
        return None

    @abstractmethod
    def update(self, id: str, item: Item, version: str) -> str:
        """Replace the item if it is still at ``version``; returns the new version."""

    @abstractmethod
    def delete(self, id: str, version: str) -> None:
        """Delete the item if it is still at ``version``."""

    def modified(self, id: str) -> float | None:
        """When the item ``id`` last changed in this store (seconds since the
        epoch), or None when the store cannot tell.

        Optional and never on the listing path: the engine asks only for the
        few items in conflict whose own clocks (LAST-MODIFIED, SEQUENCE,
        DTSTAMP) cannot tell which side is newer, so it may cost a request.
        """
        return None

    def begin_sync(self, *, mode: str, side: str, dry_run: bool) -> None:
        """The engine is about to sync this store as side ``side`` ("a"/"b") in ``mode``.

        Called before ``list``.  Most stores ignore it; a store that exchanges
        changes rather than state (a SyncML server) picks its protocol's sync
        type from it.
        """
        return None

    def flush(self) -> None:
        """Make buffered writes durable.  May raise StoreError for all of them."""
        return None

    def end_sync(self, settled: dict[str, str]) -> None:
        """The sync committed its status; ``settled`` maps this side's ids to the
        versions the status now records (only for ``marks_changes`` stores).

        A store whose own marks say what changed clears them for what is settled,
        as a HotSync conduit does after a good sync: a record whose version is
        recorded is no longer dirty, a deleted one the status no longer holds is
        gone for good.  Never called for a dry run or a sync that stopped; a
        StoreError here leaves the marks for the next sync.
        """
        return None

    def close(self) -> None:
        return None

    # -- optional: an account or folder root (see the module docstring) -------

    def take_hint(self, hint: object) -> None:
        """What its root's listing learnt about this collection (``Collection.hint``),
        valid for the sync about to start; a store may use it to save a request."""
        return None

    def collections(self) -> builtins.list[Collection]:
        """The calendars under this store's root (its ``url``/``path``)."""
        raise self.error(NoCollections, f"a {self.type} store cannot hold collections")

    def create_collection(
        self,
        name: str,
        displayname: str | None = None,
        color: str | None = None,
        components: tuple[str, ...] | None = None,
    ) -> Collection:
        """Make a new, empty calendar ``name`` under the root; the new collection."""
        raise self.error(NoCollections, f"a {self.type} store cannot create collections")

    def remove_collection(self, collection: Collection) -> None:
        """Remove an *empty* collection (after a confirmed deletion)."""
        raise self.error(NoCollections, f"a {self.type} store cannot remove collections")

    def collection_section(self, section: dict[str, Any], collection: Collection) -> dict[str, Any]:
        """The configuration of the store for one collection, from the root's ``section``."""
        raise self.error(NoCollections, f"a {self.type} store cannot hold collections")

    def get_meta(self, key: str) -> str | None:
        """The calendar's ``key`` (one of ``META_KEYS``), or None when it has none."""
        raise self.error(NoCollections, f"a {self.type} store has no {key}")

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (None: remove) the calendar's ``key``."""
        raise self.error(NoCollections, f"a {self.type} store cannot set {key}")

    def describe(self) -> str:
        """A short human description, for messages."""
        return f"{self.type} store {self.name}"

    # -- helpers for subclasses -----------------------------------------------

    def error(
        self, kind: builtins.type[StoreError], message: str, id: str | None = None
    ) -> StoreError:
        return kind(message, store=self.name, id=id)

    def missing_directory(self, directory: Path) -> StoreError:
        """The store's directory went away after the configuration was checked (a
        disk unmounted...): the pair stops, and nothing is created without ``create``."""
        return self.error(
            StoreUnavailable,
            f"the directory {directory} does not exist (not mounted? set create = true "
            "to have calsync create it)",
        )


def store_class(type_name: str) -> type[Store]:
    """The Store subclass registered for ``type_name`` (imported on demand)."""
    target = STORE_TYPES.get(type_name)
    if target is None:
        raise KeyError(type_name)
    module, _, attr = target.partition(":")
    cls: type[Store] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = [
    "CREATE",
    "META_KEYS",
    "STORE_TYPES",
    "Collection",
    "FlushFailed",
    "ItemRejected",
    "Listing",
    "NoCollections",
    "NotFound",
    "Option",
    "PreconditionFailed",
    "Store",
    "StoreContext",
    "StoreError",
    "StoreUnavailable",
    "store_class",
]
