r"""Folding batch norm into the layer before it, for inference.

In eval mode a batch-norm layer no longer looks at the batch: it normalizes with its running statistics, so it is a
fixed affine map per channel, and a fixed affine map after a linear (or conv) layer is again a linear layer:

.. math::

    W' = \operatorname{diag}\!\left(\frac{\gamma}{\sqrt{\mathrm{running\_var} + \epsilon}}\right) W, \qquad
    b' = \frac{\gamma\,(b - \mathrm{running\_mean})}{\sqrt{\mathrm{running\_var} + \epsilon}} + \beta

(with b = 0 for a layer without bias, which is how a layer before BN is usually built: BN's mean subtraction cancels
any bias). The folded network gives the same outputs in eval mode with one layer less per block.
`torch.nn.utils.fusion.fuse_conv_bn_eval` does the same; tests/test_folding.py checks both agree.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import BnvizError
from .batchnorm import BatchNormBase

# torch's batch norm and bnviz's own (bn_impl="scratch": the same buffers and parameter names)
FOLDABLE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, BatchNormBase)


def folded_weight_and_bias(weight: torch.Tensor, bias: torch.Tensor | None, running_mean: torch.Tensor,
                           running_var: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None,
                           eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """W' and b' of the formula above. `weight` has the output channels first (Linear: (out, in); Conv2d:
    (out, in, kh, kw)); gamma/beta None means BN without affine parameters (gamma = 1, beta = 0)."""
    scale = torch.rsqrt(running_var + eps)
    if gamma is not None:
        scale = gamma * scale
    bias = torch.zeros_like(running_mean) if bias is None else bias
    shift = torch.zeros_like(running_mean) if beta is None else beta
    new_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = (bias - running_mean) * scale + shift
    return new_weight, new_bias


def fold_batch_norm(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of `layer` (nn.Linear or nn.Conv2d) with the eval-mode `bn` that follows it folded in.

    The result, on its own, computes what `bn(layer(x))` computes in eval mode; `layer` and `bn` are not changed.

    Raises:
        BnvizError: when the layers cannot be folded (another layer type, BN without running statistics, or a
            channel count that does not match).
    """
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise BnvizError(f"only a Linear or Conv2d layer can take a batch norm in; got {type(layer).__name__}")
    if not isinstance(bn, FOLDABLE_NORMS):
        raise BnvizError(f"only batch norm can be folded (it is a fixed map in eval mode); got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise BnvizError("this batch norm keeps no running statistics (track_running_stats=False): in eval mode "
                         "it still normalizes with each batch's statistics, so it is not a fixed map to fold")
    channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.running_mean.numel() != channels:
        raise BnvizError(f"the layer has {channels} output channels but the batch norm {bn.running_mean.numel()}")
    folded = copy.deepcopy(layer)
    with torch.no_grad():
        weight, bias = folded_weight_and_bias(layer.weight, layer.bias, bn.running_mean, bn.running_var,
                                              bn.weight, bn.bias, bn.eps)
        folded.weight.copy_(weight)
        if folded.bias is None:
            folded.bias = nn.Parameter(bias.clone())
        else:
            folded.bias.copy_(bias)
    return folded



def fold_model(net: nn.Module) -> tuple[nn.Module, int]:
    """A copy of a bnviz network (`engine.models.Net`) with every batch norm that directly follows its block's
    layer folded into that layer (placement "before"); returns the copy, in eval mode, and how many were folded.
    A norm after the activation is left in place: a nonlinearity stands between it and the layer."""
    folded, count = copy.deepcopy(net).eval(), 0
    for block in getattr(folded, "blocks", []):
        norm = getattr(block, "norm", None)
        if norm is None or block.placement != "before" or not isinstance(norm, FOLDABLE_NORMS):
            continue
        block.layer = fold_batch_norm(block.layer, norm)
        del block.norm  # Block.forward skips a missing norm
        count += 1
    if count == 0:
        raise BnvizError("this network has no batch norm directly after a layer to fold (norm placed before "
                         "the activation)")
    return folded, count
