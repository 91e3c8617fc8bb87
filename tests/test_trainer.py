"""bnviz.engine.trainer: determinism, divergence, the threaded Job controls, twin runs, evaluation and errors."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnviz.engine.config import RunConfig
from bnviz.engine.data import BatchStream
from bnviz.engine.models import build_model
from bnviz.engine.trainer import Job, Run

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")


def tiny(**changes) -> RunConfig:
    base = {"model": "cnn", "depth": 2, "width": 4, "batch_size": 8, "steps": 12, "eval_every": 5, "samples": 64,
            "hist_bins": 8, "lr": 0.1}
    return RunConfig(**{**base, **changes}).validate()


def wait_until(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_until_still(job, timeout=60.0):
    """Wait until the job's step stops moving (a paused worker finishes its current step first)."""
    def still():
        before = job.step
        time.sleep(0.05)
        return job.step == before

    wait_until(still, timeout, what="the job to hold still")


def last_recorded_step(job) -> int:
    h = job.snapshot().runs[0].history
    return int(h.steps[-1]) if len(h) else -1


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def history_arrays(run) -> dict:
    h = run.history
    return {name: h.column(name) for name in h.data} | {"edges": h.hist_edges}


# ---- determinism ---------------------------------------------------------------------------------------------
def test_same_config_and_seed_give_identical_runs(engine_datasets):
    cfg = tiny(norm="batch")
    a = Job(cfg, engine_datasets).run_to_end()
    b = Job(cfg, engine_datasets).run_to_end()
    assert a.status == b.status == "finished"
    ra, rb = a.runs[0], b.runs[0]
    assert list(ra.history.steps) == list(range(12))
    assert np.all(np.isfinite(ra.history.scalar("loss")))
    for name, values in history_arrays(ra).items():
        np.testing.assert_array_equal(history_arrays(rb)[name], values, err_msg=name)
    for (k, v), (k2, v2) in zip(ra.model.state_dict().items(), rb.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    assert ra.final_test_acc == rb.final_test_acc and 0 <= ra.final_test_acc <= 1


def test_step_0_is_the_untrained_network_on_the_first_batch(engine_digits, engine_datasets):
    """Independent reference: a freshly built model and a fresh batch stream with the same seed."""
    cfg = tiny(norm="batch", seed=0)
    run = Job(cfg, engine_datasets).run_to_end().runs[0]
    model = build_model(cfg, engine_digits.input_shape, engine_digits.n_classes).train()
    x, y = BatchStream(engine_digits, cfg.batch_size, cfg.seed).next()
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        train_acc = (logits.argmax(1) == y).float().mean().item()
    h = run.history
    assert h.scalar("loss")[0] == pytest.approx(loss, rel=1e-6)
    assert h.scalar("train_acc")[0] == pytest.approx(train_acc)
    assert h.scalar("lr")[0] == cfg.lr
    evaluated = h.steps[np.isfinite(h.scalar("test_acc"))]
    assert list(evaluated) == [0, 5, 10, 11]  # every eval_every steps and at the last step
    assert np.all(np.isfinite(h.scalar("test_acc_train_mode")[evaluated]))


def test_every_steps_training_accuracy_is_that_of_its_own_batch(engine_digits, engine_datasets):
    """Independent reference: numpy on the logits of each training step (kept by a hook on the model) and the labels
    of the same batch stream; float32 count / N, as the step's mean of 0s and 1s rounds it. Steps of a chunk are
    handed over together (the accuracies computed in one call) and when the run flushes at its end."""
    cfg = tiny(norm="batch", steps=40, batch_size=7)
    job = Job(cfg, engine_datasets)
    run = job.runs[0]
    logits = []
    run.model.register_forward_hook(
        lambda m, i, out: logits.append(out.detach().numpy().copy()) if torch.is_grad_enabled() else None)
    job.run_to_end()
    stream = BatchStream(engine_digits, cfg.batch_size, cfg.seed)
    expected = []
    for step_logits in logits:
        labels = stream.next()[1].numpy()
        correct = np.count_nonzero(step_logits.argmax(1) == labels)
        expected.append(float(np.float32(correct) / np.float32(len(labels))))
    assert len(expected) == cfg.steps and len({*expected}) > 1
    assert run.history.scalar("train_acc").tolist() == expected


def test_batch_accuracies_match_one_step_at_a_time_for_every_count_and_mixed_shapes():
    from bnviz.engine.recorder import batch_accuracies
    g = torch.Generator().manual_seed(3)
    for n in (1, 3, 7, 10, 64, 100):
        labels = torch.randint(10, (n + 1, n), generator=g)
        wrong = (labels + 1) % 10
        chosen = torch.where(torch.arange(n) < torch.arange(n + 1)[:, None], labels, wrong)  # k right in row k
        pairs = [(F.one_hot(chosen[k], 10).float(), labels[k]) for k in range(n + 1)]
        assert batch_accuracies(pairs) == [float(np.float32(k) / np.float32(n)) for k in range(n + 1)]
    mixed = [(torch.randn(5, 3, generator=g), torch.randint(3, (5,), generator=g)),
             (torch.randn(4, 3, generator=g), torch.randint(3, (4,), generator=g))]
    assert batch_accuracies(mixed) == [float((lg.argmax(1) == lb).float().mean()) for lg, lb in mixed]


@pytest.mark.parametrize("changes", [{"norm": "batch"}, {"norm": "batch-noisy", "dropout": 0.2},
                                     {"norm": "batch-renorm"}, {"norm": "batch", "ics_every": 5}])
def test_a_jobs_first_evaluation_comes_after_its_first_row_with_the_same_numbers(engine_datasets, changes):
    """A job hands its first step's statistics over before evaluating the test accuracy of that step (a page draws
    the first chart sooner), on the network as it was at that step: every recorded number is the one an evaluation
    inside the step gives (the same run trained step by step here)."""
    cfg = tiny(**changes)
    job = Job(cfg, engine_datasets)
    rows_at_eval = []
    evaluate = Run.evaluate

    def noting(run, *args, **kwargs):
        rows_at_eval.append(len(run.history))
        return evaluate(run, *args, **kwargs)

    try:
        Run.evaluate = noting
        job.run_to_end()
    finally:
        Run.evaluate = evaluate
    assert rows_at_eval[0] == (0 if cfg.ics_every else 1)  # step 0's row first (not with the ICS measure)
    reference = Job(cfg, engine_datasets)
    run, stream = reference.runs[0], reference.streams[0]
    while not run.done:
        run.train_step(*stream.next())
    assert np.isfinite(job.runs[0].history.scalar("test_acc")[0])
    for name, values in history_arrays(run).items():
        np.testing.assert_array_equal(history_arrays(job.runs[0])[name], values, err_msg=name)
    for (k, v), (k2, v2) in zip(run.model.state_dict().items(), job.runs[0].model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    assert run.history.meta["summary"] == job.runs[0].history.meta["summary"]


def test_different_seed_gives_a_different_run(engine_datasets):
    a = Job(tiny(seed=0, steps=5), engine_datasets).run_to_end().runs[0]
    b = Job(tiny(seed=1, steps=5), engine_datasets).run_to_end().runs[0]
    assert not np.array_equal(a.history.scalar("loss"), b.history.scalar("loss"))
    assert not torch.equal(a.model.blocks[0].layer.weight, b.model.blocks[0].layer.weight)


# ---- divergence ----------------------------------------------------------------------------------------------
EXPLODING = {"model": "mlp", "depth": 4, "width": 32, "norm": "none", "activation": "relu", "init": "normal",
             "init_scale": 100.0, "lr": 100.0, "steps": 30}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns about the NaN row
def test_divergence_stops_the_run_and_keeps_its_history(engine_datasets):
    job = Job(tiny(**EXPLODING), engine_datasets).run_to_end()  # no exception
    run = job.runs[0]
    assert job.status == run.status == "diverged" and job.error is None
    assert run.diverged_at is not None and run.diverged_at < 30 and run.step == run.diverged_at
    h = run.history
    assert list(h.steps) == list(range(run.diverged_at + 1))  # every step up to and including the bad one
    loss = h.scalar("loss")
    assert np.all(np.isfinite(loss[:-1])) and not np.isfinite(loss[-1])
    assert h.meta["summary"]["diverged_at"] == run.diverged_at and h.meta["summary"]["status"] == "diverged"
    assert hook_count(run.model) == 0
    message = job.snapshot().message
    assert f"diverged at step {run.diverged_at}" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_twin_does_not_stop_the_other(engine_datasets):
    a = tiny(**EXPLODING)
    b = a.replace(norm="batch", lr=0.05)
    job = Job([a, b], engine_datasets).run_to_end()
    assert [r.status for r in job.runs] == ["diverged", "finished"]
    assert job.runs[1].step == 30 and len(job.runs[1].history) == 30
    assert "run A: diverged" in job.snapshot().message


# ---- the threaded Job ------------------------------------------------------------------------------------------
def test_job_start_pause_set_lr_resume_stop_from_another_thread(engine_datasets):
    job = Job(tiny(norm="batch", steps=1_000_000, eval_every=10**6, lr=0.1), engine_datasets)
    assert job.status == "ready"
    job.start()
    try:
        assert job.alive
        wait_until(lambda: job.step >= 3, what="training to start")
        # snapshots while running: consistent, independent copies
        snaps = []
        for _ in range(10):
            snap = job.snapshot()
            h = snap.runs[0].history
            assert all(len(v) == len(h) for v in h.data.values())
            assert np.all(np.diff(h.steps) > 0) and (len(h) == 0 or h.steps[0] == 0)
            assert np.all(np.isfinite(h.scalar("loss")))
            assert len(h) == 0 or h.steps[-1] < snap.runs[0].step + 1
            snaps.append((snap, {k: v.copy() for k, v in h.data.items()}))
            time.sleep(0.002)
        job.pause()
        assert job.status == "paused"
        # the worker finishes its current step, then holds still
        wait_until_still(job)
        paused_at = job.step
        wait_until(lambda: last_recorded_step(job) == paused_at - 1, what="the paused worker to flush")
        time.sleep(0.05)
        assert job.step == paused_at and job.alive
        with pytest.raises(ValueError, match="lr"):
            job.set_lr(-1.0)
        job.set_lr(0.01)
        job.resume()
        assert job.status == "running"
        wait_until(lambda: job.step >= paused_at + 5, what="training to resume")
        job.pause()
        wait_until_still(job)
        wait_until(lambda: last_recorded_step(job) == job.step - 1, what="the flush")
        h = job.snapshot().runs[0].history
        lr = h.scalar("lr")
        np.testing.assert_array_equal(lr[h.steps < paused_at], 0.1)
        np.testing.assert_array_equal(lr[h.steps >= paused_at], 0.01)  # from the first step after the change
        assert (h.steps >= paused_at).sum() >= 5
        assert job.runs[0].lr == 0.01
        for snap, arrays in snaps:  # earlier snapshots did not move while training went on
            for k, v in snap.runs[0].history.data.items():
                np.testing.assert_array_equal(v, arrays[k])
    finally:
        job.stop()
    assert not job.alive
    assert job.status == job.runs[0].status == "stopped"
    assert math.isfinite(job.runs[0].final_test_acc)
    assert hook_count(job.runs[0].model) == 0
    assert job.snapshot().runs[0].summary["status"] == "stopped"


def test_the_rate_after_resume_counts_no_time_spent_paused(engine_datasets):
    job = Job(tiny(steps=1_000_000, eval_every=10**6), engine_datasets).start()
    try:
        wait_until(lambda: job.step >= 3, what="training to start")
        job.pause()
        wait_until_still(job)
        time.sleep(0.3)  # a pause: the rate over the last 64 steps would include it
        paused_at, resumed = job.step, time.perf_counter()
        job.resume()
        wait_until(lambda: job.step >= paused_at + 3, what="steps after the resume")
        assert job._times.copy()[0][0] >= resumed  # every step the rate counts came after the resume
        assert job.steps_per_s() > 0
    finally:
        job.stop()


def test_stop_while_paused_and_join(engine_datasets):
    job = Job(tiny(steps=1_000_000, eval_every=10**6), engine_datasets).start()
    wait_until(lambda: job.step >= 1, what="a first step")
    job.pause()
    job.stop()
    assert job.join(5) and not job.alive and job.status == "stopped"


def test_a_first_hold_waits_after_the_first_step_and_ends_at_stop(engine_datasets):
    """A job whose page draws its step 0 at once (first_hold, set by Lab.start) hands that step over and then waits:
    no step 1 while the page draws; Stop ends the wait at once. A job without it (the CLI, tests) goes straight on."""
    held = Job(tiny(steps=1_000_000, eval_every=10**6), engine_datasets)
    assert held.first_hold == 0.0  # the default: no wait
    held.first_hold = 600.0
    held.start()
    try:
        assert held.wait_for_data(60)
        time.sleep(0.3)
        assert held.step == 1 and list(held.runs[0].history.steps) == [0]  # step 0 recorded, step 1 not begun
    finally:
        held.stop()
    assert held.join(10) and held.status == "stopped" and held.step == 1
    free = Job(tiny(steps=1_000_000, eval_every=10**6), engine_datasets).start()
    try:
        wait_until(lambda: free.step >= 3, what="steps after the first")
    finally:
        free.stop()


def test_job_finishes_by_itself_in_a_thread(engine_datasets):
    job = Job(tiny(steps=15), engine_datasets).start()
    assert job.join(60)
    assert job.status == "finished" and job.step == 15 and list(job.runs[0].history.steps) == list(range(15))
    snap = job.snapshot()
    assert snap.status == "finished" and snap.step == snap.steps == 15 and "step 15 of 15" in snap.message



def test_the_status_line_leaves_the_rate_out_until_two_steps_are_timed():
    """'0 steps/s' under a run's first chart read as if it were stuck: with no rate yet the line gives none."""
    from bnviz.engine.trainer import JobSnapshot

    assert JobSnapshot("running", 1, 600, 0.0).message == "step 1 of 600 · running"
    assert JobSnapshot("running", 40, 600, 123.4).message == "step 40 of 600 · 123 steps/s · running"
    assert JobSnapshot("finished", 600, 600, 98.7).message == "step 600 of 600 · 99 steps/s · finished"

# ---- twin runs --------------------------------------------------------------------------------------------------
def test_twin_job_uses_identical_batches_and_identical_shared_initial_weights(engine_digits, engine_datasets):
    a, b = tiny(norm="none", steps=6), tiny(norm="batch", steps=6)
    job = Job([a, b], engine_datasets)
    initial = [{k: v.clone() for k, v in run.model.state_dict().items()} for run in job.runs]
    seen = [[], []]
    for i, run in enumerate(job.runs):
        original = run.train_step

        def spy(x, y, i=i, original=original):
            seen[i].append((x.clone(), y.clone()))
            return original(x, y)

        run.train_step = spy
    job.run_to_end()
    assert job.status == "finished" and [r.step for r in job.runs] == [6, 6]
    # identical batches, and they are the batches of the shared seed's stream
    stream = BatchStream(engine_digits, 8, 0)
    assert len(seen[0]) == len(seen[1]) == 6
    for (xa, ya), (xb, yb) in zip(*seen, strict=True):
        x, y = stream.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(xa, x) and torch.equal(ya, y)
    # identical shared initial weights: every tensor with the same name and shape
    shared = sorted(k for k in initial[0] if k in initial[1] and initial[0][k].shape == initial[1][k].shape)
    assert shared == ["blocks.0.layer.weight", "blocks.1.layer.weight", "head.bias", "head.weight"]
    assert job.runs[1].shared_weights == shared
    for k in shared:
        assert torch.equal(initial[0][k], initial[1][k]), k
    fresh = build_model(a, engine_digits.input_shape, engine_digits.n_classes).state_dict()
    for k, v in fresh.items():
        assert torch.equal(initial[0][k], v), k  # run A is exactly its own seeded init
    # same batches and same start, different normalization: the runs really differ afterwards
    assert not np.array_equal(job.runs[0].history.scalar("loss"), job.runs[1].history.scalar("loss"))
    assert job.runs[0].history.scalar("loss")[0] != job.runs[1].history.scalar("loss")[0]


# ---- evaluation ------------------------------------------------------------------------------------------------
def _trained_run(engine_digits, **changes) -> Run:
    run = Run(tiny(**changes), engine_digits)
    stream = BatchStream(engine_digits, run.cfg.batch_size, run.cfg.seed)
    for _ in range(4):
        run.train_step(*stream.next())
    return run


@pytest.mark.parametrize("norm", ["batch", "batch-noisy"])
@pytest.mark.parametrize("training", [True, False])
def test_evaluate_train_mode_leaves_running_stats_and_mode_unchanged(engine_digits, norm, training):
    run = _trained_run(engine_digits, norm=norm, steps=100)
    run.recorder.flush()
    rows = len(run.history)
    run.model.train(training)
    buffers = {k: v.clone() for k, v in run.model.named_buffers()}
    assert any("running_mean" in k for k in buffers) and any("num_batches_tracked" in k for k in buffers)
    reference = copy.deepcopy(run.model)  # the independent reference: my own evaluation loop on a copy
    acc = run.evaluate(train_mode=True, limit=200)
    for k, v in run.model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    assert run.model.training == training
    run.recorder.flush()
    assert len(run.history) == rows  # evaluation passes are never recorded
    x, y = engine_digits.x_test[:200], engine_digits.y_test[:200]
    reference.train()
    for m in reference.modules():
        if hasattr(m, "freeze_noise"):
            m.freeze_noise = True
    with torch.no_grad():
        correct = sum(int((reference(x[i:i + 8]).argmax(1) == y[i:i + 8]).sum()) for i in range(0, 200, 8))
    assert acc == correct / 200
    reference.eval()
    with torch.no_grad():
        eval_acc = float((reference(x).argmax(1) == y).float().mean())
    assert run.evaluate(train_mode=False, limit=200) == pytest.approx(eval_acc)


# ---- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threaded", [False, True])
def test_an_exception_inside_the_run_gives_status_error_and_removes_hooks(engine_datasets, threaded):
    job = Job(tiny(norm="batch", steps=50, eval_every=10**6), engine_datasets)
    run = job.runs[0]
    act = run.model.blocks[1].act
    calls = []

    def broken_forward(x):
        if torch.is_grad_enabled() and act.training:
            calls.append(1)
            if len(calls) == 4:
                raise RuntimeError("injected failure")
        return torch.relu(x)

    act.forward = broken_forward
    assert hook_count(run.model) > 0
    if threaded:
        job.start()
        assert job.join(60)
    else:
        job.run_to_end()
    assert job.status == "error" and run.status == "error"
    assert job.error == run.error == "RuntimeError: injected failure"
    assert "error: RuntimeError: injected failure" in job.snapshot().message
    assert hook_count(run.model) == 0
    assert list(run.history.steps) == [0, 1, 2]  # the steps completed before the failure are kept


# ---- SCIENCE.md, experiment 1 (Ioffe & Szegedy 2015, Figure 1, small version) ---------------------------------
# Sigmoid MLP 64-100-100-100-10 on 8x8 digits, batch 60, SGD lr 0.5, no momentum: the median of the input to the
# last hidden layer's sigmoids (the BN output with BN, the linear output without) drifts much less with BN.
def test_science_bn_keeps_the_last_sigmoid_input_median_in_place(engine_datasets):
    base = {"model": "mlp", "depth": 3, "width": 100, "activation": "sigmoid", "batch_size": 60, "lr": 0.5,
            "sgd_momentum": 0.0, "steps": 300, "eval_every": 10**6, "record_every": 5, "samples": 512}
    job = Job([RunConfig(norm="none", **base), RunConfig(norm="batch", **base)], engine_datasets).run_to_end()
    drift = {}
    for run in job.runs:
        assert run.status == "finished"
        h = run.history
        k = h.probe_index(2, "pre" if run.cfg.norm == "none" else "norm")  # what the last sigmoids receive
        median = h.act("p50")[:, k]
        drift[run.cfg.norm] = float(np.max(np.abs(median - median[0])))
    assert drift["batch"] < drift["none"] / 2, drift
    assert job.runs[1].final_test_acc > job.runs[0].final_test_acc  # and BN learns faster early on


def test_a_loss_that_stays_ten_times_above_its_start_is_a_divergence_with_finite_weights(engine_datasets):
    cfg = tiny(model="mlp", norm="none", lr=100.0, steps=200, eval_every=1000)
    run = Job(cfg, engine_datasets).run_to_end().runs[0]
    loss = run.history.scalar("loss")
    assert run.status == "diverged" and run.divergence.reason == "loss-stays-high"
    assert np.all(np.isfinite(loss)) and run.step == run.diverged_at == len(loss) - 1
    since = run.divergence.since
    assert np.all(loss[since:] > 10 * loss[0]) and run.diverged_at - since + 1 == 20
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    summary = run.history.meta["summary"]
    assert summary["diverged_reason"] == "loss-stays-high" and summary["diverged_since"] == since
    assert summary["final_test_acc"] is not None  # finite weights: the final accuracy is still measured
