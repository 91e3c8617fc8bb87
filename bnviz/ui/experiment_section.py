"""Run buttons for the canned experiments: a progress bar while they train, plain messages when anything fails."""

from __future__ import annotations

import contextlib

import streamlit as st

from ..science import experiments


def run_section(key: str, fn, settings: dict, label: str,
                empty_text: str = "Press the button to train the networks (the charts appear here)."):
    """A Run button with a progress bar; returns this experiment's result for `settings` (or None)."""
    store = st.session_state.setdefault(f"{key}_results", {})
    store_key = repr(sorted(settings.items()))
    result = experiments.cached(fn, **settings) or store.get(store_key)
    if st.button(label, type="primary", key=f"{key}_run"):
        bar = st.progress(0.0, text="starting...")
        result, error = experiments.run_guarded(fn, progress=lambda f, m: bar.progress(f, text=m), **settings)
        bar.empty()
        if error:
            st.error(error)
        else:
            store[store_key] = result
    if result is None:
        st.info(empty_text)
    else:
        st.caption(f"Trained in {result.seconds:.0f} s. Settings: " +
                   ", ".join(f"{k} = {v}" for k, v in result.settings.items() if k not in ("multiples",)))
    return result


@contextlib.contextmanager
def drawing(what: str):
    """Any error while drawing a result becomes a plain message, never a traceback in front of a class."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - Streamlit's rerun/stop signals are BaseExceptions and pass through
        st.error(f"Could not draw {what} ({type(exc).__name__}: {exc}). Try running it again.")
