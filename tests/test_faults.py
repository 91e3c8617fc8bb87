"""Faults while training: bad values in the data, a run that raises, and what the other users see meanwhile.

Covered elsewhere (not repeated here): divergence from a huge learning rate (test_trainer.py), NaN cells in chart
input (test_charts.py), cut-off and wrong downloads (test_data.py), a busy server (test_lab.py, test_app.py).
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.data import Dataset
from bnviz.engine.jobs import JobLimiter, Lab
from bnviz.engine.runfile import pack_runs, unpack_runs
from bnviz.engine.trainer import Job

TINY = RunConfig(width=4, depth=2, steps=60, eval_every=20)


pytestmark = pytest.mark.usefixtures("no_training_thread_left")


def with_bad_pixel(dataset: Dataset, value: float) -> Dataset:
    """The same data with one pixel of every 100th training image set to `value` (NaN or infinity)."""
    x = dataset.x_train.clone()
    x[::100, 0, 3, 3] = value
    return Dataset(dataset.name, x, dataset.y_train, dataset.x_test, dataset.y_test, dataset.classes)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's statistics of the NaN row
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_bad_pixel_makes_the_runs_diverge_and_every_chart_still_draws(engine_digits, value):
    bad = with_bad_pixel(engine_digits, value)
    job = Job([TINY, TINY.replace(norm="none")], datasets={("digits", 0, 0.5): bad})
    job.run_to_end()  # a bad image is in some batch of the first epoch (22 batches of 64)
    assert job.status == "diverged" and job.error is None
    for run in job.runs:
        assert run.status == "diverged" and run.diverged_at < 23
        assert not math.isfinite(run.history.scalar("loss")[-1])
    assert "diverged at step" in job.snapshot().message
    runs = [("BN", job.runs[0].history), ("no BN", job.runs[1].history)]
    for _, history in runs:
        catalog = figures.figure_catalog(history)
        assert catalog and all(fig.data or fig.layout.annotations for fig in catalog.values())
    for build in (figures.loss_accuracy, figures.distribution_grid, figures.train_eval_gap, figures.ics_measure,
                  figures.percentile_lines):
        build(runs)
    labels, loaded = unpack_runs(pack_runs(["BN", "no BN"], [h for _, h in runs]))  # and it can be downloaded
    assert labels == ["BN", "no BN"] and loaded[0].meta["summary"]["status"] == "diverged"


def test_a_failing_run_is_a_message_for_its_user_and_the_other_users_run_goes_on():
    limiter = JobLimiter(2)
    failing, other = Lab(limiter=limiter), Lab(limiter=limiter)
    try:
        other.start([TINY.replace(steps=20_000)])
        failing.start([TINY.replace(steps=20_000, seed=1)])  # another run (identical settings would share one)
        run, real_step = failing.job.runs[0], failing.job.runs[0].train_step

        def step(*batch):
            if run.step == 3:
                raise RuntimeError("injected failure")
            return real_step(*batch)

        run.train_step = step
        assert failing.job.join(30)
        snap = failing.snapshot()
        assert snap.status == "error" and snap.error == "RuntimeError: injected failure"
        assert "Traceback" not in snap.message and "\n" not in snap.message
        assert not failing.running and limiter.in_use == 1  # its slot is free again
        before = other.job.step
        deadline = time.monotonic() + 30
        while other.job.step <= before + 2:
            assert time.monotonic() < deadline, "the other session's run stopped training"
            time.sleep(0.02)
        assert other.job.status == "running" and other.job.error is None
        failing.start([TINY.replace(steps=5)])  # and the user can simply start again
        assert failing.job.join(30) and failing.job.status == "finished"
    finally:
        failing.reset()
        other.reset()


def test_a_job_out_of_memory_in_its_first_step_ends_and_calls_on_done(engine_datasets):
    """MemoryError is what a crowded server raises: the thread ends and on_done (which frees the slot) is called."""
    job = Job(TINY, engine_datasets)
    done = threading.Event()
    job.on_done = done.set

    def step(*batch):
        raise MemoryError("no room for this batch")

    job.runs[0].train_step = step
    job.start()
    assert done.wait(30) and job.join(5) and not job.alive
    assert job.status == "error" and job.error.startswith("MemoryError")
