"""Who may log in to an account: its configured password, and its devices' app passwords.

Why one module: every endpoint that takes a password (CalDAV's check in
``davserver/config.py``, SyncML's auth-basic and auth-md5 in
``syncml/session.py`` through its backend, ActiveSync later) asks the same
question, "is this one of the account's passwords, and whose?", and a
revoked device must stop working everywhere at once.

An *app password* belongs to an account name and a device name (unique
among all devices): it works wherever that name is an account (a
``[syncml.accounts.NAME]``, a ``[caldav.users.NAME]``; one ``[accounts.NAME]``
once accounts are unified), with the account's own user name.  Each paired
phone gets its own (``calsync pair``), so one can be revoked
(``calsync devices revoke NAME``) without touching the others.

Storage (``FileAppPasswords``): ``app-passwords.json`` in the state
directory, 0600 in a 0700 directory.  The passwords are kept *retrievably*
(as text), not hashed: SyncML's auth-md5 proves knowledge of the password
against a fresh nonce, so the server must compute md5(user:password) itself,
and the user must be able to read a device's password again
(``calsync devices --show NAME``).  What protects them is the file's mode,
as for ``[syncml.accounts]`` passwords in ``config.toml``.  Writers (the
daemon, or the command line when no daemon runs) take an exclusive lock and
replace the file atomically; readers re-read it when its identity (inode,
size, modification time) changes, one ``stat`` per check, so a revocation
made by any process is in force at the next login.

A later step keeps this state in PostgreSQL: callers use ``AppPasswordStore``
(the protocol below), never the file.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from calsync.perms import FILE_MODE, private_dir

FILE = "app-passwords.json"
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: typed on a phone keyboard


def new_password() -> str:
    """``abcd-efgh-jkmn-pqrs``: 16 letters or digits from 31 (79 bits), in groups of 4."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(4))


class DeviceNameTaken(Exception):
    """A device of that name exists already."""


class BadDeviceName(Exception):
    """A device name must be a plain word (letters, digits, ``. _ -``, up to 64)."""


@dataclass(frozen=True)
class AppPassword:
    device: str
    account: str
    password: str = field(repr=False)
    created: float


@dataclass(frozen=True)
class Login:
    """Who logged in: the account, and the device whose app password it was (None:
    the account's configured password)."""

    account: str
    device: str | None


class AppPasswordStore(Protocol):
    """The app passwords (see the module docstring); every method is thread-safe."""

    def all(self) -> list[AppPassword]: ...

    def of_account(self, account: str) -> list[AppPassword]: ...

    def get(self, device: str) -> AppPassword | None: ...

    def add(self, account: str, device: str, password: str | None = None) -> AppPassword:
        """A new app password (``DeviceNameTaken``, ``BadDeviceName``)."""
        ...

    def remove(self, device: str, account: str | None = None) -> AppPassword | None:
        """Remove ``device``'s app password (``account``: only if it is that account's)."""
        ...


class FileAppPasswords:
    """``app-passwords.json`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._writer = threading.Lock()  # one writer per process; flock for the others
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[AppPassword] = []

    # -- reading ----------------------------------------------------------------------------

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _current(self) -> list[AppPassword]:
        with self._lock:
            ident = self._identity()
            if ident != self._seen:
                self._entries = self._read() if ident is not None else []
                self._seen = ident
            return self._entries

    def _read(self) -> list[AppPassword]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            # never "no passwords, all is well": the devices would silently lose access
            raise OSError(f"{self.path}: unreadable app passwords ({e})") from None
        out = []
        for row in data.get("devices", []) if isinstance(data, dict) else []:
            try:
                out.append(
                    AppPassword(
                        str(row["device"]),
                        str(row["account"]),
                        str(row["password"]),
                        float(row.get("created", 0)),
                    )
                )
            except (KeyError, TypeError) as e:
                raise OSError(f"{self.path}: a device entry lacks {e}") from None
        return out

    def all(self) -> list[AppPassword]:
        return list(self._current())

    def of_account(self, account: str) -> list[AppPassword]:
        return [p for p in self._current() if p.account == account]

    def get(self, device: str) -> AppPassword | None:
        return next((p for p in self._current() if p.device == device), None)

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[list[AppPassword]]:
        """The entries under the file lock (other processes too); written back after."""
        private_dir(self.path.parent)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._writer:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                try:
                    import fcntl
                except ImportError:  # Windows: no lock between processes
                    pass
                else:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                entries = self._read()
                yield entries
                self._write(entries)
            finally:
                os.close(fd)  # releases the lock

    def _write(self, entries: Sequence[AppPassword]) -> None:
        data = {
            "#": "calsync app passwords: one per paired device (calsync devices); keep private",
            "devices": [
                {"device": p.device, "account": p.account, "password": p.password,
                 "created": p.created}
                for p in entries
            ],
        }  # fmt: skip
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def add(self, account: str, device: str, password: str | None = None) -> AppPassword:
        if not DEVICE_NAME.match(device):
            raise BadDeviceName(
                f"{device!r} is not a device name: letters, digits and . _ - (up to 64)"
            )
        entry = AppPassword(device, account, password or new_password(), time.time())
        with self._writing() as entries:
            if any(p.device == device for p in entries):
                raise DeviceNameTaken(f"a device named {device!r} exists already")
            entries.append(entry)
        return entry

    def remove(self, device: str, account: str | None = None) -> AppPassword | None:
        with self._writing() as entries:
            found = next(
                (
                    p
                    for p in entries
                    if p.device == device and (account is None or p.account == account)
                ),
                None,
            )
            if found is not None:
                entries.remove(found)
        return found


_stores: dict[Path, FileAppPasswords] = {}
_stores_lock = threading.Lock()


def app_passwords(state_dir: Path) -> FileAppPasswords:
    """The app passwords of a state directory (one object per directory and process,
    so every endpoint shares its cache)."""
    path = state_dir / FILE
    with _stores_lock:
        found = _stores.get(path)
        if found is None:
            found = _stores[path] = FileAppPasswords(path)
        return found


def check(
    account: str, password: str, configured: str | None, store: AppPasswordStore | None
) -> Login | None:
    """Whether ``password`` is ``account``'s configured one or one of its devices'.

    Every candidate is compared (constant time each), so the answer's timing
    tells nothing about which one matched or how close a guess came."""
    given = password.encode("utf-8")
    found: Login | None = None
    for device, candidate in candidates(account, configured, store):
        if hmac.compare_digest(given, candidate.encode("utf-8")) and found is None:
            found = Login(account, device)
    return found


def candidates(
    account: str, configured: str | None, store: AppPasswordStore | None
) -> list[tuple[str | None, str]]:
    """(device or None, password) for every password of ``account`` (auth-md5 tries
    each against the credential: it needs them as text)."""
    out: list[tuple[str | None, str]] = []
    if configured:
        out.append((None, configured))
    if store is not None:
        out += [(p.device, p.password) for p in store.of_account(account)]
    return out
