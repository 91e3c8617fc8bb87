"""Run buttons for the canned experiments: a progress bar while they train, plain messages when anything fails."""

from __future__ import annotations

import contextlib

import streamlit as st

from ..engine.jobs import LIMITER
from ..errors import BnvizError
from ..science.result_cache import cached
from ..science.run_words import settings_words


def run_section(key: str, fn, settings: dict, label: str,
                empty_text: str = "Press the button to train the networks (the charts appear here)."):
    """A Run button with a progress bar; returns this experiment's result for `settings` (or None)."""
    store = st.session_state.setdefault(f"{key}_results", {})
    store_key = repr(sorted(settings.items()))
    result = cached(fn, **settings) or store.get(store_key)
    if st.button(label, type="primary", key=f"{key}_run"):
        bar = st.progress(0.0, text="starting...")
        try:
            result = run_experiment(fn, settings, progress=lambda f, m: bar.progress(f, text=m))
        except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
            result = None
            bar.empty()
            st.error(failure_message(exc))
        else:
            bar.empty()
            store[store_key] = result
    if result is None:
        st.info(empty_text)
    else:
        st.caption(f"Trained in {result.seconds:.0f} s. Settings: "
                   f"{settings_words(result.settings, skip=('multiples',))}.")
    return result


def run_experiment(fn, settings: dict, progress):
    """`fn(**settings)`'s result: remembered at once, else trained in one slot of the server-wide job limiter
    (shared with the live lab, so experiments and live runs together never use more cores than the server allows).
    Raises ServerBusy when every slot is taken."""
    hit = cached(fn, **settings)
    if hit is not None:  # a remembered result needs no slot
        progress(1.0, "done (remembered from an earlier run)")
        return hit
    with LIMITER.slot():
        return fn(progress=progress, **settings)


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

