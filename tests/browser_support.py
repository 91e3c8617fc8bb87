"""Helpers for driving `streamlit run app.py` with a real headless Chromium (Debian's, never a downloaded one).

Used by tests/test_browser.py and scripts/measure_live.py. Nothing here imports Streamlit or bnviz: the app runs in
its own process group, started from the repo root, and is always terminated (with its children) by `stop()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = REPO_ROOT / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1500, "height": 1000}

# The six pages every user sees: (url path, title shown as the page's h1, title in the sidebar navigation).
PAGES = [
    ("", "Batch normalization, live", "Home"),
    ("train", "Train & watch", "Train & watch"),
    ("compare", "Compare two runs", "Compare two runs"),
    ("gradients", "Gradients", "Gradients"),
    ("inside-bn", "Inside BatchNorm", "Inside BatchNorm"),
    ("runs", "Save & open runs", "Save & open runs"),
]

ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
STATUS_RE = re.compile(r"step ([\d,]+) of ([\d,]+)\s*·\s*(?:([\d,.]+) steps/s\s*·\s*)?(\w+)")  # no rate yet: none

# Per chart: how many traces, how many of them hold a non-empty x/y/z array, and a hash of all their data arrays.
# Plotly 6 ships numpy arrays as {dtype, bdata, shape}; lists, typed arrays and bdata objects are all handled.
# `within`: a CSS selector to look inside (default: the whole page).
PLOTS_JS = """(within = '') => Array.from(document.querySelectorAll((within + ' .js-plotly-plot').trim())).map(el => {
  const traces = Array.isArray(el.data) ? el.data : [];
  let text = '', filled = 0;
  for (const t of traces) {
    let has = false;
    for (const k of ['x', 'y', 'z']) {
      const v = t[k];
      if (v === undefined || v === null) continue;
      let n = 0, s;
      if (ArrayBuffer.isView(v)) { n = v.length; s = Array.prototype.join.call(v, ','); }
      else if (Array.isArray(v)) { n = v.length; s = JSON.stringify(v); }
      else if (typeof v === 'object') { n = (v.bdata || '').length; s = JSON.stringify(v); }
      else { s = String(v); }
      if (n > 0) has = true;
      text += k + '=' + s + ';';
    }
    if (has) filled += 1;
  }
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return {traces: traces.length, filled: filled, hash: h, size: text.length};
})"""

ANY_PLOT_WITH_DATA_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el =>
  Array.isArray(el.data) && el.data.some(t => ['x', 'y', 'z'].some(k => {
    const v = t[k];
    if (v === undefined || v === null) return false;
    if (ArrayBuffer.isView(v) || Array.isArray(v)) return v.length > 0;
    return typeof v === 'object' && (v.bdata || '').length > 0;
  })))"""

# Like ANY_PLOT_WITH_DATA_JS, but only charts of the page's current run (not marked stale, e.g. left over from
# the page shown before a navigation).
FRESH_CHART_WITH_DATA_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el => {
  const box = el.closest('[data-testid="stElementContainer"]');
  if (box && box.getAttribute('data-stale') === 'true') return false;
  return Array.isArray(el.data) && el.data.some(t => ['x', 'y', 'z'].some(k => {
    const v = t[k];
    if (v === undefined || v === null) return false;
    if (ArrayBuffer.isView(v) || Array.isArray(v)) return v.length > 0;
    return typeof v === 'object' && (v.bdata || '').length > 0;
  }));
})"""

STATUS_JS = """() => {
  const hits = Array.from(document.querySelectorAll('[data-testid="stMarkdownContainer"]'))
    .map(e => e.innerText.trim()).filter(t => t.startsWith('Status:'));
  return hits.length ? hits[hits.length - 1] : null;
}"""

# Per chart container (st.plotly_chart, or the live chart component of bnviz/ui/plot.py): is it marked stale (a rerun is
# pending), its opacity (stale elements are drawn faded), is it blank (no rendered plot inside), and its height
# (stale leftovers of remounted charts collapse to height 0).
CHART_STATE_JS = """() => Array.from(document.querySelectorAll(
    '[data-testid="stElementContainer"].stPrintGraphic, ' +
    '[data-testid="stElementContainer"]:has([data-testid="stPlotlyChart"]), ' +
    '[data-testid="stElementContainer"]:has(.bnviz-plot)')).map(box => {
  let opacity = 1;
  for (let n = box; n && n !== document.body; n = n.parentElement) opacity *= parseFloat(getComputedStyle(n).opacity);
  const plot = box.querySelector('.js-plotly-plot');
  return {stale: box.getAttribute('data-stale') === 'true', opacity: opacity,
          blank: !plot || !plot._fullLayout || !plot.querySelector('.main-svg'),
          height: box.getBoundingClientRect().height};
})"""

SCROLL_HEIGHT_JS = """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
  '[data-testid="stSidebarContent"]', '[data-testid="stMainBlockContainer"]']
  .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight),
  document.documentElement.scrollHeight)"""


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """tid -> (seconds on a core, seconds runnable but waiting for one), from schedstat (for the measure_ scripts)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ran, waited = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        out[int(tid)] = (int(ran) / 1e9, int(waited) / 1e9)
    return out


def chromium_available() -> bool:
    return CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`python -m streamlit run app.py` on a free port, in its own process group, output in a temp log file."""

    def __init__(self, app: str = "app.py", port: int | None = None, env: dict | None = None,
                 root: Path | None = None):
        self.app = app
        self.root = root or REPO_ROOT  # the checkout it runs from (its code and .streamlit/config.toml)
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="bnviz-streamlit-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> StreamlitServer:
        cmd = [sys.executable, "-m", "streamlit", "run", self.app, "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    last = r.read().decode().strip()
                    if last == "ok":
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"/_stcore/health did not answer 'ok' within {timeout:.0f} s (last: {last})\n"
                           f"{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server and every child of it (its process group); SIGKILL after `timeout`."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        elif proc is not None:
            with contextlib.suppress(ProcessLookupError):  # the leader is gone: make sure its children are too
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.log.close()

    def __enter__(self) -> StreamlitServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def is_local(url: str) -> bool:
    """A request that stays on this machine (the local server, or data the page made itself)."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return urllib.parse.urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")


def launch_chromium(playwright, **kwargs):
    """Debian's Chromium, headless, with the flags that keep it offline and quiet."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, **kwargs)


def new_page(browser):
    """A fresh context (a fresh Streamlit session once a URL is opened) with the standard viewport."""
    context = browser.new_context(viewport=VIEWPORT)
    return context.new_page()


# ---- reading the page -------------------------------------------------------------------------------------------
def wait_for_title(page, title: str, timeout: float = 60.0) -> None:
    page.locator("h1", has_text=title).first.wait_for(state="visible", timeout=timeout * 1000)


IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]')"""


def wait_until_idle(page, timeout: float = 30.0) -> bool:
    """Wait (bounded) until Streamlit shows neither its 'running' indicator nor loading skeletons (widgets whose
    code is still loading); True if it got there. A page whose fragment polls may never be idle: that is fine."""
    try:
        page.wait_for_function(IDLE_JS, timeout=timeout * 1000, polling=100)
        return True
    except Exception:  # noqa: BLE001 - a page that keeps polling never goes idle; that is fine here
        return False


def error_texts(page) -> list[str]:
    """Visible error elements: exceptions (tracebacks) and st.error boxes."""
    return [t.strip()[:500] for t in page.locator(ERROR_SELECTOR).all_inner_texts()]


def warning_texts(page) -> list[str]:
    return [t.strip()[:500] for t in page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()]


def plots(page, within: str = "") -> list[dict]:
    """Every drawn chart's trace count and data hash (PLOTS_JS), or only those inside the CSS selector `within`."""
    return page.evaluate(PLOTS_JS, within)


def has_plot_with_data(page) -> bool:
    return bool(page.evaluate(ANY_PLOT_WITH_DATA_JS))


def status_text(page) -> str | None:
    """The live status line ('Status: step N of M · R steps/s · running', without the rate until two steps are
    timed), or None if the page shows none."""
    return page.evaluate(STATUS_JS)


def parse_status(text: str | None) -> dict | None:
    m = STATUS_RE.search(text or "")
    if not m:
        return None
    return {"step": int(m.group(1).replace(",", "")), "steps": int(m.group(2).replace(",", "")),
            "rate": None if m.group(3) is None else float(m.group(3).replace(",", "")), "status": m.group(4)}


def poll(fn, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Call fn() until it returns something truthy (returned) or `timeout` seconds pass (TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(interval)


def nav_link(page, label: str):
    """The sidebar navigation link with this title (client-side navigation: the session is kept)."""
    return page.locator('[data-testid="stSidebarNav"] a', has_text=label).first


def main_area(page):
    return page.locator('[data-testid="stMain"]')


def start_train_run(page, url: str, steps: int) -> None:
    """Open Train & watch (its defaults: the BN vs no BN twin) in `page`, set Steps, press Start and wait until a
    chart holds data (scripts/measure_live.py and scripts/measure_browser.py watch this run)."""
    page.goto(url + "/train", wait_until="domcontentloaded", timeout=90_000)
    wait_for_title(page, "Train & watch", 90)
    wait_until_idle(page, 30)
    box = page.locator('[data-testid="stSidebar"]').get_by_label("Steps", exact=True)
    box.fill(str(steps))
    box.press("Enter")
    poll(lambda: box.input_value().replace(",", "") == str(steps), 15, what="Steps to be set")
    wait_until_idle(page, 20)
    main_area(page).get_by_role("button", name="▶ Start").click()
    page.wait_for_function(ANY_PLOT_WITH_DATA_JS, timeout=60_000, polling=100)


def screenshot(page, name: str, max_height: int = 12000, settle: float = 10.0, tries: int = 1) -> Path:
    """Save a full-page PNG of the page into screenshots/<name>.png.

    Streamlit scrolls inside its own containers, so Playwright's full_page alone captures only the viewport: the
    viewport is stretched to the content's height for the shot and restored afterwards. The shot waits (at most
    `settle` seconds) until no chart is blank; with `tries` > 1 it keeps the fullest of that many shots (the largest
    PNG): live charts are redrawn on every update and blink, and one shot may catch some of them mid-redraw.
    (How often they blink is measured by scripts/measure_live.py, not hidden: see its "blank" rows.)
    """
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    size = page.viewport_size or VIEWPORT
    try:
        page.mouse.move(5, 5)  # over the sidebar's top: no tooltip or chart toolbar left from the last click
        height = min(max_height, max(size["height"], int(page.evaluate(SCROLL_HEIGHT_JS))))
        if height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": height})
            page.wait_for_timeout(300)  # let the charts re-lay out
        # Live charts are remounted on every update and are blank for a moment: shoot when none is (bounded).
        with contextlib.suppress(Exception):
            page.wait_for_function(
                f"() => ({CHART_STATE_JS})().every(c => c.height === 0 || !c.blank)", timeout=settle * 1000,
                polling=100)
        shots = []
        for i in range(max(1, tries)):
            if i:
                page.wait_for_timeout(400)
            shots.append(page.screenshot(full_page=True, animations="disabled", timeout=30_000))
        path.write_bytes(max(shots, key=len))
    finally:
        page.set_viewport_size(size)
    return path


# Per drawn chart: its title and the boxes (viewport px, relative to the chart's SVG) of every text that must stay
# readable: the title, annotations (subplot titles, notes, messages), axis titles, colorbar titles, legend entries;
# and each subplot's plot area with the boxes of its axes' labels (tick labels and axis titles).
CHART_TEXT_SELECTORS = {
    "title": "text.gtitle", "annotation": ".annotation-text",
    "axis title": "g.infolayer g[class$='title']:not(.g-gtitle):not(.cbtitle) > text",
    "colorbar title": ".cbtitle text", "legend": ".legendtext",
}
CHART_TEXTS_JS = """(selectors) => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(el => {
  const box = el.closest('[data-testid="stElementContainer"]');
  return !(box && box.getAttribute('data-stale') === 'true') && el.querySelector('.main-svg') &&
         el.getBoundingClientRect().width > 0;
}).map(el => {
  const frame = el.querySelector('.main-svg').getBoundingClientRect();
  const texts = [];
  for (const [kind, sel] of Object.entries(selectors)) {
    for (const t of el.querySelectorAll(sel)) {
      const text = (t.textContent || '').trim();
      const r = t.getBoundingClientRect();
      if (!text || r.width === 0 || r.height === 0 || getComputedStyle(t).visibility === 'hidden') continue;
      texts.push({kind, text: text.slice(0, 60), x0: r.left - frame.left, y0: r.top - frame.top,
                  x1: r.right - frame.left, y1: r.bottom - frame.top});
    }
  }
  // each subplot's plot area, and the labels of each axis (tick labels, title) with the subplot the axis belongs to
  const full = el._fullLayout, plots = [], labels = [];
  for (const id of (full && full._subplots && full._subplots.cartesian) || []) {
    const [, x, y] = /^(x[0-9]*)(y[0-9]*)$/.exec(id) || [];
    const xa = full[x.replace('x', 'xaxis')], ya = full[y.replace('y', 'yaxis')];
    if (!xa || !ya) continue;
    plots.push({subplot: id, x0: xa._offset, y0: ya._offset, x1: xa._offset + xa._length, y1: ya._offset + ya._length});
    for (const ax of [xa, ya]) {
      if (ax.anchor !== (ax === xa ? y : x)) continue;  // an axis is labelled beside the subplot it is anchored to
      for (const t of el.querySelectorAll(`g.${ax._id}tick text, g.g-${ax._id}title text`)) {
        const r = t.getBoundingClientRect();
        if (!r.width || !r.height || getComputedStyle(t).visibility === 'hidden') continue;
        labels.push({subplot: id, text: `${ax._id} ${(t.textContent || '').trim().slice(0, 40)}`, axis: ax._id,
                     tick: !!t.closest(`g.${ax._id}tick`),
                     x0: r.left - frame.left, y0: r.top - frame.top,
                     x1: r.right - frame.left, y1: r.bottom - frame.top});
      }
    }
  }
  const title = el.querySelector('text.gtitle');
  return {title: title ? title.textContent.slice(0, 60) : '(untitled)', width: frame.width, height: frame.height,
          texts, plots, labels};
})"""
TEXT_SLACK_PX = 2  # glyph boxes include line spacing: boxes that share less than this are not overlapping
# How far (px) an axis label may reach into another subplot's plot area: the area's edge is its range padding, and a
# rotated title's box includes its line spacing (bnviz/ui/plot.py's LABEL_REACH_PX: the gap it leaves as planned).
LABEL_REACH_PX = 10


def chart_texts(page) -> list[dict]:
    """Every drawn chart on the page, with its text boxes (CHART_TEXTS_JS)."""
    return page.evaluate(CHART_TEXTS_JS, CHART_TEXT_SELECTORS)


def text_problems(chart: dict, slack: float = TEXT_SLACK_PX, label_slack: float = LABEL_REACH_PX) -> list[str]:
    """What is wrong with one chart's text: pairs of texts that overlap, texts cut off by the chart's edges, tick
    labels over a text or over another axis's tick labels (a grid's step labels on a phone), and axis labels that
    reach into another subplot's plot area."""
    problems = []
    texts = chart["texts"]
    for t in texts:
        inside_x = -slack <= t["x0"] and t["x1"] <= chart["width"] + slack
        if not inside_x or t["y0"] < -slack or t["y1"] > chart["height"] + slack:
            problems.append(f"cut off: {t['kind']} {t['text']!r} at ({t['x0']:.0f}, {t['y0']:.0f})-"
                            f"({t['x1']:.0f}, {t['y1']:.0f}) in {chart['width']:.0f}x{chart['height']:.0f}")
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            dy = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if dx > slack and dy > slack and not (a["kind"] == b["kind"] == "legend"):
                problems.append(f"overlap: {a['kind']} {a['text']!r} and {b['kind']} {b['text']!r} "
                                f"({dx:.0f} x {dy:.0f} px)")
    ticks = [label for label in chart.get("labels", []) if label.get("tick")]
    for i, a in enumerate(ticks):  # tick labels clear the chart's texts and the tick labels of every other axis
        for b in texts + [t for t in ticks[i + 1:] if t["axis"] != a["axis"]]:
            dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            dy = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if dx > slack and dy > slack:
                problems.append(f"overlap: tick label {a['text']!r} and {b.get('kind', 'tick label')} {b['text']!r} "
                                f"({dx:.0f} x {dy:.0f} px)")
    for label in chart.get("labels", []):  # an axis's tick labels and title stay out of the other subplots
        for plot in chart.get("plots", []):
            dx = min(label["x1"], plot["x1"]) - max(label["x0"], plot["x0"])
            dy = min(label["y1"], plot["y1"]) - max(label["y0"], plot["y0"])
            if plot["subplot"] != label["subplot"] and dx > label_slack and dy > slack:
                problems.append(f"in another subplot: axis label {label['text']!r} of {label['subplot']} reaches "
                                f"{dx:.0f} px into the plot area of {plot['subplot']}")
    return problems
