"""engine.folding: batch norm folded into the layer before it, checked against the unfolded layers in eval mode,
against torch.nn.utils.fusion, and against the formula computed in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from bnviz.engine import batchnorm as scratch
from bnviz.engine.folding import fold_batch_norm, fold_model, folded_weight_and_bias
from bnviz.errors import BnvizError


def trained_statistics(bn: nn.Module, generator: torch.Generator) -> None:
    """Give `bn` running statistics, gamma and beta far from their initial values."""
    with torch.no_grad():
        c = bn.running_mean.numel()
        bn.running_mean.copy_(torch.randn(c, generator=generator) * 3)
        bn.running_var.copy_(torch.rand(c, generator=generator) * 5 + 0.01)
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(c, generator=generator))
            bn.bias.copy_(torch.randn(c, generator=generator))


def pair(kind: str, bias: bool, affine: bool = True, norm=None):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if kind == "linear":
        layer, bn, x = nn.Linear(7, 5, bias=bias), (norm or nn.BatchNorm1d)(5, affine=affine), torch.randn(11, 7)
    else:
        layer = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        bn, x = (norm or nn.BatchNorm2d)(4, affine=affine), torch.randn(6, 3, 5, 5)
    trained_statistics(bn, g)
    return layer.eval(), bn.eval(), x


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_folded_layer_computes_what_the_two_layers_compute_in_eval_mode(kind, bias, affine):
    layer, bn, x = pair(kind, bias, affine)
    with torch.no_grad():
        expected = bn(layer(x))
        got = fold_batch_norm(layer, bn)(x)
    assert torch.max(torch.abs(got - expected)).item() <= 1e-5


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_folding_agrees_with_torch_fusion(kind):
    layer, bn, x = pair(kind, bias=True)
    fuse = fuse_linear_bn_eval if kind == "linear" else fuse_conv_bn_eval
    ours, theirs = fold_batch_norm(layer, bn), fuse(layer, bn)
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bias, theirs.bias, rtol=1e-6, atol=1e-6)


def test_formula_matches_numpy_in_float64():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 3, 2, 2)), rng.normal(size=4)
    mean, var, gamma, beta = rng.normal(size=4), rng.uniform(0.1, 2, size=4), rng.normal(size=4), rng.normal(size=4)
    eps = 1e-3
    t = {k: torch.from_numpy(v) for k, v in dict(w=w, b=b, mean=mean, var=var, gamma=gamma, beta=beta).items()}
    new_w, new_b = folded_weight_and_bias(t["w"], t["b"], t["mean"], t["var"], t["gamma"], t["beta"], eps)
    scale = gamma / np.sqrt(var + eps)
    np.testing.assert_allclose(new_w.numpy(), w * scale[:, None, None, None], rtol=1e-12)
    np.testing.assert_allclose(new_b.numpy(), (b - mean) * scale + beta, rtol=1e-12)


def test_the_original_layers_are_not_changed_and_bnvizs_own_batch_norm_folds_too():
    layer, bn, x = pair("conv", bias=False, norm=scratch.BatchNorm2d)
    before = layer.weight.clone()
    with torch.no_grad():
        expected = bn(layer(x))
        folded = fold_batch_norm(layer, bn)
        assert torch.max(torch.abs(folded(x) - expected)).item() <= 1e-5
    assert torch.equal(layer.weight, before) and layer.bias is None and folded.bias is not None


def test_what_cannot_be_folded_says_why():
    layer, bn, _ = pair("linear", bias=True)
    with pytest.raises(BnvizError, match="Linear or Conv2d"):
        fold_batch_norm(nn.ReLU(), bn)
    with pytest.raises(BnvizError, match="only batch norm"):
        fold_batch_norm(layer, nn.LayerNorm(5))
    with pytest.raises(BnvizError, match="no running statistics"):
        fold_batch_norm(layer, nn.BatchNorm1d(5, track_running_stats=False))
    with pytest.raises(BnvizError, match="5 output channels but the batch norm 6"):
        fold_batch_norm(layer, nn.BatchNorm1d(6))


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_a_trained_network_folds_to_the_same_predictions(model):
    from bnviz import RunConfig, train

    run = train(RunConfig(model=model, norm="batch", steps=30, record_every=0, eval_every=30))
    net = run.model.eval()
    x = run.dataset.x_test[:64]
    folded, count = fold_model(net)
    with torch.no_grad():
        expected, got = net(x), folded(x)
    assert count == run.cfg.depth and not any(hasattr(b, "norm") for b in folded.blocks)
    assert torch.max(torch.abs(got - expected)).item() <= 1e-4  # logits after 3 folded blocks, float32
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_norm_after_the_activation_is_not_folded():
    from bnviz import RunConfig
    from bnviz.engine.models import build_model

    net = build_model(RunConfig(model="mlp", placement="after"), (1, 8, 8), 10)
    with pytest.raises(BnvizError, match="no batch norm directly after a layer"):
        fold_model(net)
