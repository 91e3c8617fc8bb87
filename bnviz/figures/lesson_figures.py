"""Figures of the "Beyond the basics" lessons: pure functions, a lesson's result -> Plotly figure."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from .style import (
    DASHES,
    GUIDE_COLOR,
    HEIGHT,
    MARKERS,
    RUN_PALETTE,
    Figure,
    axis_title,
    finish,
    line,
    message,
    run_styles,
    subplots,
)

DEPTH_TITLE = "Gradient reaching the first layer vs the last, at initialization"


def depth_gradient_chart(frame: pd.DataFrame | None, init: str = "") -> Figure:
    """log-scale ratio ||dL/dW_first|| / ||dL/dW_last|| against depth, one line per model (science.depth_gradients);
    a dotted guide at 1 (equal gradients)."""
    if frame is None or frame.empty:
        return message(DEPTH_TITLE, "Press the button to measure the networks.")
    models = list(dict.fromkeys(frame["model"]))
    looks = run_styles(models)
    traces = []
    for model in models:
        part = frame[frame["model"] == model].sort_values("depth")
        traces.append(line(part["depth"].to_numpy(), part["ratio"].to_numpy(), model, looks[model]["color"],
                           dash=looks[model]["dash"], mode="lines+markers",
                           marker={"size": 10, "symbol": looks[model]["symbol"]},
                           hovertemplate=f"{model}, depth %{{x}}: %{{y:.3g}}<extra></extra>"))
    layout = {"yaxis": {"type": "log", "exponentformat": "power"},
              "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1,
                          "line": {"dash": "dot", "color": GUIDE_COLOR, "width": 2}}]}
    note = (f"Dotted line: equal gradients (ratio 1). Weights: {init or 'see the settings'}. Geometric mean over "
            "the seeds.")
    return finish(traces, layout, DEPTH_TITLE, "hidden layers (depth)", "first / last layer gradient norm",
                  note=note)


BIAS_TITLE = "The first layer's bias, and the training loss"
LOSS_SMOOTHING = 20  # steps in the running mean of the loss: one mini-batch's loss is noisy
LEGEND_LINE_CHARS = 28  # a legend entry longer than this is wrapped: ~330 px at 18 px fits a 390 px phone's chart


def bias_chart(result) -> Figure:
    """Two rows against the step (science.bn_backprop.bias_experiment): how far the first layer's bias moved from
    its start (log scale) and the training loss (running mean), one colour per variant."""
    if result is None:
        return message(BIAS_TITLE, "Press the button to train the three networks.")
    curves = result.curves
    variants = list(dict.fromkeys(curves["variant"]))
    colours = dict(zip(variants, RUN_PALETTE, strict=False))  # three variants, seven colours
    layout, refs, _ = subplots(2, 1, titles=["distance of the bias from its start (log scale)",
                                             f"training loss (mean of the last {LOSS_SMOOTHING} steps)"],
                               vspace=0.16)
    (x1, y1), (x2, y2) = refs
    traces = []
    for variant, dash in zip(variants, ("solid", "dash", "dot"), strict=False):
        part = curves[curves["variant"] == variant]
        steps = part["step"].to_numpy()
        move = part["bias_move"].to_numpy()
        label = "<br>".join(textwrap.wrap(variant, LEGEND_LINE_CHARS))  # the third name ran off a phone's chart
        traces.append(line(steps, np.where(move > 0, move, np.nan), label, colours[variant], dash=dash,
                           xref=x1, yref=y1, legendgroup=variant))
        loss = part["loss"].rolling(LOSS_SMOOTHING, min_periods=1).mean().to_numpy()
        traces.append(line(steps, loss, label, colours[variant], dash=dash, xref=x2, yref=y2,
                           legendgroup=variant, showlegend=False))
    layout["yaxis"].update(type="log", exponentformat="power", title=axis_title("distance"))
    layout["yaxis2"]["title"] = axis_title("loss")
    layout["xaxis2"]["title"] = axis_title("training step")
    return finish(traces, layout, BIAS_TITLE, height=2 * HEIGHT - 100, subtitles=True)


MAX_WRITTEN_CELLS = 8  # rows or columns up to which a heatmap writes its values in the cells
JACOBIAN_TITLE = "How each output depends on each input of the batch (one channel)"
CORRELATION_TITLE = "Correlation between the channels of the first BN layer"


def paired_heatmaps(left: np.ndarray, right: np.ndarray, titles: tuple[str, str], title: str, cell: str,
                    row: str, column: str) -> Figure:
    """Two matrices side by side on one colour scale centred at 0 (blue positive, red negative), values written
    in the cells; `cell` names a value in the colour bar and hover, `row`/`column` prefix the tick labels."""
    layout, refs, _ = subplots(1, 2, titles=list(titles), hspace=0.12, shared_x=False)
    limit = float(max(np.abs(left).max(), np.abs(right).max())) or 1.0
    xs = [f"{column}{j + 1}" for j in range(left.shape[1])]
    ys = [f"{row}{i + 1}" for i in range(left.shape[0])]
    written = max(left.shape) <= MAX_WRITTEN_CELLS  # larger matrices: the numbers would not fit their cells
    traces = []
    for (xref, yref), matrix, show_scale in ((refs[0], left, False), (refs[1], right, True)):
        traces.append({"type": "heatmap", "z": matrix, "x": xs, "y": ys, "xaxis": xref, "yaxis": yref,
                       "zmin": -limit, "zmax": limit, "colorscale": "RdBu", "reversescale": True,
                       "texttemplate": "%{z:.2f}" if written else "", "showscale": show_scale,
                       "colorbar": {"title": {"text": cell}},
                       "hovertemplate": f"{cell} %{{y}}, %{{x}}: %{{z:.3f}}<extra></extra>"})
    for axis in ("yaxis", "yaxis2"):
        layout[axis]["autorange"] = "reversed"
    return finish(traces, layout, title, height=HEIGHT, subtitles=True, hovermode="closest")


def jacobian_heatmaps(train: np.ndarray, evaluation: np.ndarray) -> Figure:
    """dy_i/dx_j of batch norm in training and in eval mode side by side, on one colour scale centred at 0."""
    return paired_heatmaps(train, evaluation, ("training mode (batch statistics)", "eval mode (running statistics)"),
                           JACOBIAN_TITLE, "∂y_i/∂x_j", "y", "x")


def correlation_heatmaps(before: np.ndarray, after: np.ndarray) -> Figure:
    """The channels' correlation matrix before and after BN (science.running_statistics.channel_correlation)."""
    return paired_heatmaps(before, after, ("input of BN", "output of BN"), CORRELATION_TITLE, "correlation",
                           "ch", "ch")


EMA_TITLE = "One channel's batch mean and its running estimates"


def ema_chart(batch_means: np.ndarray, estimates: dict[float, np.ndarray], reference: np.ndarray) -> Figure:
    """The batch mean of one channel at every step (grey dots), the channel's current mean estimated without lag
    (black dashes) and the running mean for each momentum (science.running_statistics)."""
    steps = np.arange(len(batch_means))
    traces = [{"type": "scatter", "mode": "markers", "x": steps, "y": batch_means, "name": "batch mean",
               "marker": {"size": 5, "color": "#888888"}}]
    traces.append(line(steps, reference, "current mean (±25 steps)", GUIDE_COLOR, width=2, dash="dash"))
    dashes = [d for d in DASHES if d != "dash"]  # "dash" is the reference's
    for i, (momentum, values) in enumerate(estimates.items()):  # a colour and a dash each
        traces.append(line(steps, values, f"running mean, momentum {momentum:g}", RUN_PALETTE[i % len(RUN_PALETTE)],
                           width=2.5, dash=dashes[i % len(dashes)]))
    return finish(traces, {}, EMA_TITLE, "training step", "mean of the channel's input")


WEIGHT_NORM_TITLE = "Weights before BN: their norm and their effective learning rate"


def weight_norm_chart(result, block: int) -> Figure:
    """Three rows against the step for one conv block (science.weight_decay.weight_decay_lesson), one colour per
    run: ||W||, the effective learning rate lr/||W||² (log scale) and the measured std(ΔW)/std(W) (log scale)."""
    if result is None:
        return message(WEIGHT_NORM_TITLE, "Press the button to train the two networks.")
    curves = result.curves[result.curves["block"] == block]
    runs = list(dict.fromkeys(curves["run"]))
    colours = dict(zip(runs, RUN_PALETTE, strict=False))
    layout, refs, _ = subplots(3, 1, titles=[f"||W|| of block {block}'s conv weights",
                                             "effective learning rate lr / ||W||² (log scale)",
                                             "measured update std(ΔW) / std(W) (log scale)"], vspace=0.1)
    traces = []
    for run, dash in zip(runs, ("solid", "dash"), strict=False):
        part = curves[curves["run"] == run]
        steps = part["step"].to_numpy()
        for i, (column, (xref, yref)) in enumerate(zip(("w_norm", "effective_lr", "update_ratio"), refs,
                                                       strict=True)):
            traces.append(line(steps, part[column].to_numpy(), run, colours[run], dash=dash, xref=xref, yref=yref,
                               legendgroup=run, showlegend=i == 0))
    layout["yaxis"]["title"] = axis_title("||W||")
    # "D2": between decades label only 2 and 5 (these axes span about one decade: all digits would crowd)
    layout["yaxis2"].update(type="log", exponentformat="power", dtick="D2", title=axis_title("lr/||W||²"))
    layout["yaxis3"].update(type="log", exponentformat="power", dtick="D2", title=axis_title("ratio"))
    layout["xaxis3"]["title"] = axis_title("training step")
    return finish(traces, layout, WEIGHT_NORM_TITLE, height=3 * HEIGHT - 200, subtitles=True)


SMALL_BATCH_TITLE = "Small batches: test accuracy with equal images seen"


def small_batch_chart(summary: pd.DataFrame | None) -> Figure:
    """Test accuracy against the batch size, one colour per variant (science.small_batches): eval mode solid, train
    mode (each test batch normalized by its own statistics) dotted."""
    if summary is None or summary.empty:
        return message(SMALL_BATCH_TITLE, "Press the button to train the networks.")
    variants = list(dict.fromkeys(summary["variant"]))
    colours = dict(zip(variants, RUN_PALETTE, strict=False))
    traces = []
    for variant in variants:
        part = summary[summary["variant"] == variant].sort_values("batch_size")
        x = part["batch_size"].to_numpy()
        symbol = MARKERS[variants.index(variant) % len(MARKERS)]  # a marker symbol each (filled: eval mode)
        traces.append(line(x, part["eval_acc"].to_numpy(), variant, colours[variant],
                           mode="lines+markers", marker={"size": 10, "symbol": symbol}, legendgroup=variant,
                           hovertemplate=f"{variant}, batch %{{x}}, eval mode: %{{y:.1%}}<extra></extra>"))
        traces.append(line(x, part["train_mode_acc"].to_numpy(), f"{variant}, train mode", colours[variant],
                           dash="dot", width=2, mode="lines+markers", marker={"size": 8, "symbol": f"{symbol}-open"},
                           legendgroup=variant, showlegend=False,  # one legend entry per variant: the note says
                           # which line is which mode (eight entries squeezed the plot on a phone)
                           hovertemplate=f"{variant}, batch %{{x}}, train mode: %{{y:.1%}}<extra></extra>"))
    layout = {"xaxis": {"type": "log", "tickvals": sorted(set(summary["batch_size"])), "dtick": None},
              "yaxis": {"tickformat": ".0%", "range": [0, 1.02]}}
    return finish(traces, layout, SMALL_BATCH_TITLE, "batch size (images per step)", "test accuracy",
                  height=HEIGHT + 60,
                  note="Solid: eval mode (running statistics). Dotted: train mode, each test batch of the training "
                       "batch size normalized with its own statistics.")
