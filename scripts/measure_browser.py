"""Where does the browser's time go while it watches a run? Measured in a real headless Chromium on /train.

    python scripts/measure_browser.py [--window 20] [--width 1500 --height 1000] [--profile] [--no-plotly]

Starts `streamlit run app.py`, opens Train & watch, starts the default twin (BN vs no BN, Steps raised so it lasts)
and, after a few seconds of watching, measures over `--window` seconds (one JSON line):

- chromium_cores, renderer_cores: CPU time of all of the browser's processes (and of its renderers) per second,
  from /proc; server_cores: the same for `streamlit run` and its children;
- train_run, train_wait: the share of the window the training thread (the server's busiest thread) ran on a core,
  and was runnable but waited for one (/proc/<pid>/task/<tid>/schedstat); steps_per_s from the status line;
- the renderer's main thread, in seconds per second (CDP Performance.getMetrics): task (all), script, style
  recalculation and layout, with their counts per second;
- react_commits_per_s: commits of the page's React tree (Streamlit's frontend), counted by a stand-in for the React
  devtools hook; plotly_draws_per_s and plotly_ms_per_s: Plotly.react calls and their synchronous time;
- ws_frames_per_s, ws_kB_per_s: what the server sends over the websocket.

--profile adds a 10 s CPU profile of the page (CDP Profiler) after the window: time per script file, counted once
per sample for every file on its stack (react-dom holds everything React renders, Plotly's time included when a
chart draws inside a React effect). --no-plotly replaces Plotly.react by a no-op before the window: what is left
is the page's cost without the charts' drawing (the charts stop changing).

A benchmark, not a test: it asserts nothing, and numbers on a shared machine are noisy (the load average is
printed). Run it under `flock /tmp/bnviz-cpu.lock` on a shared machine. scripts/measure_live.py measures the
training speed ratio itself.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import browser_support as bs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
WATCH_STEPS = 20_000  # long enough that the run never ends while it is measured

# Before any page script: count React commits (React calls a devtools hook on every commit when one is installed).
COMMITS_INIT = """
window.__commits = 0;
window.__REACT_DEVTOOLS_GLOBAL_HOOK__ = {supportsFiber: true, renderers: new Map(), inject() { return 1; },
  onCommitFiberRoot() { window.__commits++; }, onCommitFiberUnmount() {}, onPostCommitFiberRoot() {},
  checkDCE() {}, isDisabled: false};
"""
# Once plotly.js is loaded: count Plotly.react calls and their synchronous time (or make them no-ops).
PLOTLY_COUNT_JS = """(stub) => {
  const P = window.Plotly, react = P.react;
  window.__draws = {n: 0, ms: 0};
  P.react = function (...args) {
    window.__draws.n++;
    if (stub) return Promise.resolve(args[0]);
    const t = performance.now();
    const out = react.apply(this, args);
    window.__draws.ms += performance.now() - t;
    return out;
  };
}"""


def processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command line) of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, cmd)
    return out


def descendants(root: int, table: dict) -> list[int]:
    children = collections.defaultdict(list)
    for pid, (parent, _, _) in table.items():
        children[parent].append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children[pid]
    return out


def cpu_seconds(pids: list[int]) -> float:
    table = processes()
    return sum(table[p][1] for p in pids if p in table)


def print_profile(profile: dict, seconds: float) -> None:
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", [])}
    per_node = collections.Counter()
    for node, delta in zip(profile["samples"], profile["timeDeltas"], strict=False):
        per_node[node] += delta
    files, own = collections.Counter(), collections.Counter()
    for node, us in per_node.items():
        frame = nodes[node]["callFrame"]
        own[frame["url"].rsplit("/", 1)[-1] or frame["functionName"]] += us
        seen, q = set(), node
        while q is not None:
            url = nodes[q]["callFrame"]["url"].rsplit("/", 1)[-1]
            if url and url not in seen:
                files[url] += us
                seen.add(url)
            q = parent.get(q)
    print(f"CPU profile of the page, {seconds:.0f} s (ms; inclusive: every file on a sample's stack):")
    for name, us in files.most_common(15):
        print(f"  {us / 1e3:8.0f}  {name}")
    print("self time (ms; '(program)' is the renderer's own work: style, layout, paint, messages):")
    for name, us in own.most_common(12):
        print(f"  {us / 1e3:8.0f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--width", type=int, default=bs.VIEWPORT["width"])
    parser.add_argument("--height", type=int, default=bs.VIEWPORT["height"])
    parser.add_argument("--profile", action="store_true", help="add a 10 s CPU profile of the page")
    parser.add_argument("--no-plotly", action="store_true", help="Plotly.react does nothing during the window")
    args = parser.parse_args()
    if not bs.chromium_available():
        print(f"{bs.CHROMIUM} is not installed: nothing measured")
        return 2
    from playwright.sync_api import sync_playwright

    server = bs.StreamlitServer()
    server.start(60)
    try:
        with sync_playwright() as p:
            browser = bs.launch_chromium(p)
            try:
                ctx = browser.new_context(viewport={"width": args.width, "height": args.height})
                page = ctx.new_page()
                page.add_init_script(COMMITS_INIT)
                frames = {"n": 0, "bytes": 0}

                def on_websocket(ws):
                    def count(payload):
                        frames["n"] += 1
                        frames["bytes"] += len(payload)

                    ws.on("framereceived", count)

                page.on("websocket", on_websocket)
                bs.start_train_run(page, server.url, WATCH_STEPS)
                page.wait_for_timeout(3000)
                page.evaluate(PLOTLY_COUNT_JS, args.no_plotly)
                result = measure(page, ctx, server, frames, args.window)
                result["no_plotly"] = args.no_plotly
                print(json.dumps(result), flush=True)
                if args.profile:
                    cdp = ctx.new_cdp_session(page)
                    cdp.send("Profiler.enable")
                    cdp.send("Profiler.setSamplingInterval", {"interval": 500})
                    cdp.send("Profiler.start")
                    page.wait_for_timeout(10_000)
                    print_profile(cdp.send("Profiler.stop")["profile"], 10)
            finally:
                browser.close()
    finally:
        server.stop()
    return 0


def measure(page, ctx, server, frames: dict, window: float) -> dict:
    table = processes()
    chromium = [q for q in descendants(os.getpid(), table) if "chrom" in table[q][2]]
    renderers = [q for q in chromium if "--type=renderer" in table[q][2]]
    served = descendants(server.proc.pid, table)
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable")

    def metrics() -> dict:
        return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}

    def counters() -> dict:
        return {"chromium": cpu_seconds(chromium), "renderer": cpu_seconds(renderers), "server": cpu_seconds(served),
                "threads": bs.thread_times(server.proc.pid), "metrics": metrics(), "frames": dict(frames),
                "page": page.evaluate("() => ({commits: window.__commits, draws: window.__draws})"),
                "status": bs.parse_status(bs.status_text(page)), "t": time.perf_counter()}

    before, rates = counters(), []
    while time.perf_counter() - before["t"] < window:
        page.wait_for_timeout(1000)
        status = bs.parse_status(bs.status_text(page))
        if status and status["status"] == "running" and status["rate"] is not None:
            rates.append(status["rate"])
    after = counters()
    seconds = after["t"] - before["t"]
    threads = {tid: (after["threads"][tid][0] - ran, after["threads"][tid][1] - waited)
               for tid, (ran, waited) in before["threads"].items() if tid in after["threads"]}
    train = max(threads, key=lambda tid: threads[tid][0])
    m0, m1 = before["metrics"], after["metrics"]

    def per_s(a, b, digits=3):
        return round((b - a) / seconds, digits)

    steps = (after["status"] or {}).get("step", 0) - (before["status"] or {}).get("step", 0)
    return {
        "load": round(os.getloadavg()[0], 2), "seconds": round(seconds, 1),
        "chromium_cores": per_s(before["chromium"], after["chromium"]),
        "renderer_cores": per_s(before["renderer"], after["renderer"]),
        "server_cores": per_s(before["server"], after["server"]),
        "train_run": round(threads[train][0] / seconds, 3), "train_wait": round(threads[train][1] / seconds, 3),
        "steps_per_s": round(steps / seconds, 1), "status_rate_median": statistics.median(rates) if rates else None,
        "task_s_per_s": per_s(m0["TaskDuration"], m1["TaskDuration"]),
        "script_s_per_s": per_s(m0["ScriptDuration"], m1["ScriptDuration"]),
        "style_s_per_s": per_s(m0["RecalcStyleDuration"], m1["RecalcStyleDuration"]),
        "layout_s_per_s": per_s(m0["LayoutDuration"], m1["LayoutDuration"]),
        "styles_per_s": per_s(m0["RecalcStyleCount"], m1["RecalcStyleCount"], 1),
        "layouts_per_s": per_s(m0["LayoutCount"], m1["LayoutCount"], 1),
        "react_commits_per_s": per_s(before["page"]["commits"], after["page"]["commits"], 1),
        "plotly_draws_per_s": per_s(before["page"]["draws"]["n"], after["page"]["draws"]["n"], 2),
        "plotly_ms_per_s": per_s(before["page"]["draws"]["ms"], after["page"]["draws"]["ms"], 1),
        "ws_frames_per_s": per_s(before["frames"]["n"], after["frames"]["n"], 1),
        "ws_kB_per_s": round((after["frames"]["bytes"] - before["frames"]["bytes"]) / seconds / 1e3, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
