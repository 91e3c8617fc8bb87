"""The recorder's statistics process (bnviz.engine.chunk_stats.StatsProcess), used while a core is spare.

Here the process is forced on and waited for (in normal use the recorder computes inline until it is ready): the
numpy-reference tests of tests/test_recorder.py hold with it; it gives the same numbers as the inline path bit for
bit across many hand-overs; it stops with the recorder; an error in it surfaces in the recorder.
"""

from __future__ import annotations

import numpy as np
import pytest
import test_recorder as T

from bnviz.engine import chunk_stats as C
from bnviz.engine import recorder as R

pytestmark = [pytest.mark.usefixtures("engine_one_torch_thread"),
              pytest.mark.skipif(not C.shared_support(), reason="no anonymous shared memory files here")]


def use_process(monkeypatch, started: list) -> None:
    """spare_core() is True; a started process is waited for until ready, and appended to `started`."""
    ready, start = C.StatsProcess.poll_ready, R.Recorder._start_process

    def poll_ready(self):
        assert self.ready or self.conn.poll(60), "the statistics process did not start"
        return ready(self)

    def start_process(self):
        started.append(start(self))
        return started[-1]

    monkeypatch.setattr(R, "spare_core", lambda: True)
    monkeypatch.setattr(R, "PROCESS_AFTER_CHUNKS", 0)  # from the first hand-over, even of a short run
    monkeypatch.setattr(C.StatsProcess, "poll_ready", poll_ready)
    monkeypatch.setattr(R.Recorder, "_start_process", start_process)


@pytest.fixture
def started(monkeypatch):
    processes: list = []
    use_process(monkeypatch, processes)
    return processes


def test_numpy_references_hold_with_the_process(started):
    T.test_every_value_sampled_stats_equal_numpy_on_the_full_tensors(T.FULL_CASES[0])
    T.test_subsampled_stats_equal_numpy_on_the_sampled_positions({"norm": "batch", "activation": "relu"}, 100)
    T.test_weight_stats_equal_numpy_on_my_copies_before_and_after_the_step(T.FULL_CASES[0])
    T.test_batch_norm_channel_stats_solved_from_the_running_update(T.FULL_CASES[0], 0.1)
    T.test_flush_makes_pending_steps_visible()
    assert started and all(started)


@pytest.mark.parametrize(("changes", "momentum"), [({"norm": "batch"}, "config"),
                                                  ({"model": "mlp", "norm": "none", "activation": "sigmoid"}, "config"),
                                                  ({"norm": "batch"}, None), ({"norm": "batch"}, 0.0)],
                         ids=str)  # momentum 0: the batch statistics are measured in the hook, sent with the chunk
def test_process_and_inline_give_identical_histories(monkeypatch, changes, momentum):
    results = {}
    for use in (True, False):
        with monkeypatch.context() as m:
            if use:
                use_process(m, [])
            else:
                m.setattr(R, "spare_core", lambda: False)
            rec, _, _ = T.run_recorded(T.tiny(**changes), steps=23, chunk=3, samples=64, momentum=momentum)
            results[use] = T._history_arrays(rec)
    assert len(results[True]["step"]) == 23
    for name, values in results[False].items():
        np.testing.assert_array_equal(results[True][name], values, err_msg=name)


def test_the_process_is_not_started_before_a_chunk_of_steps(monkeypatch):
    """A live job flushes its first step at once (a page draws it): with a core spare, that flush is computed inline
    and no process is started then (it would put a fork and a second busy core between Start and the first chart);
    the process starts at the hand-over that completes a chunk's worth of recorded steps."""
    started: list = []
    use_process(monkeypatch, started)
    monkeypatch.setattr(R, "PROCESS_AFTER_CHUNKS", 1)
    cfg = T.tiny(norm="batch")
    net = T.build_model(cfg, T.DIGITS, 10)
    opt = T.torch.optim.SGD(net.parameters(), lr=0.1)
    with R.Recorder(T.Targets.from_net(net), samples=64, bins=16, chunk=4) as rec:
        for step, (x, y) in enumerate(T.batches(9, cfg.batch_size, T.DIGITS)):
            rec.begin(step)
            opt.zero_grad(set_to_none=True)
            T.F.cross_entropy(net(x), y).backward()
            opt.step()
            rec.end(loss=0.0, lr=0.1)
            if step == 0:
                rec.flush()  # what a job does after its first step
                assert rec.history.n == 1 and not started and rec._process is None
            if step == 3:
                assert not started  # no hand-over since the flush (3 steps pending, a chunk is 4)
        assert len(started) == 1 and started[0]  # at the hand-over of steps 1-4
    assert list(rec.history.steps) == list(range(9))


def test_switching_between_process_and_inline_keeps_every_number(monkeypatch):
    """The load changes during a run: chunks alternate between the process and inline, edges carried across."""
    flips = iter([False, True, True, False, True] * 10)
    use_process(monkeypatch, [])
    monkeypatch.setattr(R, "spare_core", lambda: next(flips))
    mixed = T._history_arrays(T.run_recorded(T.tiny(norm="batch"), steps=20, chunk=2, samples=64)[0])
    monkeypatch.setattr(R, "spare_core", lambda: False)
    inline = T._history_arrays(T.run_recorded(T.tiny(norm="batch"), steps=20, chunk=2, samples=64)[0])
    for name, values in inline.items():
        np.testing.assert_array_equal(mixed[name], values, err_msg=name)


def test_the_process_stops_with_the_recorder_and_its_errors_surface(started, monkeypatch):
    rec, _, _ = T.run_recorded(T.tiny(norm="batch"), steps=7, chunk=2)
    assert list(rec.history.steps) == list(range(7))
    assert len(started) == 1 and started[0] and rec._process is None
    started[0].process.join(5)
    assert not started[0].process.is_alive()

    submit = C.StatsProcess.submit  # a chunk the process cannot read: its directly measured statistics are wrong
    monkeypatch.setattr(C.StatsProcess, "submit", lambda self, s, direct, state: submit(self, s, [1] * 2, state))
    with pytest.raises(RuntimeError, match="in the statistics process"):
        T.run_recorded(T.tiny(norm="batch"), steps=7, chunk=2)
    started[-1].process.join(5)
    assert not started[-1].process.is_alive()


def twenty_steps() -> R.Recorder:
    return T.run_recorded(T.tiny(norm="batch"), steps=20, chunk=2, samples=64)[0]


def assert_same_as_inline(monkeypatch, rec: R.Recorder) -> None:
    """rec's history equals that of the same run computed inline throughout, bit for bit."""
    survived = T._history_arrays(rec)
    monkeypatch.setattr(R, "spare_core", lambda: False)
    for name, values in T._history_arrays(twenty_steps()).items():
        np.testing.assert_array_equal(survived[name], values, err_msg=name)


def test_a_process_that_dies_leaves_its_chunks_to_the_recorder(monkeypatch):
    """Killed mid-run (out of memory, say): the chunks it held are computed inline, and so is the rest."""
    use_process(monkeypatch, [])
    submit, submitted = C.StatsProcess.submit, []

    def submit_then_die(self, s, direct, state):
        submit(self, s, direct, state)
        submitted.append(s)
        if len(submitted) == 2:
            self.process.kill()
            self.process.join(5)

    monkeypatch.setattr(C.StatsProcess, "submit", submit_then_die)
    rec = twenty_steps()
    assert len(submitted) == 2 and rec._process is None
    assert_same_as_inline(monkeypatch, rec)


def test_a_process_found_dead_at_a_hand_over_leaves_its_chunks_to_the_recorder(monkeypatch):
    """Killed between two chunks: the next hand-over finds its pipe broken, and that chunk, and the one the process
    still held, are computed inline."""
    use_process(monkeypatch, [])
    result, results = C.StatsProcess.result, []

    def result_then_die(self):
        results.append(result(self))
        self.process.kill()
        self.process.join(5)
        return results[-1]

    monkeypatch.setattr(C.StatsProcess, "result", result_then_die)
    rec = twenty_steps()
    assert len(results) == 1 and rec._process is None
    assert_same_as_inline(monkeypatch, rec)


@pytest.mark.skipif(not hasattr(C.os, "sched_getscheduler"), reason="Linux scheduling policies only")
def test_the_process_runs_under_the_batch_policy(started, monkeypatch):
    """SCHED_BATCH: it never preempts the training thread when a chunk wakes it (chunk_stats.batch_policy); the
    training process keeps its own policy."""
    policies, submit = [], C.StatsProcess.submit

    def submit_and_look(self, *args):
        policies.append((C.os.sched_getscheduler(self.process.pid), C.os.sched_getscheduler(0)))
        return submit(self, *args)

    monkeypatch.setattr(C.StatsProcess, "submit", submit_and_look)
    own = C.os.sched_getscheduler(0)
    T.run_recorded(T.tiny(norm="batch"), steps=4, chunk=1)
    assert started and started[0] and policies
    assert set(policies) == {(C.os.SCHED_BATCH, own)} and own != C.os.SCHED_BATCH
