"""End to end: `streamlit run app.py` driven by a real headless Chromium (Debian's /usr/bin/chromium).

One server for the whole module (started from the repo root on a free port, always terminated with its children).
Every test opens its own browser context, so every test is a new Streamlit session. Screenshots of every page, idle
and while training, go to screenshots/ (gitignored). Run: python -m pytest tests/test_browser.py -q
"""

from __future__ import annotations

import time
import urllib.parse
from urllib.parse import urlparse

import browser_support as bs
import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not bs.chromium_available(),
                       reason=f"{bs.CHROMIUM} is not installed (apt-get install chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

PAGE_LOAD_S = 90  # the first page of a cold server imports torch and plotly: slow on a loaded 2-core machine
LIVE_S = 60  # bounded waits for live behaviour (first chart, a change, a status)
CLICK_TRY_S = 3  # one attempt at clicking Stop (see press_stop_and_check)
NAV_S = 120  # a page switch while a run trains: measured 6-40 s on a loaded 2-core machine (scripts/measure_live.py)


@pytest.fixture(scope="module")
def server():
    for old in bs.SCREENSHOT_DIR.glob("FAILED-*.png"):  # failure shots of an earlier run
        old.unlink()
    srv = bs.StreamlitServer().start(timeout=60)
    srv.visits = 0
    try:
        yield srv
    finally:
        print(f"streamlit log (tail):\n{srv.log_tail(2000)}")  # shown when a test of the module failed
        srv.stop()


@pytest.fixture(scope="module")
def primed(server, browser):
    """Open the home page once before the other tests: a fresh server whose first visitors arrive by a deep link
    shows the wrong sidebar navigation (see test_deep_link_first_visit_shows_page_titles_in_navigation), which
    would break the navigation-based tests for a reason they are not about."""
    ctx = browser.new_context(viewport=bs.VIEWPORT)
    try:
        open_page(ctx, server, "", "Batch normalization, live")
    finally:
        ctx.close()
    return server


@pytest.fixture
def context(browser, server, request):
    """A fresh browser context (a fresh Streamlit session); on failure, a screenshot of every page left open."""
    ctx = browser.new_context(viewport=bs.VIEWPORT)
    ctx.external_requests = []  # the app must work offline: nothing may be fetched from another host
    ctx.on("request", lambda r: None if bs.is_local(r.url) else ctx.external_requests.append(r.url))
    failed_before = request.session.testsfailed
    yield ctx
    try:
        if request.session.testsfailed > failed_before:
            for i, page in enumerate(ctx.pages):
                print(f"page {i} at failure: {page.url}; status: {bs.status_text(page)}; "
                      f"connection: {connection_log(page)}")
                bs.screenshot(page, f"FAILED-{request.node.name}-{i}".replace("/", "_"))
    finally:
        ctx.close()


def watch_connection(page) -> list[str]:
    """Record websocket opens/closes and full page loads: a second websocket or a reload means a new session."""
    events: list[str] = []
    t0 = time.monotonic()

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - t0:6.1f} s {what}")

    def on_websocket(ws) -> None:
        note(f"websocket open {ws.url.split('?')[0]}")
        ws.on("close", lambda _ws: note("websocket closed"))

    page.on("websocket", on_websocket)
    page.on("load", lambda p: note(f"page load {p.url}"))
    page.on("crash", lambda p: note("page crashed"))
    page._bnviz_events = events
    return events


def connection_log(page) -> str:
    return "; ".join(getattr(page, "_bnviz_events", []))


def open_page(ctx, server, path: str, title: str):
    """Open a URL (a new session), wait for the page's title and for the script run to settle."""
    page = ctx.new_page()
    watch_connection(page)
    server.visits += 1
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded", timeout=PAGE_LOAD_S * 1000)
    bs.wait_for_title(page, title, PAGE_LOAD_S)
    bs.wait_until_idle(page, 30)
    return page


def wait_or_explain(page, js: str, timeout: float, what: str) -> None:
    """page.wait_for_function, failing with the status line and the connection log instead of a bare timeout."""
    try:
        page.wait_for_function(js, timeout=timeout * 1000, polling=200)
    except sync_api.TimeoutError:
        pytest.fail(f"no {what} within {timeout:.0f} s; status: {bs.status_text(page)}; "
                    f"connection: {connection_log(page)}")


def assert_no_errors(page, where: str) -> None:
    errors = bs.error_texts(page)
    assert not errors, f"{where}: error element(s) on the page: {errors}\nstatus: {bs.status_text(page)}"


def nav_titles(page) -> list[str]:
    # Each link's text is "<icon name>\n\n<title>": keep the last line.
    texts = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    return [t.strip().splitlines()[-1].strip() for t in texts if t.strip()]


def slug(url: str) -> str:
    return urlparse(url).path.strip("/") or "home"


class Clock:
    """Prints how long each phase of a test took (shown with pytest -s, or on failure)."""

    def __init__(self, name: str):
        self.name, self.t0 = name, time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"[{self.name}] {time.monotonic() - self.t0:6.1f} s  {what}")


def read_live(page) -> dict:
    return {"status": bs.parse_status(bs.status_text(page)), "plots": bs.plots(page)}


def data_hashes(live: dict) -> set[int]:
    return {p["hash"] for p in live["plots"] if p["filled"]}


def wait_for_first_data(page, timeout: float = LIVE_S) -> None:
    page.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=timeout * 1000)
    page.wait_for_function(bs.ANY_PLOT_WITH_DATA_JS, timeout=timeout * 1000, polling=200)


def wait_for_progress(page, first: dict, timeout: float = LIVE_S) -> dict:
    """Poll until the status line's step has grown AND some chart holds data it did not hold before."""

    def changed():
        now = read_live(page)
        s0, s1 = first["status"], now["status"]
        step_up = s0 is not None and s1 is not None and s1["step"] > s0["step"]
        new_data = bool(data_hashes(now) - data_hashes(first))
        return now if step_up and new_data else None

    try:
        return bs.poll(changed, timeout, interval=0.5, what="the charts and the status line to change")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; first: {first['status']}, now: {bs.status_text(page)}, "
                             f"plots: {bs.plots(page)}") from None


def press_stop_and_check(page) -> str:
    """Press the page's Stop (once it is enabled, unless the run has ended) and return the final status line.

    The run may end by itself at any moment, also while a click on Stop waits: Playwright's click waits until the
    button is visible, stable and enabled (seconds on a busy page), and the full rerun that follows the end of the
    run disables Stop for good. A single click with a long timeout then waits all of it for nothing (~60 s, when
    the run ended between reading the status line and the click), so the click is tried in short attempts, with
    the status line read again before each."""
    stop = bs.main_area(page).get_by_role("button", name="Stop", exact=True)
    stop.wait_for(state="visible", timeout=LIVE_S * 1000)

    def pressed_or_ended():
        s = bs.parse_status(bs.status_text(page))
        if s and s["status"] in ("stopped", "finished"):
            return "ended"
        if not stop.is_enabled():
            return None
        try:
            stop.click(timeout=CLICK_TRY_S * 1000)
        except sync_api.TimeoutError:  # not clickable yet (a busy page), or disabled again: the run just ended
            return None
        return "pressed"

    t0 = time.monotonic()
    state = bs.poll(pressed_or_ended, LIVE_S, interval=0.2, what="Stop to be pressed or the run to end")
    if time.monotonic() - t0 > CLICK_TRY_S:
        print(f"Stop: {state} after {time.monotonic() - t0:.1f} s; the status said: {bs.status_text(page)}")

    def ended():
        s = bs.parse_status(bs.status_text(page))
        return s if s and s["status"] in ("stopped", "finished") else None

    bs.poll(ended, LIVE_S, interval=0.3, what="the status to say stopped or finished")
    return bs.status_text(page)


def set_steps(page, steps: int) -> None:
    box = page.locator('[data-testid="stSidebar"]').get_by_label("Steps", exact=True)
    box.wait_for(state="visible", timeout=30_000)
    box.fill(str(steps))
    box.press("Enter")
    bs.poll(lambda: box.input_value().replace(",", "") == str(steps), 15, what=f"Steps to read {steps}")
    bs.wait_until_idle(page, 20)


def start_on_train(ctx, server, steps: int):
    page = open_page(ctx, server, "train", "Train & watch")
    set_steps(page, steps)
    bs.main_area(page).get_by_role("button", name="▶ Start").click()
    return page


# ---- tests --------------------------------------------------------------------------------------------------------
def test_deep_link_first_visit_shows_page_titles_in_navigation(context, server):
    """A student opens a link to /train on a freshly started server: the sidebar must list the pages by title.

    Must be the first visit to the module's server (it is the first test of this file)."""
    if server.visits:
        pytest.skip("needs a server that no session has visited yet")
    page = open_page(context, server, "train", "Train & watch")
    bs.poll(lambda: page.locator('[data-testid="stSidebarNav"] a').count() > 0, 30, what="the sidebar navigation")
    page.wait_for_timeout(1000)
    titles = nav_titles(page)
    bs.screenshot(page, "train-first-visit-deep-link")
    missing = [nav for _, _, nav in bs.PAGES if nav not in titles]
    assert not missing, f"the sidebar navigation of a first visit to /train shows {titles}, missing {missing}"


@pytest.mark.parametrize("path,title,nav", bs.PAGES, ids=[slug(f"/{p[0]}") for p in bs.PAGES])
def test_page_opens_without_errors(context, primed, path, title, nav):
    page = open_page(context, primed, path, title)
    assert page.locator("h1", has_text=title).first.is_visible()
    assert_no_errors(page, f"/{path}")
    assert nav in nav_titles(page), f"'{nav}' is not in the sidebar navigation: {nav_titles(page)}"
    # plotly.js is loaded before anything is pressed, from a script that takes no room on the page
    page.wait_for_function("() => !!window.Plotly", timeout=LIVE_S * 1000, polling=100)
    assert page.locator('[data-testid="stElementContainer"]:has(.bnviz-preload)').first.is_hidden()
    bs.screenshot(page, f"{slug('/' + path)}-idle")
    assert not context.external_requests, f"/{path} fetched from the network: {context.external_requests}"


UNDERSTAND_PAGES = [("bn-steps", "BatchNorm step by step"), ("zoo", "The normalization zoo"),
                    ("evidence", "Is it really internal covariate shift?"), ("learn", "Learn"),
                    ("inference", "BN at inference, and in very deep networks"),
                    ("backprop", "Backprop through batch norm"),
                    ("statistics", "Running statistics, and what BN does not do"),
                    ("scale", "Scale invariance and weight decay"), ("remedies", "Small batches, and BN with dropout")]


@pytest.mark.parametrize("path,title", UNDERSTAND_PAGES, ids=[p for p, _ in UNDERSTAND_PAGES])
def test_understanding_page_opens_without_errors(context, primed, path, title):
    page = open_page(context, primed, path, title)
    assert page.locator("h1", has_text=title).first.is_visible()
    assert_no_errors(page, f"/{path}")
    bs.screenshot(page, f"{path}-idle")
    assert not context.external_requests, f"/{path} fetched from the network: {context.external_requests}"


def test_train_run_changes_charts_then_stops(context, primed):
    lap = Clock("train")
    page = start_on_train(context, primed, 300)
    lap("Start pressed")
    wait_for_first_data(page)
    first = read_live(page)
    lap(f"first chart with data; {first['status']}")
    assert first["status"] is not None, f"no status line after Start: {bs.status_text(page)}"
    assert first["status"]["steps"] == 300, f"the run does not use the 300 steps typed in: {first['status']}"
    assert first["status"]["status"] == "running", (f"the run ended before it could be watched twice; raise Steps: "
                                                    f"{first['status']}")
    later = wait_for_progress(page, first)
    lap(f"charts changed; {later['status']}")
    assert later["status"]["step"] > first["status"]["step"]
    assert_no_errors(page, "/train while training")
    page.mouse.move(5, 5)  # away from every chart: their toolbars are hidden (they would cover narrow titles)
    page.wait_for_timeout(500)
    toolbars = page.evaluate("""() => Array.from(document.querySelectorAll('.modebar-group'))
      .map(g => getComputedStyle(g).opacity)""")
    assert toolbars and set(toolbars) == {"0"}, f"chart toolbars shown without hovering: {toolbars}"
    final = press_stop_and_check(page)  # at once: the shot of /train while training is taken by the last test
    lap(f"after Stop: {final}")
    assert "stopped" in final, f"Stop pressed at step {later['status']['step']} of 300: {final}"
    assert_no_errors(page, "/train after Stop")
    bs.screenshot(page, "train-stopped")


def test_a_chart_out_of_view_waits_and_shows_the_newest_figure_when_scrolled_to(context, primed):
    """Charts below the fold are not redrawn twice a second (the browser's time goes to the training on a 2-core
    laptop); scrolled into view, a chart draws the newest figure at once."""
    page = start_on_train(context, primed, 3000)
    wait_for_first_data(page)
    below = '[class*="st-key-train_histogram_"]'  # the detail charts at the bottom of the page
    bs.poll(lambda: len([p for p in bs.plots(page, below) if p["filled"]]) == 2, LIVE_S,
            what="both detail charts drawn once")
    in_view = page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel)).map(el => {
      const r = el.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; })""", below)
    assert in_view == [False, False], "the detail charts should start out of view in a 1000 px tall window"
    hidden = [p["hash"] for p in bs.plots(page, below)]
    loss = bs.plots(page, ".st-key-train_loss")[0]["hash"]
    bs.poll(lambda: bs.plots(page, ".st-key-train_loss")[0]["hash"] != loss, LIVE_S, what="the loss chart to move")
    page.wait_for_timeout(1500)  # three refreshes of the page
    assert [p["hash"] for p in bs.plots(page, below)] == hidden, "charts out of view were redrawn"
    status = bs.parse_status(bs.status_text(page))
    assert status and status["status"] == "running", bs.status_text(page)
    page.locator(below).first.scroll_into_view_if_needed()
    bs.poll(lambda: [p["hash"] for p in bs.plots(page, below)][0] != hidden[0], 10,
            what="the chart scrolled into view to show the newest figure")
    assert_no_errors(page, "/train after scrolling")
    press_stop_and_check(page)


# Where the text around Train & watch's charts sits on the page: top of each element (px, in page order), or None.
TRAIN_PLACES_JS = """(caption) => {
  const top = (el) => el ? el.getBoundingClientRect().top + window.scrollY : null;
  const texts = Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stMarkdownContainer"]'));
  const text = (t) => texts.filter((el) => el.innerText.trim() === t);
  return {grid: top(document.querySelector('.st-key-train_grid')),
          captions: Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stCaptionContainer"]'))
            .filter((el) => el.innerText.trim().startsWith(caption)).map(top),
          headings: [...text('Run BN'), ...text('Run no BN')].map(top),
          details: Array.from(document.querySelectorAll('[class*="st-key-train_histogram_"]')).map(top)};
}"""


def test_train_refresh_resends_only_what_changes(context, primed):
    """While a run trains, Train & watch's status line and charts refresh twice a second; the text around the charts
    (the grid's caption, a heading per run, the detail chart's caption) stays where it was, but is not sent and
    rendered again with every refresh (the browser's time goes to the training on a 2-core laptop)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    caption = b"One heatmap per block (rows)"  # figures.caption("distribution_grid")
    runs: list[dict] = []  # per script run (full or the fragment's): does it send the status line, the caption?

    def on_frame(payload) -> None:
        try:
            msg = ForwardMsg.FromString(bytes(payload))
        except Exception:  # noqa: BLE001 - not a ForwardMsg: not counted
            return
        if msg.WhichOneof("type") == "new_session":
            runs.append({"status": False, "caption": False, "heading": False})
        elif runs and msg.WhichOneof("type") == "delta":
            raw = bytes(payload)
            runs[-1]["status"] |= b"Status:" in raw
            runs[-1]["caption"] |= caption in raw
            runs[-1]["heading"] |= b"**Run " in raw

    page = context.new_page()
    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    page.goto(f"{primed.url}/train", wait_until="domcontentloaded", timeout=PAGE_LOAD_S * 1000)
    bs.wait_for_title(page, "Train & watch", PAGE_LOAD_S)
    bs.wait_until_idle(page, 30)
    set_steps(page, 3000)
    bs.main_area(page).get_by_role("button", name="▶ Start").click()
    wait_for_first_data(page)
    bs.poll(lambda: len([p for p in bs.plots(page, '[class*="st-key-train_histogram_"]') if p["filled"]]) == 2,
            LIVE_S, what="both detail charts drawn")
    seen, deadline = len(runs), time.monotonic() + LIVE_S
    while sum(r["status"] for r in runs[seen:]) < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(250)  # Playwright hands over the websocket's frames while it waits
    refreshes = [r for r in runs[seen:] if r["status"]]
    assert len(refreshes) >= 4, f"no four refreshes of the status line within {LIVE_S} s: {bs.status_text(page)}"
    lean = [r for r in refreshes if not r["caption"] and not r["heading"]]
    assert len(lean) >= 3, f"refreshes re-sent the text around the charts: {refreshes}"
    places = page.evaluate(TRAIN_PLACES_JS, caption.decode())
    assert len(places["captions"]) == 1 and len(places["headings"]) == 2 and len(places["details"]) == 2, places
    assert places["grid"] < places["captions"][0] < min(places["headings"]) < min(places["details"]), places
    status = bs.parse_status(bs.status_text(page))
    assert status and status["status"] == "running", bs.status_text(page)
    assert_no_errors(page, "/train while training")
    press_stop_and_check(page)
    bs.poll(lambda: page.evaluate(TRAIN_PLACES_JS, caption.decode())["headings"] and True, LIVE_S,
            what="the run headings after Stop")
    after = page.evaluate(TRAIN_PLACES_JS, caption.decode())
    assert len(after["captions"]) == 1 and len(after["headings"]) == 2, f"after Stop: {after}"


# Every plotly plot on the page and where it is: a chart of the page (inside a Streamlit element) or not.
PLOT_PLACES_JS = """() => Array.from(document.querySelectorAll('.main-svg')).map(svg =>
  !!svg.closest('[data-testid="stElementContainer"]'))"""


def test_home_warms_plotly_up_unseen_before_the_click(context, primed):
    """Before the demo button is pressed, Home has loaded plotly.js and drawn a grid like the demo's where nothing
    shows it (bnviz.ui.plot's warmUp), so that the first chart after the click is not plotly's first draw of such
    a figure; nothing of it is left: no plot outside the page's own charts, no chart with data, no error."""
    page = open_page(context, primed, "", "Batch normalization, live")
    page.wait_for_function("() => window.__bnvizWarm === 'drawn'", timeout=60_000, polling=100)
    bs.poll(lambda: all(page.evaluate(PLOT_PLACES_JS)), 10, what="the warm-up plot to be removed")
    assert page.evaluate("() => !document.querySelector('body > div[aria-hidden=\"true\"]')")
    assert not bs.has_plot_with_data(page)
    assert_no_errors(page, "/ after plotly's warm-up")


def test_home_demo_button_starts_live_charts(context, primed):
    lap = Clock("home")
    page = open_page(context, primed, "", "Batch normalization, live")
    bs.main_area(page).get_by_role("button", name="▶ Watch BN vs no BN").click()
    lap("demo button pressed")
    wait_for_first_data(page)
    first = read_live(page)
    lap(f"first chart with data; {first['status']}")
    assert first["status"] is not None and first["status"]["status"] == "running", bs.status_text(page)
    # the grid reserves its colorbar's margin (bnviz.figures.density): plotly did not have to widen it and draw again
    margins = page.evaluate("""() => { const el = document.querySelector('.st-key-home_grid .js-plotly-plot');
      return [el._fullLayout._size.r, el._fullLayout.margin.r]; }""")
    assert margins[0] == margins[1], f"plotly widened the right margin {margins[1]} px to {margins[0]} px"
    later = wait_for_progress(page, first)
    lap(f"charts changed; {later['status']}")
    assert_no_errors(page, "/ while the demo trains")
    bs.screenshot(page, "home-training", tries=3)
    # Home has no Stop button: stop the demo from Train & watch, in the same session.
    bs.nav_link(page, "Train & watch").click()
    bs.wait_for_title(page, "Train & watch", NAV_S)
    final = press_stop_and_check(page)
    lap(f"after Stop on Train & watch: {final}")
    assert "stopped" in final or "finished" in final, final


@pytest.mark.timeout(600)  # four page switches while training: each may take a minute on a busy machine
def test_running_job_survives_page_switch_and_other_pages_draw_it(context, primed):
    lap = Clock("switch")
    page = start_on_train(context, primed, 5000)
    lap("Start pressed")
    bs.poll(lambda: (bs.parse_status(bs.status_text(page)) or {}).get("step", 0) > 0, LIVE_S,
            what="the run on /train to make its first step")

    page.wait_for_function(bs.FRESH_CHART_WITH_DATA_JS, timeout=LIVE_S * 1000, polling=200)
    assert_no_errors(page, "/train while training")
    bs.screenshot(page, "train-training", tries=3)
    lap(f"running: {bs.status_text(page)}")
    bs.nav_link(page, "Gradients").click()
    bs.wait_for_title(page, "Gradients", NAV_S)
    lap("on Gradients")
    assert urllib.parse.urlparse(page.url).path.rstrip("/").endswith("/gradients"), page.url  # query: settings
    first = bs.poll(lambda: bs.parse_status(bs.status_text(page)), LIVE_S, what="a status line on Gradients")
    assert first["steps"] == 5000 and first["status"] == "running", f"not the run started on /train: {first}"
    bs.poll(lambda: (bs.parse_status(bs.status_text(page)) or {}).get("step", 0) > first["step"], LIVE_S,
            what="the run's step to grow while Gradients is shown")
    assert_no_errors(page, "/gradients while training")
    page.wait_for_function(bs.FRESH_CHART_WITH_DATA_JS, timeout=LIVE_S * 1000, polling=200)
    lap(f"still training on Gradients: {bs.status_text(page)}")
    bs.screenshot(page, "gradients-training", tries=3)

    # The other pages while the run trains (Home and Train & watch are shot by the tests above): no errors, and
    # the same run on each. Client-side navigation, so the session and its run are kept.
    for path, title, nav in bs.PAGES:
        if path in ("", "train", "gradients"):
            continue
        link = bs.nav_link(page, nav)
        assert link.count(), f"no '{nav}' link in the sidebar navigation: {nav_titles(page)}"
        link.click()
        bs.wait_for_title(page, title, NAV_S)
        if path == "runs":
            bs.wait_until_idle(page, 10)
            assert "still running" in page.locator('[data-testid="stAlert"]').first.inner_text(), \
                "Save & open runs does not say that training is still running"
        else:
            wait_or_explain(page, bs.FRESH_CHART_WITH_DATA_JS, NAV_S, f"a chart with data on /{path}")
            status = bs.parse_status(bs.status_text(page))
            assert status and status["steps"] == 5000, (f"/{path}: not the run started on /train (a new session?): "
                                                        f"{bs.status_text(page)}; {connection_log(page)}")
            page.wait_for_timeout(1000)  # let the page's first full run settle before the shot
        assert_no_errors(page, f"/{path} while training")
        bs.screenshot(page, f"{path}-training", tries=3)
        lap(f"/{path} shown and shot; {bs.status_text(page)}")
    lap(f"connection: {connection_log(page)}")

    bs.nav_link(page, "Train & watch").click()
    bs.wait_for_title(page, "Train & watch", NAV_S)
    final = press_stop_and_check(page)
    lap(f"after Stop: {final}")
    assert "stopped" in final, f"the 5,000-step run should still have been running: {final}"


def test_uploaded_image_zip_trains_live(context, primed, tmp_path):
    """A teacher uploads a zip of class folders on Train & watch, sees it summarised and selected, and trains on it."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    lap = Clock("upload")
    rng = np.random.default_rng(0)
    path = tmp_path / "colours.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, rgb in {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220)}.items():
            for i in range(30):  # 24 train images per class: enough for the default batch of 64
                pixels = np.clip(np.array(rgb) + rng.integers(-40, 41, (16, 16, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG")
                zf.writestr(f"{name}/{i}.png", buffer.getvalue())
    page = open_page(context, primed, "train", "Train & watch")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Use your own images").click()
    sidebar.locator('input[type="file"]').set_input_files(str(path))
    sidebar.get_by_text("90 images in 3 classes").wait_for(state="visible", timeout=LIVE_S * 1000)
    dataset = sidebar.get_by_label("Dataset", exact=True)  # a combobox: the selection is its input's value
    bs.poll(lambda: dataset.input_value() == "yours: colours.zip", 30, what="the upload to be the selected Dataset")
    lap("uploaded, summarised and selected")
    set_steps(page, 300)
    bs.main_area(page).get_by_role("button", name="▶ Start").click()
    wait_for_first_data(page)
    first = bs.poll(lambda: (live := read_live(page))["status"] and live, LIVE_S, what="a status line after Start")
    assert first["status"]["status"] == "running", bs.status_text(page)
    later = wait_for_progress(page, first)
    lap(f"charts changed; {later['status']}")
    assert_no_errors(page, "/train training on an uploaded zip")
    bs.screenshot(page, "train-own-images", tries=2)
    final = press_stop_and_check(page)
    assert "stopped" in final or "finished" in final, final
