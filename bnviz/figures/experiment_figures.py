"""Plotly figures of the canned experiments (`bnviz.science`): pure functions, result -> figure.

They share the run figures' style (`bnviz.figures.style`: 16 px text, 22 px titles, axis titles with units,
Okabe-Ito colours, a run's colour following its label: "BN" blue, "no BN" vermillion, "noisy BN" green, "LN"
purple, "GN" orange). Pages draw them with `bnviz.ui.page.show` or `st.plotly_chart(fig, theme=None)`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..science.experiment_runs import (
    CHANCE,
    ExperimentResult,
    Figure1Result,
    SanturkarResult,
    SweepResult,
)
from ..science.published import WU_HE_TABLE
from .style import GUIDE_COLOR, Figure, axis_title, finish, finite, line, message, run_colors, run_styles, subplots

PERCENTILE_DASH = {"p15": "dash", "p50": "solid", "p85": "dot"}
PERCENTILE_NAME = {"p15": "15th percentile", "p50": "median", "p85": "85th percentile"}


def _models(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def _chance_line(xref: str = "x", yref: str = "y") -> dict:
    return {"type": "line", "xref": f"{xref} domain", "x0": 0, "x1": 1, "yref": yref, "y0": CHANCE, "y1": CHANCE,
            "line": {"color": GUIDE_COLOR, "width": 1.5, "dash": "dot"}, "layer": "below"}


def _percent_axis(**extra) -> dict:
    return {"range": [0, 1.03], "tickformat": ".0%", **extra}


def _empty(result: ExperimentResult | None, title: str) -> Figure | None:
    if result is None or result.summary.empty:
        return message(title, "Press Run to train the networks of this experiment.")
    return None


# ---- 1. Figure 1 ---------------------------------------------------------------------------------------------------
def _accuracy_over_steps(result, title: str, note: str | None = None) -> Figure:
    """Test accuracy (eval mode) of every model of an experiment against the step, with the chance line."""
    if (empty := _empty(result, title)) is not None:
        return empty
    curves = result.curves
    looks = run_styles(_models(curves))
    traces = []
    for model in _models(curves):
        part = curves[(curves["model"] == model) & np.isfinite(curves["test_acc"])]
        traces.append(line(part["step"].to_numpy(), part["test_acc"].to_numpy(), model, looks[model]["color"],
                           dash=looks[model]["dash"], mode="lines+markers",
                           marker={"size": 6, "symbol": looks[model]["symbol"]},
                           hovertemplate=f"{model}: %{{y:.1%}}<extra></extra>"))
    layout = {"yaxis": _percent_axis(), "shapes": [_chance_line()]}
    return finish(traces, layout, title, "training step", "test accuracy (eval mode)", note=note)


def figure1_accuracy(result: Figure1Result | None) -> Figure:
    """Ioffe & Szegedy's Figure 1 (a): test accuracy against the step, with and without BN."""
    return _accuracy_over_steps(result, "Test accuracy with and without batch norm (Ioffe & Szegedy, Figure 1a)",
                                note="Dotted line: chance (10 classes).")


def figure1_percentiles(result: Figure1Result | None) -> Figure:
    """Ioffe & Szegedy's Figure 1 (b, c), measured as they did, on one typical unit: the 15th/50th/85th percentiles
    (over the training batch) of one sigmoid input of the last hidden layer, BN (left) and no BN (right). Each
    model's typical unit is the one whose drift is the median over its units (`figure1.unit_drifts`)."""
    title = "One typical sigmoid input of the last hidden layer"
    if (empty := _empty(result, title)) is not None:
        return empty
    m = result.summary.set_index("model")
    models = _models(result.unit_curves)
    units = ", ".join(f"{model} unit {m.loc[model, 'typical_unit']}" for model in models)
    drifts = ", ".join(f"{model} {m.loc[model, 'unit_drift_median']:.2f}" for model in models)
    note = ("Typical unit: the one with the median drift<br>(largest move of its median from step 0):<br>"
            f"{units}.<br>Median drift over the {m['units'].iloc[0]} units:<br>{drifts}.")
    return _percentile_panels(result.unit_curves, models, title, note)


def figure1_pooled_percentiles(result: Figure1Result | None) -> Figure:
    """The same percentiles pooled over all units of the last hidden layer and the recorded images (the recorder's
    sample), BN (left) and no BN (right): not the paper's measure, which follows one unit."""
    title = "The last hidden layer's sigmoid inputs, pooled over all units"
    if (empty := _empty(result, title)) is not None:
        return empty
    drift = result.summary.set_index("model")["pooled_median_drift"]
    models = _models(result.curves)
    note = ("Pooled over all units and images. Largest move of the pooled median from step 0: "
            + ", ".join(f"{m} {drift[m]:.2f}" for m in models))
    return _percentile_panels(result.curves, models, title, note)


def _percentile_panels(curves: pd.DataFrame, models: list[str], title: str, note: str) -> Figure:
    """One panel per model: the p15/p50/p85 columns of `curves` against the step, on a shared value axis."""
    colours = run_colors(models)
    layout, refs, _ = subplots(1, len(models), titles=list(models), hspace=0.08, shared_y_rows=True)
    traces = []
    for i, (model, (xref, yref)) in enumerate(zip(models, refs, strict=True)):
        part = curves[curves["model"] == model]
        for q in ("p85", "p50", "p15"):
            traces.append(line(part["step"].to_numpy(), finite(part[q]), PERCENTILE_NAME[q], colours[model],
                               width=3.5 if q == "p50" else 2.2, dash=PERCENTILE_DASH[q], xref=xref, yref=yref,
                               legendgroup=q, showlegend=i == 0,
                               hovertemplate=f"{model} {PERCENTILE_NAME[q]}: %{{y:.3g}}<extra></extra>"))
        layout[f"xaxis{'' if i == 0 else i + 1}"]["title"] = axis_title("training step")
    layout["yaxis"]["title"] = axis_title("value entering the sigmoid")
    return finish(traces, layout, title, subtitles=True, note=note, hovermode="x unified")


# ---- 2. Santurkar et al. -------------------------------------------------------------------------------------------
def santurkar_accuracy(result: SanturkarResult | None) -> Figure:
    """Test accuracy of no BN, BN and noisy BN against the step."""
    return _accuracy_over_steps(result, "Test accuracy: no BN, BN and noisy BN")


def santurkar_drift(result: SanturkarResult | None) -> Figure:
    """Distribution shift of the activation inputs: from step 0 (left) and between recorded steps (right)."""
    title = "How much the layer inputs move (mean over blocks)"
    if (empty := _empty(result, title)) is not None:
        return empty
    curves = result.curves
    looks = run_styles(_models(curves))
    every = result.settings.get("record_every", 1)
    layout, refs, _ = subplots(1, 2, titles=["since step 0", f"since the previous record ({every} steps)"],
                               hspace=0.18)  # room for the right panel's tick labels
    traces = []
    for model in _models(curves):
        part = curves[curves["model"] == model]
        for j, (column, (xref, yref)) in enumerate(zip(("drift", "jump"), refs, strict=True)):
            traces.append(line(part["step"].to_numpy(), finite(part[column]), model, looks[model]["color"],
                               width=2.5, dash=looks[model]["dash"], xref=xref, yref=yref, legendgroup=model,
                               showlegend=j == 0, hovertemplate=f"{model}: %{{y:.3f}}<extra></extra>"))
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = axis_title("training step")
    layout["yaxis"]["title"] = axis_title("W1 distance (step-0 std)")
    return finish(traces, layout, title, subtitles=True, hovermode="x unified",
                  note="1-Wasserstein distance between the distributions of each block's activation input, "
                        "divided by its standard deviation at step 0, averaged over the blocks.")


def santurkar_ics(result: SanturkarResult | None) -> Figure:
    """Santurkar's gradient ICS, mean over blocks 2..n: ||G - G'|| / ||G|| (left) and cos(G, G') (right)."""
    title = "Gradient-based internal covariate shift (Santurkar et al.)"
    if (empty := _empty(result, title)) is not None:
        return empty
    ics = result.ics
    if ics.empty:
        return message(title, "Gradient ICS was not measured.")
    mean = ics.groupby(["model", "step"], sort=False)[["ics_rel", "ics_cos"]].mean().reset_index()
    looks = run_styles(_models(mean))
    layout, refs, _ = subplots(1, 2, titles=["||G − G′|| / ||G|| (0 = no change)", "cos(G, G′) (1 = same direction)"],
                               hspace=0.3)  # room for the right panel's y title and ticks
    traces = []
    for model in _models(mean):
        part = mean[mean["model"] == model]
        for j, (column, (xref, yref)) in enumerate(zip(("ics_rel", "ics_cos"), refs, strict=True)):
            traces.append(line(part["step"].to_numpy(), finite(part[column]), model, looks[model]["color"],
                               width=2.5, dash=looks[model]["dash"], xref=xref, yref=yref, mode="lines+markers",
                               marker={"size": 7, "symbol": looks[model]["symbol"]}, legendgroup=model,
                               showlegend=j == 0, hovertemplate=f"{model}: %{{y:.3f}}<extra></extra>"))
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = axis_title("training step")
    layout["yaxis"]["title"] = axis_title("relative change of the gradient")
    layout["yaxis"]["rangemode"] = "tozero"
    layout["yaxis2"]["title"] = axis_title("cosine similarity")
    return finish(traces, layout, title, subtitles=True, hovermode="x unified",
                  note="G: a layer's weight gradient; G′: the same gradient on the same batch after the earlier "
                        "layers took their update. Mean over blocks 2 and deeper.")


def santurkar_landscape(result: SanturkarResult | None) -> Figure:
    """Santurkar's Figure 4 (a, b): at each checkpoint, the range (band) of the loss (left) and of the gradient
    change (right) over step sizes of 0.5x to 4x the learning rate along the gradient; log scales."""
    title = "How smooth is the loss along the gradient?"
    if (empty := _empty(result, title)) is not None:
        return empty
    frame = result.landscape
    moved = frame[frame["multiple"] > 0]
    if moved.empty:
        return message(title, "No checkpoint was probed: train for longer than probe_every steps.")
    models = [m for m in _models(result.summary) if m in set(moved["model"])]
    looks = run_styles(models)
    layout, refs, _ = subplots(1, 2, titles=["loss at the probed step sizes", "gradient change ||g(w − ηg) − g(w)||"],
                               hspace=0.3)  # room for the right panel's y title and ticks
    traces = []
    for model in models:
        part = moved[moved["model"] == model]
        for j, (column, (xref, yref)) in enumerate(zip(("loss", "grad_change"), refs, strict=True)):
            band = part.groupby("step")[column].agg(["min", "max", "mean"]).reset_index()
            band = band[(band["min"] > 0) & np.isfinite(band["max"])]
            x = band["step"].to_numpy()
            colour = looks[model]["color"]
            traces.append({"type": "scatter", "x": np.concatenate([x, x[::-1]]),
                           "y": np.concatenate([band["min"].to_numpy(), band["max"].to_numpy()[::-1]]),
                           "fill": "toself", "fillcolor": _transparent(colour, 0.25), "mode": "lines",
                           "line": {"color": colour, "width": 1, "dash": looks[model]["dash"]}, "name": model,
                           "legendgroup": model,
                           "showlegend": j == 0, "xaxis": xref, "yaxis": yref, "hoverinfo": "skip"})
            traces.append(line(x, band["mean"].to_numpy(), model, colour, width=2.5, dash=looks[model]["dash"],
                               xref=xref, yref=yref, mode="lines+markers",
                               marker={"size": 6, "symbol": looks[model]["symbol"]}, legendgroup=model,
                               showlegend=False,
                               hovertemplate=f"{model} mean: %{{y:.3g}}<extra></extra>"))
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = axis_title("checkpoint step")  # side by side in half a page: short
    layout["yaxis"].update(title=axis_title("cross-entropy loss (log)"), type="log", exponentformat="power", dtick=1)
    layout["yaxis2"].update(title=axis_title("L2 norm (log)"), type="log", exponentformat="power", dtick=1)
    multiples = result.settings.get("multiples", ())
    sizes = ", ".join(f"{m:g}" for m in multiples)
    return finish(traces, layout, title, subtitles=True, hovermode="closest",
                  note=f"Band: lowest to highest value over steps of {sizes} times the learning rate along the "
                        "gradient, on that step's batch. A narrow, low band means a smooth, predictable landscape.")


def _transparent(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ---- 3 and 4. learning-rate and initialization sweeps --------------------------------------------------------------
def _sweep(result: SweepResult | None, x: str, title: str, x_title: str) -> Figure:
    if (empty := _empty(result, title)) is not None:
        return empty
    frame = result.summary
    looks = run_styles(_models(frame))
    colours = {model: look["color"] for model, look in looks.items()}
    traces = []
    for model in _models(frame):
        part = frame[frame["model"] == model].sort_values(x)
        traces.append(line(part[x].to_numpy(), part["final_acc"].to_numpy(), model, colours[model], width=3,
                           dash=looks[model]["dash"], mode="lines+markers",
                           marker={"size": 12, "symbol": looks[model]["symbol"]},
                           hovertemplate=f"{model}: %{{y:.1%}}<extra></extra>"))
        bad = part[part["diverged"]]
        if len(bad):
            traces.append({"type": "scatter", "mode": "markers+text", "x": bad[x].to_numpy(),
                           "y": bad["final_acc"].to_numpy(), "text": ["diverged"] * len(bad),
                           "textposition": "top center", "textfont": {"size": 15, "color": colours[model]},
                           "marker": {"size": 20, "symbol": "x-open", "color": colours[model], "line": {"width": 3}},
                           "name": f"{model}: diverged", "showlegend": False, "hoverinfo": "skip"})
    layout = {"xaxis": {"type": "log", "tickvals": sorted(set(frame[x])), "ticktext":
                        [f"{v:g}" for v in sorted(set(frame[x]))]},
              "yaxis": _percent_axis(), "shapes": [_chance_line()]}
    steps = result.settings.get("steps")
    note = f"After {steps:,} steps. Dotted line: chance (10 classes). 'diverged': the loss became infinite or NaN."
    return finish(traces, layout, title, x_title, "final test accuracy (eval mode)", hovermode="x unified",
                  note=note)


def lr_sweep_chart(result: SweepResult | None) -> Figure:
    """Final test accuracy against the learning rate (log axis), with and without BN."""
    return _sweep(result, "lr", "Which learning rates still train?", "learning rate (log scale)")


def init_sweep_chart(result: SweepResult | None) -> Figure:
    """Final test accuracy against the initial weight scale s (weights ~ N(0, s²)), with and without BN."""
    return _sweep(result, "init_scale", "Which initial weight scales s still train? (weights ~ N(0, s²))",
                  "initial weight scale s (log scale)")  # the formula in the axis title ran off a phone's chart


# ---- 5. batch size -------------------------------------------------------------------------------------------------
def _batch_axis(sizes) -> dict:
    sizes = sorted(set(int(s) for s in sizes))
    return {"type": "log", "tickvals": sizes, "ticktext": [str(s) for s in sizes], "autorange": "reversed"}


def batch_size_accuracy(result: SweepResult | None) -> Figure:
    """Our small Wu & He: eval-mode test accuracy per normalization against the batch size (solid), and BN's
    train-mode accuracy (dashed). The batch axis runs from large to small, as in Wu & He's Figure 1."""
    title = "Small MLP: accuracy by batch size"
    if (empty := _empty(result, title)) is not None:
        return empty
    frame = result.summary
    looks = run_styles(_models(frame))  # eval mode solid; train mode dashed, with open markers
    colours = {model: look["color"] for model, look in looks.items()}
    traces = []
    for model in _models(frame):
        part = frame[frame["model"] == model].sort_values("batch_size")
        traces.append(line(part["batch_size"].to_numpy(), part["eval_acc"].to_numpy(), f"{model} (eval mode)",
                           colours[model], width=3, mode="lines+markers",
                           marker={"size": 11, "symbol": looks[model]["symbol"]},
                           hovertemplate=f"{model} eval mode: %{{y:.1%}}<extra></extra>"))
        if part["norm"].iloc[0] in ("batch", "batch-noisy"):
            traces.append(line(part["batch_size"].to_numpy(), part["train_mode_acc"].to_numpy(),
                               f"{model} (train mode)", colours[model], width=2.5, dash="dash", mode="lines+markers",
                               marker={"size": 9, "symbol": f"{looks[model]['symbol']}-open"},
                               hovertemplate=f"{model} train mode: %{{y:.1%}}<extra></extra>"))
    layout = {"xaxis": _batch_axis(frame["batch_size"]), "yaxis": _percent_axis(), "shapes": [_chance_line()]}
    epochs = result.settings.get("epochs")
    note = (f"Dotted line: chance (10 classes). 3 x 64 ReLU MLP on 8x8 digits (BN over the B values of each unit, "
            f"not Wu & He's B x H x W). Every run: {epochs:g} epochs, learning rate ∝ batch size. Eval mode: BN uses "
            "its running statistics; train mode: each test batch is normalized with its own statistics (GN, LN: the "
            "same either way).")
    return finish(traces, layout, title, "images per batch (log)", "test accuracy",
                  hovermode="x unified", note=note, height=540)


def batch_size_gap(result: SweepResult | None) -> Figure:
    """BN's train-mode minus eval-mode test accuracy per batch size (bars)."""
    title = "BN's train/eval gap: one network, scored two ways"
    if (empty := _empty(result, title)) is not None:
        return empty
    frame = result.summary
    bn = frame[frame["norm"].isin(["batch", "batch-noisy"])].sort_values("batch_size", ascending=False)
    if bn.empty:
        return message(title, "This sweep has no BN runs.")
    colour = run_colors(["BN"])["BN"]
    sizes = [str(b) for b in bn["batch_size"]]
    gap = bn["gap"].to_numpy() * 100
    trace = {"type": "bar", "x": sizes, "y": gap, "name": "BN", "marker": {"color": colour}, "showlegend": False,
             "text": [f"{g:+.0f}" for g in gap], "textposition": "outside", "textfont": {"size": 16},
             "hovertemplate": "batch %{x}: %{y:+.1f} points<extra></extra>"}
    lo, hi = min(gap.min(), 0.0), max(gap.max(), 0.0)
    pad = max(hi - lo, 5.0) * 0.2
    layout = {"xaxis": {"type": "category"}, "yaxis": {"range": [lo - pad, hi + pad], "zeroline": True,
                                                       "zerolinecolor": GUIDE_COLOR, "zerolinewidth": 2}}
    return finish([trace], layout, title, "images per batch", "train − eval (percentage points)",
                  hovermode="closest", note="Below zero: normalizing each test batch with its own statistics (train "
                                             "mode) scores worse than the running averages (eval mode).")


def wu_he_published() -> Figure:
    """Wu & He (2018): ResNet-50 on ImageNet, top-1 error by images per GPU, BN vs GN (published numbers)."""
    title = "Published: Wu & He (2018), ResNet-50 on ImageNet"
    colours = run_colors(["BN", "GN"])
    traces = []
    bn, gn = WU_HE_TABLE["BN top-1 error (%)"].to_numpy(), WU_HE_TABLE["GN top-1 error (%)"].to_numpy()
    for values, other, model in ((bn, gn, "BN"), (gn, bn, "GN")):
        traces.append(line(WU_HE_TABLE["batch_size"].to_numpy(), values, model, colours[model], width=3,
                           mode="lines+markers+text",
                           marker={"size": 11, "symbol": run_styles(["BN", "GN"])[model]["symbol"]},
                           text=[f"{v:.1f}" for v in values],  # each label on the side away from the other line
                           textposition=["top center" if v >= o else "bottom center"
                                           for v, o in zip(values, other, strict=True)],
                           textfont={"size": 14, "color": colours[model]},
                           hovertemplate=f"{model}: %{{y:.1f}}%<extra></extra>"))
    layout = {"xaxis": _batch_axis(WU_HE_TABLE["batch_size"]), "yaxis": {"range": [20, 37]}}
    return finish(traces, layout, title, "images per GPU (log)", "top-1 error (%)",
                  hovermode="x unified", note="Lower is better. ImageNet validation error as published by Wu & He "
                                               "(2018) for ResNet-50, batch size per GPU.")
