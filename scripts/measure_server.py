"""What does a watching browser cost the training thread on the server? Two code versions, side by side.

    python scripts/measure_server.py [--revs main HEAD] [--page train] [--page home] [--reps 4] [--window 20]
                                     [--pyspy gil|wall]

The training runs in a thread of the Streamlit server process, so every millisecond of Python that a live
fragment's rerun spends (building figures, serialising them, Streamlit's own bookkeeping) holds the GIL that the
training thread needs. This starts one `streamlit run app.py` per revision (each from a temporary `git worktree` of
it; `.` is the working tree as it is), opens the page in headless Chromium, starts the default twin of /train (BN
vs no BN, Steps raised so it lasts) and measures over `--window` seconds, revisions alternated (A B, then B A, ...)
`--reps` times:

- train_cpu, train_wait: the share of the window the training thread (the server's busiest thread) ran on a core,
  and was runnable but waited for one (/proc/<pid>/task/<tid>/schedstat); the rest it slept, mostly waiting for
  the GIL;
- steps/s: steps trained over the window (the status line before and after);
- reruns: live-fragment reruns in the window (script_finished messages on the websocket);
- script_ms: CPU of the server's script threads per rerun (the process's CPU minus that of its long-lived threads:
  each rerun runs in a new ScriptRunner thread), main_ms: the event-loop thread's CPU per rerun (it sends the
  messages), other_ms: the rest of the process (not training);
- load: the 1-minute load average at the end of the window.

`--page home` opens Home after starting the run on /train (the same run, drawn by Home's live fragment).
`--pyspy gil` samples the server with py-spy during each window (100 Hz, only the thread holding the GIL, without
pausing it) and adds the share of all samples in which the script threads / the training thread held the GIL;
`--pyspy wall` samples every thread (idle too) and adds the script threads' wall time per rerun. Either perturbs
what it measures a little: compare like with like.

A benchmark, not a test: it asserts nothing. Run it under `flock /tmp/bnviz-cpu.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import browser_support as bs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
WATCH_STEPS = 20_000  # long enough that the run never ends while it is measured


def checkout(rev: str, tmp: Path) -> tuple[Path, str]:
    """A directory holding `rev` (a detached worktree under tmp), or the working tree itself for '.'."""
    if rev == ".":
        return ROOT, "working tree"
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    path = tmp / sha
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path, sha


def process_cpu(pid: int) -> float:
    """utime + stime of the whole process, exited threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def script_finished_counter():
    """A websocket frame handler counting the ForwardMsgs that end a script (or fragment) run."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    counts = Counter()

    def on_frame(payload):
        if isinstance(payload, str):
            return
        counts["bytes"] += len(payload)
        try:
            msg = ForwardMsg.FromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: not counted
            return
        counts[msg.WhichOneof("type") or "none"] += 1

    return counts, on_frame


def py_spy(pid: int, mode: str, seconds: float, out: Path) -> subprocess.Popen:
    flags = ["--gil"] if mode == "gil" else ["--idle"]
    rate = "100" if mode == "gil" else "200"
    return subprocess.Popen(["py-spy", "record", "-r", rate, *flags, "--threads", "--nonblocking", "-f", "raw",
                             "-o", str(out), "-d", str(max(1, round(seconds))), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def py_spy_shares(path: Path, rate: float, seconds: float) -> dict:
    """Samples per kind of thread (script / training / main / other), as seconds."""
    kinds = Counter()
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread = stack.split(";", 1)[0]
        kind = ("script" if "scriptThread" in thread else "train" if "bnviz-job" in thread
                else "main" if "MainThread" in thread else "other")
        kinds[kind] += int(count)
    return {k: v / rate for k, v in kinds.items()}


def watch_once(browser, server: bs.StreamlitServer, page_name: str, window: float, warm: float, pyspy: str | None,
               tmp: Path) -> dict:
    ctx = browser.new_context(viewport=bs.VIEWPORT)
    counts, on_frame = script_finished_counter()
    try:
        page = ctx.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        bs.start_train_run(page, server.url, WATCH_STEPS)
        if page_name == "home":
            bs.nav_link(page, "Home").click()
            bs.wait_for_title(page, "Batch normalization, live", 60)
            page.wait_for_function(bs.FRESH_CHART_WITH_DATA_JS, timeout=60_000, polling=100)
        page.wait_for_timeout(warm * 1000)
        pid = server.proc.pid
        spy_out = tmp / f"spy-{pid}-{time.monotonic_ns()}.raw"
        spy = py_spy(pid, pyspy, window, spy_out) if pyspy else None
        status0 = bs.parse_status(bs.status_text(page)) or {}
        finished0, bytes0 = counts["script_finished"], counts["bytes"]
        cpu0, threads0, t0 = process_cpu(pid), bs.thread_times(pid), time.perf_counter()
        while time.perf_counter() - t0 < window:
            page.wait_for_timeout(250)
        cpu1, threads1, t1 = process_cpu(pid), bs.thread_times(pid), time.perf_counter()
        finished1, bytes1 = counts["script_finished"], counts["bytes"]
        status1 = bs.parse_status(bs.status_text(page)) or {}
        load = os.getloadavg()
        if spy is not None:
            spy.wait(30)
        main_area = bs.main_area(page)
        if page_name == "home":
            bs.nav_link(page, "Train & watch").click()
            bs.wait_for_title(page, "Train & watch", 60)
        main_area.get_by_role("button", name="Stop", exact=True).click(timeout=30_000)
    finally:
        ctx.close()
    seconds = t1 - t0
    deltas = {tid: (threads1[tid][0] - a, threads1[tid][1] - b) for tid, (a, b) in threads0.items() if tid in threads1}
    train = max(deltas, key=lambda tid: deltas[tid][0])
    reruns = max(1, finished1 - finished0)
    persistent = sum(ran for ran, _ in deltas.values())
    script = (cpu1 - cpu0) - persistent  # threads that started in the window: the fragment's ScriptRunner threads
    row = {
        "seconds": seconds, "steps_per_s": (status1.get("step", 0) - status0.get("step", 0)) / seconds,
        "train_cpu": deltas[train][0] / seconds, "train_wait": deltas[train][1] / seconds,
        "reruns": reruns, "reruns_per_s": reruns / seconds,
        "script_ms": 1e3 * script / reruns, "main_ms": 1e3 * deltas.get(server.proc.pid, (0, 0))[0] / reruns,
        "other_ms": 1e3 * (persistent - deltas[train][0] - deltas.get(server.proc.pid, (0, 0))[0]) / reruns,
        "kB_per_rerun": (bytes1 - bytes0) / 1e3 / reruns, "load": load,
    }
    if spy is not None:
        rate = 100.0 if pyspy == "gil" else 200.0
        shares = py_spy_shares(spy_out, rate, seconds)
        if pyspy == "gil":
            row["gil_script"] = shares.get("script", 0.0) / seconds
            row["gil_train"] = shares.get("train", 0.0) / seconds
            row["gil_main"] = shares.get("main", 0.0) / seconds
        else:
            row["wall_script_ms"] = 1e3 * shares.get("script", 0.0) / reruns
    return row


COLUMNS = [("steps/s", "steps_per_s", "{:.1f}"), ("train_cpu", "train_cpu", "{:.3f}"),
           ("train_wait", "train_wait", "{:.3f}"), ("reruns/s", "reruns_per_s", "{:.2f}"),
           ("script_ms", "script_ms", "{:.1f}"), ("main_ms", "main_ms", "{:.1f}"), ("other_ms", "other_ms", "{:.1f}"),
           ("kB/rerun", "kB_per_rerun", "{:.0f}"), ("gil_script", "gil_script", "{:.3f}"),
           ("gil_train", "gil_train", "{:.3f}"), ("gil_main", "gil_main", "{:.3f}"),
           ("wall_ms", "wall_script_ms", "{:.1f}")]


def print_row(label: str, row: dict) -> None:
    cells = [fmt.format(row[key]) if key in row else "" for _, key, fmt in COLUMNS]
    load = row.get("load")
    tail = f"  load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else ""
    print(f"{label:<28}" + "".join(f"{c:>12}" for c in cells) + tail, flush=True)


def header() -> None:
    print(f"{'':<28}" + "".join(f"{name:>12}" for name, _, _ in COLUMNS), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revs", nargs="+", default=["main", "."], help="git revisions ('.': the working tree)")
    parser.add_argument("--page", action="append", choices=["train", "home"], help="page(s) to watch (train)")
    parser.add_argument("--reps", type=int, default=4, help="windows per revision and page, alternated")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per window")
    parser.add_argument("--warm", type=float, default=3.0, help="seconds watched before a window starts")
    parser.add_argument("--pyspy", choices=["gil", "wall"], help="also sample the server with py-spy")
    args = parser.parse_args()
    pages = args.page or ["train"]
    if not bs.chromium_available():
        print(f"{bs.CHROMIUM} is not installed: nothing measured")
        return 2
    if args.pyspy and not shutil.which("py-spy"):
        print("py-spy is not installed")
        return 2
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bnviz-measure-server-"))
    checkouts = [checkout(rev, tmp) for rev in args.revs]
    servers = [bs.StreamlitServer(root=path) for path, _ in checkouts]
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for server in servers:
            server.start(90)
        with sync_playwright() as p:
            browser = bs.launch_chromium(p)
            try:
                header()
                for rep in range(args.reps):
                    order = list(range(len(servers)))
                    if rep % 2:
                        order.reverse()  # A B, B A, ...: a drift of the machine falls on both alike
                    for page_name in pages:
                        for i in order:
                            row = watch_once(browser, servers[i], page_name, args.window, args.warm, args.pyspy, tmp)
                            results.setdefault((checkouts[i][1], page_name), []).append(row)
                            print_row(f"{page_name} {checkouts[i][1]} #{rep + 1}", row)
            finally:
                browser.close()
    finally:
        for server in servers:
            server.stop()
        for path, _name in checkouts:
            if path != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nmedians:")
    header()
    for (name, page_name), rows in results.items():
        median = {key: statistics.median(r[key] for r in rows) for _, key, _ in COLUMNS if key in rows[0]}
        print_row(f"{page_name} {name} (n={len(rows)})", median)
    print(f"\n{os.cpu_count()} cores; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
