"""What a built package carries: the licence text (the metadata names
GPL-3.0-or-later), and the web page's templates and scripts."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_and_sdist_carry_the_licence_and_the_page(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    text = zipfile.ZipFile(wheel).read(licence).decode()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3" in text
    assert "calsync/gateway/web/templates/index.html" in names
    assert "calsync/gateway/web/static/htmx.min.js" in names
    with tarfile.open(sdist) as tar:
        assert any(m.name.endswith("/LICENSE") for m in tar.getmembers())
