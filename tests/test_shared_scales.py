"""Panels that compare runs side by side share their scales (figures.side_by_side), checked from the figures' own
ranges against the runs' recorded values read with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.history import CHANNEL_STATS, History
from bnviz.engine.trainer import train


@pytest.fixture(scope="module")
def twins() -> list[History]:
    """Two runs whose values differ by orders of magnitude: BN at lr 0.05, and no BN with weights 5x too large."""
    small = RunConfig(steps=30, eval_every=10, lr=0.05)
    return [train(small).history, train(small.replace(norm="none", init_scale=5.0)).history]


def _layouts(figs):
    return [fig.layout for fig in figs]


def test_gradient_norm_panels_share_one_log_range(twins):
    alone = [figures.gradient_norms(h).layout.yaxis.range for h in twins]
    assert alone == [None, None]  # drawn alone, each run keeps plotly's automatic range
    panels = figures.side_by_side(figures.gradient_norms, twins)
    first, second = (lay.yaxis for lay in _layouts(panels))
    assert first.range == second.range and first.type == second.type == "log"
    norms = np.concatenate([np.asarray(t.y, dtype=float) for fig in panels for t in fig.data])  # what is drawn
    norms = norms[np.isfinite(norms)]
    own = [np.nanmax(np.asarray(t.y, dtype=float)) for t in panels[1].data]
    assert max(own) / min(np.nanmin(np.asarray(t.y, dtype=float)) for t in panels[0].data) > 10  # far apart
    lo, hi = first.range
    assert lo < math.log10(norms.min()) and hi > math.log10(norms.max())  # every run's every norm is on screen
    span = math.log10(norms.max()) - math.log10(norms.min())
    assert hi - lo == pytest.approx(span * 1.06)  # padded by 3 % each side, no more


def test_drift_and_histogram_panels_share_their_axes(twins):
    first, second = _layouts(figures.side_by_side(figures.drift, twins))
    assert first.yaxis.range == second.yaxis.range
    top = max(np.nanmax(np.asarray(t.y, dtype=float)) for fig in figures.side_by_side(figures.drift, twins)
              for t in fig.data)
    assert first.yaxis.range[0] == 0 and first.yaxis.range[1] == pytest.approx(top * 1.05)
    first, second = _layouts(figures.side_by_side(figures.histogram_now_vs_start, twins, 0, "pre"))
    assert first.xaxis.range == second.xaxis.range and first.yaxis.range == second.yaxis.range
    edges = np.concatenate([h.hist_edges[h.probe_index(0, "pre")] for h in twins])
    assert tuple(first.xaxis.range) == (edges.min(), edges.max())


def test_gamma_beta_colour_scales_and_running_statistics_are_shared(twins):
    bn, nobn = twins
    wide = _scaled(bn, 10.0)  # beta and the means 10x larger
    panels = figures.side_by_side(figures.gamma_beta, [bn, wide], 0)
    assert [(t.zmin, t.zmax) for t in panels[0].data] == [(t.zmin, t.zmax) for t in panels[1].data]
    frame = wide.channels_frame()
    beta = frame[frame.layer == 1].beta.to_numpy()
    reach = np.abs(beta).max()
    assert (panels[0].data[1].zmin, panels[0].data[1].zmax) == pytest.approx((-reach, reach))  # white at beta = 0
    assert figures.gamma_beta(bn, 0).data[1].zmax < reach / 5  # alone, the BN run's own scale is far narrower
    # a run without normalization has nothing to draw and does not change the other run's scale
    mixed = figures.side_by_side(figures.gamma_beta, [bn, nobn], 0)
    assert [(t.zmin, t.zmax) for t in mixed[0].data] == [(t.zmin, t.zmax) for t in figures.gamma_beta(bn, 0).data]
    first, second = _layouts(figures.side_by_side(figures.running_vs_batch, [bn, wide], 0, "mean"))
    assert first.yaxis.range == second.yaxis.range
    shown = frame[(frame.layer == 1) & (frame.channel < 4)]
    lo = min(shown.batch_mean.min(), shown.running_mean.min())
    hi = max(shown.batch_mean.max(), shown.running_mean.max())
    assert first.yaxis.range[0] < lo and first.yaxis.range[1] > hi


def test_gradient_histograms_share_their_colour_scale(twins):
    first, second = _layouts(figures.side_by_side(figures.gradient_histogram, twins, 0))
    assert first.coloraxis.cmax == second.coloraxis.cmax
    alone = [figures.gradient_histogram(h, 0).layout.coloraxis.cmax for h in twins]
    assert first.coloraxis.cmax == max(alone)


def test_shared_span_unites_and_skips_missing():
    assert figures.shared_span([{"y": (1, 2)}, {"y": (0.5, 1.5), "z": None}, {}]) == {"y": (0.5, 2.0)}


def _scaled(history: History, factor: float) -> History:
    """A copy of `history` whose beta and batch and running means are `factor` times larger."""
    out = history.copy()
    channels = out.column("channels")
    for stat in ("beta", "batch_mean", "running_mean"):
        channels[:, :, CHANNEL_STATS.index(stat)] *= factor
    return out
