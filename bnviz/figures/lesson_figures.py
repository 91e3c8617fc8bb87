"""Figures of the "Beyond the basics" lessons: pure functions, a lesson's result -> Plotly figure."""

from __future__ import annotations

import pandas as pd

from .style import GUIDE_COLOR, Figure, finish, line, message, run_colors

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
