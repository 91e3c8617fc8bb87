"""The start-up warm-up (BNVIZ_WARM=presets, bnviz.engine.warm): every preset trained once through Lab.start so a
class gets them from the server's cache. Training tests use two tiny runs on a private limiter and registry; one test
checks, without training, that the warm-up asks for exactly the runs a student's Start of every real preset asks
for (the Train page's picker and the home page's demo, driven through AppTest)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import bnviz.ui.state as state
from bnviz.engine.config import RunConfig
from bnviz.engine.jobs import JobLimiter, Lab
from bnviz.engine.registry import FinishedJob, RunRegistry, run_key
from bnviz.engine.warm import WarmRun, _warm_one, start_warming, warm, warm_mode
from bnviz.errors import ServerBusy
from bnviz.science.presets import DEFAULT_PRESET, PRESETS

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
TINY = RunConfig(width=4, depth=2, steps=12, eval_every=6, samples=64)
RUNS = [WarmRun("tiny BN vs none", [TINY.replace(norm="none"), TINY], ["no BN", "BN"]),
        WarmRun("tiny lr", [TINY.replace(lr=0.1)], ["A"])]

pytestmark = pytest.mark.usefixtures("no_training_thread_left")


@pytest.fixture
def bench():
    """A private server (limiter + registry) and a function that opens sessions (Labs) on it, all reset at the end."""
    limiter = JobLimiter(2)
    registry = RunRegistry(limiter)
    made: list[Lab] = []

    def session(client: str | None = None) -> Lab:
        made.append(Lab(limiter=limiter, registry=registry, client=client, backend="threads"))
        return made[-1]

    yield limiter, registry, session
    for lab in made:
        lab.reset()


def wait_until(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# ---- BNVIZ_WARM ------------------------------------------------------------------------------------------------
def test_warm_mode_accepts_presets_and_warns_on_anything_else(monkeypatch, caplog):
    monkeypatch.delenv("BNVIZ_WARM", raising=False)
    assert warm_mode() is None
    assert warm_mode("") is None and warm_mode("  ") is None
    assert warm_mode("presets") == warm_mode(" Presets ") == "presets"
    monkeypatch.setenv("BNVIZ_WARM", "presets")
    assert warm_mode() == "presets"
    with caplog.at_level(logging.WARNING, logger="bnviz"):
        assert warm_mode("all") is None
    assert "BNVIZ_WARM='all'" in caplog.text and "'presets'" in caplog.text


@pytest.mark.parametrize("value, starts", [("presets", True), ("yes please", False), ("", False)])
def test_warm_up_starts_warming_only_for_presets_and_never_raises(value, starts, monkeypatch, caplog):
    started: list = []
    monkeypatch.setattr(state, "start_warming", lambda runs: started.append(runs))
    monkeypatch.setenv("BNVIZ_WARM", value)
    st.cache_resource.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="bnviz"):
            assert state.warm_up() is True
    finally:
        st.cache_resource.clear()
    assert started == ([state.preset_runs()] if starts else [])
    assert ("accepted values are 'presets'" in caplog.text) == (value == "yes please")


# ---- the same runs as a student's Start --------------------------------------------------------------------------
@pytest.fixture
def recorded_keys(monkeypatch):
    """Every run key a Lab.start asks the registry for (after the server's thread share); the Start is then refused,
    so nothing trains."""
    keys: list[str] = []

    def lookup(self, configs, viewer, cluster=False):
        keys.append(run_key(configs))
        raise ServerBusy("recorded for the test")

    monkeypatch.setattr(RunRegistry, "lookup", lookup)
    return keys


def test_warm_asks_for_the_runs_a_start_of_every_preset_asks_for(recorded_keys, monkeypatch):
    limiter = JobLimiter(2)
    monkeypatch.setattr(state, "Lab", lambda: Lab(limiter=limiter))  # the app's sessions on the same server
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.run()
        at.button(key="home_demo").click()  # the home page's one-click demo (the default preset)
        at.run()
        at.switch_page("pages/train.py")
        at.run()
        for name in PRESETS:  # the Train page: pick the preset, press Start
            at.selectbox(key="cfg_preset").set_value(name)
            at.run()
            at.button(key="train_start").click()
            at.run()
            assert not at.exception, [e.value for e in at.exception]
    finally:
        st.cache_resource.clear()
    home, *train_page = recorded_keys
    recorded_keys.clear()
    runs = state.preset_runs()
    registry = RunRegistry(limiter)
    for run in runs:
        result = _warm_one(run, limiter, registry, threading.Event())
        assert result.status == "refused" and "recorded" in result.note
    assert [run.name for run in runs] == list(PRESETS)
    assert recorded_keys == train_page  # the same run keys, preset by preset (every config field, threads too)
    assert home == train_page[list(PRESETS).index(DEFAULT_PRESET)]
    assert len(set(recorded_keys)) == len(PRESETS)


# ---- warming, then Starts -----------------------------------------------------------------------------------------
def test_after_warming_a_start_gets_the_cached_run_at_once(bench, caplog):
    limiter, registry, session = bench
    with caplog.at_level(logging.INFO, logger="bnviz"):
        report = warm(RUNS, limiter, registry)
    assert [r.name for r in report.warmed] == [run.name for run in RUNS]
    assert all(r.status == "finished" and r.history_bytes > 0 for r in report.results)
    stats = registry.stats()
    assert stats["trained"] == 2 and stats["cached"] == 2 and stats["active"] == stats["queued"] == 0
    assert report.cached_bytes == pytest.approx(stats["cache_mb"] * 2**20)
    assert limiter.in_use == 0 and registry.watching() == 0  # no warm session stays: no slot, no viewer
    for run in RUNS:  # a student's Start of each warmed run: served from the cache, nothing trains
        lab = session("10.0.0.7")
        lab.start(run.configs, run.labels)
        assert isinstance(lab.job, FinishedJob) and lab.job.status == "finished"
        assert lab.snapshot().step == run.configs[0].steps
    assert registry.stats()["trained"] == 2 and registry.stats()["shared_hits"] == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "bnviz.engine.warm"]
    assert sum("warm-up: preset" in line for line in lines) == 2
    assert any(line.startswith("warm-up: warmed 2 presets in") and " MB" in line for line in lines)
    again = warm(RUNS, limiter, registry)  # a second warm-up trains nothing
    assert all(r.before for r in again.results) and registry.stats()["trained"] == 2


def test_a_start_while_warming_joins_the_live_run(bench):
    limiter, registry, session = bench
    long = WarmRun("long", [TINY.replace(steps=20_000)], ["A"])
    stop = threading.Event()
    thread = start_warming([long], limiter, registry, stop=stop)
    try:
        wait_until(lambda: registry.stats()["active"] == 1)
        lab = session("10.0.0.8")
        lab.start(long.configs)
        assert lab.entry.state == "active" and lab.watchers == 2  # the warm session and this one
        assert registry.stats()["trained"] == 1 and registry.stats()["shared_hits"] == 1
        assert not lab.job.finished
    finally:
        stop.set()  # the warm session leaves; the student's view goes on
        thread.join(10)
    assert not thread.is_alive()
    assert lab.entry.state == "active" and lab.watchers == 1
    lab.pause()  # alone on it now: the controls are the student's
    lab.reset()


def test_warming_a_run_a_student_started_trains_nothing_more(bench):
    limiter, registry, session = bench
    lab = session("10.0.0.9")
    lab.start(RUNS[0].configs, RUNS[0].labels)  # a student was first
    report = warm(RUNS[:1], limiter, registry)  # joins that run (or finds it cached)
    assert report.results[0].cached and registry.stats()["trained"] == 1
    assert lab.entry.state == "done" and lab.snapshot().status == "finished"  # the student's view is unchanged
    assert limiter.in_use == 0 and registry.watchers(lab.entry) == 1  # only the student is left on it


def test_histories_over_the_cache_budget_are_reported(bench, caplog):
    limiter, _, _ = bench
    registry = RunRegistry(limiter, cache_bytes=1)  # nothing fits
    with caplog.at_level(logging.INFO, logger="bnviz"):
        report = warm(RUNS[1:], limiter, registry)
    assert report.results[0].status == "finished" and not report.warmed
    assert "more than BNVIZ_CACHE_MB" in caplog.text and "not cached" in caplog.text
    assert registry.stats()["cached"] == 0 and limiter.in_use == 0


def test_no_cache_means_no_warming(bench, caplog):
    limiter, _, _ = bench
    registry = RunRegistry(limiter, cache_bytes=0)
    with caplog.at_level(logging.WARNING, logger="bnviz"):
        report = warm(RUNS, limiter, registry)
    assert report.results == [] and registry.stats()["trained"] == 0
    assert "BNVIZ_CACHE_MB=0" in caplog.text
