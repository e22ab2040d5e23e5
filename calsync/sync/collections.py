"""Whole accounts: a pair's ``collections``, each synced as its own pair ``PAIR/NAME``.

A pair with ``collections`` has roots on both sides (a CalDAV account, a folder
of vdirs).  Its collections are matched by name, with vdirsyncer's meaning:

- ``"from a"`` / ``"from b"``: every collection of that side; ``"all"`` both;
- a list of names (each must be on both sides, or is created), ``"from a"`` and
  ``"from b"`` among them, and ``["name", "name on a", "name on b"]`` for a
  collection named differently on each side.

Each collection is a *sub-pair*: the ordinary pair machinery
(``runner.run_pair``) on store configurations derived from the roots'
(``Store.collection_section``), with its own status DB
(``pairs/PAIR/NAME.sqlite``), lock and guards, and the shared history.  This
module is the one place that turns a pair into its sub-pairs, so the command
line, the daemon and the API see the same list.

Rules:
- discovery runs at every sync of the pair (a calendar made on the server
  later is picked up); what it found is kept in ``pairs/PAIR.collections.json``
  so ``status`` and the API list the collections without the network;
- a collection on one side only, never seen before, is created on the other
  (``MKCALENDAR`` with its name, colour and component types; a new folder)
  when ``create`` (the default) allows it;
- a collection that was synced before and is gone from one side is never
  deleted on the other automatically: its sub-pair stops with a guard (exit
  3) naming it.  ``calsync sync --force PAIR/NAME`` confirms the deletion, as
  vdirsyncer's ``--force-delete`` does for an emptied storage: the items the
  other side still holds unchanged since the last sync are deleted there (each
  saved in the history first: ``calsync restore`` brings it back), the
  collection itself is removed once empty, and the sub-pair is forgotten.
  Items changed there since the last sync are kept, and so is the collection
  then (a later sync with ``from`` that side makes it again on the other);
- a collection gone from both sides is forgotten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from calsync.config import Config, PairConfig
from calsync.plain import Plain
from calsync.stores import Collection, Store, StoreError

if TYPE_CHECKING:
    from calsync.sync.engine import Progress, SyncResult

log = logging.getLogger("calsync.collections")

STATE_FORMAT = 1


class CollectionsError(Exception):
    """A ``collections`` value that is not one of vdirsyncer's forms."""


class Spec(Plain):
    """A parsed ``collections`` value."""

    __slots__ = ("from_a", "from_b", "named")
    from_a: bool
    from_b: bool
    named: list[tuple[str, str, str]]  # (pair's name, name on a, name on b)

    def __init__(self, from_a: bool, from_b: bool, named: list[tuple[str, str, str]]) -> None:
        self.from_a = from_a
        self.from_b = from_b
        self.named = named


def usable_name(name: str) -> bool:
    """A collection name that can name a sub-pair and a folder (no ``/``, not hidden)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def parse_spec(value: Any) -> Spec:
    """``"all"``, ``"from a"``, ``"from b"`` or a list (see the module docstring)."""
    if isinstance(value, str):
        if value not in ("all", "from a", "from b"):
            raise CollectionsError(
                f'must be "all", "from a", "from b" or a list of names, not {value!r}'
            )
        value = {"all": ["from a", "from b"]}.get(value, [value])
    if not isinstance(value, list) or not value:
        raise CollectionsError(
            'must be "all", "from a", "from b" or a non-empty list of collection names'
        )
    spec = Spec(False, False, [])
    seen: set[str] = set()
    for entry in value:
        if entry == "from a":
            spec.from_a = True
            continue
        if entry == "from b":
            spec.from_b = True
            continue
        if isinstance(entry, str):
            triple = (entry, entry, entry)
        elif isinstance(entry, list) and len(entry) == 3 and all(isinstance(e, str) for e in entry):
            triple = (entry[0], entry[1], entry[2])
        else:
            raise CollectionsError(
                f"{entry!r} is not a collection: a name, or [name, name on a, name on b]"
            )
        bad = [n for n in triple if not usable_name(n)]
        if bad:
            raise CollectionsError(f"{bad[0]!r} cannot be a collection name")
        if triple[0] in seen:
            raise CollectionsError(f"collection {triple[0]!r} is named twice")
        seen.add(triple[0])
        spec.named.append(triple)
    return spec


Action = Literal["sync", "create-a", "create-b", "gone-a", "gone-b", "only-a", "only-b", "none"]


class Entry(Plain):
    """One collection of a pair and what this sync does with it."""

    __slots__ = ("a", "action", "b", "name", "name_a", "name_b")
    name: str
    name_a: str
    name_b: str
    a: Collection | None
    b: Collection | None
    action: Action

    def __init__(
        self,
        name: str,
        name_a: str,
        name_b: str,
        a: Collection | None,
        b: Collection | None,
        action: Action,
    ) -> None:
        self.name = name
        self.name_a = name_a
        self.name_b = name_b
        self.a = a
        self.b = b
        self.action = action

    def side(self, side: str) -> Collection | None:
        return self.a if side == "a" else self.b


def plan(
    spec: Spec,
    known: dict[str, tuple[str, str]],
    on_a: list[Collection],
    on_b: list[Collection],
    *,
    create: bool,
) -> list[Entry]:
    """Pure: the collections of a pair and what to do with each.

    ``known``: name -> (name on a, name on b) of the collections synced before."""
    by = {"a": {c.name: c for c in on_a}, "b": {c.name: c for c in on_b}}
    wanted: dict[str, tuple[str, str]] = {}
    for name, na, nb in spec.named:
        wanted[name] = (na, nb)
    for side, listed in (("a", on_a), ("b", on_b)):
        if not (spec.from_a if side == "a" else spec.from_b):
            continue
        for c in listed:
            if not usable_name(c.name):
                log.warning("collection %r (%s) cannot be synced: unusable name", c.name, c.where)
                continue
            wanted.setdefault(c.name, (c.name, c.name))
    for name, names in known.items():
        wanted.setdefault(name, names)
    out = []
    for name, (na, nb) in sorted(wanted.items()):
        ca, cb = by["a"].get(na), by["b"].get(nb)
        action: Action
        if ca and cb:
            action = "sync"
        elif ca or cb:
            missing = "b" if ca else "a"
            if name in known:
                action = "gone-a" if missing == "a" else "gone-b"
            elif create:
                action = "create-a" if missing == "a" else "create-b"
            else:
                action = "only-b" if missing == "a" else "only-a"
        else:
            action = "none"
        out.append(Entry(name, na, nb, ca, cb, action))
    return out


# -- the sub-pairs' configuration and files ------------------------------------------


def file_key(name: str) -> str:
    """A file name for a collection name: itself when plain, else a readable part
    and a hash (distinct names never share a status file)."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,100}", name):
        return name
    readable = re.sub(r"[^A-Za-z0-9_.@+=-]+", "_", name).strip("._")[:60]
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{readable}-{digest}" if readable else digest


def is_sub(cfg: Config, name: str) -> bool:
    """Whether ``name`` is ``PAIR/NAME`` of a pair with collections."""
    parent, slash, _ = name.partition("/")
    pair = cfg.pairs.get(parent)
    return bool(slash) and pair is not None and pair.collections is not None


def state_file(cfg: Config, pair: str) -> Path:
    return cfg.state_dir / "pairs" / f"{pair}.collections.json"


def load_known(cfg: Config, pair: str) -> dict[str, dict[str, Any]]:
    """The collections found by the pair's last sync: name -> {"a": ..., "b": ...}."""
    try:
        data = json.loads(state_file(cfg, pair).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        return {}
    found = data.get("collections")
    return found if isinstance(found, dict) else {}


def save_known(cfg: Config, pair: str, known: dict[str, dict[str, Any]]) -> None:
    from calsync.stores._files import write_atomic

    path = state_file(cfg, pair)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": STATE_FORMAT, "collections": known}
    write_atomic(path, json.dumps(payload, indent=1, sort_keys=True).encode(), fsync=True)


def _collection(data: Any) -> Collection | None:
    if not isinstance(data, dict) or not isinstance(data.get("where"), str):
        return None
    comps = data.get("components")
    return Collection(
        str(data.get("name", "")),
        data["where"],
        data.get("displayname"),
        data.get("color"),
        tuple(comps) if isinstance(comps, list) else None,
        bool(data.get("read_only")),
    )


def _record(c: Collection) -> dict[str, Any]:
    return {
        "name": c.name,
        "where": c.where,
        "displayname": c.displayname,
        "color": c.color,
        "components": list(c.components) if c.components is not None else None,
        "read_only": c.read_only,
    }


def sub_pairs(cfg: Config, pair: str) -> list[str]:
    """``PAIR/NAME`` of every collection the pair's last sync knew (no network)."""
    return [f"{pair}/{name}" for name in sorted(load_known(cfg, pair))]


def sub_config(cfg: Config, pair: PairConfig, entry: Entry) -> Config:
    """``cfg`` with the sub-pair ``PAIR/NAME`` and its two stores added."""
    assert entry.a is not None and entry.b is not None
    stores = dict(cfg.stores)
    names = {}
    for side, root, coll in (("a", pair.a, entry.a), ("b", pair.b, entry.b)):
        name = f"{root}/{coll.name}"
        root_store = cfg.store(root)
        try:
            stores[name] = root_store.collection_section(cfg.stores[root], coll)
        finally:
            root_store.close()
        names[side] = name
    sub = PairConfig(
        f"{pair.name}/{entry.name}",
        names["a"],
        names["b"],
        conflict=pair.conflict,
        merge_fallback=pair.merge_fallback,
        on_empty=pair.on_empty,
        max_delete=pair.max_delete,
        interval=pair.interval,
        metadata=pair.metadata,
    )
    return Config(cfg.path, cfg.raw, stores, {**cfg.pairs, sub.name: sub}, cfg.warnings)


# -- one sync of a pair with collections ------------------------------------------------


def discover(
    cfg: Config, pair: PairConfig, *, dry_run: bool
) -> tuple[list[Entry], dict[str, dict[str, Any]], list[str]]:
    """The pair's entries (collections created on the way unless ``dry_run``), the
    known collections to save, and notes for the user."""
    spec = parse_spec(pair.collections)
    known = load_known(cfg, pair.name)
    roots: dict[str, Store] = {}
    notes: list[str] = []
    try:
        listed = {}
        for side, store in (("a", pair.a), ("b", pair.b)):
            roots[side] = cfg.store(store)
            listed[side] = roots[side].collections()
        names = {
            n: (str(v.get("name_a", n)), str(v.get("name_b", n)))
            for n, v in known.items()
            if isinstance(v, dict)
        }
        entries = plan(spec, names, listed["a"], listed["b"], create=pair.create)
        for entry in entries:
            if entry.action not in ("create-a", "create-b"):
                continue
            target = entry.action[-1]
            source = entry.b if target == "a" else entry.a
            assert source is not None
            wanted = entry.name_a if target == "a" else entry.name_b
            if dry_run:
                notes.append(f"would create collection {wanted!r} on {target}")
                continue
            try:
                made = roots[target].create_collection(
                    wanted, source.displayname, source.color, source.components
                )
            except StoreError as e:
                notes.append(f"collection {entry.name!r}: cannot create it on {target}: {e}")
                entry.action = "only-b" if target == "a" else "only-a"
                continue
            log.info("pair %s: created collection %r on %s", pair.name, wanted, target)
            if target == "a":
                entry.a = made
            else:
                entry.b = made
            entry.action = "sync"
    finally:
        for root in roots.values():
            root.close()
    new_known = {}
    for entry in entries:
        if entry.action == "sync":
            assert entry.a is not None and entry.b is not None
            new_known[entry.name] = {
                "name_a": entry.name_a,
                "name_b": entry.name_b,
                "a": _record(entry.a),
                "b": _record(entry.b),
            }
        elif entry.action in ("gone-a", "gone-b"):
            new_known[entry.name] = known[entry.name]
    return entries, new_known, notes


def run_collections(
    cfg: Config,
    name: str,
    *,
    run: Callable[..., SyncResult],
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    wait: float = 0.0,
    mode: str = "two-way",
    cancel: Callable[[], bool] | None = None,
) -> SyncResult:
    """Sync a pair with collections (``name`` = PAIR), or one of them (PAIR/NAME).

    ``run`` is ``runner.run_pair`` (this module sits below the runner)."""
    from calsync.sync.engine import SyncResult

    parent, _, only = name.partition("/")
    pair = cfg.pairs[parent]
    spec = parse_spec(pair.collections)
    try:
        entries, new_known, notes = discover(cfg, pair, dry_run=dry_run)
    except StoreError as e:
        return SyncResult(name, stopped=f"cannot list the collections: {e}")
    if only:
        entries = [e for e in entries if e.name == only]
        if not entries:
            known = ", ".join(sorted(new_known)) or "none"
            return SyncResult(name, stopped=f"no collection {only!r} (collections: {known})")
    total = SyncResult(name, collections={})
    assert total.collections is not None
    for note in notes:
        log.warning("pair %s: %s", pair.name, note)
    for entry in entries:
        sub = f"{parent}/{entry.name}"
        if cancel is not None and cancel():
            break
        if entry.action == "sync":
            assert entry.a is not None and entry.b is not None
            result = run(
                sub_config(cfg, pair, entry),
                sub,
                hints=(entry.a.hint, entry.b.hint),
                force=force,
                dry_run=dry_run,
                progress=progress,
                wait=wait,
                mode=mode,
                cancel=cancel,
            )
        elif entry.action in ("gone-a", "gone-b"):
            gone = entry.action[-1]
            if force and only == entry.name and not dry_run:
                result = _confirm_deletion(cfg, pair, entry, gone, new_known)
            else:
                result = SyncResult(sub, stopped=_gone_message(cfg, pair, entry, gone), guard=True)
                if not dry_run:
                    _remember(cfg, sub, result)
        elif entry.action in ("only-a", "only-b"):
            have = entry.action[-1]
            result = SyncResult(
                sub,
                stopped=f"collection {entry.name!r} exists on {have} only and is not "
                "created on the other side (create = false, or creating it failed)",
            )
        elif entry.action == "none":
            new_known.pop(entry.name, None)
            if not any(named[0] == entry.name for named in spec.named):
                continue  # gone from both sides: forgotten
            result = SyncResult(sub, stopped=f"collection {entry.name!r} is on neither side")
        else:  # dry run of a creation
            result = SyncResult(sub)
        total.collections[entry.name] = result
        _add(total, result)
    if not dry_run and not only:
        save_known(cfg, parent, new_known)
    elif not dry_run:
        merged = load_known(cfg, parent)
        for entry in entries:
            if entry.name in new_known:
                merged[entry.name] = new_known[entry.name]
            else:
                merged.pop(entry.name, None)
        save_known(cfg, parent, merged)
    return total


def _remember(cfg: Config, sub: str, result: SyncResult) -> None:
    """Keep a result the engine did not make as the sub-pair's last (``status``)."""
    import time

    from calsync.sync.runner import status_file
    from calsync.sync.status import StatusDB

    status = StatusDB(status_file(cfg, sub))
    try:
        status.set_meta("last_run", str(time.time()))
        status.set_meta("last_result", json.dumps(result.to_json()))
    finally:
        status.close()


def _add(total: SyncResult, result: SyncResult) -> None:
    for key in ("added_a", "added_b", "updated_a", "updated_b", "deleted_a", "deleted_b"):
        setattr(total, key, getattr(total, key) + getattr(result, key))
    total.conflicts += result.conflicts
    total.errors += result.errors
    total.seconds += result.seconds
    total.guard = total.guard or result.guard
    if result.stopped:
        stopped = [n for n, r in (total.collections or {}).items() if r.stopped]
        total.stopped = f"{len(stopped)} collection(s) not synced: {', '.join(stopped)}"


def _gone_message(cfg: Config, pair: PairConfig, entry: Entry, gone: str) -> str:
    other = "b" if gone == "a" else "a"
    store = pair.a if gone == "a" else pair.b
    return (
        f"collection {entry.name!r} is gone from {gone} ({store}); its copy on {other} is "
        f"kept. To delete it there too, run `calsync sync --force {pair.name}/{entry.name}` "
        "(every deleted item is saved in the history first)"
    )


def _confirm_deletion(
    cfg: Config, pair: PairConfig, entry: Entry, gone: str, known: dict[str, dict[str, Any]]
) -> SyncResult:
    """Propagate a confirmed collection deletion (see the module docstring)."""
    from calsync.sync.engine import ItemFailure, SyncResult
    from calsync.sync.history import History
    from calsync.sync.lock import Busy, pair_lock
    from calsync.sync.runner import BUSY, history_file, lock_file, status_file
    from calsync.sync.status import StatusDB

    sub = f"{pair.name}/{entry.name}"
    other = "b" if gone == "a" else "a"
    coll = entry.side(other)
    assert coll is not None
    result = SyncResult(sub)
    root_name = pair.a if other == "a" else pair.b
    root = cfg.store(root_name)
    try:
        section = root.collection_section(cfg.stores[root_name], coll)
    finally:
        root.close()
    from calsync.stores import store_class

    path = status_file(cfg, sub)
    try:
        with pair_lock(lock_file(cfg, sub)):
            store = store_class(section["type"]).from_config(
                f"{root_name}/{coll.name}",
                {k: v for k, v in section.items() if k != "type"},
                cfg.store_context(f"{root_name}/{coll.name}"),
            )
            status = StatusDB(path)
            history = History(history_file(cfg))
            try:
                listing = store.list().versions
                rows = status.rows()
                for row in rows.values():
                    id, version, _ = row.side(other)
                    if listing.get(id) != version:
                        continue  # changed (or gone) since the last sync: kept
                    try:
                        item, now = store.get(id)
                        history.record(
                            uid=row.uid,
                            store=store.name,
                            pair=sub,
                            reason=f"collection deleted on {gone} (confirmed)",
                            content=item.raw,
                            id=id,
                        )
                        store.delete(id, now)
                    except StoreError as e:
                        result.errors.append(ItemFailure(store.name, other, id, row.uid, str(e)))
                        continue
                    result.bump("deleted", other)
                store.flush()
                left = store.list().versions
            finally:
                status.close()
                history.close()
                store.close()
            if left or result.errors:
                result.stopped = (
                    f"collection {entry.name!r}: {len(left)} item(s) on {other} changed since "
                    "the last sync were kept, and so is the collection"
                )
                return result
            root_store = cfg.store(root_name)
            try:
                root_store.remove_collection(coll)
            except StoreError as e:
                result.errors.append(ItemFailure(root_name, other, None, None, str(e)))
            finally:
                root_store.close()
            path.unlink(missing_ok=True)
            known.pop(entry.name, None)
    except Busy:
        result.stopped = BUSY
    return result
