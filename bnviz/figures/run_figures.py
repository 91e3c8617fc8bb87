"""Plotly figures of a training run's `History`: pure functions, no Streamlit.

Every builder takes a `History` (or runs to compare: a list of `(label, History)`, a dict, or one History) and
returns a `go.Figure` that is

* light: a handful of traces (heatmaps, or several curves joined into one trace with NaN gaps) and at most
  `MAX_POINTS` columns, picked as evenly spaced rows of the history (the first and the last are always kept), so a
  page can rebuild it twice a second;
* readable on a projector: one shared style (`_finish`: 16 px text, 22 px titles, `plotly_white`), axis titles with
  their units, colour-blind-safe Okabe-Ito colours, and the same colour for a run label in every figure;
* robust: an empty history (or None) gives a figure that says "waiting for the first step...", NaN values are gaps,
  and a figure about normalization layers of a run that has none says so instead of failing.

Pages draw them with `bnviz.ui.page.show` (or `st.plotly_chart(fig, theme=None)`: Streamlit's theme would replace
this styling). Live pages build them inside `plain_figures()`, which returns the same figures as plain dicts.
`CAPTIONS` holds the one-paragraph reading guide of each kind of figure (`caption(key)` finds the one for a key of
`figure_catalog`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import textwrap
import threading
from collections.abc import Iterable, Mapping

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.utils import convert_to_base64  # plotly's own step from numpy arrays to typed-array JSON

from ..engine import stats as _stats
from ..engine.history import CHANNEL_STATS, GRAD_STATS, ICS_STATS, WEIGHT_STATS, History
from ..engine.shift import relative_drift
from . import raster as _raster

MAX_POINTS = 600  # columns / points per trace: enough for a 1,200 px wide chart, cheap to rebuild at 2 Hz
WAITING = "waiting for the first step..."
ACT_INPUT = "act_input"  # stage alias: whatever feeds the activation (the norm output with BN before it, else pre)
OUTSIDE_WARNING = 0.05  # share of values beyond the fixed histogram range above which drift is flagged
HEALTHY_UPDATE_RATIO = 1e-3  # Karpathy's rule of thumb for update:data (std of the update / std of the weight)
# The recorder's thresholds, for axis labels (defaults in case the recorder is refactored and renames them).
TANH_SATURATED = _stats.TANH_SATURATED
SIGMOID_SATURATED = _stats.SIGMOID_SATURATED

# ---- style ---------------------------------------------------------------------------------------------------
OKABE_ITO = {  # Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
_C = OKABE_ITO
# A run's colour follows its label, so "BN" is blue and "no BN" vermillion in every figure of every page.
RUN_COLORS = {
    "bn": _C["blue"], "with bn": _C["blue"], "batch": _C["blue"], "batch norm": _C["blue"],
    "no bn": _C["vermillion"], "without bn": _C["vermillion"], "none": _C["vermillion"], "no norm": _C["vermillion"],
    "noisy bn": _C["green"], "batch-noisy": _C["green"],
    "ln": _C["purple"], "layer": _C["purple"], "layer norm": _C["purple"],
    "gn": _C["orange"], "group": _C["orange"], "group norm": _C["orange"],
    "in": _C["sky"], "instance": _C["sky"], "instance norm": _C["sky"],
}
RUN_PALETTE = (_C["blue"], _C["vermillion"], _C["green"], _C["purple"], _C["orange"], _C["sky"], _C["black"])
# Blocks (and channels) in depth order; yellow is left out: too pale on white for a projector.
BLOCK_PALETTE = (_C["blue"], _C["orange"], _C["green"], _C["purple"], _C["vermillion"], _C["sky"], _C["black"],
                 "#888888")
GUIDE_COLOR = "#444444"
FONT = {"family": "Arial, Helvetica, sans-serif", "size": 16, "color": "#222222"}
TITLE_SIZE = 22
AXIS_TITLE_SIZE = 18
HEIGHT = 460  # px of a single chart; grids grow with their rows
_TITLE_PX, _LEGEND_PX, _LEGEND_ROW_PX, _SUBTITLE_PX = 14, 50, 30, 30  # top-margin layout, in pixels
_NOTE_LINE_PX = 20  # bottom margin per line of a note under the x axis
# Characters per line of such a note: ~425 px at 15 px in DejaVu Sans (Linux's stand-in for Arial, the widest we
# have seen: 8.5 px a character), so a note fits under a chart in one of two page columns (~450 px of plot width).
_NOTE_CHARS = 50
_MESSAGE_CHARS = 40  # characters per line of a centred message at 20 px (~440 px): fits a chart in a page column
_TITLE_CHAR_EM = 0.52  # average width of a title character (Arial), in font sizes
_LEGEND_ROW_WIDTH = 580  # px of legend per row we plan for (a chart in Streamlit's centred layout is ~700 px)
TEMPLATE = pio.templates["plotly_white"]


def _sqrt_colorscale(name: str, stops: int = 13) -> list[list]:
    """`name`'s colours placed so that colour varies with sqrt(z): z itself stays the true value (for hover and
    the colorbar's ticks) while small fractions still get visibly different colours."""
    t = np.linspace(0.0, 1.0, stops)
    colours = pcolors.sample_colorscale(name, list(t))
    scale = [[float(p), c] for p, c in zip(t**2, colours)]
    scale[0][1] = "rgb(255,255,255)"  # an empty bin is white, like the background
    return scale


DENSITY_SCALE = _sqrt_colorscale("YlGnBu")  # fraction of values per bin (white = none, dark blue = most)
DENSITY_TABLE = _raster.colour_table(DENSITY_SCALE)  # the same scale as 256 RGB colours, for raster images
DENSITY_COLORBAR_TITLE = "fraction<br>of values<br>(√ scale)"
DENSITY_TOP_QUANTILE = 0.99  # colour-scale top, as a quantile of the heatmap's cells (see _zmax)
DOMINANT_BIN = 3.0  # a bin holding this many times more than any other is left out of the colour scale
PERCENTILE_COLOR = _C["orange"]  # visible over white and navy, and not the colour of a run (no BN is vermillion)


# ---- small public helpers ----------------------------------------------------------------------------------------
def even_rows(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most `limit` evenly spaced rows out of `n`, always including the first and the last."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(limit, 2)).round().astype(np.int64))


def run_colors(labels: Iterable[str]) -> dict[str, str]:
    """A colour per run label: known labels ("BN", "no BN", ...) get theirs (`RUN_COLORS`), others the next free
    colour of `RUN_PALETTE`; the same list of labels gives the same colours in every figure."""
    labels = list(labels)
    out: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        colour = RUN_COLORS.get(str(label).strip().lower())
        if colour and colour not in used:
            out[label], used = colour, used | {colour}
    free = [c for c in RUN_PALETTE if c not in used]
    for i, label in enumerate(labels):
        if label not in out:
            out[label] = free.pop(0) if free else RUN_PALETTE[i % len(RUN_PALETTE)]
    return out


def block_color(layer: int) -> str:
    return BLOCK_PALETTE[layer % len(BLOCK_PALETTE)]


def activation_input_stage(history: History, layer: int) -> str:
    """The stage whose values enter the block's activation: "norm" if the block is normalized before the
    activation (the config in `history.meta` says placement "before"), else "pre" (the conv/linear output).
    A run of `bnviz.watch` names the stage for each layer in `history.meta["watch"]["act_input"]`."""
    stage = _watched(history, "act_input", layer)
    if stage and history.probe_index(layer, stage) is not None:
        return stage
    placement = (history.meta.get("config") or {}).get("placement")
    if placement == "before" and history.probe_index(layer, "norm") is not None:
        return "norm"
    return "pre"


def caption(key: str) -> str:
    """The caption for a figure key of `figure_catalog` ("distribution_block1_pre" -> CAPTIONS["distribution"])."""
    matches = [k for k in CAPTIONS if key == k or key.startswith(k + "_")]
    return CAPTIONS[max(matches, key=len)] if matches else ""


# ---- internals: data ---------------------------------------------------------------------------------------------
def _as_runs(runs) -> list[tuple[str, History | None]]:
    if runs is None:
        return []
    if isinstance(runs, History):
        return [("run", runs)]
    if isinstance(runs, Mapping):
        return [(str(k), v) for k, v in runs.items()]
    return [(str(label), h) for label, h in runs]


def _rows(history: History | None) -> int:
    return 0 if history is None else len(history)


def _finite(values: np.ndarray) -> np.ndarray:
    """float array with every non-finite value as NaN (a gap in plotly; inf would break the axis range)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _positive(values: np.ndarray) -> np.ndarray:
    """For log axes: zeros and negatives become gaps."""
    values = _finite(values)
    return np.where(values > 0, values, np.nan)


def _sparse(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the rows where `values` is finite (evaluated or measured steps), thinned to MAX_POINTS."""
    values = _finite(values)
    keep = np.flatnonzero(np.isfinite(values))
    keep = keep[even_rows(len(keep))]
    return steps[keep], values[keep]


def _layer_index(history: History, layer: int | str) -> int:
    names = history.layout.layers
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"layer={layer!r} is unknown: this run has {', '.join(names)}")
        return names.index(layer)
    if not -len(names) <= layer < len(names):
        raise ValueError(f"layer={layer} is out of range: this run has {len(names)} blocks (0 to {len(names) - 1})")
    return layer % len(names)


def _stage(history: History, layer: int, stage: str) -> str:
    return activation_input_stage(history, layer) if stage == ACT_INPUT else stage


def _config(history: History) -> dict:
    return history.meta.get("config") or {}


def _watched(history: History, key: str, layer: int):
    """Per-layer facts a `bnviz.watch` run keeps in meta["watch"] (None for other runs)."""
    values = (history.meta.get("watch") or {}).get(key)
    value = values[layer] if isinstance(values, list) and 0 <= layer < len(values) else None
    return value if isinstance(value, str) else None  # meta comes from a file: trust only strings


def _norm_name(history: History) -> str:
    names = {"batch": "BN", "batch-noisy": "noisy BN", "layer": "layer norm", "instance": "instance norm",
             "group": "group norm"}
    norm = _config(history).get("norm")
    if norm in names:
        return names[norm]
    kinds = {kind for _, kind, _ in history.layout.norm_layers}
    return names.get(kinds.pop(), "norm") if len(kinds) == 1 else "norm"


def _activation_name(history: History, layer: int) -> str:
    k = history.probe_index(layer, "act")
    kind = history.layout.act_kinds[k] if k is not None else ""
    return {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}.get(kind, "activation")


def stage_label(history: History, layer: int, stage: str) -> str:
    """Plain words for a stage: "conv output", "BN output (input to the ReLU)", "ReLU output"."""
    stage = _stage(history, layer, stage)
    act = _activation_name(history, layer)
    feeds = ""
    if stage == activation_input_stage(history, layer) and history.probe_index(layer, "act") is not None:
        feeds = " (input to the " + act + ")"  # a watched layer may have no activation module
    if stage == "pre":
        model = _config(history).get("model") or _watched(history, "pre", layer)
        return {"cnn": "conv output", "mlp": "linear output", "conv": "conv output",
                "linear": "linear output"}.get(model, "layer output") + feeds
    if stage == "norm":
        return f"{_norm_name(history)} output{feeds}"
    if stage == "act":
        return f"{act} output"
    return stage


def _missing_stage_text(history: History, layer: int, stage: str) -> str:
    name = history.layout.layers[layer]
    if stage == "norm" and not history.layout.norm_layers:
        return f"This run has no normalization layers,<br>so {name} has no norm stage to show."
    return f"Stage {stage!r} of {name} is not recorded in this run."


def _no_norm_text(history: History, what: str) -> str:
    return f"This run has no normalization layers (norm = none):<br>there is no {what} to show."


# ---- internals: figures ------------------------------------------------------------------------------------------
def _line(x, y, name: str, color: str, *, width: float = 3, dash: str = "solid", xref: str = "x",
          yref: str = "y", shape: str | None = None, **extra) -> dict:
    """A line trace as a plain dict (nested, no magic underscores: plain figures are sent as built)."""
    trace = {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, "xaxis": xref, "yaxis": yref,
             "line": {"color": color, "width": width, "dash": dash, **({"shape": shape} if shape else {})}}
    trace.update(extra)
    return trace


def _legend_rows(names: list[str]) -> int:
    """Rows a horizontal legend takes: one if every entry fits, else plotly wraps them into equal columns."""
    if not names:
        return 0
    widths = [44 + 9 * len(name) for name in names]  # symbol + text at 16 px
    if sum(widths) <= _LEGEND_ROW_WIDTH:
        return 1
    columns = max(1, _LEGEND_ROW_WIDTH // max(widths))
    return math.ceil(len(names) / columns)


def _merge(layout: dict, key: str, values: dict) -> None:
    layout[key] = {**values, **layout.get(key, {})}


def _finish(traces: list[dict], layout: dict, title: str, x_title: str | None = None, y_title: str | None = None,
            *, height: int = HEIGHT, subtitles: bool = False, hovermode: str | bool = "x unified",
            note: str | None = None, bottom: int = 70, right: int = 30) -> go.Figure:
    """Build the figure in one go, with the style all figures share.

    Big fonts, title top left, legend in a row under it (not on the right, where heatmaps put their colorbar); the
    top margin grows by one row per estimated row of legend entries, so entries never cover the data. `note`
    (lines joined by "<br>") goes under the x axis, where it cannot cover the data either. The figure is made by
    a single `go.Figure(data, layout)` call: `update_layout` on an existing figure costs 3-5 times more. Plotly's
    property validation is skipped (it took ~85 % of the build time, and a live page builds several figures twice
    a second in the process that trains); tests/test_charts.py validates every figure kind instead.
    """
    names = [t["name"] for t in traces if t.get("name") and t.get("showlegend", True)]
    rows = _legend_rows(list(dict.fromkeys(names)))
    top = _LEGEND_PX + rows * _LEGEND_ROW_PX + (_SUBTITLE_PX if subtitles else 0) + (6 if rows else 0)
    height += max(0, rows - 2) * _LEGEND_ROW_PX  # a long legend (a watched model's 20 layers) must not eat the plot
    annotations = list(layout.get("annotations", []))
    if note:
        note = "<br>".join(textwrap.fill(line, _NOTE_CHARS).replace("\n", "<br>") for line in note.split("<br>"))
        lines = note.count("<br>") + 1
        plot_px = height - top - bottom - _NOTE_LINE_PX * lines - 8
        annotations.append(_note(note, 0.0, -(bottom - 6) / max(plot_px, 50), size=15, color="#444444"))
        bottom += _NOTE_LINE_PX * lines + 8
    layout = {
        **layout,
        "annotations": annotations,
        "title": {"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "yref": "container",
                  "y": 1 - _TITLE_PX / height, "yanchor": "top", "font": {"size": TITLE_SIZE}},
        "font": FONT,
        "height": height,
        "margin": {"l": 90, "r": right, "t": top, "b": bottom, "pad": 4},
        "showlegend": bool(rows),
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "xref": "container",
                   "y": 1 - _LEGEND_PX / height, "yref": "container", "yanchor": "top",
                   "font": {"size": 16}, "bgcolor": "rgba(255,255,255,0)", "itemwidth": 40},
        "hovermode": hovermode,
        "hoverlabel": {"font": {"size": 15}},
        "plot_bgcolor": "white",
    }
    if x_title is not None:
        _merge(layout, "xaxis", {"title": _axis_title(x_title)})
    if y_title is not None:
        _merge(layout, "yaxis", {"title": _axis_title(y_title)})
    if getattr(_PLAIN, "on", False):
        plain = {"data": traces, "layout": layout}
        convert_to_base64(plain)  # numpy arrays as typed arrays, as go.Figure.to_dict sends them (in place: all new)
        plain["layout"] = {**layout, "template": _template_dict()}
        return plain
    fig = go.Figure(data=traces, layout=layout, _validate=False)
    _use_template(fig)
    return fig


_PLAIN = threading.local()  # per thread: do builders return plain dicts? (see plain_figures)


@contextlib.contextmanager
def plain_figures():
    """Inside this block, every builder returns its figure as a plain dict, `{"data": [...], "layout": {...}}`
    (numpy arrays kept), instead of a `go.Figure`: the same content (tests/test_charts.py compares the JSON of every
    builder both ways) at a fraction of the cost, because plotly.py's object tree is never built, nor deep-copied to
    be serialized. For live pages, which build and send every figure twice a second in the process that trains.
    `fit_width`, `enlarge_text` and `plotly.io.to_json(fig, validate=False)` take either form."""
    before = getattr(_PLAIN, "on", False)
    _PLAIN.on = True
    try:
        yield
    finally:
        _PLAIN.on = before


@functools.cache
def _template_dict() -> dict:
    return TEMPLATE.to_plotly_json()


def fit_width(fig: go.Figure | dict, width_px: int) -> go.Figure | dict:
    """Make `fig` readable at `width_px` (a chart in one of two page columns): a title too long for one line is
    wrapped, and the top margin, height and legend move down by the added lines so the plot keeps its size and
    nothing overlaps. Returns the same figure (a go.Figure or a plain dict)."""
    layout = fig["layout"] if isinstance(fig, dict) else fig.layout.to_plotly_json()
    title = layout.get("title", {}).get("text") or ""
    chars = max(20, int(width_px / (TITLE_SIZE * _TITLE_CHAR_EM)))
    if "<br>" in title or len(title) <= chars:
        return fig
    lines = textwrap.wrap(title, chars)
    extra = (len(lines) - 1) * round(TITLE_SIZE * 1.3)
    height = (layout.get("height") or HEIGHT) + extra
    # plotly sets a title of several lines higher by ~0.7 of a line per added line (measured in Chromium): without
    # this padding the first line's top is cut off
    pad = round(TITLE_SIZE * 0.7) * (len(lines) - 1)
    changes = {"title": {"text": "<br>".join(lines), "y": 1 - _TITLE_PX / height, "pad": {"t": pad}}, "height": height,
               "margin": {"t": (layout.get("margin", {}).get("t") or 0) + extra}}
    if layout.get("legend", {}).get("y") is not None:
        changes["legend"] = {"y": 1 - (_LEGEND_PX + extra) / height}
    return _update_layout(fig, changes)


def enlarge_text(fig: go.Figure | dict, size: int) -> go.Figure | dict:
    """All text of `fig` at `size` px except its title and axis titles (presenter mode); returns the same figure."""
    return _update_layout(fig, {"font": {"size": size}, "legend": {"font": {"size": size}},
                                "hoverlabel": {"font": {"size": size}}})


def _update_layout(fig: go.Figure | dict, changes: dict) -> go.Figure | dict:
    """Merge nested `changes` into the layout of a go.Figure or a plain figure dict."""
    if not isinstance(fig, dict):
        fig.update_layout(changes)
        return fig

    def merge(into: dict, values: dict) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                into[key] = dict(into[key])  # a copy: nested dicts may be shared with other figures
                merge(into[key], value)
            else:
                into[key] = value

    fig["layout"] = dict(fig["layout"])
    merge(fig["layout"], changes)
    return fig


def _use_template(fig: go.Figure) -> None:
    """Give `fig` the plotly_white template.

    Assigning a template validates it again (~25 ms, more than building all the traces); plotly skips that for its
    own default template, which it also assumes valid. We do the same when plotly exposes the switch.
    """
    layout = getattr(fig, "_layout_obj", None)
    if layout is not None and hasattr(layout, "_validate"):
        layout._validate = False
        try:
            fig.layout.template = TEMPLATE
        finally:
            layout._validate = True
    else:
        fig.update_layout(template="plotly_white")


def _axis_title(text: str) -> dict:
    return {"text": text, "font": {"size": AXIS_TITLE_SIZE}}


def _message(title: str, text: str = WAITING, height: int = HEIGHT, chars: int = _MESSAGE_CHARS) -> go.Figure:
    """A figure with no data and a centred message (waiting for data, or why there is nothing to show); each
    "<br>"-separated line of `text` is wrapped at `chars` characters."""
    text = "<br>".join("<br>".join(textwrap.wrap(line, chars)) or line for line in text.split("<br>"))
    layout = {"xaxis": {"visible": False}, "yaxis": {"visible": False},
              "annotations": [_note(text, 0.5, 0.5, size=20, xanchor="center", yanchor="middle")]}
    return _finish([], layout, title, height=height, hovermode=False)


PREVIEW_HEIGHT = 300  # px of the chart frame a live page shows before its first run
_PREVIEW_CHARS = 58  # characters per line of a preview's text (20 px): fits a chart in two thirds of the page


def preview(title: str, text: str, height: int = PREVIEW_HEIGHT) -> go.Figure:
    """Where a live chart will appear and what it will show, before any run: an empty frame with `text` in it."""
    return _message(title, text, height=height, chars=_PREVIEW_CHARS)


def _note(text: str, x: float, y: float, *, xref: str = "paper", yref: str = "paper", size: int = 16,
          xanchor: str = "left", yanchor: str = "top", color: str = "#333333") -> dict:
    return {"text": text, "x": x, "y": y, "xref": xref, "yref": yref, "showarrow": False, "xanchor": xanchor,
            "yanchor": yanchor, "align": "left" if xanchor == "left" else "center",
            "font": {"size": size, "color": color}, "bgcolor": "rgba(255,255,255,0.85)"}


def _subplots(rows: int, cols: int, *, titles: list[str] | None = None, hspace: float = 0.06,
              vspace: float = 0.08, shared_x: bool = True, shared_y_rows: bool = False
              ) -> tuple[dict, list[tuple[str, str]], list[tuple[list[float], list[float]]]]:
    """Axes for a rows x cols grid, built directly (make_subplots takes 20-45 ms; this well under 1 ms).

    Returns the layout entries (axes and subplot-title annotations), the (xaxis, yaxis) names of each cell in
    row-major order (for traces) and each cell's (x domain, y domain).
    """
    width = (1 - (cols - 1) * hspace) / cols
    height = (1 - (rows - 1) * vspace) / rows
    layout: dict = {}
    refs, domains, notes = [], [], []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            suffix = "" if i == 0 else str(i + 1)
            x_dom = [c * (width + hspace), c * (width + hspace) + width]
            y_top = 1 - r * (height + vspace)
            y_dom = [max(y_top - height, 0.0), y_top]
            x_axis = {"domain": x_dom, "anchor": f"y{suffix}", "showticklabels": not shared_x or r == rows - 1}
            y_axis = {"domain": y_dom, "anchor": f"x{suffix}"}
            if shared_x and i:
                x_axis["matches"] = "x"
            if shared_y_rows and c:
                first = r * cols
                y_axis["matches"] = "y" if first == 0 else f"y{first + 1}"
                y_axis["showticklabels"] = False
            layout[f"xaxis{suffix}"], layout[f"yaxis{suffix}"] = x_axis, y_axis
            refs.append((f"x{suffix}", f"y{suffix}"))
            domains.append((x_dom, y_dom))
            if titles and i < len(titles) and titles[i]:
                notes.append({"text": titles[i], "x": (x_dom[0] + x_dom[1]) / 2, "y": y_dom[1], "xref": "paper",
                              "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                              "font": {"size": AXIS_TITLE_SIZE}, "yshift": 4})
    layout["annotations"] = notes
    return layout, refs, domains


def _axis_key(ref: str) -> str:
    """"x3" -> "xaxis3", "y" -> "yaxis"."""
    return ref[0] + "axis" + ref[1:]


def _padded(lo: float, hi: float, pad: float = 0.03) -> list[float]:
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return [lo - pad * span, hi + pad * span]


def _finite_range(*arrays) -> tuple[float, float] | None:
    values = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


def _zmax(z: np.ndarray) -> float:
    """Top of the colour scale for a (bins, columns) heatmap: the 99th percentile of its cells, leaving out a bin
    that dominates all others (ReLU's zeros, a saturated sigmoid) so it does not wash out the rest of the
    distribution; cells above the top get the darkest colour (hover shows their value)."""
    totals = np.where(np.isfinite(z), z, 0.0).sum(axis=1)  # per bin, over all columns
    if totals.size > 2:
        second, first = np.sort(totals)[-2:]
        if first > DOMINANT_BIN * second:
            z = np.delete(z, int(np.argmax(totals)), axis=0)
    finite = z[np.isfinite(z)]
    if not finite.size or finite.max() <= 0:
        return 1.0
    top = float(np.quantile(finite, DENSITY_TOP_QUANTILE))
    return top if top > 0 else float(finite.max())


def _distribution_cell(history: History, k: int, xref: str, yref: str, *, split: bool, showlegend: bool,
                       max_points: int = MAX_POINTS) -> tuple[list[dict], dict]:
    """Probe k's histograms over steps (a raster image, see figures.raster) plus its 15/50/85th percentile lines.

    split=True: one trace per percentile (legend "15th/50th/85th percentile"); False: the three joined into one
    trace with NaN gaps (grids). Returns the traces and facts for the layout: "edges" (lo, hi), "yrange", "zmax",
    and "z" / "xspan" for `_density_image` once the colour scale's top is known.
    """
    rows, grid = _raster.uniform_columns(history.steps, max_points)
    z = np.ascontiguousarray(history.column("act_hist")[rows, k, :].T)  # (bins, columns)
    edges = history.hist_edges[k].astype(np.float64)
    idx = even_rows(len(history), max_points)
    x = history.steps[idx]
    pct = {name: _finite(history.act(name)[idx, k]) for name in ("p15", "p50", "p85")}
    traces = []
    if split:
        styles = {"p15": ("15th percentile", "dash", 2.5), "p50": ("50th percentile", "solid", 3.5),
                  "p85": ("85th percentile", "dot", 3)}
        for name, (label, dash, width) in styles.items():
            traces.append(_line(x, pct[name], label, PERCENTILE_COLOR, width=width, dash=dash, xref=xref, yref=yref,
                                showlegend=showlegend, hovertemplate=f"{label}: %{{y:.3g}}<extra></extra>"))
    else:
        gap = np.array([np.nan])
        xs = np.concatenate([x, gap, x, gap, x])
        ys = np.concatenate([pct["p15"], gap, pct["p50"], gap, pct["p85"]])
        traces.append(_line(xs, ys, "15th / 50th / 85th percentiles", PERCENTILE_COLOR, width=2.5, xref=xref,
                            yref=yref, legendgroup="percentiles", showlegend=showlegend,
                            hovertemplate="step %{x}<br>percentile: %{y:.3g}<extra></extra>"))
    span = _finite_range(edges, pct["p15"], pct["p50"], pct["p85"]) or (-1.0, 1.0)
    return traces, {"edges": (float(edges[0]), float(edges[-1])), "yrange": span, "zmax": _zmax(z),
                    "extended": span[0] < edges[0] or span[1] > edges[-1], "z": z,
                    "xspan": _raster.column_span(grid)}


def _density_image(facts: dict, zmax: float, xref: str, yref: str) -> dict:
    """The cell's histograms as a layout image coloured like DENSITY_SCALE with top zmax."""
    source = _raster.png_data_uri(facts["z"], zmax, DENSITY_TABLE)
    return _raster.layout_image(source, facts["xspan"], facts["edges"], xref, yref)


def _density_colorbar_trace(xref: str, yref: str) -> dict:
    """An invisible trace on the density colour axis: it makes Plotly draw that axis's colorbar for the images."""
    return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "xaxis": xref, "yaxis": yref,
            "marker": {"coloraxis": "coloraxis", "color": [0.0]}, "showlegend": False, "hoverinfo": "skip",
            "name": "density"}


def _edge_lines(edges: tuple[float, float], xref: str, yref: str) -> list[dict]:
    """Dotted lines at the fixed histogram range: outside them the heatmap is blank, the percentiles are not."""
    return [{"type": "line", "xref": f"{xref} domain", "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
             "line": {"color": "#777777", "width": 1.5, "dash": "dot"}, "layer": "above"} for y in edges]


def _density_coloraxis(zmax: float) -> dict:
    return {"colorscale": DENSITY_SCALE, "cmin": 0.0, "cmax": zmax,
            "colorbar": {"title": {"text": DENSITY_COLORBAR_TITLE, "font": {"size": 15}}, "thickness": 18,
                         "tickfont": {"size": 14}, "len": 1.0, "y": 0.5, "yanchor": "middle"}}


# ---- builders ----------------------------------------------------------------------------------------------------
def loss_accuracy(runs) -> go.Figure:
    """Training loss (left) and test accuracy (right) against the step, one colour per run."""
    runs = _as_runs(runs)
    title = "Training loss and test accuracy"
    live = [(label, h) for label, h in runs if _rows(h)]
    if not live:
        return _message(title)
    colours = run_colors(label for label, _ in runs)
    layout, refs, _ = _subplots(1, 2, titles=["training loss (one mini-batch per step)",
                                              "test accuracy (eval mode)"], hspace=0.1)
    (x1, y1), (x2, y2) = refs
    traces = []
    for label, h in live:
        idx = even_rows(len(h))
        colour = colours[label]
        traces.append(_line(h.steps[idx], _finite(h.scalar("loss")[idx]), label, colour, width=2.5, xref=x1,
                            yref=y1, legendgroup=label, hovertemplate=f"{label} loss %{{y:.3f}}<extra></extra>"))
        x, y = _sparse(h.steps, h.scalar("test_acc"))
        traces.append(_line(x, y, label, colour, xref=x2, yref=y2, mode="lines+markers", marker={"size": 7},
                            legendgroup=label, showlegend=False,
                            hovertemplate=f"{label} accuracy %{{y:.1%}}<extra></extra>"))
    layout["xaxis"]["title"] = layout["xaxis2"]["title"] = _axis_title("training step")
    layout["yaxis"]["title"] = _axis_title("cross-entropy loss")
    layout["yaxis2"].update(title=_axis_title("test accuracy"), range=[0, 1.02], tickformat=".0%")
    return _finish(traces, layout, title, subtitles=True)


def distribution_heatmap(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT,
                         title: str | None = None, *, max_points: int = MAX_POINTS) -> go.Figure:
    """The "colorful dimension": one column per step, the histogram of the block's values coloured by the
    fraction of values per bin, with the exact 15th/50th/85th percentiles drawn on top.

    layer: block index (negative counts from the last) or name; stage: "pre", "norm", "act" or ACT_INPUT (the
    input of the activation); max_points: columns at most (a 64 x 600 heatmap is ~200 kB of JSON).
    """
    if not _rows(history):
        return _message(title or "Distribution over training")
    layer = _layer_index(history, layer)
    stage = _stage(history, layer, stage)
    title = title or f"{history.layout.layers[layer]}: distribution of the {stage_label(history, layer, stage)}"
    k = history.probe_index(layer, stage)
    if k is None:
        return _message(title, _missing_stage_text(history, layer, stage))
    traces, facts = _distribution_cell(history, k, "x", "y", split=True, showlegend=True, max_points=max_points)
    note = None
    if facts["extended"]:
        note = "dotted lines: the fixed histogram range (set at step 0); the percentiles beyond it are exact"
    traces.append(_density_colorbar_trace("x", "y"))
    layout = {"coloraxis": _density_coloraxis(facts["zmax"]), "shapes": _edge_lines(facts["edges"], "x", "y"),
              "images": [_density_image(facts, facts["zmax"], "x", "y")],
              "xaxis": {"range": list(facts["xspan"]), "showgrid": False},
              "yaxis": {"range": _padded(*facts["yrange"]), "showgrid": False}}
    return _finish(traces, layout, title, "training step", "activation value", hovermode="closest", note=note)


def distribution_grid(runs, stage: str = ACT_INPUT, *, max_points: int = MAX_POINTS) -> go.Figure:
    """Heatmaps side by side: one row per block, one column per run, shared axes per row, so the runs' value
    distributions compare at a glance (one colour scale for all cells).

    Each cell is one heatmap plus one trace joining the three percentile lines. The figure's JSON grows with
    cells x max_points (2 runs x 3 blocks x 600 columns: ~1.5 MB); a live page may pass a smaller max_points.
    """
    runs = _as_runs(runs)
    live = [(label, h) for label, h in runs if _rows(h)]
    some = live[0][1] if live else next((h for _, h in runs if h is not None), None)
    what = "activation input" if stage == ACT_INPUT else stage_label(some, 0, stage) if some else stage
    title = f"Distribution of each block's {what}, run by run"
    if not live:
        return _message(title)
    n_blocks = max(len(h.layout.layers) for _, h in live)
    cols = len(runs)
    colours = run_colors(label for label, _ in runs)
    layout, refs, domains = _subplots(n_blocks, cols, hspace=0.05, vspace=0.05 if n_blocks > 1 else 0.0,
                                      shared_x=True, shared_y_rows=True)
    traces, shapes, notes, cells = [], [], layout["annotations"], []
    zmax, row_ranges, x_span = 0.0, [None] * n_blocks, None
    first_legend = True
    for c, (label, h) in enumerate(runs):
        x_dom = domains[c][0]
        notes.append({"text": f"<b>{label}</b>", "x": (x_dom[0] + x_dom[1]) / 2, "y": 1, "xref": "paper",
                      "yref": "paper", "xanchor": "center", "yanchor": "bottom", "yshift": 4, "showarrow": False,
                      "font": {"size": AXIS_TITLE_SIZE + 2, "color": colours[label]}})
        for r in range(n_blocks):
            xref, yref = refs[r * cols + c]
            if not _rows(h) or r >= len(h.layout.layers):
                text = WAITING if not _rows(h) else "no such block"
                notes.append(_note(text, 0.5, 0.5, xref=f"{xref} domain", yref=f"{yref} domain",
                                   xanchor="center", yanchor="middle", color="#777777"))
                continue
            k = h.probe_index(r, _stage(h, r, stage))
            if k is None:
                notes.append(_note(_missing_stage_text(h, r, _stage(h, r, stage)), 0.5, 0.5, size=14,
                                   xref=f"{xref} domain", yref=f"{yref} domain", xanchor="center",
                                   yanchor="middle", color="#777777"))
                continue
            cell, facts = _distribution_cell(h, k, xref, yref, split=False, showlegend=first_legend,
                                             max_points=max_points)
            first_legend = False
            traces += cell
            cells.append((facts, xref, yref))
            shapes += _edge_lines(facts["edges"], xref, yref)
            zmax = max(zmax, facts["zmax"])
            lo, hi = facts["xspan"]
            x_span = (lo, hi) if x_span is None else (min(x_span[0], lo), max(x_span[1], hi))
            lo, hi = facts["yrange"]
            old = row_ranges[r]
            row_ranges[r] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    for r in range(n_blocks):
        y_axis = layout[_axis_key(refs[r * cols][1])]
        name = next((h.layout.layers[r] for _, h in live if r < len(h.layout.layers)), f"block{r + 1}")
        y_axis["title"] = _axis_title(f"{name}<br>value")
        if row_ranges[r] is not None:
            y_axis["range"] = _padded(*row_ranges[r])
    for c in range(cols):
        layout[_axis_key(refs[(n_blocks - 1) * cols + c][0])]["title"] = _axis_title("training step")
    for ref in refs:
        layout[_axis_key(ref[0])]["showgrid"] = layout[_axis_key(ref[1])]["showgrid"] = False
        if x_span is not None:
            layout[_axis_key(ref[0])]["range"] = list(x_span)
    zmax = zmax or 1.0
    images = [_density_image(facts, zmax, xref, yref) for facts, xref, yref in cells]
    if cells:
        traces.append(_density_colorbar_trace(*cells[0][1:]))
    layout.update(coloraxis=_density_coloraxis(zmax), shapes=shapes, images=images)
    return _finish(traces, layout, title, height=140 + 200 * n_blocks, subtitles=True, hovermode="closest")


def histogram_now_vs_start(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT) -> go.Figure:
    """The latest histogram (bars) over the step-0 histogram (black outline), on the same fixed bins."""
    if not _rows(history):
        return _message("Histogram now vs at step 0")
    layer = _layer_index(history, layer)
    stage = _stage(history, layer, stage)
    first, last = 0, len(history) - 1
    step0, step_now = int(history.steps[first]), int(history.steps[last])
    title = f"{history.layout.layers[layer]}: {stage_label(history, layer, stage)}, now vs step {step0:,}"
    k = history.probe_index(layer, stage)
    if k is None:
        return _message(title, _missing_stage_text(history, layer, stage))
    hist = history.column("act_hist")[:, k, :]
    edges = history.hist_edges[k].astype(np.float64)
    start = _finite(hist[first])
    traces = [
        {"type": "bar", "x": (edges[:-1] + edges[1:]) / 2, "y": _finite(hist[last]), "width": np.diff(edges),
         "name": f"step {step_now:,}", "marker": {"color": _C["sky"], "line": {"width": 0}},
         "hovertemplate": "value %{x:.3g}<br>fraction %{y:.3f}<extra></extra>"},
        _line(edges, np.append(start, start[-1]), f"step {step0:,}", _C["black"], width=2.5, shape="hv",
              hoverinfo="skip"),
    ]
    below, above = history.act("frac_below")[:, k], history.act("frac_above")[:, k]

    def pct(v: float) -> str:
        return "n/a" if not math.isfinite(v) else f"{v:.1%}"

    note = (f"outside the fixed range {edges[0]:.3g} to {edges[-1]:.3g}: "
            f"step {step_now:,}: {pct(float(below[last]))} below, {pct(float(above[last]))} above; "
            f"step {step0:,}: {pct(float(below[first]))} below, {pct(float(above[first]))} above")
    layout = {"bargap": 0, "xaxis": {"range": [edges[0], edges[-1]]}}
    return _finish(traces, layout, title, "activation value", "fraction of values", hovermode="closest", note=note)


def percentile_lines(runs, layer: int | str = -1, stage: str = ACT_INPUT) -> go.Figure:
    """Ioffe & Szegedy's Figure 1 (b, c): the 15th, 50th and 85th percentiles of a block's values over
    training, one colour per run (median solid, 15th and 85th dashed)."""
    runs = _as_runs(runs)
    live = [(label, h) for label, h in runs if _rows(h)]
    what = "activation input" if stage == ACT_INPUT else stage
    if not live:
        return _message(f"15th, 50th and 85th percentiles of the {what}")
    colours = run_colors(label for label, _ in runs)
    traces, missing = [], []
    block = None
    for label, h in live:
        li = _layer_index(h, layer)
        block = block or h.layout.layers[li]
        st = _stage(h, li, stage)
        k = h.probe_index(li, st)
        if k is None:
            missing.append(f"{label}: {_missing_stage_text(h, li, st)}")
            continue
        idx = even_rows(len(h))
        x = h.steps[idx]
        gap = np.array([np.nan])
        colour = colours[label]
        traces.append(_line(np.concatenate([x, gap, x]),
                            np.concatenate([_finite(h.act("p15")[idx, k]), gap, _finite(h.act("p85")[idx, k])]),
                            f"{label}: 15th & 85th", colour, width=2, dash="dash", legendgroup=label,
                            hovertemplate=f"{label} 15th/85th: %{{y:.3g}}<extra></extra>"))
        traces.append(_line(x, _finite(h.act("p50")[idx, k]), f"{label}: median", colour, width=3.5,
                            legendgroup=label, hovertemplate=f"{label} median: %{{y:.3g}}<extra></extra>"))
    title = f"{block}: 15th, 50th and 85th percentiles of the {what}"
    if not traces:
        return _message(title, "<br>".join(missing))
    note = "<br>".join(m.replace("<br>", " ") for m in missing) or None
    return _finish(traces, {}, title, "training step", "activation value", hovermode="closest", note=note)


def saturation(history: History | None) -> go.Figure:
    """Per block, the share of activation outputs that are saturated (tanh, sigmoid) or exactly zero (ReLU)."""
    if not _rows(history):
        return _message("Saturated or inactive units")
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
        return _message(title, "The activations of this run are of an unknown kind:<br>no saturation measure.")
    idx = even_rows(len(history))
    x = history.steps[idx]
    traces = []
    for layer, k in acts:
        column = stat or ("frac_dead" if layout.act_kinds[k] == "relu" else "frac_saturated")
        traces.append(_line(x, _finite(history.act(column)[idx, k]), layout.layers[layer], block_color(layer),
                            hovertemplate="%{y:.1%}"))
    return _finish(traces, {"yaxis": {"range": [0, 1.02], "tickformat": ".0%"}}, title, "training step", y_title)


def drift(history: History | None, reference: str = "first", stage: str | tuple[str, ...] = ACT_INPUT
          ) -> go.Figure:
    """How far each block's value distribution has moved: the 1-Wasserstein distance to step 0 (reference
    "first") or to the previous record ("previous"), in units of that block's step-0 standard deviation."""
    against = {"first": "since step 0", "previous": "since the previous record"}
    if reference not in against:
        raise ValueError(f"reference={reference!r} is not allowed: use 'first' or 'previous'")
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    what = "activation input" if stages == (ACT_INPUT,) else ", ".join(stages)
    title = f"Distribution drift of each block's {what} {against[reference]}"
    if not _rows(history):
        return _message(title)
    idx = even_rows(len(history))
    w1 = np.full((len(idx), len(history.layout.probes)), np.nan)
    probes = sorted({k for layer in range(len(history.layout.layers)) for st in stages
                     if (k := history.probe_index(layer, _stage(history, layer, st))) is not None})
    if probes:
        w1[:, probes] = relative_drift(history, reference, idx, probes)
    outside = history.act("frac_below")[-1] + history.act("frac_above")[-1]  # (probes,) at the latest row
    x = history.steps[idx]
    dashes = ("solid", "dash", "dot", "dashdot")
    traces, escaped = [], []
    for layer, name in enumerate(history.layout.layers):
        for j, st in enumerate(stages):
            st = _stage(history, layer, st)
            k = history.probe_index(layer, st)
            if k is None:
                continue
            label = name if len(stages) == 1 else f"{name} {st}"
            if outside[k] > OUTSIDE_WARNING:
                escaped.append(f"{label} ({outside[k]:.0%})")
            traces.append(_line(x, _finite(w1[:, k]), label, block_color(layer), dash=dashes[j % len(dashes)],
                                hovertemplate="%{y:.3g}"))
    if not traces:
        return _message(title, _missing_stage_text(history, 0, stages[0]))
    note = None
    if escaped:  # W1 counts values beyond the bins at the nearest edge: past it the curve flattens
        note = ("outside the fixed histogram range now: " + ", ".join(escaped)
                + "; their drift is larger than shown (a lower bound)")
    return _finish(traces, {}, title, "training step", "W1 distance / step-0 std", note=note)


def gradient_norms(history: History | None, stage: str = ACT_INPUT) -> go.Figure:
    """L2 norm of the loss gradient with respect to each block's activation input, per step (log scale)."""
    title = "Gradient size at each block (w.r.t. the activation input)"
    if not _rows(history):
        return _message(title)
    idx = even_rows(len(history))
    x = history.steps[idx]
    norms = history.column("grad_stats")[:, :, GRAD_STATS.index("grad_norm")]
    traces = []
    for layer, name in enumerate(history.layout.layers):
        k = history.probe_index(layer, _stage(history, layer, stage))
        if k is not None:
            traces.append(_line(x, _positive(norms[idx, k]), name, block_color(layer), hovertemplate="%{y:.3g}"))
    if not traces:
        return _message(title, _missing_stage_text(history, 0, stage))
    layout = {"yaxis": {"type": "log", "exponentformat": "power"}}
    return _finish(traces, layout, title, "training step", "L2 norm of the gradient (log scale)")


def gradient_histogram(history: History | None, layer: int | str = -1, stage: str = ACT_INPUT, *,
                       max_points: int = MAX_POINTS) -> go.Figure:
    """Heatmap of log10 |gradient| per step for one block and stage: decades on the y axis, colour = fraction."""
    if not _rows(history):
        return _message("Gradient magnitudes over training")
    layer = _layer_index(history, layer)
    stage = _stage(history, layer, stage)
    title = f"{history.layout.layers[layer]}: gradient magnitudes at the {stage_label(history, layer, stage)}"
    k = history.probe_index(layer, stage)
    if k is None:
        return _message(title, _missing_stage_text(history, layer, stage))
    rows, grid = _raster.uniform_columns(history.steps, max_points)
    z = np.ascontiguousarray(history.column("grad_hist")[rows, k, :].T)
    edges = history.grad_edges.astype(np.float64)
    zero = _finite(history.column("grad_stats")[rows, k, GRAD_STATS.index("grad_frac_zero")])
    facts = {"z": z, "xspan": _raster.column_span(grid), "edges": (float(edges[0]), float(edges[-1]))}
    zmax = _zmax(z)
    note = None
    if np.isfinite(zero[-1]) and zero[-1] > 0:
        note = f"exact zeros, not in the histogram: {zero[-1]:.0%} of values at step {int(history.steps[rows[-1]]):,}"
    layout = {"coloraxis": _density_coloraxis(zmax), "images": [_density_image(facts, zmax, "x", "y")],
              "xaxis": {"range": list(facts["xspan"]), "showgrid": False},
              "yaxis": {"range": [edges[0], edges[-1]], "dtick": 2, "showgrid": False}}
    return _finish([_density_colorbar_trace("x", "y")], layout, title, "training step", "log10 |gradient|",
                   hovermode="closest", note=note)


def update_ratios(history: History | None, which: str = "update_data") -> go.Figure:
    """Per weight, std(update) / std(weight) ("update_data") or std(gradient) / std(weight) ("grad_data"), log
    scale; for updates a dashed guide marks Karpathy's rule of thumb of about 1e-3."""
    titles = {"update_data": ("Update size relative to the weights", "std(update) / std(weight) (log scale)"),
              "grad_data": ("Gradient size relative to the weights", "std(gradient) / std(weight) (log scale)")}
    if which not in titles:
        raise ValueError(f"which={which!r} is not allowed: use 'update_data' or 'grad_data'")
    title, y_title = titles[which]
    if not _rows(history):
        return _message(title)
    idx = even_rows(len(history))
    x = history.steps[idx]
    ratios = history.column("weight_stats")[:, :, WEIGHT_STATS.index(which)]
    layers = history.layout.layers
    traces = []
    for w, name in enumerate(history.layout.weights):
        owner = name.removesuffix(".weight")  # a block ("block1") or a watched module path ("layer1.0.conv1")
        block = owner in layers
        traces.append(_line(x, _positive(ratios[idx, w]), name.removesuffix(".weight"),
                            block_color(layers.index(owner)) if block else GUIDE_COLOR, width=2.5 if block else 2,
                            dash="solid" if block else "dot", hovertemplate="%{y:.2g}"))
    layout = {"yaxis": {"type": "log", "exponentformat": "power"}}
    if which == "update_data" and len(x):
        label = "≈1e-3: healthy update size (Karpathy)"  # on the line, not in the legend: too long for one row
        traces.append(_line([x[0], x[-1]], [HEALTHY_UPDATE_RATIO] * 2, label, GUIDE_COLOR, width=2, dash="dash",
                            hoverinfo="skip", showlegend=False))
        layout["annotations"] = [{"text": label, "x": 0.01, "xref": "x domain", "xanchor": "left",
                                  "y": math.log10(HEALTHY_UPDATE_RATIO), "yref": "y", "yanchor": "top",
                                  "showarrow": False, "font": {"size": 15, "color": GUIDE_COLOR},
                                  "bgcolor": "rgba(255,255,255,0.8)"}]
    return _finish(traces, layout, title, "training step", y_title)


def _norm_slice(history: History, layer: int) -> tuple[slice, str] | None:
    for (owner, kind, _), sl in zip(history.layout.norm_layers, history.layout.channel_slices()):
        if owner == layer:
            return sl, kind
    return None


def gamma_beta(history: History | None, layer: int | str = 0) -> go.Figure:
    """The normalization layer's learned scale gamma (top) and shift beta (bottom) per channel over training."""
    height = 560
    if not _rows(history):
        return _message("gamma and beta per channel", height=height)
    layer = _layer_index(history, layer)
    name = history.layout.layers[layer]
    if not history.layout.norm_layers:
        return _message(f"{name}: gamma and beta per channel", _no_norm_text(history, "gamma or beta"), height)
    title = f"{name}: {_norm_name(history)} scale gamma and shift beta per channel"
    found = _norm_slice(history, layer)
    if found is None:
        return _message(title, f"{name} has no normalization layer.", height)
    sl, _ = found
    idx = even_rows(len(history))
    x = history.steps[idx]
    channels = history.column("channels")[idx, sl, :]
    channel_ids = np.arange(1, sl.stop - sl.start + 1)
    layout, refs, domains = _subplots(2, 1, titles=["gamma (scale, starts at 1)", "beta (shift, starts at 0)"],
                                      vspace=0.14)
    traces = []
    for (xref, yref), (_, y_dom), stat, mid in zip(refs, domains, ("gamma", "beta"), (1.0, 0.0)):
        z = np.ascontiguousarray(channels[:, :, CHANNEL_STATS.index(stat)].T)  # (channels, columns)
        traces.append({"type": "heatmap", "x": x, "y": channel_ids, "z": z, "xaxis": xref, "yaxis": yref,
                       "zmid": mid, "colorscale": "RdBu_r", "hoverongaps": False, "showlegend": False, "name": stat,
                       "colorbar": {"title": {"text": stat, "font": {"size": 15}}, "len": y_dom[1] - y_dom[0],
                                    "y": (y_dom[0] + y_dom[1]) / 2, "yanchor": "middle", "thickness": 18,
                                    "tickfont": {"size": 14}},
                       "hovertemplate": f"step %{{x}}<br>channel %{{y}}<br>{stat} %{{z:.3f}}<extra></extra>"})
        layout[_axis_key(yref)]["title"] = _axis_title("channel")
    layout[_axis_key(refs[-1][0])]["title"] = _axis_title("training step")
    return _finish(traces, layout, title, height=height, subtitles=True, hovermode="closest")


def running_vs_batch(history: History | None, layer: int | str = 0, stat: str = "mean", channels: int = 4
                     ) -> go.Figure:
    """For the first few channels: this batch's statistic (thin, noisy) and the running estimate used in eval
    mode (thick) of a batch-norm layer's input."""
    if stat not in ("mean", "var"):
        raise ValueError(f"stat={stat!r} is not allowed: use 'mean' or 'var'")
    word = {"mean": "mean", "var": "variance"}[stat]
    if not _rows(history):
        return _message(f"Batch {word} vs running {word}")
    layer = _layer_index(history, layer)
    name = history.layout.layers[layer]
    if not history.layout.norm_layers:
        return _message(f"{name}: batch {word} vs running {word}", _no_norm_text(history, "running statistic"))
    title = f"{name}: batch {word} (thin) vs running {word} (thick) of the {_norm_name(history)} input"
    found = _norm_slice(history, layer)
    if found is None:
        return _message(title, f"{name} has no normalization layer.")
    sl, _ = found
    idx = even_rows(len(history))
    x = history.steps[idx]
    values = history.column("channels")[idx, sl, :]
    batch = values[:, :, CHANNEL_STATS.index(f"batch_{stat}")]
    running = values[:, :, CHANNEL_STATS.index(f"running_{stat}")]
    if not np.isfinite(running).any():
        return _message(title, f"This {_norm_name(history)} keeps no running statistics: it normalizes with<br>"
                               "the statistics of each sample, the same in training and evaluation.")
    traces = []
    for c in range(min(channels, sl.stop - sl.start)):
        colour = BLOCK_PALETTE[c % len(BLOCK_PALETTE)]
        group = f"channel {c + 1}"
        traces.append(_line(x, _finite(batch[:, c]), f"{group} batch", colour, width=1.2, legendgroup=group,
                            showlegend=False, opacity=0.6,
                            hovertemplate=f"{group} batch %{{y:.3g}}<extra></extra>"))
        traces.append(_line(x, _finite(running[:, c]), group, colour, width=4, legendgroup=group,
                            hovertemplate=f"{group} running %{{y:.3g}}<extra></extra>"))
    y_title = {"mean": "mean of the input", "var": "variance of the input"}[stat]
    return _finish(traces, {}, title, "training step", y_title, hovermode="closest")


def train_eval_gap(runs) -> go.Figure:
    """Test accuracy in eval mode (running statistics, solid) and in train mode (each test batch normalized with
    its own statistics, dashed), one colour per run."""
    runs = _as_runs(runs)
    title = "Test accuracy: eval mode vs train mode"
    live = [(label, h) for label, h in runs if _rows(h)]
    if not live:
        return _message(title)
    colours = run_colors(label for label, _ in runs)
    traces = []
    for label, h in live:
        for column, mode, dash in (("test_acc", "eval mode", "solid"), ("test_acc_train_mode", "train mode", "dash")):
            x, y = _sparse(h.steps, h.scalar(column))
            traces.append(_line(x, y, f"{label}: {mode}", colours[label], dash=dash, mode="lines+markers",
                                marker={"size": 7, "symbol": "circle" if dash == "solid" else "x"},
                                legendgroup=label, hovertemplate="%{y:.1%}"))
    layout = {"yaxis": {"range": [0, 1.02], "tickformat": ".0%"}}
    if not any(len(t["x"]) for t in traces):
        layout["annotations"] = [_note("no evaluation yet", 0.5, 0.5, size=20, xanchor="center", yanchor="middle",
                                       color="#777777")]
    return _finish(traces, layout, title, "training step", "test accuracy")


def ics_measure(runs) -> go.Figure:
    """Santurkar et al.'s gradient ICS per block: ||G - G'|| (left, log scale) and cos(G, G') (right), where G' is
    the weight gradient recomputed on the same batch after the earlier blocks took their update."""
    runs = _as_runs(runs)
    title = "Gradient-based internal covariate shift (Santurkar et al. 2018)"
    live = [(label, h) for label, h in runs if _rows(h)]
    if not live:
        return _message(title)
    colours = run_colors(label for label, _ in runs)
    layout, refs, _ = _subplots(1, 2, titles=["||G − G′|| (change of the gradient)",
                                              "cos(G, G′) (1 = same direction)"], hspace=0.1)
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    traces, unmeasured = [], []
    for label, h in live:
        ics = h.column("ics")
        measured = np.isfinite(ics).any(axis=(0, 2))  # (blocks,)
        if not measured.any():
            every = _config(h).get("ics_every")
            unmeasured.append(label if every else f"{label} (ics_every = 0)")
            continue
        for layer in np.flatnonzero(measured):
            name = f"{label}: {h.layout.layers[layer]}"
            for j, (stat, (xref, yref)) in enumerate(zip(ICS_STATS, refs)):
                x, y = _sparse(h.steps, ics[:, layer, j])
                traces.append(_line(x, _positive(y) if stat == "ics_l2" else y, name, colours[label], width=2.5,
                                    dash=dashes[(layer - 1) % len(dashes)], xref=xref, yref=yref,
                                    mode="lines+markers", marker={"size": 6}, legendgroup=name, showlegend=j == 0,
                                    hovertemplate=f"{name}: %{{y:.3g}}<extra></extra>"))
    if not traces:
        return _message(title, "Gradient ICS was not measured in this run: set ics_every > 0<br>"
                               "(each measurement costs one extra forward and backward pass per block).")
    layout["xaxis"]["title"] = layout["xaxis2"]["title"] = _axis_title("training step")
    layout["yaxis"].update(title=_axis_title("L2 norm (log scale)"), type="log", exponentformat="power")
    layout["yaxis2"].update(title=_axis_title("cosine similarity"))
    note = "not measured: " + ", ".join(unmeasured) if unmeasured else None
    return _finish(traces, layout, title, subtitles=True, hovermode="closest", note=note)


# ---- catalog -----------------------------------------------------------------------------------------------------
CAPTIONS: dict[str, str] = {
    "loss_accuracy": (
        "Left: the training loss of each step's mini-batch (noisy, because every batch differs). Right: accuracy "
        "on a fixed subset of the test set in eval mode, measured every few steps. Higher and sooner is better."),
    "train_eval_gap": (
        "The same network scored two ways: in eval mode batch norm uses its running statistics (solid); in train "
        "mode each test batch is normalized with its own statistics (dashed). With small batches the two differ; "
        "a network without batch-dependent layers scores the same in both. Forgetting model.eval() before testing "
        "is a classic bug."),
    "distribution": (
        "Each column is the histogram of this block's values at one step (darker = more values; white = none), on "
        "bins fixed at step 0; the orange lines are the exact 15th, 50th and 85th percentiles. A band that moves or "
        "widens means the layers after it see a changing input distribution, the 'internal covariate shift' Ioffe "
        "& Szegedy (2015) designed batch norm to reduce. Whether reducing it is why batch norm helps is debated "
        "(Santurkar et al. 2018)."),
    "distribution_grid": (
        "One heatmap per block (rows) and run (columns) on shared axes: compare how far each run's distributions "
        "move and spread over training. Darker = more values; orange lines: 15th, 50th and 85th percentiles."),
    "histogram": (
        "The latest histogram (bars) over the one at step 0 (outline), on the same fixed bins. The note gives the "
        "share of values that fell outside the bins, below or above."),
    "percentiles": (
        "Like Figure 1 (b, c) of Ioffe & Szegedy (2015): the median (solid) and the 15th and 85th percentiles "
        "(dashed) of the input to a nonlinearity over training. Without batch norm they typically drift and spread; "
        "with batch norm before the activation they stay nearly put, because every batch is re-centred and "
        "re-scaled (gamma and beta can still move them slowly)."),
    "saturation": (
        "For tanh and sigmoid: the share of outputs in the flat ends of the curve, where the gradient almost "
        "vanishes (saturated). For ReLU: the share of outputs that are exactly zero; about half is normal, a share "
        "near 1 means units are dying (a unit that is zero for every input never learns again)."),
    "drift": (
        "One number per block for how far its value distribution has moved: the 1-Wasserstein (earth mover's) "
        "distance from the distribution at step 0, divided by the standard deviation at step 0, so blocks compare. "
        "It measures the distribution shift the original batch-norm paper talks about, not how much that shift "
        "hurts training. Values beyond the fixed bins count at the nearest edge, so a curve flattens once its "
        "distribution has left the range (the figure says when)."),
    "gradient_norms": (
        "The size (L2 norm) of the loss gradient arriving at each block's activation input, log scale. Curves that "
        "sit decades apart, falling with depth from the output, show vanishing gradients; rising without bound, "
        "exploding ones. Compare runs with and without normalization."),
    "gradient_histogram": (
        "How the gradient values are spread over orders of magnitude: each column is a histogram of log10 |gradient| "
        "at one step (darker = more values). Exact zeros, e.g. behind inactive ReLUs, are counted separately; values "
        "beyond the range land in the end rows."),
    "update_data": (
        "How much each step changes each weight matrix, relative to its size: std(update) / std(weight), log scale. "
        "Karpathy's rule of thumb is about 1e-3 (dashed): far below, learning is slow; far above, it may be unstable. "
        "A heuristic for plain SGD, not a law."),
    "grad_data": (
        "The gradient's size relative to the weights it updates: std(gradient) / std(weight), log scale. Layers far "
        "apart here learn at very different speeds with one shared learning rate."),
    "gamma_beta": (
        "The normalization layer's learned per-channel scale gamma (starts at 1) and shift beta (starts at 0). "
        "After normalizing, "
        "the layer multiplies by gamma and adds beta, so the network can undo the normalization where that helps: "
        "red = above the starting value, blue = below."),
    "running_mean": (
        "Per channel, the mean of the batch-norm input in this batch (thin, noisy; used in training) and the running "
        "estimate used in eval mode (thick). PyTorch updates it as running = (1 − momentum) · running + momentum · "
        "batch value, momentum 0.1 by default."),
    "running_var": (
        "Per channel, the variance of the batch-norm input in this batch (thin; the biased 1/m variance used to "
        "normalize in training) and the running estimate used in eval mode (thick; PyTorch averages the unbiased "
        "m/(m − 1) variance). Small batches make the thin line noisy and the two modes disagree."),
    "ics": (
        "Santurkar et al.'s (2018) gradient measure of internal covariate shift: how much a block's weight gradient "
        "changes when the earlier blocks take their update first, on the same batch (||G − G′||, and the cosine: "
        "1 = unchanged). In their experiments this shift was not smaller with batch norm, one reason why 'batch norm "
        "works by reducing internal covariate shift' is a hypothesis, not the established explanation; they point "
        "to a smoother loss landscape instead."),
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "layer"


def figure_catalog(history: History | None) -> dict[str, go.Figure]:
    """Every figure that makes sense for one run, keyed by a file-friendly name (captions: `caption(key)`).

    Keys: "loss_accuracy", "train_eval_gap", "distribution_<block>_<stage>", "histogram_<block>_<stage>",
    "percentiles_<block>_<stage>", "saturation", "drift", "gradient_norms", "gradient_histogram_<block>_<stage>",
    "update_data", "grad_data", and with normalization "gamma_beta_<block>", "running_mean_<block>",
    "running_var_<block>"; "ics" when it was measured.
    """
    if history is None:
        return {"loss_accuracy": loss_accuracy([])}
    runs = [("run", history)]
    layers = [_slug(name) for name in history.layout.layers]
    out: dict[str, go.Figure] = {"loss_accuracy": loss_accuracy(runs)}
    if np.isfinite(history.scalar("test_acc_train_mode")).any() or not len(history):
        out["train_eval_gap"] = train_eval_gap(runs)
    for layer, name in enumerate(layers):
        for probe_layer, stage in history.layout.probes:
            if probe_layer == layer:
                out[f"distribution_{name}_{stage}"] = distribution_heatmap(history, layer, stage)
    for layer, name in enumerate(layers):
        stage = activation_input_stage(history, layer)
        out[f"histogram_{name}_{stage}"] = histogram_now_vs_start(history, layer, stage)
        out[f"percentiles_{name}_{stage}"] = percentile_lines(runs, layer, stage)
    out["saturation"] = saturation(history)
    out["drift"] = drift(history)
    out["gradient_norms"] = gradient_norms(history)
    for layer, name in enumerate(layers):
        stage = activation_input_stage(history, layer)
        out[f"gradient_histogram_{name}_{stage}"] = gradient_histogram(history, layer, stage)
    out["update_data"] = update_ratios(history, "update_data")
    out["grad_data"] = update_ratios(history, "grad_data")
    for layer, kind, _ in history.layout.norm_layers:
        name = layers[layer]
        out[f"gamma_beta_{name}"] = gamma_beta(history, layer)
        if kind == "batch":
            out[f"running_mean_{name}"] = running_vs_batch(history, layer, "mean")
            out[f"running_var_{name}"] = running_vs_batch(history, layer, "var")
    if np.isfinite(history.column("ics")).any():
        out["ics"] = ics_measure(runs)
    return out

