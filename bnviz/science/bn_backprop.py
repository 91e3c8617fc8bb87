r"""Lessons: how gradients flow through batch norm's statistics.

1. **The bias before BN is useless** (Ioffe & Szegedy 2015, section 3.2): BN subtracts the batch mean, so a bias b
   added before it cancels, x + b - mean(x + b) = x - mean(x), and its gradient is zero. BN's beta takes its role.
   After the activation (placement "after") the bias is not cancelled.
2. **Backprop must go through the statistics** (Ioffe & Szegedy 2015, section 2): if the normalization treats the
   mean as a constant, a gradient step on b is undone by the next mean, the output does not change, and b keeps
   growing. `NormalizeWithoutStatisticsGradient` is batch norm whose mean and variance are cut out of backprop.
3. **BN's gradient mixes the samples of a batch**: in training mode each output depends on every input of its
   channel through the mean and variance. For one channel of m values, with x_hat = (x - mu) / sigma:

   .. math::  \frac{\partial y_i}{\partial x_j} = \frac{\gamma}{\sigma}\Big(\delta_{ij} - \frac{1}{m}
              - \frac{\hat{x}_i \hat{x}_j}{m}\Big), \qquad \sigma = \sqrt{\sigma^2_B + \epsilon}

   In eval mode the matrix is diagonal: gamma / sqrt(running_var + eps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..engine.data import BatchStream, load_dataset
from .experiment_runs import Progress, StageProgress
from .result_cache import remembered

VARIANTS = {  # name -> (placement, gradient through the batch statistics)
    "BN before ReLU": ("before", True),
    "BN after ReLU": ("after", True),
    "BN before ReLU, no gradient through mean and variance": ("before", False),
}
WIDTH, BATCH = 64, 64
LATE_STEPS = 50  # the training loss quoted at the end is the mean of this many last steps (one batch is noisy)


class NormalizeWithoutStatisticsGradient(nn.Module):
    """Training-mode batch norm over dim 0 whose batch mean and variance are constants for backprop (detached):
    the mistake Ioffe & Szegedy warn about in section 2. Forward values equal torch's batch norm."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=0).detach()
        var = x.var(dim=0, unbiased=False).detach()
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


def biased_mlp(in_features: int, n_classes: int, placement: str, statistics_gradient: bool) -> nn.Sequential:
    """Linear (with its bias) -> BN -> ReLU (or Linear -> ReLU -> BN) -> Linear: one hidden layer to watch."""
    norm = nn.BatchNorm1d(WIDTH) if statistics_gradient else NormalizeWithoutStatisticsGradient(WIDTH)
    hidden = [norm, nn.ReLU()] if placement == "before" else [nn.ReLU(), norm]
    return nn.Sequential(nn.Linear(in_features, WIDTH), *hidden, nn.Linear(WIDTH, n_classes))


@dataclass
class BiasResult:
    """curves: variant, step, loss, bias_grad (norm of the first layer's bias gradient), bias_move (distance of
    that bias from its initial value). summary: variant, bias_grad and bias_move at the last step, late_loss (the
    mean training loss of the last LATE_STEPS steps: comparable across variants, unlike an eval-mode accuracy,
    since the variant without statistics gradient keeps no running statistics)."""

    curves: pd.DataFrame
    settings: dict
    seconds: float
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)


@remembered
def bias_experiment(steps: int = 600, lr: float = 0.1, seed: int = 0, progress: Progress = None) -> BiasResult:
    """Train the one-hidden-layer MLP on the digits in the three VARIANTS from the same initial weights on the same
    batches (SGD without momentum), recording the first layer's bias and its gradient every step."""
    start = time.perf_counter()
    data = load_dataset("digits", seed)
    report = StageProgress(progress)
    rows, summary = [], []
    for k, (name, (placement, through)) in enumerate(VARIANTS.items()):
        torch.manual_seed(seed)
        net = biased_mlp(data.x_train[0].numel(), data.n_classes, placement, through)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        stream, bias0 = BatchStream(data, BATCH, seed), net[0].bias.detach().clone()
        part = report.part(k / len(VARIANTS), (k + 1) / len(VARIANTS), name)
        for step in range(steps):
            x, y = stream.next()
            loss = nn.functional.cross_entropy(net(x.flatten(1)), y)
            optimizer.zero_grad()
            loss.backward()
            grad = float(net[0].bias.grad.norm())
            optimizer.step()
            rows.append({"variant": name, "step": step, "loss": loss.item(), "bias_grad": grad,
                         "bias_move": float((net[0].bias.detach() - bias0).norm())})
            part((step + 1) / steps, f"step {step + 1} of {steps}")
        last = rows[-steps:][-LATE_STEPS:]
        summary.append({"variant": name, "bias_grad": last[-1]["bias_grad"], "bias_move": last[-1]["bias_move"],
                        "late_loss": sum(r["loss"] for r in last) / len(last)})
    settings = {"steps": steps, "lr": lr, "seed": seed, "network": f"64-{WIDTH}-10 MLP, batch {BATCH}, plain SGD"}
    return BiasResult(pd.DataFrame(rows), settings, time.perf_counter() - start, pd.DataFrame(summary))


def bias_findings(result: BiasResult) -> list[str]:
    """One computed sentence per variant: the bias gradient at the last step, how far the bias moved, late loss."""
    out = []
    for row in result.summary.itertuples():
        out.append(f"{row.variant}: bias gradient {row.bias_grad:.1e} at the last step, the bias moved "
                   f"{row.bias_move:.3g} from its start; training loss over the last {LATE_STEPS} steps "
                   f"{row.late_loss:.3f}.")
    return out


def batch_jacobian(values: torch.Tensor, gamma: float = 1.0, eps: float = 1e-5, training: bool = True,
                   running_var: float = 1.0) -> torch.Tensor:
    """d y_i / d x_j of batch norm on one channel of m values (float64), computed by autograd."""
    x = values.detach().to(torch.float64).reshape(-1, 1)

    def forward(v: torch.Tensor) -> torch.Tensor:
        if training:
            return nn.functional.batch_norm(v, None, None, torch.tensor([gamma], dtype=torch.float64), None,
                                            training=True, eps=eps).flatten()
        return (gamma * v / (running_var + eps) ** 0.5).flatten()  # eval mode: running statistics fixed

    return torch.autograd.functional.jacobian(forward, x).reshape(len(x), len(x))
