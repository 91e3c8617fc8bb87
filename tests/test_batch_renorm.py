"""engine.batch_renorm against Ioffe (2017)'s equations computed in numpy, against torch's batch norm (its special
case r = 1, d = 0), and the stop-gradient through r and d."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnviz.engine.batch_renorm import BatchRenorm, batch_renorm, renorm_limits
from bnviz.errors import ConfigError

EPS = 1e-5


def numpy_renorm(x, mu, sigma, gamma, beta, r_max, d_max, eps=EPS):
    """The paper's Algorithm 1 for (N, C) inputs, in float64 numpy."""
    mu_b = x.mean(axis=0)
    sigma_b = np.sqrt(((x - mu_b) ** 2).mean(axis=0) + eps)
    r = np.clip(sigma_b / sigma, 1 / r_max, r_max)
    d = np.clip((mu_b - mu) / sigma, -d_max, d_max)
    return gamma * ((x - mu_b) / sigma_b * r + d) + beta, mu_b, sigma_b


def sample(seed=0, n=6, c=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(n, c))
    mu, sigma = rng.normal(size=c), rng.uniform(0.5, 4.0, size=c)
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    return x, mu, sigma, gamma, beta


@pytest.mark.parametrize(("r_max", "d_max"), [(1.0, 0.0), (1.5, 0.2), (3.0, 5.0), (1e9, 1e9)])
def test_training_output_and_running_update_match_the_paper(r_max, d_max):
    x, mu, sigma, gamma, beta = sample()
    expected, mu_b, sigma_b = numpy_renorm(x, mu, sigma, gamma, beta, r_max, d_max)
    t = {k: torch.tensor(v) for k, v in dict(x=x, mu=mu, sigma=sigma, gamma=gamma, beta=beta).items()}
    y = batch_renorm(t["x"], t["mu"], t["sigma"], t["gamma"], t["beta"], True, r_max, d_max, momentum=0.1, eps=EPS)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t["mu"].numpy(), mu + 0.1 * (mu_b - mu), rtol=1e-12)
    np.testing.assert_allclose(t["sigma"].numpy(), sigma + 0.1 * (sigma_b - sigma), rtol=1e-12)


def test_without_room_to_correct_it_is_batch_norm_forward_and_backward():
    """r_max = 1, d_max = 0: r = 1 and d = 0, so output and gradients are those of training-mode batch norm."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64) * 2 + 1
    gamma, beta = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    xs, gs, bs = (t.clone().requires_grad_() for t in (x, gamma, beta))
    xt, gt, bt = (t.clone().requires_grad_() for t in (x, gamma, beta))
    ours = batch_renorm(xs, torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), gs, bs, True,
                        1.0, 0.0, eps=EPS)
    theirs = F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS)
    torch.testing.assert_close(ours, theirs)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    for a, b in ((xs, xt), (gs, gt), (bs, bt)):
        torch.testing.assert_close(a.grad, b.grad)


def test_r_and_d_carry_no_gradient():
    """The gradient is that of (x - mu_B) / sigma_B * r + d with r and d fixed numbers (stop_grad in the paper)."""
    x, mu, sigma, gamma, beta = sample(seed=3)
    r_max, d_max = 2.0, 1.0
    xs = torch.tensor(x, requires_grad=True)
    y = batch_renorm(xs, torch.tensor(mu), torch.tensor(sigma), torch.tensor(gamma), torch.tensor(beta), True,
                     r_max, d_max, eps=EPS)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    mu_b, sigma_b = x.mean(axis=0), np.sqrt(x.var(axis=0) + EPS)
    r = torch.tensor(np.clip(sigma_b / sigma, 1 / r_max, r_max))
    d = torch.tensor(np.clip((mu_b - mu) / sigma, -d_max, d_max))
    xr = torch.tensor(x, requires_grad=True)
    mean = xr.mean(0)
    std = torch.sqrt(((xr - mean) ** 2).mean(0) + EPS)
    reference = torch.tensor(gamma) * ((xr - mean) / std * r + d) + torch.tensor(beta)
    (reference * weights).sum().backward()
    torch.testing.assert_close(xs.grad, xr.grad)


def test_unclipped_training_output_equals_the_inference_output():
    x, mu, sigma, gamma, beta = sample(seed=5)
    args = [torch.tensor(v) for v in (x, mu, sigma, gamma, beta)]
    inference = batch_renorm(args[0], args[1].clone(), args[2].clone(), args[3], args[4], False, 1.0, 0.0)
    training = batch_renorm(args[0], args[1].clone(), args[2].clone(), args[3], args[4], True, 1e9, 1e9, eps=0.0)
    np.testing.assert_allclose(inference.numpy(), gamma * (x - mu) / sigma + beta, rtol=1e-12)
    torch.testing.assert_close(training, inference)


def test_module_trains_and_evaluates_with_its_buffers():
    m = BatchRenorm(4).double()
    x = torch.tensor(sample()[0])
    m.set_limits(*renorm_limits(100, 100))
    y_train = m(x)
    m.eval()
    np.testing.assert_allclose(m(x).detach().numpy(),
                               ((x - m.running_mean) / m.running_std).numpy(), rtol=1e-12)
    assert y_train.shape == x.shape and m.r_max == 3.0 and m.d_max == 5.0


def test_schedule_relaxes_the_clips_as_the_paper_does():
    assert renorm_limits(0, 130) == (1.0, 0.0)
    assert renorm_limits(5, 130) == (1.0, 0.0)  # warm-up: plain batch norm
    assert renorm_limits(25, 130)[1] == pytest.approx(5.0)
    assert renorm_limits(40, 130)[0] == pytest.approx(3.0)
    r_mid, d_mid = renorm_limits(15, 130)
    assert 1.0 < r_mid < 3.0 and 0.0 < d_mid < 5.0
    assert renorm_limits(130, 130) == (3.0, 5.0)


def test_bad_limits_are_refused():
    x, mu, sigma, gamma, beta = (torch.tensor(v) for v in sample())
    with pytest.raises(ConfigError, match="r_max >= 1"):
        batch_renorm(x, mu, sigma, gamma, beta, True, 0.5, 0.0)
