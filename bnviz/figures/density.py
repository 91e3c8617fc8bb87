"""Density heatmaps of histograms over training steps: their colour scale, its top, and the image that draws them.

A heatmap column is the histogram of a block's values (or gradients) at one step, coloured by the fraction of
values per bin. The cells are drawn as one raster image per heatmap (`bnviz.figures.raster`), on a colour axis
(`density_coloraxis`) whose colorbar an invisible trace makes Plotly draw (`density_colorbar_trace`).
"""

from __future__ import annotations

import numpy as np
import plotly.colors as pcolors

from . import raster


def _sqrt_colorscale(name: str, stops: int = 13) -> list[list]:
    """`name`'s colours placed so that colour varies with sqrt(z): z itself stays the true value (for hover and
    the colorbar's ticks) while small fractions still get visibly different colours."""
    t = np.linspace(0.0, 1.0, stops)
    colours = pcolors.sample_colorscale(name, list(t))
    scale = [[float(p), c] for p, c in zip(t**2, colours, strict=True)]
    scale[0][1] = "rgb(255,255,255)"  # an empty bin is white, like the background
    return scale


DENSITY_SCALE = _sqrt_colorscale("YlGnBu")  # fraction of values per bin (white = none, dark blue = most)
DENSITY_TABLE = raster.colour_table(DENSITY_SCALE)  # the same scale as 256 RGB colours, for raster images
DENSITY_COLORBAR_TITLE = "fraction<br>of values<br>(√ scale)"
DENSITY_TOP_QUANTILE = 0.99  # colour-scale top, as a quantile of the heatmap's cells (see density_top)
DOMINANT_BIN = 3.0  # a bin holding this many times more than any other is left out of the colour scale


def density_top(z: np.ndarray) -> float:
    """Top of the colour scale for a (bins, columns) heatmap: the 99th percentile of its cells, leaving out a bin
    that dominates all others (ReLU's zeros, a saturated sigmoid) so it does not wash out the rest of the
    distribution; cells above the top get the darkest colour (hover shows their value)."""
    totals = np.where(np.isfinite(z), z, 0.0).sum(axis=1)  # per bin, over all columns
    if totals.size > 2:
        second, first = np.sort(totals)[-2:]
        if first > DOMINANT_BIN * second:
            z = np.delete(z, int(np.argmax(totals)), axis=0)
    values = z[np.isfinite(z)]
    if not values.size or values.max() <= 0:
        return 1.0
    top = float(np.quantile(values, DENSITY_TOP_QUANTILE))
    return top if top > 0 else float(values.max())


def density_image(facts: dict, zmax: float, xref: str, yref: str) -> dict:
    """The cell's histograms as a layout image coloured like DENSITY_SCALE with top zmax."""
    source = raster.png_data_uri(facts["z"], zmax, DENSITY_TABLE)
    return raster.layout_image(source, facts["xspan"], facts["edges"], xref, yref)


def density_colorbar_trace(xref: str, yref: str) -> dict:
    """An invisible trace on the density colour axis: it makes Plotly draw that axis's colorbar for the images."""
    return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "xaxis": xref, "yaxis": yref,
            "marker": {"coloraxis": "coloraxis", "color": [0.0]}, "showlegend": False, "hoverinfo": "skip",
            "name": "density"}


# The colorbar starts at the plot's right edge, padded by DENSITY_COLORBAR_PAD_PX on each side, so the right margin
# it needs is the same at every chart width; a figure with it reserves that margin (finish(right=...)). Plotly
# otherwise first lays the chart out with the figure's narrower margin and then, its colorbar not fitting, lays out
# and draws everything again: measured in Chromium, the first draw of Home's distribution grid took ~110 instead
# of ~145 ms. (Plotly's default x=1.02 of the plot's width needed 95-114 px from a phone to a wide screen.)
DENSITY_COLORBAR_PAD_PX = 15
DENSITY_MARGIN_PX = 72 + 2 * DENSITY_COLORBAR_PAD_PX  # colorbar, its tick labels and title, at their font sizes


def density_coloraxis(zmax: float) -> dict:
    """The colour axis the density images are drawn on: DENSITY_SCALE from 0 to zmax, with its colorbar."""
    return {"colorscale": DENSITY_SCALE, "cmin": 0.0, "cmax": zmax,
            "colorbar": {"title": {"text": DENSITY_COLORBAR_TITLE, "font": {"size": 15}}, "thickness": 18,
                         "tickfont": {"size": 14}, "len": 1.0, "y": 0.5, "yanchor": "middle",
                         "x": 1.0, "xanchor": "left", "xpad": DENSITY_COLORBAR_PAD_PX}}
