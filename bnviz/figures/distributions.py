"""Figures of how a block's values are distributed over training: heatmaps, histograms, percentiles, drift, saturation.

Heatmaps show every recorded histogram as a column (`bnviz.figures.density`) with the exact 15th/50th/85th
percentiles on top; `distribution_grid` compares runs block by block; `drift` reduces each block's distribution
change to one number per step (1-Wasserstein distance in step-0 standard deviations).
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import stats
from ..engine.history import History
from ..engine.shift import relative_drift
from . import raster
from .density import DENSITY_MARGIN_PX, density_coloraxis, density_colorbar_trace, density_image, density_top
from .run_facts import (
    ACT_INPUT,
    as_runs,
    layer_index,
    missing_stage_text,
    probe_of,
    resolve_stage,
    row_count,
    stage_label,
    with_data,
)
from .style import (
    AXIS_TITLE_SIZE,
    MARKERS,
    MAX_POINTS,
    MUTED_TEXT,
    OKABE_ITO,
    PALETTE,
    WAITING,
    Figure,
    annotation,
    axis_key,
    axis_title,
    block_line,
    even_rows,
    finish,
    finite,
    finite_range,
    line,
    markers,
    message,
    padded,
    run_colors,
    run_styles,
    subplots,
)

OUTSIDE_WARNING = 0.05  # share of values beyond the fixed histogram range above which drift is flagged
# The recorder's thresholds, for axis labels (defaults in case the recorder is refactored and renames them).
TANH_SATURATED = stats.TANH_SATURATED
SIGMOID_SATURATED = stats.SIGMOID_SATURATED
GRID_ROW_PX, GRID_FRAME_PX = 200, 140  # distribution_grid: px per block, plus title, legend, run names, x axis
GRID_X_TICKS = 4  # step ticks per grid column, none near its right end (raster.step_axis): "400" ran into the next "0"
# The percentile lines over a heatmap: an amber with 3:1 against both ends of the density scale (3.46:1 on white,
# 4.58:1 on its darkest navy; Okabe-Ito's orange had 2.25:1 on white), and not a run colour
PERCENTILE_COLOR = "#D46F00"


def _cell_rows(history: History, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows every cell of one run draws: the heatmap's columns (rows and their steps on the grid, see
    raster.uniform_columns) and the percentile lines' rows and steps; the same for each of the run's blocks."""
    rows, grid = raster.uniform_columns(history.steps, max_points)
    idx = even_rows(len(history), max_points)
    return rows, grid, idx, history.steps[idx]


def _distribution_cell(history: History, k: int, xref: str, yref: str, *, split: bool, showlegend: bool,
                       max_points: int = MAX_POINTS, frame: tuple | None = None) -> tuple[list[dict], dict]:
    """Probe k's histograms over steps (a raster image, see figures.raster) plus its 15/50/85th percentile lines.

    split=True: one trace per percentile (legend "15th/50th/85th percentile"); False: the three joined into one
    trace with NaN gaps (grids). frame: `_cell_rows(history, max_points)` when the caller draws several cells of
    the run. Returns the traces and facts for the layout: "edges" (lo, hi), "yrange", "zmax", and "z" / "xspan" for
    `density_image` once the colour scale's top is known.
    """
    rows, grid, idx, x = frame if frame is not None else _cell_rows(history, max_points)
    z = np.ascontiguousarray(history.column("act_hist")[rows, k, :].T)  # (bins, columns)
    edges = history.hist_edges[k].astype(np.float64)
    pct = {name: finite(history.act(name)[idx, k]) for name in ("p15", "p50", "p85")}
    traces = []
    if split:
        styles = {"p15": ("15th percentile", "dash", 2.5), "p50": ("50th percentile", "solid", 3.5),
                  "p85": ("85th percentile", "dot", 3)}
        for name, (label, dash, width) in styles.items():
            traces.append(line(x, pct[name], label, PERCENTILE_COLOR, width=width, dash=dash, xref=xref, yref=yref,
                               showlegend=showlegend, hovertemplate=f"{label}: %{{y:.3g}}<extra></extra>"))
    else:
        gap = np.array([np.nan])
        xs = np.concatenate([x, gap, x, gap, x])
        ys = np.concatenate([pct["p15"], gap, pct["p50"], gap, pct["p85"]])
        traces.append(line(xs, ys, "15th / 50th / 85th percentiles", PERCENTILE_COLOR, width=2.5, xref=xref,
                           yref=yref, legendgroup="percentiles", showlegend=showlegend,
                           hovertemplate="step %{x}<br>percentile: %{y:.3g}<extra></extra>"))
    span = finite_range(edges, pct["p15"], pct["p50"], pct["p85"]) or (-1.0, 1.0)
    return traces, {"edges": (float(edges[0]), float(edges[-1])), "yrange": span, "zmax": density_top(z),
                    "extended": span[0] < edges[0] or span[1] > edges[-1], "z": z,
                    "xspan": raster.column_span(grid)}


def _edge_lines(edges: tuple[float, float], xref: str, yref: str) -> list[dict]:
    """Dotted lines at the fixed histogram range: outside them the heatmap is blank, the percentiles are not."""
    return [{"type": "line", "xref": f"{xref} domain", "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
             "line": {"color": "#777777", "width": 1.5, "dash": "dot"}, "layer": "above"} for y in edges]


def distribution_heatmap(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT,
                         title: str | None = None, *, max_points: int = MAX_POINTS) -> Figure:
    """The "colorful dimension": one column per step, the histogram of the block's values coloured by the
    fraction of values per bin, with the exact 15th/50th/85th percentiles drawn on top.

    layer: block index (negative counts from the last) or name; stage: "pre", "norm", "act" or ACT_INPUT (the
    input of the activation); max_points: columns at most (a 64 x 600 heatmap is ~200 kB of JSON).
    """
    if not row_count(history):
        return message(title or "Distribution over training")
    layer = layer_index(history, layer)
    stage = resolve_stage(history, layer, stage)
    title = title or f"{history.layout.layers[layer]}: distribution of the {stage_label(history, layer, stage)}"
    k = history.probe_index(layer, stage)
    if k is None:
        return message(title, missing_stage_text(history, layer, stage))
    traces, facts = _distribution_cell(history, k, "x", "y", split=True, showlegend=True, max_points=max_points)
    note = None
    if facts["extended"]:
        note = ("dotted grey lines: the fixed histogram range (set at step 0); beyond it the heatmap is blank and "
                "the orange percentiles are exact")
    traces.append(density_colorbar_trace("x", "y"))
    layout = {"coloraxis": density_coloraxis(facts["zmax"]), "shapes": _edge_lines(facts["edges"], "x", "y"),
              "images": [density_image(facts, facts["zmax"], "x", "y")],
              "xaxis": {**raster.step_axis(facts["xspan"]), "showgrid": False},
              "yaxis": {"range": padded(*facts["yrange"]), "showgrid": False}}
    return finish(traces, layout, title, "training step", "activation value", hovermode="closest", note=note,
                  right=DENSITY_MARGIN_PX)


def distribution_grid(runs, stage: str = ACT_INPUT, *, max_points: int = MAX_POINTS) -> Figure:
    """Heatmaps side by side: one row per block, one column per run, shared axes per row, so the runs' value
    distributions compare at a glance (one colour scale for all cells).

    Each cell is one heatmap plus one trace joining the three percentile lines. The figure's JSON grows with
    cells x max_points (2 runs x 3 blocks x 600 columns: ~1.5 MB); a live page may pass a smaller max_points.
    """
    runs = as_runs(runs)
    live = with_data(runs)
    some = live[0][1] if live else next((h for _, h in runs if h is not None), None)
    what = "activation input" if stage == ACT_INPUT else stage_label(some, 0, stage) if some else stage
    title = f"Distribution of each block's {what}, run by run"
    if not live:
        return message(title)
    n_blocks = max(len(h.layout.layers) for _, h in live)
    cols = len(runs)
    colours = run_colors(label for label, _ in runs)
    layout, refs, domains = subplots(n_blocks, cols, hspace=0.05, vspace=0.05 if n_blocks > 1 else 0.0,
                                     shared_x=True, shared_y_rows=True)
    traces, shapes, notes, cells = [], [], layout["annotations"], []
    zmax, row_ranges, x_span = 0.0, [None] * n_blocks, None
    first_legend, escaped = True, []
    for c, (label, h) in enumerate(runs):
        x_dom = domains[c][0]
        frame = _cell_rows(h, max_points) if row_count(h) else None
        notes.append({"text": f"<b>{label}</b>", "x": (x_dom[0] + x_dom[1]) / 2, "y": 1, "xref": "paper",
                      "yref": "paper", "xanchor": "center", "yanchor": "bottom", "yshift": 4, "showarrow": False,
                      "font": {"size": AXIS_TITLE_SIZE + 2, "color": colours[label]}})
        for r in range(n_blocks):
            xref, yref = refs[r * cols + c]
            if not row_count(h) or r >= len(h.layout.layers):
                text = WAITING if not row_count(h) else "no such block"
                notes.append(annotation(text, 0.5, 0.5, xref=f"{xref} domain", yref=f"{yref} domain",
                                        xanchor="center", yanchor="middle", color=MUTED_TEXT))
                continue
            k = h.probe_index(r, resolve_stage(h, r, stage))
            if k is None:
                notes.append(annotation(missing_stage_text(h, r, resolve_stage(h, r, stage)), 0.5, 0.5, size=14,
                                        xref=f"{xref} domain", yref=f"{yref} domain", xanchor="center",
                                        yanchor="middle", color=MUTED_TEXT))
                continue
            cell, facts = _distribution_cell(h, k, xref, yref, split=False, showlegend=first_legend,
                                             max_points=max_points, frame=frame)
            first_legend = False
            traces += cell
            cells.append((facts, xref, yref))
            shapes += _edge_lines(facts["edges"], xref, yref)
            if facts["extended"] and label not in escaped:
                escaped.append(label)
            zmax = max(zmax, facts["zmax"])
            lo, hi = facts["xspan"]
            x_span = (lo, hi) if x_span is None else (min(x_span[0], lo), max(x_span[1], hi))
            lo, hi = facts["yrange"]
            old = row_ranges[r]
            row_ranges[r] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    names = [next((h.layout.layers[r] for _, h in live if r < len(h.layout.layers)), f"block{r + 1}")
             for r in range(n_blocks)]
    _grid_axes(layout, refs, names, row_ranges, x_span)
    zmax = zmax or 1.0
    images = [density_image(facts, zmax, xref, yref) for facts, xref, yref in cells]
    if cells:
        traces.append(density_colorbar_trace(*cells[0][1:]))
    layout.update(coloraxis=density_coloraxis(zmax), shapes=shapes, images=images)
    return finish(traces, layout, title, height=GRID_FRAME_PX + GRID_ROW_PX * n_blocks, subtitles=True,
                  hovermode="closest", note=_grid_note(escaped), right=DENSITY_MARGIN_PX)


WARM_UP_BLOCKS, WARM_UP_RUNS = 3, 2  # Home's grid: the default CNN's three blocks, BN and no BN


def distribution_grid_warm_up() -> Figure:
    """A distribution grid of made-up values, drawn unseen before a page's first live chart (`bnviz.ui.plot`).

    Plotly's first draw of a kind of figure runs much of plotly.js for the first time (the browser compiles it
    then); a second figure of the same shape draws in about a third of the time. This figure has every part of
    `distribution_grid` (2 runs x 3 blocks of density images, percentile lines, edge lines, the colour bar, run
    names, block titles, the legend and the note) on a few numbers, so the real grid's first draw is that second one.
    """
    layout, refs, _ = subplots(WARM_UP_BLOCKS, WARM_UP_RUNS, hspace=0.05, vspace=0.05, shared_x=True,
                               shared_y_rows=True)
    steps = np.arange(4.0)
    z = np.linspace(0.0, 1.0, 16).reshape(4, 4)
    traces, shapes, images = [], [], []
    for i, (xref, yref) in enumerate(refs):
        gap = np.array([np.nan])
        traces.append(line(np.concatenate([steps, gap, steps]), np.concatenate([steps - 1, gap, steps + 1]),
                           "15th / 50th / 85th percentiles", PERCENTILE_COLOR, width=2.5, xref=xref, yref=yref,
                           legendgroup="percentiles", showlegend=i == 0,
                           hovertemplate="step %{x}<br>percentile: %{y:.3g}<extra></extra>"))
        shapes += _edge_lines((-2.0, 2.0), xref, yref)
        images.append(density_image({"z": z, "xspan": (-0.5, 3.5), "edges": (-2.0, 2.0)}, 1.0, xref, yref))
    for c in range(WARM_UP_RUNS):
        layout["annotations"].append({"text": f"<b>run {c + 1}</b>", "x": (c + 0.5) / WARM_UP_RUNS, "y": 1,
                                      "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                      "yshift": 4, "showarrow": False, "font": {"size": AXIS_TITLE_SIZE + 2}})
    _grid_axes(layout, refs, [f"block{r + 1}" for r in range(WARM_UP_BLOCKS)], [(-2.0, 2.0)] * WARM_UP_BLOCKS,
               (-0.5, 3.5))
    traces.append(density_colorbar_trace(*refs[0]))
    layout.update(coloraxis=density_coloraxis(1.0), shapes=shapes, images=images)
    return finish(traces, layout, "warm-up", height=GRID_FRAME_PX + GRID_ROW_PX * WARM_UP_BLOCKS, subtitles=True,
                  hovermode="closest", note=_grid_note([]), right=DENSITY_MARGIN_PX)


def _grid_note(escaped: list[str]) -> str:
    """What the dotted lines are, and which runs' values left the fixed range (blank heatmap beyond them)."""
    note = "Dotted grey lines: each block's fixed histogram range, set at step 0."
    if escaped:
        note += (f" Values of {' and '.join(escaped)} left it: the heatmap is blank out there, the orange "
                 "percentile lines still show where the values are.")
    return note


def _grid_axes(layout: dict, refs: list[tuple[str, str]], names: list[str],
               row_ranges: list[tuple[float, float] | None], x_span: tuple[float, float] | None) -> None:
    """The axes of a distribution grid: each row titled with its block's name and spanning its values, the step
    under the bottom row, one step range for every cell, no grid lines over the images."""
    n_blocks = len(row_ranges)
    cols = len(refs) // n_blocks
    for r in range(n_blocks):
        y_axis = layout[axis_key(refs[r * cols][1])]
        y_axis["title"] = axis_title(f"{names[r]}<br>value")
        if row_ranges[r] is not None:
            y_axis["range"] = padded(*row_ranges[r])
    if cols == 1:
        layout[axis_key(refs[-1][0])]["title"] = axis_title("training step")
    else:  # one title under all columns: side by side, each column's own ran into its neighbour's on a phone
        layout["annotations"].append({"text": "training step (every column)", "x": 0.5, "y": 0, "xref": "paper",
                                      "yref": "paper", "xanchor": "center", "yanchor": "top", "yshift": -30,
                                      "showarrow": False, "font": {"size": AXIS_TITLE_SIZE}})
    for ref in refs:
        layout[axis_key(ref[0])]["showgrid"] = layout[axis_key(ref[1])]["showgrid"] = False
        layout[axis_key(ref[0])]["nticks"] = GRID_X_TICKS
        if x_span is not None:
            layout[axis_key(ref[0])].update(raster.step_axis(x_span, GRID_X_TICKS))


def histogram_now_vs_start_span(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT) -> dict:
    """{"x": the fixed bins' range, "y": (0, largest fraction)} of `histogram_now_vs_start` at its steps."""
    k = probe_of(history, layer, stage)
    if k is None:
        return {}
    edges = history.hist_edges[k].astype(np.float64)
    hist = history.column("act_hist")[[0, len(history) - 1], k, :]
    return {"x": (float(edges[0]), float(edges[-1])), "y": finite_range(hist, [0.0])}


def histogram_now_vs_start(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT, *,
                           scale: dict | None = None) -> Figure:
    """The latest histogram (bars) over the step-0 histogram (black outline), on the same fixed bins.
    scale: {"x": (lo, hi), "y": (0, top)} to draw the axes over (else this run's bins and fractions)."""
    if not row_count(history):
        return message("Histogram now vs at step 0")
    layer = layer_index(history, layer)
    stage = resolve_stage(history, layer, stage)
    first, last = 0, len(history) - 1
    step0, step_now = int(history.steps[first]), int(history.steps[last])
    title = f"{history.layout.layers[layer]}: {stage_label(history, layer, stage)}, now vs step {step0:,}"
    k = history.probe_index(layer, stage)
    if k is None:
        return message(title, missing_stage_text(history, layer, stage))
    hist = history.column("act_hist")[:, k, :]
    edges = history.hist_edges[k].astype(np.float64)
    start = finite(hist[first])
    traces = [
        {"type": "bar", "x": (edges[:-1] + edges[1:]) / 2, "y": finite(hist[last]), "width": np.diff(edges),
         "name": f"step {step_now:,}", "marker": {"color": PALETTE["periwinkle"], "line": {"width": 0}},
         "hovertemplate": "value %{x:.3g}<br>fraction %{y:.3f}<extra></extra>"},
        line(edges, np.append(start, start[-1]), f"step {step0:,}", OKABE_ITO["black"], width=2.5, shape="hv",
             hoverinfo="skip"),
    ]
    below, above = history.act("frac_below")[:, k], history.act("frac_above")[:, k]

    def pct(v: float) -> str:
        return "n/a" if not math.isfinite(v) else f"{v:.1%}"

    note = (f"outside the fixed range {edges[0]:.3g} to {edges[-1]:.3g}: "
            f"step {step_now:,}: {pct(float(below[last]))} below, {pct(float(above[last]))} above; "
            f"step {step0:,}: {pct(float(below[first]))} below, {pct(float(above[first]))} above")
    scale = scale or {}
    layout = {"bargap": 0, "xaxis": {"range": list(scale.get("x", (edges[0], edges[-1])))}}
    if "y" in scale:
        layout["yaxis"] = {"range": [0.0, scale["y"][1] * 1.05 or 1.0]}
    return finish(traces, layout, title, "activation value", "fraction of values", hovermode="closest", note=note)


def percentile_lines(runs, layer: int | str = -1, stage: str = ACT_INPUT) -> Figure:
    """Ioffe & Szegedy's Figure 1 (b, c): the 15th, 50th and 85th percentiles of a block's values over
    training, one colour and marker per run (median solid, 15th and 85th dashed)."""
    runs = as_runs(runs)
    live = with_data(runs)
    what = "activation input" if stage == ACT_INPUT else stage
    if not live:
        return message(f"15th, 50th and 85th percentiles of the {what}")
    looks = run_styles(label for label, _ in runs)
    traces, missing = [], []
    block = None
    for label, h in live:
        li = layer_index(h, layer)
        block = block or h.layout.layers[li]
        st = resolve_stage(h, li, stage)
        k = h.probe_index(li, st)
        if k is None:
            missing.append(f"{label}: {missing_stage_text(h, li, st)}")
            continue
        idx = even_rows(len(h))
        x = h.steps[idx]
        gap = np.array([np.nan])
        colour, symbol = looks[label]["color"], looks[label]["symbol"]  # dashes tell the percentiles apart
        traces.append(line(np.concatenate([x, gap, x]),
                           np.concatenate([finite(h.act("p15")[idx, k]), gap, finite(h.act("p85")[idx, k])]),
                           f"{label}: 15th & 85th", colour, width=2, dash="dash", legendgroup=label,
                           **(markers(f"{symbol}-open") if len(live) > 1 else {}),
                           hovertemplate=f"{label} 15th/85th: %{{y:.3g}}<extra></extra>"))
        traces.append(line(x, finite(h.act("p50")[idx, k]), f"{label}: median", colour, width=3.5,
                           legendgroup=label, **(markers(symbol) if len(live) > 1 else {}),
                           hovertemplate=f"{label} median: %{{y:.3g}}<extra></extra>"))
    title = f"{block}: 15th, 50th and 85th percentiles of the {what}"
    if not traces:
        return message(title, "<br>".join(missing))
    note = "<br>".join(m.replace("<br>", " ") for m in missing) or None
    return finish(traces, {}, title, "training step", "activation value", hovermode="closest", note=note)


def saturation(history: History | None) -> Figure:
    """Per block, the share of activation outputs that are saturated (tanh, sigmoid) or exactly zero (ReLU)."""
    if not row_count(history):
        return message("Saturated or inactive units")
    layout = history.layout
    acts = [(layer, k) for k, (layer, stage) in enumerate(layout.probes) if stage == "act"]
    kinds = {layout.act_kinds[k] for _, k in acts}
    if kinds == {"relu"}:
        stat, title = "frac_dead", "ReLU outputs that are exactly 0 (inactive or dead units)"
        y_title = "fraction of outputs = 0"
    elif kinds == {"tanh"}:
        stat, title = "frac_saturated", f"Saturated tanh outputs (|y| > {TANH_SATURATED:g})"
        y_title = "fraction saturated"
    elif kinds == {"sigmoid"}:
        stat = "frac_saturated"
        title = f"Saturated sigmoid outputs (y < {SIGMOID_SATURATED:g} or y > {1 - SIGMOID_SATURATED:g})"
        y_title = "fraction saturated"
    else:
        stat, title, y_title = None, "Saturated or inactive units", "fraction saturated or = 0"
    if not acts or not kinds & {"relu", "tanh", "sigmoid"}:
        return message(title, "The activations of this run are of an unknown kind:<br>no saturation measure.")
    idx = even_rows(len(history))
    x = history.steps[idx]
    traces = []
    for layer, k in acts:
        column = stat or ("frac_dead" if layout.act_kinds[k] == "relu" else "frac_saturated")
        traces.append(block_line(x, finite(history.act(column)[idx, k]), layout.layers[layer], layer,
                                 hovertemplate="%{y:.1%}"))
    return finish(traces, {"yaxis": {"range": [0, 1.02], "tickformat": ".0%"}}, title, "training step", y_title)


DRIFT_AGAINST = {"first": "since step 0", "previous": "since the previous record"}


def _drift_values(history: History, reference: str, stages: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The rows `drift` draws and the relative W1 drift there, (rows, probes), NaN for probes not drawn."""
    if reference not in DRIFT_AGAINST:
        raise ValueError(f"reference={reference!r} is not allowed: use 'first' or 'previous'")
    idx = even_rows(len(history))
    w1 = np.full((len(idx), len(history.layout.probes)), np.nan)
    probes = sorted({k for layer in range(len(history.layout.layers)) for st in stages
                     if (k := history.probe_index(layer, resolve_stage(history, layer, st))) is not None})
    if probes:
        w1[:, probes] = relative_drift(history, reference, idx, probes)
    return idx, w1


def drift_span(history: History | None, reference: str = "first", stage: str | tuple[str, ...] = ACT_INPUT
               ) -> dict:
    """{"y": (0, largest drift)} that `drift` draws (for a scale shared by runs)."""
    if not row_count(history):
        return {}
    _, w1 = _drift_values(history, reference, (stage,) if isinstance(stage, str) else tuple(stage))
    return {"y": finite_range(w1, [0.0])}


def drift(history: History | None, reference: str = "first", stage: str | tuple[str, ...] = ACT_INPUT, *,
          scale: dict | None = None) -> Figure:
    """How far each block's value distribution has moved: the 1-Wasserstein distance to step 0 (reference
    "first") or to the previous record ("previous"), in units of that block's step-0 standard deviation.
    scale: {"y": (0, top)} to draw the y axis over (else this run's own range)."""
    if reference not in DRIFT_AGAINST:
        raise ValueError(f"reference={reference!r} is not allowed: use 'first' or 'previous'")
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    what = "activation input" if stages == (ACT_INPUT,) else ", ".join(stages)
    title = f"Distribution drift of each block's {what} {DRIFT_AGAINST[reference]}"
    if not row_count(history):
        return message(title)
    idx, w1 = _drift_values(history, reference, stages)
    outside = history.act("frac_below")[-1] + history.act("frac_above")[-1]  # (probes,) at the latest row
    x = history.steps[idx]
    traces, escaped = [], []
    for layer, name in enumerate(history.layout.layers):
        for j, st in enumerate(stages):
            st = resolve_stage(history, layer, st)
            k = history.probe_index(layer, st)
            if k is None:
                continue
            label = name if len(stages) == 1 else f"{name} {st}"
            if outside[k] > OUTSIDE_WARNING:
                escaped.append(f"{label} ({outside[k]:.0%})")
            # colour and dash: the block's; a second stage also has markers
            traces.append(block_line(x, finite(w1[:, k]), label, layer, symbol=MARKERS[j] if j else None,
                                     hovertemplate="%{y:.3g}"))
    if not traces:
        return message(title, missing_stage_text(history, 0, stages[0]))
    note = None
    if escaped:  # W1 counts values beyond the bins at the nearest edge: past it the curve flattens
        note = ("outside the fixed histogram range now: " + ", ".join(escaped)
                + "; their drift is larger than shown (a lower bound)")
    layout = {"yaxis": {"range": [0.0, scale["y"][1] * 1.05 or 1.0]}} if scale and "y" in scale else {}
    return finish(traces, layout, title, "training step", "W1 distance / step-0 std", note=note)
