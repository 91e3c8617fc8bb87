"""Figures of the gradients: their size per block, their spread over orders of magnitude, and updates vs weights."""

from __future__ import annotations

import math

import numpy as np

from ..engine.history import GRAD_STATS, WEIGHT_STATS, History
from . import raster
from .density import DENSITY_MARGIN_PX, density_coloraxis, density_colorbar_trace, density_image, density_top
from .run_facts import ACT_INPUT, layer_index, missing_stage_text, probe_of, resolve_stage, row_count, stage_label
from .style import (
    GUIDE_COLOR,
    GUIDE_DASH,
    MAX_POINTS,
    Figure,
    block_line,
    even_rows,
    finish,
    finite,
    finite_range,
    line,
    log_axis,
    markers,
    message,
    positive,
)

HEALTHY_UPDATE_RATIO = 1e-3  # Karpathy's rule of thumb for update:data (std of the update / std of the weight)


def _norm_probes(history: History, stage: str) -> list[tuple[int, int]]:
    """(layer, probe) of each block's `stage` that the history recorded."""
    found = [(layer, history.probe_index(layer, resolve_stage(history, layer, stage)))
             for layer in range(len(history.layout.layers))]
    return [(layer, k) for layer, k in found if k is not None]


def gradient_norms_span(history: History | None, stage: str = ACT_INPUT) -> dict:
    """{"y": (smallest, largest) positive gradient norm} that `gradient_norms` draws (for a scale shared by runs)."""
    if not row_count(history):
        return {}
    norms = history.column("grad_stats")[:, :, GRAD_STATS.index("grad_norm")]
    return {"y": finite_range(*(positive(norms[:, k]) for _, k in _norm_probes(history, stage)), [np.nan])}


def gradient_norms(history: History | None, stage: str = ACT_INPUT, *, scale: dict | None = None) -> Figure:
    """L2 norm of the loss gradient with respect to each block's activation input, per step (log scale).

    scale: {"y": (lo, hi)} to draw the y axis over (`shared_scales.side_by_side` gives runs one scale)."""
    title = "Gradient size at each block (w.r.t. the activation input)"
    if not row_count(history):
        return message(title)
    idx = even_rows(len(history))
    x = history.steps[idx]
    norms = history.column("grad_stats")[:, :, GRAD_STATS.index("grad_norm")]
    traces = [block_line(x, positive(norms[idx, k]), history.layout.layers[layer], layer, hovertemplate="%{y:.3g}")
              for layer, k in _norm_probes(history, stage)]
    if not traces:
        return message(title, missing_stage_text(history, 0, stage))
    layout = {"yaxis": log_axis((scale or {}).get("y"))}
    return finish(traces, layout, title, "training step", "L2 norm of the gradient (log scale)")


def gradient_histogram_span(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT, *,
                            max_points: int = MAX_POINTS) -> dict:
    """{"z": (0, colour-scale top)} of `gradient_histogram` (for a colour scale shared by runs)."""
    k = probe_of(history, layer, stage)
    if k is None:
        return {}
    rows, _ = raster.uniform_columns(history.steps, max_points)
    return {"z": (0.0, density_top(history.column("grad_hist")[rows, k, :].T))}


def gradient_histogram(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT, *,
                       max_points: int = MAX_POINTS, scale: dict | None = None) -> Figure:
    """Heatmap of log10 |gradient| per step for one block and stage: decades on the y axis, colour = fraction;
    scale: {"z": (0, top)} for the colour scale (else this run's own top)."""
    if not row_count(history):
        return message("Gradient magnitudes over training")
    layer = layer_index(history, layer)
    stage = resolve_stage(history, layer, stage)
    title = f"{history.layout.layers[layer]}: gradient magnitudes at the {stage_label(history, layer, stage)}"
    k = history.probe_index(layer, stage)
    if k is None:
        return message(title, missing_stage_text(history, layer, stage))
    rows, grid = raster.uniform_columns(history.steps, max_points)
    z = np.ascontiguousarray(history.column("grad_hist")[rows, k, :].T)
    edges = history.grad_edges.astype(np.float64)
    zero = finite(history.column("grad_stats")[rows, k, GRAD_STATS.index("grad_frac_zero")])
    facts = {"z": z, "xspan": raster.column_span(grid), "edges": (float(edges[0]), float(edges[-1]))}
    zmax = (scale or {}).get("z", (0.0, density_top(z)))[1]
    note = None
    if np.isfinite(zero[-1]) and zero[-1] > 0:
        note = f"exact zeros, not in the histogram: {zero[-1]:.0%} of values at step {int(history.steps[rows[-1]]):,}"
    layout = {"coloraxis": density_coloraxis(zmax), "images": [density_image(facts, zmax, "x", "y")],
              "xaxis": {**raster.step_axis(facts["xspan"]), "showgrid": False},
              "yaxis": {"range": [edges[0], edges[-1]], "dtick": 2, "showgrid": False}}
    return finish([density_colorbar_trace("x", "y")], layout, title, "training step", "log10 |gradient|",
                  hovermode="closest", note=note, right=DENSITY_MARGIN_PX)


def update_ratios_span(history: History | None, which: str = "update_data") -> dict:
    """{"y": (smallest, largest) positive ratio} that `update_ratios` draws, with its 1e-3 guide for updates."""
    if not row_count(history):
        return {}
    ratios = positive(history.column("weight_stats")[:, :, WEIGHT_STATS.index(which)])
    guide = [HEALTHY_UPDATE_RATIO] if which == "update_data" else []
    return {"y": finite_range(ratios, guide)}


def update_ratios(history: History | None, which: str = "update_data", *, scale: dict | None = None) -> Figure:
    """Per weight, std(update) / std(weight) ("update_data") or std(gradient) / std(weight) ("grad_data"), log
    scale; for updates a dashed guide marks Karpathy's rule of thumb of about 1e-3. scale: {"y": (lo, hi)}."""
    titles = {"update_data": ("Update size relative to the weights", "std(update) / std(weight) (log scale)"),
              "grad_data": ("Gradient size relative to the weights", "std(gradient) / std(weight) (log scale)")}
    if which not in titles:
        raise ValueError(f"which={which!r} is not allowed: use 'update_data' or 'grad_data'")
    title, y_title = titles[which]
    if not row_count(history):
        return message(title)
    idx = even_rows(len(history))
    x = history.steps[idx]
    ratios = history.column("weight_stats")[:, :, WEIGHT_STATS.index(which)]
    layers = history.layout.layers
    traces = []
    for w, name in enumerate(history.layout.weights):
        owner = name.removesuffix(".weight")  # a block ("block1") or a watched module path ("layer1.0.conv1")
        block = owner in layers
        if block:  # a block's colour and dash; another weight (the head, a watched module): grey dots and rings
            traces.append(block_line(x, positive(ratios[idx, w]), owner, layers.index(owner), width=2.5,
                                     hovertemplate="%{y:.2g}"))
        else:
            traces.append(line(x, positive(ratios[idx, w]), owner, GUIDE_COLOR, width=2, dash="dot",
                               **markers("circle-open"), hovertemplate="%{y:.2g}"))
    layout = {"yaxis": log_axis((scale or {}).get("y"))}
    if which == "update_data" and len(x):
        label = "≈1e-3: healthy update size (Karpathy)"  # on the line, not in the legend: too long for one row
        traces.append(line([x[0], x[-1]], [HEALTHY_UPDATE_RATIO] * 2, label, GUIDE_COLOR, width=2, dash=GUIDE_DASH,
                           hoverinfo="skip", showlegend=False))
        layout["annotations"] = [{"text": label, "x": 0.01, "xref": "x domain", "xanchor": "left",
                                  "y": math.log10(HEALTHY_UPDATE_RATIO), "yref": "y", "yanchor": "top",
                                  "showarrow": False, "font": {"size": 15, "color": GUIDE_COLOR},
                                  "bgcolor": "rgba(255,255,255,0.8)"}]
    return finish(traces, layout, title, "training step", y_title)
