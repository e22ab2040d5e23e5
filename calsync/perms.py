"""State files readable by their owner only: 0600 files in 0700 directories.

Why: the state directory holds calendar data (the history keeps every
overwritten version, the status every item's base, the SyncML mirror and the
CalDAV state what devices hold).  On a shared machine, a login shell's umask
022 would make all of it readable by every local user.

Rules:
- directories calsync creates for state are 0700 (``private_dir``), and so
  are the missing parents it creates with them (the XDG base directory spec
  asks the same of ``~/.local/state``);
- a database is created empty with 0600 before SQLite opens it
  (``private_file``): SQLite gives its ``-wal``, ``-shm`` and ``-journal``
  files the mode of the database, so they follow.  No umask change: that is
  process-wide, and the daemon's threads write users' calendar files (which
  keep the user's umask) meanwhile;
- existing state is fixed without adding work to a one-shot sync: such a
  sync closes the state directory itself (``close_dir``: one stat, and one
  chmod the first time), which already keeps everyone else out of all of
  it; ``calsync serve`` walks it once at start (``tighten``).
- only the owner's permission bits stay (``mode & ~0o077``); a file that is
  not ours (chmod refused) is left as it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
OTHERS = 0o077  # group and other bits


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 (an existing one stays as it is).

    Costs what ``path.mkdir(parents=True, exist_ok=True)`` costs: one mkdir
    when the directory exists."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
    except FileNotFoundError:
        private_dir(path.parent)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            pass


def private_file(path: Path) -> None:
    """Create ``path`` empty with 0600 unless it exists (and its directory, 0700).

    Before ``sqlite3.connect``: an empty file is an empty database."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except FileNotFoundError:
        private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return
    os.close(fd)


def close_dir(path: Path) -> bool:
    """Take group and other permissions off the directory ``path``; True if it changed."""
    if os.name != "posix":
        return False
    try:
        mode = os.stat(path).st_mode
        if not mode & OTHERS:
            return False
        os.chmod(path, mode & ~OTHERS & 0o7777)
    except OSError:  # missing (nothing to protect yet), or not ours
        return False
    return True


def tighten(root: Path) -> list[Path]:
    """Take group and other permissions off ``root`` and everything in it (not
    following symbolic links); the paths changed."""
    if os.name != "posix" or not root.is_dir():
        return []
    changed = [root] if close_dir(root) else []
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            try:
                st = os.lstat(path)
                if st.st_mode & OTHERS and not stat.S_ISLNK(st.st_mode):
                    os.chmod(path, st.st_mode & ~OTHERS & 0o7777)
                    changed.append(path)
            except OSError:  # gone meanwhile, or not ours
                continue
    return changed
