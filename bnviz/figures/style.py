"""The shared look of every bnviz figure, and the helpers that build it: colours, fonts, sizes and `finish`.

Every figure is
* light: a handful of traces (heatmaps, or several curves joined into one trace with NaN gaps) and at most
  `MAX_POINTS` columns, picked as evenly spaced rows of the history (`even_rows`: the first and the last are always
  kept), so a page can rebuild it twice a second;
* readable on a projector: one shared style (`finish`: 16 px text, 22 px titles, `plotly_white`), axis titles with
  their units (`axis_title`), colours with 3:1 on white that colour-blind readers tell apart (`PALETTE`), and the
  same colour, dash and marker for a run label or a block in every figure (`run_styles`, `block_line`);
* robust: an empty history (or None) gives a figure that says "waiting for the first step..." (`message`), and NaN
  values are gaps (`finite`).

Builders return a `Figure`: a `go.Figure`, or inside `plain_figures()` the same figure as a plain dict, which live
pages send twice a second at a fraction of the cost. `fit_width` and `enlarge_text` adapt either form to a page.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import math
import textwrap
import threading
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.basevalidators import is_homogeneous_array
from _plotly_utils.utils import convert_to_base64, to_typed_array_spec  # plotly's steps from numpy to typed arrays

Figure = go.Figure | dict  # what a builder returns: a go.Figure, or a plain dict inside `plain_figures()`

MAX_POINTS = 600  # columns / points per trace: enough for a 1,200 px wide chart, cheap to rebuild at 2 Hz
WAITING = "waiting for the first step..."

OKABE_ITO = {  # Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
# The colours lines are drawn in. Okabe-Ito's orange (2.25:1 on white) and sky blue (2.31:1) are too light for lines
# (WCAG 2.2 SC 1.4.11 asks 3:1 for graphics), and its grey block colour #888888 met green and purple under
# deuteranopia. Their stand-ins were picked by hand near the candidates scripts/palette_search.py lists, which also
# prints the check: each passes 3:1 on white, and any two colours here stay at least 11.6 CAM02-UCS apart with normal
# vision and under simulated deuteranopia, protanopia and tritanopia (tests/test_vision.py requires 10). A darker
# orange cannot: it meets vermillion under all three, hence burnt orange; a darker sky blue meets blue or green.
PALETTE = {
    "blue": OKABE_ITO["blue"], "vermillion": OKABE_ITO["vermillion"], "green": OKABE_ITO["green"],
    "purple": OKABE_ITO["purple"], "black": OKABE_ITO["black"],
    "burnt orange": "#9C4800",  # 6.29:1 on white (Okabe-Ito orange #E69F00: 2.25:1)
    "periwinkle": "#7F8AE0",  # 3.18:1 (Okabe-Ito sky blue #56B4E9: 2.31:1)
    "grey": "#6E6E6E",  # 5.10:1 (#888888: 3.54:1, but close to green and purple under deuteranopia)
}
_C = PALETTE
# A run's colour follows its label, so "BN" is blue and "no BN" vermillion in every figure of every page.
RUN_COLORS = {
    "bn": _C["blue"], "with bn": _C["blue"], "batch": _C["blue"], "batch norm": _C["blue"],
    "no bn": _C["vermillion"], "without bn": _C["vermillion"], "none": _C["vermillion"], "no norm": _C["vermillion"],
    "noisy bn": _C["green"], "batch-noisy": _C["green"],
    "ln": _C["purple"], "layer": _C["purple"], "layer norm": _C["purple"],
    "gn": _C["burnt orange"], "group": _C["burnt orange"], "group norm": _C["burnt orange"],
    "in": _C["periwinkle"], "instance": _C["periwinkle"], "instance norm": _C["periwinkle"],
}
RUN_PALETTE = (_C["blue"], _C["vermillion"], _C["green"], _C["purple"], _C["burnt orange"], _C["periwinkle"],
               _C["black"])
# Blocks (and channels) in depth order; Okabe-Ito's yellow is left out: too pale on white for a projector.
BLOCK_PALETTE = (_C["blue"], _C["burnt orange"], _C["green"], _C["purple"], _C["vermillion"], _C["periwinkle"],
                 _C["black"], _C["grey"])
# Colour is never the only difference between two lines (WCAG 2.2 SC 1.4.1): each run and each block also has its
# own dash pattern, the same in every figure (a run's follows its colour, a block's its depth), and runs their own
# marker symbol where lines carry markers. Plotly's named dashes scale with the line width; the last two are ours
# (long dash and two dots; sparse dots). One per block colour, so blocks 9 and up (colours and dashes repeat) also
# get markers (`block_line`).
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "15px,4px,3px,4px,3px,4px", "2px,9px")
# Runs' markers follow RUN_PALETTE's order: BN circle, no BN x, noisy BN diamond, LN square, GN triangle (as the
# experiment figures drew them before), IN triangle down, then star and cross.
MARKERS = ("circle", "x", "diamond", "square", "triangle-up", "triangle-down", "star", "cross")
MARKERS_SHOWN = 12  # at most this many markers on a long line (plotly's marker.maxdisplayed): a pattern, not a blur
GUIDE_COLOR = "#444444"
GUIDE_DASH = "20px,6px"  # a guide line's dash (long dashes): none of `DASHES`, so no block's or run's
FONT = {"family": "Arial, Helvetica, sans-serif", "size": 16, "color": "#222222"}
TITLE_SIZE = 22
AXIS_TITLE_SIZE = 18
HEIGHT = 460  # px of a single chart; grids grow with their rows
_TITLE_PX, _LEGEND_PX, _LEGEND_ROW_PX, _SUBTITLE_PX = 14, 50, 30, 30  # top-margin layout, in pixels
_NOTE_LINE_PX = 20  # bottom margin per line of a note under the x axis
_LEGEND_GAP_PX = 6  # between the legend and the plot (or the subplot titles)
_NOTE_GAP_PX = 16  # between the x axis title and a note under it (8 px touched the title of a half-page chart)
_MIN_PLOT_PX = 50  # plot height assumed when placing a note, however many lines the note has
_LEFT_MARGIN_PX = 90  # room for tick labels and a two-line y axis title ("block1<br>value")
MUTED_TEXT = "#6B6B6B"  # grey text of a message in an empty panel: 5.3:1 on white (WCAG AA text needs 4.5:1)
NOTE_SIZE, NOTE_COLOR = 15, "#444444"  # a note under a chart: px and colour of its text
MESSAGE_SIZE = 20  # px of a centred message in an empty chart
# Characters per line of such a note: ~425 px at 15 px in DejaVu Sans (Linux's stand-in for Arial, the widest we
# have seen: 8.5 px a character), so a note fits under a chart in one of two page columns (~450 px of plot width).
_NOTE_CHARS = 50
_MESSAGE_CHARS = 40  # characters per line of a centred message at 20 px (~440 px): fits a chart in a page column
_TITLE_CHAR_EM = 0.52  # average width of a title character (Arial), in font sizes
_LEGEND_ROW_WIDTH = 580  # px of legend per row we plan for (a chart in Streamlit's centred layout is ~700 px)
TEMPLATE = pio.templates["plotly_white"]


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


def run_styles(labels: Iterable[str]) -> dict[str, dict[str, str]]:
    """{"color", "dash", "symbol"} per run label: its colour (`run_colors`) and the dash and marker symbol that go with
    that colour, so a run looks the same in every figure and two runs never differ by colour alone."""
    out = {}
    for label, colour in run_colors(labels).items():
        i = RUN_PALETTE.index(colour)
        out[label] = {"color": colour, "dash": DASHES[i % len(DASHES)], "symbol": MARKERS[i % len(MARKERS)]}
    return out


def block_color(layer: int) -> str:
    """The colour of a block (or channel) by its depth, the same in every figure."""
    return BLOCK_PALETTE[layer % len(BLOCK_PALETTE)]


def block_dash(layer: int) -> str:
    """The dash pattern of a block (or channel) by its depth, the same in every figure."""
    return DASHES[layer % len(DASHES)]


def markers(symbol: str, size: float = 7, *, every_point: bool = False) -> dict:
    """Trace properties for a line with markers of `symbol`: on every point (measured or evaluated steps, where a
    marker says "measured here") or at most MARKERS_SHOWN of them (a pattern along a long line, not a blur)."""
    return {"mode": "lines+markers",
            "marker": {"symbol": symbol, "size": size, "maxdisplayed": 0 if every_point else MARKERS_SHOWN}}


def block_line(x, y, name: str, layer: int, *, symbol: str | None = None, **extra) -> dict:
    """A line for a block (or channel) `layer`: its colour and its dash; from the ninth block on, where colours and
    dashes repeat, also a marker symbol (or `symbol`'s markers, for a second difference such as the stage)."""
    if symbol is None and layer >= len(BLOCK_PALETTE):
        symbol = MARKERS[(layer // len(BLOCK_PALETTE)) % len(MARKERS)]
    if symbol is not None:
        extra = {**markers(symbol), **extra}
    return line(x, y, name, block_color(layer), dash=block_dash(layer), **extra)


def finite(values: np.ndarray) -> np.ndarray:
    """float array with every non-finite value as NaN (a gap in plotly; inf would break the axis range)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def positive(values: np.ndarray) -> np.ndarray:
    """For log axes: zeros and negatives become gaps."""
    values = finite(values)
    return np.where(values > 0, values, np.nan)


def sparse(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the rows where `values` is finite (evaluated or measured steps), thinned to MAX_POINTS."""
    values = finite(values)
    keep = np.flatnonzero(np.isfinite(values))
    keep = keep[even_rows(len(keep))]
    return steps[keep], values[keep]


def line(x, y, name: str, color: str, *, width: float = 3, dash: str = "solid", xref: str = "x",
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


def finish(traces: list[dict], layout: dict, title: str, x_title: str | None = None, y_title: str | None = None,
           *, height: int = HEIGHT, subtitles: bool = False, hovermode: str | bool = "x unified",
           note: str | None = None, bottom: int = 70, right: int = 30) -> Figure:
    """Build the figure in one go, with the style all figures share.

    Big fonts, title top left, legend in a row under it (not on the right, where heatmaps put their colorbar); the
    top margin grows by one row per estimated row of legend entries, so entries never cover the data. `note`
    (lines joined by "<br>") goes under the x axis, where it cannot cover the data either. The figure is made by
    a single `go.Figure(data, layout)` call: `update_layout` on an existing figure costs 3-5 times more. Plotly's
    property validation is skipped (it took most of the build time, and a live page builds several figures twice
    a second in the process that trains); tests/test_charts.py validates every figure kind instead.
    """
    names = [t["name"] for t in traces if t.get("name") and t.get("showlegend", True)]
    rows = _legend_rows(list(dict.fromkeys(names)))
    top = _LEGEND_PX + rows * _LEGEND_ROW_PX + (_SUBTITLE_PX if subtitles else 0) + (_LEGEND_GAP_PX if rows else 0)
    height += max(0, rows - 2) * _LEGEND_ROW_PX  # a long legend (a watched model's 20 layers) must not eat the plot
    annotations = list(layout.get("annotations", []))
    if note:
        note = "<br>".join(textwrap.fill(part, _NOTE_CHARS).replace("\n", "<br>") for part in note.split("<br>"))
        lines = note.count("<br>") + 1
        plot_px = height - top - bottom - _NOTE_LINE_PX * lines - _NOTE_GAP_PX
        y = -(bottom + _NOTE_GAP_PX - 14) / max(plot_px, _MIN_PLOT_PX)  # a little under the axis title
        annotations.append(annotation(note, 0.0, y, size=NOTE_SIZE, color=NOTE_COLOR))
        bottom += _NOTE_LINE_PX * lines + _NOTE_GAP_PX
    layout = {
        **layout,
        "annotations": annotations,
        "title": {"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "yref": "container",
                  "y": 1 - _TITLE_PX / height, "yanchor": "top", "font": {"size": TITLE_SIZE}},
        "font": FONT,
        "height": height,
        "margin": {"l": _LEFT_MARGIN_PX, "r": right, "t": top, "b": bottom, "pad": 4},
        "showlegend": bool(rows),
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "xref": "container",
                   "y": 1 - _LEGEND_PX / height, "yref": "container", "yanchor": "top",
                   "font": {"size": 16}, "bgcolor": "rgba(255,255,255,0)", "itemwidth": 40},
        "hovermode": hovermode,
        "hoverlabel": {"font": {"size": 15}},
        "plot_bgcolor": "white",
    }
    if x_title is not None:
        _merge(layout, "xaxis", {"title": axis_title(x_title)})
    if y_title is not None:
        _merge(layout, "yaxis", {"title": axis_title(y_title)})
    if getattr(_PLAIN, "on", False):
        plain = {"data": traces, "layout": layout}
        typed_arrays(plain)  # numpy arrays as typed arrays, as go.Figure.to_dict sends them (in place: all new)
        plain["layout"] = {**layout, "template": _template_dict()}
        return plain
    fig = go.Figure(data=traces, layout=layout, _validate=False)
    _use_template(fig)
    return fig


_PLAIN = threading.local()  # per thread: do builders return plain dicts? (see plain_figures)

# What plotly's convert_to_base64 leaves alone (_plotly_utils.utils.is_skipped_key), and values it looks into for
# nothing: a string or a number is never an array (a numpy float is a float; other numpy scalars take the long way).
_SKIPPED_KEYS = frozenset({"geojson", "layer", "layers", "range"})
_SCALARS = (str, int, float, type(None))
_NARROWER = {"int64": (np.int8, np.int16, np.int32), "uint64": (np.uint8, np.uint16, np.uint32)}
_TYPED = {"float64": "f8", "float32": "f4", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2",
          "int32": "i4", "uint32": "u4"}


def typed_arrays(obj) -> None:
    """What plotly's `convert_to_base64` does to a figure dict, in place and with the same result: every numpy array
    that is a dict's value (not under a skipped key) becomes a typed-array spec {"dtype", "bdata"[, "shape"]}.

    Why not plotly's own: it asks of every value of the tree, strings and numbers too, whether it is an array
    (pandas, narwhals and `hasattr` checks), and copies every array through narwhals before encoding it; for a live
    distribution grid that was about 40 % of the figure's build time, in the process that trains. Anything else
    than a plain numpy array of a plotly.js typed-array dtype is handed to plotly's own functions."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, _SCALARS) or key in _SKIPPED_KEYS:
                continue
            if type(value) is np.ndarray:
                obj[key] = _typed_array(value)
            elif isinstance(value, (dict, list, tuple)):
                typed_arrays(value)
            elif is_homogeneous_array(value):
                obj[key] = to_typed_array_spec(value)
            else:
                convert_to_base64(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            if isinstance(value, (dict, list, tuple)):
                typed_arrays(value)


def _typed_array(v: np.ndarray):
    """`to_typed_array_spec(v)` for a numpy array: int64 and uint64 narrowed to the smallest type that holds every
    value (as plotly does), then base64 of the array's bytes."""
    name = str(v.dtype)
    if v.size == 0 or (name not in _TYPED and name not in _NARROWER):
        return to_typed_array_spec(v)  # empty (sent as a list), or a dtype plotly.js has no typed array for
    if name in _NARROWER:
        low, high = v.min(), v.max()
        for dtype in _NARROWER[name]:
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                v, name = v.astype(dtype), str(np.dtype(dtype))
                break
        else:
            return to_typed_array_spec(v)  # needs 64 bits: plotly sends it as a list
    spec = {"dtype": _TYPED[name], "bdata": base64.b64encode(np.ascontiguousarray(v)).decode("ascii")}
    if v.ndim > 1:
        spec["shape"] = str(v.shape)[1:-1]
    return spec


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


def fit_width(fig: Figure, width_px: int) -> Figure:
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
    return update_layout(fig, changes)


def enlarge_text(fig: Figure, size: int) -> Figure:
    """All text of `fig` at `size` px except its title and axis titles (presenter mode); returns the same figure."""
    return update_layout(fig, {"font": {"size": size}, "legend": {"font": {"size": size}},
                                "hoverlabel": {"font": {"size": size}}})


def update_layout(fig: Figure, changes: dict) -> Figure:
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

    Assigning a template validates it again (which costs more than building all the traces); plotly skips that for
    its own default template, which it also assumes valid. We do the same when plotly exposes the switch.
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


def axis_title(text: str) -> dict:
    """An axis title at the shared axis-title size."""
    return {"text": text, "font": {"size": AXIS_TITLE_SIZE}}


def message(title: str, text: str = WAITING, height: int = HEIGHT, chars: int = _MESSAGE_CHARS) -> Figure:
    """A figure with no data and a centred message (waiting for data, or why there is nothing to show); each
    "<br>"-separated line of `text` is wrapped at `chars` characters."""
    text = "<br>".join("<br>".join(textwrap.wrap(part, chars)) or part for part in text.split("<br>"))
    layout = {"xaxis": {"visible": False}, "yaxis": {"visible": False},
              "annotations": [annotation(text, 0.5, 0.5, size=MESSAGE_SIZE, xanchor="center", yanchor="middle")]}
    return finish([], layout, title, height=height, hovermode=False)


PREVIEW_HEIGHT = 300  # px of the chart frame a live page shows before its first run
_PREVIEW_CHARS = 58  # characters per line of a preview's text (20 px): fits a chart in two thirds of the page


def preview(title: str, text: str, height: int = PREVIEW_HEIGHT) -> Figure:
    """Where a live chart will appear and what it will show, before any run: an empty frame with `text` in it."""
    return message(title, text, height=height, chars=_PREVIEW_CHARS)


def annotation(text: str, x: float, y: float, *, xref: str = "paper", yref: str = "paper", size: int = 16,
               xanchor: str = "left", yanchor: str = "top", color: str = "#333333") -> dict:
    """A text annotation (no arrow) on a light background, at (x, y) of the paper or of an axis."""
    return {"text": text, "x": x, "y": y, "xref": xref, "yref": yref, "showarrow": False, "xanchor": xanchor,
            "yanchor": yanchor, "align": "left" if xanchor == "left" else "center",
            "font": {"size": size, "color": color}, "bgcolor": "rgba(255,255,255,0.85)"}


def subplots(rows: int, cols: int, *, titles: list[str] | None = None, hspace: float = 0.06,
             vspace: float = 0.08, shared_x: bool = True, shared_y_rows: bool = False
             ) -> tuple[dict, list[tuple[str, str]], list[tuple[list[float], list[float]]]]:
    """Axes for a rows x cols grid, built directly (a small fraction of what make_subplots costs).

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
                              "font": {"size": AXIS_TITLE_SIZE}, "yshift": 4,
                              # read by the live chart component: a title wider than its column is wrapped there
                              "name": f"subplot title {x_dom[1] - x_dom[0]:.4f}"})
    layout["annotations"] = notes
    return layout, refs, domains


def axis_key(ref: str) -> str:
    """"x3" -> "xaxis3", "y" -> "yaxis"."""
    return ref[0] + "axis" + ref[1:]


def padded(lo: float, hi: float, pad: float = 0.03) -> list[float]:
    """An axis range from lo to hi with `pad` of the span added on each side."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return [lo - pad * span, hi + pad * span]


def log_axis(span: tuple[float, float] | None = None) -> dict:
    """A log y axis labelled in powers of ten; over `span` (lo, hi > 0, padded by 3 % of its decades) if given.
    Spanning two decades or more it labels the decades only: plotly's 2 and 5 between them crowd each other."""
    axis = {"type": "log", "exponentformat": "power"}
    if span is not None and span[0] > 0:
        lo, hi = padded(math.log10(span[0]), math.log10(span[1]))
        axis["range"] = [lo, hi]
        if hi - lo >= 2:
            axis["dtick"] = 1
    return axis


def finite_range(*arrays) -> tuple[float, float] | None:
    """(smallest, largest) finite value of all `arrays`, or None if there is none."""
    values = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


