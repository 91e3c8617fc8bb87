"""Accessibility audits with axe-core (`axe-playwright-python` bundles axe's JavaScript: nothing is fetched).

Used by tests/test_a11y.py and scripts/a11y_audit.py. `audit(page)` runs axe on the page as it is and returns one
row per (rule, impact) with its node count and a few of its CSS targets; `split_known` separates violations that come
from Streamlit's own markup (KNOWN_UPSTREAM, each with the upstream issue that tracks it) from the app's own.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

# Every page of the navigation: (url path, text of its h1, title in the sidebar navigation).
ALL_PAGES = [
    ("", "Batch normalization, live", "Home"),
    ("train", "Train & watch", "Train & watch"),
    ("compare", "Compare two runs", "Compare two runs"),
    ("gradients", "Gradients", "Gradients"),
    ("inside-bn", "Inside BatchNorm", "Inside BatchNorm"),
    ("runs", "Save & open runs", "Save & open runs"),
    ("bn-steps", "BatchNorm step by step", "BatchNorm step by step"),
    ("zoo", "The normalization zoo", "The normalization zoo"),
    ("evidence", "Is it really internal covariate shift?", "Is it really ICS?"),
    ("learn", "Learn: quiz, glossary, flashcards", "Quiz and glossary"),
    ("inference", "BN at inference, and in very deep networks", "Inference and depth"),
    ("backprop", "Backprop through batch norm", "Backprop through BN"),
    ("statistics", "Running statistics, and what BN does not do", "Running statistics"),
]
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = ("critical", "serious")


@dataclass(frozen=True)
class Known:
    """A violation that Streamlit's own markup causes: `rule` on nodes whose CSS target matches `target` (a glob)."""

    rule: str
    target: str
    why: str


# Violations from Streamlit's markup, not the app's, left until Streamlit fixes them (each names its issue).
KNOWN_UPSTREAM: tuple[Known, ...] = ()


@dataclass
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> int:
        return len(self.targets)


def _axe():
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def audit(page, options: dict | None = None) -> list[Violation]:
    """axe-core's violations on the page as it is now (all rules axe runs by default: WCAG 2.x A/AA and best
    practices), one per rule and impact."""
    results = _axe().run(page, options=options or {"resultTypes": ["violations"]})
    out: dict[tuple[str, str], Violation] = {}
    for v in results.response["violations"]:
        for node in v["nodes"]:
            impact = node.get("impact") or v.get("impact") or "minor"
            row = out.setdefault((v["id"], impact), Violation(v["id"], impact, v["help"]))
            row.targets.append(" ".join(str(t) for t in node["target"]))
    return list(out.values())


def is_known(rule: str, target: str, known: tuple[Known, ...] = KNOWN_UPSTREAM) -> Known | None:
    return next((k for k in known if k.rule == rule and fnmatch.fnmatch(target, k.target)), None)


def split_known(violations: list[Violation], known: tuple[Known, ...] = KNOWN_UPSTREAM
                ) -> tuple[list[Violation], list[Violation]]:
    """(the app's own violations, those listed as known upstream ones), node by node."""
    own: list[Violation] = []
    upstream: list[Violation] = []
    for v in violations:
        mine = [t for t in v.targets if not is_known(v.rule, t, known)]
        theirs = [t for t in v.targets if is_known(v.rule, t, known)]
        if mine:
            own.append(Violation(v.rule, v.impact, v.help, mine))
        if theirs:
            upstream.append(Violation(v.rule, v.impact, v.help, theirs))
    return own, upstream


def blocking(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.impact in BLOCKING]


def describe(violations: list[Violation], limit: int = 3) -> str:
    return "; ".join(f"{v.impact} {v.rule} ({v.nodes}: {', '.join(v.targets[:limit])})" for v in violations)


def table(rows: dict[str, list[Violation]]) -> str:
    """A Markdown table: per audited view, the rules by impact with their node counts."""
    lines = ["| page | state | critical | serious | moderate | minor |", "|---|---|---|---|---|---|"]
    for where, violations in rows.items():
        cells = []
        for impact in IMPACTS:
            hits = [f"`{v.rule}` ({v.nodes})" for v in violations if v.impact == impact]
            cells.append(", ".join(hits) or "0")
        page, _, state = where.partition(" | ")
        lines.append(f"| {page} | {state} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
