"""Two app servers on one Ray cluster (bnviz.engine.ray_index): each "server" here is its own JobLimiter and
RunRegistry, as in two processes, and both use one real local Ray instance. An identical Start on the second server
joins the first one's live run (one actor trains it), a finished run is served to the other server from the
cluster's cache, controls that would change a run another server's sessions watch are refused, a run made private
leaves the index, and a server waits for a free CPU of the cluster instead of over-asking it.
Skipped (with the reason) when ray is not installed."""

from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install -r requirements-ray.txt")

from test_ray_backend import wait_until  # noqa: E402

from bnviz.engine.config import RunConfig  # noqa: E402
from bnviz.engine.jobs import JobLimiter, Lab  # noqa: E402
from bnviz.engine.ray_backend import RayJob  # noqa: E402
from bnviz.engine.registry import RETRY_S, FinishedJob, RunRegistry, SharedRunControl  # noqa: E402

pytestmark = pytest.mark.ray
MB = 2**20


@pytest.fixture(autouse=True)
def local_ray(ray_session):
    """conftest's local Ray instance, shared with test_ray_backend.py and test_app.py's Ray variants."""
    return ray_session


class Servers:
    """Sessions of two servers (A and B) sharing the cluster; every test uses its own seeds, so the cluster's index
    (which outlives a test) never answers one test with another's run."""

    def __init__(self):
        self.registries = {name: RunRegistry(JobLimiter(2), cache_bytes=256 * MB, per_client=2) for name in "AB"}
        self.labs: list[Lab] = []

    def session(self, server: str) -> Lab:
        registry = self.registries[server]
        self.labs.append(Lab(limiter=registry.limiter, registry=registry, backend="ray"))
        return self.labs[-1]

    def trained(self, server: str) -> int:
        return self.registries[server].stats()["trained"]


@pytest.fixture
def servers():
    made = Servers()
    yield made
    for lab in made.labs:
        lab.reset()


def long_run(seed: int) -> RunConfig:
    return RunConfig(width=4, depth=2, steps=20_000, samples=64, seed=seed)


def test_an_identical_start_on_another_server_joins_the_live_run(servers):
    a, b = servers.session("A"), servers.session("B")
    a.start([long_run(501)])
    wait_until(lambda: a.snapshot().step >= 2)
    b.start([long_run(501)])
    assert isinstance(b.job, RayJob) and not b.job.owner and b.job.name == a.job.name  # one actor trains it
    assert (servers.trained("A"), servers.trained("B")) == (1, 0) and b.limiter.in_use == 0
    wait_until(lambda: b.job.snapshot().step >= 5)
    first_a, first_b = (job.snapshot().runs[0].history for job in (a.job, b.job))
    assert np.array_equal(first_a.steps[:5], first_b.steps[:5])
    assert np.array_equal(first_a.scalar("loss")[:5], first_b.scalar("loss")[:5])  # the same run, seen from both
    with pytest.raises(SharedRunControl, match="another server"):
        a.pause()  # B's sessions watch it too
    with pytest.raises(SharedRunControl, match="another server"):
        b.set_lr(0.01)
    a.stop()  # A's only viewer leaves: the run goes on for B, and A keeps what it saw
    assert a.job.status == "stopped" and b.job.status == "running"
    step = b.job.snapshot().step
    wait_until(lambda: b.job.snapshot().step > step)
    b.stop()  # the last viewer anywhere: the actor stops, and A's server gives its slot back
    assert b.job.status == "stopped"
    wait_until(lambda: a.limiter.in_use == 0)


def test_a_finished_run_is_served_to_another_server_from_the_cluster_cache(servers):
    small = RunConfig(width=4, depth=2, steps=15, eval_every=5, samples=64, seed=502)
    a = servers.session("A")
    a.start([small])
    assert a.job.join(120) and a.job.status == "finished"
    b = servers.session("B")
    b.start([small])
    assert isinstance(b.job, FinishedJob) and servers.trained("B") == 0
    assert np.array_equal(a.snapshot().runs[0].history.scalar("loss"), b.snapshot().runs[0].history.scalar("loss"))
    again = servers.session("B")
    again.start([small])  # now from B's own cache, without asking the cluster
    assert isinstance(again.job, FinishedJob) and servers.trained("B") == 0


def test_a_run_changed_by_its_only_viewer_leaves_the_index(servers):
    a = servers.session("A")
    a.start([long_run(503)])
    wait_until(lambda: a.snapshot().step >= 2)
    a.set_lr(0.01)  # alone on it: allowed, and the run is not the config's any more
    b = servers.session("B")
    b.start([long_run(503)])
    assert b.job is not a.job and b.job.owner and servers.trained("B") == 1  # B trains the config's run itself


def test_a_server_waits_for_a_free_cpu_of_the_cluster(servers):
    a1, a2 = servers.session("A"), servers.session("A")
    a1.start([long_run(504)])
    a2.start([long_run(505)])  # the cluster's 2 CPUs are taken by server A
    wait_until(lambda: ray.available_resources().get("CPU", 0) < 1)
    b = servers.session("B")
    b.start([long_run(506)])
    assert b.queued and b.limiter.in_use == 0  # B's own slots are free, the cluster's CPUs are not
    assert b.place().position == 1
    time.sleep(3 * RETRY_S)  # B looks at the full cluster several times first (each look schedules the next)
    a1.stop()
    wait_until(lambda: not b.queued and b.job.status == "running")  # started by B's retry once the CPU is back
    assert b.job.owner
