"""Figures of how training goes: loss and test accuracy, and Santurkar et al.'s gradient measure of ICS."""

from __future__ import annotations

import numpy as np

from ..engine.history import ICS_STATS
from .run_facts import as_runs, run_config, with_data
from .style import (
    Figure,
    axis_title,
    block_dash,
    even_rows,
    finish,
    finite,
    line,
    markers,
    message,
    positive,
    run_styles,
    sparse,
    subplots,
)


def loss_accuracy(runs) -> Figure:
    """Training loss (left) and test accuracy (right) against the step, one colour, dash and marker per run."""
    runs = as_runs(runs)
    title = "Training loss and test accuracy"
    live = with_data(runs)
    if not live:
        return message(title)
    looks = run_styles(label for label, _ in runs)
    layout, refs, _ = subplots(1, 2, titles=["training loss (one mini-batch per step)",
                                              "test accuracy (eval mode)"], hspace=0.1)
    (x1, y1), (x2, y2) = refs
    traces = []
    for label, h in live:
        idx = even_rows(len(h))
        look = looks[label]
        traces.append(line(h.steps[idx], finite(h.scalar("loss")[idx]), label, look["color"], width=2.5,
                           dash=look["dash"], xref=x1, yref=y1, legendgroup=label,
                           hovertemplate=f"{label} loss %{{y:.3f}}<extra></extra>"))
        x, y = sparse(h.steps, h.scalar("test_acc"))
        traces.append(line(x, y, label, look["color"], dash=look["dash"], xref=x2, yref=y2,
                           **markers(look["symbol"], every_point=True), legendgroup=label, showlegend=False,
                           hovertemplate=f"{label} accuracy %{{y:.1%}}<extra></extra>"))
    layout["xaxis"]["title"] = layout["xaxis2"]["title"] = axis_title("training step")
    layout["yaxis"]["title"] = axis_title("cross-entropy loss")
    layout["yaxis2"].update(title=axis_title("test accuracy"), range=[0, 1.02], tickformat=".0%")
    return finish(traces, layout, title, subtitles=True)


def ics_measure(runs) -> Figure:
    """Santurkar et al.'s gradient ICS per block: ||G - G'|| (left, log scale) and cos(G, G') (right), where G' is
    the weight gradient recomputed on the same batch after the earlier blocks took their update."""
    runs = as_runs(runs)
    title = "Gradient-based internal covariate shift (Santurkar et al. 2018)"
    live = with_data(runs)
    if not live:
        return message(title)
    looks = run_styles(label for label, _ in runs)
    layout, refs, _ = subplots(1, 2, titles=["||G − G′|| (change of the gradient)",
                                              "cos(G, G′) (1 = same direction)"], hspace=0.1)
    traces, unmeasured = [], []
    for label, h in live:
        ics = h.column("ics")
        measured = np.isfinite(ics).any(axis=(0, 2))  # (blocks,)
        if not measured.any():
            every = run_config(h).get("ics_every")
            unmeasured.append(label if every else f"{label} (ics_every = 0)")
            continue
        for layer in np.flatnonzero(measured):
            name = f"{label}: {h.layout.layers[layer]}"
            for j, (stat, (xref, yref)) in enumerate(zip(ICS_STATS, refs, strict=True)):
                x, y = sparse(h.steps, ics[:, layer, j])
                # colour and marker: the run's; dash: the block's
                traces.append(line(x, positive(y) if stat == "ics_l2" else y, name, looks[label]["color"],
                                   width=2.5, dash=block_dash(layer), xref=xref, yref=yref,
                                   **markers(looks[label]["symbol"], every_point=True),
                                   legendgroup=name, showlegend=j == 0,
                                   hovertemplate=f"{name}: %{{y:.3g}}<extra></extra>"))
    if not traces:
        return message(title, "Gradient ICS was not measured in this run: set ics_every > 0<br>"
                               "(each measurement costs one extra forward and backward pass per block).")
    layout["xaxis"]["title"] = layout["xaxis2"]["title"] = axis_title("training step")
    layout["yaxis"].update(title=axis_title("L2 norm (log scale)"), type="log", exponentformat="power")
    layout["yaxis2"].update(title=axis_title("cosine similarity"))
    note = "not measured: " + ", ".join(unmeasured) if unmeasured else None
    return finish(traces, layout, title, subtitles=True, hovermode="closest", note=note)
