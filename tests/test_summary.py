"""bnviz.figures.summary: every figure in words and as tables, read from its data (issue 16).

Expected numbers come from the data the test itself puts in (hand-made figures) or from the History the figure was
built from, never from the summary code's own helpers.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.trainer import train
from bnviz.figures import summary
from bnviz.science.normalization_axes import norm_mask


@pytest.fixture(scope="module")
def short():
    return train(RunConfig(steps=30, eval_every=10, seed=0)).history


@pytest.fixture(scope="module")
def longer():
    return train(RunConfig(steps=60, eval_every=10, seed=0)).history


def _two_lines(bn_loss, nobn_loss) -> go.Figure:
    return go.Figure([go.Scatter(x=np.arange(len(nobn_loss)), y=nobn_loss, name="no BN"),
                      go.Scatter(x=np.arange(len(bn_loss)), y=bn_loss, name="BN")],
                     layout={"title": {"text": "Training loss"}, "xaxis": {"title": {"text": "training step"}},
                             "yaxis": {"title": {"text": "loss"}}})


def test_a_line_chart_is_told_by_its_first_and_last_values():
    fig = _two_lines(np.array([2.31, 1.2, 0.5, 0.04]), np.array([2.30, 2.0, 1.5, 0.91]))
    text = figures.describe(fig)
    assert text.startswith("Training loss.")
    assert "loss over training step 0 to 3:" in text
    assert "no BN 2.30 to 0.91" in text and "BN 2.31 to 0.04" in text


def test_the_summary_changes_when_the_data_changes():
    a = figures.describe(_two_lines(np.array([2.3, 0.5]), np.array([2.3, 1.0])))
    b = figures.describe(_two_lines(np.array([2.3, 0.4]), np.array([2.3, 1.0])))
    assert a != b and "BN 2.30 to 0.40" in b


def test_a_builders_summary_follows_its_run(short, longer):
    """The live chart's words move with the training: another run length, other words, with the run's numbers."""
    a = figures.describe(figures.loss_accuracy([("BN", short)]))
    b = figures.describe(figures.loss_accuracy([("BN", longer)]))
    assert a != b
    loss = longer.scalar("loss")
    assert f"training step 0 to {int(longer.steps[-1])}" in b
    assert f"BN {loss[0]:.2f} to " in b  # the first loss of the run, as recorded in its History
    acc = longer.scalar("test_acc")
    last = acc[np.isfinite(acc)][-1]
    assert f"to {last:.0%}" in b or f"to {last:.1%}" in b  # the accuracy axis is in percent


def test_plain_and_plotly_figures_say_the_same(short):
    for build in (lambda: figures.loss_accuracy([("no BN", short), ("BN", short)]),
                  lambda: figures.distribution_grid([("no BN", short), ("BN", short)]),
                  lambda: figures.gradient_norms(short), lambda: figures.gamma_beta(short, 0)):
        fig = build()
        with figures.plain_figures():
            plain = build()
        assert isinstance(plain, dict)
        assert figures.describe(fig) == figures.describe(plain)
        assert [t.rows for t in figures.data_tables(fig)] == [t.rows for t in figures.data_tables(plain)]


@pytest.mark.parametrize("name", ["loss_accuracy", "distribution", "histogram", "percentiles", "saturation",
                                  "drift", "gradient_norms", "update_data", "gamma_beta", "running_mean", "empty"])
def test_every_kind_of_figure_gets_words_that_start_with_its_title(short, name):
    build = {
        "loss_accuracy": lambda h: figures.loss_accuracy([("BN", h)]),
        "distribution": lambda h: figures.distribution_heatmap(h, 0, figures.ACT_INPUT),
        "histogram": lambda h: figures.histogram_now_vs_start(h, 1),
        "percentiles": lambda h: figures.percentile_lines([("run", h)], -1),
        "saturation": figures.saturation, "drift": figures.drift, "gradient_norms": figures.gradient_norms,
        "update_data": figures.update_ratios, "gamma_beta": lambda h: figures.gamma_beta(h, 0),
        "running_mean": lambda h: figures.running_vs_batch(h, 0, "mean"),
        "empty": lambda h: figures.loss_accuracy([]),
    }[name]
    fig = build(short)
    text = figures.describe(fig)
    title = figures.chart_title(fig)
    assert title != "Chart" and text.startswith(title.rstrip("."))
    assert 20 < len(text) < 2000
    assert "nan" not in text.lower().split()
    if name == "empty":
        assert "waiting for the first step" in text and figures.data_tables(fig) == []
    else:
        assert any(ch.isdigit() for ch in text[len(title):]), text


def test_joined_curves_are_split_back_and_told_one_by_one():
    """bnviz joins several curves into one trace with NaN gaps (x restarts): each curve keeps its own ends."""
    x = np.array([0, 1, 2, np.nan, 0, 1, 2], dtype=float)
    y = np.array([1.0, 2.0, 3.0, np.nan, 10.0, 20.0, 30.0])
    fig = go.Figure(go.Scatter(x=x, y=y, name="15th / 85th"), layout={"title": {"text": "Percentiles"}})
    text = figures.describe(fig)
    assert "15th / 85th 1.00 to 3.00, 10.0 to 30.0" in text


def test_bars_and_heatmaps():
    bars = go.Figure(go.Bar(x=["a", "b", "c"], y=[0.5, 0.25, 0.125], name="share"),
                     layout={"title": {"text": "Shares"}})
    assert "share: a 0.500, b 0.250, c 0.125" in figures.describe(bars)
    z = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]])
    heat = go.Figure(go.Heatmap(z=z, name="gamma"), layout={"title": {"text": "Grid"}})
    text = figures.describe(heat)
    assert "gamma: a grid of 2 by 3 cells with values from 1.00 to 6.00" in text
    (table,) = figures.data_tables(heat)
    assert table.rows[1][1:] == [4.0, None, 6.0]


def test_data_tables_hold_the_plotted_numbers_evenly_thinned():
    n = 1000
    y = np.linspace(2.0, 0.0, n)
    fig = go.Figure(go.Scatter(x=np.arange(n), y=y, name="loss"), layout={"title": {"text": "Long"},
                                                                          "xaxis": {"title": {"text": "step"}}})
    (table,) = figures.data_tables(fig, max_rows=40)
    assert table.columns == ["step", "loss"]
    assert len(table.rows) == 40 and table.rows[0] == [0.0, 2.0] and table.rows[-1] == [n - 1.0, 0.0]
    for step, value in table.rows:
        assert value == pytest.approx(y[int(step)])
    assert "40 of 1000 rows" in table.caption


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_the_normalization_picture_names_the_values_that_share_one_mean(kind):
    fig = figures.axes_figure(kind, sample=1, channel=2)
    text = figures.describe(fig)
    mask = norm_mask(kind, (3, 4, 3, 3), 1, 2, 2)
    assert f"the {int(mask.sum())} values" in text
    expected = {"batch": "samples 1 to 3, channel 3", "layer": "sample 2, channels 1 to 4",
                "instance": "sample 2, channel 3", "group": "sample 2, channels 3 to 4"}[kind]
    assert expected in text


def test_numbers_read_as_people_say_them():
    assert summary.number(1152.0) == "1,152" and summary.number(2.304) == "2.30"
    assert summary.number(0.0412) == "0.0412" and summary.number(0.00012) == "1.20e-04"
    assert summary.number(0.92, percent=True) == "92%" and summary.number(float("nan")) == "no value"
    assert summary.clean("<b>no BN</b><br>block&nbsp;1") == "no BN block 1"


def test_live_charts_recompute_their_words_at_most_every_few_seconds(monkeypatch, short, longer):
    from bnviz.ui import plot

    monkeypatch.setattr(plot.st, "session_state", {})
    first = plot.chart_texts(figures.loss_accuracy([("BN", short)]), "k", now=100.0)
    with plot.live_texts():
        same = plot.chart_texts(figures.loss_accuracy([("BN", longer)]), "k", now=100.0 + plot.TEXT_SECONDS / 2)
        later = plot.chart_texts(figures.loss_accuracy([("BN", longer)]), "k", now=100.0 + plot.TEXT_SECONDS)
    assert same == first and later != first
    outside = plot.chart_texts(figures.loss_accuracy([("BN", short)]), "k", now=100.0 + plot.TEXT_SECONDS + 0.1)
    assert outside["summary"] == first["summary"]  # not live: always the figure's own words
    assert outside["tables"] and outside["tables"][0]["columns"][0] == "training step"


def test_the_spoken_status_follows_state_changes_at_once_and_steps_every_few_seconds(monkeypatch):
    from bnviz.ui import live

    monkeypatch.setattr(live.st, "session_state", {})
    a = live.spoken_status("step 1 of 90 · running", "running", now=0.0)
    b = live.spoken_status("step 50 of 90 · running", "running", now=1.0)
    c = live.spoken_status("step 90 of 90 · finished", "finished", now=2.0)
    d = live.spoken_status("step 60 of 90 · running", "running", now=3.0)
    e = live.spoken_status("step 70 of 90 · running", "running", now=3.0 + live.SPOKEN_SECONDS)
    for html in (a, b, c):
        assert 'aria-live="polite"' in html and 'role="status"' in html
    assert '<span class="bnviz-sr">Status: step 1 of 90' in b  # shown: step 50; spoken: still step 1
    assert 'aria-hidden="true"><strong>Status:</strong> step 50' in b
    assert "Status: step 90 of 90 · finished</span>" in c and "Status: step 60" in d
    assert "Status: step 70" in e


def test_a_figure_the_words_cannot_read_still_gets_its_title(monkeypatch):
    from bnviz.ui import plot

    monkeypatch.setattr(plot.st, "session_state", {})

    def broken(fig):
        raise ValueError("unreadable")

    monkeypatch.setattr(plot.figures, "describe", broken)
    texts = plot.chart_texts(_two_lines(np.array([1.0, 0.5]), np.array([1.0, 0.9])), "k", now=0.0)
    assert texts["summary"].startswith("Training loss.") and texts["tables"] == []
