"""Ghost batch norm (Hoffer, Hubara & Soudry 2017, "Train longer, generalize better"): batch norm whose training
statistics come from virtual sub-batches ("ghost batches") of a fixed size instead of the whole mini-batch.

In training, a batch of N samples is cut into consecutive sub-batches of `ghost_batch` samples (a last sub-batch of
a single sample joins the one before it: batch norm needs two values per channel); each is normalized with its own
mean and biased variance, exactly as `F.batch_norm` would normalize it alone. The running statistics are updated
*once per step*, with the average of the sub-batches' means and of their unbiased variances (the rule of Keras'
`virtual_batch_size`), so momentum keeps its meaning (PyTorch convention: running = (1 - m) running + m batch).
In eval mode it is plain batch norm with the running statistics. With ghost_batch >= N it is plain batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def ghost_chunks(x: Tensor, ghost_batch: int) -> list[Tensor]:
    """Consecutive sub-batches of `ghost_batch` samples; a trailing single sample joins the previous sub-batch."""
    chunks = list(torch.split(x, ghost_batch))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


class _GhostBatchNorm:
    ghost_batch: int

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.ghost_batch <= 0 or self.ghost_batch >= input.shape[0]:
            return super().forward(input)
        self._check_input_dim(input)
        chunks = ghost_chunks(input, self.ghost_batch)
        out = torch.cat([F.batch_norm(c, None, None, self.weight, self.bias, True, 0.0, self.eps) for c in chunks])
        if self.track_running_stats:
            with torch.no_grad():
                dims = [0] + list(range(2, input.dim()))
                mean = torch.stack([c.mean(dim=dims) for c in chunks]).mean(0)
                var = torch.stack([c.var(dim=dims, unbiased=True) for c in chunks]).mean(0)
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * mean)
                self.running_var.mul_(1 - factor).add_(factor * var)
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_batch={self.ghost_batch}"


class GhostBatchNorm1d(_GhostBatchNorm, nn.BatchNorm1d):
    """Ghost batch norm over (N, C) inputs; see the module docstring."""

    def __init__(self, num_features: int, ghost_batch: int, **kwargs):
        super().__init__(num_features, **kwargs)
        self.ghost_batch = int(ghost_batch)


class GhostBatchNorm2d(_GhostBatchNorm, nn.BatchNorm2d):
    """Ghost batch norm over (N, C, H, W) inputs; see the module docstring."""

    def __init__(self, num_features: int, ghost_batch: int, **kwargs):
        super().__init__(num_features, **kwargs)
        self.ghost_batch = int(ghost_batch)
