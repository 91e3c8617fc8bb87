"""What a recorder watches in a model: probes (stage outputs), normalization layers and weights."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Probe:
    """One recorded tensor: the forward output of `module`, reported as `stage` of layer `layer`."""

    layer: int  # index into Targets.layers
    stage: str  # "pre", "norm" or "act"
    module: nn.Module  # its forward output is the recorded tensor
    kind: str = ""  # activation kind for act probes


@dataclass
class NormTarget:
    layer: int
    module: nn.Module  # the module holding weight/bias/running stats (for noisy BN: the inner BN)


@dataclass
class Targets:
    layers: list[str]
    probes: list[Probe]
    norms: list[NormTarget]
    weights: list[tuple[str, nn.Parameter]]

    @classmethod
    def from_net(cls, net: nn.Module) -> Targets:
        """Targets of a bnviz.models.Net: each block's layer, norm and act, all weights (head included)."""
        layers, probes, norms, weights = [], [], [], []
        for i, block in enumerate(net.blocks):
            layers.append(f"block{i + 1}")
            probes.append(Probe(i, "pre", block.layer))
            norm = getattr(block, "norm", None)
            if norm is not None:
                probes.append(Probe(i, "norm", norm))
                norms.append(NormTarget(i, getattr(norm, "bn", norm)))
            probes.append(Probe(i, "act", block.act, activation_kind(block.act)))
            weights.append((f"block{i + 1}.weight", block.layer.weight))
        weights.append(("head.weight", net.head.weight))
        return cls(layers, probes, norms, weights)


def activation_kind(module: nn.Module) -> str:
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    return ""


def norm_kind(module: nn.Module) -> str:
    """"batch" for batch norm (torch's or bnviz's), else "layer", "group", "instance" or the class name."""
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return "instance"
    if hasattr(module, "track_running_stats") and hasattr(module, "running_mean"):
        return "batch"
    if isinstance(module, nn.LayerNorm):
        return "layer"
    if isinstance(module, nn.GroupNorm):
        return "group"
    return type(module).__name__.lower()


def norm_channels(module: nn.Module) -> int:
    for attr in ("num_features", "num_channels"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if weight is not None and weight.dim() == 1 else 0
