"""Running ``calsync`` as a user would: a fresh process, in a directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def calsync(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``calsync ARGS`` in ``tmp``, with ``tmp/config.toml`` as the configuration
    unless ``env`` says otherwise."""
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        cwd=tmp,
        env=env or {**os.environ, "CALSYNC_CONFIG": str(tmp / "config.toml")},
        capture_output=True,
        text=True,
        timeout=120,
    )
