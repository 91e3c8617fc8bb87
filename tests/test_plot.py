"""bnviz/ui/plot.py: the live chart component serves plotly.js from the app's static folder, never the network."""

from __future__ import annotations

import plotly.offline

from bnviz.ui import plot


def test_the_served_bundle_is_plotly_js_of_the_installed_plotly_version():
    assert plot.bundle_version() == plotly.offline.get_plotlyjs_version()  # update static/ when plotly is upgraded
    assert plot._component() is not None
    assert plot.SERVED_URL.startswith("app/static/") and "://" not in plot.SERVED_URL
    assert plot.SERVED_URL.endswith(plot.BUNDLE.name)
    assert (plot.BUNDLE.parent / "plotly-LICENSE.txt").read_text().startswith("MIT License")
    assert "Plotly.react" in plot.RENDER_JS  # updates in place
    assert "http" not in plot.RENDER_JS + plot.JS  # no URL of another host


def test_bundle_version_reads_the_header(tmp_path):
    full = tmp_path / "plotly.min.js"
    full.write_text("/**\n* plotly.js v4.1.1\n* Copyright 2012-2026, Plotly, Inc.\n*/\n(function(){})")
    cartesian = tmp_path / "cartesian.js"
    cartesian.write_text("/**\n* plotly.js (cartesian - minified) v3.0.2\n*/")
    assert plot.bundle_version(full) == "4.1.1" and plot.bundle_version(cartesian) == "3.0.2"
    (tmp_path / "other.js").write_text("console.log('no header')")
    assert plot.bundle_version(tmp_path / "other.js") is None
    assert plot.bundle_version(tmp_path / "missing.js") is None


def test_a_charts_data_goes_as_bytes_and_comes_back_whole():
    """draw() sends the component bytes (pack): the rest of the data as JSON, then the figure's JSON as it is;
    unpack (the browser's RENDER_JS does the same) gives both back, texts with newlines and non-ASCII included."""
    import json

    import numpy as np
    import plotly.io as pio

    from bnviz import figures

    with figures.plain_figures():
        fig = figures.preview("Loss − γ and β", "first line\nsecond line")
    fig["data"] = [{"type": "scatter", "x": np.arange(3.0), "y": np.array([1.0, 2.0, 0.5]), "name": "a\nb"}]
    figures.style.typed_arrays(fig)
    spec = pio.to_json(plot.compact(fig), validate=False)
    rest = {"src": plot.SERVED_URL, "config": plot.CONFIG, "texts": {"summary": "√ two\nlines", "tables": []}}
    data = plot.pack(spec, rest)
    assert isinstance(data, bytes)
    back = plot.unpack(data)
    assert back["spec"] == spec and json.loads(back["spec"])["data"][0]["name"] == "a\nb"
    assert {k: v for k, v in back.items() if k != "spec"} == rest
    assert 'text.indexOf("\\n")' in plot.RENDER_JS and "unpack(data)" in plot.RENDER_JS


def test_the_preload_script_survives_streamlits_sanitizer():
    """DOMPurify drops a <script> whose text has "<" before a letter or "/": the page-wide chart code must have none,
    and each one it had was inside a string, template or regex literal (where "\\x3c" is the same character)."""
    import re

    safe = plot._inline_safe(plot.RENDER_JS)
    assert not re.search(r"<[/\w]", safe)
    for line in plot.RENDER_JS.splitlines():
        if re.search(r"<[/\w]", line):
            assert re.search(r"['\"`/]<|['\"`/][^'\"`]*<[/\w]", line), line


def test_the_preload_script_warms_plotly_up_with_a_grid_like_homes():
    """The preload script hands RENDER_JS's warmUp the figure it draws unseen (bnviz.figures'
    distribution_grid_warm_up, its template named like a live figure's), and all of it survives the sanitizer."""
    import json
    import re

    html = plot._preload_html()
    script = html.split("<script>", 1)[1].rsplit("</script>", 1)[0]
    assert not re.search(r"<[/\w]", script)
    call = script[script.rindex("warmUp("):]
    figure = json.loads(call[len("warmUp("):].split(", ", 1)[1].rsplit(", {", 1)[0].replace("\\x3c", "<"))
    assert figure["layout"]["template"] == plot.TEMPLATE_REF and len(figure["layout"]["images"]) == 6


def test_the_no_fade_rule_holds_only_the_stale_container_opaque():
    """Every refresh of a live page marks the containers of its charts stale (data-stale) and unmarks them as they
    arrive, twice a second. A rule keyed on data-stale that reaches into an element's descendants makes the browser
    recalculate the style of every node of every live chart each time (in one browser session watching /train,
    alternated: style recalculation 0.063-0.069 s/s against 0.010-0.012 without it); the container alone is what
    Streamlit fades, so holding it opaque is enough."""
    import re

    from bnviz.ui import page

    css = re.sub(r"/\*.*?\*/", "", page.CSS + page.PRESENTER_CSS + plot.TEXT_CSS + plot.PRELOAD_CSS, flags=re.S)
    stale = [sel.strip() for rule in re.findall(r"([^{}]+)\{", css) for sel in rule.split(",") if "data-stale" in sel]
    assert '[data-stale="true"]' in stale  # live charts are not faded out while they refresh
    reaching = [sel for sel in stale if not re.fullmatch(r'\[data-stale="true"\]', sel)]
    assert not reaching, f"rules on the descendants of a stale element: {reaching}"
