"""Page setup shared by every page: wide layout and fonts that read from the back of a lecture hall.

Presenter mode (`presenting()`, switched by `bnviz.ui.shared_link`) makes text and charts larger still, and folds each
page's introduction into a collapsed expander, for a projector at 1280x720.
"""

from __future__ import annotations

import html
import threading

import streamlit as st

from .. import figures
from . import plot

CSS = """
<style>
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.1rem; }
/* live charts redraw twice a second: do not fade them out while they refresh. Streamlit fades an element's own
   container (data-stale), so only that is held opaque: a rule on its descendants made the browser recalculate the
   style of every node of every live chart whenever a refresh marked it stale, and again when it arrived (and held
   plotly's own opacities, its toolbar's, at 1 meanwhile) */
[data-stale="true"] { opacity: 1 !important; transition: none !important; }
.block-container { padding-top: 2.2rem; max-width: 1500px; }
[data-testid="stCaptionContainer"] p { font-size: 1rem; }
.bnviz-sr { SR_ONLY }
/* WCAG 2.2 AA text contrast (4.5:1): Streamlit draws captions at 60 % opacity (3.9:1 on white) and the labels of
   disabled widgets in a pale grey (2.3:1); both stay lighter than body text, but readable */
[data-testid="stCaptionContainer"] { opacity: 1 !important; color: #5d5b59 !important; }
[data-testid="stWidgetLabel"][disabled], [data-testid="stWidgetLabel"][disabled] p,
[data-testid="stSliderThumbValue"][disabled], [data-disabled="true"] [data-testid="stSliderTickBar"] p {
  color: #6e6c6a !important; }
/* a visible keyboard focus on every control (Streamlit's own focus ring is faint on some widgets) */
:is(a, button, input, select, textarea, summary, [tabindex="0"], [role="radio"], [role="checkbox"],
    [role="slider"], [role="tab"]):focus-visible { outline: 3px solid #0072B2 !important; outline-offset: 2px; }
</style>
""".replace("SR_ONLY", plot.SR_ONLY_CSS)  # visually hidden text, read by screen readers (the live status)
PRESENTER_CSS = """
<style>
[data-testid="stMarkdown"] p, [data-testid="stMarkdown"] li, [data-testid="stAlert"] p { font-size: 1.45rem; }
[data-testid="stCaptionContainer"] p { font-size: 1.25rem; }
[data-testid="stBaseButton-primary"] p, [data-testid="stBaseButton-secondary"] p { font-size: 1.3rem; }
h1 { font-size: 2.3rem !important; }
.block-container { padding-top: 1.2rem; }
</style>
"""
PRESENT_KEY = "bnviz_present"  # session state: presenter mode on (set by bnviz.ui.shared_link from the URL or toggle)
NOTES_KEY = "bnviz_link_notes"  # session state: what the opened link asked for that could not be used
# Plotly text in presenter mode: bnviz.figures draws 16 px text. Its titles (22 px) and axis titles (18 px) stay:
# larger ones were cut off on half-width charts and beside the shorter ones (screenshots at 1280x720).
PRESENTER_FONT_PX = 18


def presenting() -> bool:
    """True when presenter mode is on in this session."""
    return bool(st.session_state.get(PRESENT_KEY))


_RUN = threading.local()  # per script thread: did app.py start this run? (each session runs in its own thread)


def mark_app_run() -> None:
    """Called first thing by app.py: this run goes through st.navigation (not Streamlit's legacy pages/ mode)."""
    _RUN.via_app = True


def _leave_legacy_pages_mode() -> None:
    """On a freshly started server, a first visit to a deep link (/train) is served by Streamlit's old
    pages/-folder mode, which runs the page file without app.py (no sections in the sidebar, no shared-link
    settings, and every later visitor gets the same). Switch that mode off and rerun: app.py then runs and
    st.navigation resolves the same page (both modes hash a page by its url path).

    Whether *this* run skipped app.py is told by `mark_app_run`, not by the server-wide switch: several sessions
    that open links at the same moment on a fresh server all start in the old mode, and only the first of them
    sees the switch still on."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without it: nothing to fix
        return
    legacy_run = not getattr(_RUN, "via_app", False)
    _RUN.via_app = False
    first_run = not st.session_state.get("bnviz_seen")  # a session's first run carries no click to lose
    st.session_state["bnviz_seen"] = True
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        legacy_run = True
    if legacy_run and first_run:
        st.rerun()


# Regions that scroll sideways (a formula or a table wider than its column) must be reachable by keyboard, or a
# keyboard user cannot read their hidden part (axe: scrollable-region-focusable): Streamlit's st.latex and st.table
# scroll without being focusable, so each such region gets tabindex=0 and a name once it overflows. Installed once
# per browser tab; watches the page for new or resized elements.
A11Y_JS = """
(() => {
  if (window.__bnvizA11y) return;
  window.__bnvizA11y = true;
  const SELECTOR = '.katex-display, [data-testid="stTable"] > div, .stTable > div';
  let count = 0;
  const mark = () => {
    for (const el of document.querySelectorAll(SELECTOR)) {
      const scrolls = el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight;
      if (scrolls && !el.hasAttribute('tabindex')) {
        el.tabIndex = 0;
        el.setAttribute('role', 'region');
        count += 1;  // landmarks need distinct names
        el.setAttribute('aria-label', (el.matches('.katex-display') ? 'formula ' : 'table ') + count + ' (scrolls)');
      }
    }
  };
  let pending = null;
  const later = () => { if (!pending) pending = setTimeout(() => { pending = null; mark(); }, 250); };
  new MutationObserver(later).observe(document.body, {childList: true, subtree: true});
  window.addEventListener('resize', later);
  mark();
})();
"""


def a11y_fixes() -> None:
    """Page-wide accessibility fixes that need the browser (A11Y_JS); a hidden element, like plot.preload's."""
    st.html(f'<span class="{plot.PRELOAD_MARK}"></span><style>{plot.PRELOAD_CSS}</style><script>{A11Y_JS}</script>',
            unsafe_allow_javascript=True)


def page_header(title: str, intro: str) -> None:
    """The page's title and its short, correct explanation."""
    _leave_legacy_pages_mode()
    st.markdown(CSS + (PRESENTER_CSS if presenting() else ""), unsafe_allow_html=True)
    plot.preload()
    a11y_fixes()
    st.title(title)
    if presenting():
        with st.expander("About this page"):
            st.markdown(intro)
    else:
        st.markdown(intro)
    notes = st.session_state.get(NOTES_KEY)
    if notes:
        st.warning("This link asked for settings the app cannot use, so they keep their defaults:\n\n"
                   + "\n".join(f"- {note}" for note in notes), icon=":material/link_off:")


def tab_heading(text: str) -> None:
    """A tab's name as a heading for screen readers (level 2, visually hidden: the tab shows it), so the headings
    inside a tab follow the page's title in order."""
    st.markdown(f'<h2 class="bnviz-sr">{html.escape(text)}</h2>', unsafe_allow_html=True)


NARROW_PX = 480  # width to plan for a chart in one of two columns (a 1280 px projector, sidebar open)


def show(fig, key: str, narrow: bool = False, container=None) -> None:
    """Draw a bnviz figure as built (Streamlit's theme would replace its projector-sized styling); narrow: the chart
    sits in one of two columns, so a long title wraps instead of being cut off; container: where to draw it.
    Larger text in presenter mode."""
    if narrow and not plot.fits_titles():  # the live chart component wraps titles at the chart's real width
        figures.fit_width(fig, NARROW_PX)
    if presenting():
        figures.enlarge_text(fig, PRESENTER_FONT_PX)
    plot.draw(fig, key, container)
