"""Tests for bnviz.engine.batchnorm, the from-scratch batch normalization.

Every expected value comes from an independent reference: PyTorch's own
``torch.nn.functional.batch_norm`` / ``torch.nn.BatchNorm1d`` / ``BatchNorm2d``,
autograd through those, or NumPy on the same array. Nothing is compared
against bnviz's own output.
"""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz.engine import batchnorm as bn
from bnviz.engine.batchnorm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNormSteps,
    batch_norm,
    batch_norm_steps,
    channel_reduce_dims,
)

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
}

SHAPES = [
    # 2-D (N, C)
    (2, 3),
    (8, 5),
    (64, 16),
    # 3-D (N, C, L)
    (2, 3, 1),
    (1, 4, 9),
    (4, 6, 7),
    (16, 3, 50),
    # 4-D (N, C, H, W)
    (2, 3, 1, 1),
    (1, 2, 6, 6),
    (4, 3, 5, 5),
    (8, 16, 7, 9),
    # 5-D: the functional form works for any (N, C, *) input, like torch's
    (2, 3, 2, 3, 4),
]


def make_input(shape, dtype=torch.float32, seed=0):
    """Random input with a different mean and spread for every channel."""
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    view = (1, c, *([1] * (len(shape) - 2)))
    scale = (torch.rand(c, generator=g, dtype=dtype) * 4 + 0.5).reshape(view)
    shift = (torch.randn(c, generator=g, dtype=dtype) * 3).reshape(view)
    return torch.randn(shape, generator=g, dtype=dtype) * scale + shift


def make_channel_vectors(c, dtype=torch.float32, seed=1):
    """Random weight, bias, running_mean and (positive) running_var."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(c, generator=g, dtype=dtype)
    bias = torch.randn(c, generator=g, dtype=dtype)
    running_mean = torch.randn(c, generator=g, dtype=dtype)
    running_var = torch.rand(c, generator=g, dtype=dtype) * 2 + 0.1
    return weight, bias, running_mean, running_var


def shape_id(shape):
    return "x".join(map(str, shape))


def assert_same_exception(ours, theirs, same_message=True):
    """Both callables raise; same exception class (and message, if asked)."""
    with pytest.raises(Exception) as expected:
        theirs()
    with pytest.raises(Exception) as got:
        ours()
    assert type(got.value) is type(expected.value), (got.value, expected.value)
    if same_message:
        assert str(got.value) == str(expected.value)
    return got.value


# ---------------------------------------------------------------------------
# Functional form: parity with torch.nn.functional.batch_norm
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_functional_train_matches_torch(shape, dtype, affine):
    x = make_input(shape, dtype)
    w, b, rm, rv = make_channel_vectors(shape[1], dtype)
    if not affine:
        w = b = None
    rm_ours, rv_ours, rm_ref, rv_ref = rm.clone(), rv.clone(), rm.clone(), rv.clone()

    y = batch_norm(x, rm_ours, rv_ours, w, b, training=True, momentum=0.1, eps=1e-5)
    y_ref = F.batch_norm(x, rm_ref, rv_ref, w, b, training=True, momentum=0.1, eps=1e-5)

    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    # the running statistics were updated in place, exactly as torch does
    assert not torch.equal(rm_ours, rm) and not torch.equal(rv_ours, rv)
    torch.testing.assert_close(rm_ours, rm_ref, **TOL[dtype])
    torch.testing.assert_close(rv_ours, rv_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_functional_eval_matches_torch(shape, dtype):
    x = make_input(shape, dtype, seed=3)
    w, b, rm, rv = make_channel_vectors(shape[1], dtype, seed=4)
    rm_before, rv_before = rm.clone(), rv.clone()

    y = batch_norm(x, rm, rv, w, b, training=False, momentum=0.1, eps=1e-3)
    y_ref = F.batch_norm(x, rm_before, rv_before, w, b, training=False, eps=1e-3)

    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    # eval mode never touches the running statistics
    assert torch.equal(rm, rm_before) and torch.equal(rv, rv_before)


@pytest.mark.parametrize("shape", [(8, 5), (4, 6, 7), (4, 3, 5, 5)], ids=shape_id)
def test_functional_train_without_running_stats(shape):
    x = make_input(shape)
    w, b, _, _ = make_channel_vectors(shape[1])
    y = batch_norm(x, None, None, w, b, training=True)
    y_ref = F.batch_norm(x, None, None, w, b, training=True)
    torch.testing.assert_close(y, y_ref, **TOL[torch.float32])


@pytest.mark.parametrize("momentum", [0.0, 0.1, 0.5, 1.0, 0.9])
def test_functional_momentum_matches_torch(momentum):
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    rm_ref, rv_ref = rm.clone(), rv.clone()
    for step in range(4):
        x = make_input((6, 4, 3, 3), torch.float64, seed=10 + step)
        batch_norm(x, rm, rv, training=True, momentum=momentum)
        F.batch_norm(x, rm_ref, rv_ref, training=True, momentum=momentum)
        torch.testing.assert_close(rm, rm_ref, **TOL[torch.float64])
        torch.testing.assert_close(rv, rv_ref, **TOL[torch.float64])


def test_running_update_formula_against_numpy():
    """running = (1 - momentum) * running + momentum * stat, var unbiased."""
    rng = np.random.default_rng(5)
    x_np = rng.normal(2.0, 3.0, size=(5, 3, 4, 2))
    rm0, rv0 = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    rm, rv = torch.tensor(rm0), torch.tensor(rv0)
    batch_norm(torch.tensor(x_np), rm, rv, training=True, momentum=0.3)
    axes = (0, 2, 3)
    np.testing.assert_allclose(rm.numpy(), 0.7 * rm0 + 0.3 * x_np.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.7 * rv0 + 0.3 * x_np.var(axis=axes, ddof=1), rtol=1e-12)


def test_eval_formula_against_numpy():
    rng = np.random.default_rng(6)
    x_np = rng.normal(size=(3, 4, 5))
    rm, rv, w, b = (
        rng.normal(size=4),
        rng.uniform(0.5, 2, 4),
        rng.normal(size=4),
        rng.normal(size=4),
    )
    y = batch_norm(
        torch.tensor(x_np),
        torch.tensor(rm),
        torch.tensor(rv),
        torch.tensor(w),
        torch.tensor(b),
        training=False,
        eps=1e-2,
    )
    c = (None, slice(None), None)
    expected = (x_np - rm[c]) / np.sqrt(rv[c] + 1e-2) * w[c] + b[c]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


def test_running_stats_do_not_join_the_graph():
    x = make_input((8, 3, 4, 4)).requires_grad_()
    w = torch.ones(3, requires_grad=True)
    rm, rv = torch.zeros(3), torch.ones(3)
    y = batch_norm(x, rm, rv, w, None, training=True)
    assert y.requires_grad
    assert not rm.requires_grad and rm.grad_fn is None
    assert not rv.requires_grad and rv.grad_fn is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_low_precision_matches_torch(dtype):
    x = make_input((16, 4, 5, 5)).to(dtype)
    w, b, _, _ = make_channel_vectors(4)  # float32 parameters, as torch allows
    rm, rv = torch.zeros(4), torch.ones(4)
    rm_ref, rv_ref = rm.clone(), rv.clone()
    y = batch_norm(x, rm, rv, w, b, training=True)
    y_ref = F.batch_norm(x, rm_ref, rv_ref, w, b, training=True)
    assert y.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(rm, rm_ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(rv, rv_ref, rtol=1e-3, atol=1e-3)
    # Accuracy: within 2 units in the last place of the float64 result (torch
    # manages that too); arithmetic done in float16 itself is far off near 0.
    exact = F.batch_norm(x.double(), None, None, w.double(), b.double(), True)
    tiny = torch.finfo(dtype).tiny
    ulp = torch.exp2(torch.floor(torch.log2(exact.abs().clamp_min(tiny))))
    ulp = ulp * torch.finfo(dtype).eps
    assert ((y.double() - exact).abs() / ulp).max() <= 2.0


def test_channels_last_input_matches_torch():
    x = make_input((4, 3, 5, 6)).to(memory_format=torch.channels_last)
    torch.testing.assert_close(
        batch_norm(x, None, None, training=True),
        F.batch_norm(x, None, None, training=True),
        **TOL[torch.float32],
    )


def test_empty_batch_leaves_running_stats_alone_like_torch():
    x = torch.randn(0, 3, 5)
    rm, rv = torch.full((3,), 0.5), torch.full((3,), 2.0)
    rm_ref, rv_ref = rm.clone(), rv.clone()
    y = batch_norm(x, rm, rv, training=True)
    y_ref = F.batch_norm(x, rm_ref, rv_ref, training=True)
    assert y.shape == y_ref.shape == (0, 3, 5)
    assert torch.equal(rm, rm_ref) and torch.equal(rv, rv_ref)


def test_no_torch_normalization_op_is_used(monkeypatch):
    x = make_input((6, 3, 4, 4)).requires_grad_()
    layer = BatchNorm2d(3)

    def forbidden(*args, **kwargs):
        raise AssertionError("a torch normalization op was called")

    for module, name in [
        (torch, "batch_norm"),
        (torch, "native_batch_norm"),
        (torch, "instance_norm"),
        (torch, "layer_norm"),
        (torch, "group_norm"),
        (F, "batch_norm"),
        (F, "instance_norm"),
        (F, "layer_norm"),
        (F, "group_norm"),
        (F, "normalize"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    layer(x).sum().backward()
    layer.eval()(x)
    batch_norm_steps(x)
    assert x.grad is not None


# ---------------------------------------------------------------------------
# Modules: parity with torch.nn.BatchNorm1d / BatchNorm2d
# ---------------------------------------------------------------------------

MODULE_CASES = [
    (BatchNorm1d, nn.BatchNorm1d, (8, 4)),
    (BatchNorm1d, nn.BatchNorm1d, (6, 4, 5)),
    (BatchNorm2d, nn.BatchNorm2d, (5, 4, 3, 3)),
]
MODULE_IDS = ["1d-2D", "1d-3D", "2d-4D"]


def make_pair(ours_cls, torch_cls, num_features, seed=0, **kwargs):
    """An ours/torch module pair with identical random affine parameters."""
    ours, ref = ours_cls(num_features, **kwargs), torch_cls(num_features, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p_ours, p_ref in zip(ours.parameters(), ref.parameters(), strict=True):
            value = torch.randn(p_ref.shape, generator=g, dtype=p_ref.dtype)
            p_ours.copy_(value)
            p_ref.copy_(value)
    return ours, ref


def batch_of(shape, n, seed):
    return make_input((n, *shape[1:]), seed=seed)


def assert_modules_agree(ours, ref, tol=None):
    tol = tol or TOL[torch.float32]
    for (name, a), (name_ref, b) in zip(ours.state_dict().items(), ref.state_dict().items(), strict=True):
        assert name == name_ref
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None, 0.0, 1.0])
@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), MODULE_CASES, ids=MODULE_IDS)
def test_module_running_stats_match_torch(ours_cls, torch_cls, shape, momentum):
    ours, ref = make_pair(ours_cls, torch_cls, shape[1], momentum=momentum)
    # several training steps with different batch sizes (matters for None)
    for step, n in enumerate([shape[0], 3, shape[0] + 4, 2]):
        x = batch_of(shape, n, seed=100 + step)
        torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])
        assert_modules_agree(ours, ref)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 4

    ours.eval()
    ref.eval()
    x = batch_of(shape, 3, seed=200)
    torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])
    assert_modules_agree(ours, ref)  # eval leaves buffers alone

    ours.train()
    ref.train()
    x = batch_of(shape, 5, seed=201)
    torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])
    assert_modules_agree(ours, ref)


def test_momentum_none_is_the_plain_average_of_batch_statistics():
    """Independent of torch: cumulative average = mean of the batch stats."""
    layer = BatchNorm2d(3, momentum=None, dtype=torch.float64)
    rng = np.random.default_rng(7)
    batches = [rng.normal(1.0, 2.0, size=(n, 3, 4, 4)) for n in (2, 5, 3)]
    for xb in batches:
        layer(torch.tensor(xb))
    axes = (0, 2, 3)
    means = np.mean([xb.mean(axis=axes) for xb in batches], axis=0)
    variances = np.mean([xb.var(axis=axes, ddof=1) for xb in batches], axis=0)
    np.testing.assert_allclose(layer.running_mean.numpy(), means, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), variances, rtol=1e-12)


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), MODULE_CASES, ids=MODULE_IDS)
def test_module_without_running_stats_matches_torch(ours_cls, torch_cls, shape):
    ours, ref = make_pair(ours_cls, torch_cls, shape[1], track_running_stats=False)
    assert ours.running_mean is None and ours.running_var is None
    assert ours.num_batches_tracked is None
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        x = batch_of(shape, 6, seed=7)
        y = ours(x)
        torch.testing.assert_close(y, ref(x), **TOL[torch.float32])
    # eval still uses batch statistics: output is independent of the buffers
    plain = ours_cls(shape[1], affine=False, track_running_stats=False).eval()
    y = plain(batch_of(shape, 6, seed=8))
    dims = tuple(d for d in range(y.dim()) if d != 1)
    torch.testing.assert_close(y.mean(dim=dims), torch.zeros(shape[1]), rtol=0, atol=1e-5)


def test_module_with_buffers_but_tracking_switched_off_like_torch():
    """track_running_stats flipped after construction: torch ignores buffers in train."""
    ours, ref = make_pair(BatchNorm1d, nn.BatchNorm1d, 3)
    ours.track_running_stats = ref.track_running_stats = False
    x = make_input((8, 3))
    torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])
    assert_modules_agree(ours, ref)  # buffers untouched (num_batches_tracked == 0)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), MODULE_CASES, ids=MODULE_IDS)
@pytest.mark.parametrize("kwargs", [{"affine": False}, {"bias": False}], ids=["no-affine", "no-bias"])
def test_module_affine_options_match_torch(ours_cls, torch_cls, shape, kwargs):
    ours, ref = make_pair(ours_cls, torch_cls, shape[1], **kwargs)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert ours.bias is None
    assert (ours.weight is None) == (ref.weight is None)
    for step in range(3):
        x = batch_of(shape, 4, seed=step)
        torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])
    assert_modules_agree(ours, ref)
    ours.eval()
    ref.eval()
    x = batch_of(shape, 4, seed=9)
    torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float32])


def test_module_float64_matches_torch():
    ours, ref = make_pair(BatchNorm2d, nn.BatchNorm2d, 4, dtype=torch.float64, momentum=0.3)
    assert ours.weight.dtype == ours.running_var.dtype == torch.float64
    assert ours.num_batches_tracked.dtype == torch.long
    for step in range(3):
        x = make_input((4, 4, 3, 5), torch.float64, seed=step)
        torch.testing.assert_close(ours(x), ref(x), **TOL[torch.float64])
    assert_modules_agree(ours, ref, TOL[torch.float64])


def test_module_empty_batch_counts_like_torch():
    ours, ref = make_pair(BatchNorm1d, nn.BatchNorm1d, 3, momentum=None)
    x = torch.randn(0, 3)
    assert ours(x).shape == ref(x).shape
    assert_modules_agree(ours, ref)  # num_batches_tracked incremented by both


# ---------------------------------------------------------------------------
# state_dict, reset, repr
# ---------------------------------------------------------------------------

CONFIGS = [
    {},
    {"affine": False},
    {"track_running_stats": False},
    {"affine": False, "track_running_stats": False},
    {"bias": False},
    {"momentum": None, "eps": 1e-3},
]


@pytest.mark.parametrize("kwargs", CONFIGS, ids=repr)
@pytest.mark.parametrize(
    ("ours_cls", "torch_cls"),
    [(BatchNorm1d, nn.BatchNorm1d), (BatchNorm2d, nn.BatchNorm2d)],
)
def test_state_dict_keys_repr_and_initial_values_match_torch(ours_cls, torch_cls, kwargs):
    ours, ref = ours_cls(5, **kwargs), torch_cls(5, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours.state_dict()._metadata[""]["version"] == ref.state_dict()._metadata[""]["version"]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert_modules_agree(ours, ref, {"rtol": 0, "atol": 0})
    assert repr(ours) == repr(ref)
    assert ours.extra_repr() == ref.extra_repr()


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), MODULE_CASES, ids=MODULE_IDS)
def test_state_dict_cross_loading(ours_cls, torch_cls, shape):
    # torch -> ours
    ref = torch_cls(shape[1])
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    for step in range(3):
        ref(batch_of(shape, 4, seed=step))
    ours = ours_cls(shape[1])
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_modules_agree(ours, ref, {"rtol": 0, "atol": 0})
    x = batch_of(shape, 3, seed=50)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), **TOL[torch.float32])

    # ours -> torch
    ours2 = ours_cls(shape[1], momentum=0.4)
    for step in range(3):
        ours2(batch_of(shape, 4, seed=10 + step))
    ref2 = torch_cls(shape[1], momentum=0.4)
    ref2.load_state_dict(ours2.state_dict(), strict=True)
    assert int(ref2.num_batches_tracked) == 3
    torch.testing.assert_close(ref2.running_mean, ours2.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(ours2.eval()(x), ref2.eval()(x), **TOL[torch.float32])


def test_legacy_state_dict_without_num_batches_tracked_loads_like_torch():
    state = nn.BatchNorm2d(3).state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1
    ours, ref = BatchNorm2d(3), nn.BatchNorm2d(3)
    ref.load_state_dict(state, strict=True)  # the reference accepts it ...
    ours.load_state_dict(state, strict=True)  # ... and so must we
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 0


def test_reset_parameters_and_running_stats_match_torch():
    ours, ref = make_pair(BatchNorm2d, nn.BatchNorm2d, 3)
    for step in range(2):
        x = make_input((4, 3, 2, 2), seed=step)
        ours(x)
        ref(x)
    ours.reset_running_stats()
    ref.reset_running_stats()
    assert_modules_agree(ours, ref, {"rtol": 0, "atol": 0})
    assert not torch.equal(ours.weight, torch.ones(3))  # parameters kept
    ours.reset_parameters()
    ref.reset_parameters()
    assert_modules_agree(ours, ref, {"rtol": 0, "atol": 0})
    assert torch.equal(ours.weight, torch.ones(3)) and torch.equal(ours.bias, torch.zeros(3))


def test_training_loop_matches_torch():
    """Conv + BN + Linear trained with SGD: identical parameters and buffers."""

    def net(bn_cls):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(2, 4, 3),
            bn_cls(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 3),
        )

    ours, ref = net(BatchNorm2d), net(nn.BatchNorm2d)
    ref.load_state_dict(ours.state_dict())  # same conv/linear init, BN defaults
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.randn(8, 2, 6, 6, generator=g)
        target = torch.randint(0, 3, (8,), generator=g)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            F.cross_entropy(model(x), target).backward()
            opt.step()
    assert_modules_agree(ours, ref, {"rtol": 1e-5, "atol": 1e-6})


# ---------------------------------------------------------------------------
# Errors: same exception types (and messages) as torch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1)], ids=shape_id)
def test_one_value_per_channel_in_training(shape):
    x = torch.randn(shape)
    err = assert_same_exception(
        lambda: batch_norm(x, torch.zeros(3), torch.ones(3), training=True),
        lambda: F.batch_norm(x, torch.zeros(3), torch.ones(3), training=True),
    )
    assert isinstance(err, ValueError)
    assert "Expected more than 1 value per channel when training" in str(err)
    # eval mode is fine with a single sample, in both
    torch.testing.assert_close(
        batch_norm(x, torch.zeros(3), torch.full((3,), 2.0)),
        F.batch_norm(x, torch.zeros(3), torch.full((3,), 2.0)),
    )


@pytest.mark.parametrize(
    ("ours_cls", "torch_cls", "shape"),
    [
        (BatchNorm1d, nn.BatchNorm1d, (1, 3)),
        (BatchNorm2d, nn.BatchNorm2d, (1, 3, 1, 1)),
    ],
    ids=["1d", "2d"],
)
def test_module_one_value_per_channel_in_training(ours_cls, torch_cls, shape):
    x = torch.randn(shape)
    assert_same_exception(lambda: ours_cls(3)(x), lambda: torch_cls(3)(x))
    torch.testing.assert_close(ours_cls(3).eval()(x), torch_cls(3).eval()(x))


def test_batch_norm_steps_rejects_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_steps(torch.randn(1, 4, 1, 1))


@pytest.mark.parametrize("eps", [0.0, -1e-3])
def test_eps_not_positive_in_training(eps):
    x = torch.randn(4, 3)
    err = assert_same_exception(
        lambda: batch_norm(x, None, None, training=True, eps=eps),
        lambda: F.batch_norm(x, None, None, training=True, eps=eps),
    )
    assert isinstance(err, ValueError)
    assert_same_exception(lambda: BatchNorm1d(3, eps=eps)(x), lambda: nn.BatchNorm1d(3, eps=eps)(x))
    with pytest.raises(ValueError, match="eps"):
        batch_norm_steps(x, eps=eps)


def test_eps_in_eval_mode():
    x, rm, rv = torch.randn(4, 3), torch.zeros(3), torch.full((3,), 2.0)
    # eps == 0 is allowed in eval mode ...
    torch.testing.assert_close(
        batch_norm(x, rm, rv, training=False, eps=0.0),
        F.batch_norm(x, rm, rv, training=False, eps=0.0),
    )
    # ... a negative one is not
    assert_same_exception(
        lambda: batch_norm(x, rm, rv, training=False, eps=-1.0),
        lambda: F.batch_norm(x, rm, rv, training=False, eps=-1.0),
    )


@pytest.mark.parametrize(
    ("ours_cls", "torch_cls", "shape"),
    [
        (BatchNorm1d, nn.BatchNorm1d, (3,)),
        (BatchNorm1d, nn.BatchNorm1d, (2, 3, 4, 4)),
        (BatchNorm1d, nn.BatchNorm1d, (2, 3, 4, 4, 4)),
        (BatchNorm2d, nn.BatchNorm2d, (2, 3)),
        (BatchNorm2d, nn.BatchNorm2d, (2, 3, 4)),
        (BatchNorm2d, nn.BatchNorm2d, (2, 3, 4, 4, 4)),
    ],
    ids=["1d-1D", "1d-4D", "1d-5D", "2d-2D", "2d-3D", "2d-5D"],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_wrong_number_of_dims(ours_cls, torch_cls, shape, mode):
    x = torch.randn(shape)
    err = assert_same_exception(
        lambda: getattr(ours_cls(3), mode)()(x),
        lambda: getattr(torch_cls(3), mode)()(x),
    )
    assert isinstance(err, ValueError)
    assert f"got {len(shape)}D input" in str(err)


def test_functional_rejects_fewer_than_two_dims():
    # torch's functional fails here with RuntimeError/IndexError depending on
    # the mode; ours gives a clear ValueError in both modes.
    for training in (True, False):
        with pytest.raises(ValueError, match="got 1D input"):
            batch_norm(torch.randn(3), torch.zeros(3), torch.ones(3), training=training)


def test_momentum_none_in_functional_is_a_type_error_like_torch():
    x = torch.randn(4, 3)
    assert_same_exception(
        lambda: batch_norm(x, torch.zeros(3), torch.ones(3), training=True, momentum=None),
        lambda: F.batch_norm(x, torch.zeros(3), torch.ones(3), training=True, momentum=None),
        same_message=False,
    )


def test_bookkeeping_errors_match_torch():
    x = torch.randn(4, 3)
    cases = [
        # eval mode without running statistics
        (None, None, None, False),
        (torch.zeros(3), None, None, False),
        # only one running statistic in training
        (torch.zeros(3), None, None, True),
        # wrong number of channels
        (torch.zeros(4), torch.ones(4), None, False),
        (torch.zeros(4), torch.ones(4), None, True),
        (None, None, torch.ones(5), True),
    ]
    for rm, rv, w, training in cases:
        assert_same_exception(
            lambda rm=rm, rv=rv, w=w, training=training: batch_norm(x, rm, rv, w, training=training),
            lambda rm=rm, rv=rv, w=w, training=training: F.batch_norm(x, rm, rv, w, training=training),
        )


def test_integer_input_is_rejected_like_torch():
    x = torch.ones(4, 3, dtype=torch.long)
    assert_same_exception(
        lambda: batch_norm(x, None, None, training=True),
        lambda: F.batch_norm(x, None, None, training=True),
        same_message=False,
    )


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (3, 2, 2, 3)], ids=shape_id)
def test_gradcheck_training(shape):
    x = make_input(shape, torch.float64).requires_grad_()
    w, b, _, _ = make_channel_vectors(shape[1], torch.float64)
    w.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w, b: batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        (x, w, b),
    )
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        (x, w, b),
    )


def test_gradcheck_eval():
    x = make_input((3, 2, 2, 3), torch.float64).requires_grad_()
    w, b, rm, rv = make_channel_vectors(2, torch.float64)
    w.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, rm, rv, w, b, training=False), (x, w, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(
    ("ours_cls", "torch_cls", "shape"),
    [
        (BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 5)),
        (BatchNorm1d, nn.BatchNorm1d, (6, 3, 7)),
    ],
    ids=["2d", "1d"],
)
def test_gradients_match_torch_module(ours_cls, torch_cls, shape, mode, dtype):
    ours, ref = make_pair(ours_cls, torch_cls, shape[1], dtype=dtype)
    if mode == "eval":  # give the running statistics something to say first
        for step in range(2):
            x = make_input(shape, dtype, seed=40 + step)
            ours(x)
            ref(x)
        ours.eval()
        ref.eval()
    x = make_input(shape, dtype, seed=7)
    upstream = make_input(shape, dtype, seed=8)
    x_ours = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    (ours(x_ours) * upstream).sum().backward()
    (ref(x_ref) * upstream).sum().backward()
    tol = TOL[dtype]
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **tol)
    # d/d(gamma) and d/d(beta) are sums over the m values of each channel, with
    # heavy cancellation; torch's CPU kernel accumulates them in float64, plain
    # float32 autograd does not, so allow rounding error growing with m.
    m = x.numel() // shape[1]
    param_tol = tol if dtype == torch.float64 else {"rtol": 1e-5, "atol": 2e-6 * m}
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **param_tol)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **param_tol)


# ---------------------------------------------------------------------------
# batch_norm_steps: every intermediate against NumPy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((6, 3), (0,)),
        ((4, 3, 5), (0, 2)),
        ((4, 3, 5, 6), (0, 2, 3)),
        ((2, 5, 1, 1), (0, 2, 3)),
    ],
    ids=["2D", "3D", "4D", "4D-1x1"],
)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batch_norm_steps_against_numpy(shape, axes, affine):
    rng = np.random.default_rng(11)
    x_np = rng.normal(1.5, 2.5, size=shape)
    c = shape[1]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    eps = 1e-3
    view = (1, c, *([1] * (len(shape) - 2)))

    steps = batch_norm_steps(
        torch.tensor(x_np),
        torch.tensor(gamma) if affine else None,
        torch.tensor(beta) if affine else None,
        eps=eps,
    )

    m = int(np.prod([shape[a] for a in axes]))
    mean = np.mean(x_np, axis=axes)
    var0 = np.var(x_np, axis=axes, ddof=0)
    var1 = np.var(x_np, axis=axes, ddof=1)
    std = np.sqrt(var0 + eps)
    x_hat = (x_np - mean.reshape(view)) / std.reshape(view)
    out = x_hat * gamma.reshape(view) + beta.reshape(view) if affine else x_hat

    assert isinstance(steps, BatchNormSteps)
    assert steps.reduce_dims == axes
    assert steps.m == m
    for name, expected in [
        ("mean", mean),
        ("var_biased", var0),
        ("var_unbiased", var1),
        ("std", std),
        ("x_hat", x_hat),
        ("output", out),
    ]:
        got = getattr(steps, name)
        assert tuple(got.shape) == expected.shape, name
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-11, atol=1e-12, err_msg=name)


def test_batch_norm_steps_float32_against_numpy_float64():
    rng = np.random.default_rng(12)
    x_np = rng.normal(-3.0, 4.0, size=(16, 4, 6, 6)).astype(np.float32)
    steps = batch_norm_steps(torch.from_numpy(x_np))
    x64 = x_np.astype(np.float64)
    axes = (0, 2, 3)
    np.testing.assert_allclose(steps.mean.numpy(), x64.mean(axis=axes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(steps.var_biased.numpy(), x64.var(axis=axes), rtol=1e-5)
    np.testing.assert_allclose(steps.var_unbiased.numpy(), x64.var(axis=axes, ddof=1), rtol=1e-5)
    assert steps.output.dtype == torch.float32


def test_batch_norm_steps_output_matches_torch_and_is_frozen():
    x = make_input((8, 3, 4, 4))
    w, b, _, _ = make_channel_vectors(3)
    steps = batch_norm_steps(x, w, b, eps=1e-4)
    expected = F.batch_norm(x, None, None, w, b, training=True, eps=1e-4)
    torch.testing.assert_close(steps.output, expected, **TOL[torch.float32])
    # x_hat has zero mean and unit (biased) variance per channel, up to eps
    torch.testing.assert_close(steps.x_hat.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(
        steps.x_hat.var(dim=(0, 2, 3), correction=0),
        torch.ones(3),
        rtol=1e-3,
        atol=1e-3,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps.mean = torch.zeros(3)


@pytest.mark.parametrize(("shape", "dims"), [((4, 2), (0,)), ((4, 2, 3), (0, 2)), ((4, 2, 3, 3), (0, 2, 3))])
def test_channel_reduce_dims(shape, dims):
    assert channel_reduce_dims(torch.zeros(shape)) == dims


def test_docstring_examples_run():
    result = doctest.testmod(bn, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
