"""science.depth_gradients: the gradient ratio checked against a hand-written backward pass in numpy, and Yang et
al. (2019)'s effect reproduced at fixed seeds (BN: the first layer's gradient grows with depth at initialization)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnviz.errors import ConfigError
from bnviz.science.depth_gradients import first_to_last_gradient_ratio, gradient_growth, plain_mlp


def test_ratio_matches_a_numpy_backward_pass():
    torch.manual_seed(0)
    net = plain_mlp(2, 5, 4, 3, batch_norm=False, activation="relu", init="he").double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    got = first_to_last_gradient_ratio(net, x, y)
    (w1, b1), (w2, b2), (w3, b3) = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in net[::2]]
    xn = x.numpy()
    h1 = xn @ w1.T + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2.T + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3.T + b3
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[y.numpy()]) / len(xn)  # mean cross-entropy
    dh2 = (dz @ w3) * (h2 > 0)
    dh1 = (dh2 @ w2) * (h1 > 0)
    expected = np.linalg.norm(dh1.T @ xn) / np.linalg.norm(dh2.T @ a1)
    assert got == pytest.approx(expected, rel=1e-10)


def test_batch_norm_makes_the_first_layers_gradient_grow_with_depth():
    frame = gradient_growth(depths=(2, 10, 30), init="he", seeds=(0, 1))
    bn = frame[frame["model"] == "BN"].set_index("depth")["log10_ratio"]
    plain = frame[frame["model"] == "no BN"].set_index("depth")["log10_ratio"]
    assert bn[2] < bn[10] < bn[30] and bn[30] > 2  # > 100x at depth 30
    assert plain.abs().max() < 1  # He-initialized ReLU net without BN: within 10x at every depth


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="depths"):
        gradient_growth(depths=(1, 5))
    with pytest.raises(ConfigError, match="init"):
        gradient_growth(init="xavier")
