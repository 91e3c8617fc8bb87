"""The page's settings in its URL: open a shared link, keep the address bar in sync, offer the link to copy.

`app.py` wraps every page: `link = SharedLink(page.url_path)` before the page runs puts the URL's settings into
the widgets' state (and draws the presenter-mode toggle); `link.publish()` after it writes the widgets' values back
into the URL. What a link carries and how it is parsed is `bnviz.ui.link_params` (no Streamlit, unit-tested).

Why not `bind="query-params"` (Streamlit 1.67 widgets have it; checked against its source and with AppTest):
- an invalid value (`lr=banana`, an out-of-range `seed`, `norm=<script>`) is silently dropped from the URL and
  the widget shows its own default: the app is never told, so it cannot show which settings were ignored;
- the URL key is the widget key (`cfg_batch_size`, `cmpA_lr`), and a select_slider with float options only
  accepts the exact text of its `format_func` (`lr=0.5` works, `lr=5e-1` is dropped);
- a value the app puts into `st.session_state` (presets, our defaults, which are not the widgets' first options)
  wins over the URL on first load, and is not written to the URL afterwards (streamlit#14670); a bound
  parameter cannot be set through `st.query_params` at all (it raises);
- a bound value is "default" when it equals the widget's own default, so a link cannot say "lr=0.0001" when the
  slider's first option is 0.0001 but the app's default is 0.05;
- rules between settings (groups must divide width, no instance norm in an MLP) are out of its reach.
So this module reads `st.query_params` once per opened link and writes it with `st.query_params.from_dict`.

When is the URL read? On a session's first run, and whenever it carries parameters that this session did not
write for the page (the browser's back button). A page switch from the sidebar arrives with an empty query (the
navigation drops it); that is not a link to apply, so the session's settings stay and are written into the new
page's URL. Presenter mode is session state, so it stays on across page switches and is written into every URL.

Page switches: in Streamlit 1.67 the sidebar widgets that Train, Gradients and Inside BatchNorm share (same keys,
`persist_state="session"`) came back at their first option (lr 1e-4, batch 2, depth 1) after switching from one of
these pages to another in a real browser (AppTest does not show it). So on a page switch the experiment the
previous page last showed (kept as plain session state, not widget state) is put back into the widgets' state
before they are drawn; a value assigned that way wins over whatever the browser sends.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from .choices import twin_default
from .controls import OWN_SETTINGS, config_key, seed_widgets
from .link_params import PAGE_LINKS, PLAIN, Experiment, PageLink, from_params, left_out, to_params
from .page import NOTES_KEY, PRESENT_KEY, presenting

WIDGET_PREFIX = {"": "cfg", "a.": "cmpA", "b.": "cmpB"}  # a link's key prefix -> the config widgets' prefix
TWIN_PREFIX = "twin"
PRESET_KEY = "cfg_preset"
STATE_KEY = "bnviz_link_state"  # session state: {"opened": bool, "published": {url path: params}, "page": path}


class SharedLink:
    """The URL of one page run: read before the page's widgets are drawn, written after."""

    def __init__(self, url_path: str):
        self.url_path = url_path
        self.page: PageLink = PAGE_LINKS.get(url_path, PLAIN)
        self.state = st.session_state.setdefault(STATE_KEY, {"opened": False, "published": {}, "page": None})
        params = _current_params()
        if not self.state["opened"] or (params and params != self.state["published"].get(url_path)):
            self._open(params)
        elif self.state["page"] != url_path:
            st.session_state[NOTES_KEY] = []  # notes belong to the page the link opened; gone once you leave it
            carried = _from_state(self.page)
            if carried is not None:  # see "Page switches" above
                _apply(carried, self.page)
        self.state["page"] = url_path
        st.sidebar.toggle("Presenter mode", key=PRESENT_KEY, persist_state="session",
                          help="Larger text and charts, fewer controls: for a projector. Links keep it on.")
        self.slot = st.sidebar.container()

    def _open(self, params: dict[str, list[str]]) -> None:
        exp, notes = from_params(params, self.page)
        _apply(exp, self.page)
        st.session_state[NOTES_KEY] = notes
        self.state["opened"] = True

    def publish(self) -> None:
        """Write the settings now in the widgets into the URL, and show the link to copy."""
        exp = _from_state(self.page)
        if exp is None:
            return
        params = to_params(exp, self.page)
        if {k: [v] for k, v in params.items()} != _current_params():
            st.query_params.from_dict(params)
        self.state["published"][self.url_path] = {k: [v] for k, v in params.items()}
        if self.page is not PLAIN:
            self._show_link(params, left_out(exp))

    def _show_link(self, params: dict[str, str], missing: list[str]) -> None:
        base = st.context.url or f"/{self.url_path}"  # None outside a browser (AppTest)
        url = f"{base}?{urlencode(params)}" if params else base
        with self.slot.expander("Link to this experiment", icon=":material/link:", expanded=not presenting()):
            st.code(url, language=None, wrap_lines=True)
            st.caption("Copy it (button at the right): it opens this page with these settings and seed, so the "
                       "same run. The address bar holds the same link.")
            for text in missing:
                st.caption(f"Note: {text}.")


def _current_params() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def _apply(exp: Experiment, page: PageLink) -> None:
    """Put the experiment into the widgets' state (before they are drawn in this run)."""
    for prefix, cfg in exp.configs.items():
        seed_widgets(WIDGET_PREFIX[prefix], cfg)
    if page.twin:
        st.session_state[f"{TWIN_PREFIX}_on"] = exp.twin is not None
        if exp.twin is not None:
            name, value = exp.twin
            st.session_state[f"{TWIN_PREFIX}_field"] = name
            st.session_state[f"{TWIN_PREFIX}_value_{name}"] = value
    if page.preset:
        st.session_state[PRESET_KEY] = exp.preset or OWN_SETTINGS
    st.session_state[PRESENT_KEY] = exp.present
    for view in page.views:
        st.session_state[view.widget] = exp.views.get(view.widget, view.default)


def _from_state(page: PageLink) -> Experiment | None:
    """The experiment the page's widgets show now (None if the page did not draw them in this run)."""
    configs = {}
    for prefix in page.configs:
        cfg = st.session_state.get(config_key(WIDGET_PREFIX[prefix]))
        if cfg is None:
            return None
        configs[prefix] = cfg
    twin = None
    if page.twin and st.session_state.get(f"{TWIN_PREFIX}_on"):
        name = st.session_state.get(f"{TWIN_PREFIX}_field", "norm")
        twin = (name, st.session_state.get(f"{TWIN_PREFIX}_value_{name}", twin_default(configs[""], name)))
    preset = st.session_state.get(PRESET_KEY) if page.preset else None
    views = {view.widget: st.session_state.get(view.widget, view.default) for view in page.views}
    return Experiment(configs, twin, None if preset == OWN_SETTINGS else preset, presenting(), views)

