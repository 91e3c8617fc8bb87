"""figures.raster: density images placed on plot axes, checked against brute force and plotly's own colour sampling."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.colors as pcolors
import pytest
from PIL import Image

from bnviz.figures import raster


def _decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


@pytest.mark.parametrize("steps", [[0, 2, 4, 8, 16, 17], list(range(50)), [0, 1, 2, 3, 64, 128, 256, 511], [5, 900]])
@pytest.mark.parametrize("limit", [2, 3, 7, 600])
def test_uniform_columns_pick_the_nearest_recorded_step(steps, limit):
    steps = np.array(steps)
    rows, grid = raster.uniform_columns(steps, limit)
    assert len(rows) == len(grid) == max(2, min(limit, len(steps)))
    np.testing.assert_allclose(np.diff(grid), (steps[-1] - steps[0]) / (len(grid) - 1))
    assert grid[0] == steps[0] and grid[-1] == steps[-1]
    for row, g in zip(rows, grid, strict=True):  # brute force: no recorded step is nearer to the column's place
        assert abs(steps[row] - g) == pytest.approx(np.abs(steps - g).min())


def test_single_and_empty_histories():
    rows, grid = raster.uniform_columns(np.array([7]), 600)
    assert list(rows) == [0] and list(grid) == [7]
    assert raster.column_span(grid) == (6.5, 7.5)
    rows, grid = raster.uniform_columns(np.array([], dtype=np.int64), 600)
    assert len(rows) == len(grid) == 0
    assert raster.column_span(np.array([0.0, 10.0, 20.0])) == (-5.0, 25.0)


def test_png_colours_values_transparent_nans_and_clips():
    scale = [[0.0, "rgb(255,255,255)"], [0.25, "rgb(200,100,0)"], [1.0, "rgb(0,0,128)"]]
    table = raster.colour_table(scale)
    z = np.array([[0.0, 0.5, 1.0, 3.0], [np.nan, 0.25, -1.0, 0.75]])  # row 0 is the bottom row of the image
    pixels = _decode(raster.png_data_uri(z, 1.0, table))[::-1]
    assert pixels.shape == (2, 4, 4)
    assert pixels[1, 0, 3] == 0 and (pixels[..., 3] == 255).sum() == 7  # NaN is transparent, nothing else
    for (i, j), value in np.ndenumerate(z):
        if np.isfinite(value):
            expected = pcolors.unlabel_rgb(pcolors.sample_colorscale(scale, [min(max(value, 0.0), 1.0)])[0])
            assert np.abs(pixels[i, j, :3].astype(float) - expected).max() <= 3, (i, j)


def test_layout_image_spans_the_ranges():
    image = raster.layout_image("data:image/png;base64,", (-0.5, 99.5), (-2.0, 6.0), "x3", "y3")
    assert (image["x"], image["x"] + image["sizex"]) == (-0.5, 99.5)
    assert (image["y"] - image["sizey"], image["y"]) == (-2.0, 6.0)
    assert image["xref"] == "x3" and image["yref"] == "y3" and image["yanchor"] == "top"
