"""The recorder's worker thread (statistics computed off the training thread while a core is spare).

The numpy-reference tests of tests/test_recorder.py run here again with the worker forced on (they run with whichever
mode the machine's load picks there); the worker and the inline path give the same numbers bit for bit, across
several bank switches; the worker stops with the recorder; an error on the worker surfaces at `flush`.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import test_recorder as T

from bnviz.engine import recorder as R

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")


@pytest.fixture(params=[True, False], ids=["worker", "inline"])
def mode(request, monkeypatch):
    monkeypatch.setattr(R, "spare_core", lambda: request.param)
    return request.param


def test_numpy_references_hold_with_the_worker(mode):
    T.test_every_value_sampled_stats_equal_numpy_on_the_full_tensors(T.FULL_CASES[0])
    T.test_subsampled_stats_equal_numpy_on_the_sampled_positions({"norm": "batch", "activation": "relu"}, 100)
    T.test_weight_stats_equal_numpy_on_my_copies_before_and_after_the_step(T.FULL_CASES[0])
    T.test_batch_norm_channel_stats_solved_from_the_running_update(T.FULL_CASES[0], 0.1)
    T.test_flush_makes_pending_steps_visible()


def test_worker_and_inline_give_identical_histories(monkeypatch):
    results = {}
    for worker in (True, False):
        monkeypatch.setattr(R, "spare_core", lambda worker=worker: worker)
        rec, _, _ = T.run_recorded(T.tiny(norm="batch"), steps=17, chunk=3, samples=64)  # 6 hand-overs
        results[worker] = T._history_arrays(rec)
    assert len(results[True]["step"]) == 17
    for name, values in results[False].items():
        np.testing.assert_array_equal(results[True][name], values, err_msg=name)


def stats_threads():
    return [t for t in threading.enumerate() if t.name.startswith("bnviz-stats") and t.is_alive()]


def test_the_worker_stops_with_the_recorder_and_its_errors_surface_at_flush(monkeypatch):
    monkeypatch.setattr(R, "spare_core", lambda: True)
    before = len(stats_threads())
    rec, _, _ = T.run_recorded(T.tiny(norm="batch"), steps=5, chunk=2)
    assert list(rec.history.steps) == [0, 1, 2, 3, 4]
    assert len(stats_threads()) == before  # detach (the with block's exit) stopped it

    def boom(chunk):
        raise RuntimeError("boom on the worker")

    monkeypatch.setattr(R.Recorder, "_compute", lambda self, chunk: boom(chunk))
    with pytest.raises(RuntimeError, match="boom on the worker"):
        T.run_recorded(T.tiny(norm="batch"), steps=3, chunk=2)
    assert len(stats_threads()) == before
