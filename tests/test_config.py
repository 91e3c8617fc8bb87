"""RunConfig validation: every bad value raises ValueError naming the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnviz.engine.config import (
    ACTIVATIONS,
    BN_IMPLS,
    BUILTIN_DATASETS,
    INITS,
    LIMITS,
    MODELS,
    NORMS,
    OPTIMIZERS,
    PLACEMENTS,
    RunConfig,
)

FIELDS = [f.name for f in dataclasses.fields(RunConfig) if f.name != "extra"]
FLOAT_FIELDS = ["eps", "lr", "bn_momentum", "sgd_momentum", "init_scale", "difficulty"]
INT_FIELDS = [*LIMITS, "groups", "eval_every", "record_every", "ics_every", "seed"]
CHOICES = {"model": MODELS, "activation": ACTIVATIONS, "norm": NORMS, "placement": PLACEMENTS,
           "optimizer": OPTIMIZERS, "bn_impl": BN_IMPLS, "init": INITS}


def rejected(**changes) -> str:
    """Build a config with `changes`, expect ValueError from validate(), return its message."""
    with pytest.raises(ValueError) as info:
        RunConfig(**changes).validate()
    return str(info.value)


def test_defaults_validate_and_validate_returns_self():
    cfg = RunConfig()
    assert cfg.validate() is cfg
    assert cfg.uses_batch_norm


# ---- one bad field at a time: (changes, words the message must contain: field, value, what is allowed) ----------
BAD = [
    ({"batch_size": 1, "norm": "batch"}, ["batch_size=1", "'batch'", "batch_size >= 2"]),
    ({"batch_size": 1, "norm": "batch-noisy"}, ["batch_size=1", "'batch-noisy'", "batch_size >= 2"]),
    ({"eps": 0.0}, ["eps=0.0", "> 0.0"]),
    ({"eps": -1e-5}, ["eps=-1e-05", "> 0.0"]),
    ({"eps": 2.0}, ["eps=2.0", "<= 1.0"]),
    ({"lr": 0.0}, ["lr=0.0", "> 0.0"]),
    ({"lr": -0.1}, ["lr=-0.1", "> 0.0"]),
    ({"lr": 1000.0}, ["lr=1000.0", "<= 100.0"]),
    ({"bn_momentum": -0.01}, ["bn_momentum=-0.01", ">= 0.0", "<= 1.0"]),
    ({"bn_momentum": 1.5}, ["bn_momentum=1.5", ">= 0.0", "<= 1.0"]),
    ({"sgd_momentum": 1.0}, ["sgd_momentum=1.0", "< 1.0"]),
    ({"init_scale": 0.0}, ["init_scale=0.0", "> 0.0"]),
    ({"difficulty": 1.5}, ["difficulty=1.5", "<= 1.0"]),
    ({"norm": "group", "width": 16, "groups": 3}, ["groups=3", "divide", "width=16"]),
    ({"norm": "group", "width": 6, "groups": 4}, ["groups=4", "divide", "width=6"]),
    ({"dataset": "imagenet"}, ["dataset='imagenet'", "digits", "path"]),
    ({"dataset": "  "}, ["dataset='  '", "digits"]),
    ({"dataset": 3}, ["dataset=3", "digits"]),
    ({"model": "resnet"}, ["model='resnet'", "cnn, mlp"]),
    ({"norm": "weight"}, ["norm='weight'", ", ".join(NORMS)]),
    ({"placement": "middle"}, ["placement='middle'", "before, after"]),
    ({"activation": "gelu"}, ["activation='gelu'", ", ".join(ACTIVATIONS)]),
    ({"optimizer": "rmsprop"}, ["optimizer='rmsprop'", "sgd, adam"]),
    ({"bn_impl": "cuda"}, ["bn_impl='cuda'", "torch, scratch"]),
    ({"init": "xavier"}, ["init='xavier'", "default, normal"]),
    ({"norm": "instance", "model": "mlp"}, ["norm='instance'", "model='mlp'", "cnn"]),
    ({"bn_impl": "scratch", "norm": "layer"}, ["bn_impl='scratch'", "norm='layer'", "batch norm"]),
    ({"extra": {"colour": "red"}}, ["extra=", "colour"]),
    ({"groups": 0, "norm": "group"}, ["groups=0", "from 1 to 256"]),
    ({"eval_every": 0}, ["eval_every=0", "from 1"]),
    ({"record_every": -1}, ["record_every=-1", "from 0"]),
    ({"seed": -1}, ["seed=-1", "from 0 to 4294967295"]),
    ({"seed": 2**32}, ["seed=4294967296", "from 0 to 4294967295"]),
]
BAD += [({name: lo - 1}, [f"{name}={lo - 1}", f"from {lo} to {hi}"]) for name, (lo, hi) in LIMITS.items()]
BAD += [({name: hi + 1}, [f"{name}={hi + 1}", f"from {lo} to {hi}"]) for name, (lo, hi) in LIMITS.items()]
BAD += [({name: value}, [f"{name}={value!r}", "finite number"])
        for name in FLOAT_FIELDS for value in (math.nan, math.inf, -math.inf, 10**400)]
BAD += [({name: True}, [f"{name}=True", "finite number"]) for name in FLOAT_FIELDS]
BAD += [({name: "0.5"}, [f"{name}='0.5'", "finite number"]) for name in FLOAT_FIELDS]
BAD += [({name: False}, [f"{name}=False", "whole number"]) for name in INT_FIELDS]
BAD += [({name: "8"}, [f"{name}='8'", "whole number"]) for name in INT_FIELDS]
BAD += [({name: 8.0}, [f"{name}=8.0", "whole number"]) for name in INT_FIELDS]


@pytest.mark.parametrize(("changes", "words"), BAD, ids=[repr(c)[:60] for c, _ in BAD])
def test_bad_value_raises_value_error_naming_field_value_and_allowed(changes, words):
    message = rejected(**changes)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(("changes"), [
    {"batch_size": 1, "norm": "none"}, {"batch_size": 1, "norm": "layer"}, {"batch_size": 1, "norm": "group"},
    {"batch_size": 2, "norm": "batch"}, {"bn_momentum": 0.0}, {"bn_momentum": 1.0}, {"eps": 1.0},
    {"lr": 100.0}, {"sgd_momentum": 0.0}, {"norm": "group", "width": 16, "groups": 16},
    {"norm": "batch", "width": 16, "groups": 3},  # groups only matters for group norm
    {"norm": "instance", "model": "cnn"}, {"norm": "layer", "model": "mlp"}, {"dataset": "./my_images"},
    {"dataset": "~/pics"}, {"bn_impl": "scratch", "norm": "batch-noisy"}, {"record_every": 0},
    {"lr": 1}, {"seed": 2**32 - 1},
], ids=repr)
def test_edge_values_that_are_allowed(changes):
    RunConfig(**changes).validate()


@pytest.mark.parametrize("name", list(BUILTIN_DATASETS))
def test_every_builtin_dataset_name_validates(name):
    RunConfig(dataset=name).validate()


def test_replace_validates_and_leaves_original_alone():
    cfg = RunConfig()
    other = cfg.replace(lr=0.5, norm="none")
    assert (other.lr, other.norm, cfg.lr, cfg.norm) == (0.5, "none", 0.05, "batch")
    with pytest.raises(ValueError, match="lr=-1"):
        cfg.replace(lr=-1.0)


# ---- dicts -----------------------------------------------------------------------------------------------------
def test_to_dict_has_every_field_but_extra_and_round_trips():
    cfg = RunConfig(model="mlp", norm="group", width=12, groups=3, lr=0.3, seed=7, activation="tanh", steps=42)
    d = cfg.to_dict()
    assert sorted(d) == sorted(FIELDS)
    assert RunConfig.from_dict(d) == cfg
    assert RunConfig.from_dict(json.loads(json.dumps(d))) == cfg  # through JSON (a shared link, a saved run)
    assert RunConfig.from_dict(RunConfig().to_dict()) == RunConfig()
    assert RunConfig.from_dict({}) == RunConfig()


def test_from_dict_rejects_unknown_keys_and_extra():
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['colour'\]"):
        RunConfig.from_dict({"lr": 0.1, "colour": "red"})
    with pytest.raises(ValueError, match="extra"):
        RunConfig.from_dict({"extra": {}})
    with pytest.raises(ValueError, match="must be a mapping"):
        RunConfig.from_dict([("lr", 0.1)])


def test_from_dict_coerces_numbers_and_rejects_wrong_types():
    cfg = RunConfig.from_dict({"width": 8.0, "lr": 1, "eps": 0.001})
    assert cfg.width == 8 and isinstance(cfg.width, int)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    for data, words in [({"width": 8.5}, ["width=8.5", "whole number"]),
                        ({"width": "8"}, ["width='8'", "whole number"]),
                        ({"width": True}, ["width=True"]),
                        ({"lr": True}, ["lr=True"]),
                        ({"lr": "fast"}, ["lr='fast'", "number"]),
                        ({"lr": None}, ["lr=None", "number"]),
                        ({"lr": 10**400}, ["lr=", "finite number"]),  # JSON allows arbitrarily long integers
                        ({"norm": 3}, ["norm=3", "text"]),
                        ({"lr": math.nan}, ["lr=nan", "finite"]),
                        ({"steps": math.inf}, ["steps=inf"])]:
        with pytest.raises(ValueError) as info:
            RunConfig.from_dict(data)
        for word in words:
            assert word in str(info.value), (data, str(info.value))


# ---- property: any dict either builds a valid config or raises ValueError ------------------------------------
_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 2000), st.integers(), st.just(10**400), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 300), st.text(max_size=8),
    st.sampled_from([c for cs in CHOICES.values() for c in cs] + list(BUILTIN_DATASETS) + ["./x", "~"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_keys = st.sampled_from(FIELDS + ["extra", "colour", ""])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8))
def test_random_dicts_build_a_valid_config_or_raise_value_error(data):
    try:
        cfg = RunConfig.from_dict(data)
    except ValueError as exc:
        message = str(exc)
        assert any(name in message for name in FIELDS) or "unknown config field" in message, message
        return
    assert cfg.validate() is cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=80, deadline=None)
@given(st.fixed_dictionaries({}, optional={name: _values for name in FIELDS}))
def test_random_fields_set_directly_validate_or_raise_value_error(changes):
    try:
        cfg = RunConfig(**changes)
        cfg.validate()
    except ValueError:
        return
    for name in FLOAT_FIELDS:
        assert math.isfinite(getattr(cfg, name))
    for name in INT_FIELDS:
        assert type(getattr(cfg, name)) is int
