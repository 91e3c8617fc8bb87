"""Every knob of a training run, in one validated dataclass.

`RunConfig.validate()` raises `ConfigError` (a `ValueError`) naming the field, the value and what is allowed;
the app, the CLI and the Python API all go through it, so a bad value never reaches torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields

from ..errors import ConfigError

MODELS = ("cnn", "mlp")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
NORMS = ("none", "batch", "batch-noisy", "layer", "instance", "group", "batch-renorm")
BATCH_NORMS = ("batch", "batch-noisy", "batch-renorm")  # the norms that normalize with batch statistics
PLACEMENTS = ("before", "after")
OPTIMIZERS = ("sgd", "adam")
BN_IMPLS = ("torch", "scratch")
INITS = ("default", "normal")
EPS_CHOICES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)  # the eps values the app offers, log scale
# Built-in dataset names; a path to a user's image folder or file is also accepted (checked when loaded), and so is
# "upload:<12 hex digits>", an image set uploaded in the app (the app supplies it; see bnviz.engine.uploads).
BUILTIN_DATASETS = ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")
UPLOAD_PREFIX = "upload:"
UPLOAD_REF = re.compile(r"upload:[0-9a-f]{12}")

# Bounds that keep a live run on a 2-core laptop responsive; the widgets use the same numbers.
LIMITS = {
    "depth": (1, 8),
    "width": (2, 256),
    "batch_size": (1, 1024),
    "steps": (1, 1_000_000),
    "threads": (1, 64),
    "hist_bins": (8, 256),
    "samples": (16, 65_536),
}


@dataclass
class RunConfig:
    """One training run. Defaults: a small BN CNN on the bundled 8x8 digits (>90% test accuracy in 1,000 steps)."""

    dataset: str = "digits"  # a built-in name, a path to your own images, or upload:<hash> (see bnviz.engine.uploads)
    model: str = "cnn"  # "cnn": conv blocks + global average pool + linear head; "mlp": fully connected blocks
    depth: int = 3  # number of hidden blocks (conv or linear), each: layer -> [norm] -> activation
    width: int = 16  # channels per conv block, or units per MLP block
    activation: str = "relu"
    norm: str = "batch"  # normalization in every hidden block (see NORMS)
    placement: str = "before"  # norm before the activation (Ioffe & Szegedy) or after it
    eps: float = 1e-5  # added to the variance before the square root
    bn_momentum: float = 0.1  # PyTorch convention: running = (1 - m) * running + m * batch statistic
    groups: int = 4  # number of groups for norm="group"; must divide width
    ghost_batch: int = 0  # ghost batch norm (Hoffer et al. 2017): statistics over sub-batches of this size; 0 = off
    bn_impl: str = "torch"  # "torch": torch.nn.BatchNorm; "scratch": bnviz.engine.batchnorm (same maths, readable)
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # "sgd" (with momentum below) or "adam"
    sgd_momentum: float = 0.9
    weight_decay: float = 0.0  # L2 penalty added to every parameter's gradient by the optimizer (0 = off)
    init: str = "default"  # "default": PyTorch's init times init_scale; "normal": weights ~ N(0, init_scale^2)
    init_scale: float = 1.0
    steps: int = 1000
    eval_every: int = 50  # test accuracy every N steps (and at the last step)
    seed: int = 0
    record_every: int = 1  # record statistics every N steps; 0 records nothing
    ics_every: int = 0  # Santurkar et al.'s gradient ICS every N steps (costs depth extra passes); 0 = off
    threads: int = 1  # torch threads for this run
    hist_bins: int = 64  # histogram bins per block and stage
    samples: int = 512  # values sampled per activation tensor for percentiles and histograms
    difficulty: float = 0.5  # only for dataset="shapes"
    extra: dict = field(default_factory=dict, repr=False)  # reserved for forward compatibility; must be empty

    def validate(self) -> RunConfig:
        """Raise ConfigError on the first out-of-range or inconsistent field; return self when valid."""
        _check_choice("model", self.model, MODELS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("placement", self.placement, PLACEMENTS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("bn_impl", self.bn_impl, BN_IMPLS)
        _check_choice("init", self.init, INITS)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError(f"dataset={self.dataset!r} is not allowed: use one of {', '.join(BUILTIN_DATASETS)} "
                             "or a path to your own image folder or file")
        if self.dataset.startswith(UPLOAD_PREFIX):
            if not UPLOAD_REF.fullmatch(self.dataset):
                raise ConfigError(f"dataset={self.dataset!r} is not allowed: an uploaded image set is named "
                                 f"{UPLOAD_PREFIX}<first 12 hex digits of its SHA-256>")
        elif self.dataset not in BUILTIN_DATASETS and not _looks_like_path(self.dataset):
            raise ConfigError(f"dataset={self.dataset!r} is unknown: use one of {', '.join(BUILTIN_DATASETS)} "
                             "or a path to your own image folder or file")
        for name, (lo, hi) in LIMITS.items():
            _check_int(name, getattr(self, name), lo, hi)
        _check_int("groups", self.groups, 1, LIMITS["width"][1])
        _check_int("eval_every", self.eval_every, 1, 10**9)
        _check_int("record_every", self.record_every, 0, 10**9)
        _check_int("ics_every", self.ics_every, 0, 10**9)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_float("eps", self.eps, low=0.0, low_open=True, high=1.0)
        _check_float("lr", self.lr, low=0.0, low_open=True, high=100.0)
        _check_float("bn_momentum", self.bn_momentum, low=0.0, high=1.0)
        _check_float("sgd_momentum", self.sgd_momentum, low=0.0, high=1.0, high_open=True)
        _check_float("weight_decay", self.weight_decay, low=0.0, high=1.0)
        _check_float("init_scale", self.init_scale, low=0.0, low_open=True, high=100.0)
        _check_float("difficulty", self.difficulty, low=0.0, high=1.0)
        if self.norm == "group" and self.width % self.groups:
            raise ConfigError(f"groups={self.groups} is not allowed: it must divide width={self.width}")
        if self.norm == "instance" and self.model == "mlp":
            raise ConfigError("norm='instance' is not allowed with model='mlp': an MLP unit has a single value per "
                             "sample, so instance normalization would divide by zero; use a cnn or another norm")
        _check_int("ghost_batch", self.ghost_batch, 0, LIMITS["batch_size"][1])
        if self.ghost_batch:
            if self.norm != "batch" or self.bn_impl != "torch":
                raise ConfigError(f"ghost_batch={self.ghost_batch} is not allowed with norm={self.norm!r} and "
                                 f"bn_impl={self.bn_impl!r}: ghost batch norm is a variant of norm='batch' "
                                 "(bn_impl='torch'); use ghost_batch=0 otherwise")
            if self.ghost_batch < 2 or self.batch_size % self.ghost_batch:
                raise ConfigError(f"ghost_batch={self.ghost_batch} is not allowed with batch_size={self.batch_size}: "
                                 "it must be at least 2 and divide the batch size (0 turns it off)")
        if self.norm in BATCH_NORMS and self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size} is not allowed with norm={self.norm!r}: batch norm needs "
                             "at least 2 values per channel in training (use batch_size >= 2)")
        if self.bn_impl == "scratch" and self.norm not in ("batch", "batch-noisy"):  # batch-renorm is from scratch
            raise ConfigError(f"bn_impl='scratch' is not allowed with norm={self.norm!r}: it only replaces batch norm")
        for name in ("eval_every", "ics_every"):  # measured on recorded steps only: keep them on the grid
            value = getattr(self, name)
            if self.record_every > 1 and value % self.record_every:
                raise ConfigError(f"{name}={value} is not allowed with record_every={self.record_every}: it must be "
                                 "a multiple of record_every, or those measurements would not be recorded")
        if self.extra:
            raise ConfigError(f"extra={self.extra!r} is not allowed: unknown settings {sorted(self.extra)}")
        return self

    @property
    def uses_batch_norm(self) -> bool:
        return self.norm in BATCH_NORMS

    def replace(self, **changes) -> RunConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Build from a plain dict (JSON, URL). Unknown keys raise ConfigError; values are type-checked."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        unknown = sorted(set(data) - set(known), key=repr)  # keys of mixed types (JSON has only text) sort too
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}: allowed are {sorted(known)}")
        kwargs = {}
        for name, value in data.items():
            kwargs[name] = _coerce(name, value, type(getattr(cls(), name)))
        return cls(**kwargs).validate()


def _coerce(name, value, kind):
    if kind is bool or isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not allowed: expected a {kind.__name__}")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise ConfigError(f"{name}={value!r} is not allowed: expected a whole number")
    if kind is float:
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:  # an int too large for a float (JSON allows any number of digits)
                raise ConfigError(f"{name}={value!r} is not allowed: expected a finite number") from None
        raise ConfigError(f"{name}={value!r} is not allowed: expected a number")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}={value!r} is not allowed: expected text")
    return value


def _looks_like_path(text: str) -> bool:
    return any(sep in text for sep in ("/", "\\", ".")) or text.startswith("~")


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed: use one of {', '.join(allowed)}")


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} is not allowed: expected a whole number from {lo} to {hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is not allowed: it must be from {lo} to {hi}")


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to convert to a float
        return False


def _check_float(name, value, *, low, high, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise ConfigError(f"{name}={value!r} is not allowed: expected a finite number")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo_txt = f"> {low}" if low_open else f">= {low}"
        hi_txt = f"< {high}" if high_open else f"<= {high}"
        raise ConfigError(f"{name}={value} is not allowed: it must be {lo_txt} and {hi_txt}")
