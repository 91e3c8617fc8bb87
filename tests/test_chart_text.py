"""No chart text overlaps another or is cut off by its chart, in the four views a class uses.

For every Plotly chart on a page, the boxes of its title, annotations (subplot titles, notes, messages), axis
titles, colorbar titles and legend entries are measured in a real headless Chromium (browser_support.chart_texts):
no two may overlap and none may reach outside the chart's SVG; nor may an axis's tick labels or title reach into
another subplot's plot area (a narrow chart's right-hand y-axis over its left neighbour). Every page with charts is
checked idle; Home and Train & watch also after a short run, and a few experiment sections after theirs (EXPERIMENTS).
Views: 1400 and 1280 px wide, presenter mode at 1280x720, a 390 px phone.
"""

from __future__ import annotations

import time

import browser_support as bs
import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not bs.chromium_available(), reason=f"{bs.CHROMIUM} is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

VIEWS = {"1400": ({"width": 1400, "height": 900}, ""), "1280": ({"width": 1280, "height": 800}, ""),
         "presenter 1280x720": ({"width": 1280, "height": 720}, "present=1"),
         "phone 390": ({"width": 390, "height": 844}, "")}
IDLE_PAGES = ("", "train", "compare", "gradients", "inside-bn", "bn-steps", "zoo")  # the pages with charts when idle
# To keep the test short: at 1400 px every chart has more room than at 1280 px with the same layout, so only the
# pages with a run (whose charts hold the most text: legends, notes) are measured; in presenter mode the live pages'
# idle previews (one title and a message, the same builder on every page, measured at 1280 px and on the phone) are
# left out.
IDLE_AT = {"1400": (), "presenter 1280x720": ("", "bn-steps", "zoo")}
# (url path with its query, the button that starts a short run, measured when: "training" and/or "finished"; Home's
# finished 400-step run has four step labels per grid column, which on a phone were rotated into each other)
RUNS = (("", "home_demo", ("training", "finished")), ("train?steps=60", "train_start", ("finished",)))
# Experiment sections measured after their run (url path, the sections' Run buttons): the charts whose text ran
# off a phone's chart or into each other in presenter mode. Each runs once per server (its result is cached).
EXPERIMENTS = (("evidence", ("f1", "init")), ("backprop", ("bias",)), ("zoo", ("zoo",)))
EXPERIMENT_S = 240
# Known exceptions: (view, chart title start, text start, why it is left). Empty: every chart text fits.
KNOWN: tuple[tuple[str, str, str, str], ...] = ()
LOAD_S, RUN_S = 90, 60
TRAINING_STEP = 120  # a run "training" is measured from this step on: three-digit step labels (two fitted on a phone)


# `server` and `browser`: the shared module-scoped fixtures of conftest.py


def _url(server, path: str, query: str) -> str:
    joined = "&".join(q for q in (path.partition("?")[2], query) if q)
    return f"{server.url}/{path.partition('?')[0]}" + (f"?{joined}" if joined else "")


def _settled(page) -> None:
    """The page's charts are drawn (none blank) and no script run is pending."""
    page.locator("h1").first.wait_for(timeout=LOAD_S * 1000)
    bs.wait_until_idle(page, 30)
    page.wait_for_function(f"() => ({bs.CHART_STATE_JS})().every(c => c.height === 0 || !c.blank)",
                           timeout=30_000, polling=200)
    page.wait_for_timeout(600)  # a chart whose text did not fit is drawn once more, wrapped


def _problems(page, view: str, where: str) -> list[str]:
    found = []
    for chart in bs.chart_texts(page):
        for problem in bs.text_problems(chart):
            if not any(view == v and chart["title"].startswith(t) and s in problem for v, t, s, _ in KNOWN):
                found.append(f"{where} | {chart['title'][:50]} | {problem}")
    return found


def _wait_for_run(page, when: str) -> None:
    """Wait until the run has drawn a few refreshes ("training") or has ended ("finished"), charts settled."""
    def reached() -> bool:
        status = bs.parse_status(bs.status_text(page)) or {}
        return status.get("status") == "finished" or (when == "training" and status.get("step", 0) >= TRAINING_STEP)

    bs.poll(reached, RUN_S, 0.5, f"the short run to be {when}")
    if when == "finished":
        _settled(page)
    else:  # charts redraw twice a second while it trains: one refresh more, so each is drawn at its fitted size
        page.wait_for_timeout(1200)


@pytest.mark.parametrize("view", list(VIEWS))
def test_no_chart_text_overlaps_or_is_cut_off(server, browser, view):
    viewport, query = VIEWS[view]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    problems, t0 = [], time.monotonic()
    try:
        for path in IDLE_AT.get(view, IDLE_PAGES):
            page.goto(_url(server, path, query), wait_until="domcontentloaded", timeout=LOAD_S * 1000)
            _settled(page)
            problems += _problems(page, view, f"/{path} idle")
        for path, button, whens in RUNS:
            page.goto(_url(server, path, query), wait_until="domcontentloaded", timeout=LOAD_S * 1000)
            _settled(page)
            page.locator(f".st-key-{button} button").first.evaluate("b => b.click()")  # under a phone's sidebar too
            for when in whens:
                _wait_for_run(page, when)
                problems += _problems(page, view, f"/{path} {when}")
        for path, keys in EXPERIMENTS:
            page.goto(_url(server, path, query), wait_until="domcontentloaded", timeout=LOAD_S * 1000)
            _settled(page)
            for key in keys:
                page.locator(f".st-key-{key}_run button").first.evaluate("b => b.click()")
                page.wait_for_timeout(500)
                page.wait_for_function("() => !document.querySelector('[data-testid=\"stProgress\"]')",
                                       timeout=EXPERIMENT_S * 1000, polling=500)
            _settled(page)
            problems += _problems(page, view, f"/{path} after {', '.join(keys)}")
    finally:
        print(f"{view}: {time.monotonic() - t0:.0f} s")
        if problems:
            bs.SCREENSHOT_DIR.mkdir(exist_ok=True)
            bs.screenshot(page, f"FAILED-chart-text-{view.replace(' ', '-')}")
        context.close()
    assert not problems, "\n".join(problems)


def test_the_check_sees_overlap_and_clipping():
    """The measure itself: two boxes that share more than the slack overlap; a box past the edge is cut off."""
    chart = {"title": "t", "width": 100, "height": 50, "texts": [
        {"kind": "title", "text": "a", "x0": 0, "y0": 0, "x1": 40, "y1": 20},
        {"kind": "annotation", "text": "b", "x0": 30, "y0": 10, "x1": 60, "y1": 30},
        {"kind": "axis title", "text": "c", "x0": 80, "y0": 30, "x1": 105, "y1": 45}]}
    problems = bs.text_problems(chart)
    assert len(problems) == 2
    assert problems[0].startswith("cut off: axis title 'c'") and problems[1].startswith("overlap: title 'a'")
    chart["texts"] = chart["texts"][:1]
    assert bs.text_problems(chart) == []


def test_the_check_sees_axis_labels_inside_another_subplot():
    """A right-hand subplot's y tick label drawn over the left subplot's plot area is a problem; the same label in the
    gap between the two, or touching the neighbour's edge (less than LABEL_REACH_PX in), is not."""
    chart = {"title": "t", "width": 300, "height": 200, "texts": [],
             "plots": [{"subplot": "xy", "x0": 40, "y0": 20, "x1": 140, "y1": 180},
                       {"subplot": "x2y2", "x0": 170, "y0": 20, "x1": 290, "y1": 180}],
             "labels": [{"subplot": "x2y2", "text": "y2 100%", "x0": 125, "y0": 20, "x1": 161, "y1": 34}]}
    problems = bs.text_problems(chart)
    assert len(problems) == 1 and problems[0].startswith("in another subplot: axis label 'y2 100%' of x2y2 reaches 15")
    for x0 in (142, 140 - bs.LABEL_REACH_PX + 1):
        chart["labels"][0].update(x0=x0, x1=x0 + 36)
        assert bs.text_problems(chart) == []


def test_the_check_sees_tick_labels_over_a_text_or_another_axis_tick_labels():
    """A grid column's last step label run into the next column's first (a phone), or rotated labels over the
    shared axis title under them, are problems; tick labels of one axis side by side, and apart from others, are not."""
    chart = {"title": "t", "width": 390, "height": 300, "plots": [],
             "texts": [{"kind": "annotation", "text": "training step (every column)", "x0": 60, "y0": 262, "x1": 330,
                        "y1": 280}],
             "labels": [{"subplot": "xy", "axis": "x", "tick": True, "text": "x 300", "x0": 150, "y0": 240,
                         "x1": 162, "y1": 266},
                        {"subplot": "x2y2", "axis": "x2", "tick": True, "text": "x2 0", "x0": 158, "y0": 240,
                         "x1": 170, "y1": 250},
                        {"subplot": "x2y2", "axis": "x2", "tick": True, "text": "x2 100", "x0": 180, "y0": 240,
                         "x1": 192, "y1": 250}]}
    problems = bs.text_problems(chart)
    assert len(problems) == 2, problems
    assert problems[0].startswith("overlap: tick label 'x 300' and annotation 'training step")
    assert problems[1].startswith("overlap: tick label 'x 300' and tick label 'x2 0'")
    chart["labels"][0].update(x0=120, x1=132, y1=250)  # not rotated, apart from the next column
    assert bs.text_problems(chart) == []


FIT_ROUNDS_JS = """async ([layout, data]) => {
  const el = document.getElementById('c');
  const fit = {title: 0, notes: {}}, rounds = [];
  for (let round = 0; round < 4; round++) {  // as bnviz.ui.plot draws: draw, measure, draw again while it changed
    await Plotly.react(el, data, fitLayout(layout, fit));
    const labels = Array.from(el.querySelectorAll('g.xtick text'));
    rounds.push({shown: labels.map((t) => t.textContent),
                 turned: labels.some((t) => /rotate\\(/.test(t.getAttribute('transform') || ''))});
    if (!measureFit(el, layout, fit)) break;
  }
  return rounds;
}"""


def _fit_rounds(browser, layout: dict, data: list) -> list[dict]:
    """bnviz.ui.plot's fitting of one figure in a div of the layout's width: per draw, the x tick labels shown and
    whether plotly turned them on their side."""
    from bnviz.ui.plot import BUNDLE, RENDER_JS

    page = browser.new_page(viewport={"width": 400, "height": 600})
    try:
        page.set_content(f"<div id='c' style='width:{layout['width']}px;height:{layout['height']}px'></div>")
        page.add_script_tag(path=str(BUNDLE))
        page.add_script_tag(content=RENDER_JS)
        return page.evaluate(FIT_ROUNDS_JS, [layout, data])
    finally:
        page.close()


def test_step_labels_that_do_not_fit_a_narrow_grid_are_thinned_until_they_lie_flat(browser):
    """bnviz.ui.plot's fitting, on a 200 px chart of two columns with eight step labels each: plotly turns them on
    their side, so every other one is dropped (the first kept) until they are drawn level."""
    ticks = list(range(0, 800, 100))
    layout = {"width": 200, "height": 300, "margin": {"l": 10, "r": 10, "t": 10, "b": 60}, "yaxis2": {"anchor": "x2"},
              "xaxis": {"domain": [0, 0.45], "tickvals": ticks, "range": [0, 800]},
              "xaxis2": {"domain": [0.55, 1], "tickvals": ticks, "range": [0, 800]}}
    data = [{"x": [0, 800], "y": [0, 1]}, {"x": [0, 800], "y": [0, 1], "xaxis": "x2", "yaxis": "y2"}]
    rounds = _fit_rounds(browser, layout, data)
    assert rounds[0]["turned"] and len(rounds[0]["shown"]) == 8
    assert not rounds[-1]["turned"] and rounds[-1]["shown"][0] == "0" and 2 <= len(rounds[-1]["shown"]) < 8


def test_a_narrow_charts_own_step_ticks_are_halved_until_they_lie_flat(browser):
    """An x axis plotly ticks by itself (the loss chart's steps), 110 px wide: plotly turns "0, 100, 200, 300" on
    their side, so the chart is drawn again with at most half as many ticks, level."""
    layout = {"width": 110, "height": 300, "margin": {"l": 30, "r": 10, "t": 10, "b": 60},
              "xaxis": {"title": {"text": "step"}}}
    rounds = _fit_rounds(browser, layout, [{"x": [0, 100, 200, 299], "y": [2, 1, 0.5, 0.1]}])
    assert rounds[0]["turned"] and rounds[0]["shown"] == ["0", "100", "200", "300"]
    assert not rounds[-1]["turned"] and rounds[-1]["shown"] == ["0", "200"]
