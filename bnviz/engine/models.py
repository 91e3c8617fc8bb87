"""The small networks bnviz trains: hidden blocks of layer -> [norm] -> activation, then a linear head.

Every hidden block is a `Block` with three named children, `layer`, `norm` (absent without normalization)
and `act`; the recorder hooks those children, so the three *stages* it reports are
`pre` (output of the conv/linear), `norm` (output of the normalization) and `act` (output of the activation),
whatever their order (`placement="after"` runs layer -> act -> norm).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import RunConfig

# Santurkar et al. (2018), section 2.1: per layer and step mu ~ U(-0.5, 0.5), sigma ~ U(1, 1.25);
# per element m ~ U(mu - 0.1, mu + 0.1) and s ~ N(sigma, 0.1).
NOISE_MEAN_RANGE = (-0.5, 0.5)
NOISE_SCALE_RANGE = (1.0, 1.25)
NOISE_ELEMENT_SPREAD = 0.1


class NoisyBatchNorm(nn.Module):
    """Batch norm followed by Santurkar et al.'s time-varying, non-zero-mean, non-unit-variance noise.

    In training, each forward pass (one training step) draws a new mu ~ U(-0.5, 0.5) and sigma ~ U(1, 1.25) for the
    layer and then, independently for every element of the output (each activation of each sample: the noise has
    the output's full shape, batch included), m ~ U(mu - 0.1, mu + 0.1) and s ~ N(sigma, 0.1); the output is
    s * BN(x) + m. So the distribution the next layer sees moves at every step, on purpose. In eval mode no noise
    is added. The noise has its own generator (seeded per layer) so that runs stay reproducible; `freeze_noise`
    reuses the last draw (`last_noise`, when the output has the same shape) for the extra passes of the
    gradient-ICS measure, which must see the same network on the same batch.
    """

    def __init__(self, bn: nn.Module, seed: int):
        super().__init__()
        self.bn = bn
        self.generator = torch.Generator().manual_seed(seed)
        self.freeze_noise = False
        self.last_noise: tuple[torch.Tensor, torch.Tensor] | None = None  # (scale s, shift m), the output's shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        if not self.training:
            return y
        if self.freeze_noise and self.last_noise is not None and self.last_noise[0].shape == y.shape:
            scale, shift = self.last_noise
        else:
            scale, shift = draw_noise(y.shape, self.generator)
            self.last_noise = (scale, shift)
        return y * scale + shift

    @property
    def weight(self):
        return self.bn.weight

    @property
    def bias(self):
        return self.bn.bias


def draw_noise(shape: torch.Size, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's noise for one layer (Santurkar et al. 2018, section 2.1): mu ~ U(-0.5, 0.5) and
    sigma ~ U(1, 1.25) for the layer, then per element m ~ U(mu - 0.1, mu + 0.1) and s ~ N(sigma, 0.1), each of
    the given shape. Returns (s, m)."""
    mu = _uniform((), *NOISE_MEAN_RANGE, g)
    sigma = _uniform((), *NOISE_SCALE_RANGE, g)
    shift = _uniform(shape, mu - NOISE_ELEMENT_SPREAD, mu + NOISE_ELEMENT_SPREAD, g)
    scale = sigma + torch.randn(shape, generator=g) * NOISE_ELEMENT_SPREAD
    return scale, shift


def _uniform(shape, lo, hi, g):
    return lo + (hi - lo) * torch.rand(shape, generator=g)


class Block(nn.Module):
    """layer -> norm -> act (placement "before", as in Ioffe & Szegedy) or layer -> act -> norm ("after")."""

    def __init__(self, layer: nn.Module, norm: nn.Module | None, act: nn.Module, placement: str = "before",
                 pool: nn.Module | None = None):
        super().__init__()
        self.layer = layer
        if norm is not None:
            self.norm = norm
        self.act = act
        self.placement = placement
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        norm = getattr(self, "norm", None)
        if norm is None:
            x = self.act(x)
        elif self.placement == "before":
            x = self.act(norm(x))
        else:
            x = norm(self.act(x))
        return x if self.pool is None else self.pool(x)


class Net(nn.Module):
    """Hidden blocks (`blocks`) then a linear classifier (`head`)."""

    def __init__(self, blocks: list[Block], head: nn.Module, flatten_input: bool, global_pool: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.flatten_input = flatten_input
        self.global_pool = global_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        if self.flatten_input:
            x = x.flatten(1)  # (N, C*H*W)
        for block in self.blocks:
            x = block(x)
        if self.global_pool:
            x = x.mean(dim=(2, 3))  # (N, width)
        return self.head(x)


def build_model(cfg: RunConfig, input_shape: tuple[int, int, int], n_classes: int) -> Net:
    """The network described by `cfg`, initialized deterministically from `cfg.seed`."""
    cfg.validate()
    channels, height, width = input_shape
    drop_bias = cfg.uses_batch_norm and cfg.placement == "before"  # beta replaces the bias (Ioffe & Szegedy)
    blocks = []
    size = height
    in_features = channels if cfg.model == "cnn" else channels * height * width
    for index in range(cfg.depth):
        if cfg.model == "cnn":
            layer = nn.Conv2d(in_features, cfg.width, kernel_size=3, padding=1, bias=not drop_bias)
        else:
            layer = nn.Linear(in_features, cfg.width, bias=not drop_bias)
        pool = None
        if cfg.model == "cnn" and size > 8:  # keep the cost of larger images near that of 8x8 digits
            pool = nn.AvgPool2d(2)
            size //= 2
        blocks.append(Block(layer, _make_norm(cfg, index), _make_activation(cfg.activation), cfg.placement, pool))
        in_features = cfg.width
    head = nn.Linear(cfg.width, n_classes)
    net = Net(blocks, head, flatten_input=cfg.model == "mlp", global_pool=cfg.model == "cnn")
    initialize(net, cfg)
    return net


def initialize(net: nn.Module, cfg: RunConfig) -> None:
    """PyTorch's default init (times init_scale), or N(0, init_scale^2); from a generator seeded by cfg.seed."""
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for module in net.modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            if cfg.init == "normal":
                nn.init.normal_(module.weight, 0.0, cfg.init_scale, generator=g)
            else:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=g)
                module.weight.mul_(cfg.init_scale)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(module.bias, -bound, bound, generator=g)


def shared_state_names(source: nn.Module, target: nn.Module) -> list[str]:
    """The parameters and buffers both models have under the same name and shape, sorted."""
    target_state = target.state_dict()
    return sorted(k for k, v in source.state_dict().items() if k in target_state and target_state[k].shape == v.shape)


def copy_shared_weights(source: nn.Module, target: nn.Module) -> list[str]:
    """Copy every parameter and buffer that both models have under the same name and shape; return the names."""
    names = shared_state_names(source, target)
    source_state = source.state_dict()
    target.load_state_dict({k: source_state[k] for k in names}, strict=False)
    return names


def _make_activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


def _make_norm(cfg: RunConfig, index: int) -> nn.Module | None:
    conv = cfg.model == "cnn"
    if cfg.norm == "none":
        return None
    if cfg.norm == "batch-renorm":  # Ioffe (2017), from scratch; the trainer relaxes r_max and d_max (renorm_limits)
        from .batch_renorm import BatchRenorm

        return BatchRenorm(cfg.width, eps=cfg.eps, momentum=cfg.bn_momentum)
    if cfg.norm == "batch" and cfg.ghost_batch:  # statistics over sub-batches of ghost_batch samples
        from .ghost_batch_norm import GhostBatchNorm1d, GhostBatchNorm2d

        ghost = GhostBatchNorm2d if conv else GhostBatchNorm1d
        return ghost(cfg.width, cfg.ghost_batch, eps=cfg.eps, momentum=cfg.bn_momentum)
    if cfg.norm in ("batch", "batch-noisy"):
        bn = _batch_norm_class(cfg, conv)(cfg.width, eps=cfg.eps, momentum=cfg.bn_momentum)
        if cfg.norm == "batch":
            return bn
        return NoisyBatchNorm(bn, seed=cfg.seed * 1000 + index + 1)
    if cfg.norm == "layer":  # per sample over all features (for a conv layer: over C, H and W, as in Wu & He)
        return nn.GroupNorm(1, cfg.width, eps=cfg.eps) if conv else nn.LayerNorm(cfg.width, eps=cfg.eps)
    if cfg.norm == "instance":  # per sample and channel over H, W
        return nn.GroupNorm(cfg.width, cfg.width, eps=cfg.eps)
    return nn.GroupNorm(cfg.groups, cfg.width, eps=cfg.eps)


def _batch_norm_class(cfg: RunConfig, conv: bool):
    if cfg.bn_impl == "scratch":
        from . import batchnorm

        return batchnorm.BatchNorm2d if conv else batchnorm.BatchNorm1d
    return nn.BatchNorm2d if conv else nn.BatchNorm1d
