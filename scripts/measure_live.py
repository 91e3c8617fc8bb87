"""How live is the live lab? Measured in a real headless Chromium against `streamlit run app.py`.

    python scripts/measure_live.py [--reps 3] [--watch 20] [--headless 15] [--blink 15] [--pairs 3] [--only-first]
                                   [--settle SECONDS]

Prints one table:
  (a) Home's one-click demo ("▶ Watch BN vs no BN"): time from the click to the first chart that holds data (a
      trace with a non-empty x/y/z array, not the "waiting" figure), after one warm-up run, `--reps` times, median,
      and split by whether plotly.js had loaded at the click (`--settle S`: every click S seconds after it had).
      Measured two ways in the same clicks: as seen from Playwright (from before `click()` to the poll, every
      50 ms, that finds such a chart: includes Playwright's checks before it presses the button and up to 50 ms
      of polling) and in the page (`performance.now()` at the button's pointerdown to the first animation frame
      in which the page holds such a chart: what a person sees, to a frame);
  (b) training speed of the default twin (/train defaults: BN vs no BN, Steps raised so it lasts) while a browser
      watches (the status line's "N steps/s", sampled every second, median) against the same configs trained
      headless in a subprocess (Job.steps_per_s sampled the same way, before and after the watched phase), and
      the same in `--pairs` alternating pairs (the watched run paused while the headless one trains: the ratio
      that drift on a shared machine disturbs least);
  and, while watching, what the page does: bytes per second over the websocket, how often the live charts are
      shown faded (Streamlit's stale state) or blank, and how long a page switch takes to draw a chart.

A benchmark, not a test: it asserts nothing. Numbers from a shared or busy machine are noisy; the load average of
each phase is printed next to it. The server and the browser are always stopped, and the whole run is bounded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import browser_support as bs  # noqa: E402

WATCH_STEPS = 20_000  # long enough that the watched run never ends while it is measured
HEADLESS_CODE = r"""
import json, statistics, sys, time
from bnviz.engine.config import RunConfig
from bnviz.engine.trainer import Job

steps, seconds = int(sys.argv[1]), float(sys.argv[2])
base = RunConfig(steps=steps, eval_every=max(10, steps // 20))  # what /train's sidebar builds for these Steps
job = Job([base, base.replace(norm="none")])  # the twin that /train trains by default: BN vs no BN
t0 = time.perf_counter()
job.start()
time.sleep(1.0)  # the same warm-up the watched run gets before its first sample
s0, t1, rates = job.step, time.perf_counter(), []
while time.perf_counter() - t1 < seconds and not job.finished:
    time.sleep(1.0)
    rates.append(job.steps_per_s())
s1, t2 = job.step, time.perf_counter()
job.stop()
print(json.dumps({"median": statistics.median(rates) if rates else 0.0, "samples": len(rates),
                  "mean": (s1 - s0) / (t2 - t1), "steps": s1}))
"""


# Installed before any page script: adds up the browser's long tasks (main thread busy > 50 ms at a stretch).
LONGTASK_INIT = """
window.__longTaskMs = 0;
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longTaskMs += e.duration; })
    .observe({type: 'longtask', buffered: true});
} catch (e) { window.__longTaskMs = -1; }
"""


# Scrolls /train so that its distribution grid is in view and returns the grid's on-screen box (or null).
GRID_BOX_JS = """() => {
  const boxes = Array.from(document.querySelectorAll('.st-key-train_grid'))
    .filter(b => b.getBoundingClientRect().height > 0);
  if (!boxes.length) return null;
  const main = document.querySelector('[data-testid="stMain"]');
  if (main) main.scrollTop += boxes[0].getBoundingClientRect().top - 80;
  const r = boxes[0].getBoundingClientRect();
  const top = Math.max(0, r.top);
  return {x: r.left, y: top, width: r.width, height: Math.min(r.bottom, innerHeight) - top};
}"""


def ink(png: bytes) -> float:
    """Fraction of clearly non-white pixels in a PNG."""
    from PIL import Image

    gray = Image.open(io.BytesIO(png)).convert("L")
    histogram = gray.histogram()
    return sum(histogram[:230]) / max(1, sum(histogram))


class Overtime(Exception):
    pass


def _alarm(signum, frame):
    raise Overtime("the measurement took too long")


def loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def headless_rate(seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-c", HEADLESS_CODE, str(WATCH_STEPS), str(seconds)], cwd=ROOT,
                         capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode:
        raise RuntimeError(f"headless run failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = loadavg()
    return result


def stop_from_train(page) -> dict:
    """Stop this session's run from Train & watch (Home has no Stop button), in the same session.

    Returns seconds from the navigation click to the page's title ("title"), of Playwright's click on Stop (it waits
    until the button is visible, stable, enabled and hit by the pointer: long when the page is busy; "click"), from
    the end of that click to a status line that says stopped or finished ("stopped"), and the steps trained between
    the status line read before the click and the final one ("extra_steps")."""
    t0 = time.perf_counter()
    bs.nav_link(page, "Train & watch").click()
    bs.wait_for_title(page, "Train & watch", 90)
    t1 = time.perf_counter()
    stop = bs.main_area(page).get_by_role("button", name="Stop", exact=True)
    stop.wait_for(state="visible", timeout=60_000)
    before = bs.parse_status(bs.status_text(page)) or {}
    t2 = time.perf_counter()
    try:
        stop.click(timeout=30_000)
    except Exception:  # noqa: BLE001 - disabled: the run has ended already
        pass
    t3 = time.perf_counter()
    final = bs.poll(lambda: (s := bs.parse_status(bs.status_text(page))) and s["status"] in ("stopped", "finished")
                    and s, 60, interval=0.1, what="the run to stop")
    return {"title": t1 - t0, "click": t3 - t2, "stopped": time.perf_counter() - t3,
            "extra_steps": final["step"] - before.get("step", final["step"])}


# In the page: the time of the next pointerdown (the click on the demo button), and of the first animation frame in
# which a chart holds data (checked every frame until then).
IN_PAGE_PROBE = """() => {
  const times = window.__bnvizFirstChart = {click: null, data: null};
  const hasData = """ + bs.ANY_PLOT_WITH_DATA_JS + """;
  document.addEventListener('pointerdown', () => { times.click = performance.now(); }, {capture: true, once: true});
  const frame = () => { if (hasData()) times.data = performance.now(); else requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
}"""


def time_to_first_chart(browser, server, settle: float | None = None) -> dict:
    """One fresh session on Home: click the demo button, time the first chart element and the first with data.
    settle: None clicks as soon as the page is idle (plotly.js may still be loading); a number waits until
    plotly.js has loaded and then that many seconds more (a reader who clicks after a moment)."""
    ctx = browser.new_context(viewport=bs.VIEWPORT)
    try:
        page = ctx.new_page()
        page.goto(server.url + "/", wait_until="domcontentloaded", timeout=90_000)
        bs.wait_for_title(page, "Batch normalization, live", 90)
        bs.wait_until_idle(page, 30)
        button = bs.main_area(page).get_by_role("button", name="▶ Watch BN vs no BN")
        button.wait_for(state="visible", timeout=30_000)
        if settle is not None:
            page.wait_for_function("() => !!window.Plotly", timeout=30_000, polling=50)
            time.sleep(settle)
        assert not bs.has_plot_with_data(page), "a chart with data is shown before the click"
        # at the click: had plotly.js loaded (a warm click), and had plotly drawn its unseen warm-up figure?
        ready = page.evaluate("() => [!!window.Plotly, window.__bnvizWarm === 'drawn']")
        page.evaluate(IN_PAGE_PROBE)
        t0 = time.perf_counter()
        button.click()
        page.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=60_000)
        t1 = time.perf_counter()
        page.wait_for_function(bs.ANY_PLOT_WITH_DATA_JS, timeout=60_000, polling=50)
        t2 = time.perf_counter()
        page.wait_for_function("() => window.__bnvizFirstChart.data !== null", timeout=10_000)
        seen = page.evaluate("() => window.__bnvizFirstChart")
        step = (bs.parse_status(bs.status_text(page)) or {}).get("step")
        stop_from_train(page)
        return {"any_chart": t1 - t0, "data": t2 - t0, "in_page": (seen["data"] - seen["click"]) / 1000, "step": step,
                "plotly": ready[0], "warmed": ready[1]}
    finally:
        ctx.close()


def paired_ratios(page, pairs: int, seconds: float) -> list[dict]:
    """The watched run against the headless reference, alternately: Pause it, measure `seconds` headless (the
    same configs, in a subprocess), Resume it, wait 1.5 s (the status line's rate covers the last 64 steps), then
    sample its rate for `seconds`. Each pair's ratio compares two windows a few seconds apart, so the drift of a
    shared machine (the headless rate alone moved 85-127 steps/s within one run) mostly cancels."""
    main = bs.main_area(page)

    def status_is(name):
        return lambda: (s := bs.parse_status(bs.status_text(page))) and s["status"] == name and s

    out = []
    for _ in range(pairs):
        main.get_by_role("button", name="Pause", exact=True).click(timeout=30_000)
        bs.poll(status_is("paused"), 30, what="the run to pause")
        reference = headless_rate(seconds)
        main.get_by_role("button", name="Resume", exact=True).click(timeout=30_000)
        bs.poll(status_is("running"), 30, what="the run to resume")
        page.wait_for_timeout(1500)
        rates, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            page.wait_for_timeout(1000)
            status = bs.parse_status(bs.status_text(page))
            if status and status["status"] == "running" and status["rate"] is not None:
                rates.append(status["rate"])
        watched = statistics.median(rates) if rates else 0.0
        out.append({"watched": watched, "headless": reference["median"], "load": loadavg(),
                    "ratio": watched / reference["median"] if reference["median"] else float("nan")})
        print(f"    pair {len(out)}: watched {watched:.1f}, headless {reference['median']:.1f} steps/s, "
              f"ratio {out[-1]['ratio']:.2f} (load {out[-1]['load']})", flush=True)
    return out


def watch(browser, server, seconds: float, blink_seconds: float = 10.0, pairs: int = 0,
          pair_seconds: float = 8.0) -> dict:
    """Start /train with its defaults (Steps raised) and watch for `seconds`: rates, traffic, chart states."""
    ctx = browser.new_context(viewport=bs.VIEWPORT)
    received = {"bytes": 0, "frames": 0}

    def on_websocket(ws):
        def count(payload):
            received["bytes"] += len(payload)
            received["frames"] += 1

        ws.on("framereceived", count)

    try:
        page = ctx.new_page()
        page.add_init_script(LONGTASK_INIT)
        page.on("websocket", on_websocket)
        bs.start_train_run(page, server.url, WATCH_STEPS)
        page.wait_for_timeout(1000)
        received.update(bytes=0, frames=0)
        busy0 = page.evaluate("() => window.__longTaskMs")
        rates, charts, counts = [], [], []
        t0 = time.perf_counter()
        first = bs.parse_status(bs.status_text(page))
        while time.perf_counter() - t0 < seconds:
            page.wait_for_timeout(1000)
            status = bs.parse_status(bs.status_text(page))
            if status and status["status"] == "running" and status["rate"] is not None:
                rates.append(status["rate"])
            state = page.evaluate(bs.CHART_STATE_JS)
            counts.append(len(state))
            charts += [c for c in state if c["height"] > 0]
        elapsed = time.perf_counter() - t0
        busy = (page.evaluate("() => window.__longTaskMs") - busy0) / 1000 / elapsed if busy0 >= 0 else float("nan")
        last = bs.parse_status(bs.status_text(page))
        traffic = received["bytes"] / elapsed
        frames = received["frames"] / elapsed
        result = {
            "median": statistics.median(rates) if rates else 0.0, "samples": len(rates),
            "mean": ((last or {}).get("step", 0) - (first or {}).get("step", 0)) / elapsed,
            "load": loadavg(), "bytes_per_s": traffic, "frames_per_s": frames,
            "faded": sum(c["opacity"] < 0.5 for c in charts) / max(1, len(charts)),
            "stale": sum(c["stale"] for c in charts) / max(1, len(charts)),
            "blank": sum(c["blank"] for c in charts) / max(1, len(charts)),
            "containers": (min(counts), max(counts)) if counts else (0, 0), "busy": busy,
        }
        result["pairs"] = paired_ratios(page, pairs, pair_seconds)
        # What a user scrolled to the distribution grid sees: screenshots of its screen area (after the timed
        # window, as taking them costs the browser time). Less than 20 % of the usual ink: not drawn at that moment.
        page.mouse.move(5, 5)  # over the sidebar's top, away from the charts
        inks = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < blink_seconds:
            grid_box = page.evaluate(GRID_BOX_JS)
            if grid_box and grid_box["width"] > 0 and grid_box["height"] > 0:
                inks.append(ink(page.screenshot(clip=grid_box)))
            else:
                inks.append(0.0)  # no grid on screen at all
            page.wait_for_timeout(300)
        usual = statistics.median(inks) if inks else 0.0
        result["grid_blank"] = (sum(x < 0.2 * usual for x in inks), len(inks))
        # A page switch while the run trains: how long until the new page shows a chart with data?
        switches = {}
        for nav, title in (("Compare two runs", "Compare two runs"), ("Gradients", "Gradients")):
            t0 = time.perf_counter()
            bs.nav_link(page, nav).click()
            bs.wait_for_title(page, title, 90)
            t1 = time.perf_counter()
            page.wait_for_function(bs.FRESH_CHART_WITH_DATA_JS, timeout=90_000, polling=100)
            switches[title] = (t1 - t0, time.perf_counter() - t0)
        result["switches"] = switches
        result["stop"] = stop_from_train(page)
        return result
    finally:
        ctx.close()


def fmt(x: float, unit: str = "", digits: int = 2) -> str:
    return f"{x:.{digits}f}{unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="timed demo clicks after the warm-up (default 3)")
    parser.add_argument("--watch", type=float, default=20.0, help="seconds to watch a run in the browser")
    parser.add_argument("--headless", type=float, default=15.0, help="seconds of each headless measurement")
    parser.add_argument("--blink", type=float, default=15.0, help="seconds of screenshots of the live grid")
    parser.add_argument("--pairs", type=int, default=3, help="paused-headless / watched pairs (see paired_ratios)")
    parser.add_argument("--pair-seconds", type=float, default=8.0, help="seconds of each half of a pair")
    parser.add_argument("--only-first", action="store_true", help="measure (a) only: skip the watched phase (b)")
    parser.add_argument("--settle", type=float, default=None,
                        help="(a): click this many seconds after plotly.js has loaded (default: as soon as the page "
                             "is idle, loaded or not)")
    parser.add_argument("--budget", type=int, default=600, help="abort after this many seconds (default 600)")
    args = parser.parse_args()
    if not bs.chromium_available():
        print(f"{bs.CHROMIUM} is not installed: nothing measured")
        return 2
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.budget)
    rows: list[tuple[str, str, str]] = []
    server = bs.StreamlitServer()
    try:
        print(f"starting streamlit (load average {loadavg()}) ...", flush=True)
        server.start(timeout=60)
        with sync_playwright() as p:
            browser = bs.launch_chromium(p)
            try:
                print("(a) warm-up click ...", flush=True)
                warm = time_to_first_chart(browser, server)
                runs = []
                for i in range(args.reps):
                    runs.append(time_to_first_chart(browser, server, args.settle))
                    print(f"    click {i + 1}: first chart {runs[-1]['any_chart']:.2f} s, with data "
                          f"{runs[-1]['data']:.2f} s (in the page {runs[-1]['in_page']:.3f} s; step "
                          f"{runs[-1]['step']}; plotly.js "
                          f"{'loaded' if runs[-1]['plotly'] else 'not loaded'}"
                          f"{', warmed up' if runs[-1]['warmed'] else ''} at the click; load {loadavg()})",
                          flush=True)
                if not args.only_first:
                    print(f"(b) headless {args.headless:.0f} s ...", flush=True)
                    before = headless_rate(args.headless)
                    print(f"    watched {args.watch:.0f} s ...", flush=True)
                    watched = watch(browser, server, args.watch, args.blink, args.pairs, args.pair_seconds)
                    print(f"    headless {args.headless:.0f} s again ...", flush=True)
                    after = headless_rate(args.headless)
            finally:
                browser.close()
    finally:
        signal.alarm(0)
        server.stop()

    data = [r["data"] for r in runs]
    rows += [
        ("(a) click -> first chart with data, warm-up", fmt(warm["data"], " s"), "Home's demo button, 1st session"),
        (f"(a) click -> first chart with data, median of {len(data)}", fmt(statistics.median(data), " s"),
         "runs: " + ", ".join(fmt(x, " s") for x in data)),
        ("(a) ... in the page (pointerdown -> frame), median", fmt(statistics.median(r["in_page"] for r in runs),
                                                                   " s", 3),
         "runs: " + ", ".join(fmt(r["in_page"], " s", 3) for r in runs)),
        ("(a) click -> first chart element (any), median", fmt(statistics.median(r["any_chart"] for r in runs), " s"),
         "may be the 'waiting' figure"),
    ]
    for loaded in (True, False):
        split = [r["data"] for r in runs if r["plotly"] == loaded]
        if split:
            state = 'loaded' if loaded else 'not loaded'
            rows.append((f"(a) ... clicks with plotly.js {state}, median of {len(split)}",
                         fmt(statistics.median(split), " s"), "runs: " + ", ".join(fmt(x, " s") for x in split)))
    if not args.only_first:
        rows += watched_rows(before, watched, after)
    print_table(rows)
    return 0


def watched_rows(before: dict, watched: dict, after: dict) -> list[tuple[str, str, str]]:
    """The table's rows of (b) and of what the page did while watched."""
    headless = (before["median"] + after["median"]) / 2
    rows = [
        ("(b) headless steps/s (before)", fmt(before["median"], "", 1),
         f"median of {before['samples']}; mean {before['mean']:.1f}; load {before['load']}"),
        ("(b) watched steps/s (status line)", fmt(watched["median"], "", 1),
         f"median of {watched['samples']}; mean {watched['mean']:.1f}; load {watched['load']}"),
        ("(b) headless steps/s (after)", fmt(after["median"], "", 1),
         f"median of {after['samples']}; mean {after['mean']:.1f}; load {after['load']}"),
        ("(b) ratio watched / headless (medians)", fmt(watched["median"] / headless if headless else float("nan")),
         "headless = mean of the before and after medians"),
        ("(b) ratio watched / headless (mean rates)",
         fmt(watched["mean"] / ((before["mean"] + after["mean"]) / 2) if before["mean"] + after["mean"] else 0.0),
         "steps done / seconds, over the whole window"),
    ]
    pairs = watched["pairs"]
    if pairs:
        ratios = [p["ratio"] for p in pairs]
        rows.append((f"(b) ratio watched / headless, {len(pairs)} pairs (median)", fmt(statistics.median(ratios)),
                     "pairs: " + ", ".join(fmt(r) for r in ratios) + "; the run paused while headless trains"))
    rows += [
        ("websocket traffic while watching", fmt(watched["bytes_per_s"] / 1e6, " MB/s"),
         f"{watched['frames_per_s']:.1f} messages/s"),
        ("live charts marked stale (data-stale)", fmt(100 * watched["stale"], " %", 0), "of chart samples, 1 per s"),
        ("live charts drawn faded (opacity < 0.5)", fmt(100 * watched["faded"], " %", 0), "of chart samples"),
        ("live charts blank (no plot drawn)", fmt(100 * watched["blank"], " %", 0), "of chart samples"),
        ("chart containers on /train", "{}..{}".format(*watched["containers"]), "4 charts expected"),
        ("distribution grid blank on screen", "{} of {}".format(*watched["grid_blank"]),
         "screenshots of the grid's screen area, ~0.3 s apart, after the timed window"),
    ]
    for title, (shown, drawn) in watched["switches"].items():
        rows.append((f"switch to {title} while training", fmt(drawn, " s"),
                     f"to a current chart with data; title after {shown:.2f} s"))
    stop = watched["stop"]
    rows += [
        ("browser main thread busy (long tasks)", fmt(100 * watched["busy"], " %", 0), "of the watched time"),
        ("switch to Train & watch while training", fmt(stop["title"], " s"), "to its title"),
        ("Stop: Playwright click on the button", fmt(stop["click"], " s"), "waits until the page lets it click"),
        ("Stop: click done -> status says stopped", fmt(stop["stopped"], " s"),
         f"{stop['extra_steps']} steps trained after the last status read before the click"),
    ]
    return rows


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'value':>{value_width}}  notes")
    print(f"{'-' * width}  {'-' * value_width}  {'-' * 40}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    print(f"\n{os.cpu_count()} cores; load average now {loadavg()}")


if __name__ == "__main__":
    sys.exit(main())
