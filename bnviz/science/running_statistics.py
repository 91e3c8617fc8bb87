"""Lessons: BN's running statistics in eval mode, and what BN does not do (decorrelate its channels).

`running_stats_lesson` trains the default CNN with BN on small batches, then measures:

* **EMA vs precise statistics** (Wu & Johnson 2021, "Rethinking 'batch' in batch norm"): eval-mode test accuracy
  with the running averages the training kept (an exponential moving average, EMA, over recent batches while the
  weights were still changing) and with statistics recomputed over the training set with the final weights
  ("precise BN").
* **The EMA's lag**: one channel's batch mean at every step, and the running mean that the EMA formula
  running <- (1 - momentum) * running + momentum * batch_mean would give for several momenta (the update rule
  PyTorch uses, applied to the recorded batch means).
* **Train mode at test time**: the same network scoring test images one at a time in train mode (each image
  normalized with its own statistics over H and W) instead of eval mode: the classic forgotten `model.eval()`.
* **No whitening** (Ioffe & Szegedy 2015, section 3): the correlation matrix of the first BN layer's channels,
  before and after BN. BN rescales each channel on its own, so correlations between channels stay as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..engine.config import RunConfig
from ..engine.trainer import Job, Run
from .experiment_runs import Progress, StageProgress, drive
from .result_cache import remembered

MOMENTA = (0.01, 0.1, 0.5)  # the EMA weights of the new batch compared (PyTorch's default: 0.1)
PRECISE_BATCH = 256  # images per forward pass when recomputing the statistics over the training set
TRACKED_CHANNEL = 0  # the channel of the first BN layer whose batch mean is followed over training
REFERENCE_HALF_WINDOW = 25  # the channel's current mean is estimated from the batch means 25 steps either side


def ema(values: np.ndarray, momentum: float, start: float = 0.0) -> np.ndarray:
    """The running value after each step: r_t = (1 - momentum) r_(t-1) + momentum v_t, r_(-1) = start."""
    out = np.empty(len(values))
    running = start
    for i, value in enumerate(values):
        running = (1 - momentum) * running + momentum * value
        out[i] = running
    return out


def centered_mean(values: np.ndarray, half_window: int = REFERENCE_HALF_WINDOW) -> np.ndarray:
    """Mean of values[t - h : t + h + 1] at every t (shorter windows at the ends): an estimate of what the batch
    mean is around step t without one batch's noise and without lagging behind (it also looks ahead)."""
    kernel = np.ones(2 * half_window + 1)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return sums / counts


def ema_errors(batch_means: np.ndarray, momenta=MOMENTA) -> dict[float, float]:
    """Mean |running mean - centered_mean| over the steps after the first window, per momentum: how far the
    running estimate is from the channel's current mean, through noise (large momentum) or lag (small)."""
    reference = centered_mean(batch_means)
    skip = 2 * REFERENCE_HALF_WINDOW  # let every EMA forget its start value 0 first
    return {m: float(np.abs(ema(batch_means, m) - reference)[skip:].mean()) for m in momenta}


def channel_correlation(x: torch.Tensor) -> np.ndarray:
    """Correlation matrix between the channels of x (N, C, H, W) or (N, C), each channel's values pooled over
    everything but C (the values BN normalizes together)."""
    flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double().numpy()
    return np.corrcoef(flat)


def batch_norm_layers(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, train_mode: bool = False, batch: int = 500) -> float:
    """Share of correct predictions, in eval mode or in train mode with test batches of `batch` images (the running
    statistics are not touched: their momentum is set to 0 while scoring in train mode)."""
    norms = batch_norm_layers(net)
    saved = [m.momentum for m in norms]
    net.train(train_mode)
    try:
        for m in norms:
            m.momentum = 0.0
        with torch.no_grad():
            correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        net.eval()
    return correct / len(x)


def precise_statistics(net: nn.Module, x_train: torch.Tensor) -> nn.Module:
    """A copy of `net` whose BN running statistics are recomputed over all of `x_train` with the final weights: a
    cumulative average over batches of PRECISE_BATCH (momentum None), each batch's variance the unbiased one, as
    PyTorch stores it."""
    import copy

    copy_ = copy.deepcopy(net)
    norms = batch_norm_layers(copy_)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    copy_.train()
    with torch.no_grad():
        for i in range(0, len(x_train), PRECISE_BATCH):
            copy_(x_train[i:i + PRECISE_BATCH])
    return copy_.eval()


@dataclass
class RunningStatsResult:
    settings: dict
    seconds: float
    acc_ema: float  # eval mode, running statistics kept during training
    acc_precise: float  # eval mode, statistics recomputed over the training set
    acc_train_mode_one: float  # train mode, one test image at a time
    acc_train_mode_batch: float  # train mode, the whole test set in batches of 500
    batch_means: np.ndarray  # TRACKED_CHANNEL's batch mean at every step
    correlation_in: np.ndarray  # first BN layer's channels, before BN (its input)
    correlation_out: np.ndarray  # the same channels after BN


def record_batch_means(run: Run) -> tuple[list[float], torch.utils.hooks.RemovableHandle]:
    """Hook the run's first BN layer: its input's batch mean of TRACKED_CHANNEL at every training forward pass."""
    means: list[float] = []
    first = batch_norm_layers(run.model)[0]

    def hook(module, inputs):
        if module.training and torch.is_grad_enabled():  # a training step (evaluations run under no_grad)
            x = inputs[0].detach()
            means.append(float(x[:, TRACKED_CHANNEL].mean()))

    return means, first.register_forward_pre_hook(hook)


@remembered
def running_stats_lesson(steps: int = 400, batch_size: int = 8, seed: int = 0,
                         progress: Progress = None) -> RunningStatsResult:
    """Train the default CNN with BN (batch `batch_size`) for `steps`, then measure the four things above."""
    start = time.perf_counter()
    report = StageProgress(progress)
    cfg = RunConfig(norm="batch", steps=steps, batch_size=batch_size, seed=seed, record_every=0, eval_every=steps,
                    lr=0.02)
    job = Job(cfg)
    run = job.runs[0]
    means, handle = record_batch_means(run)
    try:
        drive(job.runs, job.streams, report.part(0.0, 0.8, "training the CNN with BN"))
    finally:
        handle.remove()
    report(0.8, "measuring", force=True)
    net, data = run.model.eval(), run.dataset
    first = batch_norm_layers(net)[0]
    captured: dict[str, torch.Tensor] = {}
    handles = [first.register_forward_pre_hook(lambda m, i: captured.__setitem__("in", i[0].detach())),
               first.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o.detach()))]
    try:
        acc_ema = accuracy(net, data.x_test, data.y_test)  # fills `captured` (eval mode: running statistics)
    finally:
        for h in handles:
            h.remove()
    result = RunningStatsResult(
        settings={"steps": steps, "batch size": batch_size, "seed": seed, "lr": cfg.lr,
                  "model": "default CNN (3 conv blocks of 16 channels, BN before ReLU)"},
        seconds=0.0, acc_ema=acc_ema,
        acc_precise=accuracy(precise_statistics(net, data.x_train), data.x_test, data.y_test),
        acc_train_mode_one=accuracy(net, data.x_test, data.y_test, train_mode=True, batch=1),
        acc_train_mode_batch=accuracy(net, data.x_test, data.y_test, train_mode=True),
        batch_means=np.asarray(means), correlation_in=channel_correlation(captured["in"]),
        correlation_out=channel_correlation(captured["out"]))
    result.seconds = time.perf_counter() - start
    report(1.0, "done", force=True)
    return result


def off_diagonal_max(matrix: np.ndarray) -> float:
    """Largest |correlation| between two different channels."""
    return float(np.abs(matrix - np.diag(np.diag(matrix))).max())


def running_stats_findings(result: RunningStatsResult) -> list[str]:
    """Sentences computed from the run."""
    n = result.settings["batch size"]
    errors = ema_errors(result.batch_means)
    corr_in, corr_out = off_diagonal_max(result.correlation_in), off_diagonal_max(result.correlation_out)
    return [
        f"Eval mode with the running statistics kept during training (EMA, momentum 0.1): test accuracy "
        f"{result.acc_ema:.1%}; with statistics recomputed over the training set after training (precise BN): "
        f"{result.acc_precise:.1%}.",
        f"Train mode at test time: {result.acc_train_mode_batch:.1%} with batches of 500 test images, "
        f"{result.acc_train_mode_one:.1%} one image at a time (each image normalized by its own statistics over "
        f"its 8x8 positions). Trained with batches of {n}.",
        "Mean distance of the running mean from the channel's current mean (estimated from the batch means "
        f"{REFERENCE_HALF_WINDOW} steps either side): "
        + ", ".join(f"{errors[m]:.3f} at momentum {m:g}" for m in MOMENTA)
        + ". A small momentum averages many batches (little noise) but lags behind the changing weights; a large "
        "one follows each batch's noise.",
        f"Largest correlation between two different channels of the first BN layer: {corr_in:.2f} before BN and "
        f"{corr_out:.2f} after: BN standardizes each channel, it does not decorrelate them.",
    ]
