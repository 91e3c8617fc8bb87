"""Per-session objects. The session's Lab lives in a session-scoped resource cache: when the browser tab closes
(the session disconnects), Streamlit releases it and `on_release` stops its training thread."""

from __future__ import annotations

import logging

import streamlit as st

from ..engine.jobs import Lab
from ..engine.warm import WarmRun, start_warming, warm_mode
from ..science.presets import PRESETS
from .link_params import preset_configs


def _log_to_stderr() -> None:
    """bnviz's INFO lines (a job started or ended, a dataset downloaded) in the server's output, once per process:
    what a teacher sees in the terminal, and what scripts/load_test.py counts."""
    logger = logging.getLogger("bnviz")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


_log_to_stderr()


def _release(lab: Lab) -> None:
    lab.reset()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _session_lab() -> Lab:
    return Lab()


def get_lab() -> Lab:
    """This browser session's lab (created on first use)."""
    return _session_lab()


@st.cache_resource(show_spinner="Warming up PyTorch (once per server)...")
def warm_up() -> bool:
    """Train a tiny model for two steps once per server process: torch's first optimizer step and the digits
    loader are slow the first time (seconds), and that should not happen after a teacher presses Start. With
    BNVIZ_WARM=presets, then train every preset once in the background (bnviz.engine.warm), so that a class clicking
    presets gets finished runs from the server's cache."""
    from ..engine.config import RunConfig
    from ..engine.jobs import backend_name
    from ..engine.trainer import train

    train(RunConfig(width=4, depth=1, steps=2, eval_every=1, samples=16))
    if backend_name() == "ray":  # connect to the cluster now, not when the first student presses Start
        from ..engine import ray_index
        from ..engine.ray_backend import ensure_ray

        ensure_ray()
        ray_index.call("stats")  # and find (or create) the cluster's run index
    if warm_mode() == "presets":  # BNVIZ_WARM: any other value is logged as a warning there
        start_warming(preset_runs())
    return True


def preset_runs() -> list[WarmRun]:
    """Every preset as its Start asks for it (`link_params.preset_configs`, as the picker and the home demo do)."""
    return [WarmRun(name, preset_configs(name), list(preset.labels)) for name, preset in PRESETS.items()]
