"""The Ray job backend (bnviz.engine.ray_backend) against a real local Ray instance (conftest's ray_session):
a job, a shared identical run, pause/resume/stop, a mid-run learning-rate change, a crash inside a job and a dead
worker, and the same numbers as the thread backend. Skipped (with the reason) when ray is not installed. The app's
pages on Ray: tests/test_app.py runs each of its training AppTests on both backends (its `backend` fixture); both
modules share the one local Ray instance of the test process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install -r requirements-ray.txt")

from bnviz.engine.config import RunConfig  # noqa: E402
from bnviz.engine.data import load_dataset  # noqa: E402
from bnviz.engine.jobs import JobLimiter, Lab  # noqa: E402
from bnviz.engine.ray_backend import RayJob  # noqa: E402
from bnviz.engine.registry import RunRegistry  # noqa: E402
from bnviz.engine.trainer import Job  # noqa: E402

pytestmark = pytest.mark.ray
SMALL = RunConfig(width=4, depth=2, steps=15, eval_every=5, samples=64)
LONG = RunConfig(width=4, depth=2, steps=20_000, samples=64)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray(ray_session):
    """conftest's local Ray instance: started once per test process (shut down at its end only if it started it)."""
    return ray_session


@pytest.fixture
def sessions():
    made: list[Lab] = []
    limiter = JobLimiter(2)
    registry = RunRegistry(limiter, cache_bytes=0)

    def session() -> Lab:
        made.append(Lab(limiter=limiter, registry=registry, backend="ray"))
        return made[-1]

    yield session
    for lab in made:
        lab.reset()


def wait_until(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _scalars(snap):
    return [run.history.column("scalars") for run in snap.runs]


def test_a_job_gives_the_same_numbers_as_the_thread_backend(sessions):
    lab = sessions()
    lab.start([SMALL, SMALL.replace(norm="none")], ["BN", "no BN"])  # a twin pair, in one actor
    assert isinstance(lab.job, RayJob)
    assert lab.job.join(120) and lab.job.status == "finished" and lab.limiter.in_use == 0
    remote = lab.snapshot()
    local = Job([SMALL, SMALL.replace(norm="none")]).run_to_end().snapshot()
    assert [r.step for r in remote.runs] == [SMALL.steps] * 2
    for a, b in zip(_scalars(remote), _scalars(local), strict=True):
        assert np.array_equal(a, b, equal_nan=True)  # determinism holds across backends
    assert remote.runs[0].history.meta["config"] == local.runs[0].history.meta["config"]
    assert remote.runs[0].summary["final_test_acc"] == local.runs[0].summary["final_test_acc"]


def test_pause_resume_lr_change_and_stop_through_the_actor(sessions):
    lab = sessions()
    lab.start([LONG])
    job = lab.job
    wait_until(lambda: lab.snapshot().step >= 3)
    lab.pause()
    assert job.status == "paused"
    step = job.snapshot().step  # fresh (the Lab's viewers share a snapshot for 0.2 s)
    time.sleep(0.5)
    assert job.snapshot().step <= step + 1  # at most the step in flight
    lab.resume()
    assert job.status == "running"
    lab.set_lr(0.01)
    wait_until(lambda: job.snapshot().runs[0].history.scalar("lr")[-1] == 0.01)  # flushed every 0.25 s
    lrs = job.snapshot().runs[0].history.scalar("lr")
    assert lrs[0] == LONG.lr and job.runs[0].lr == 0.01  # the history records the change mid-run
    lab.stop()
    assert job.status == "stopped" and not job.alive and lab.limiter.in_use == 0
    assert lab.histories()[1][0].steps[-1] >= step


def test_an_identical_start_shares_the_actor(sessions):
    first, second = sessions(), sessions()
    first.start([LONG])
    second.start([LONG])
    assert second.job is first.job and first.limiter.in_use == 1
    second.stop()
    assert first.job.status == "running"
    first.stop()
    assert first.job.status == "stopped"


def test_a_crash_inside_a_job_is_reported_not_raised(sessions):
    bad = load_dataset("digits", 0)
    bad.y_train[:] = 99  # labels beyond the 10 classes: the first training step raises inside the actor
    lab = sessions()
    lab._user_datasets = lambda configs: {("digits", 0, 0.5): bad}
    lab.start([SMALL])
    assert lab.job.join(60) and lab.job.status == "error" and "IndexError" in (lab.job.error or "")
    assert lab.limiter.in_use == 0  # the slot is free again
    other = sessions()
    other.start([SMALL.replace(seed=3)])  # the server goes on
    assert other.job.join(60) and other.job.status == "finished"


def test_a_dead_worker_becomes_an_error(sessions):
    lab = sessions()
    lab.start([LONG])
    wait_until(lambda: lab.snapshot().step >= 2)
    ray.kill(lab.job._actor)  # the worker process dies mid-run
    assert lab.job.join(60) and lab.job.status == "error" and "Ray worker" in lab.job.error
    assert lab.limiter.in_use == 0 and lab.histories()[1]  # what arrived before the crash stays


def test_the_cli_trains_on_ray_and_writes_the_same_files(tmp_path, capsys):
    from bnviz.cli import main

    flags = ["run", "--steps", "12", "--width", "4", "--depth", "2", "--samples", "64", "--quiet"]
    assert main([*flags, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    assert main([*flags, "--out", str(tmp_path / "threads"), "--backend", "threads"]) == 0
    for name in ("scalars.csv", "layers.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "threads" / name).read_bytes(), name
    assert "finished: 12 steps" in capsys.readouterr().out



STARTED_FROM_A_PASSING_THREAD = r"""
import threading, time
import ray
from bnviz.engine.ray_backend import ensure_ray

t = threading.Thread(target=ensure_ray, kwargs={"num_cpus": 1})  # as a Streamlit script run does: it then ends
t.start(); t.join()
time.sleep(3)  # Linux kills processes started with PR_SET_PDEATHSIG when the thread that started them has ended
one = ray.remote(lambda: 1)
print("answer", ray.get(one.remote(), timeout=60))
"""


def test_a_local_instance_started_from_a_thread_outlives_that_thread(tmp_path):
    """A page's script run (a thread that ends) starts the local instance: Ray still answers after it has ended."""
    done = subprocess.run([sys.executable, "-c", STARTED_FROM_A_PASSING_THREAD], capture_output=True, text=True,
                          timeout=150, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "answer 1" in done.stdout, done.stderr[-2000:]
