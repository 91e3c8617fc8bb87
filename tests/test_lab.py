"""The session's Lab and the server-wide JobLimiter: slots, refusals, stopping, thread caps. No Streamlit."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import bnviz.engine.jobs as lab_module
from bnviz.engine.config import RunConfig
from bnviz.engine.jobs import JobLimiter, Lab, LoadedRuns
from bnviz.engine.trainer import Job
from bnviz.errors import BnvizError

ROOT = Path(__file__).resolve().parents[1]
SMALL = RunConfig(width=4, depth=2, steps=10, eval_every=10)
LONG = RunConfig(width=4, depth=2, steps=20_000)


pytestmark = pytest.mark.usefixtures("no_training_thread_left")


@pytest.fixture
def labs():
    """Labs made by a test; all stopped afterwards, whatever the test did."""
    made: list[Lab] = []

    def make(limiter: JobLimiter) -> Lab:
        made.append(Lab(limiter=limiter))
        return made[-1]

    yield make
    for lab in made:
        lab.reset()


def wait_until(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_limiter_counts_holders():
    limiter = JobLimiter(2)
    assert limiter.try_acquire(1) and limiter.try_acquire(1) and limiter.in_use == 1  # re-entrant per holder
    assert limiter.try_acquire(2) and not limiter.try_acquire(3)
    limiter.release(1)
    limiter.release(1)  # releasing twice is harmless
    assert limiter.in_use == 1 and limiter.try_acquire(3)


def test_limiter_capacity_defaults(monkeypatch):
    monkeypatch.setenv("BNVIZ_MAX_JOBS", "3")
    assert JobLimiter().capacity == 3
    monkeypatch.delenv("BNVIZ_MAX_JOBS")
    monkeypatch.setattr(lab_module, "available_cores", lambda: 5)
    assert JobLimiter().capacity == 5  # one job per core
    assert JobLimiter(1).capacity == 1


def test_a_full_server_queues_a_run_until_a_slot_is_stopped(labs):
    limiter = JobLimiter(1)
    first, second = labs(limiter), labs(limiter)
    first.start([LONG])
    second.start([SMALL])  # a different run: it waits in the queue instead of being refused
    assert second.queued and second.running and second.snapshot() is None and second.histories()[1] == []
    place = second.place()
    assert (place.position, place.length) == (1, 1) and place.wait_s > 0  # the cost of the run ahead
    assert limiter.in_use == 1
    first.stop()
    assert first.job.status == "stopped"
    assert not second.queued and second.job.status in ("running", "finished")  # it started when the slot freed
    assert second.job.join(30) and second.job.status == "finished"
    assert limiter.in_use == 0


def test_a_finished_job_frees_its_slot(labs):
    limiter = JobLimiter(1)
    first, second = labs(limiter), labs(limiter)
    first.start([SMALL])
    assert first.job.join(30) and first.job.status == "finished"
    assert limiter.in_use == 0  # on_done released it without anyone pressing Stop
    second.start([SMALL])
    assert second.job.join(30)
    assert limiter.in_use == 0


def test_restarting_keeps_one_slot(labs):
    limiter = JobLimiter(1)
    lab = labs(limiter)
    lab.start([LONG])
    old = lab.job
    lab.start([LONG])  # Start again: the old job is stopped first, the slot is reused
    assert not old.alive and old.status == "stopped" and lab.job is not old
    assert limiter.in_use == 1 and lab.running


@pytest.mark.parametrize("configs, words", [
    ([RunConfig(lr=-1.0)], "lr"),
    ([RunConfig(norm="instance", model="mlp")], "instance"),
    ([RunConfig(norm="batch", batch_size=1)], "batch_size"),
    ([RunConfig(dataset="nope")], "dataset"),
    ([], "1 or 2"),
    ([SMALL, SMALL, SMALL], "1 or 2"),
])
def test_start_refuses_invalid_configs_with_a_message(labs, configs, words):
    limiter = JobLimiter(1)
    lab = labs(limiter)
    with pytest.raises(BnvizError, match=words):
        lab.start(configs)
    assert lab.job is None and not lab.running and limiter.in_use == 0  # the slot was given back


def test_reset_stops_the_thread_and_forgets(labs):
    limiter = JobLimiter(1)
    lab = labs(limiter)
    lab.start([LONG, LONG.replace(norm="none")], ["BN", "no BN"])
    job = lab.job
    wait_until(lambda: job.step > 0)
    lab.reset()
    wait_until(lambda: not job.alive, timeout=5)
    assert job.status == "stopped"
    assert lab.job is None and lab.labels == [] and lab.histories() == ([], []) and limiter.in_use == 0


def test_stop_keeps_what_was_recorded(labs):
    lab = labs(JobLimiter(1))
    lab.start([LONG])
    wait_until(lambda: lab.job.step >= 3)
    lab.stop()
    labels, histories = lab.histories()
    assert labels == ["A"] and len(histories[0]) >= 3 and not lab.running


def test_load_replaces_the_job_and_histories_come_from_the_file(labs):
    lab = labs(JobLimiter(1))
    lab.start([SMALL])
    assert lab.job.join(30)
    history = lab.histories()[1][0]
    lab.load(LoadedRuns(["saved"], [history], source="x.zip"))
    assert lab.job is None and lab.histories() == (["saved"], [history])


@pytest.mark.parametrize("capacity", [1, 2, 4])
def test_threads_are_capped_so_jobs_times_threads_fit_the_cores(labs, monkeypatch, capacity):
    cores = 4
    monkeypatch.setattr(lab_module, "available_cores", lambda: cores)
    lab = labs(JobLimiter(capacity))
    greedy = SMALL.replace(threads=64)
    lab.start([greedy, greedy.replace(norm="none")])
    threads = [run.cfg.threads for run in lab.job.runs]
    assert lab.job.threads == max(threads) == cores // capacity  # a full server: capacity x threads == cores
    assert capacity * lab.job.threads <= cores
    lab.reset()


def test_threads_never_go_below_one(labs, monkeypatch):
    monkeypatch.setattr(lab_module, "available_cores", lambda: 2)
    lab = labs(JobLimiter(4))
    lab.start([SMALL])
    assert lab.job.threads == 1
    assert lab.job.join(30)


def test_a_slow_old_job_does_not_free_the_new_jobs_slot(labs):
    limiter = JobLimiter(1)
    lab = labs(limiter)
    lab.start([LONG])
    old = lab.job
    gate, entered = threading.Event(), threading.Event()
    run, real_step = old.runs[0], old.runs[0].train_step

    def slow_step(*batch):  # a step that takes longer than Lab.stop waits (5 s there; 0.05 s here)
        entered.set()
        gate.wait(10)
        return real_step(*batch)

    run.train_step = slow_step
    assert entered.wait(5)
    old.stop = lambda wait=None: Job.stop(old, wait=0.05)
    lab.start([LONG])  # Start again while the old step is still running
    gate.set()
    assert old.join(5)
    wait_until(lambda: not lab.queued)  # the old job's end gave the slot to the new one (queued meanwhile)
    assert lab.running and limiter.in_use == 1 and lab.job is not old  # the new job holds the slot
    other = labs(limiter)
    other.start([SMALL])  # so a second session waits
    assert other.queued


def test_start_returns_once_step_zero_is_recorded(labs):
    """The page drawn right after Start shows step 0 already (no empty poll before the first chart)."""
    lab = labs(JobLimiter(2))
    lab.start([LONG, LONG.replace(norm="none")])
    labels, histories = lab.histories()
    assert all(len(h) >= 1 and h.steps[0] == 0 for h in histories)
    assert lab.job.first_hold == lab_module.FIRST_CHART_HOLD_S > 0  # training waits while the page draws it
    lab.stop()


def test_interpreter_exit_stops_running_jobs_cleanly():
    """The atexit hook stops a job still training when the process ends (a daemon thread would just vanish)."""
    code = ("import logging, sys, time\n"
            "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
            "from bnviz.engine.config import RunConfig\n"
            "from bnviz.engine.jobs import JobLimiter, Lab\n"
            "lab = Lab(limiter=JobLimiter(1))\n"
            "lab.start([RunConfig(width=4, depth=2, steps=20_000)])\n"
            "while lab.job.step < 2:\n"
            "    time.sleep(0.01)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert re.search(r"job-\d+ started", done.stdout) and re.search(r"job-\d+ ended: stopped", done.stdout), done.stdout


def test_torch_threads_are_set_per_worker_thread():
    """What Lab's thread cap relies on (see engine/jobs.py): a worker's torch.set_num_threads governs that worker, and
    does not change the count of a thread that already uses torch (the OpenMP backend of the CPU wheel)."""
    before = torch.get_num_threads()
    seen = []
    job = Job(SMALL.replace(threads=1, steps=3))
    run, real_step = job.runs[0], job.runs[0].train_step

    def step(*batch):
        seen.append(torch.get_num_threads())
        return real_step(*batch)

    run.train_step = step
    torch.set_num_threads(2)
    try:
        job.start()
        assert job.join(30)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2  # this thread's own setting is untouched
    finally:
        torch.set_num_threads(before)


HISTORY_BUDGET = 32 * 1024 * 1024  # bnviz.engine.history.capacity_for's default budget: what README quotes per run


@pytest.mark.parametrize("changes", [{}, {"depth": 6, "width": 128},
                                     {"depth": 8, "width": 256, "hist_bins": 256},
                                     {"model": "mlp", "depth": 8, "width": 256, "hist_bins": 256}])
def test_a_sessions_memory_is_bounded_by_its_histories(changes):
    """Histories are allocated in full when a run is built and never grow (test_history.py checks that), so a twin
    session holds at most two budgets, whatever the settings and however long it trains."""
    cfg = SMALL.replace(**changes)
    job = Job([cfg, cfg.replace(norm="none")])  # built, not started: the memory is already taken
    for run in job.runs:
        h = run.history
        edges = h.hist_edges.nbytes + h.grad_edges.nbytes
        assert h.nbytes() == h.capacity * h.layout.row_bytes() + edges
        assert h.nbytes() <= HISTORY_BUDGET + edges


def test_live_charts_refresh_slower_when_runs_outnumber_cores():
    from bnviz.engine.jobs import available_cores
    from bnviz.ui.live import POLL_SECONDS, poll_seconds

    cores = available_cores()
    limiter = JobLimiter(4 * cores)
    assert poll_seconds(limiter) == POLL_SECONDS  # idle server: twice a second
    for n in range(1, 4 * cores + 1):
        assert limiter.try_acquire(n)
        expected = POLL_SECONDS if n <= cores else POLL_SECONDS * n / cores
        assert poll_seconds(limiter) == pytest.approx(expected), n
