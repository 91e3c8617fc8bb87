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

STARTED: list = []


@pytest.fixture
def process(monkeypatch):
    """spare_core() is True and every started process is waited for until ready, and recorded in STARTED."""
    ready, start = C.StatsProcess.poll_ready, R.Recorder._start_process

    def poll_ready(self):
        assert self.ready or self.conn.poll(60), "the statistics process did not start"
        return ready(self)

    def start_process(self):
        STARTED.append(start(self))
        return STARTED[-1]

    monkeypatch.setattr(R, "spare_core", lambda: True)
    monkeypatch.setattr(C.StatsProcess, "poll_ready", poll_ready)
    monkeypatch.setattr(R.Recorder, "_start_process", start_process)
    STARTED.clear()
    yield STARTED


def test_numpy_references_hold_with_the_process(process):
    T.test_every_value_sampled_stats_equal_numpy_on_the_full_tensors(T.FULL_CASES[0])
    T.test_subsampled_stats_equal_numpy_on_the_sampled_positions({"norm": "batch", "activation": "relu"}, 100)
    T.test_weight_stats_equal_numpy_on_my_copies_before_and_after_the_step(T.FULL_CASES[0])
    T.test_batch_norm_channel_stats_solved_from_the_running_update(T.FULL_CASES[0], 0.1)
    T.test_flush_makes_pending_steps_visible()
    assert process and all(p for p in process)


@pytest.mark.parametrize("changes", [{"norm": "batch"}, {"model": "mlp", "norm": "none", "activation": "sigmoid"}],
                         ids=str)
def test_process_and_inline_give_identical_histories(monkeypatch, changes):
    results = {}
    for use in (True, False):
        with monkeypatch.context() as m:
            if use:
                m.setattr(R, "spare_core", lambda: True)
                m.setattr(C.StatsProcess, "poll_ready", _wait_ready)
            else:
                m.setattr(R, "spare_core", lambda: False)
            rec, _, _ = T.run_recorded(T.tiny(**changes), steps=23, chunk=3, samples=64)  # 8 hand-overs
            results[use] = T._history_arrays(rec)
    assert len(results[True]["step"]) == 23
    for name, values in results[False].items():
        np.testing.assert_array_equal(results[True][name], values, err_msg=name)


_ready = C.StatsProcess.poll_ready


def _wait_ready(self):
    assert self.ready or self.conn.poll(60), "the statistics process did not start"
    return _ready(self)


def test_the_process_stops_with_the_recorder_and_its_errors_surface(process, monkeypatch):
    rec, _, _ = T.run_recorded(T.tiny(norm="batch"), steps=7, chunk=2)
    assert list(rec.history.steps) == list(range(7))
    assert len(process) == 1 and process[0] and rec._process is None
    process[0].process.join(5)
    assert not process[0].process.is_alive()

    small = R.Recorder._small_arrays
    monkeypatch.setattr(R.Recorder, "_small_arrays", lambda self, s: {**small(self, s), "steps": None})
    with pytest.raises(RuntimeError, match="in the statistics process"):
        T.run_recorded(T.tiny(norm="batch"), steps=7, chunk=2)
    process[-1].process.join(5)
    assert not process[-1].process.is_alive()
