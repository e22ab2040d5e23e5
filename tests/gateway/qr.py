"""Reading the pairing QR codes back as a phone would: the pixels, decoded by zxing-cpp.

The terminal code is read back character by character (each is two modules:
``█`` both light, `` `` both dark, ``▀`` light over dark, ``▄`` dark over
light), the SVG by drawing its path (segno writes rows of horizontal
strokes: ``M``/``m`` moves, ``h`` strokes) into pixels; zxing-cpp then
decodes the picture.
"""

from __future__ import annotations

import re

import numpy as np
import zxingcpp

SCALE = 8

HALVES = {"█": (0, 0), " ": (1, 1), "▀": (0, 1), "▄": (1, 0)}  # 1: a dark module


def _decode(dark: np.ndarray) -> list[str]:
    """Decode a module matrix (1: dark), given a quiet zone and a scale."""
    img = np.pad((1 - dark) * 255, 4, constant_values=255).astype(np.uint8)
    img = img.repeat(SCALE, 0).repeat(SCALE, 1)
    return [r.text for r in zxingcpp.read_barcodes(img)]


def from_terminal(text: str) -> list[str]:
    rows: list[list[int]] = []
    for line in text.rstrip("\n").split("\n"):
        unknown = set(line) - set(HALVES)
        assert not unknown, f"not a QR code character: {unknown}"
        rows.append([HALVES[c][0] for c in line])
        rows.append([HALVES[c][1] for c in line])
    width = max(len(r) for r in rows)
    dark = np.array([r + [0] * (width - len(r)) for r in rows], dtype=np.uint8)
    return _decode(dark)


def from_svg(svg: str) -> list[str]:
    size = re.search(r'<svg[^>]* width="(\d+)"', svg)
    scale = re.search(r"scale\((\d+)\)", svg)
    path = re.search(r'class="qrline"[^>]* d="([^"]+)"', svg)
    assert size and scale and path, svg[:200]
    n = int(size.group(1)) // int(scale.group(1))
    dark = np.zeros((n, n), dtype=np.uint8)
    x = y = 0.0
    for op, args in re.findall(r"([MmHh])([-\d. ]+)", path.group(1)):
        nums = [float(v) for v in args.split()]
        if op == "M":
            x, y = nums
        elif op == "m":
            x, y = x + nums[0], y + nums[1]
        elif op == "h":
            dark[int(y), int(x) : int(x + nums[0])] = 1
            x += nums[0]
        else:
            raise AssertionError(f"unexpected path command {op}")
    return _decode(dark)
