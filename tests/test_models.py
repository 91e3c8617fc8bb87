"""engine.models: block layout, norm choices, deterministic init, weight sharing and Santurkar et al.'s noisy BN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz.engine import batchnorm
from bnviz.engine.config import BATCH_NORMS, NORMS, PLACEMENTS, RunConfig
from bnviz.engine.models import NoisyBatchNorm, build_model, copy_shared_weights

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")
DIGITS = (1, 8, 8)


def tiny(**changes) -> RunConfig:
    base = {"model": "cnn", "depth": 2, "width": 4, "batch_size": 8, "groups": 2}
    return RunConfig(**{**base, **changes}).validate()


def layers(net) -> list[nn.Module]:
    return [block.layer for block in net.blocks]


@pytest.mark.parametrize(("model", "norm", "placement"), [
    (model, norm, placement) for model in ("cnn", "mlp") for norm in NORMS for placement in PLACEMENTS
    if not (model == "mlp" and norm == "instance")])  # instance norm is refused for an MLP
def test_bias_dropped_only_before_batch_norm(model, norm, placement):
    net = build_model(tiny(model=model, norm=norm, placement=placement), DIGITS, 10)
    dropped = norm in BATCH_NORMS and placement == "before"
    for layer in layers(net):
        assert isinstance(layer, nn.Conv2d if model == "cnn" else nn.Linear)
        assert (layer.bias is None) == dropped
    assert net.head.bias is not None
    assert hasattr(net.blocks[0], "norm") == (norm != "none")


@pytest.mark.parametrize(("model", "norm", "impl", "expected"), [
    ("cnn", "batch", "torch", nn.BatchNorm2d),
    ("mlp", "batch", "torch", nn.BatchNorm1d),
    ("cnn", "batch", "scratch", batchnorm.BatchNorm2d),
    ("mlp", "batch", "scratch", batchnorm.BatchNorm1d),
])
def test_batch_norm_layers(model, norm, impl, expected):
    cfg = tiny(model=model, norm=norm, bn_impl=impl, eps=1e-3, bn_momentum=0.25, width=6)
    for block in build_model(cfg, DIGITS, 10).blocks:
        assert type(block.norm) is expected
        assert (block.norm.num_features, block.norm.eps, block.norm.momentum) == (6, 1e-3, 0.25)


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_noisy_batch_norm_wraps_a_batch_norm_with_its_own_seed(model):
    net = build_model(tiny(model=model, norm="batch-noisy", depth=3), DIGITS, 10)
    norms = [block.norm for block in net.blocks]
    assert all(type(n) is NoisyBatchNorm for n in norms)
    assert all(type(n.bn) is (nn.BatchNorm2d if model == "cnn" else nn.BatchNorm1d) for n in norms)
    assert norms[0].weight is norms[0].bn.weight and norms[0].bias is norms[0].bn.bias
    first = [torch.rand((), generator=n.generator).item() for n in norms]
    assert len(set(first)) == 3  # one generator per layer, differently seeded


@pytest.mark.parametrize(("model", "norm", "groups", "channels"), [
    ("cnn", "layer", 1, 8), ("cnn", "instance", 8, 8), ("cnn", "group", 2, 8), ("cnn", "group", 4, 8),
    ("mlp", "group", 2, 8),
])
def test_group_norm_family(model, norm, groups, channels):
    net = build_model(tiny(model=model, norm=norm, width=channels, groups=groups, eps=1e-4), DIGITS, 10)
    for block in net.blocks:
        assert type(block.norm) is nn.GroupNorm
        assert (block.norm.num_groups, block.norm.num_channels, block.norm.eps) == (groups, channels, 1e-4)


def test_layer_norm_for_mlp_normalizes_each_sample_over_its_features():
    net = build_model(tiny(model="mlp", norm="layer", width=8, eps=1e-4), DIGITS, 10)
    for block in net.blocks:
        assert type(block.norm) is nn.LayerNorm
        assert block.norm.normalized_shape == (8,) and block.norm.eps == 1e-4
    x = torch.randn(5, 8) * 3 + 2
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-4)
    torch.testing.assert_close(net.blocks[0].norm(x), expected, rtol=1e-5, atol=1e-5)


def test_ioffe_szegedy_mlp_64_100_100_100_10_sigmoid_is_expressible():
    cfg = RunConfig(model="mlp", depth=3, width=100, activation="sigmoid", norm="none", batch_size=60, lr=0.5,
                    sgd_momentum=0.0)
    net = build_model(cfg, DIGITS, 10)
    shapes = [tuple(layer.weight.shape) for layer in layers(net)] + [tuple(net.head.weight.shape)]
    assert shapes == [(100, 64), (100, 100), (100, 100), (10, 100)]
    assert all(type(block.act) is nn.Sigmoid for block in net.blocks)
    assert net(torch.rand(60, *DIGITS)).shape == (60, 10)


@pytest.mark.parametrize("model", ["cnn", "mlp"])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_placement_sets_the_order_of_layer_norm_and_activation(model, placement):
    net = build_model(tiny(model=model, norm="batch", placement=placement, activation="tanh"), DIGITS, 10)
    calls = []
    for b, block in enumerate(net.blocks):
        for name in ("layer", "norm", "act"):
            getattr(block, name).register_forward_hook(lambda m, i, o, tag=(b, name): calls.append(tag))
    x = torch.rand(8, *DIGITS)
    out = net(x)
    order = ["layer", "norm", "act"] if placement == "before" else ["layer", "act", "norm"]
    assert calls == [(b, name) for b in range(2) for name in order]
    # and the numbers: recompute the forward pass by hand with torch.nn.functional
    h = x.flatten(1) if model == "mlp" else x
    for block in net.blocks:
        bn = block.norm
        h = block.layer(h)

        def norm(v, bn=bn):
            return F.batch_norm(v, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)

        h = norm(torch.tanh(h)) if placement == "after" else torch.tanh(norm(h))
    if model == "cnn":
        h = h.mean(dim=(2, 3))
    torch.testing.assert_close(out, net.head(h), rtol=1e-5, atol=1e-6)


def test_cnn_on_larger_images_pools_to_8x8():
    net = build_model(tiny(depth=3), (3, 32, 32), 10)
    sizes = []
    for block in net.blocks:
        block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sizes == [(16, 16), (8, 8), (8, 8)]


def _state(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("changes", [{}, {"model": "mlp"}, {"init": "normal", "init_scale": 0.3}])
def test_same_seed_same_weights_different_seed_different(changes):
    a = _state(build_model(tiny(seed=3, **changes), DIGITS, 10))
    b = _state(build_model(tiny(seed=3, **changes), DIGITS, 10))
    c = _state(build_model(tiny(seed=4, **changes), DIGITS, 10))
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    weights = [k for k in a if k.endswith("weight") and a[k].dim() > 1]
    assert len(weights) == 3 and all(not torch.equal(a[k], c[k]) for k in weights)


def test_init_scale_and_normal_init():
    one = build_model(tiny(model="mlp", width=64, norm="none"), DIGITS, 10)
    three = build_model(tiny(model="mlp", width=64, norm="none", init_scale=3.0), DIGITS, 10)
    for a, b in zip(layers(one), layers(three), strict=True):
        torch.testing.assert_close(b.weight, 3 * a.weight, rtol=1e-6, atol=0)
        torch.testing.assert_close(b.bias, a.bias, rtol=0, atol=0)  # biases keep PyTorch's default range
        bound = 1 / np.sqrt(a.weight.shape[1])  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        biggest = float(a.weight.detach().abs().max())
        assert 0.9 * bound < biggest <= bound
    normal = build_model(tiny(model="mlp", width=64, norm="none", init="normal", init_scale=0.5), DIGITS, 10)
    w = torch.cat([layer.weight.detach().flatten() for layer in layers(normal)]).numpy()
    assert abs(w.std() - 0.5) < 0.02 and abs(w.mean()) < 0.02


def test_copy_shared_weights_copies_exactly_the_same_named_same_shaped_tensors():
    source = build_model(tiny(norm="none", seed=1), DIGITS, 10)
    target = build_model(tiny(norm="batch", seed=2), DIGITS, 10)
    source_state, target_before = _state(source), _state(target)
    expected = sorted(k for k in source_state if k in target_before and source_state[k].shape == target_before[k].shape)
    # conv weights and the head are shared; the conv biases (absent before BN) and the BN tensors are not
    assert expected == ["blocks.0.layer.weight", "blocks.1.layer.weight", "head.bias", "head.weight"]
    assert copy_shared_weights(source, target) == expected
    after = _state(target)
    for k, v in after.items():
        assert torch.equal(v, source_state[k] if k in expected else target_before[k]), k
    for k, v in _state(source).items():
        assert torch.equal(v, source_state[k])


def test_copy_shared_weights_skips_same_named_tensors_of_another_shape():
    source = build_model(tiny(norm="none", width=4, seed=1), DIGITS, 10)
    target = build_model(tiny(norm="none", width=8, seed=2), DIGITS, 10)
    target_before = _state(target)
    assert copy_shared_weights(source, target) == ["head.bias"]
    for k, v in _state(target).items():
        assert torch.equal(v, source.state_dict()[k] if k == "head.bias" else target_before[k]), k


# ---- noisy batch norm (Santurkar et al. 2018) ------------------------------------------------------------------
def _noisy(channels=4, seed=5) -> NoisyBatchNorm:
    return NoisyBatchNorm(nn.BatchNorm2d(channels), seed=seed)


def test_noisy_batch_norm_adds_no_noise_in_eval_mode():
    layer = _noisy()
    with torch.no_grad():
        layer.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        layer.bn.running_var.copy_(torch.tensor([1.5, 0.5, 2.0, 1.0]))
        layer.bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0]))
    layer.eval()
    x = torch.randn(6, 4, 3, 3)
    expected = F.batch_norm(x, layer.bn.running_mean, layer.bn.running_var, layer.bn.weight, layer.bn.bias,
                            training=False, eps=layer.bn.eps)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


def _bn(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, None, None, training=True, eps=1e-5)  # BN(x) with gamma 1, beta 0


def test_noisy_batch_norm_train_mode_is_s_times_bn_plus_m_with_noise_of_the_outputs_shape():
    layer = _noisy(channels=4).train()
    x = torch.randn(8, 4, 3, 3) * 2 + 1
    y = layer(x)
    s, m = layer.last_noise
    assert s.shape == m.shape == x.shape  # one s and one m per activation of each sample
    torch.testing.assert_close(y, s * _bn(x) + m, rtol=0, atol=1e-6)
    flat = nn.BatchNorm1d(5).train()
    noisy_flat = NoisyBatchNorm(flat, seed=1).train()
    noisy_flat(torch.randn(7, 5))
    assert noisy_flat.last_noise[0].shape == (7, 5)


def test_noisy_batch_norm_draws_santurkars_distribution_independently_per_sample_and_activation():
    layer = _noisy(channels=4).train()
    x = torch.randn(64, 4, 4, 4)
    centres, scales, m_spread, s_spread, across_m, across_s, corr = [], [], [], [], [], [], []
    for _ in range(300):
        layer(x)
        s, m = (t.double().numpy() for t in layer.last_noise)
        # m ~ U(mu - 0.1, mu + 0.1): every m of one step lies in a window of width 0.2 inside (-0.6, 0.6)
        assert m.max() - m.min() <= 0.2 + 1e-6 and -0.6 <= m.min() and m.max() <= 0.6
        centres.append((m.max() + m.min()) / 2)  # ~ mu (4,096 uniform draws fill their window)
        scales.append(s.mean())  # ~ sigma
        m_spread.append(m.std())
        s_spread.append(s.std())
        across_m.append(m.std(axis=0).mean())  # at one activation, across the samples: 0 if shared by the batch
        across_s.append(s.std(axis=0).mean())
        flat = s.reshape(64, -1)
        corr.append(np.corrcoef(flat[0], flat[1])[0, 1])
    centres, scales = np.array(centres), np.array(scales)
    # per step mu ~ U(-0.5, 0.5) (mean 0, std 1/sqrt(12) = 0.289) and sigma ~ U(1, 1.25) (mean 1.125, std 0.072)
    assert centres.min() >= -0.51 and centres.max() <= 0.51 and centres.min() < -0.4 and centres.max() > 0.4
    assert abs(centres.mean()) < 0.06 and abs(centres.std() - 1 / np.sqrt(12)) < 0.04
    assert scales.min() >= 0.99 and scales.max() <= 1.26 and scales.min() < 1.03 and scales.max() > 1.22
    assert abs(scales.mean() - 1.125) < 0.015 and abs(scales.std() - 0.25 / np.sqrt(12)) < 0.012
    # per element: m uniform of half-width 0.1 (std 0.0577), s normal with std 0.1, also across the samples
    assert abs(np.mean(m_spread) - 0.1 / np.sqrt(3)) < 0.002 and abs(np.mean(s_spread) - 0.1) < 0.002
    assert abs(np.mean(across_m) - 0.1 / np.sqrt(3)) < 0.003 and abs(np.mean(across_s) - 0.1) < 0.003
    assert abs(np.mean(corr)) < 0.02  # two samples' noises are uncorrelated


def test_noisy_batch_norm_freeze_reuses_the_last_draw_and_same_seed_same_noise():
    a, b = _noisy(seed=9).train(), _noisy(seed=9).train()
    x1, x2, x3 = (torch.randn(16, 4, 3, 3) for _ in range(3))
    torch.testing.assert_close(a(x1), b(x1), rtol=0, atol=0)
    a(x2)
    first = tuple(t.clone() for t in a.last_noise)
    a.freeze_noise = True
    torch.testing.assert_close(a(x3), first[0] * _bn(x3) + first[1], rtol=0, atol=1e-6)  # the very same noise
    assert all(torch.equal(t, f) for t, f in zip(a.last_noise, first, strict=True))
    a(torch.randn(8, 4, 3, 3))  # another batch size cannot reuse it: a new draw of the new shape
    assert a.last_noise[0].shape == (8, 4, 3, 3)
    a.freeze_noise = False
    a(x3)
    assert not torch.equal(a.last_noise[0], first[0])
