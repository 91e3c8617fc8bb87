"""bnviz.engine.shift: W1 drift (vs scipy) and Santurkar et al.'s gradient ICS (vs my own recomputation)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance

from bnviz.engine.config import RunConfig
from bnviz.engine.history import ACT_STATS
from bnviz.engine.models import build_model
from bnviz.engine.recorder import Recorder
from bnviz.engine.shift import distribution_drift, gradient_ics, wasserstein_1d
from bnviz.engine.targets import Targets
from bnviz.engine.trainer import Job

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")

DIGITS = (1, 8, 8)


def scipy_w1(hist_a, hist_b, edges, below_a=0.0, above_a=0.0, below_b=0.0, above_b=0.0) -> float:
    """W1 with all mass of a bin at its centre and the outside fractions at the first/last edge."""
    edges = np.asarray(edges, np.float64)
    support = np.concatenate([[edges[0]], (edges[:-1] + edges[1:]) / 2, [edges[-1]]])
    wa = np.concatenate([[below_a], hist_a, [above_a]])
    wb = np.concatenate([[below_b], hist_b, [above_b]])
    return wasserstein_distance(support, support, u_weights=wa, v_weights=wb)


def random_distribution(rng, bins, outside=True):
    mass = rng.dirichlet(np.full(bins + 2, 0.3))
    if not outside:
        mass[0] = mass[-1] = 0
        mass /= mass.sum()
    return mass[1:-1], mass[0], mass[-1]


@pytest.mark.parametrize("bins", [1, 2, 8, 64])
def test_wasserstein_1d_equals_scipy_on_bin_centres(bins):
    rng = np.random.default_rng(bins)
    for _ in range(20):
        edges = np.sort(rng.normal(size=1))[0] + np.linspace(0, rng.uniform(0.1, 10), bins + 1)
        ha, ba, aa = random_distribution(rng, bins)
        hb, bb, ab = random_distribution(rng, bins, outside=rng.random() < 0.5)
        got = wasserstein_1d(ha, hb, edges, ba, aa, bb, ab)
        assert got == pytest.approx(scipy_w1(ha, hb, edges, ba, aa, bb, ab), rel=1e-9, abs=1e-12)
        assert wasserstein_1d(hb, ha, edges, bb, ab, ba, aa) == pytest.approx(got, rel=1e-12)
        assert wasserstein_1d(ha, ha, edges, ba, aa, ba, aa) == 0


def test_wasserstein_1d_hand_derived_values():
    edges = np.linspace(0, 4, 5)  # bin centres 0.5, 1.5, 2.5, 3.5
    assert wasserstein_1d(np.eye(4)[0], np.eye(4)[3], edges) == pytest.approx(3.0)
    assert wasserstein_1d(np.eye(4)[1], np.eye(4)[2], edges) == pytest.approx(1.0)
    # half the mass moves from the first centre to beyond the last edge (placed at 4.0): 0.5 * 3.5
    assert wasserstein_1d(np.eye(4)[0], np.eye(4)[0] / 2, edges, above_b=0.5) == pytest.approx(1.75)
    assert wasserstein_1d(np.zeros(4), np.zeros(4), edges, below_a=1.0, above_b=1.0) == pytest.approx(4.0)


def test_wasserstein_1d_broadcasts_over_rows_and_probes():
    rng = np.random.default_rng(0)
    rows, probes, bins = 3, 4, 6
    edges = np.sort(rng.normal(size=(probes, bins + 1)), axis=1)
    edges = edges[:, :1] + np.linspace(0, 1, bins + 1) * (1 + np.arange(probes))[:, None]  # evenly spaced per probe
    parts = [[random_distribution(rng, bins) for _ in range(probes)] for _ in range(2 * rows)]
    hist = np.array([[p[0] for p in row] for row in parts])
    below = np.array([[p[1] for p in row] for row in parts])
    above = np.array([[p[2] for p in row] for row in parts])
    got = wasserstein_1d(hist[:rows], hist[rows:], edges[None], below[:rows], above[:rows], below[rows:],
                         above[rows:])
    assert got.shape == (rows, probes)
    for r in range(rows):
        for k in range(probes):
            expected = scipy_w1(hist[r, k], hist[rows + r, k], edges[k], below[r, k], above[r, k],
                                below[rows + r, k], above[rows + r, k])
            assert got[r, k] == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def drifting_history():
    """A real recorded history: a sigmoid MLP trained hard enough for its distributions to move."""
    cfg = RunConfig(model="mlp", depth=2, width=16, activation="sigmoid", norm="none", batch_size=16, lr=2.0,
                    sgd_momentum=0.0, seed=0)
    net = build_model(cfg, DIGITS, 10)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    with Recorder(Targets.from_net(net), samples=128, bins=16, every=2) as rec:
        for step in range(20):
            x, y = torch.rand((16, *DIGITS), generator=g), torch.randint(3, (16,), generator=g)
            rec.begin(step)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            rec.end(loss=0.0)
    return rec.history


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_distribution_drift_against_scipy(drifting_history, reference):
    h = drifting_history
    drift = distribution_drift(h, reference=reference)
    stats = h.column("act_stats").astype(np.float64)
    hist = h.column("act_hist").astype(np.float64)
    n, probes = len(h), len(h.layout.probes)
    assert n == 10 and all(v.shape == (n, probes) for v in drift.values())
    col = ACT_STATS.index
    for name in ("w1", "w1_rel", "d_mean", "d_std"):
        np.testing.assert_array_equal(drift[name][0], 0)  # step 0 against itself
    for i in range(n):
        j = 0 if reference == "first" else max(i - 1, 0)
        for k in range(probes):
            expected = scipy_w1(hist[i, k], hist[j, k], h.hist_edges[k], stats[i, k, col("frac_below")],
                                stats[i, k, col("frac_above")], stats[j, k, col("frac_below")],
                                stats[j, k, col("frac_above")])
            assert drift["w1"][i, k] == pytest.approx(expected, rel=1e-6, abs=1e-12)
            assert drift["w1_rel"][i, k] == pytest.approx(expected / stats[0, k, col("std")], rel=1e-6, abs=1e-12)
            assert drift["d_mean"][i, k] == pytest.approx(abs(stats[i, k, col("mean")] - stats[j, k, col("mean")]))
            assert drift["d_std"][i, k] == pytest.approx(abs(stats[i, k, col("std")] - stats[j, k, col("std")]))
    assert drift["w1"][1:].max() > 0  # the distributions did move


def test_distribution_drift_rejects_unknown_reference_and_handles_empty(drifting_history):
    with pytest.raises(ValueError, match="reference='last'"):
        distribution_drift(drifting_history, reference="last")
    empty = drifting_history.copy()
    empty.n = 0
    assert distribution_drift(empty)["w1"].shape == (0, len(drifting_history.layout.probes))


# ---- gradient ICS ----------------------------------------------------------------------------------------------
def _state(model):
    return ({k: v.detach().clone() for k, v in model.named_parameters()},
            {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
            {k: v.clone() for k, v in model.named_buffers()})


def my_ics(model_after, params_before, x, y, i):
    """||G - G'|| and cos(G, G') for block i, recomputed on a copy: blocks < i updated, the rest as before."""
    m = copy.deepcopy(model_after)
    for mod in m.modules():
        if hasattr(mod, "freeze_noise"):
            mod.freeze_noise = True  # the very same noise as the training pass
    names = [name for name, _ in model_after.named_parameters()]
    with torch.no_grad():
        for (name, p), before in zip(m.named_parameters(), params_before, strict=True):
            block = int(name.split(".")[1]) if name.startswith("blocks.") else len(model_after.blocks)
            if block >= i:
                p.copy_(before)
    assert names == [name for name, _ in m.named_parameters()]
    m.train()
    m.zero_grad(set_to_none=True)
    F.cross_entropy(m(x), y).backward()
    g = model_after.blocks[i].layer.weight.grad.double()
    g2 = m.blocks[i].layer.weight.grad.double()
    return float((g - g2).norm()), float((g * g2).sum() / (g.norm() * g2.norm()))


@pytest.mark.parametrize("norm", ["none", "batch", "batch-noisy", "layer"])
def test_gradient_ics_against_my_recomputation_and_leaves_the_model_alone(norm):
    cfg = RunConfig(model="cnn", depth=3, width=4, batch_size=8, norm=norm, seed=2)
    model = build_model(cfg, DIGITS, 10).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand((8, *DIGITS), generator=g), torch.randint(10, (8,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    params, grads, buffers = _state(model)
    noise = [(m.last_noise[0].clone(), m.last_noise[1].clone()) for m in model.modules() if hasattr(m, "last_noise")]
    model.eval()  # the call must restore the mode too
    out = gradient_ics(model, before, x, y)
    assert not model.training
    assert out.shape == (3, 2)
    assert np.all(np.isnan(out[0]))  # block 1 has no earlier layer: G' == G, reported as NaN
    model.train()
    for i in (1, 2):
        l2, cos = my_ics(model, before, x, y, i)
        assert l2 > 0
        assert out[i, 0] == pytest.approx(l2, rel=1e-4, abs=1e-7), i
        assert out[i, 1] == pytest.approx(cos, rel=1e-4, abs=1e-6), i
    # nothing changed: weights, gradients, buffers, mode, noise
    after_params, after_grads, after_buffers = _state(model)
    for k in params:
        assert torch.equal(after_params[k], params[k]), k
        assert (grads[k] is None and after_grads[k] is None) or torch.equal(after_grads[k], grads[k]), k
    for k in buffers:
        assert torch.equal(after_buffers[k], buffers[k]), k
    for m, (scale, shift) in zip([m for m in model.modules() if hasattr(m, "last_noise")], noise, strict=True):
        assert torch.equal(m.last_noise[0], scale) and torch.equal(m.last_noise[1], shift) and not m.freeze_noise


def test_gradient_ics_with_no_update_is_zero():
    cfg = RunConfig(model="mlp", depth=3, width=8, batch_size=8, norm="batch")
    model = build_model(cfg, DIGITS, 10).train()
    x, y = torch.rand(8, *DIGITS), torch.randint(10, (8,))
    F.cross_entropy(model(x), y).backward()
    before = [p.detach().clone() for p in model.parameters()]
    out = gradient_ics(model, before, x, y)  # no optimizer step: G' must equal G
    np.testing.assert_allclose(out[1:, 0], 0, atol=1e-7)
    np.testing.assert_allclose(out[1:, 1], 1, atol=1e-6)


def test_trainer_records_ics_every_k_steps(engine_datasets):
    cfg = RunConfig(model="cnn", depth=3, width=4, batch_size=8, steps=7, ics_every=3, eval_every=10**6,
                    samples=64, hist_bins=8)
    run = Job(cfg, engine_datasets).run_to_end().runs[0]
    ics = run.history.column("ics")  # (rows, blocks, 2)
    measured = [0, 3, 6]
    for step in range(7):
        if step in measured:
            assert np.all(np.isnan(ics[step, 0])) and np.all(np.isfinite(ics[step, 1:])), step
            assert np.all(ics[step, 1:, 0] > 0) and np.all(np.abs(ics[step, 1:, 1]) <= 1 + 1e-6)
        else:
            assert np.all(np.isnan(ics[step])), step
