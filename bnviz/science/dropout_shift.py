"""Lesson: dropout and batch norm, the variance shift (Li, Chen, Hu & Yang, CVPR 2019, "Understanding the disharmony
between dropout and batch normalization by variance shift").

Dropout with drop probability q keeps a unit with probability 1 - q and divides it by 1 - q, so in training a unit
a becomes a * m / (1 - q): its mean is unchanged but its variance grows. A BN layer *after* dropout learns its running
variance from these inflated training inputs; at test time dropout is off, the inputs' variance is smaller, and BN
divides by the wrong number: the "variance shift". Li et al. measure it on CIFAR networks and recommend placing dropout
after the last BN layer, where no BN layer follows it.

`dropout_shift_lesson` trains an MLP with BN three times from the same initial weights on the same batches: without
dropout, with dropout before every BN layer (act -> dropout -> linear -> BN), and with dropout only after the last BN
block (before the classifier). For every BN layer it compares what BN divides by at test time (its running variance)
with the variance its input really has on the test set in eval mode, per unit: shift = test variance / running
variance (1 = no shift), summarized by the geometric mean over the units of the layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..engine.config import RunConfig
from ..engine.data import BatchStream
from ..engine.models import build_model
from ..engine.trainer import load_for
from .experiment_runs import Progress, StageProgress
from .result_cache import remembered

PLACEMENTS = ("no dropout", "dropout before BN", "dropout after the last BN")
SHIFT_NET = dict(model="mlp", depth=3, width=64, activation="relu", norm="batch", batch_size=64, lr=0.05,
                 sgd_momentum=0.9)


class SeededDropout(nn.Dropout):
    """nn.Dropout drawing its masks from its own generator: the global one is shared with every thread of a server,
    so masks drawn from it would make the lesson's numbers depend on what else runs."""

    def __init__(self, drop: float, generator: torch.Generator):
        super().__init__(drop)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep / (1 - self.p)


def with_dropout(net: nn.Module, placement: str, drop: float, seed: int = 0) -> nn.Module:
    """`net` (a bnviz Net) with dropout inserted: before the layer of every block but the first (so before each of
    those blocks' BN), or on the last block's output (after its BN and activation, before the head)."""
    generator = torch.Generator().manual_seed(seed)
    if placement == "dropout before BN":
        for block in list(net.blocks)[1:]:
            block.layer = nn.Sequential(SeededDropout(drop, generator), block.layer)
    elif placement == "dropout after the last BN":
        net.head = nn.Sequential(SeededDropout(drop, generator), net.head)
    return net


def bn_input_variances(net: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Per BN layer, the biased variance of each unit of its input over `x`, with the whole network in eval mode."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    captured: list[torch.Tensor] = [None] * len(norms)
    handles = [m.register_forward_pre_hook(lambda m, i, k=k: captured.__setitem__(k, i[0].detach()))
               for k, m in enumerate(norms)]
    net.eval()
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return [t.double().var(dim=0, unbiased=False).numpy() for t in captured]


@dataclass
class DropoutShiftResult:
    settings: dict
    seconds: float
    summary: pd.DataFrame  # placement, layer, shift (geometric mean), shift_min, shift_max, test_acc


@remembered
def dropout_shift_lesson(drop: float = 0.5, steps: int = 1000, seed: int = 0,
                         progress: Progress = None) -> DropoutShiftResult:
    """Train the MLP for each of PLACEMENTS (same initial weights and batches) and measure the variance shift."""
    start = time.perf_counter()
    report = StageProgress(progress)
    cfg = RunConfig(**SHIFT_NET, steps=steps, seed=seed)
    data = load_for(cfg)
    torch.set_num_threads(cfg.threads)  # as the trainer does: one thread per job (more only compete on 2 cores)
    rows = []
    for index, placement in enumerate(PLACEMENTS):
        net = with_dropout(build_model(cfg, data.input_shape, data.n_classes), placement, drop, seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.sgd_momentum)
        stream = BatchStream(data, cfg.batch_size, seed)
        net.train()
        for step in range(steps):
            x, y = stream.next()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
            if step % 50 == 0:
                report((index + step / steps) / len(PLACEMENTS), f"{placement}: step {step:,} of {steps:,}")
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        test_var = bn_input_variances(net, data.x_test)
        with torch.no_grad():
            acc = float((net(data.x_test).argmax(1) == data.y_test).float().mean())
        for layer, (bn, var) in enumerate(zip(norms, test_var, strict=True)):
            ratio = var / (bn.running_var.double().numpy())
            rows.append({"placement": placement, "layer": layer + 1, "shift": float(np.exp(np.log(ratio).mean())),
                         "shift_min": float(ratio.min()), "shift_max": float(ratio.max()), "test_acc": acc})
    settings = {"model": "MLP, 3 blocks of 64 units (linear -> BN -> ReLU)", "data": "8x8 digits",
                "dropout": f"drop probability {drop:g}", "steps": steps, "batch size": cfg.batch_size,
                "lr": cfg.lr, "optimizer": "SGD, momentum 0.9", "seed": seed}
    report(1.0, "done", force=True)
    return DropoutShiftResult(settings, time.perf_counter() - start, pd.DataFrame(rows))


def dropout_findings(result: DropoutShiftResult) -> list[str]:
    """Sentences computed from the table."""
    out = []
    for placement, part in result.summary.groupby("placement", sort=False):
        shifts = ", ".join(f"BN layer {r.layer}: {r.shift:.2f} (units {r.shift_min:.2f} to {r.shift_max:.2f})"
                           for r in part.itertuples())
        out.append(f"{placement[0].upper()}{placement[1:]}: test variance / running variance {shifts}; test "
                   f"accuracy {part['test_acc'].iloc[0]:.1%}.")
    return out
