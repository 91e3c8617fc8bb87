"""Canned experiments train in the background (issue 18, item 6): a rerun never discards one, identical ones are
trained once, errors reach the page that started them, and a slot of the server's limiter is held while they train."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from streamlit.testing.v1 import AppTest

from bnviz.engine.jobs import JobLimiter
from bnviz.errors import ConfigError, ServerBusy
from bnviz.science import background
from bnviz.science.result_cache import cached, forget, remembered

GATE = threading.Event()


@dataclass(frozen=True)
class Result:  # what a page's caption reads from an experiment's result
    value: int
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

CALLS = []


@remembered
def gated(n: int, progress=None):
    """An experiment that reports half-way and then waits for the test to let it finish."""
    CALLS.append(n)
    progress(0.5, "half-way")
    assert GATE.wait(30)
    if n < 0:
        raise ConfigError(f"n={n} must be positive")
    return Result(n * 10)


@pytest.fixture(autouse=True)
def fresh():
    GATE.clear()
    CALLS.clear()
    for n in (1, 2, -1):
        forget(gated, n=n)
    yield
    GATE.set()


def test_identical_experiments_train_once_in_one_slot():
    limiter = JobLimiter(2)
    first = background.start(gated, {"n": 1}, limiter)
    second = background.start(gated, {"n": 1}, limiter)
    assert second is first and limiter.in_use == 1
    GATE.set()
    assert first.wait(30) and first.result == Result(10) and first.error is None
    assert CALLS == [1] and cached(gated, n=1) == Result(10) and limiter.in_use == 0  # the slot came back


def test_an_experiment_needs_a_free_slot_and_an_error_is_kept_for_the_page():
    limiter = JobLimiter(1)
    failing = background.start(gated, {"n": -1}, limiter)
    with pytest.raises(ServerBusy):
        background.start(gated, {"n": 2}, limiter)
    GATE.set()
    assert failing.wait(30)
    assert isinstance(failing.error, ConfigError) and failing.result is None and limiter.in_use == 0
    assert background.find(gated, {"n": -1}) is failing


def _two_sections() -> None:
    from test_background import gated

    from bnviz.ui.experiment_section import run_section

    run_section("a", gated, {"n": 1}, "Run A")
    run_section("b", gated, {"n": 2}, "Run B")


def test_a_second_button_does_not_discard_the_first_experiment():
    at = AppTest.from_function(_two_sections, default_timeout=30).run()
    at.button(key="a_run").click().run()
    assert at.get("progress")  # its progress bar, refreshed by a fragment every second
    at.button(key="b_run").click().run()  # this session's first experiment is still training
    assert not at.exception and "still training" in at.warning[0].value
    run = background.find(gated, {"n": 1})
    assert run is not None and not run.done  # the rerun did not stop it
    GATE.set()
    assert run.wait(30)
    at.run()
    assert not at.exception and not at.error
    assert any("Trained in" in c.value for c in at.caption)
    assert CALLS == [1]  # B was refused, not started behind A's back
