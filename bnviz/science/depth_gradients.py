"""Gradients at initialization in deep plain networks, with and without batch norm (Yang et al., ICLR 2019).

Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz (2019), "A mean field theory of batch normalization", show that in
a deep fully connected network *without skip connections*, batch norm makes the gradients explode at
initialization: the gradient reaching the first layer grows exponentially with depth. This module measures it on
the bundled digits: for MLPs of increasing depth, the norm of the loss gradient with respect to the first hidden
layer's weights divided by that of the last hidden layer's weights, on one batch, before any training step.

A ratio far above 1 means the early layers get much larger gradients than the late ones (explosion towards the
input); far below 1, vanishing. The network without BN depends strongly on its initialization: `init="default"`
is PyTorch's (Kaiming-uniform with a = sqrt(5), which shrinks the signal layer by layer), `init="he"` is He et al.'s
N(0, 2 / fan_in), made for ReLU. Both are shown because the comparison with BN depends on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..engine.data import load_dataset
from ..errors import ConfigError
from .experiment_runs import Progress, StageProgress
from .result_cache import remembered

INITS = ("default", "he")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
MAX_DEPTH = 60  # a 60-block MLP of width 64 takes well under a second for one forward/backward pass on a CPU


def plain_mlp(depth: int, width: int, in_features: int, n_classes: int, batch_norm: bool, activation: str,
              init: str) -> nn.Sequential:
    """depth x (Linear -> [BatchNorm1d] -> activation), then a linear head; no skip connections."""
    layers: list[nn.Module] = []
    features = in_features
    for _ in range(depth):
        linear = nn.Linear(features, width, bias=not batch_norm)  # BN's beta replaces the bias
        if init == "he":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers += [linear] + ([nn.BatchNorm1d(width)] if batch_norm else []) + [ACTIVATIONS[activation]()]
        features = width
    return nn.Sequential(*layers, nn.Linear(width, n_classes))


def first_to_last_gradient_ratio(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    """||dL/dW_first|| / ||dL/dW_last hidden|| after one backward pass of the cross-entropy on (x, y)."""
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    hidden = [m for m in net if isinstance(m, nn.Linear)][:-1]  # the head is not a hidden layer
    return float(hidden[0].weight.grad.norm() / hidden[-1].weight.grad.norm())


DEPTHS = (2, 5, 10, 20, 30, 50)


@dataclass
class DepthResult:
    """One row per depth and model (`gradient_growth`), with the settings and the runtime."""

    summary: pd.DataFrame
    settings: dict
    seconds: float


@remembered
def depth_experiment(init: str = "he", activation: str = "relu", seeds: int = 3,
                     progress: Progress = None) -> DepthResult:
    """`gradient_growth` over DEPTHS for the lesson page (width 64, batch 128 of the digits)."""
    start = time.perf_counter()
    frame = gradient_growth(DEPTHS, activation, init, seeds=tuple(range(seeds)), progress=progress)
    settings = {"depths": ", ".join(map(str, DEPTHS)), "width": 64, "batch": 128, "init": init,
                "activation": activation, "seeds": seeds}
    return DepthResult(frame, settings, time.perf_counter() - start)


def gradient_growth(depths: Sequence[int] = DEPTHS, activation: str = "relu", init: str = "default",
                    width: int = 64, batch_size: int = 128, seeds: Sequence[int] = (0, 1, 2),
                    progress: Progress = None) -> pd.DataFrame:
    """One row per depth and norm ("no BN", "BN"): the first/last gradient ratio at initialization, as the
    geometric mean over `seeds` (ratios multiply, so their typical value is a geometric mean), and its log10."""
    if init not in INITS or activation not in ACTIVATIONS:
        raise ConfigError(f"init must be one of {INITS} and activation one of {tuple(ACTIVATIONS)}")
    if not depths or min(depths) < 2 or max(depths) > MAX_DEPTH:
        raise ConfigError(f"depths must be between 2 and {MAX_DEPTH}")
    data = load_dataset("digits", 0)
    x, y = data.x_train[:batch_size].flatten(1), data.y_train[:batch_size]
    rows = []
    report = StageProgress(progress)
    for done, depth in enumerate(depths):
        report(done / len(depths), f"depth {depth}")
        for label, bn in (("no BN", False), ("BN", True)):
            logs = []
            for seed in seeds:
                torch.manual_seed(seed)
                net = plain_mlp(depth, width, x.shape[1], data.n_classes, bn, activation, init).train()
                logs.append(math.log10(first_to_last_gradient_ratio(net, x, y)))
            mean_log = sum(logs) / len(logs)
            rows.append({"depth": depth, "model": label, "log10_ratio": mean_log, "ratio": 10 ** mean_log})
    return pd.DataFrame(rows)


def depth_findings(frame: pd.DataFrame) -> list[str]:
    """The measured ratios at the shallowest and the deepest network, per model, in sentences."""
    shallow, deep = int(frame["depth"].min()), int(frame["depth"].max())
    out = []
    for model in dict.fromkeys(frame["model"]):
        part = frame[frame["model"] == model].set_index("depth")["ratio"]
        out.append(f"{model}: the first layer's gradient is {part[shallow]:.3g}x the last layer's at depth "
                   f"{shallow}, and {part[deep]:.3g}x at depth {deep}.")
    return out
