"""Audit every page of the app with axe-core, idle and while a run trains, and print the table of violations.

    python scripts/a11y_audit.py [--width 1400 --height 900] [--json out.json] [--shots]

One server (a free port), Debian's Chromium, one session: every page is opened by URL (idle), then a long run is
started on Train & watch and every page is visited through the sidebar while it trains (the run is stopped at the
end). Violations listed in tests/a11y_support.KNOWN_UPSTREAM are marked "(upstream)" in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import a11y_support as a11y  # noqa: E402
import browser_support as bs  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def settle(page, title: str, live: bool) -> None:
    bs.wait_for_title(page, title, 90)
    bs.wait_until_idle(page, 5 if live else 30)
    page.wait_for_timeout(1500)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--shots", action="store_true", help="screenshots of every audited view into screenshots/")
    ap.add_argument("--no-training", action="store_true")
    args = ap.parse_args()
    rows: dict[str, list[a11y.Violation]] = {}
    t0 = time.monotonic()
    with bs.StreamlitServer() as server, sync_playwright() as p:
        browser = bs.launch_chromium(p)
        page = browser.new_context(viewport={"width": args.width, "height": args.height}).new_page()

        def record(path: str, state: str) -> None:
            found = a11y.audit(page)
            own, upstream = a11y.split_known(page, found)
            for v in upstream:
                v.rule += " (upstream)"
            rows[f"/{path} | {state}"] = own + upstream
            print(f"/{path} {state}: {a11y.describe(own + upstream) or 'clean'}", flush=True)
            if args.shots:
                bs.screenshot(page, f"a11y-{path or 'home'}-{state}-{args.width}")

        for path, title, _ in a11y.ALL_PAGES:
            page.goto(f"{server.url}/{path}", wait_until="domcontentloaded", timeout=90_000)
            settle(page, title, live=False)
            record(path, "idle")
        if not args.no_training:
            page.goto(f"{server.url}/train?steps=6000", wait_until="domcontentloaded", timeout=90_000)
            settle(page, "Train & watch", live=False)
            page.locator(".st-key-train_start button").first.click()
            bs.poll(lambda: (bs.parse_status(bs.status_text(page)) or {}).get("step", 0) > 0, 60,
                    what="the run to start")
            for path, title, nav in a11y.ALL_PAGES:
                bs.nav_link(page, nav).click()
                settle(page, title, live=True)
                record(path, "training")
            bs.nav_link(page, "Train & watch").click()
            settle(page, "Train & watch", live=True)
            page.locator(".st-key-train_stop button").first.click()
        browser.close()
    print(f"\n{a11y.table(rows)}\n\n({time.monotonic() - t0:.0f} s, {args.width}x{args.height})")
    if args.json:
        args.json.write_text(json.dumps({k: [v.__dict__ for v in vs] for k, vs in rows.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
