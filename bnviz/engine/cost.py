"""What a run will cost before it starts: memory and time per step from its settings (a model of the network's work,
calibrated once per process by a short measurement), and the served app's admission rule.

Work: one training step of a batch of B examples costs about 3 forward passes (forward, and backward for inputs and
weights) of `multiply_adds` each per example; the calibration times exactly that on a reference network of this
machine's own to get multiply-adds per second per torch thread. Memory: the activations kept for the backward pass
(and their gradients), the weights with their gradients and optimizer state, the data set as float32, and the
fixed-size recorded history. The model is deliberately simple: on the development machine (2 cores shared with
other work) real steps took 0.55 to 2.1 times the estimate (small networks, where fixed costs dominate, and the
widest settings on `shapes` ran faster than estimated; 64x64 RGB at width 128 slower), which is close enough to
refuse runs of hours.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .config import RunConfig

HISTORY_BYTES = 34 * 1024 * 1024  # the largest history a run records (history.capacity_for's 32 MiB budget)
RUN_OVERHEAD_BYTES = 40 * 1024 * 1024  # torch's per-run workspaces, the recorder's samples, the model objects
STEP_OVERHEAD_S = 0.004  # recording and bookkeeping per step, beyond the network's arithmetic
_RATE: list[float] = []  # multiply-adds per second per thread, measured once
_RATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Cost:
    """The estimated cost of a job (one run or a twin pair trained side by side)."""

    memory_bytes: int
    step_seconds: float
    steps: int

    @property
    def total_seconds(self) -> float:
        return self.step_seconds * self.steps

    def describe(self) -> str:
        return (f"about {self.memory_bytes / 2**20:,.0f} MB and {_duration(self.step_seconds)} a step, "
                f"{_duration(self.total_seconds)} for {self.steps:,} steps")


def network_work(cfg: RunConfig, input_shape: tuple[int, int, int], n_classes: int) -> tuple[int, int, int]:
    """(multiply-adds of one example's forward pass, activation values kept per example, parameters) of the
    network `models.build_model` makes for these settings."""
    channels, height, width = input_shape
    cnn = cfg.model == "cnn"
    stages = 3 if cfg.norm != "none" else 2  # layer output, normalized output, activation output
    size, inputs, macs, kept, params = height, channels if cnn else channels * height * width, 0, 0, 0
    for _ in range(cfg.depth):
        pixels = size * size if cnn else 1
        weights = inputs * cfg.width * (9 if cnn else 1)
        macs += weights * pixels
        params += weights + 3 * cfg.width  # bias and the norm's two parameters, at most
        kept += stages * cfg.width * pixels
        if cnn and size > 8:  # the block's average pooling
            size //= 2
            kept += cfg.width * size * size
        inputs = cfg.width
    macs += cfg.width * n_classes
    params += (cfg.width + 1) * n_classes
    return macs, kept, params


def estimate(configs: list[RunConfig], input_shape: tuple[int, int, int], n_classes: int, n_examples: int) -> Cost:
    """The cost of training `configs` side by side on `n_examples` images of `input_shape` (C, H, W)."""
    memory, seconds = 0, 0.0
    for cfg in configs:
        macs, kept, params = network_work(cfg, input_shape, n_classes)
        memory += 4 * (2 * cfg.batch_size * kept + 4 * params) + HISTORY_BYTES + RUN_OVERHEAD_BYTES
        seconds += 3 * macs * cfg.batch_size / (multiply_add_rate() * max(1, cfg.threads)) + STEP_OVERHEAD_S
    memory += 4 * n_examples * input_shape[0] * input_shape[1] * input_shape[2]  # the data set as float32
    return Cost(memory, seconds, max(cfg.steps for cfg in configs))


def multiply_add_rate() -> float:
    """Multiply-adds per second one torch thread achieves on a training step (measured once, about 0.2 s)."""
    with _RATE_LOCK:
        if not _RATE:
            _RATE.append(_measure_rate())
        return _RATE[0]


def _measure_rate(seconds: float = 0.2) -> float:
    from .models import build_model

    cfg = RunConfig(depth=2, width=64, batch_size=64, threads=1)  # GEMMs the size of the costly settings
    shape = (1, 16, 16)
    net = build_model(cfg, shape, 10)
    x, y = torch.rand(cfg.batch_size, *shape), torch.randint(0, 10, (cfg.batch_size,))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        count, started = 0, time.perf_counter()
        while count < 3 or time.perf_counter() - started < seconds:
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    return 3 * network_work(cfg, shape, 10)[0] * cfg.batch_size * count / elapsed


# ---- admission in the served app ----------------------------------------------------------------------------------


def run_time_budget() -> float:
    """Seconds one run may take in the served app: BNVIZ_MAX_RUN_S (default 600)."""
    return _env_float("BNVIZ_MAX_RUN_S", 600.0)


def memory_budget() -> int:
    """Bytes all training on this server may take together: BNVIZ_MEMORY_MB (default half the machine's RAM)."""
    default = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 / 2**20
    return int(_env_float("BNVIZ_MEMORY_MB", default) * 2**20)


def check_time(cost: Cost, budget_s: float) -> None:
    """ConfigError naming what to lower when the run would take longer than `budget_s`."""
    if cost.total_seconds <= budget_s:
        return
    steps = max(1, int(budget_s / cost.step_seconds))
    raise ConfigError(f"This run would take {cost.describe()}; the limit on this server is "
                      f"{_duration(budget_s)}. Lower the steps to {steps:,} or fewer, or the batch size, width, "
                      "depth or image size.")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default
