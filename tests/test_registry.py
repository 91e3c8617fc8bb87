"""The run registry (bnviz.engine.registry): identical runs trained once, the finished-run cache, the fair queue and
the per-client cap, driven through real Labs and training threads. No Streamlit."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from bnviz.engine.config import RunConfig
from bnviz.engine.jobs import JobLimiter, Lab
from bnviz.engine.registry import CODE_VERSION, RunRegistry, SharedRunControl, capped_client, run_key
from bnviz.errors import ServerBusy

SMALL = RunConfig(width=4, depth=2, steps=12, eval_every=6, samples=64)
LONG = RunConfig(width=4, depth=2, steps=20_000, samples=64)

pytestmark = pytest.mark.usefixtures("no_training_thread_left")


@pytest.fixture
def server():
    """make(capacity, **registry options) -> a function that opens Labs (sessions) on one private server."""
    made: list[Lab] = []

    def make(capacity: int = 1, **options):
        limiter = JobLimiter(capacity)
        registry = RunRegistry(limiter, **options)

        def session(client: str | None = None) -> Lab:
            made.append(Lab(limiter=limiter, registry=registry, client=client, backend="threads"))
            return made[-1]

        return session, registry

    yield make
    for lab in made:
        lab.reset()


def wait_until(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _other_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return {"other": 1}


def test_the_key_covers_every_config_field_the_data_and_the_code_version():
    base = run_key([SMALL])
    assert base == run_key([SMALL.replace()]) and len(base) == 32
    for f in dataclasses.fields(RunConfig):  # generic: a knob added later changes the key without a code change
        changed = dataclasses.replace(SMALL, **{f.name: _other_value(getattr(SMALL, f.name))})
        if f.name == "dataset":
            assert run_key([changed]) is None  # "digitsx" is a path, not a bundled name: never shared
            continue
        assert run_key([changed]) != base, f.name
    assert run_key([SMALL.replace(dataset="upload:0123456789ab")]) != run_key([SMALL.replace(dataset="shapes")])
    assert run_key([SMALL], code_version="other") != base and len(CODE_VERSION) == 16
    assert run_key([SMALL, SMALL.replace(norm="none")]) != run_key([SMALL.replace(norm="none"), SMALL])
    assert run_key([SMALL.replace(dataset="/home/me/pictures")]) is None


def test_an_identical_start_joins_the_run_and_sees_it_from_step_0(server):
    session, registry = server(capacity=2)
    first, second = session(), session()
    first.start([LONG])
    wait_until(lambda: len(first.job.runs[0].history) >= 5)  # flushed to the history (every 0.25 s)
    second.start([LONG])
    assert second.job is first.job and registry.trained == 1 and first.limiter.in_use == 1
    steps = second.histories()[1][0].steps
    assert steps[0] == 0 and len(steps) >= 5  # the history from step 0, not from where it joined
    with pytest.raises(SharedRunControl, match="2 sessions"):
        second.pause()
    with pytest.raises(SharedRunControl):
        first.set_lr(0.01)
    assert first.job.status == "running" and first.job.runs[0].lr == LONG.lr
    second.stop()  # leaves; the run goes on for the first session
    assert first.job.status == "running" and second.job.status == "stopped" and second.histories()[1]
    first.stop()  # the last viewer: the run stops and frees its slot
    assert first.job.status == "stopped" and first.limiter.in_use == 0


def test_a_finished_run_is_cached_and_served_at_once(server):
    session, registry = server()
    first = session()
    first.start([SMALL])
    assert first.job.join(30) and first.job.status == "finished"
    later = session()
    later.start([SMALL])
    assert registry.trained == 1 and later.job.status == "finished" and not later.running
    mine, cached = first.histories()[1][0], later.histories()[1][0]
    assert np.array_equal(mine.column("scalars"), cached.column("scalars"), equal_nan=True)
    assert len(cached) == SMALL.steps
    assert later.job.runs[0].cfg == first.job.runs[0].cfg
    session().start([SMALL.replace(seed=1)])  # another seed is another run
    assert registry.trained == 2


def test_the_cache_is_bounded_least_recently_used_out(server):
    session, registry = server()
    lab = session()
    lab.start([SMALL])
    assert lab.job.join(30)
    size = registry.stats()["cache_mb"] * 2**20
    assert registry.stats()["cached"] == 1 and size > 0
    registry.cache_bytes = int(size * 1.5)  # room for one run like it
    for seed in (1, 2):
        lab.start([SMALL.replace(seed=seed)])
        assert lab.job.join(30)
    assert registry.stats()["cached"] == 1 and registry.stats()["cache_mb"] * 2**20 <= registry.cache_bytes
    trained = registry.trained
    session().start([SMALL.replace(seed=2)])  # the newest is kept
    session().start([SMALL])  # the oldest was dropped: trained again
    assert registry.trained == trained + 1


def test_a_changed_or_paused_run_is_private_and_not_cached(server):
    session, registry = server(capacity=2)
    first = session()
    first.start([LONG])
    first.set_lr(0.01)  # alone on it: allowed, and the run leaves the key index
    other = session()
    other.start([LONG])
    assert other.job is not first.job and registry.trained == 2
    other.pause()
    assert other.job.status == "paused"
    third = session()
    third.start([LONG])
    assert third.job is not other.job  # a paused run is not joined either
    for lab in (first, other, third):
        lab.stop()
    changed, cfg = session(), SMALL.replace(steps=400)
    changed.start([cfg])
    changed.set_lr(0.02)
    assert changed.entry.modified and changed.job.join(60)
    again = session()
    again.start([cfg])
    assert again.job is not changed.job and again.job.join(60)  # trained afresh, not served from the cache
    assert registry.stats()["cached"] == 1  # the unchanged run only


def test_the_queue_is_first_come_first_served_and_a_closed_session_leaves_it(server):
    session, registry = server(capacity=1)
    running, a, b, c = session(), session(), session(), session()
    running.start([LONG])
    a.start([SMALL.replace(seed=1)])
    b.start([SMALL.replace(seed=2)])
    c.start([SMALL.replace(seed=3)])
    assert [lab.place().position for lab in (a, b, c)] == [1, 2, 3]
    waits = [lab.place().wait_s for lab in (a, b, c)]
    assert waits[0] < waits[1] < waits[2]  # the cost estimates of the runs ahead add up
    twin = session()
    twin.start([SMALL.replace(seed=2)])  # identical to a queued run: joins it, does not queue again
    assert twin.entry is b.entry and registry.stats()["queued"] == 3
    b.reset()  # b's tab closes: the run stays queued for the twin
    assert twin.queued and twin.place().position == 2
    twin.reset()  # the last one waiting for it leaves: out of the queue
    assert c.place().position == 2 and registry.stats()["queued"] == 2
    running.stop()
    wait_until(lambda: not a.queued)
    assert c.queued and c.place().position == 1
    assert a.job.join(30)
    wait_until(lambda: not c.queued)
    assert c.job.join(30) and registry.trained == 3  # LONG, seed 1, seed 3


def test_a_client_holds_at_most_its_cap_of_runs(server):
    session, registry = server(capacity=2, per_client=1)
    mine = session(client="10.0.0.7")
    mine.start([LONG])
    with pytest.raises(ServerBusy, match="1 per computer"):
        session(client="10.0.0.7").start([LONG.replace(seed=1)])
    watcher = session(client="10.0.0.7")
    watcher.start([LONG])  # watching an identical run takes no slot, so it does not count
    assert watcher.job is mine.job
    session(client="10.0.0.8").start([LONG.replace(seed=1)])  # another computer
    assert registry.trained == 2


def test_the_cap_counts_a_computer_once_however_its_address_is_written(server):
    """A dual-stack server sees IPv4 clients as IPv4-mapped IPv6 addresses: this machine's is still this machine (no
    cap), and another computer is one client whichever form its address arrives in."""
    assert capped_client("::ffff:127.0.0.1") is None and capped_client("127.0.0.1") is None
    assert capped_client("::1") is None and capped_client(None) is None
    assert capped_client("::ffff:10.0.0.7") == capped_client("10.0.0.7") == "10.0.0.7"
    session, registry = server(capacity=2, per_client=1)
    session(client="::ffff:127.0.0.1").start([LONG])
    session(client="::ffff:127.0.0.1").start([LONG.replace(seed=1)])  # this machine: not capped
    other = session(client="10.0.0.7")
    other.start([LONG.replace(seed=2)])  # both slots are taken: it queues, and counts for its computer
    with pytest.raises(ServerBusy, match="1 per computer"):
        session(client="::ffff:10.0.0.7").start([LONG.replace(seed=3)])
    assert registry.trained == 2 and other.queued


def test_runs_are_the_same_numbers_whoever_asks(server):
    """Determinism, which sharing relies on: two separate trainings of one config give identical histories."""
    session, registry = server(capacity=1, cache_bytes=0)
    a, b = session(), session()
    a.start([SMALL])
    assert a.job.join(30)
    b.start([SMALL])
    assert b.job.join(30) and b.job is not a.job and registry.trained == 2
    ha, hb = a.histories()[1][0], b.histories()[1][0]
    for name in ("scalars", "act_hist"):
        assert np.array_equal(ha.column(name), hb.column(name), equal_nan=True), name


def test_charts_refresh_slower_when_many_sessions_watch_one_run(server):
    from bnviz.engine.jobs import available_cores, registry_for
    from bnviz.ui.live import POLL_SECONDS, VIEWERS_PER_CORE, poll_seconds

    limiter = JobLimiter(1)
    viewers = [Lab(limiter=limiter, registry=registry_for(limiter)) for _ in range(4 * available_cores())]
    try:
        for lab in viewers:
            lab.start([LONG])  # one run, every session watching it
        assert registry_for(limiter).watching() == len(viewers) and limiter.in_use == 1
        expected = POLL_SECONDS * max(1.0, len(viewers) / VIEWERS_PER_CORE / available_cores())
        assert poll_seconds(limiter) == pytest.approx(expected) and expected > POLL_SECONDS
    finally:
        for lab in viewers:
            lab.reset()
    assert poll_seconds(limiter) == POLL_SECONDS
