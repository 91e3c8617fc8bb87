"""What a recorder watches in a model: probes (stage outputs), normalization layers and weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from . import batchnorm

# what `Targets.discover` looks for, by module type
LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, batchnorm.BatchNormBase, nn.modules.instancenorm._InstanceNorm,
              nn.LayerNorm, nn.GroupNorm)
ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                    nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
                    nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink)


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
        """Targets of a bnviz.engine.models.Net: each block's layer, norm and act, all weights (head included)."""
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

    @classmethod
    def discover(cls, model: nn.Module,
                 include: Callable[[str, nn.Module], bool] | Iterable[str] | None = None) -> Targets:
        """Targets of any `nn.Module`, found by walking its submodules in registration order.

        The walk (`model.named_modules()`, nested containers and blocks included) keeps the conv layers (any
        `_ConvNd`), `nn.Linear` layers, normalization layers (BatchNorm1d/2d/3d, bnviz's own batch norm,
        InstanceNorm, LayerNorm, GroupNorm) and activation modules (`ACTIVATION_TYPES`: ReLU, Tanh, Sigmoid,
        GELU, ...), and groups them into layers named by the module path of their first member
        (e.g. `layer1.0.conv1`):

        * a conv/linear module starts a layer: its output is stage "pre", and its weight is recorded;
        * the next normalization module, if no other conv/linear comes first, joins that layer as stage "norm"
          (its gamma/beta and, for batch norm, batch and running statistics are recorded); a normalization
          module with no conv/linear before it (or after one that already has a norm) is a layer of its own;
        * the next activation module joins the layer as stage "act", whether it is registered before or after
          the norm (conv -> ReLU -> BN is found too). The order of registration is taken as the order of the
          forward pass: a module that registers its children in another order than it calls them is
          grouped by registration. The stage recorded just before "act" is taken as the activation's input.

        What it cannot see: functions called in `forward` are no modules. An activation written as `F.relu(x)`
        or `torch.relu(x)` gets no "act" stage (the layer has "pre"/"norm" only), and a residual addition
        `out + identity` is not a stage: the "norm" of the block's last BN is its output *before* the addition.
        A module called several times per forward pass (one `ReLU` reused, as in torchvision's ResNet blocks) is
        recorded at its first call, which is why a shared ReLU registered after `bn1` is recorded as `bn1`'s
        activation only. In-place changes made later (`out += identity`, `ReLU(inplace=True)`) do not alter the
        recorded values: the recorder samples each output inside its forward hook.

        include: keep only some modules, before grouping: a callable `include(name, module) -> bool`, or a list
        of module paths, each meaning that module and everything inside it (`["layer1", "fc"]`). An unknown
        path is a ConfigError (a ValueError); so is a model in which nothing is found.
        """
        keep = _module_filter(model, include)
        groups: list[dict[str, tuple[str, nn.Module]]] = []
        for name, module in model.named_modules():
            if not name or not keep(name, module):
                continue
            open_group = groups[-1] if groups else None
            if isinstance(module, LAYER_TYPES):
                groups.append({"pre": (name, module)})
            elif isinstance(module, NORM_TYPES):
                if open_group is not None and "pre" in open_group and "norm" not in open_group:
                    open_group["norm"] = (name, module)
                else:
                    groups.append({"norm": (name, module)})
            elif isinstance(module, ACTIVATION_TYPES) and open_group is not None and "act" not in open_group:
                open_group["act"] = (name, module)
        if not groups:
            raise ConfigError(f"found no conv, linear or normalization layer in {type(model).__name__}"
                             + (" among the included modules" if include is not None else ""))
        layers, probes, norms, weights = [], [], [], []
        for i, group in enumerate(groups):
            layers.append(next(iter(group.values()))[0])
            for stage, (_, module) in group.items():  # registration order: pre, then norm and act as found
                probes.append(Probe(i, stage, module, activation_kind(module) if stage == "act" else ""))
            if "norm" in group:
                norms.append(NormTarget(i, group["norm"][1]))
            if "pre" in group:
                name, module = group["pre"]
                weights.append((f"{name}.weight", module.weight))
        return cls(layers, probes, norms, weights)


def _module_filter(model: nn.Module, include) -> Callable[[str, nn.Module], bool]:
    if include is None:
        return lambda name, module: True
    if callable(include):
        return include
    if isinstance(include, str):
        include = [include]
    wanted = list(include)
    names = {name for name, _ in model.named_modules() if name}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ConfigError(f"include names modules that {type(model).__name__} does not have: "
                         f"{', '.join(map(repr, unknown))}; its modules are {', '.join(sorted(names)[:12])}"
                         + (", ..." if len(names) > 12 else ""))
    return lambda name, module: any(name == w or name.startswith(w + ".") for w in wanted)


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
