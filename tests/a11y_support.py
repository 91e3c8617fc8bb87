"""Accessibility audits with axe-core (`axe-playwright-python` bundles axe's JavaScript: nothing is fetched).

Used by tests/test_a11y.py and scripts/a11y_audit.py. `audit(page)` runs axe on the page as it is and returns one
row per (rule, impact) with its node count and a few of its CSS targets; `split_known` separates violations that come
from Streamlit's own markup (KNOWN_UPSTREAM, each with the upstream issue that tracks it) from the app's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from browser_support import PAGES

# Every page of the navigation: (url path, text of its h1, title in the sidebar navigation); the six lab pages first.
ALL_PAGES = [
    *PAGES,
    ("bn-steps", "BatchNorm step by step", "BatchNorm step by step"),
    ("zoo", "The normalization zoo", "The normalization zoo"),
    ("evidence", "Is it really internal covariate shift?", "Is it really ICS?"),
    ("learn", "Learn: quiz, glossary, flashcards", "Quiz and glossary"),
    ("inference", "BN at inference, and in very deep networks", "Inference and depth"),
    ("backprop", "Backprop through batch norm", "Backprop through BN"),
    ("statistics", "Running statistics, and what BN does not do", "Running statistics"),
    ("scale", "Scale invariance and weight decay", "Scale and weight decay"),
    ("remedies", "Small batches, and BN with dropout", "Small batches, dropout"),
]
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = ("critical", "serious")


@dataclass(frozen=True)
class Known:
    """A violation that Streamlit's own markup causes: `rule` on nodes inside the CSS selector `inside`."""

    rule: str
    inside: str
    why: str


# Violations from Streamlit's markup, not the app's, left until Streamlit fixes them. Searched Streamlit's issue
# tracker (2026-12) for the navigation list: no issue found, so the source is named instead; file one upstream.
_NAV_WHY = ("Streamlit's sidebar navigation (st.navigation with sections) renders <ul data-testid="
            "'stSidebarNavItems'> whose children are each section's <div> (header + <li>s), so the <ul> holds divs "
            "and the <li>s have no list parent: frontend/app/src/components/Navigation/NavSection.tsx "
            "(StyledNavSectionContainer), https://github.com/streamlit/streamlit/blob/develop/frontend/app/src/"
            "components/Navigation/NavSection.tsx. No issue found in Streamlit's tracker; a clean workaround would "
            "mean replacing Streamlit's navigation with the app's own (page links), which the tests and deep links "
            "rely on.")
KNOWN_UPSTREAM: tuple[Known, ...] = (
    Known("list", '[data-testid="stSidebarNav"]', _NAV_WHY),
    Known("listitem", '[data-testid="stSidebarNav"]', _NAV_WHY),
)


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


INSIDE_JS = """([target, inside]) => { const el = document.querySelector(target);
  return !!(el && el.closest(inside)); }"""


def is_known(page, rule: str, target: str, known: tuple[Known, ...] = KNOWN_UPSTREAM) -> Known | None:
    """The known upstream exception that covers this node of this rule, if any (asks the page where it is)."""
    for k in known:
        if k.rule == rule:
            try:
                if page.evaluate(INSIDE_JS, [target, k.inside]):
                    return k
            except Exception:  # noqa: BLE001 - a target the page cannot resolve any more is not excused
                continue
    return None


def split_known(page, violations: list[Violation], known: tuple[Known, ...] = KNOWN_UPSTREAM
                ) -> tuple[list[Violation], list[Violation]]:
    """(the app's own violations, those listed as known upstream ones), node by node."""
    own: list[Violation] = []
    upstream: list[Violation] = []
    for v in violations:
        flags = [is_known(page, v.rule, t, known) is not None for t in v.targets]
        mine = [t for t, f in zip(v.targets, flags, strict=True) if not f]
        theirs = [t for t, f in zip(v.targets, flags, strict=True) if f]
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
