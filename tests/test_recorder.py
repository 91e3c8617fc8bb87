"""bnviz.engine.recorder against independent references.

Every test trains a tiny model for a few steps under a Recorder while capturing, with its own hooks on the very same
modules, the stage outputs, their gradients, the inputs of the normalization layers, and the weights before and
after each optimizer step. The recorded statistics are then compared with numpy (and hand-derived formulas) on those
captured tensors: never with the recorder's own earlier output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnviz.engine import stats as S
from bnviz.engine.config import RunConfig
from bnviz.engine.history import ACT_STATS, CHANNEL_STATS, GRAD_BINS, GRAD_LOWEST_OCTAVE, GRAD_STATS, WEIGHT_STATS
from bnviz.engine.models import build_model
from bnviz.engine.recorder import Recorder
from bnviz.engine.targets import Targets

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")

DIGITS = (1, 8, 8)
ALL = 1 << 20  # more samples than any tensor here has values: every value is sampled
F32 = float(np.finfo(np.float32).eps)


# ---- my own capture of what the recorder is supposed to see ---------------------------------------------------
class Capture:
    """Forward hooks and tensor hooks of my own on the probed modules and the norm layers."""

    def __init__(self, targets: Targets):
        self.targets = targets
        self.on = False
        self.out: dict[int, np.ndarray] = {}
        self.grad: dict[int, np.ndarray] = {}
        self.norm_in: dict[int, np.ndarray] = {}
        self.handles = [p.module.register_forward_hook(self._probe_hook(k)) for k, p in enumerate(targets.probes)]
        self.handles += [t.module.register_forward_hook(self._norm_hook(j)) for j, t in enumerate(targets.norms)]

    def _probe_hook(self, k):
        def hook(module, inputs, output):
            if self.on:
                self.out[k] = output.detach().clone().numpy()
                output.register_hook(lambda g: self.grad.__setitem__(k, g.detach().clone().numpy()))
        return hook

    def _norm_hook(self, j):
        def hook(module, inputs, output):
            if self.on:
                self.norm_in[j] = inputs[0].detach().clone().numpy()
        return hook

    def start(self):
        self.out, self.grad, self.norm_in = {}, {}, {}
        self.on = True

    def remove(self):
        for h in self.handles:
            h.remove()


def _clone(tensor):
    return None if tensor is None else tensor.detach().clone().numpy().astype(np.float64)


def batches(n, batch_size, shape=DIGITS, seed=123):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand((batch_size, *shape), generator=g) * 2 - 0.5, torch.randint(10, (batch_size,), generator=g))
            for _ in range(n)]


def tiny(**changes) -> RunConfig:
    base = {"model": "cnn", "depth": 2, "width": 4, "batch_size": 8, "groups": 2, "seed": 1}
    return RunConfig(**{**base, **changes}).validate()


def run_recorded(cfg, steps=3, *, samples=ALL, every=1, chunk=8, bins=16, seed=0, momentum="config",
                 shape=DIGITS, lr=0.2, tracked=None, prepare=None, momentum_at=None):
    """Train `steps` steps under a Recorder; return (recorder, one dict of my captures per recorded step, net)."""
    net = build_model(cfg, shape, 10)
    if prepare is not None:
        prepare(net)
    targets = Targets.from_net(net)
    for t in targets.norms:
        if momentum != "config":
            t.module.momentum = momentum
        if tracked is not None:
            t.module.num_batches_tracked.fill_(tracked)
    cap = Capture(targets)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    records = []
    with Recorder(targets, samples=samples, bins=bins, every=every, seed=seed, chunk=chunk) as rec:
        for step, (x, y) in enumerate(batches(steps, cfg.batch_size, shape)):
            if momentum_at is not None:  # a momentum changed between steps (momentum_at(step))
                for t in targets.norms:
                    t.module.momentum = momentum_at(step)
            recorded = rec.begin(step)
            w_before = [_clone(w) for _, w in targets.weights]
            running_before = [(_clone(getattr(t.module, "running_mean", None)),
                               _clone(getattr(t.module, "running_var", None))) for t in targets.norms]
            cap.start()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            cap.on = False
            opt.step()
            assert rec.end(loss=loss.item(), lr=lr) == recorded
            if recorded:
                records.append({
                    "step": step, "loss": loss.item(), "out": dict(cap.out), "grad": dict(cap.grad),
                    "norm_in": dict(cap.norm_in), "w_before": w_before,
                    "w_after": [_clone(w) for _, w in targets.weights],
                    "w_grad": [_clone(w.grad) for _, w in targets.weights],
                    "running_before": running_before,
                    "norm_after": [{name: _clone(getattr(t.module, name, None)) for name in
                                    ("weight", "bias", "running_mean", "running_var")} for t in targets.norms],
                    "momenta": [getattr(t.module, "momentum", None) for t in targets.norms],
                    "tracked": [int(t.module.num_batches_tracked) if getattr(t.module, "num_batches_tracked", None)
                                is not None else None for t in targets.norms],
                })
    cap.remove()
    return rec, records, net


def close(actual, expected, rtol=1e-5, scale=1.0, what=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol,
                               atol=1e-6 * scale, err_msg=what)


def sampled(rec, k, tensor, full):
    flat = tensor.reshape(-1)
    if full:
        return flat
    idx = rec.sample_indices(k, flat.size).numpy()
    return flat[idx]


# ---- activation and gradient statistics -----------------------------------------------------------------------
def check_probe_stats(rec, records, full):
    """Every recorded activation/gradient statistic of the steps in `records` vs numpy on my captures."""
    h = rec.history
    kinds = h.layout.act_kinds
    for r in records:
        row = list(h.steps).index(r["step"])
        assert h.scalar("loss")[row] == pytest.approx(r["loss"])
        for k, probe in enumerate(rec.targets.probes):
            v = sampled(rec, k, r["out"][k], full).astype(np.float64)
            stats = h.column("act_stats")[row, k]
            scale = max(np.abs(v).max(), 1e-12)
            tag = f"step {r['step']} probe {k} {probe.stage}"

            def stat(name, stats=stats):
                return stats[ACT_STATS.index(name)]

            close(stat("mean"), v.mean(), scale=scale, what=tag)
            close(stat("std"), v.std(ddof=0), scale=scale, what=tag)
            close(stat("min"), v.min(), scale=scale, what=tag)
            close(stat("max"), v.max(), scale=scale, what=tag)
            for q, name in ((15, "p15"), (50, "p50"), (85, "p85")):
                close(stat(name), np.percentile(v, q), scale=scale, what=f"{tag} {name}")
            kind = kinds[k]
            if kind == "relu":
                close(stat("frac_dead"), np.mean(v == 0), what=tag)
                assert np.isnan(stat("frac_saturated"))
            elif kind == "tanh":
                close(stat("frac_saturated"), np.mean(np.abs(v) > 0.97), what=tag)
                assert np.isnan(stat("frac_dead"))
            elif kind == "sigmoid":
                close(stat("frac_saturated"), np.mean((v < 0.03) | (v > 0.97)), what=tag)
                assert np.isnan(stat("frac_dead"))
            else:
                assert np.isnan(stat("frac_dead")) and np.isnan(stat("frac_saturated"))
            # histogram on the fixed edges; values outside them are counted, not dropped
            e = h.hist_edges[k]
            v32 = v.astype(np.float32)
            inside = (v32 >= e[0]) & (v32 < e[-1])
            expected_hist = np.histogram(v32[inside], bins=e)[0] / v.size
            np.testing.assert_allclose(h.column("act_hist")[row, k], expected_hist, atol=1e-7, err_msg=tag)
            close(stat("frac_below"), np.mean(v32 < e[0]), what=tag)
            close(stat("frac_above"), np.mean(v32 >= e[-1]), what=tag)
            close(stat("frac_below") + stat("frac_above") + h.column("act_hist")[row, k].sum(), 1.0)
            # gradient of the loss w.r.t. this stage's output, at the same positions
            g_full = r["grad"][k].astype(np.float64)
            g = sampled(rec, k, r["grad"][k], full).astype(np.float64)
            gs = h.column("grad_stats")[row, k]
            gscale = max(np.abs(g).max(), 1e-30)
            close(gs[GRAD_STATS.index("grad_std")], g.std(), scale=gscale, what=tag)
            close(gs[GRAD_STATS.index("grad_frac_zero")], np.mean(g == 0), what=tag)
            norm = np.linalg.norm(g_full) if full else np.sqrt(g_full.size * np.mean(g * g))
            close(gs[GRAD_STATS.index("grad_norm")], norm, what=tag)
            # |gradient| in octaves: bin i holds 2**(lowest+i) <= |g| < 2**(lowest+i+1); zeros left out
            nonzero = g[g != 0].astype(np.float32)
            _, exponent = np.frexp(np.abs(nonzero))  # |g| = mantissa * 2**exponent, mantissa in [0.5, 1)
            index = np.clip(exponent - 1 - GRAD_LOWEST_OCTAVE, 0, GRAD_BINS - 1)
            expected_grad_hist = np.bincount(index, minlength=GRAD_BINS) / g.size
            np.testing.assert_allclose(h.column("grad_hist")[row, k], expected_grad_hist, atol=1e-7, err_msg=tag)


FULL_CASES = [
    {"norm": "batch", "activation": "relu"},
    {"norm": "none", "activation": "tanh"},
    {"norm": "layer", "activation": "sigmoid", "placement": "after"},
    {"norm": "instance", "activation": "relu"},
    {"norm": "batch-noisy", "activation": "relu"},
    {"norm": "group", "activation": "tanh", "placement": "after"},
    {"model": "mlp", "norm": "batch", "activation": "sigmoid", "placement": "after", "width": 8, "batch_size": 16},
    {"model": "mlp", "norm": "group", "activation": "relu", "width": 8, "batch_size": 16},
    {"model": "mlp", "norm": "layer", "activation": "tanh", "width": 8, "batch_size": 16},
    {"model": "mlp", "norm": "none", "activation": "sigmoid", "width": 8, "batch_size": 16},
]


def test_saturation_thresholds_are_the_documented_ones():
    assert (S.TANH_SATURATED, S.SIGMOID_SATURATED, S.PERCENTILES) == (0.97, 0.03, (15.0, 50.0, 85.0))


@pytest.mark.parametrize("changes", FULL_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_every_value_sampled_stats_equal_numpy_on_the_full_tensors(changes):
    rec, records, _ = run_recorded(tiny(**changes), steps=3, samples=ALL)
    assert list(rec.history.steps) == [0, 1, 2]
    stages = {p.stage for p in rec.targets.probes}
    assert stages == ({"pre", "act"} if changes["norm"] == "none" else {"pre", "norm", "act"})
    check_probe_stats(rec, records, full=True)


@pytest.mark.parametrize(("changes", "samples"), [
    ({"norm": "batch", "activation": "relu"}, 100),
    ({"norm": "none", "activation": "sigmoid", "placement": "after"}, 37),
    ({"model": "mlp", "norm": "batch", "activation": "tanh", "width": 8, "batch_size": 16}, 50),
], ids=str)
def test_subsampled_stats_equal_numpy_on_the_sampled_positions(changes, samples):
    rec, records, _ = run_recorded(tiny(**changes), steps=3, samples=samples)
    numel = records[0]["out"][0].size
    for k in range(len(rec.targets.probes)):
        idx = rec.sample_indices(k, numel).numpy()
        assert len(idx) == samples and len(np.unique(idx)) == samples and idx.min() >= 0 and idx.max() < numel
    # a different probe is sampled at different positions
    assert not np.array_equal(rec.sample_indices(0, numel).numpy(), rec.sample_indices(1, numel).numpy())
    check_probe_stats(rec, records, full=False)


def test_probes_of_different_sizes_share_one_sample_size():
    """16x16 images: the first conv block pools, so block 1's tensors have 4x the values of block 2's."""
    cfg = tiny(norm="batch", depth=2)
    rec, records, _ = run_recorded(cfg, steps=2, samples=ALL, shape=(1, 16, 16))
    sizes = [records[0]["out"][k].size for k in range(len(rec.targets.probes))]
    assert sizes[0] == 4 * sizes[-1]
    for k, numel in enumerate(sizes):
        idx = rec.sample_indices(k, numel).numpy()
        assert len(idx) == min(sizes) == len(np.unique(idx))  # the smallest tensor's size, without repeats
    check_probe_stats(rec, records, full=False)
    last = len(sizes) - 1
    np.testing.assert_array_equal(rec.sample_indices(last, sizes[last]).numpy(), np.arange(sizes[last]))


def test_histogram_edges_are_fixed_at_step_0_as_documented():
    for activation in ("relu", "tanh", "sigmoid"):
        rec, records, _ = run_recorded(tiny(norm="batch", activation=activation), steps=2, samples=ALL, bins=12)
        h = rec.history
        assert h.hist_edges.shape == (len(rec.targets.probes), 13)
        for k, probe in enumerate(rec.targets.probes):
            e = h.hist_edges[k].astype(np.float64)
            np.testing.assert_allclose(np.diff(e), (e[-1] - e[0]) / 12, rtol=1e-4)
            v = records[0]["out"][k].reshape(-1).astype(np.float64)
            kind = h.layout.act_kinds[k]
            if kind in ("sigmoid", "tanh"):
                lo, hi = (0.0, 1.0) if kind == "sigmoid" else (-1.0, 1.0)
                pad = (hi - lo) * 1e-6
                lo, hi = lo - pad, hi + pad
            else:
                center = np.median(v)
                spread = max(v.std(), abs(center) * 0.1, 1e-3)
                lo, hi = min(center - 6 * spread, v.min()), max(center + 6 * spread, v.max())
                lo = 0.0 if kind == "relu" else lo
                hi += (hi - lo) * 1e-6
                assert v.min() >= e[0] and v.max() < e[-1]  # nothing falls outside at step 0
            close([e[0], e[-1]], [lo, hi], rtol=1e-6, scale=abs(hi - lo), what=f"{activation} {probe.stage}")
            assert h.act("frac_below")[0, k] == 0 and h.act("frac_above")[0, k] == 0


def test_histogram_edges_of_huge_values_stay_finite():
    """A network on its way to diverging: |values| ~ 1e20 overflow a float32 variance, the edges must not."""
    values = (np.random.default_rng(0).normal(size=500) * 1e20).astype(np.float32)
    edges = S.histogram_edges(values, "", 16)
    assert np.all(np.isfinite(edges)) and edges[0] <= values.min() and edges[-1] >= values.max()
    center, spread = np.median(values.astype(np.float64)), values.astype(np.float64).std()
    close(edges[0], min(center - 6 * spread, values.min()), rtol=1e-6)


def test_values_outside_the_edges_are_counted_below_and_above():
    """A large learning rate moves the pre-activations out of their step-0 range: nothing is dropped."""
    rec, records, _ = run_recorded(tiny(norm="none", activation="tanh"), steps=6, samples=ALL, lr=3.0)
    h = rec.history
    outside = h.act("frac_below") + h.act("frac_above")
    assert np.nanmax(outside) > 0  # this test exercises the outside counts
    check_probe_stats(rec, records, full=True)


# ---- weights ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [{"norm": "batch"}, {"model": "mlp", "norm": "none", "activation": "tanh"}],
                         ids=str)
def test_weight_stats_equal_numpy_on_my_copies_before_and_after_the_step(changes):
    rec, records, _ = run_recorded(tiny(**changes), steps=3)
    h = rec.history
    assert h.layout.weights == ["block1.weight", "block2.weight", "head.weight"]
    for row, r in enumerate(records):
        for i, name in enumerate(h.layout.weights):
            after, g, w = r["w_after"][i], r["w_grad"][i], r["w_before"][i]  # w: what the forward pass used
            u = after - w
            assert np.abs(u).max() > 0  # the step really changed the weights
            got = dict(zip(WEIGHT_STATS, h.column("weight_stats")[row, i], strict=True))
            expected = {"w_norm": np.linalg.norm(w), "w_std": w.std(), "grad_norm": np.linalg.norm(g),
                        "grad_std": g.std(), "update_std": u.std(), "grad_data": g.std() / w.std(),
                        "update_data": u.std() / w.std()}
            for stat, value in expected.items():
                close(got[stat], value, rtol=2e-5, scale=0, what=f"{name} {stat} step {r['step']}")


# ---- normalization layers, per channel ------------------------------------------------------------------------
def check_channel_stats(rec, records, direct):
    h = rec.history
    slices = h.layout.channel_slices()
    col = CHANNEL_STATS.index
    for row, r in enumerate(records):
        ch = h.column("channels")[row]
        for j in range(len(rec.targets.norms)):
            sl = slices[j]
            after = r["norm_after"][j]
            close(ch[sl, col("gamma")], after["weight"], rtol=0, scale=0)
            close(ch[sl, col("beta")], after["bias"], rtol=0, scale=0)
            if after["running_mean"] is None:  # layer/group norm: no batch statistics
                for name in ("batch_mean", "batch_var", "running_mean", "running_var"):
                    assert np.all(np.isnan(ch[sl, col(name)])), name
                continue
            close(ch[sl, col("running_mean")], after["running_mean"], rtol=0, scale=0)
            close(ch[sl, col("running_var")], after["running_var"], rtol=0, scale=0)
            x = r["norm_in"][j].astype(np.float64)
            axes = tuple(d for d in range(x.ndim) if d != 1)
            mean, var = x.mean(axis=axes), x.var(axis=axes)  # biased, as the forward pass uses
            if direct:  # measured on the input in float32
                tol_mean = tol_var = 1e-6 * (x * x).mean(axis=axes) + 1e-7
            else:  # solved from a float32 running-average update: rounding is amplified by 1 / factor
                momentum = r["momenta"][j]
                factor = 1 / r["tracked"][j] if momentum is None else momentum
                old_mean, old_var = r["running_before"][j]
                tol_mean = 3 * F32 * (np.abs(after["running_mean"]) + np.abs(old_mean)) / factor
                tol_var = 3 * F32 * (after["running_var"] + old_var) / factor
            tag = f"step {r['step']} norm {j}"
            assert np.all(np.abs(ch[sl, col("batch_mean")] - mean) <= tol_mean + 1e-5 * np.abs(mean)), tag
            assert np.all(np.abs(ch[sl, col("batch_var")] - var) <= tol_var + 1e-5 * var), tag
            assert np.all(ch[sl, col("batch_var")] >= 0), tag


@pytest.mark.parametrize(("changes", "momentum"), [
    ({"norm": "batch"}, 0.1),
    ({"norm": "batch"}, 0.5),
    ({"norm": "batch"}, None),
    ({"norm": "batch", "placement": "after"}, 0.1),
    ({"norm": "batch-noisy"}, 0.1),
    ({"norm": "batch", "bn_impl": "scratch"}, None),
    ({"model": "mlp", "norm": "batch", "width": 8, "batch_size": 16, "activation": "tanh"}, 0.1),
    ({"model": "mlp", "norm": "batch", "width": 8, "batch_size": 16, "placement": "after"}, None),
], ids=str)
def test_batch_norm_channel_stats_solved_from_the_running_update(changes, momentum):
    rec, records, _ = run_recorded(tiny(**changes), steps=4, momentum=momentum)
    assert [kind for _, kind, _ in rec.history.layout.norm_layers] == ["batch", "batch"]
    check_channel_stats(rec, records, direct=False)


def test_batch_norm_channel_stats_solved_with_each_steps_own_momentum_when_it_changes_within_a_chunk():
    """The recorder solves a chunk's batch statistics at its hand-over, from the momentum each step began with."""
    momenta = [0.1, 0.5, None, 0.1, None, 0.9]
    rec, records, _ = run_recorded(tiny(norm="batch"), steps=len(momenta), momentum_at=momenta.__getitem__)
    assert [r["momenta"][0] for r in records] == momenta
    check_channel_stats(rec, records, direct=False)


@pytest.mark.parametrize(("changes", "momentum", "tracked"), [
    ({"norm": "batch"}, 0.0, None),  # running statistics never move: measured directly on the input
    ({"norm": "batch", "bn_impl": "scratch"}, 0.0, None),
    ({"model": "mlp", "norm": "batch", "width": 8, "batch_size": 16}, 0.0, None),
    ({"norm": "batch"}, None, 5000),  # cumulative average after 5,000 batches: weight 1/5001 < 1e-3
], ids=str)
def test_batch_norm_channel_stats_measured_directly(changes, momentum, tracked):
    rec, records, _ = run_recorded(tiny(**changes), steps=3, momentum=momentum, tracked=tracked)
    if momentum == 0.0:  # momentum 0: the running statistics stay at their initial values
        for r in records:
            assert np.all(r["norm_after"][0]["running_mean"] == 0) and np.all(r["norm_after"][0]["running_var"] == 1)
    check_channel_stats(rec, records, direct=True)


@pytest.mark.parametrize("changes", [{"norm": "layer"}, {"norm": "group", "width": 8, "groups": 4},
                                     {"norm": "instance"}, {"model": "mlp", "norm": "layer"}], ids=str)
def test_other_norms_record_gamma_and_beta_only(changes):
    rec, records, net = run_recorded(tiny(**changes), steps=2)
    width = changes.get("width", 4)
    assert rec.history.layout.n_channels == 2 * width
    check_channel_stats(rec, records, direct=False)


def test_a_zero_variance_channel_never_shows_a_negative_variance():
    """A dead ReLU channel feeds batch norm (placement after) all zeros: its batch variance is exactly 0, and
    solving it from the float32 running-average update must not leave a negative rounding residue."""

    def kill_channel_0(net):
        with torch.no_grad():
            for block in net.blocks:
                block.layer.weight[0] = 0
                block.layer.bias[0] = -1.0

    rec, records, _ = run_recorded(tiny(norm="batch", placement="after"), steps=12, prepare=kill_channel_0)
    var = rec.history.column("channels")[:, :, CHANNEL_STATS.index("batch_var")]
    assert all(np.all(r["norm_in"][j][:, 0] == 0) for r in records for j in range(2))
    assert np.all(var >= 0)
    assert np.all(var[:, [0, 4]] < 1e-6)
    check_channel_stats(rec, records, direct=False)


# ---- the step protocol -----------------------------------------------------------------------------------------
def test_step_0_recorded_and_steps_off_every_skipped():
    rec, records, _ = run_recorded(tiny(norm="batch"), steps=10, every=3)
    assert list(rec.history.steps) == [0, 3, 6, 9] == [r["step"] for r in records]
    check_probe_stats(rec, records, full=True)
    check_channel_stats(rec, records, direct=False)


def test_end_without_begin_or_off_step_records_nothing():
    net = build_model(tiny(norm="none"), DIGITS, 10)
    with Recorder(Targets.from_net(net), every=2) as rec:
        assert rec.end(loss=1.0) is False
        assert rec.begin(1) is False
        net(torch.rand(8, *DIGITS)).sum().backward()
        assert rec.end(loss=1.0) is False
    assert len(rec.history) == 0


def all_hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in net.modules())


@pytest.mark.parametrize("momentum", [0.1, None, 0.0])
def test_hooks_removed_on_exit_and_when_the_body_raises(momentum):
    net = build_model(tiny(norm="batch"), DIGITS, 10)
    targets = Targets.from_net(net)
    for t in targets.norms:
        t.module.momentum = momentum
    assert all_hooks(net) == 0
    with Recorder(targets) as rec:
        assert all_hooks(net) >= len(targets.probes)
    assert all_hooks(net) == 0
    x, y = batches(1, 8)[0]
    with pytest.raises(RuntimeError, match="boom"), Recorder(targets, chunk=8) as rec:
        for step in range(2):
            rec.begin(step)
            F.cross_entropy(net(x), y).backward()
            rec.end(loss=1.0)
        rec.begin(2)
        net(x)
        raise RuntimeError("boom")
    assert all_hooks(net) == 0
    assert list(rec.history.steps) == [0, 1]  # what was complete is flushed on the way out
    rec.detach()  # safe to call again


def test_eval_mode_and_suspended_passes_are_not_recorded():
    cfg = tiny(norm="layer", activation="tanh")  # layer norm: no running statistics to disturb
    net = build_model(cfg, DIGITS, 10)
    targets = Targets.from_net(net)
    cap = Capture(targets)
    data = batches(6, 8)
    records = []
    with Recorder(targets, samples=ALL) as rec:
        # step 0: only an eval pass and a suspended train pass -> nothing seen
        rec.begin(0)
        with torch.no_grad():
            net.eval()
            net(data[0][0])
            net.train()
            with rec.suspended():
                net(data[1][0])
        rec.end(loss=0.0)
        # step 1: eval and suspended passes around the real training pass: only the training pass counts
        rec.begin(1)
        with torch.no_grad():
            net.eval()
            net(data[2][0])
            net.train()
        cap.start()
        loss = F.cross_entropy(net(data[3][0]), data[3][1])
        loss.backward()
        cap.on = False
        with rec.suspended(), rec.suspended():  # nests
            F.cross_entropy(net(data[4][0]), data[4][1]).backward()
        net.eval()
        net(data[5][0])
        net.train()
        rec.end(loss=loss.item())
        records.append({"step": 1, "loss": loss.item(), "out": dict(cap.out), "grad": dict(cap.grad)})
    cap.remove()
    h = rec.history
    assert list(h.steps) == [0, 1]
    assert np.all(np.isnan(h.column("act_stats")[0])) and np.all(np.isnan(h.column("grad_stats")[0]))
    assert np.all(np.isnan(h.column("act_hist")[0]))
    # the histogram edges come from the first step that had values (step 1), so nothing of it falls outside
    assert np.all(h.hist_edges[:, -1] > h.hist_edges[:, 0])
    assert np.all(h.act("frac_below")[1] == 0) and np.all(h.act("frac_above")[1] == 0)
    check_probe_stats(rec, records, full=True)


# ---- chunking -------------------------------------------------------------------------------------------------
def _history_arrays(rec):
    h = rec.history
    return {name: h.column(name) for name in h.data} | {"edges": h.hist_edges}


@pytest.mark.parametrize("changes", [{"norm": "batch"}, {"norm": "batch", "placement": "after", "activation": "tanh"},
                                     {"model": "mlp", "norm": "none", "activation": "sigmoid"}], ids=str)
def test_chunk_size_does_not_change_any_number(changes):
    results = [_history_arrays(run_recorded(tiny(**changes), steps=11, chunk=chunk, samples=64, every=2)[0])
               for chunk in (1, 3, 8)]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for name, values in results[0].items():
            np.testing.assert_array_equal(other[name], values, err_msg=name)
    assert len(results[0]["step"]) == 6


def test_flush_makes_pending_steps_visible():
    cfg = tiny(norm="batch")
    net = build_model(cfg, DIGITS, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with Recorder(Targets.from_net(net), chunk=8) as rec:
        for step, (x, y) in enumerate(batches(3, 8)):
            rec.begin(step)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            rec.end(loss=float(step))
        assert len(rec.history) == 0  # computed once per chunk of 8 steps
        rec.flush()
        assert list(rec.history.steps) == [0, 1, 2]
        assert list(rec.history.scalar("loss")) == [0.0, 1.0, 2.0]
        assert np.all(np.isfinite(rec.history.act("mean")))
        rec.flush()  # nothing pending: no change
        assert len(rec.history) == 3


def test_the_default_chunk_is_long_for_a_small_model_and_bounded_in_memory_for_a_large_one():
    """Each hand-over costs the training thread a fixed time, so a small model hands over 32 steps at once; a
    large one fewer, so that the two banks of copies stay within the budget, but never fewer than 8."""
    from bnviz.engine import recorder as R

    small = Targets.from_net(build_model(RunConfig(), DIGITS, 10))
    assert Recorder(small).chunk == R.DEFAULT_CHUNK == 32
    assert Recorder(small, chunk=3).chunk == 3  # the caller's choice is kept
    wide = nn.Sequential(nn.Linear(2048, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 10))
    assert Recorder(Targets.discover(wide)).chunk == R.MIN_DEFAULT_CHUNK == 8  # 4.2M weights: 100 MB a slot
    middle = Targets.discover(nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 10)))
    weights = 512 * 512 + 512 * 10
    slot_bytes = 4 * (3 * weights + 6 * 512 + 2 * len(middle.probes) * 512)
    assert Recorder(middle).chunk == R.CHUNK_BUDGET_BYTES // (2 * slot_bytes)
    assert 8 < Recorder(middle).chunk < 32


def test_slot_buffer_copies_tensors_of_any_dtype_into_their_slot():
    """SlotBuffer (the recorder's per-step copies of weights and gradients): float32 tensors go in with one
    concatenation, others (here float64) through per-slot views made when first needed; either way each slot holds
    the values, and the other slots are untouched."""
    from bnviz.engine.recorder import SlotBuffer

    a, b = torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.linspace(-1, 1, 4, dtype=torch.float64)
    buf = SlotBuffer([a, b], slots=4)
    buf.buffer.fill_(7.0)
    buf.copy(1, [a, b.float()])
    buf.copy(2, [a * 2, b])
    np.testing.assert_array_equal(buf.array[1], np.concatenate([a.numpy().ravel(), b.float().numpy()]))
    np.testing.assert_array_equal(buf.array[2], np.concatenate([2 * a.numpy().ravel(), b.numpy().astype(np.float32)]))
    assert (buf.array[[0, 3]] == 7.0).all()
    assert [v.shape for v in buf.views(2)] == [a.shape, b.shape]
    shared = torch.zeros_like(buf.buffer)
    buf.bind(shared)  # a new buffer (moved to shared memory): the views follow it
    buf.copy(3, [a, b])
    assert np.array_equal(shared.numpy()[3], np.concatenate([a.numpy().ravel(), b.numpy().astype(np.float32)]))
