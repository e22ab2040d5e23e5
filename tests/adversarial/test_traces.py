"""What the daemon leaves behind: private state files and a clean, bounded log.

After a whole legitimate session on every endpoint (and a few attacks on each),
every file the daemon keeps in its state and configuration directories is
0600 and every directory 0700 (its umask is a login shell's, 022), and its
log shows no password, token or credential: neither the users' nor what the
attackers tried.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.adversarial.clients import Legit
from tests.adversarial.endpoints import ENDPOINTS, common_attacks
from tests.adversarial.target import Target

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

# the daemon's own files (the stores' calendar files are the user's, with the user's umask)
PRIVATE = ("state", "xdg-config", "xdg-state", "xdg-data", "data")


def modes(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` (itself included) that is not
    exactly 0600 (files) or 0700 (directories), with its mode."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        want = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) != want:
            found[str(path.relative_to(root.parent))] = stat.filemode(mode)
    return found


def test_state_is_private_and_the_log_clean_after_every_endpoint(
    target: Target, legit: Legit
) -> None:
    for ep in ENDPOINTS:
        for attack in common_attacks(ep):
            attack.run(target)
        if ep.state_touch is not None:
            ep.state_touch(legit)
        ep.probe(legit)
    state = target.state
    for name in ("history.sqlite", "syncml.sqlite", "davserver.sqlite", "daemon.json"):
        assert (state / name).exists(), name
    assert list((state / "pairs").glob("syncml-*.sqlite")), "no SyncML pair state"
    assert (target.config_dir / "api-token").exists()
    loose = {}
    for name in PRIVATE:
        if (target.tmp / name).exists():
            loose.update(modes(target.tmp / name))
    assert not loose, loose
    target.check_log()
    target.check_bounded("sessions and attacks on every endpoint")
