"""Run buttons for the canned experiments: a progress bar while they train, plain messages when anything fails."""

from __future__ import annotations

import contextlib

import streamlit as st

from ..engine.jobs import LIMITER
from ..errors import BnvizError
from ..science import background
from ..science.result_cache import cached
from ..science.run_words import settings_words

MY_RUN = "bnviz_experiment"  # session state: the background experiment this session started last
MY_LABEL = "bnviz_experiment_label"  # and the words of its button
PROGRESS_SECONDS = 1.0  # how often a training experiment's progress bar refreshes


def run_section(key: str, fn, settings: dict, label: str,
                empty_text: str = "Press the button to train the networks (the charts appear here)."):
    """A Run button and, while the experiment trains in the background, its progress; returns this experiment's
    result for `settings` (or None). Training goes on when the page reruns (another section's button, a widget):
    one session trains one experiment at a time and is told so, and identical experiments are trained once."""
    store = st.session_state.setdefault(f"{key}_results", {})
    store_key = repr(sorted(settings.items()))
    result = cached(fn, **settings) or store.get(store_key)
    if st.button(label, type="primary", key=f"{key}_run"):
        result = _start(fn, settings, label) or result
    mine = st.session_state.get(MY_RUN)
    if mine is not None and mine.done and mine.key == fn.cache_key((), settings):
        if mine.error is not None:  # shown until this session starts an experiment again
            st.error(failure_message(mine.error))
        else:
            del st.session_state[MY_RUN]
            result = store[store_key] = mine.result
    run = background.find(fn, settings)
    if run is not None and not run.done:
        _progress(run, key)
    elif result is None:
        st.info(empty_text)
    if result is not None:
        st.caption(f"Trained in {result.seconds:.0f} s. Settings: "
                   f"{settings_words(result.settings, skip=('multiples',))}.")
    return result


def _start(fn, settings: dict, label: str):
    """A remembered result at once; else start (or join) the experiment in the background and return None."""
    hit = cached(fn, **settings)
    if hit is not None:
        return hit
    mine = st.session_state.get(MY_RUN)
    if mine is not None and not mine.done and mine.key != fn.cache_key((), settings):
        other = st.session_state.get(MY_LABEL, mine.name)
        st.warning(f"Your other experiment ({other}) is still training "
                   f"({mine.fraction:.0%}); start this one when it has finished. Nothing was lost.")
        return None
    try:
        st.session_state[MY_RUN] = background.start(fn, settings, LIMITER)
        st.session_state[MY_LABEL] = f"“{label.lstrip('▶ ').split(' (')[0]}”"
    except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
        st.error(failure_message(exc))
    return None


def _progress(run: background.ExperimentRun, key: str) -> None:
    """The run's progress bar, refreshed every second; one full rerun when it ends draws the result."""

    @st.fragment(run_every=PROGRESS_SECONDS)
    def bar() -> None:
        if run.done:
            st.rerun()
        st.progress(run.fraction, text=f"Training in the background: {run.message}")

    bar()


def failure_message(exc: Exception) -> str:
    """What a page says when an experiment could not run: a user's mistake or a busy server in its own words."""
    if isinstance(exc, (BnvizError, ValueError)):  # RunConfig.validate raises plain ValueErrors too
        return str(exc)
    return f"The experiment failed ({type(exc).__name__}: {exc})."


@contextlib.contextmanager
def drawing(what: str):
    """Any error while drawing a result becomes a plain message, never a traceback in front of a class."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - Streamlit's rerun/stop signals are BaseExceptions and pass through
        st.error(f"Could not draw {what} ({type(exc).__name__}: {exc}). Try running it again.")

