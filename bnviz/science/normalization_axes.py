"""Which values of an (N, C, H, W) activation tensor share one mean and variance, for each kind of normalization.

Batch norm averages per channel over N, H, W; layer norm per sample over C, H, W; instance norm per sample and
channel over H, W; group norm per sample over one group of C/G channels and H, W (Wu & He 2018, Figure 2).
`norm_mask` marks one such set; the step-by-step page and the normalization zoo draw it
(`bnviz.figures.normalization_axes`). Pure numpy.
"""

from __future__ import annotations

import numpy as np

KINDS = ("batch", "layer", "instance", "group")
EXAMPLE_SHAPE = (3, 4, 3, 3)  # (N, C, H, W) of the step-by-step page's figure: small enough to see every value
EXAMPLE_GROUPS = 2


def norm_mask(kind: str, shape: tuple[int, ...] = EXAMPLE_SHAPE, sample: int = 0, channel: int = 0,
              groups: int = EXAMPLE_GROUPS) -> np.ndarray:
    """Boolean mask of `shape` ((N, C, ...): any trailing spatial axes, or none) marking the values that share one
    mean and variance with sample `sample`, channel `channel` under normalization `kind`.

    groups: the number of channel groups of group norm, as in `torch.nn.GroupNorm(num_groups, C)` (C must be
    divisible by it; 1 group is layer norm, C groups instance norm); the other kinds ignore it.
    """
    c = shape[1]
    mask = np.zeros(shape, dtype=bool)
    if kind == "batch":
        mask[:, channel] = True
    elif kind == "layer":
        mask[sample] = True
    elif kind == "instance":
        mask[sample, channel] = True
    elif kind == "group":
        if c % groups:
            raise ValueError(f"group norm needs C divisible by G (C={c}, G={groups})")
        size = c // groups
        first = channel // size * size
        mask[sample, first:first + size] = True
    else:
        raise ValueError(f"unknown normalization {kind!r}; expected one of {sorted(KINDS)}")
    return mask
