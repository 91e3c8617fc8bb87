"""Page setup shared by every page: wide layout and fonts that read from the back of a lecture hall."""

from __future__ import annotations

import streamlit as st

from .. import charts

CSS = """
<style>
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.1rem; }
/* live charts redraw twice a second: do not fade them out while they refresh */
[data-stale="true"], [data-stale="true"] * { opacity: 1 !important; transition: none !important; }
.block-container { padding-top: 2.2rem; max-width: 1500px; }
[data-testid="stCaptionContainer"] p { font-size: 1rem; }
</style>
"""


def _leave_legacy_pages_mode() -> None:
    """On a freshly started server, a first visit to a deep link (/train) is served by Streamlit's old
    pages/-folder mode, which runs the page file without app.py (no sections in the sidebar, and every later visitor
    gets the same). Switch that mode off and rerun: app.py then runs and st.navigation resolves the same page (both
    modes hash a page by its url path)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without it: nothing to fix
        return
    first_run = not st.session_state.get("bnviz_seen")  # a session's first run carries no click to lose
    st.session_state["bnviz_seen"] = True
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if first_run:
            st.rerun()


def page_header(title: str, intro: str) -> None:
    """The page's title and its short, correct explanation."""
    _leave_legacy_pages_mode()
    st.markdown(CSS, unsafe_allow_html=True)
    st.title(title)
    st.markdown(intro)


NARROW_PX = 480  # width to plan for a chart in one of two columns (a 1280 px projector, sidebar open)


def show(fig, key: str, narrow: bool = False, container=None) -> None:
    """Draw a bnviz figure as built (Streamlit's theme would replace its projector-sized styling); narrow: the chart
    sits in one of two columns, so a long title wraps instead of being cut off; container: where to draw it."""
    if narrow:
        charts.fit_width(fig, NARROW_PX)
    (container or st).plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})
