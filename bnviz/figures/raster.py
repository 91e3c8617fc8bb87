"""Density heatmaps as small PNG images placed on a plot's axes (pure: numpy and Pillow, no Streamlit).

Why: a Plotly `heatmap` trace is coloured cell by cell in the browser (a `fillRect` per cell into a canvas the size
of the plot, then a PNG encode), which for the live grid of 2 runs x 3 blocks x 64 bins x 200 steps costs the
browser hundreds of milliseconds per refresh, twice a second, on the same two cores that train. The same picture
as a layout image is one PNG of bins x columns pixels, coloured here with a lookup table and stretched by the
browser: measured about 3.5x less browser time per refresh (scripts/measure_live.py has the live numbers).

What is lost: hovering a cell no longer shows its value (the percentile lines on top still do). What is kept
exact: every column is the histogram recorded at the step nearest to its place on an evenly spaced step grid
(`uniform_columns`), the image spans exactly the bin edges and the steps, and NaN cells are transparent.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.colors as pcolors
from PIL import Image

LUT_SIZE = 256


def colour_table(colorscale: list[list], size: int = LUT_SIZE) -> np.ndarray:
    """(size, 3) uint8 RGB colours of `colorscale` (Plotly [[position, colour], ...]) at evenly spaced positions."""
    colours = pcolors.sample_colorscale(colorscale, list(np.linspace(0.0, 1.0, size)))
    rgb = [pcolors.unlabel_rgb(c) if c.startswith("rgb") else pcolors.hex_to_rgb(c) for c in colours]
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64)), 0, 255).astype(np.uint8)


def uniform_columns(steps: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` rows whose steps sit nearest to an evenly spaced grid from the first to the last step.

    Returns (rows, grid): the history row shown in each column and the column's step on the grid. Equal-width
    image columns are then placed where they belong on a linear step axis.
    """
    steps = np.asarray(steps, dtype=np.float64)
    n = len(steps)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if n == 1:
        return np.zeros(1, np.int64), steps.copy()
    columns = max(2, min(limit, n))
    grid = np.linspace(steps[0], steps[-1], columns)
    right = np.clip(np.searchsorted(steps, grid), 1, n - 1)
    left = right - 1
    rows = np.where(grid - steps[left] <= steps[right] - grid, left, right)
    return rows.astype(np.int64), grid


def png_data_uri(z: np.ndarray, zmax: float, table: np.ndarray, zmin: float = 0.0) -> str:
    """A (rows, columns) array as a PNG data URI, row 0 at the bottom; values scaled linearly from zmin to zmax
    onto the colour table (clipped at both ends); NaN cells are transparent.

    Without NaN cells the PNG is a palette image (one byte per pixel, the table as its palette): the same pixels as
    RGBA, in about half the bytes and an eighth of the encoding time (sent twice a second by live pages)."""
    z = np.asarray(z, dtype=np.float64)
    span = zmax - zmin if zmax > zmin else 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.clip((z - zmin) / span, 0.0, 1.0)
    finite = np.isfinite(scaled)
    index = np.rint(np.where(finite, scaled, 0.0) * (len(table) - 1)).astype(np.intp)
    if finite.all() and len(table) <= 256:
        image = Image.fromarray(np.ascontiguousarray(index[::-1].astype(np.uint8)), "P")
        image.putpalette(np.ascontiguousarray(table, dtype=np.uint8).tobytes())
    else:
        rgba = np.empty((*z.shape, 4), np.uint8)
        rgba[..., :3] = table[index]
        rgba[..., 3] = np.where(finite, 255, 0)
        image = Image.fromarray(np.ascontiguousarray(rgba[::-1]), "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def layout_image(source: str, x_range: tuple[float, float], y_range: tuple[float, float], xref: str, yref: str
                 ) -> dict:
    """A Plotly layout image stretched over [x0, x1] x [y0, y1] in data coordinates, under the traces."""
    (x0, x1), (y0, y1) = x_range, y_range
    return {"source": source, "xref": xref, "yref": yref, "x": x0, "y": y1, "sizex": x1 - x0, "sizey": y1 - y0,
            "xanchor": "left", "yanchor": "top", "sizing": "stretch", "layer": "below"}


def column_span(grid: np.ndarray) -> tuple[float, float]:
    """The step range covered by equal-width columns centred on `grid` (one step wide for a single column)."""
    if len(grid) < 2:
        centre = float(grid[0]) if len(grid) else 0.0
        return centre - 0.5, centre + 0.5
    half = (grid[-1] - grid[0]) / (len(grid) - 1) / 2
    return float(grid[0] - half), float(grid[-1] + half)


FEW_STEPS = 4  # a step axis spanning at most this many steps is ticked at each whole step (step_axis)
RIGHT_END_CLEAR = 0.1  # a grid column's step labels leave this share of its span free at the right end (step_axis)


def nice_step(rough: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten that is at least `rough` (> 0): plotly's tick spacing."""
    base = 10.0 ** math.floor(math.log10(rough))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= rough * (1 - 1e-9))


def step_axis(span: tuple[float, float], ticks: int | None = None) -> dict:
    """The x axis over columns of training steps spanning `span` (column_span): its range and, when it spans only a
    few steps (the first chart after Start: step 0 alone), a tick at each whole step, where plotly would tick -0.5,
    0 and 0.5 (in a grid, that "0.5" ran into the next column's "-0.5").

    ticks: for a column of a grid, at most about this many ticks at plotly's spacing (nice_step), none in the last
    RIGHT_END_CLEAR of the span: a column's last label (a 400-step run's "400") ran into the next column's "0" (in
    presenter mode and on a phone). bnviz.ui.plot drops every other one where they still do not fit."""
    axis = {"range": list(span)}
    lo, hi = span
    if hi - lo <= FEW_STEPS:
        axis["tickvals"] = list(range(math.ceil(lo), math.floor(hi) + 1))
    elif ticks:
        dtick = nice_step((hi - lo) / ticks)
        first, last = math.ceil(lo / dtick) * dtick, hi - RIGHT_END_CLEAR * (hi - lo)
        values = [first + i * dtick for i in range(int((last - first) // dtick) + 1)]
        axis["tickvals"] = [int(v) if float(v).is_integer() else v for v in values]
    return axis
