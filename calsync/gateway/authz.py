"""Who may see and do what on the gateway: the owner, an account, one of its devices.

Why: the web page shows calendar contents (conflicts, saved versions),
writes them back (restore, keep a conflict's version), starts syncs and
hands out app passwords.  The gateway serves several accounts (CalDAV users,
SyncML accounts; one day a provider's users), so a login with one account
must never reach another's calendars or devices, and the rules must be in
one place that every route asks.  This module is that place: the routes
hold a ``Scope`` and pass it to the daemon's data functions (which filter
with it) and ask it before acting.

Principals (``Role``):

* **owner** -- the machine's user: the web page from this machine (loopback,
  no password), or logged in with the control API's token; the control API
  itself (its token).  Sees and does everything (``OWNER``).
* **account** -- logged in with an account's own password.  An account is a
  name: the ``[caldav.users.NAME]`` and ``[syncml.accounts.NAME]`` of that
  name are one account (their app passwords already work at both), and its
  **stores** are both sections' stores (CalDAV calendars, SyncML datastores).
* **device** -- logged in with one of an account's app passwords (a paired
  phone's).  Sees what its account sees, and may act on its calendars as the
  phone itself could, but may neither pair a device nor revoke one: a stolen
  phone's password must not mint new passwords that outlive its revocation,
  nor cut off the owner's other phones.

What an account (or device) sees -- its scope:

* its **pairs**: every pair with one of its stores on either side, and their
  collections' sub-pairs (``PAIR/NAME``); "sync now" for those alone;
* **saved versions** (history) saved from one of its stores or by one of its
  pairs (for a sub-pair: from a store of one of the pair's roots), and
  **conflicts** logged by one of its pairs; restoring and deciding only
  those (a restore goes back into the store it was saved from, or into one
  of the account's stores or its pairs' stores);
* its **devices**: the SyncML devices and CalDAV clients that logged in as
  it, and its paired devices (app passwords); it revokes only those;
* **pairing** a phone for itself alone.

Forbidden is missing: an object outside a session's scope is answered
exactly as one that does not exist (a page: 404; an action: the same
refusal in the same words), so a session learns nothing about what other
accounts have.  Only what a kind of session may never do (a device session
pairing or revoking) is refused as such (403): that is no secret.

A stored pair shared by two accounts (a store listed by both) is both
accounts' pair: whatever syncs through it is already visible to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from calsync.config import Config
    from calsync.credentials import Login

Role = Literal["owner", "account", "device"]

SYNCML_DATASTORES: Final = ("calendar", "tasks")  # the keys of a SyncML account's stores


def account_stores(cfg: Config, account: str) -> list[str]:
    """The stores an account reaches: its CalDAV calendars and SyncML datastores."""
    user = cfg.section("caldav").get("users", {}).get(account) or {}
    stores = [s for s in user.get("calendars", []) if isinstance(s, str)]
    syncml = cfg.section("syncml").get("accounts", {}).get(account) or {}
    stores += [syncml[k] for k in SYNCML_DATASTORES if isinstance(syncml.get(k), str)]
    return list(dict.fromkeys(stores))


@dataclass(frozen=True)
class Scope:
    """What one principal may see and do (see the module docstring).

    ``stores``: the account's stores; ``pairs``: its top-level pairs, each
    with its two stores; ``collections``: those of them with collections
    (whose sub-pairs ``PAIR/NAME`` are the account's too)."""

    role: Role
    account: str | None = None
    device: str | None = None
    stores: frozenset[str] = frozenset()
    pairs: tuple[tuple[str, str, str], ...] = ()  # (name, a, b)
    collections: frozenset[str] = frozenset()

    @classmethod
    def of_account(cls, cfg: Config, account: str, device: str | None = None) -> Scope:
        stores = frozenset(account_stores(cfg, account))
        pairs = tuple(
            (p.name, p.a, p.b) for p in cfg.pairs.values() if p.a in stores or p.b in stores
        )
        collections = frozenset(
            name for name, _, _ in pairs if cfg.pairs[name].collections is not None
        )
        role: Role = "device" if device is not None else "account"
        return cls(role, account, device, stores, pairs, collections)

    @property
    def owner(self) -> bool:
        return self.role == "owner"

    def describe(self) -> str:
        """Who this is, for the page's header and logs."""
        if self.account is None:
            return "owner"
        if self.device is not None:
            return f"{self.account} (app password of {self.device})"
        return self.account

    # -- what it sees ------------------------------------------------------------------------

    def sees_pair(self, name: str) -> bool:
        """A pair (or a collection's sub-pair ``PAIR/NAME``) of this scope."""
        if self.owner or any(name == p for p, _, _ in self.pairs):
            return True
        top, sub, _ = name.partition("/")
        return bool(sub) and top in self.collections

    def sees_conflict(self, pair: str) -> bool:
        """A conflict logged by ``pair`` (conflicts are logged by pairs alone)."""
        return self.sees_pair(pair)

    def sees_version(self, store: str, pair: str) -> bool:
        """A saved version, from ``store``, saved by ``pair`` (a pair's name, or what
        else saved it: ``caldav/USER``, ``restore``, an import)."""
        if self.owner or store in self.stores:
            return True
        for name, a, b in self.pairs:
            if pair == name:
                return True
            sub_pair = name in self.collections and pair.startswith(f"{name}/")
            # a sub-pair's stores are ROOT/COLLECTION, ROOT one of the pair's roots
            if sub_pair and store.startswith((f"{a}/", f"{b}/")):
                return True
        return False

    def sees_store(self, store: str) -> bool:
        """A store this scope may write to: its own, or one of its pairs'."""
        return self.owner or store in self.stores or any(store in (a, b) for _, a, b in self.pairs)

    def sees_account(self, account: str) -> bool:
        """An account's devices (SyncML devices, CalDAV clients, paired devices)."""
        return self.owner or account == self.account

    # -- what it may do ----------------------------------------------------------------------

    @property
    def may_manage_devices(self) -> bool:
        """May pair devices and revoke them (within ``pairing_accounts``)."""
        return self.role != "device"

    def pairing_accounts(self, accounts: Iterable[str]) -> list[str]:
        """Of the accounts devices may pair with, those this scope may pair for (and
        revoke the devices of)."""
        if not self.may_manage_devices:
            return []
        return [a for a in dict.fromkeys(accounts) if self.sees_account(a)]

    @property
    def revoke_account(self) -> str | None:
        """Whose devices a revocation may remove (None: anyone's, the owner)."""
        return None if self.owner else self.account

    # -- filtering the daemon's snapshot -----------------------------------------------------

    def snapshot(self, snap: dict[str, Any]) -> dict[str, Any]:
        """``Daemon.snapshot``'s answer cut to this scope: its pairs, its devices."""
        if self.owner:
            return snap

        def mine(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if self.sees_account(str(r.get("account")))]

        return {
            **snap,
            "pairs": {n: st for n, st in snap["pairs"].items() if self.sees_pair(n)},
            "devices": mine(snap["devices"]),
            "clients": mine(snap.get("clients", [])),
            "paired": mine(snap.get("paired", [])),
        }


OWNER: Final = Scope("owner")


def scope_of(cfg: Config, login: Login | None) -> Scope:
    """The scope of a login (None: the owner, on this machine or with the token)."""
    if login is None:
        return OWNER
    return Scope.of_account(cfg, login.account, login.device)
