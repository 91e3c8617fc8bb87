"""The cost model and the served app's admission control (issue 13, row 3): estimates checked against an
independent count of the network's work, refusals that say what to lower, and a pause that gives its slot back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnviz.engine import cost, jobs
from bnviz.engine.config import RunConfig
from bnviz.engine.jobs import JobLimiter, Lab
from bnviz.engine.models import build_model
from bnviz.errors import ConfigError

MB = 2 ** 20


def counted_work(cfg: RunConfig, shape: tuple[int, int, int], n_classes: int) -> tuple[int, int, int]:
    """Multiply-adds, activation values of the blocks and parameters of the real network, counted with hooks."""
    net = build_model(cfg, shape, n_classes)
    macs, kept = [0], [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            macs[0] += output.numel() * module.in_channels * 9
        elif isinstance(module, nn.Linear):
            macs[0] += module.in_features * module.out_features
        if module is not net.head:  # the blocks' layer, norm, activation and pooling outputs
            kept[0] += output.numel()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    net.eval()  # one example: batch norm uses its running statistics
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return macs[0], kept[0], sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("cfg, shape", [
    (RunConfig(), (1, 8, 8)),
    (RunConfig(norm="none", depth=4, width=8), (3, 32, 32)),
    (RunConfig(depth=6, width=128), (3, 64, 64)),
    (RunConfig(model="mlp", depth=3, width=32), (1, 28, 28)),
])
def test_network_work_matches_a_count_of_the_real_network(cfg, shape):
    macs, kept, params = cost.network_work(cfg, shape, 10)
    real_macs, real_kept, real_params = counted_work(cfg, shape, 10)
    assert macs == real_macs and kept == real_kept
    assert real_params <= params <= real_params * 1.05  # biases counted even where BN replaces them


def test_estimates_grow_with_the_settings_and_the_calibration_is_positive():
    assert cost.multiply_add_rate() > 1e6
    small = cost.estimate([RunConfig()], (1, 8, 8), 10, 1797)
    wide = cost.estimate([RunConfig(width=128, batch_size=256)], (1, 8, 8), 10, 1797)
    twin = cost.estimate([RunConfig()] * 2, (1, 8, 8), 10, 1797)
    assert wide.step_seconds > small.step_seconds and wide.memory_bytes > small.memory_bytes
    assert twin.step_seconds == pytest.approx(2 * small.step_seconds)
    assert small.memory_bytes > 4 * 1797 * 64  # at least the data set as float32


WIDEST = RunConfig(depth=6, width=128, batch_size=256, steps=20_000)


def test_the_widest_config_is_refused_with_its_estimate_and_what_to_lower(monkeypatch, engine_digits):
    monkeypatch.setattr(cost, "_RATE", [4e9])  # a fixed machine: the message's numbers are reproducible
    lab = Lab(limiter=JobLimiter(2, memory_bytes=4096 * MB), max_run_s=600)
    with pytest.raises(ConfigError) as info:
        lab.start([WIDEST, WIDEST.replace(norm="none")])
    message = str(info.value)
    step = cost.estimate([WIDEST, WIDEST.replace(norm="none")], (1, 8, 8), 10, 1797).step_seconds
    assert f"Lower the steps to {int(600 / step):,} or fewer" in message and "20,000 steps" in message, message
    assert lab.job is None and lab.limiter.in_use == 0  # nothing runs, no slot held


def test_memory_budget_refuses_one_too_large_run_and_a_run_that_does_not_fit_now(monkeypatch):
    small = RunConfig(steps=1_000, eval_every=1_000)
    one = cost.estimate([small], (1, 8, 8), 10, 1797).memory_bytes
    limiter = JobLimiter(4, memory_bytes=int(one * 1.5))
    first, second = Lab(limiter=limiter), Lab(limiter=limiter)
    with pytest.raises(ConfigError, match="this server allows"):
        first.start([small, small])
    first.start([small])
    first.job.pause()  # holds its slot and its memory
    try:
        second.start([small])  # a paused run is not joined; this one does not fit next to it, so it waits
        assert second.queued and limiter.in_use == 1 and second.place().position == 1
    finally:
        first.stop()
    assert not second.queued and second.running  # the memory came back with the slot: it started
    second.stop()


def test_a_paused_job_gives_its_slot_back(monkeypatch):
    monkeypatch.setattr(jobs, "PAUSE_RELEASE_S", 0.3)
    limiter = JobLimiter(1)
    lab = Lab(limiter=limiter, max_run_s=None)
    lab.start([RunConfig(steps=100_000, eval_every=100_000)])
    lab.job.pause()
    lab.job.join(10)
    assert not lab.job.alive and limiter.in_use == 0
    assert lab.job.status != "paused"
    assert "stopped after a pause of 0 s" in lab.job.snapshot().message  # the page says why the run ended
