"""The canned experiments on short settings (seconds each): every experiment's qualitative outcome, the landscape probe
checked against an independent computation, the cache, the charts, and both pages rendered with AppTest.

The short results are also stored in the experiments cache under the pages' default settings, so the page tests
draw real charts without training for minutes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from vision_support import colour_only

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.data import BatchStream
from bnviz.engine.models import NoisyBatchNorm, build_model
from bnviz.science.figure1 import FIGURE1_NET, UnitInputs, figure1, typical_unit, unit_drifts
from bnviz.science.findings import batch_size_table, lr_table, santurkar_findings, santurkar_table, wu_he_table
from bnviz.science.normalization_axes import norm_mask
from bnviz.science.result_cache import cached, forget, remember
from bnviz.science.santurkar import LANDSCAPE_MULTIPLES, landscape_probe, santurkar
from bnviz.science.sweeps import batch_size_sweep, init_sweep, lr_sweep
from bnviz.ui.plot import BUNDLE_TRACES

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fig1():
    calls = []
    result = figure1(steps=300, record_every=10, eval_every=50, progress=lambda f, m: calls.append((f, m)))
    return result, calls


@pytest.fixture(scope="module")
def sant():
    return santurkar(steps=350, ics_every=50, probe_every=100, record_every=10, eval_every=50)


@pytest.fixture(scope="module")
def lrs():
    return lr_sweep(lrs=(0.1, 3.0), steps=300)


@pytest.fixture(scope="module")
def inits():
    return init_sweep(scales=(0.01, 1.0), steps=300)


@pytest.fixture(scope="module")
def batches():
    return batch_size_sweep(batch_sizes=(2, 32), norms=("batch", "group", "layer"), epochs=1.0)


# ---- outcomes ----------------------------------------------------------------------------------------------------
def test_figure1_bn_keeps_the_median_put_and_learns_sooner(fig1):
    result, _ = fig1
    m = result.summary.set_index("model")
    assert m.loc["BN", "unit_drift_median"] < 0.5 * m.loc["no BN", "unit_drift_median"]
    assert m.loc["BN", "pooled_median_drift"] < 0.5 * m.loc["no BN", "pooled_median_drift"]
    assert m.loc["BN", "pooled_median_drift_mean"] < 0.5 * m.loc["no BN", "pooled_median_drift_mean"]
    assert m.loc["BN", "acc_at_100"] > 0.6 > m.loc["no BN", "acc_at_100"]
    curves = result.curves
    assert set(curves["model"]) == {"BN", "no BN"}
    assert (curves["p15"] <= curves["p50"]).all() and (curves["p50"] <= curves["p85"]).all()
    assert curves.loc[curves["model"] == "BN", "step"].iloc[-1] == 290


def test_figure1_records_each_unit_of_the_last_sigmoid_on_the_training_batch():
    from bnviz.engine.trainer import Run
    for norm in ("none", "batch"):
        run = Run(RunConfig(**FIGURE1_NET, norm=norm, steps=5, record_every=0, eval_every=100))
        watch = UnitInputs(run, every=2)
        x, y = BatchStream(run.dataset, 60, 0).next()
        weights = [(b.layer.weight.detach().double().numpy(), b.layer.bias) for b in run.model.blocks]
        h = x.flatten(1).double().numpy()  # independent forward pass at step 0 in numpy
        for i, (w, b) in enumerate(weights):
            z = h @ w.T + (b.detach().double().numpy() if b is not None else 0.0)
            if norm == "batch":  # train mode: the batch's own mean and biased variance; gamma 1, beta 0 at step 0
                z = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
            if i == len(weights) - 1:
                expected = z
            h = 1 / (1 + np.exp(-z))
        for _ in range(5):
            run.train_step(x, y)
        watch.detach()
        assert watch.steps == [0, 2, 4] and watch.values[0].shape == (60, 100)
        np.testing.assert_allclose(watch.values[0], expected, rtol=1e-4, atol=1e-5)
        pct = watch.percentiles()
        np.testing.assert_allclose(pct[:, 1], np.percentile(watch.values[1], [15, 50, 85], axis=0))


def test_unit_drift_is_the_largest_move_of_each_median_and_the_typical_unit_has_the_median_drift():
    p50 = np.array([[0.0, 1.0, 5.0, 2.0], [0.5, 1.0, 4.0, 2.0], [-1.0, 3.0, 5.5, 2.0]])  # (steps, units)
    pct = np.stack([p50 - 1, p50, p50 + 1])
    drift = unit_drifts(pct)
    np.testing.assert_allclose(drift, [1.0, 2.0, 1.0, 0.0])
    assert typical_unit(drift) == 0  # sorted drifts 0, 1, 1, 2: the lower middle one is unit 0 or 2, first found
    assert typical_unit(np.array([3.0, np.nan, 1.0, 2.0])) == 3


def test_progress_is_monotone_and_ends_at_one(fig1):
    _, calls = fig1
    fractions = [f for f, _ in calls]
    assert fractions and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in calls)


def test_santurkar_noisy_bn_trains_and_bn_is_smoother(sant):
    m = sant.summary.set_index("model")
    assert list(m.index) == ["no BN", "BN", "noisy BN"]
    assert m.loc["noisy BN", "final_acc"] > 0.6  # chance is 0.1
    assert m.loc["noisy BN", "jump_mean"] > m.loc["BN", "jump_mean"]  # the injected noise moves the inputs
    assert m.loc["BN", "loss_range"] < m.loc["no BN", "loss_range"]
    assert m.loc["BN", "loss_range_late"] < 0.1 * m.loc["no BN", "loss_range_late"]
    assert m.loc["BN", "grad_change_late"] < m.loc["no BN", "grad_change_late"]
    ics = sant.ics
    assert set(ics["block"]) == {2, 3, 4}  # block 1 has no earlier layer
    assert sorted(set(ics["step"])) == [0, 50, 100, 150, 200, 250, 300]
    assert np.isfinite(ics[["ics_l2", "ics_rel", "ics_cos"]].to_numpy()).all()
    assert (ics["ics_cos"].abs() <= 1 + 1e-6).all()
    land = sant.landscape
    assert sorted(set(land["step"])) == [100, 200, 300]
    assert np.isfinite(land[["loss", "grad_change"]].to_numpy()).all()
    assert len(santurkar_findings(sant)) == 3 and len(santurkar_table(sant)) == 9


def test_bn_tolerates_a_learning_rate_where_no_bn_stays_at_chance(lrs):
    m = lrs.summary.set_index(["lr", "model"])
    assert m.loc[(3.0, "BN"), "final_acc"] > 0.8
    assert m.loc[(3.0, "no BN"), "final_acc"] < 0.2
    assert m.loc[(0.1, "BN"), "final_acc"] > 0.8
    assert list(lr_table(lrs)["lr"]) == ["0.1", "3"]


def test_bn_trains_from_tiny_initial_weights(inits):
    m = inits.summary.set_index(["init_scale", "model"])
    assert m.loc[(0.01, "BN"), "final_acc"] > 0.8
    assert m.loc[(0.01, "no BN"), "final_acc"] < 0.2


def test_bn_at_batch_size_2_loses_to_gn_and_ln_in_eval_mode(batches):
    m = batches.summary.set_index(["batch_size", "model"])
    bn2 = m.loc[(2, "BN")]
    assert bn2["eval_acc"] < min(m.loc[(2, "GN"), "eval_acc"], m.loc[(2, "LN"), "eval_acc"]) - 0.2
    assert m.loc[(32, "BN"), "eval_acc"] > 0.8
    assert m.loc[(2, "BN"), "steps"] == 718 and m.loc[(32, "BN"), "steps"] == 45  # one epoch each
    assert math.isclose(m.loc[(2, "BN"), "lr"], 0.1 * 2 / 32)
    for label in ("GN", "LN"):  # a per-sample norm scores the same in train and eval mode
        assert m.loc[(2, label), "gap"] == 0
    theirs = wu_he_table()  # the published numbers, in a table of their own
    assert list(theirs["images per GPU"]) == [32, 16, 8, 4, 2]
    assert theirs.loc[theirs["images per GPU"] == 2, "BN top-1 error (%)"].item() == 34.7
    ours = batch_size_table(batches)  # ours, in another: no column of theirs
    assert list(ours["images per batch"]) == [32, 2] and not any("Wu" in c for c in ours.columns)
    row = ours[ours["images per batch"] == 2]
    assert math.isclose(row["BN error (%)"].item(), (1 - bn2["eval_acc"]) * 100)
    assert math.isclose(row["BN error in train mode (%)"].item(), (1 - bn2["train_mode_acc"]) * 100)


# ---- the landscape probe -----------------------------------------------------------------------------------------
def _noisy_model_and_batch():
    cfg = RunConfig(model="mlp", depth=3, width=32, norm="batch-noisy", batch_size=32, seed=3)
    from bnviz.engine.data import load_dataset

    data = load_dataset("digits", 0)
    model = build_model(cfg, data.input_shape, data.n_classes)
    x, y = BatchStream(data, 32, 0).next()
    model.train()
    F.cross_entropy(model(x), y).backward()  # a noise draw, gradients and moved running stats, as in training
    return model, x, y


def test_landscape_probe_leaves_the_model_unchanged():
    model, x, y = _noisy_model_and_batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    noisy = [m for m in model.modules() if isinstance(m, NoisyBatchNorm)]
    generators = [m.generator.get_state() for m in noisy]
    lasts = [m.last_noise for m in noisy]
    model.eval()
    frame = landscape_probe(model, x, y, lr=0.1)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n]), n
    for m, g, last in zip(noisy, generators, lasts, strict=True):
        assert torch.equal(m.generator.get_state(), g) and m.last_noise is last and not m.freeze_noise
    assert list(frame["multiple"]) == [0.0, *LANDSCAPE_MULTIPLES]
    assert np.isfinite(frame[["loss", "grad_change"]].to_numpy()).all()


def test_landscape_probe_matches_a_direct_computation():
    """Loss and gradient change recomputed by hand on a deep copy (plain BN: no noise to freeze)."""
    import copy

    from bnviz.engine.data import load_dataset

    data = load_dataset("digits", 0)
    cfg = RunConfig(model="mlp", depth=2, width=16, norm="batch", batch_size=16, seed=1)
    model = build_model(cfg, data.input_shape, data.n_classes)
    x, y = BatchStream(data, 16, 0).next()
    frame = landscape_probe(model, x, y, lr=0.5, multiples=(1.0,))
    ref = copy.deepcopy(model).train()
    loss0 = F.cross_entropy(ref(x), y)
    g0 = torch.autograd.grad(loss0, list(ref.parameters()))
    with torch.no_grad():
        for p, g in zip(ref.parameters(), g0, strict=True):
            p -= 0.5 * g
    loss1 = F.cross_entropy(ref(x), y)
    g1 = torch.autograd.grad(loss1, list(ref.parameters()))
    change = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g1, g0, strict=True)))
    assert frame["loss"].tolist() == pytest.approx([loss0.item(), loss1.item()], rel=1e-5)
    assert frame["grad_change"].iloc[1] == pytest.approx(change.item(), rel=1e-4)


# ---- cache and determinism ---------------------------------------------------------------------------------------
def test_cache_returns_the_same_result_at_once(fig1):
    result, _ = fig1
    calls = []
    again = figure1(steps=300, record_every=10, eval_every=50, progress=lambda f, m: calls.append(f))
    assert again is result and calls == [1.0]
    assert cached(figure1, steps=300, record_every=10, eval_every=50) is result
    assert cached(figure1, steps=301) is None


def test_same_seed_same_numbers_after_clearing_the_cache():
    a = figure1(steps=60, record_every=10, eval_every=20, seed=5)
    forget(figure1, steps=60, record_every=10, eval_every=20, seed=5)
    b = figure1(steps=60, record_every=10, eval_every=20, seed=5)
    assert a is not b
    assert a.curves.equals(b.curves)


def _experiment_section(module: str, name: str, settings: dict) -> None:
    """A page with one Run button (AppTest runs this function's source as a script)."""
    import importlib

    from bnviz.ui.experiment_section import run_section

    run_section("t", getattr(importlib.import_module(module), name), settings, "Run")


def _click_run(module: str, name: str, settings: dict):
    import importlib

    from streamlit.testing.v1 import AppTest

    from bnviz.science import background

    at = AppTest.from_function(_experiment_section, args=(module, name, settings), default_timeout=60).run()
    at.button(key="t_run").click().run()
    run = background.find(getattr(importlib.import_module(module), name), settings)
    if run is not None:  # it trains in the background: wait for it, then the page's next run shows the outcome
        assert run.wait(60)
        at.run()
    return at


def test_bad_settings_are_plain_messages():
    at = _click_run("bnviz.science.figure1", "figure1", dict(steps=100, record_every=10, eval_every=30))
    assert not at.exception and "eval_every=30" in at.error[0].value
    at = _click_run("bnviz.science.sweeps", "lr_sweep", dict(lrs=(), steps=10))
    assert not at.exception and "lrs" in at.error[0].value


def test_a_busy_server_says_so_and_remembered_results_need_no_slot(fig1):
    from bnviz.engine.jobs import LIMITER
    from bnviz.errors import ServerBusy

    holders = [object() for _ in range(LIMITER.capacity)]
    for holder in holders:
        LIMITER.claim(id(holder))
    try:
        with pytest.raises(ServerBusy) as busy:
            LIMITER.claim(id(object()))
        at = _click_run("bnviz.science.figure1", "figure1", dict(steps=61, record_every=10, eval_every=20))
        assert not at.exception and [e.value for e in at.error] == [str(busy.value)]
        settings = dict(steps=300, record_every=10, eval_every=50)
        at = _click_run("bnviz.science.figure1", "figure1", settings)
        assert not at.exception and not at.error and at.caption  # the remembered result of the fig1 fixture
    finally:
        for holder in holders:
            LIMITER.release(id(holder))


# ---- charts ------------------------------------------------------------------------------------------------------
def test_charts_draw_every_result(fig1, sant, lrs, inits, batches):
    built = [figures.figure1_accuracy(fig1[0]), figures.figure1_percentiles(fig1[0]),
             figures.figure1_pooled_percentiles(fig1[0]), figures.santurkar_accuracy(sant),
             figures.santurkar_drift(sant), figures.santurkar_ics(sant), figures.santurkar_landscape(sant),
             figures.lr_sweep_chart(lrs), figures.init_sweep_chart(inits), figures.batch_size_accuracy(batches),
             figures.batch_size_gap(batches), figures.wu_he_published(), figures.normalization_zoo()]
    for fig in built:
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1
        assert not colour_only(fig.to_plotly_json()), fig.layout.title.text  # a dash or marker too (issue 16)
        assert {t.type for t in fig.data} <= BUNDLE_TRACES  # the app's plotly.js bundle can draw them
        assert fig.layout.title.text and fig.layout.font.size >= 16
    for build, frame in ((figures.figure1_percentiles, fig1[0].unit_curves),
                         (figures.figure1_pooled_percentiles, fig1[0].curves)):
        bn_median = next(t for t in build(fig1[0]).data if t.name == "median" and t.xaxis == "x")
        expected = frame.query("model == 'BN'")["p50"].to_numpy()
        np.testing.assert_allclose(np.asarray(bn_median.y, dtype=float), expected)


def test_charts_without_a_result_say_so():
    for builder in (figures.figure1_accuracy, figures.santurkar_landscape, figures.lr_sweep_chart,
                    figures.batch_size_accuracy):
        fig = builder(None)
        assert not fig.data and "Run" in fig.layout.annotations[0].text


def test_zoo_masks_follow_wu_and_he():
    n, c = 4, 6

    def zoo_mask(kind, groups=3):  # the zoo's set: sample 2, channel 3; 3 groups of 2 channels
        return norm_mask(kind, (n, c), sample=1, channel=2, groups=groups)

    assert zoo_mask("batch").sum(axis=0).tolist() == [0, 0, n, 0, 0, 0]  # one channel, every sample
    assert zoo_mask("layer").sum(axis=1).tolist() == [0, c, 0, 0]  # one sample, every channel
    assert zoo_mask("instance").sum() == 1
    group = zoo_mask("group", groups=3)
    assert group.sum() == 2 and group[1, 2] and group[1, 3]
    with pytest.raises(ValueError):
        zoo_mask("batchy")


def test_zoo_figure_highlights_each_kinds_mask():
    """Each of the zoo's four pictures colours exactly the cells of its kind's mask (hw x hw squares per cell)."""
    n, c, hw, groups = 4, 6, 3, 3
    fig = figures.normalization_zoo(n, c, hw, groups)
    assert "groups of 2 channels" in fig.layout.annotations[-1].text
    for trace, kind in zip(fig.data, ("batch", "layer", "instance", "group"), strict=True):
        z = np.asarray(trace.z, dtype=float)
        expected = norm_mask(kind, (n, c), sample=1, channel=2, groups=groups)
        for s in range(n):
            for ch in range(c):
                cell = z[s * (hw + 1):s * (hw + 1) + hw, ch * (hw + 1):ch * (hw + 1) + hw]
                assert (cell == expected[s, ch]).all(), (kind, s, ch)
        assert np.isnan(z[hw, :]).all() and np.isnan(z[:, hw]).all()  # the gaps between cells


# ---- pages -------------------------------------------------------------------------------------------------------
def test_zoo_page_renders_and_draws_a_stored_sweep(batches):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES_DIR / "zoo.py"), default_timeout=120).run()
    assert not at.exception
    assert len(at.button) == 1 and at.info  # nothing trained yet: the button and the published numbers
    remember(batch_size_sweep, batches, norms=("batch", "group", "layer", "none"), epochs=2.0, lr_at_32=0.1,
               seed=0)
    at.button(key="zoo_run").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe) == 2  # Wu & He's table and ours, never one table
    text = " ".join(m.value for m in at.markdown)
    assert "Ours next to" not in text and "harsher, different setting" in text


def test_evidence_page_renders_and_draws_stored_results(fig1, sant, lrs, inits):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES_DIR / "evidence.py"), default_timeout=120).run()
    assert not at.exception
    assert len(at.button) == 4
    remember(figure1, fig1[0], steps=3000, seed=0)
    remember(santurkar, sant, steps=600, seed=0)
    remember(lr_sweep, lrs, steps=1000, seed=0)
    remember(init_sweep, inits, steps=1000, seed=0)
    at.run()
    assert not at.exception and not at.error
    assert len(at.table) == 4  # static tables: their long cells wrap instead of being cut off
    at.button(key="f1_run").click().run()
    assert not at.exception and not at.error
