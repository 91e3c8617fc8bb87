r"""Batch Renormalization (Ioffe 2017), written out for reading: batch norm that keeps working with small batches.

Batch norm trains with the statistics of the mini-batch and tests with running averages; with small or non-i.i.d.
batches the two differ. Batch renorm trains with the batch statistics *corrected towards* the running ones:

.. math::

    \mu_B = \tfrac{1}{m}\textstyle\sum_i x_i, \quad \sigma_B = \sqrt{\tfrac{1}{m}\textstyle\sum_i (x_i - \mu_B)^2
    + \epsilon}, \quad
    r = \operatorname{stop\_grad}\!\left(\operatorname{clip}_{[1/r_{max},\, r_{max}]}\frac{\sigma_B}{\sigma}\right),
    \quad
    d = \operatorname{stop\_grad}\!\left(\operatorname{clip}_{[-d_{max},\, d_{max}]}\frac{\mu_B - \mu}{\sigma}\right)

    \hat{x}_i = \frac{x_i - \mu_B}{\sigma_B}\, r + d, \qquad y_i = \gamma \hat{x}_i + \beta

where :math:`\mu` and :math:`\sigma` are the running mean and running *standard deviation* (the paper averages
sigma, not the variance), updated as :math:`\mu \leftarrow \mu + \alpha(\mu_B - \mu)`, :math:`\sigma \leftarrow
\sigma + \alpha(\sigma_B - \sigma)` with :math:`\alpha` = `momentum` (PyTorch's convention: the weight of the new
batch). With r = 1 and d = 0 this is batch norm; when r and d are not clipped, the training output equals the
inference output :math:`\gamma (x - \mu)/\sigma + \beta`. The paper starts with plain BN (r_max = 1, d_max = 0) and
relaxes the clips to r_max = 3 and d_max = 5 over training (`renorm_limits`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .batchnorm import channel_reduce_dims

# Ioffe (2017), section 4 (ImageNet, 130k steps): r_max and d_max stay 1 and 0 for the first 5k steps, then r_max
# reaches 3 after 40k steps and d_max 5 after 25k. Here as fractions of a run's steps, so a short run follows the
# same shape.
R_MAX_FINAL, D_MAX_FINAL = 3.0, 5.0
WARMUP_FRACTION = 5 / 130
R_MAX_RAMP_END, D_MAX_RAMP_END = 40 / 130, 25 / 130


def renorm_limits(step: int, total_steps: int) -> tuple[float, float]:
    """(r_max, d_max) at `step` of a run of `total_steps`: plain BN during the warm-up, then linear ramps."""
    progress = step / max(1, total_steps)

    def ramp(end: float, final: float, start_value: float) -> float:
        if progress <= WARMUP_FRACTION:
            return start_value
        share = min(1.0, (progress - WARMUP_FRACTION) / (end - WARMUP_FRACTION))
        return start_value + share * (final - start_value)

    return ramp(R_MAX_RAMP_END, R_MAX_FINAL, 1.0), ramp(D_MAX_RAMP_END, D_MAX_FINAL, 0.0)


def batch_renorm(input: Tensor, running_mean: Tensor, running_std: Tensor, weight: Tensor | None,
                 bias: Tensor | None, training: bool, r_max: float, d_max: float, momentum: float = 0.1,
                 eps: float = 1e-5) -> Tensor:
    """Batch renormalization of `input` (N, C) or (N, C, H, W) per channel; in training, updates `running_mean`
    and `running_std` in place. Returns y."""
    if r_max < 1 or d_max < 0:
        raise ConfigError(f"batch renorm needs r_max >= 1 and d_max >= 0 (got r_max={r_max}, d_max={d_max})")
    shape = (1, -1) + (1,) * (input.dim() - 2)
    if training:
        dims = channel_reduce_dims(input)
        mean = input.mean(dim=dims)
        std = torch.sqrt(((input - mean.reshape(shape)) ** 2).mean(dim=dims) + eps)  # biased, as in BN
        with torch.no_grad():  # stop_grad: r and d are constants for backprop
            r = (std / running_std).clamp(1 / r_max, r_max)
            d = ((mean - running_mean) / running_std).clamp(-d_max, d_max)
            running_mean.add_(momentum * (mean - running_mean))
            running_std.add_(momentum * (std - running_std))
        x_hat = (input - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
    else:
        x_hat = (input - running_mean.reshape(shape)) / running_std.reshape(shape)
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


class BatchRenorm(nn.Module):
    """Batch renorm over channel dim 1 of (N, C) or (N, C, H, W) inputs, with gamma (`weight`), beta (`bias`) and
    the running mean and standard deviation as buffers. `set_limits(r_max, d_max)` follows `renorm_limits`."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))
        self.r_max, self.d_max = 1.0, 0.0  # plain BN until set_limits relaxes them
        # The recorder solves BN's batch statistics from torch's running *variance* update; this layer keeps a running
        # standard deviation instead, so it says it tracks no torch-style running statistics, and the recorder then
        # measures each step's batch mean and variance from the layer's input directly (bnviz.engine.targets).
        self.track_running_stats = False

    def set_limits(self, r_max: float, d_max: float) -> None:
        self.r_max, self.d_max = float(r_max), float(d_max)

    def forward(self, input: Tensor) -> Tensor:
        return batch_renorm(input, self.running_mean, self.running_std, self.weight, self.bias, self.training,
                            self.r_max, self.d_max, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, r_max={self.r_max}, d_max={self.d_max}"
