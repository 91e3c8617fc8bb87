"""Draw Plotly figures that update in place (Plotly.react) instead of being rebuilt on every refresh.

Why: `st.plotly_chart` gives each chart an element id that includes a hash of the figure, and its frontend reads
the figure only when the element mounts. So every new figure (a live chart twice a second) unmounts the old chart
and mounts a new one: a full `Plotly.newPlot`, a blank chart in between, and on a busy two-core laptop a chart
that can be replaced again before it was ever drawn. This small `st.components.v2` component keeps one element per
key and hands each new figure to `Plotly.react`, which redraws in place (measured in Chromium: about half the time
of a new plot, and no blank frames).

Plotly.js comes from the plotly Python package (the same version that draws `fig.to_html()`), copied once into
the app's `static/` folder, which Streamlit serves at `app/static/` (`server.enableStaticServing` in
.streamlit/config.toml): nothing is fetched from the network. If the copy is impossible (a read-only install),
`draw` falls back to `st.plotly_chart`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly
import plotly.io as pio
import streamlit as st

APP_DIR = Path(__file__).resolve().parents[2]
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SERVED_JS = APP_DIR / "static" / "plotly.min.js"
SERVED_URL = "app/static/plotly.min.js"  # relative to the page's base URL (works under server.baseUrlPath too)
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

JS = """
function plotlyReady(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__bnvizPlotly) {
    window.__bnvizPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(src, document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { window.__bnvizPlotly = null; reject(new Error("plotly.js did not load")); };
      document.head.appendChild(script);
    });
  }
  return window.__bnvizPlotly;
}

export default function ({ parentElement, data }) {
  const el = parentElement.querySelector(".bnviz-plot");
  const figure = JSON.parse(data.spec);
  // newest figure wins: a slow draw must not overwrite a newer one that arrived meanwhile
  el.__bnvizLatest = figure;
  plotlyReady(data.src).then((Plotly) => {
    if (el.__bnvizLatest !== figure) return;
    return Plotly.react(el, figure.data, figure.layout, data.config);
  }).catch((err) => { el.textContent = "This chart could not be drawn: " + err.message; });
}
"""


@st.cache_resource(show_spinner=False)
def _component():
    """The component, registered once per server, or None when plotly.js cannot be served from static/."""
    try:
        if not SERVED_JS.exists() or SERVED_JS.stat().st_size != PLOTLY_JS.stat().st_size:
            SERVED_JS.parent.mkdir(exist_ok=True)
            tmp = SERVED_JS.with_suffix(".part")
            shutil.copyfile(PLOTLY_JS, tmp)
            tmp.replace(SERVED_JS)
    except OSError:
        return None
    return st.components.v2.component("bnviz_plot", html="<div class='bnviz-plot'></div>", js=JS,
                                      isolate_styles=False)  # plotly.js styles live in the page's <head>


def draw(fig, key: str, container=None) -> None:
    """Draw `fig` under `key`; the same key next time updates this chart in place."""
    component = _component()
    if component is None or not st.get_option("server.enableStaticServing"):
        (container or st).plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})
        return
    data = {"spec": pio.to_json(fig, validate=False), "src": SERVED_URL, "config": CONFIG}
    if container is None:
        component(data=data, key=key, width="stretch")
    else:
        with container:
            component(data=data, key=key, width="stretch")
