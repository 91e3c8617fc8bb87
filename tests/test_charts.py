"""bnviz.figures on real (short) training runs, an empty history, a run without normalization and a long history.

The figures' data are checked against the History they were built from, read through History's own API.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.history import GRAD_STATS, WEIGHT_STATS, History
from bnviz.engine.shift import distribution_drift
from bnviz.engine.trainer import train
from bnviz.figures.density import DENSITY_MARGIN_PX
from bnviz.ui.plot import BUNDLE_TRACES


def _pixels(image) -> np.ndarray:
    """The RGBA pixels of a layout image's PNG data URI, row 0 at the bottom (like the plot's y axis)."""
    header, data = image.source.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))[::-1]


def _expected_rgb(z: np.ndarray, zmax: float) -> np.ndarray:
    """Each value's colour sampled by plotly itself from the density colour scale (independent of figures.raster)."""
    flat = np.clip(np.nan_to_num(np.ravel(z) / zmax), 0, 1)
    unique, inverse = np.unique(np.round(flat, 4), return_inverse=True)
    colours = [pcolors.unlabel_rgb(c) for c in pcolors.sample_colorscale(figures.DENSITY_SCALE, list(unique))]
    return np.asarray(colours, dtype=np.float64)[inverse].reshape(*np.shape(z), 3)


def assert_image_shows(image, z: np.ndarray, zmax: float, x_span, y_span) -> None:
    """The image is z (rows = bins, columns = steps) coloured on the density scale, placed over x_span x y_span."""
    pixels = _pixels(image)
    assert pixels.shape[:2] == z.shape
    finite = np.isfinite(z)
    np.testing.assert_array_equal(pixels[..., 3], np.where(finite, 255, 0))
    diff = np.abs(pixels[..., :3].astype(float) - _expected_rgb(z, zmax))[finite]
    assert diff.max() <= 3, diff.max()  # a 256-colour table: at most a rounding step away
    assert (image.x, image.x + image.sizex) == pytest.approx(x_span)
    assert (image.y - image.sizey, image.y) == pytest.approx(y_span)
    assert image.sizing == "stretch" and image.layer == "below"


@pytest.fixture(scope="module")
def bn() -> History:
    return train(RunConfig(steps=40, eval_every=10, ics_every=10)).history


@pytest.fixture(scope="module")
def nobn() -> History:
    return train(RunConfig(steps=40, eval_every=10, ics_every=10, norm="none")).history


@pytest.fixture(scope="module")
def mlp() -> History:
    return train(RunConfig(steps=40, eval_every=10, model="mlp", activation="sigmoid", width=32, depth=3)).history


@pytest.fixture(scope="module")
def empty(bn) -> History:
    return History(bn.layout, capacity=4)


def _long(history: History, rows: int) -> History:
    """A `rows`-row history made of the rows of `history`, repeated, with steps 0, 1, 2, ..."""
    out = History(history.layout, capacity=max(4, rows + rows % 2))
    out.hist_edges[:] = history.hist_edges
    out.meta = dict(history.meta)
    names = list(out.new_row())
    for i in range(rows):
        row = {name: history.column(name)[i % len(history)] for name in names if name != "record"}
        row["step"] = np.int64(i)
        out.append(row)
    return out


@pytest.fixture(scope="module")
def long_bn(bn) -> History:
    return _long(bn, 2000)


BUILDERS = {
    "loss_accuracy": lambda h: figures.loss_accuracy([("no BN", h), ("BN", h)]),
    "distribution_heatmap": lambda h: figures.distribution_heatmap(h, 0, figures.ACT_INPUT),
    "distribution_heatmap_act": lambda h: figures.distribution_heatmap(h, -1, "act", title="custom"),
    "distribution_grid": lambda h: figures.distribution_grid([("no BN", h), ("BN", h)]),
    "histogram_now_vs_start": lambda h: figures.histogram_now_vs_start(h, 1),
    "percentile_lines": lambda h: figures.percentile_lines([("run", h)], -1),
    "saturation": figures.saturation,
    "drift": figures.drift,
    "drift_previous": lambda h: figures.drift(h, "previous", stage=("pre", "act")),
    "gradient_norms": figures.gradient_norms,
    "gradient_histogram": lambda h: figures.gradient_histogram(h, 0),
    "update_data": figures.update_ratios,
    "grad_data": lambda h: figures.update_ratios(h, "grad_data"),
    "gamma_beta": lambda h: figures.gamma_beta(h, 0),
    "running_mean": lambda h: figures.running_vs_batch(h, 0, "mean"),
    "running_var": lambda h: figures.running_vs_batch(h, -1, "var", channels=3),
    "train_eval_gap": lambda h: figures.train_eval_gap([("run", h)]),
    "ics_measure": lambda h: figures.ics_measure([("run", h)]),
}


def _annotations(fig: go.Figure) -> str:
    return " ".join(a.text or "" for a in fig.layout.annotations)


def _trace(fig: go.Figure, name: str):
    return next(t for t in fig.data if t.name == name)


@pytest.mark.parametrize("which", ["bn", "nobn", "mlp", "empty", "long_bn"])
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_every_builder_returns_a_light_figure(builder, which, request):
    history = request.getfixturevalue(which)
    fig = BUILDERS[builder](history)
    assert isinstance(fig, go.Figure)
    # builders skip plotly's validation for speed: every property must still be valid (this raises otherwise)
    go.Figure(fig.to_plotly_json())
    assert len(fig.data) <= 40
    assert {t.type for t in fig.data} <= BUNDLE_TRACES  # the app's plotly.js bundle can draw every trace
    assert fig.layout.font.size >= 16 and fig.layout.title.font.size >= 20 and fig.layout.title.text
    assert fig.layout.template == pio.templates["plotly_white"]
    for trace in fig.data:
        for axis in ("x", "y"):
            values = getattr(trace, axis, None)
            if values is not None and trace.type != "bar":
                assert len(values) <= 3 * figures.MAX_POINTS + 2  # at most three curves joined with NaN gaps
    if which == "empty":
        assert figures.WAITING in _annotations(fig)
        assert not fig.data


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_figures_serialize_to_html(builder, bn):
    html = BUILDERS[builder](bn).to_html(include_plotlyjs=False, full_html=False)
    assert "Plotly.newPlot" in html


@pytest.mark.parametrize("builder", ["gamma_beta", "running_mean", "running_var"])
def test_norm_figures_say_when_a_run_has_no_normalization(builder, nobn):
    fig = BUILDERS[builder](nobn)
    assert "no normalization layers" in _annotations(fig)
    assert not fig.data


def test_a_missing_norm_stage_is_explained(nobn):
    fig = figures.distribution_heatmap(nobn, 0, "norm")
    assert "no normalization layers" in _annotations(fig)


def test_activation_input_stage_follows_the_placement(bn, nobn):
    assert [figures.activation_input_stage(bn, i) for i in range(3)] == ["norm"] * 3
    assert figures.activation_input_stage(nobn, 0) == "pre"
    after = bn.copy()
    after.meta["config"]["placement"] = "after"
    assert figures.activation_input_stage(after, 0) == "pre"
    bare = bn.copy()
    bare.meta = {}
    assert figures.activation_input_stage(bare, 0) == "pre"


@pytest.mark.parametrize("stage", ["pre", "norm", "act"])
def test_heatmap_shows_the_histograms_and_exact_percentiles(bn, stage):
    fig = figures.distribution_heatmap(bn, 1, stage)
    k = bn.probe_index(1, stage)
    edges = bn.hist_edges[k]
    steps = bn.steps  # 0..39, evenly spaced: one column per recorded step
    assert_image_shows(fig.layout.images[0], bn.column("act_hist")[:, k, :].T, fig.layout.coloraxis.cmax,
                       (steps[0] - 0.5, steps[-1] + 0.5), (edges[0], edges[-1]))
    assert fig.layout.coloraxis.colorbar.title.text  # the colour scale is explained next to the image
    for stat, name in (("p15", "15th percentile"), ("p50", "50th percentile"), ("p85", "85th percentile")):
        np.testing.assert_allclose(_trace(fig, name).y, bn.act(stat)[:, k], rtol=1e-6)
    lo, hi = fig.layout.yaxis.range
    assert lo <= min(edges[0], np.nanmin(bn.act("p15")[:, k])) and hi >= max(edges[-1], np.nanmax(bn.act("p85")[:, k]))


def test_heatmap_colour_scale_keeps_the_data(bn):
    fig = figures.distribution_heatmap(bn, 0, "act")  # ReLU output: half the values in the zero bin
    k = bn.probe_index(0, "act")
    hist = bn.column("act_hist")[:, k, :]
    cmax = fig.layout.coloraxis.cmax
    assert 0 < cmax < np.nanmax(hist)  # the dominant zero bin does not set the top of the colour scale
    assert "√" in fig.layout.coloraxis.colorbar.title.text


def test_long_histories_are_thinned_keeping_first_and_last(long_bn):
    rows = figures.even_rows(len(long_bn))
    assert len(rows) <= figures.MAX_POINTS and rows[0] == 0 and rows[-1] == len(long_bn) - 1
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(figures.even_rows(7), np.arange(7))
    fig = figures.distribution_heatmap(long_bn, 0)
    image = fig.layout.images[0]
    columns = _pixels(image).shape[1]
    assert columns == figures.MAX_POINTS
    # evenly spaced columns over steps 0..1999: column j shows the recorded step nearest to j * 1999 / (columns - 1)
    grid = np.linspace(0, 1999, columns)
    nearest = np.rint(grid).astype(int)  # steps are 0, 1, 2, ... here, so the nearest step is the rounded one
    k = long_bn.probe_index(0, "norm")
    half = 1999 / (columns - 1) / 2
    assert_image_shows(image, long_bn.column("act_hist")[nearest, k, :].T, fig.layout.coloraxis.cmax,
                       (-half, 1999 + half), tuple(long_bn.hist_edges[k][[0, -1]]))
    loss = figures.loss_accuracy([("BN", long_bn)]).data[0]
    assert len(loss.x) <= figures.MAX_POINTS and loss.x[0] == 0 and loss.x[-1] == 1999


def test_grid_cells_match_each_run_and_stay_few_traces(bn, nobn):
    fig = figures.distribution_grid([("no BN", nobn), ("BN", bn)])
    assert len(fig.layout.images) == 6 and len(fig.data) <= 40
    assert not [t for t in fig.data if t.type == "heatmap"]  # images, not cell-by-cell heatmaps (bnviz.figures.raster)
    # cell (row = block b, column = run c) draws on the axes of subplot b * 2 + c, all on one colour scale
    for image in fig.layout.images:
        index = int(image.yref[1:] or 1) - 1
        run, layer = (nobn, bn)[index % 2], index // 2
        k = run.probe_index(layer, figures.activation_input_stage(run, layer))
        assert_image_shows(image, run.column("act_hist")[:, k, :].T, fig.layout.coloraxis.cmax,
                           (-0.5, 39.5), tuple(run.hist_edges[k][[0, -1]]))
    lines = [t for t in fig.data if t.type == "scatter" and t.yaxis == "y2"]  # block1, BN
    k = bn.probe_index(0, "norm")
    expected = np.concatenate([bn.act("p15")[:, k], [np.nan], bn.act("p50")[:, k], [np.nan], bn.act("p85")[:, k]])
    np.testing.assert_allclose(lines[0].y, expected, rtol=1e-6)
    assert fig.layout.yaxis2.matches == "y"  # y shared within a row


def _shape(fig: dict) -> dict:
    """What plotly draws of a figure, without the numbers and words: trace kinds and axes, layout parts."""
    layout = fig["layout"]
    axes = {k: sorted(set(v) - {"range", "title", "tickvals"}) for k, v in layout.items()
            if k.startswith(("xaxis", "yaxis"))}
    return {"traces": sorted((t["type"], t.get("mode", ""), t["xaxis"], t["yaxis"], t.get("showlegend", True))
                             for t in fig["data"]),
            "layout": sorted(layout), "axes": axes,
            "titled": sorted(k for k, v in layout.items() if isinstance(v, dict) and "title" in v),
            "images": len(layout["images"]), "shapes": len(layout["shapes"]),
            "coloraxis": sorted(layout["coloraxis"]), "annotations": len(layout["annotations"])}


def test_a_grid_of_a_few_steps_ticks_whole_steps(bn, nobn):
    """The first chart after Start holds step 0 alone: its step axes are ticked at 0, not at plotly's -0.5, 0 and 0.5
    (whose "0.5" ran into the next column's "-0.5"); a few steps get a tick each; a longer run gets ticks at plotly's
    spacing but none near a column's right end (a 400-step run's "400" ran into the next column's "0")."""
    def step_axes(runs):
        layout = figures.distribution_grid(runs).layout.to_plotly_json()
        return [v for k, v in layout.items() if k.startswith("xaxis")]

    first = step_axes([("no BN", _long(nobn, 1)), ("BN", _long(bn, 1))])
    assert len(first) == 6 and all(list(x["tickvals"]) == [0] for x in first)
    assert all(list(x["tickvals"]) == [0, 1, 2] for x in step_axes([("BN", _long(bn, 3))]))
    for x in step_axes([("no BN", nobn), ("BN", bn)]):  # a longer run: plotly's spacing, the right end left free
        lo, hi = x["range"]
        ticks = list(x["tickvals"])
        assert 2 <= len(ticks) <= 5 and ticks[0] == 0 and ticks[-1] < hi - 0.1 * (hi - lo)
        assert len({b - a for a, b in zip(ticks, ticks[1:], strict=False)}) == 1
        assert ticks[1] in (1, 2, 5, 10, 20, 50, 100, 200, 500)
    one = _long(bn, 1)  # the single heatmaps too
    for fig in (figures.distribution_heatmap(one, 0, figures.ACT_INPUT), figures.gradient_histogram(one, 0)):
        assert list(fig.layout.xaxis.tickvals) == [0]
    assert figures.distribution_heatmap(bn, 0, figures.ACT_INPUT).layout.xaxis.tickvals is None


def test_the_warm_up_grid_has_the_shape_of_homes_grid(bn, nobn):
    """bnviz.ui.plot draws it unseen before the first live chart, so that plotly's first draw of the real grid
    (Home's demo: two runs of the default CNN) is not its first of such a figure: every part plotly draws is there."""
    warm = figures.distribution_grid_warm_up()
    go.Figure(warm.to_plotly_json())  # valid
    assert _shape(_as_sent(warm)) == _shape(_as_sent(figures.distribution_grid([("no BN", nobn), ("BN", bn)])))


def test_density_figures_reserve_their_colorbars_margin(bn):
    """The colour bar of a density heatmap starts at the plot's right edge, so the right margin it needs is the same
    at every chart width, and the figure has that margin from the start: plotly then draws it once (a colour bar
    that does not fit makes it widen the margin and lay out and draw the whole chart again)."""
    for fig in (figures.distribution_grid([("BN", bn)]), figures.distribution_heatmap(bn),
                figures.gradient_histogram(bn)):
        colorbar = fig.layout.coloraxis.colorbar
        assert (colorbar.x, colorbar.xanchor) == (1, "left"), fig.layout.title.text
        assert fig.layout.margin.r == DENSITY_MARGIN_PX == 72 + 2 * colorbar.xpad


def test_grid_build_time_for_a_long_history(long_bn):
    nobn_like = long_bn.copy()
    runs = [("no BN", nobn_like), ("BN", long_bn)]
    figures.distribution_grid(runs)  # warm-up
    start = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        fig = figures.distribution_grid(runs)
    elapsed = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    size = len(fig.to_json())
    to_json = time.perf_counter() - start
    print(f"\ndistribution_grid, 2 runs x 3 blocks, 2,000 rows: {elapsed * 1e3:.1f} ms per figure, "
          f"{len(fig.data)} traces; to_json {to_json * 1e3:.1f} ms, {size / 1e6:.2f} MB")
    assert len(fig.data) <= 40
    small = figures.distribution_grid(runs, max_points=150)
    assert all(_pixels(image).shape[1] <= 150 for image in small.layout.images)


def test_loss_accuracy_connects_evaluated_points_only(bn):
    fig = figures.loss_accuracy([("BN", bn)])
    acc = fig.data[1]
    evaluated = np.isfinite(bn.scalar("test_acc"))
    np.testing.assert_array_equal(acc.x, bn.steps[evaluated])
    np.testing.assert_allclose(acc.y, bn.scalar("test_acc")[evaluated])
    np.testing.assert_allclose(fig.data[0].y, bn.scalar("loss"))


def test_nan_and_infinite_values_are_gaps(bn):
    broken = bn.copy()
    broken.column("act_stats")[5] = np.nan
    broken.column("act_hist")[6] = np.nan
    broken.column("scalars")[7] = np.inf
    broken.column("grad_stats")[8] = np.nan
    broken.column("weight_stats")[9] = np.nan
    broken.column("channels")[10] = np.nan
    for builder in BUILDERS.values():
        fig = builder(broken)
        assert isinstance(fig, go.Figure)
        fig.to_json()
    loss = figures.loss_accuracy([("BN", broken)]).data[0]
    assert np.isnan(loss.y[7])


def test_runs_keep_their_colour_in_every_figure(bn, nobn):
    colours = figures.run_colors(["no BN", "BN", "my run", "other"])
    assert colours["BN"] == figures.OKABE_ITO["blue"] and colours["no BN"] == figures.OKABE_ITO["vermillion"]
    assert len(set(colours.values())) == 4
    runs = [("no BN", nobn), ("BN", bn)]
    for fig in (figures.loss_accuracy(runs), figures.percentile_lines(runs), figures.train_eval_gap(runs),
                figures.ics_measure(runs)):
        for trace in fig.data:
            label = "no BN" if trace.name.startswith("no BN") else "BN"
            assert trace.line.color == colours[label], (fig.layout.title.text, trace.name)


def test_percentile_lines_compare_runs(bn, nobn):
    fig = figures.percentile_lines([("no BN", nobn), ("BN", bn)], -1)
    k = bn.probe_index(2, "norm")
    np.testing.assert_allclose(_trace(fig, "BN: median").y, bn.act("p50")[:, k], rtol=1e-6)
    k = nobn.probe_index(2, "pre")
    np.testing.assert_allclose(_trace(fig, "no BN: median").y, nobn.act("p50")[:, k], rtol=1e-6)
    assert len(fig.data) == 4


def test_saturation_picks_the_measure_of_the_activation(bn, mlp):
    relu = figures.saturation(bn)
    assert "0" in relu.layout.yaxis.title.text and "ReLU" in relu.layout.title.text
    np.testing.assert_allclose(relu.data[0].y, bn.act("frac_dead")[:, bn.probe_index(0, "act")])
    sig = figures.saturation(mlp)
    assert "saturated" in sig.layout.yaxis.title.text and "sigmoid" in sig.layout.title.text
    np.testing.assert_allclose(sig.data[2].y, mlp.act("frac_saturated")[:, mlp.probe_index(2, "act")])


def test_drift_and_gradient_norms_use_the_activation_input(bn, nobn):
    for history, stage in ((bn, "norm"), (nobn, "pre")):
        w1 = distribution_drift(history, "first")["w1_rel"]
        fig = figures.drift(history)
        np.testing.assert_allclose(fig.data[1].y, w1[:, history.probe_index(1, stage)], rtol=1e-6)
        norms = figures.gradient_norms(history)
        expected = history.column("grad_stats")[:, history.probe_index(1, stage), GRAD_STATS.index("grad_norm")]
        np.testing.assert_allclose(norms.data[1].y, expected, rtol=1e-6)
        assert norms.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="reference"):
        figures.drift(bn, "last")


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_drift_of_a_long_history_matches_shift_on_the_shown_rows(long_bn, reference):
    rows = figures.even_rows(len(long_bn))
    expected = distribution_drift(long_bn, reference)["w1_rel"][rows]
    fig = figures.drift(long_bn, reference)
    for layer, trace in enumerate(fig.data):
        np.testing.assert_array_equal(trace.x, long_bn.steps[rows])
        np.testing.assert_allclose(trace.y, expected[:, long_bn.probe_index(layer, "norm")], rtol=1e-6)


def test_gradient_histogram_shows_log10_bins(bn):
    fig = figures.gradient_histogram(bn, 2)
    k = bn.probe_index(2, "norm")
    edges = bn.grad_edges
    assert_image_shows(fig.layout.images[0], bn.column("grad_hist")[:, k, :].T, fig.layout.coloraxis.cmax,
                       (-0.5, 39.5), (edges[0], edges[-1]))


def test_update_ratios_guide_line(bn):
    fig = figures.update_ratios(bn)
    guide = [t for t in fig.data if "1e-3" in (t.name or "")]
    assert len(guide) == 1 and set(guide[0].y) == {1e-3} and "Karpathy" in guide[0].name
    assert "≈1e-3: healthy update size (Karpathy)" in _annotations(fig)
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[0].y[1:], bn.column("weight_stats")[1:, 0, WEIGHT_STATS.index("update_data")],
                               rtol=1e-6)
    assert not [t for t in figures.update_ratios(bn, "grad_data").data if "1e-3" in (t.name or "")]
    with pytest.raises(ValueError, match="which"):
        figures.update_ratios(bn, "nonsense")


def test_gamma_beta_and_running_statistics(bn):
    fig = figures.gamma_beta(bn, 1)
    gamma, beta = fig.data
    channels = bn.channels_frame()
    block2 = channels[channels.layer == 2]
    np.testing.assert_allclose(gamma.z, block2.pivot(index="channel", columns="step", values="gamma").to_numpy())
    np.testing.assert_allclose(beta.z, block2.pivot(index="channel", columns="step", values="beta").to_numpy())
    fig = figures.running_vs_batch(bn, 1, "var", channels=4)
    assert len(fig.data) == 8
    thin = _trace(fig, "channel 1 batch")
    thick = _trace(fig, "channel 1")
    ch0 = block2[block2.channel == 0]
    np.testing.assert_allclose(thin.y, ch0.batch_var, rtol=1e-6)
    np.testing.assert_allclose(thick.y, ch0.running_var, rtol=1e-6)
    assert thick.line.width > thin.line.width
    with pytest.raises(ValueError, match="stat"):
        figures.running_vs_batch(bn, 0, "std")


def test_train_eval_gap_plots_both_modes(bn):
    fig = figures.train_eval_gap([("BN", bn)])
    eval_mode, train_mode = fig.data
    evaluated = np.isfinite(bn.scalar("test_acc_train_mode"))
    np.testing.assert_allclose(train_mode.y, bn.scalar("test_acc_train_mode")[evaluated])
    np.testing.assert_allclose(eval_mode.y, bn.scalar("test_acc")[np.isfinite(bn.scalar("test_acc"))])


def test_ics_measure_or_a_note_when_not_measured(bn, nobn, mlp):
    fig = figures.ics_measure([("no BN", nobn), ("BN", bn)])
    assert len(fig.data) == 2 * 2 * 2  # runs x measured blocks (2 and 3) x (L2, cos)
    ics = bn.column("ics")
    measured = np.isfinite(ics[:, 1, 0])
    np.testing.assert_allclose(_trace(fig, "BN: block2").y, ics[measured, 1, 0], rtol=1e-6)
    assert "not measured" in _annotations(figures.ics_measure([("mlp", mlp)]))
    assert "not measured: mlp" in _annotations(figures.ics_measure([("BN", bn), ("mlp", mlp)]))


def test_figure_catalog_names_and_captions(bn, nobn, empty):
    catalog = figures.figure_catalog(bn)
    assert {"loss_accuracy", "saturation", "drift", "update_data", "ics", "gamma_beta_block1",
            "running_var_block3", "distribution_block2_norm"} <= set(catalog)
    for key, fig in catalog.items():
        assert re.fullmatch(r"[a-z0-9_]+", key), key
        assert isinstance(fig, go.Figure)
        assert figures.caption(key), key
    no_norm = figures.figure_catalog(nobn)
    assert not [k for k in no_norm if k.startswith(("gamma", "running"))]
    assert all(isinstance(f, go.Figure) for f in figures.figure_catalog(empty).values())
    assert figures.figure_catalog(None)


def test_captions_do_not_overclaim():
    text = " ".join(figures.CAPTIONS.values()).lower()
    assert "debated" in figures.CAPTIONS["distribution"] and "hypothesis" in figures.CAPTIONS["ics"]
    assert "proven" not in text and "proves" not in text
    assert "unbiased" in figures.CAPTIONS["running_var"] and "1/m" in figures.CAPTIONS["running_var"]


def test_runs_may_be_given_several_ways(bn, empty):
    for runs in (bn, {"BN": bn}, [("BN", bn), ("waiting", empty)], [("BN", bn), ("none yet", None)]):
        assert figures.loss_accuracy(runs).data
    fig = figures.distribution_grid([("BN", bn), ("waiting", empty)])
    assert figures.WAITING in _annotations(fig)
    assert figures.WAITING in _annotations(figures.loss_accuracy([]))


@pytest.mark.parametrize("builder", ["gradient_norms", "gamma_beta", "gradient_histogram", "distribution_heatmap"])
def test_fit_width_wraps_long_titles_and_keeps_the_plot_size(bn, builder):
    fig = BUILDERS[builder](bn)
    title, height, top = fig.layout.title.text, fig.layout.height, fig.layout.margin.t
    chars = int(400 / (figures.TITLE_SIZE * 0.52))
    figures.fit_width(fig, 400)
    lines = fig.layout.title.text.split("<br>")
    assert " ".join(lines) == title and all(len(line) <= chars for line in lines)
    added = fig.layout.height - height
    assert added == fig.layout.margin.t - top == (len(lines) - 1) * round(figures.TITLE_SIZE * 1.3)  # same plot
    assert fig.layout.title.pad.t == (len(lines) - 1) * round(figures.TITLE_SIZE * 0.7)  # first line not cut off
    if len(lines) > 1 and fig.layout.showlegend:  # the legend's top sits below the last title line
        legend_top_px = (1 - fig.layout.legend.y) * fig.layout.height
        assert legend_top_px >= len(lines) * figures.TITLE_SIZE * 1.2


def test_fit_width_leaves_a_title_that_fits(bn):
    fig = figures.loss_accuracy([("BN", bn)])
    before = fig.to_plotly_json()
    figures.fit_width(fig, 1200)
    assert fig.to_plotly_json() == before


def test_preview_says_what_will_appear_in_an_empty_frame():
    fig = figures.preview("Loss and accuracy", "The loss and accuracy will appear here while the network trains. " * 2)
    go.Figure(fig.to_plotly_json())
    assert not fig.data and fig.layout.title.text == "Loss and accuracy" and fig.layout.height == figures.PREVIEW_HEIGHT
    text = _annotations(fig)
    assert "will appear here" in text and "<br>" in text  # a long text is wrapped, not cut off
    assert all(len(line) <= 58 for line in text.split("<br>"))


def _as_sent(fig) -> dict:
    """What the browser receives for a figure: plotly's JSON, parsed back."""
    return json.loads(pio.to_json(fig, validate=False))


@pytest.mark.parametrize("which", ["bn", "nobn", "mlp", "empty", "long_bn"])
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_plain_figures_send_the_same_json_as_plotly_figures(builder, which, request):
    history = request.getfixturevalue(which)
    fig = BUILDERS[builder](history)
    with figures.plain_figures():
        plain = BUILDERS[builder](history)
    assert isinstance(plain, dict) and not isinstance(fig, dict)
    assert _as_sent(plain) == _as_sent(fig)
    # what a live page does to a figure before sending it: the same on both forms
    figures.enlarge_text(figures.fit_width(fig, 400), 18)
    figures.enlarge_text(figures.fit_width(plain, 400), 18)
    assert _as_sent(plain) == _as_sent(fig)
    assert fig.layout.font.size == 18 and fig.layout.legend.font.size == 18 and fig.layout.title.font.size == 22


def test_typed_arrays_converts_like_plotly():
    """finish()'s fast conversion of numpy arrays gives the very dict plotly's convert_to_base64 gives."""
    from _plotly_utils.utils import convert_to_base64

    from bnviz.figures.style import typed_arrays

    def tree():
        return {
            "data": [{"x": np.arange(5, dtype=np.float64), "y": np.linspace(0, 1, 5).astype(np.float32),
                      "z": np.arange(12.0).reshape(3, 4).T, "ints": np.array([1, -2, 300]),
                      "big": np.array([0, 2**40]), "uints": np.array([1, 70000], dtype=np.uint64),
                      "empty": np.zeros(0), "flags": np.array([True, False]), "names": np.array(["a", "b"]),
                      "nested": {"color": np.array([0.5, np.nan]), "list": [np.arange(2.0), {"c": np.ones(2)}]},
                      "range": np.arange(2.0), "text": "a", "n": np.float64(2.0), "i": np.int64(3),
                      "tuple": ({"t": np.arange(3, dtype=np.int16)},), "none": None}],
            "layout": {"xaxis": {"range": [np.float64(0.0), 1.0]}, "images": [{"source": "data:"}]},
        }

    ours, plotlys = tree(), tree()
    typed_arrays(ours)
    convert_to_base64(plotlys)
    assert pio.to_json(ours, validate=False) == pio.to_json(plotlys, validate=False)
    assert ours["data"][0]["x"]["dtype"] == "f8" and ours["data"][0]["ints"]["dtype"] == "i2"
    assert ours["data"][0]["z"]["shape"] == "4, 3"


def test_plain_figures_only_inside_the_block_and_only_in_that_thread(bn):
    seen = []
    with figures.plain_figures():
        other = threading.Thread(target=lambda: seen.append(figures.gradient_norms(bn)))
        other.start()
        other.join()
        assert isinstance(figures.gradient_norms(bn), dict)
    assert isinstance(seen[0], go.Figure) and isinstance(figures.gradient_norms(bn), go.Figure)


def test_a_plain_figure_shares_no_layout_with_the_next_one(bn):
    with figures.plain_figures():
        first, second = figures.loss_accuracy([("BN", bn)]), figures.loss_accuracy([("BN", bn)])
    figures.enlarge_text(first, 30)
    assert second["layout"]["font"]["size"] == figures.FONT["size"] and figures.FONT["size"] == 16
    assert second["layout"]["template"] == first["layout"]["template"]


def test_messages_and_notes_are_wrapped_to_fit_a_chart_in_a_page_column(bn, nobn):
    message = figures.running_vs_batch(nobn, 0, "mean")  # "This run has no normalization layers (norm = none): ..."
    lines = _annotations(message).split("<br>")
    assert len(lines) >= 3 and max(len(line) for line in lines) <= 40
    assert " ".join(lines).startswith("This run has no normalization layers (norm = none):")
    hist = figures.histogram_now_vs_start(bn, 0)  # its note names the fixed range and the shares outside it
    note = next(a.text for a in hist.layout.annotations if "outside the fixed range" in (a.text or ""))
    assert max(len(line) for line in note.split("<br>")) <= 50
