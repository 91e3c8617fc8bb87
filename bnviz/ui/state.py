"""Per-session objects. The session's Lab lives in a session-scoped resource cache: when the browser tab closes
(the session disconnects), Streamlit releases it and `on_release` stops its training thread."""

from __future__ import annotations

import streamlit as st

from ..lab import Lab


def _release(lab: Lab) -> None:
    lab.reset()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _session_lab() -> Lab:
    return Lab()


def get_lab() -> Lab:
    """This browser session's lab (created on first use)."""
    return _session_lab()
