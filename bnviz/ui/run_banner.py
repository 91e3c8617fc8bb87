"""The banner that says when the charts no longer show what the page's settings say.

A lecturer who changes a setting (or shares the page's link, which follows the settings) after a run would otherwise
project one experiment and hand out another. Like the saved-run banner, it names what is on screen; it says what
differs, and offers the one click back: the run's settings put into the widgets.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from ..engine.config import RunConfig
from ..engine.jobs import Lab
from ..errors import BnvizError
from ..science.run_words import settings_change

ORIGIN_KEY = "bnviz_run_origin"  # session state: the page whose Start began the lab's current job
PAGE_NAMES = {"home": "Home", "train": "Train & watch", "compare": "Compare two runs", "grad": "Gradients",
              "bn": "Inside BatchNorm"}  # by the key a page passes to its run buttons


def remember_origin(key: str) -> None:
    """Called when a page starts a job: the banner on other pages names it."""
    st.session_state[ORIGIN_KEY] = PAGE_NAMES.get(key, key)


def shown_configs(histories) -> list[RunConfig] | None:
    """The settings of the runs on screen, read from their histories; None if any run does not say."""
    try:
        return [RunConfig.from_dict(dict(h.meta["config"])) for h in histories]
    except (KeyError, TypeError, ValueError, BnvizError):
        return None


def stale_banner(lab: Lab, current: list[RunConfig], restore: Callable[[list[RunConfig]], None], key: str,
                 start_hint: str) -> None:
    """A warning when the runs on screen are not what `current` (the page's settings) describes, or were started
    on another page, with a button that calls `restore(shown configs)` to put their settings into the widgets."""
    labels, histories = lab.histories()
    if lab.job is None or not histories:  # nothing on screen, or a saved run (which has its own banner)
        return
    shown = shown_configs(histories)
    if shown is None:
        return
    change = settings_change(shown, current, labels)
    origin = st.session_state.get(ORIGIN_KEY)
    elsewhere = origin is not None and origin != PAGE_NAMES.get(key)
    if change is None and not elsewhere:
        return
    runs = " and ".join(labels)
    what = f"the run started on {origin} ({runs})" if elsewhere else f"the run you started ({runs})"
    if change is None:
        st.info(f"These charts show {what}; its settings are the ones shown here.", icon=":material/info:")
        return
    st.warning(f"These charts show {what}; your settings now say: {change}. To train them, {start_hint}.",
               icon=":material/history:")
    st.button("↩ Put the settings of the run on screen back", key=f"{key}_restore", on_click=restore, args=(shown,),
              help="Sets the widgets (and the link) to the settings of the run the charts show")
