"""Shared fixtures. Engine fixtures are prefixed `engine_`; other fixtures (e.g. browser ones) may live below."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.fixture(scope="session")
def engine_digits():
    """The bundled 8x8 digits with the split of seed 0, loaded once per test session."""
    from bnviz.engine.data import load_dataset

    return load_dataset("digits", 0)


@pytest.fixture
def engine_datasets(engine_digits):
    """A fresh `datasets` dict for `bnviz.engine.trainer.Job` that already holds the seed-0 digits."""
    return {("digits", 0, 0.5): engine_digits}


@pytest.fixture
def engine_one_torch_thread():
    """Run the test with one torch thread (tiny tensors: OpenMP hand-offs cost more than they save on a busy
    2-core machine), and restore the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_warm_up(monkeypatch):
    """A BNVIZ_WARM=presets exported in the shell does not make every AppTest of the app train all the presets
    (tests/test_warm.py sets it where it is tested)."""
    monkeypatch.delenv("BNVIZ_WARM", raising=False)


@pytest.fixture(autouse=True)
def fresh_run_cache():
    """Each test trains its own runs: the finished-run caches of bnviz.engine.registry start empty (runs are shared
    by key across sessions of a server, and every test of a process is the same server)."""
    import sys

    jobs = sys.modules.get("bnviz.engine.jobs")
    if jobs is not None:
        for registry in list(jobs._REGISTRIES.values()):
            registry.clear_cache()
    yield


@pytest.fixture
def no_training_thread_left():
    """Every test stops what it started: no bnviz worker thread (nor the thread that watches a Ray job's actor, which
    ends after the actor is killed) outlives it (use with pytest.mark.usefixtures)."""
    yield
    end = time.monotonic() + 5
    while any(t.name in ("bnviz-job", "bnviz-ray-job") and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < end, "a training thread is still running after the test"
        time.sleep(0.02)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance (2 CPUs) for the rest of the test process, started on first use and shut down at the
    end only if this fixture started it (so it coexists with any other module that starts or uses one). Skips the
    test, with the reason, when ray is not installed."""
    ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install -r requirements-ray.txt",
                              exc_type=ImportError)  # not installed, or installed but broken
    from bnviz.engine.ray_backend import ensure_ray

    started = not ray.is_initialized()
    ensure_ray(num_cpus=2)
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


# ---- browser fixtures (shared by the browser test modules; a module may define its own with the same name) -------
@pytest.fixture(scope="module")
def server():
    """`streamlit run app.py` on a free port for the module, always stopped (with its children) afterwards."""
    import browser_support as bs

    srv = bs.StreamlitServer().start(timeout=60)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium for the module."""
    import browser_support as bs

    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = bs.launch_chromium(p)
        try:
            yield b
        finally:
            b.close()
