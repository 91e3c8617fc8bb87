"""Load test: N concurrent browser sessions against one local `streamlit run app.py`, each training a run.

    python scripts/load_test.py [--sessions 8] [--watch 30] [--max-jobs N] [--rss-mb MB] [--timeout 900]
    python scripts/load_test.py --class [--sessions 24] [--others 3] [--backend threads|ray] [--ray-address auto]
                                [--nice-browsers] [--cold] [--protocol N]

--class (a class following the teacher's link; the checks below are for the default mode): the server runs with its
default slots (one per core); the teacher's page is opened first (not with --cold), then N sessions open the same
shared link within a few seconds and press Start; --others of them (spread among the rest) open the link with
another seed. Reports for every session the time from its click
to its first chart with data, whether it was queued and how long it waited, then: median and max of those times
(identical sessions and others apart; and the server's part of them, from its log), how many runs the server
actually trained (its log), the server's RSS and CPU, and the health endpoint's latency, with the load average.
Exits 1 unless every identical session saw its first chart within --target seconds and the identical sessions were
trained once. With --backend ray the jobs train in a
Ray cluster (--ray-address, e.g. "auto" after `ray start --head`): the server's RSS then excludes the workers.
With --protocol N, the last N sessions are not browsers but scripts/protocol_sessions.py clients: they speak
Streamlit's websocket protocol as a browser does (open, Start, the live fragment's refreshes) without drawing, so the
server's two cores are not shared with N browsers, as in a class whose students use their own laptops. Their time is
until the first chart's data reaches the socket; the Chromium sessions that remain measure the drawing too.

Starts the app on a free loopback port (BNVIZ_MAX_JOBS = --max-jobs, default N), opens N headless Chromium contexts
(N separate Streamlit sessions) on Train & watch, each by a link with its own Steps (20,000 - 100 i) and Seed (i + 1),
presses Start in each, watches all of them for --watch seconds (and up to --patience seconds more while a session
has not yet shown progress; the time watched is printed), closes every tab and checks:

  progressed   the session's status-line step grew and its chart data (Plotly's arrays in the DOM) changed
  own data     every status line read "of <its own Steps>", and its loss chart starts at the step-0 loss of its own
               seed, computed here independently (bnviz in this process); the N step-0 losses are all different
  health       /_stcore/health, polled every second throughout, answered "ok" each time within 10 s (max printed)
  RSS          the server's VmRSS (sampled every second) stayed under --rss-mb
  stopped      after the tabs closed, the server logged "job-K ended: stopped" for every "job-K started" line (runs of
               ~20,000 steps cannot finish in time, so "stopped" means the closed session stopped them), and the
               server's CPU use then dropped to near zero (no training thread left)

Sessions beyond --max-jobs must instead show their place in the queue. With --attacker, one more session uploads
the crafted files of issue 13's rows 1, 2 and 4 (scripts/attacker.py) while the others train: each must be refused
with a message, and the checks above must still hold for everyone else. Prints a table and exits 1 if a check
fails. Bounded: the whole run is killed after --timeout seconds; the server is always stopped. Not part of pytest.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import browser_support as bs  # noqa: E402
from protocol_sessions import ProtocolClass, ProtocolSession  # noqa: E402

SETTLE_S = 60  # after the tabs close: the session TTL (10 s, .streamlit/config.toml) plus a loaded machine's delay
IDLE_CPU = 0.15  # cores: what an idle server may still use after the runs stopped (health polls, timers)
HEALTH_TIMEOUT_S = 10.0  # "answered": within this; the max latency is printed (a 2-core machine at load 20 stalls)
MIN_LOOKS = 4  # per session while watching, however long that takes on a loaded machine (bounded by --timeout)
# The per-session part of the default RSS bound: two runs' preallocated histories (23 MB each for the default CNN,
# see README "Serve it for a class") plus the copies a page draws from, Plotly figures and Streamlit's session.
SESSION_MB = 150
BASE_MB = 700  # Python, torch, Streamlit and plotly, warmed up

# The first value of the first trace of the "Training loss" chart: run A's loss at step 0.
FIRST_LOSS_JS = """() => {
  const el = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(e => ((e.layout || {}).title || {}).text && e.layout.title.text.includes('Training loss'));
  if (!el || !el.data.length) return null;
  const v = el.data[0].y;
  if (!v) return null;
  if (ArrayBuffer.isView(v) || Array.isArray(v)) return v.length ? Number(v[0]) : null;
  if (!v.bdata) return null;
  const raw = atob(v.bdata), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const kinds = {f8: Float64Array, f4: Float32Array};
  const Kind = kinds[v.dtype];
  return Kind && bytes.length >= Kind.BYTES_PER_ELEMENT ? new Kind(bytes.buffer)[0] : null;
}"""


@dataclass
class Session:
    index: int
    steps: int
    seed: int
    expect_busy: bool
    context: object = None
    page: object = None
    statuses: list = field(default_factory=list)  # parsed status lines
    hashes: list = field(default_factory=list)  # frozenset of chart-data hashes per look
    first_loss: float | None = None
    expected_loss: float = math.nan
    errors: list = field(default_factory=list)
    problem: str = ""
    queued_seen: bool = False


QUEUE_TEXT = "Waiting for a free slot"


def main_text(page) -> str:
    try:
        return bs.main_area(page).inner_text(timeout=5000)
    except Exception:  # noqa: BLE001 - a page that is re-rendering: read again next time
        return ""


class Probe(threading.Thread):
    """Every second: /_stcore/health (latency, answer) and the server's RSS, thread count and CPU time."""

    def __init__(self, url: str, pid: int):
        super().__init__(daemon=True)
        self.url, self.pid, self.samples, self.stopping = url, pid, [], threading.Event()
        self.phase = "setup"

    def run(self) -> None:
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=HEALTH_TIMEOUT_S) as r:
                    ok = r.read().decode().strip() == "ok"
            except OSError:
                ok = False
            sample = {"t": t0, "phase": self.phase, "ok": ok, "latency": time.monotonic() - t0, **proc_stats(self.pid)}
            self.samples.append(sample)
            self.stopping.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


def proc_stats(pid: int) -> dict:
    """VmRSS (MB), thread count and CPU seconds (user + system) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_mb": rss, "threads": threads, "cpu_s": cpu}


def expected_first_loss(steps: int, seed: int) -> float:
    """Run A's step-0 loss for these sidebar settings, computed in this process (the server's Job does the same)."""
    from bnviz.engine.config import RunConfig
    from bnviz.engine.data import BatchStream
    from bnviz.engine.trainer import Run

    run = Run(RunConfig(steps=steps, seed=seed, eval_every=max(10, steps // 20), record_every=0))
    return run.train_step(*BatchStream(run.dataset, run.cfg.batch_size, seed).next())


def start_session(s: Session, url: str) -> None:
    """Open Train & watch by a link carrying the session's Steps and Seed (what a teacher hands out), check that the
    sidebar shows them (typing them in if not), then press Start. Sessions are opened one after the other: links
    opened at the same moment on a cold server can come up with the default settings (reported, not this test's
    subject); the sessions then train at the same time."""
    page = s.page
    page.goto(f"{url}/train?steps={s.steps}&seed={s.seed}", wait_until="commit")
    bs.wait_for_title(page, "Train & watch", 120)
    bs.wait_until_idle(page, 60)
    sidebar = page.locator('[data-testid="stSidebar"]')
    for label, value in (("Steps", s.steps), ("Seed", s.seed)):
        box = sidebar.get_by_label(label, exact=True).first
        if box.input_value().replace(",", "") != str(value):
            box.fill(str(value))
            box.press("Enter")
        bs.poll(lambda b=box, v=value: b.input_value().replace(",", "") == str(v), 60, what=f"{label} set")
        bs.wait_until_idle(page, 60)
    bs.main_area(page).get_by_role("button", name="▶ Start").click()
    if s.expect_busy:
        bs.poll(lambda: QUEUE_TEXT in main_text(page), 60, what="the queue message")
    else:
        try:
            bs.poll(lambda: (bs.parse_status(bs.status_text(page)) or {}).get("steps") == s.steps, 90,
                    what=f"session {s.index}'s own status line")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; the page said: {' '.join(bs.error_texts(page))[:200] or 'nothing'}") from exc


def look(s: Session) -> None:
    if s.expect_busy and QUEUE_TEXT in main_text(s.page):
        s.queued_seen = True
    status = bs.parse_status(bs.status_text(s.page))
    if status:
        s.statuses.append(status)
    s.hashes.append(frozenset(p["hash"] for p in bs.plots(s.page) if p["filled"]))
    if s.first_loss is None:
        s.first_loss = s.page.evaluate(FIRST_LOSS_JS)


def progressed(s: Session) -> bool:
    """The session's status step grew and its chart data changed (a busy session has nothing to show)."""
    if s.expect_busy or s.problem:
        return True
    steps = [st["step"] for st in s.statuses]
    return len(steps) >= 2 and steps[-1] > steps[0] and len(set(s.hashes)) >= 2


def judge(s: Session) -> str:
    """An empty string if the session behaved, else what went wrong."""
    if s.expect_busy:
        return "" if s.queued_seen and not s.errors and not s.statuses else "expected the queue message"
    if s.errors:
        return f"error shown: {s.errors[0][:80]}"
    if len(s.statuses) < 2 or s.statuses[-1]["step"] <= s.statuses[0]["step"]:
        return "status step did not grow"
    if len(set(s.hashes)) < 2:
        return "chart data never changed"
    if any(st["steps"] != s.steps for st in s.statuses):
        return "a status line showed another run's Steps"
    if s.first_loss is None or not math.isclose(s.first_loss, s.expected_loss, rel_tol=1e-4):
        return f"step-0 loss {s.first_loss} is not its seed's {s.expected_loss:.6f}"
    return ""


def wait_for_jobs_to_end(server, settle: float) -> tuple[set, dict]:
    """Job names that started, and how each ended (name -> status), once every started job ended or `settle` s."""
    deadline = time.monotonic() + settle
    while True:
        log = Path(server.log.name).read_text(errors="replace")
        started = set(re.findall(r"(job-\d+) started", log))
        ended = dict(re.findall(r"(job-\d+) ended: (\w+)", log))
        if started <= set(ended) or time.monotonic() > deadline:
            return started, ended
        time.sleep(1.0)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=0, help="browser sessions (default 8; --class: 24)")
    ap.add_argument("--class", dest="class_mode", action="store_true",
                    help="a class: everyone opens one shared link and presses Start (see the module's docstring)")
    ap.add_argument("--others", type=int, default=3, help="--class: sessions with another seed (default 3)")
    ap.add_argument("--class-steps", type=int, default=3000, help="--class: Steps of the shared link (default 3000)")
    ap.add_argument("--target", type=float, default=10.0, help="--class: first-chart target, seconds (default 10)")
    ap.add_argument("--backend", default="threads", choices=["threads", "ray"], help="--class: BNVIZ_BACKEND")
    ap.add_argument("--nice-browsers", action="store_true",
                    help="--class: run the browsers at nice 19 (stand-ins for the students' own laptops; starves "
                         "them when other work loads the machine)")
    ap.add_argument("--protocol", type=int, default=0, metavar="N",
                    help="--class: N of the sessions speak Streamlit's websocket protocol instead of running a "
                         "browser here (scripts/protocol_sessions.py: students whose browsers run on their own "
                         "laptops); the others stay real Chromium sessions on this machine (default 0)")
    ap.add_argument("--cold", action="store_true", help="--class: no teacher's page opened before the class "
                    "arrives (by default the teacher opens the shared page first, as in a lecture)")
    ap.add_argument("--ray-address", default="", help="--class with ray: BNVIZ_RAY_ADDRESS (default: local)")
    ap.add_argument("--watch", type=float, default=30.0,
                    help=f"seconds to watch all sessions train, at least {MIN_LOOKS} looks each (default 30)")
    ap.add_argument("--patience", type=float, default=120.0,
                    help="seconds to keep watching after --watch while a session has not yet shown progress (a "
                         "loaded machine draws the last sessions' first charts late; default 120)")
    ap.add_argument("--max-jobs", type=int, default=0, help="BNVIZ_MAX_JOBS for the server (default: --sessions)")
    ap.add_argument("--rss-mb", type=float, default=0.0, help=f"RSS bound (default {BASE_MB} + {SESSION_MB} x N)")
    ap.add_argument("--timeout", type=float, default=900.0, help="hard limit for the whole run, seconds")
    ap.add_argument("--attacker", action="store_true",
                    help="one more session uploads hostile files (issue 13, rows 1, 2, 4) while the others train")
    args = ap.parse_args(argv)
    if args.class_mode:
        return class_mode(args)
    args.sessions = args.sessions or 8
    n, max_jobs = args.sessions, args.max_jobs or args.sessions
    bound = args.rss_mb or BASE_MB + SESSION_MB * n
    sessions = [Session(i, 20_000 - 100 * i, i + 1, expect_busy=i >= max_jobs) for i in range(n)]
    print(f"load test: {n} sessions, BNVIZ_MAX_JOBS={max_jobs}, watch {args.watch:.0f} s, RSS bound {bound:.0f} MB; "
          f"load average {load_average()}", flush=True)
    for s in sessions:
        if not s.expect_busy:
            s.expected_loss = expected_first_loss(s.steps, s.seed)
    attacker = None
    if args.attacker:
        from attacker import Attacker

        attacker = Attacker()
        attacker.prepare()

    from playwright.sync_api import sync_playwright

    server = bs.StreamlitServer(env={"BNVIZ_MAX_JOBS": str(max_jobs)})
    watchdog = threading.Timer(args.timeout, lambda: (print("timeout: killing the server", flush=True),
                                                      server.stop(), os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    t_start = time.monotonic()
    try:
        server.start(timeout=120)
        baseline_mb = proc_stats(server.proc.pid)["rss_mb"]  # before any page: no torch imported yet
        probe = Probe(server.url, server.proc.pid)
        probe.start()
        with sync_playwright() as p:
            browser = bs.launch_chromium(p)
            for s in sessions:
                s.context = browser.new_context(viewport=bs.VIEWPORT)
                s.page = s.context.new_page()
            if attacker is not None:
                attacker.page = browser.new_context(viewport=bs.VIEWPORT).new_page()
            for s in sessions:
                try:
                    start_session(s, server.url)
                except Exception as exc:  # noqa: BLE001 - one session's failure is a result, not the end of the test
                    s.problem = f"could not start: {type(exc).__name__}: {str(exc)[:60]}"
                print(f"  session {s.index} {s.problem or 'started'} ({time.monotonic() - t_start:.0f} s)", flush=True)
            probe.phase = "watch"
            load_watch = load_average()
            t_watch = time.monotonic()
            end, last = t_watch + args.watch, t_watch + args.watch + args.patience
            rounds = 0
            while time.monotonic() < end or min(len(s.hashes) for s in sessions) < MIN_LOOKS or (
                    time.monotonic() < last and not all(progressed(s) for s in sessions)) or (
                    attacker is not None and rounds < 2 * len(attacker.attacks) + 2):
                for s in sessions:
                    look(s)
                if attacker is not None and rounds % 2 == 1:  # one file every other round, between looks
                    attacker.attack(rounds // 2, server.url)
                rounds += 1
                time.sleep(0.5)
            print(f"  watched {time.monotonic() - t_watch:.0f} s (at least {args.watch:.0f} s, at most "
                  f"{args.patience:.0f} s more while a session had not yet shown progress)", flush=True)
            for s in sessions:
                look(s)
                s.errors = bs.error_texts(s.page)
                s.problem = s.problem or judge(s)
            probe.phase = "closed"
            t_closed = time.monotonic()
            for s in sessions:
                s.context.close()
            browser.close()
        started, ended = wait_for_jobs_to_end(server, SETTLE_S)
        settled_s = time.monotonic() - t_closed
        before = proc_stats(server.proc.pid)
        time.sleep(5.0)
        after = proc_stats(server.proc.pid)
        idle_cpu = (after["cpu_s"] - before["cpu_s"]) / 5.0
        probe.stopping.set()
        probe.join(5)
    finally:
        server.stop()
        watchdog.cancel()
    return report(sessions, probe.samples, baseline_mb, bound, started, ended, settled_s, idle_cpu, after,
                  load_watch, max_jobs, attacker)


def report(sessions, samples, baseline_mb, bound, started, ended, settled_s, idle_cpu, after, load_watch,
           max_jobs, attacker=None) -> int:
    print(f"\n{'session':>7} {'seed':>4} {'steps':>6} {'looks':>5} {'step first->last':>17} {'chart changes':>13} "
          f"{'step-0 loss':>11}  result")
    for s in sessions:
        steps = f"{s.statuses[0]['step']}->{s.statuses[-1]['step']}" if s.statuses else "-"
        changes = sum(a != b for a, b in itertools.pairwise(s.hashes))
        loss = f"{s.first_loss:.5f}" if s.first_loss is not None else "-"
        result = s.problem or ("queued (expected)" if s.expect_busy else "ok")
        print(f"{s.index:>7} {s.seed:>4} {s.steps:>6} {len(s.hashes):>5} {steps:>17} {changes:>13} {loss:>11}  "
              f"{result}")
    losses = [s.first_loss for s in sessions if not s.expect_busy and s.first_loss is not None]
    during = [x for x in samples if x["phase"] != "closed"]
    health_fail = sum(not x["ok"] for x in samples)
    rss_max = max(x["rss_mb"] for x in samples)
    threads_max = max((x["threads"] for x in during), default=0)
    stopped = {name for name, how in ended.items() if how == "stopped"}
    running = len([s for s in sessions if not s.expect_busy])
    checks = {
        "every session progressed, saw only its own data": all(not s.problem for s in sessions),
        "step-0 losses all different": len(set(losses)) == len(losses),
        f"health answered every second ({len(samples)} polls, {health_fail} failed, max latency "
        f"{max(x['latency'] for x in samples):.2f} s)": health_fail == 0,
        f"RSS max {rss_max:.0f} MB (idle server before any page {baseline_mb:.0f} MB) <= bound {bound:.0f} MB":
            rss_max <= bound,
        f"jobs: {len(started)} started, {len(stopped)} ended 'stopped' within {settled_s:.0f} s of closing":
            len(started) == running and started <= stopped,
        f"server CPU after close {idle_cpu:.2f} cores (< {IDLE_CPU}); threads {threads_max} during -> "
        f"{after['threads']} after": idle_cpu < IDLE_CPU,
    }
    if attacker is not None:
        rows = ", ".join(f"row {a.row} {a.seconds:.1f} s" for a in attacker.attacks)
        checks[f"attacker's files each refused with a message ({rows})"] = attacker.refused_all()
    print(f"\nBNVIZ_MAX_JOBS={max_jobs}; load average while watching: {load_watch}; now: {load_average()}")
    for text, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    return 0 if all(checks.values()) else 1


# ---- --class -------------------------------------------------------------------------------------------------------
@dataclass
class Pupil:
    index: int
    seed: int
    shared: bool  # opened the teacher's link (else: the same link with another seed)
    remote: object = None  # a ProtocolSession (no browser on this machine), or None for a Chromium session
    page: object = None
    context: object = None
    opened: float = math.nan
    clicked: float = math.nan
    first_chart: float = math.nan
    queued_seen: bool = False
    steps_seen: int = 0
    problem: str = ""


def first_chart_script(steps: int) -> str:
    """In-page timing (the harness, walking 24 pages on a loaded machine, would add its own delays): the time of the
    click on Start, and of the first moment after it that the status line names this run's Steps and a chart has
    data; and whether the queue message was shown. Checked every 100 ms by the page itself."""
    return f"""(() => {{
  window.__bnviz = {{clicked: null, chart: null, queued: false, step: null}};
  const status = {bs.STATUS_JS};
  const plotted = {bs.ANY_PLOT_WITH_DATA_JS};
  document.addEventListener('click', e => {{
    const b = e.target.closest && e.target.closest('button');
    if (b && b.innerText.includes('Start') && window.__bnviz.clicked === null) window.__bnviz.clicked = Date.now();
  }}, true);
  setInterval(() => {{
    const w = window.__bnviz;
    if (w.clicked === null || w.chart !== null || !document.body) return;
    if (document.body.innerText.includes({QUEUE_TEXT!r})) w.queued = true;
    const m = /step ([\\d,]+) of ([\\d,]+)/.exec(status() || '');
    if (m && Number(m[2].replace(/,/g, '')) === {steps} && plotted()) {{
      w.chart = Date.now(); w.step = Number(m[1].replace(/,/g, ''));
    }}
  }}, 100);
}})();"""


def browser_pids() -> list[int]:
    """This script's Chromium processes (its descendants named chrom*)."""
    me, children, found = os.getpid(), {}, []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            children.setdefault(int(rest.rsplit(")", 1)[1].split()[1]), []).append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    todo = list(children.get(me, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            if "chrom" in Path(f"/proc/{pid}/comm").read_text():
                found.append(pid)
        except OSError:
            continue
    return found


def browsers_cpu_s() -> float:
    """CPU seconds the live Chromium processes of this script have used (processes that ended are not counted)."""
    total = 0.0
    for pid in browser_pids():
        try:
            total += proc_stats(pid)["cpu_s"]
        except (OSError, AttributeError):
            continue
    return total


def renice_browsers() -> int:
    """Lower the priority of this script's Chromium processes (nice 19): they stand in for the students' own
    laptops, and should not take the server's two cores as they would if they ran beside it unchecked."""
    count = 0
    for pid in browser_pids():
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) < 19:
                os.setpriority(os.PRIO_PROCESS, pid, 19)
                count += 1
        except OSError:
            continue
    return count


def class_mode(args) -> int:
    n = args.sessions or 24
    others = set(range(n // (args.others + 1), n, n // (args.others + 1))) if args.others else set()
    others = set(sorted(others)[: args.others])
    pupils = [Pupil(i, 100 + i if i in others else 7, i not in others) for i in range(n)]
    remote = [s for s in pupils if s.index >= n - args.protocol]
    for s in remote:
        s.remote = ProtocolSession("train", f"steps={args.class_steps}&seed={s.seed}", args.class_steps)
    browsers = [s for s in pupils if s.remote is None]
    env = {"BNVIZ_BACKEND": args.backend}
    if args.ray_address:
        env["BNVIZ_RAY_ADDRESS"] = args.ray_address
    print(f"class mode: {n} sessions ({n - len(others)} on the shared link, {len(others)} with another seed; "
          f"{len(browsers)} in Chromium here, {len(remote)} protocol sessions), {args.class_steps} steps, backend "
          f"{args.backend}; load average {load_average()}", flush=True)
    from playwright.sync_api import sync_playwright

    server = bs.StreamlitServer(env=env)
    watchdog = threading.Timer(args.timeout, lambda: (print("timeout: killing the server", flush=True),
                                                      server.stop(), os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    try:
        server.start(timeout=120)
        probe = Probe(server.url, server.proc.pid)
        probe.start()
        with sync_playwright() as p:
            browser = bs.launch_chromium(p)
            if not args.cold:  # the teacher opened the page before sharing its link: the server is warm
                teacher = browser.new_context(viewport=bs.VIEWPORT).new_page()
                teacher.goto(f"{server.url}/train?steps={args.class_steps}&seed=7", timeout=120_000)
                bs.wait_for_title(teacher, "Train & watch", 120)
                bs.wait_until_idle(teacher, 120)
                print("  the teacher's page is open (--cold: the class arrives at a server nobody opened)", flush=True)
            script = first_chart_script(args.class_steps)
            for s in browsers:
                s.context = browser.new_context(viewport=bs.VIEWPORT)
                s.context.add_init_script(script)
                s.page = s.context.new_page()
            reniced = renice_browsers() if args.nice_browsers else 0
            protocol = ProtocolClass([s.remote for s in remote], server.url)
            cpu_self0 = time.process_time()  # the protocol sessions' CPU (this process)
            t0 = time.monotonic()
            protocol.start(t0)  # they open the link now too, and press Start as soon as their page is drawn
            for s in browsers:  # everyone opens the link at about the same moment
                s.page.goto(f"{server.url}/train?steps={args.class_steps}&seed={s.seed}", wait_until="commit",
                            timeout=120_000)
                s.opened = time.monotonic() - t0
            print(f"  {len(browsers)} links opened in Chromium within "
                  f"{max((s.opened for s in browsers), default=0):.1f} s", flush=True)
            probe.phase = "class"
            cpu0, wall0, browsers0 = proc_stats(server.proc.pid)["cpu_s"], time.monotonic(), browsers_cpu_s()
            for s in browsers:  # each presses Start as soon as its page is ready
                try:
                    bs.wait_for_title(s.page, "Train & watch", 120)
                    steps = s.page.locator('[data-testid="stSidebar"]').get_by_label("Steps", exact=True).first
                    bs.poll(lambda b=steps: b.count() and b.input_value().replace(",", "") == str(args.class_steps),
                            120, what="the link's Steps in the sidebar")  # a click before the link's settings
                    bs.wait_until_idle(s.page, 60)  # are in would train the defaults (another run)
                    bs.main_area(s.page).get_by_role("button", name="▶ Start").click(timeout=120_000)
                    s.clicked = time.monotonic() - t0
                except Exception as exc:  # noqa: BLE001 - one pupil's failure is a result
                    s.problem = f"could not press Start: {type(exc).__name__}"
            print(f"  Start pressed by {sum(math.isfinite(s.clicked) for s in pupils)} sessions within "
                  f"{max((s.clicked for s in pupils if math.isfinite(s.clicked)), default=0):.1f} s of opening "
                  "(protocol sessions included)", flush=True)
            deadline = time.monotonic() + args.patience + args.target
            while time.monotonic() < deadline:
                if args.nice_browsers:
                    renice_browsers()  # renderers started since
                done = sum(1 for s in remote if s.remote.problem or math.isfinite(s.remote.first_chart))
                for s in browsers:
                    if s.problem:
                        done += 1
                        continue
                    try:
                        w = s.page.evaluate("() => window.__bnviz")
                    except Exception:  # noqa: BLE001 - a page in the middle of a navigation: next round
                        continue
                    s.queued_seen = bool(w and w["queued"])
                    if w and w["chart"] is not None:
                        s.first_chart = s.clicked + (w["chart"] - w["clicked"]) / 1000
                        s.steps_seen = w["step"]
                        done += 1
                if done == len(pupils):
                    break
                time.sleep(0.5)
            cpu1, wall1, browsers1 = proc_stats(server.proc.pid)["cpu_s"], time.monotonic(), browsers_cpu_s()
            cpu_self1 = time.process_time()
            protocol.stop()
            for s in remote:
                r = s.remote
                s.opened, s.clicked, s.first_chart = r.opened, r.clicked, r.first_chart
                s.queued_seen, s.steps_seen, s.problem = r.queued_seen, r.step_seen, r.problem
                if math.isnan(s.first_chart) and not s.problem and not s.queued_seen:
                    s.problem = "no chart"
            for s in browsers:
                errors = bs.error_texts(s.page)
                if errors and not s.problem:
                    s.problem = f"error shown: {errors[0][:60]}"
                if math.isnan(s.first_chart) and not s.problem and not s.queued_seen:
                    s.problem = "no chart"  # (a session still queued at the end showed its place: not a failure)
            probe.phase = "closed"
            for s in browsers:
                s.context.close()
            browser.close()
        probe.stopping.set()
        probe.join(5)
        log = Path(server.log.name).read_text(errors="replace")
    finally:
        server.stop()
        watchdog.cancel()
    if args.nice_browsers:
        print(f"  {reniced} Chromium processes at nice 19 (the students' browsers would run on their own machines)")
    wall = max(1e-9, wall1 - wall0)
    if remote:
        print(f"  protocol sessions: {(cpu_self1 - cpu_self0) / wall:.2f} cores (this script's process), "
              f"{sum(s.remote.bytes_received for s in remote) / wall / len(remote) / 1e3:.0f} kB/s received each")
    return class_report(args, pupils, probe.samples, log, (cpu1 - cpu0) / wall, (browsers1 - browsers0) / wall)


def result(s: Pupil) -> str:
    if s.problem:
        return s.problem
    return "still queued at the end (its place shown)" if math.isnan(s.first_chart) else "ok"


def class_report(args, pupils, samples, log: str, cpu_cores: float, browser_cores: float) -> int:
    waits = [float(w) for w in re.findall(r"started after ([\d.]+) s in the queue", log)]
    trained = len(waits)
    print(f"\n{'session':>7} {'client':>8} {'seed':>4} {'link':>7} {'opened':>6} {'clicked':>7} {'click->chart':>12} "
          f"{'queued':>6} {'at step':>7}  result")
    for s in pupils:
        delay = s.first_chart - s.clicked
        print(f"{s.index:>7} {'protocol' if s.remote else 'chromium':>8} {s.seed:>4} "
              f"{'shared' if s.shared else 'other':>7} {s.opened:>6.1f} {s.clicked:>7.1f} "
              f"{delay:>12.1f} {'yes' if s.queued_seen else 'no':>6} {s.steps_seen:>7}  {result(s)}")
    during = [x for x in samples if x["phase"] == "class"]
    lat = sorted(x["latency"] for x in during) or [math.nan]

    def spread(group):
        d = sorted(s.first_chart - s.clicked for s in group if math.isfinite(s.first_chart - s.clicked))
        return (f"median {d[len(d) // 2]:.1f} s, max {d[-1]:.1f} s ({len(d)} of {len(group)})" if d else "none", d)

    shared = [s for s in pupils if s.shared]
    other = [s for s in pupils if not s.shared]
    shared_text, shared_d = spread(shared)
    print(f"\nbackend {args.backend}; load average now {load_average()}")
    print(f"  click -> first chart, shared link: {shared_text}")
    if any(s.remote for s in pupils):
        for name, group in (("Chromium here", [s for s in shared if not s.remote]),
                            ("protocol sessions", [s for s in shared if s.remote])):
            print(f"    of which {name}: {spread(group)[0]}")
    print(f"  click -> first chart, other seeds: {spread(other)[0]}; queued: "
          f"{sum(s.queued_seen for s in other)} of {len(other)}")
    parts = re.findall(r"first chart sent ([\d.]+) s after Start \(run (\w+)\)", log)
    if parts:
        shared_key = max({k for _, k in parts}, key=lambda k: sum(1 for _, x in parts if x == k))
        for name, group in (("shared link", [float(t) for t, k in parts if k == shared_key]),
                            ("other seeds", sorted(float(t) for t, k in parts if k != shared_key))):
            group.sort()
            if group:
                print(f"  the server's part, {name} (its log: from the script run that handles the click to the "
                      f"first chart sent; not the browser's): median {group[len(group) // 2]:.2f} s, max "
                      f"{group[-1]:.2f} s ({len(group)} sessions: {', '.join(f'{t:.1f}' for t in group)})")
    print(f"  runs trained by the server: {trained} (distinct settings asked for: {1 + len(other)}); queue waits "
          f"{', '.join(f'{w:.1f}' for w in waits)} s")
    print(f"  server RSS max {max((x['rss_mb'] for x in during), default=math.nan):.0f} MB; server CPU "
          f"{cpu_cores:.2f} cores on average from the first link to the last first chart; the browsers "
          f"{browser_cores:.2f} cores")
    print(f"  health latency median {lat[len(lat) // 2]:.3f} s, max {lat[-1]:.3f} s, "
          f"{sum(not x['ok'] for x in during)} failed of {len(during)}")
    ok = (len(shared_d) == len(shared) and shared_d[-1] <= args.target and trained <= 1 + len(other)
          and not any(s.problem for s in pupils))
    print(f"  [{'ok' if ok else 'FAIL'}] every shared-link session's first chart within {args.target:.0f} s, "
          "identical runs trained once, no errors")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
