"""science.bn_backprop: BN's Jacobian against its closed form, the detached-statistics normalization against torch's
batch norm (forward) and its missing gradient, and the bias lesson's three networks on a short run."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bnviz import figures
from bnviz.science.bn_backprop import (
    VARIANTS,
    NormalizeWithoutStatisticsGradient,
    batch_jacobian,
    bias_experiment,
    bias_findings,
)

EPS = 1e-5


def test_jacobian_matches_the_closed_form():
    x = np.array([2.0, 6.0, 8.0, 6.0, 8.0, 6.0])
    gamma, m = 1.5, len(x)
    sigma = np.sqrt(x.var() + EPS)
    x_hat = (x - x.mean()) / sigma
    expected = gamma / sigma * (np.eye(m) - 1 / m - np.outer(x_hat, x_hat) / m)
    got = batch_jacobian(torch.tensor(x), gamma=gamma, eps=EPS).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 0, atol=1e-12)  # shifting every input leaves the outputs alone


def test_eval_mode_jacobian_is_diagonal():
    got = batch_jacobian(torch.tensor([1.0, 2.0, 4.0]), gamma=2.0, eps=EPS, training=False, running_var=3.0).numpy()
    np.testing.assert_allclose(got, np.eye(3) * 2.0 / np.sqrt(3.0 + EPS))


def test_detached_statistics_give_batch_norms_values_but_not_its_gradient():
    torch.manual_seed(0)
    x = torch.randn(8, 3, dtype=torch.float64) * 3 + 1
    norm = NormalizeWithoutStatisticsGradient(3).double()
    torch.testing.assert_close(norm(x), F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=EPS))
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(8, 3, dtype=torch.float64)
    (norm(x + b) * weights).sum().backward()
    assert b.grad.abs().max() > 1e-3  # with detached statistics the bias seems to matter
    b.grad = None
    (F.batch_norm(x + b, None, None, training=True, eps=EPS) * weights).sum().backward()
    assert b.grad.abs().max() < 1e-12  # with the full gradient it does not


def test_bias_lesson_shows_each_variants_behaviour():
    result = bias_experiment(steps=60, seed=0)
    summary = result.summary.set_index("variant")
    before, after, detached = VARIANTS
    assert summary.loc[before, "bias_grad"] < 1e-5 and summary.loc[before, "bias_move"] < 1e-5  # float32 rounding
    assert summary.loc[after, "bias_grad"] > 1e-3
    assert summary.loc[detached, "bias_move"] > 5 * summary.loc[after, "bias_move"]
    text = " ".join(bias_findings(result))
    assert f"{summary.loc[detached, 'bias_move']:.3g}" in text
    fig = figures.bias_chart(result)
    assert len(fig.data) == 2 * len(VARIANTS)
    heat = figures.jacobian_heatmaps(np.eye(3), -2 * np.eye(3))
    assert heat.data[0].zmin == heat.data[1].zmin == -2 and heat.data[0].zmax == heat.data[1].zmax == 2
