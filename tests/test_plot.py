"""bnviz/ui/plot.py: the live chart component serves plotly.js from the app's static folder, never the network."""

from __future__ import annotations

from bnviz.ui import plot


def test_plotly_js_is_copied_from_the_installed_plotly_and_served_locally():
    assert plot._component() is not None
    assert plot.SERVED_JS.read_bytes() == plot.PLOTLY_JS.read_bytes()
    assert plot.SERVED_URL.startswith("app/static/") and "://" not in plot.SERVED_URL
    assert "Plotly.react" in plot.JS and "http" not in plot.JS  # updates in place; no URL of another host
