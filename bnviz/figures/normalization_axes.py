"""Pictures of which values one normalization averages together: the step-by-step page's and the zoo's.

Both draw a batch as a grid of samples (rows) x channels (columns), each cell one sample's H x W feature map, and
colour the set that `bnviz.science.normalization_axes.norm_mask` marks: `axes_figure` one kind at a time, every
value a square (the "BatchNorm step by step" page); `normalization_zoo` the four kinds side by side, after Wu & He
(2018), Figure 2 (the normalization zoo page).
"""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.graph_objects as go

from ..science.normalization_axes import EXAMPLE_GROUPS, EXAMPLE_SHAPE, norm_mask
from .style import FONT, OKABE_ITO, Figure, axis_title, finish, subplots, update_layout

HIGHLIGHT = OKABE_ITO["blue"]  # the values that share one mean and variance
OTHER_CELL = "#D9D9D9"  # the zoo's other values
STEP_OTHER_CELL = "#DDDDDD"  # the step-by-step page's other values (its squares are smaller, with wider gaps)
ZOO = (
    ("Batch norm", "per channel, over N, H, W", "batch"),
    ("Layer norm", "per sample, over C, H, W", "layer"),
    ("Instance norm", "per sample and channel, over H, W", "instance"),
    ("Group norm", "per sample, over a channel group, H, W", "group"),
)
# The zoo's batch: 4 samples x 6 channels of 3 x 3 feature maps, 3 groups of 2 channels; the set shown is that of
# sample 2, channel 3 (0-based 1 and 2), so that no kind's set starts at the grid's corner.
ZOO_SAMPLE, ZOO_CHANNEL = 1, 2
# px: a 2 x 2 grid (four panels in a row left each under 200 px on a projector, and their titles ran together),
# room for a three-line subplot title above each panel, a note below
ZOO_HEIGHT, ZOO_TOP_PX, ZOO_BOTTOM_PX = 960, 140, 60
ZOO_SUBTITLE_CHARS = 14  # a subplot title's lines: fits half the chart on a 390 px phone at 16 px
STEP_FONT_SIZE = 18  # the step-by-step page shows this figure alone, full width
STEP_MARGIN = {"l": 120, "r": 10, "t": 90, "b": 50}  # px: "sample 3" labels left, channel labels on top, note below
STEP_FRAME_PX, STEP_ROW_PX = 160, 34  # step figure height: axis titles and note, plus px per row of squares


def _numbers(indices, noun: str) -> str:
    """0-based indices as words, 1-based: "channel 3", "samples 1 to 4", "channels 1, 3"."""
    idx = sorted(int(i) + 1 for i in indices)
    if len(idx) == 1:
        return f"{noun} {idx[0]}"
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{noun}s {idx[0]} to {idx[-1]}"
    return f"{noun}s " + ", ".join(map(str, idx))


def mask_words(mask: np.ndarray) -> str:
    """Which samples and channels a normalization's set (`norm_mask`, (N, C[, H, W])) holds, in words."""
    cells = mask.reshape(mask.shape[0], mask.shape[1], -1).any(axis=2)
    samples, channels = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    return f"{_numbers(samples, 'sample')}, {_numbers(channels, 'channel')}"


def _cell_grid(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """z of a heatmap showing `mask` (N, C[, H, W]) as N x C cells of h x w squares (1 in the set, 0 not), with a
    one-square gap (NaN: not drawn) between cells."""
    n, c = mask.shape[:2]
    z = np.full((n * (h + 1) - 1, c * (w + 1) - 1), np.nan)
    for i in range(n):
        for j in range(c):
            z[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = mask[i, j]
    return z


def _centres(count: int, size: int) -> list[float]:
    """Axis positions of the middles of `count` cells of `size` squares separated by one-square gaps."""
    return [i * (size + 1) + (size - 1) / 2 for i in range(count)]


def axes_figure(kind: str, shape: tuple[int, int, int, int] = EXAMPLE_SHAPE, sample: int = 0, channel: int = 0,
                groups: int = EXAMPLE_GROUPS) -> go.Figure:
    """Every value of an (N, C, H, W) tensor as a small square (rows: samples, columns: channels, each an H x W
    grid); the blue squares are averaged together into one mean and one variance. groups: group norm's number of
    groups."""
    n, c, h, w = shape
    mask = norm_mask(kind, shape, sample, channel, groups)
    fig = go.Figure(go.Heatmap(z=_cell_grid(mask, h, w), zmin=0, zmax=1, showscale=False, hoverinfo="skip",
                               xgap=3, ygap=3, colorscale=[[0, STEP_OTHER_CELL], [1, HIGHLIGHT]]))
    fig.update_xaxes(tickvals=_centres(c, w), side="top", ticks="", constrain="domain",
                     ticktext=[f"channel {j + 1}" for j in range(c)], showgrid=False, zeroline=False,
                     title={"text": "C: channels", "standoff": 6})
    fig.update_yaxes(tickvals=_centres(n, h), autorange="reversed", ticks="",
                     ticktext=[f"sample {i + 1}" for i in range(n)], showgrid=False, zeroline=False,
                     scaleanchor="x", constrain="domain", title={"text": "N: samples", "standoff": 6})
    m = int(mask.sum())
    summary = (f"A batch of {n} samples by {c} channels, each a {h} by {w} feature map. Blue: the {m} values "
               f"averaged into one mean and one variance: all {h * w} positions of {mask_words(mask)}.")
    fig.update_layout(font={**FONT, "size": STEP_FONT_SIZE}, height=STEP_FRAME_PX + STEP_ROW_PX * n * (h + 1),
                      plot_bgcolor="white", margin=STEP_MARGIN, paper_bgcolor="white",
                      annotations=[{"text": f"blue: the {m} values behind one mean and one variance",
                                    "xref": "paper", "yref": "paper", "x": 0, "y": -0.02, "yanchor": "top",
                                    "showarrow": False, "font": {"size": 16}}], meta={"summary": summary})
    return fig


def normalization_zoo(n: int = 4, c: int = 6, hw: int = 3, groups: int = 3) -> Figure:
    """Wu & He's Figure 2 in 2-D: a batch of n samples (rows) x c channels (columns); each cell is one sample's
    h x w feature map (hw x hw pixels). Blue: the values whose mean and variance one normalization computes
    together (one set; the layer does the same for every other set of that shape). groups: group norm's number of
    groups (c must be divisible by it)."""
    title = "Which values are normalized together? (after Wu & He 2018, Figure 2)"
    titles = [f"<b>{name}</b><br>" + "<br>".join(textwrap.wrap(what, ZOO_SUBTITLE_CHARS)) for name, what, _ in ZOO]
    layout, refs, _ = subplots(2, 2, titles=titles, hspace=0.1, vspace=0.27, shared_x=False)
    for subtitle in layout["annotations"]:
        subtitle["font"] = {"size": 16}
    traces, words = [], []
    for (name, what, kind), (xref, yref) in zip(ZOO, refs, strict=True):
        mask = norm_mask(kind, (n, c), ZOO_SAMPLE, ZOO_CHANNEL, groups)
        words.append(f"{name} ({what}): blue set is {mask_words(mask)}")
        z = _cell_grid(mask, hw, hw)
        text = np.full(z.shape, "", dtype=object)
        for s in range(n):
            for ch in range(c):
                state = "in the normalized set" if mask[s, ch] else "normalized in another set"
                text[s * (hw + 1):s * (hw + 1) + hw, ch * (hw + 1):ch * (hw + 1) + hw] = \
                    f"sample {s + 1}, channel {ch + 1}<br>({hw}x{hw} feature map): {state}"
        traces.append({"type": "heatmap", "z": z, "text": text, "hovertemplate": "%{text}<extra></extra>",
                       "colorscale": [[0, OTHER_CELL], [1, HIGHLIGHT]], "zmin": 0, "zmax": 1, "showscale": False,
                       "xaxis": xref, "yaxis": yref, "xgap": 1, "ygap": 1, "hoverongaps": False, "name": name})
        x_axis, y_axis = layout[f"xaxis{xref[1:]}"], layout[f"yaxis{yref[1:]}"]
        x_axis.update(tickvals=_centres(c, hw), ticktext=[str(i + 1) for i in range(c)],
                      title=axis_title("channel C"), showgrid=False, zeroline=False, constrain="domain")
        y_axis.update(tickvals=_centres(n, hw), ticktext=[str(i + 1) for i in range(n)], autorange="reversed",
                      showgrid=False, zeroline=False, scaleanchor=xref, constrain="domain")
        if xref in ("x", "x3"):  # the left column
            y_axis["title"] = axis_title("sample N")
    note = (f"Each grey or blue square is one sample's {hw}x{hw} feature map (H x W). Blue: one set whose mean and "
            f"variance are computed together. Group norm here: groups of {c // groups} channels "
            "(1 group = layer norm, one channel per group = instance norm).")
    fig = finish(traces, layout, title, height=ZOO_HEIGHT, subtitles=True, hovermode="closest", note=note,
                 bottom=ZOO_BOTTOM_PX)
    summary = (f"{title} A batch of {n} samples by {c} channels of {hw} by {hw} feature maps, four panels. "
               + "; ".join(words) + ".")
    return update_layout(fig, {"margin": {"t": ZOO_TOP_PX}, "meta": {"summary": summary}})
