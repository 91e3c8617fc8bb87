"""Figures of the normalization layers: learned gamma and beta, batch vs running statistics, train vs eval mode."""

from __future__ import annotations

import numpy as np

from ..engine.history import CHANNEL_STATS, History
from .run_facts import as_runs, layer_index, no_norm_text, norm_name, row_count, with_data
from .style import (
    MUTED_TEXT,
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
    run_styles,
    sparse,
    subplots,
)


def _norm_slice(history: History, layer: int) -> tuple[slice, str] | None:
    for (owner, kind, _), sl in zip(history.layout.norm_layers, history.layout.channel_slices(), strict=True):
        if owner == layer:
            return sl, kind
    return None


GAMMA_BETA_MID = {"gamma": 1.0, "beta": 0.0}  # their initial values: the middle (white) of the colour scale


def _channel_values(history: History | None, layer: int | str) -> tuple[slice, np.ndarray] | None:
    """The layer's norm channels and their recorded statistics (rows, channels, stats), or None without a norm."""
    if not row_count(history) or not history.layout.norm_layers:
        return None
    found = _norm_slice(history, layer_index(history, layer))
    return None if found is None else (found[0], history.column("channels")[:, found[0], :])


def gamma_beta_span(history: History | None, layer: int | str = 0) -> dict:
    """{"gamma": (lo, hi), "beta": (lo, hi)} of `gamma_beta` (for colour scales shared by runs)."""
    found = _channel_values(history, layer)
    if found is None:
        return {}
    return {stat: finite_range(found[1][:, :, CHANNEL_STATS.index(stat)], [mid])
            for stat, mid in GAMMA_BETA_MID.items()}


def gamma_beta(history: History | None, layer: int | str = 0, *, scale: dict | None = None) -> Figure:
    """The normalization layer's learned scale gamma (top) and shift beta (bottom) per channel over training.
    scale: {"gamma": (lo, hi), "beta": (lo, hi)}: each colour scale spans them, centred on the initial value."""
    height = 560
    if not row_count(history):
        return message("gamma and beta per channel", height=height)
    layer = layer_index(history, layer)
    name = history.layout.layers[layer]
    if not history.layout.norm_layers:
        return message(f"{name}: gamma and beta per channel", no_norm_text(history, "gamma or beta"), height)
    title = f"{name}: {norm_name(history)} scale gamma and shift beta per channel"
    found = _norm_slice(history, layer)
    if found is None:
        return message(title, f"{name} has no normalization layer.", height)
    sl, _ = found
    idx = even_rows(len(history))
    x = history.steps[idx]
    channels = history.column("channels")[idx, sl, :]
    channel_ids = np.arange(1, sl.stop - sl.start + 1)
    layout, refs, domains = subplots(2, 1, titles=["gamma (scale, starts at 1)", "beta (shift, starts at 0)"],
                                     vspace=0.14)
    traces = []
    for (xref, yref), (_, y_dom), (stat, mid) in zip(refs, domains, GAMMA_BETA_MID.items(), strict=True):
        z = np.ascontiguousarray(channels[:, :, CHANNEL_STATS.index(stat)].T)  # (channels, columns)
        lo, hi = (scale or {}).get(stat) or finite_range(z, [mid])
        reach = max(mid - lo, hi - mid) or 1e-3  # symmetric: white is the initial value in every run's panel
        traces.append({"type": "heatmap", "x": x, "y": channel_ids, "z": z, "xaxis": xref, "yaxis": yref,
                       "zmin": mid - reach, "zmax": mid + reach, "colorscale": "RdBu_r", "hoverongaps": False,
                       "showlegend": False, "name": stat,
                       "colorbar": {"title": {"text": stat, "font": {"size": 15}}, "len": y_dom[1] - y_dom[0],
                                    "y": (y_dom[0] + y_dom[1]) / 2, "yanchor": "middle", "thickness": 18,
                                    "tickfont": {"size": 14}},
                       "hovertemplate": f"step %{{x}}<br>channel %{{y}}<br>{stat} %{{z:.3f}}<extra></extra>"})
        layout[axis_key(yref)]["title"] = axis_title("channel")
    layout[axis_key(refs[-1][0])]["title"] = axis_title("training step")
    return finish(traces, layout, title, height=height, subtitles=True, hovermode="closest")


def running_vs_batch_span(history: History | None, layer: int | str = 0, stat: str = "mean", channels: int = 4
                          ) -> dict:
    """{"y": (lo, hi)} of the batch and running statistics `running_vs_batch` draws (for a shared scale)."""
    found = _channel_values(history, layer)
    if found is None:
        return {}
    shown = found[1][:, :channels]
    return {"y": finite_range(shown[:, :, CHANNEL_STATS.index(f"batch_{stat}")],
                              shown[:, :, CHANNEL_STATS.index(f"running_{stat}")])}


def running_vs_batch(history: History | None, layer: int | str = 0, stat: str = "mean", channels: int = 4, *,
                     scale: dict | None = None) -> Figure:
    """For the first few channels: this batch's statistic (thin, noisy) and the running estimate used in eval
    mode (thick) of a batch-norm layer's input. scale: {"y": (lo, hi)} to draw the y axis over."""
    if stat not in ("mean", "var"):
        raise ValueError(f"stat={stat!r} is not allowed: use 'mean' or 'var'")
    word = {"mean": "mean", "var": "variance"}[stat]
    if not row_count(history):
        return message(f"Batch {word} vs running {word}")
    layer = layer_index(history, layer)
    name = history.layout.layers[layer]
    if not history.layout.norm_layers:
        return message(f"{name}: batch {word} vs running {word}", no_norm_text(history, "running statistic"))
    title = f"{name}: batch {word} (thin) vs running {word} (thick) of the {norm_name(history)} input"
    found = _norm_slice(history, layer)
    if found is None:
        return message(title, f"{name} has no normalization layer.")
    sl, _ = found
    idx = even_rows(len(history))
    x = history.steps[idx]
    values = history.column("channels")[idx, sl, :]
    batch = values[:, :, CHANNEL_STATS.index(f"batch_{stat}")]
    running = values[:, :, CHANNEL_STATS.index(f"running_{stat}")]
    if not np.isfinite(running).any():
        return message(title, f"This {norm_name(history)} keeps no running statistics: it normalizes with<br>"
                               "the statistics of each sample, the same in training and evaluation.")
    traces = []
    for c in range(min(channels, sl.stop - sl.start)):  # channels take the blocks' colours and dashes
        group = f"channel {c + 1}"
        traces.append(block_line(x, finite(batch[:, c]), f"{group} batch", c, width=1.2, legendgroup=group,
                                 showlegend=False, opacity=0.6,
                                 hovertemplate=f"{group} batch %{{y:.3g}}<extra></extra>"))
        traces.append(block_line(x, finite(running[:, c]), group, c, width=4, legendgroup=group,
                                 hovertemplate=f"{group} running %{{y:.3g}}<extra></extra>"))
    y_title = {"mean": "mean of the input", "var": "variance of the input"}[stat]
    layout = {"yaxis": {"range": padded(*scale["y"])}} if scale and scale.get("y") else {}
    return finish(traces, layout, title, "training step", y_title, hovermode="closest")


def train_eval_gap(runs) -> Figure:
    """Test accuracy in eval mode (running statistics, solid) and in train mode (each test batch normalized with
    its own statistics, dashed), one colour and marker symbol per run (filled in eval mode, open in train mode)."""
    runs = as_runs(runs)
    title = "Test accuracy: eval mode vs train mode"
    live = with_data(runs)
    if not live:
        return message(title)
    looks = run_styles(label for label, _ in runs)
    traces = []
    for label, h in live:
        look = looks[label]
        for column, mode, dash in (("test_acc", "eval mode", "solid"), ("test_acc_train_mode", "train mode", "dash")):
            x, y = sparse(h.steps, h.scalar(column))
            symbol = look["symbol"] if dash == "solid" else f"{look['symbol']}-open"
            traces.append(line(x, y, f"{label}: {mode}", look["color"], dash=dash,
                               **markers(symbol, 8, every_point=True), legendgroup=label, hovertemplate="%{y:.1%}"))
    layout = {"yaxis": {"range": [0, 1.02], "tickformat": ".0%"}}
    if not any(len(t["x"]) for t in traces):
        layout["annotations"] = [annotation("no evaluation yet", 0.5, 0.5, size=20, xanchor="center", yanchor="middle",
                                            color=MUTED_TEXT)]
    return finish(traces, layout, title, "training step", "test accuracy")
