"""Figures of the "Beyond the basics" lessons: pure functions, a lesson's result -> Plotly figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .style import (
    GUIDE_COLOR,
    HEIGHT,
    RUN_PALETTE,
    Figure,
    axis_title,
    finish,
    line,
    message,
    run_colors,
    subplots,
)

DEPTH_TITLE = "Gradient reaching the first layer vs the last, at initialization"


def depth_gradient_chart(frame: pd.DataFrame | None, init: str = "") -> Figure:
    """log-scale ratio ||dL/dW_first|| / ||dL/dW_last|| against depth, one line per model (science.depth_gradients);
    a dotted guide at 1 (equal gradients)."""
    if frame is None or frame.empty:
        return message(DEPTH_TITLE, "Press the button to measure the networks.")
    models = list(dict.fromkeys(frame["model"]))
    colours = run_colors(models)
    traces = []
    for model in models:
        part = frame[frame["model"] == model].sort_values("depth")
        traces.append(line(part["depth"].to_numpy(), part["ratio"].to_numpy(), model, colours[model],
                           mode="lines+markers", marker={"size": 10, "symbol": "circle" if model == "BN" else "x"},
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
        traces.append(line(steps, np.where(move > 0, move, np.nan), variant, colours[variant], dash=dash,
                           xref=x1, yref=y1, legendgroup=variant))
        loss = part["loss"].rolling(LOSS_SMOOTHING, min_periods=1).mean().to_numpy()
        traces.append(line(steps, loss, variant, colours[variant], dash=dash, xref=x2, yref=y2,
                           legendgroup=variant, showlegend=False))
    layout["yaxis"].update(type="log", exponentformat="power", title=axis_title("distance"))
    layout["yaxis2"]["title"] = axis_title("loss")
    layout["xaxis2"]["title"] = axis_title("training step")
    return finish(traces, layout, BIAS_TITLE, height=2 * HEIGHT - 100, subtitles=True)


JACOBIAN_TITLE = "How each output depends on each input of the batch (one channel)"


def jacobian_heatmaps(train: np.ndarray, evaluation: np.ndarray) -> Figure:
    """dy_i/dx_j of batch norm in training and in eval mode side by side, on one colour scale centred at 0."""
    layout, refs, _ = subplots(1, 2, titles=["training mode (batch statistics)", "eval mode (running statistics)"],
                               hspace=0.12, shared_x=False)
    limit = float(max(np.abs(train).max(), np.abs(evaluation).max()))
    labels = [f"x{j + 1}" for j in range(train.shape[1])]
    outputs = [f"y{i + 1}" for i in range(train.shape[0])]
    traces = []
    for (xref, yref), matrix, show_scale in ((refs[0], train, False), (refs[1], evaluation, True)):
        traces.append({"type": "heatmap", "z": matrix, "x": labels, "y": outputs, "xaxis": xref, "yaxis": yref,
                       "zmin": -limit, "zmax": limit, "colorscale": "RdBu", "reversescale": True,
                       "texttemplate": "%{z:.2f}", "showscale": show_scale,
                       "colorbar": {"title": {"text": "∂y_i/∂x_j"}},
                       "hovertemplate": "∂%{y}/∂%{x} = %{z:.3f}<extra></extra>"})
    for axis in ("yaxis", "yaxis2"):
        layout[axis]["autorange"] = "reversed"
    return finish(traces, layout, JACOBIAN_TITLE, height=HEIGHT, subtitles=True, hovermode="closest")
