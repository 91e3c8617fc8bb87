"""A check shared by the vision tests (tests/test_vision.py) and the experiment-figure tests: is colour the only
difference between two lines of one panel? (WCAG 2.2 SC 1.4.1: colour is never the only visual means.)"""

from __future__ import annotations

import itertools


def colour_only(fig: dict) -> bool:
    """True if two lines of one panel differ in colour only (same dash, mode and marker symbol)."""
    panels: dict[tuple, list] = {}
    for t in fig["data"]:
        if t.get("type", "scatter") != "scatter":
            continue
        line, marker, mode = t.get("line") or {}, t.get("marker") or {}, t.get("mode") or "lines"
        look = (line.get("dash", "solid"), mode, marker.get("symbol", "circle") if "markers" in mode else None)
        panels.setdefault((t.get("xaxis", "x"), t.get("yaxis", "y")), []).append((line.get("color"), look))
    return any(a[0] != b[0] and a[1] == b[1] for lines in panels.values() for a, b in itertools.combinations(lines, 2))
