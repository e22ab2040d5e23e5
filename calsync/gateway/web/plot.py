"""A pair's recent runs as a small inline SVG: how long each took, how much it changed.

Drawn on the server (no script, no library: a few rectangles and a polyline
are all a sparkline is): one bar per run, its height the run's changes (a
square-root scale, so one big first sync does not flatten the rest), red for
a run with errors or that stopped; a line over them for the duration.  The
SVG has a ``<title>`` per run (a hover or a screen reader tells its numbers)
and an ``aria-label`` summing it up.  Colours are presentation attributes,
not ``style``: the page's Content-Security-Policy allows no inline styles.
"""

from __future__ import annotations

import math
import time
from html import escape

from calsync.sync.status import RUN_OK, Run

WIDTH, HEIGHT = 240, 48
BAR, GAP = 6, 2
TOP = 4  # room for the duration line's top


def sparkline(runs: list[Run]) -> str:
    """The SVG (markup-safe text) for ``runs`` (oldest first; the last that fit)."""
    fit = WIDTH // (BAR + GAP)
    runs = runs[-fit:]
    if not runs:
        return ""
    most = max(max(r.changes for r in runs), 1)
    slowest = max(max(r.seconds for r in runs), 0.001)
    room = HEIGHT - TOP
    parts = []
    line = []
    for i, r in enumerate(runs):
        x = i * (BAR + GAP)
        h = max(1.0, room * math.sqrt(r.changes / most)) if r.changes else 1.0
        colour = "#2e7d32" if r.outcome == RUN_OK else "#c62828"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.time))
        label = (
            f"{when}: {r.changes} change(s), {r.conflicts} conflict(s), {r.errors} error(s), "
            f"{r.seconds:.2f} s, {r.outcome}"
        )
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - h:.1f}" width="{BAR}" height="{h:.1f}" '
            f'fill="{colour}" fill-opacity="0.75"><title>{escape(label)}</title></rect>'
        )
        y = TOP + room * (1 - r.seconds / slowest)
        line.append(f"{x + BAR / 2:.1f},{y:.1f}")
    changes = sum(r.changes for r in runs)
    summary = (
        f"last {len(runs)} runs: {changes} change(s) in all, "
        f"longest {slowest:.2f} s, {sum(r.outcome != RUN_OK for r in runs)} with problems"
    )
    return (
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}">'
        f"{''.join(parts)}"
        f'<polyline points="{" ".join(line)}" fill="none" stroke="#1565c0" '
        f'stroke-width="1.5"/></svg>'
    )
