"""Tests for bnviz.science.bn_steps (the helpers of the "BatchNorm step by step" page) and for the page itself.

Expected values come from independent references: NumPy on the same table (np.mean, np.var with ddof=0/1),
torch.nn.BatchNorm1d and torch.nn.functional's normalization ops; never from bn_explain's own earlier output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from bnviz import figures
from bnviz.engine.config import EPS_CHOICES
from bnviz.science import bn_steps as bx
from bnviz.science.normalization_axes import EXAMPLE_GROUPS, EXAMPLE_SHAPE, KINDS, norm_mask

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"

PAGE = str(PAGES_DIR / "bn-steps.py")
EPS = 1e-5


def _numpy_table(table: pd.DataFrame) -> np.ndarray:
    return table.to_numpy(dtype=np.float64)


@pytest.fixture(params=["default", "random"])
def table(request) -> pd.DataFrame:
    if request.param == "default":
        return bx.default_table()
    rng = np.random.default_rng(7)
    return pd.DataFrame(rng.normal(3.0, 5.0, size=(6, 3)), columns=list(bx.CHANNELS), index=bx.sample_labels(6))


# ---- the intermediates against NumPy ---------------------------------------------------------------------------


def test_intermediates_equal_numpy(table):
    a = _numpy_table(table)
    gamma, beta = np.array(bx.DEFAULT_GAMMA), np.array(bx.DEFAULT_BETA)
    steps = bx.steps_of(bx.parse_table(table), bx.DEFAULT_GAMMA, bx.DEFAULT_BETA, EPS)

    mean, var0, var1 = np.mean(a, axis=0), np.var(a, axis=0, ddof=0), np.var(a, axis=0, ddof=1)
    x_hat = (a - mean) / np.sqrt(var0 + EPS)
    assert steps.m == 6
    np.testing.assert_allclose(steps.mean.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(steps.var_biased.numpy(), var0, rtol=1e-12)
    np.testing.assert_allclose(steps.var_unbiased.numpy(), var1, rtol=1e-12)
    np.testing.assert_allclose(steps.std.numpy(), np.sqrt(var0 + EPS), rtol=1e-12)
    np.testing.assert_allclose(steps.x_hat.numpy(), x_hat, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(steps.output.numpy(), gamma * x_hat + beta, rtol=1e-12, atol=1e-12)

    stats = bx.statistics_table(steps, EPS)
    np.testing.assert_allclose(stats.to_numpy(), np.stack([mean, var0, var1, np.sqrt(var0 + EPS)]), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(bx.per_sample_table(steps.x_hat).to_numpy(), x_hat, rtol=1e-12, atol=1e-12)


def test_default_batch_has_round_numbers():
    a = _numpy_table(bx.default_table())
    assert a.shape == (6, 3)
    np.testing.assert_array_equal(a.mean(axis=0), [6.0, 100.0, 0.0])
    np.testing.assert_array_equal(a.var(axis=0), [4.0, 900.0, 1.0])


def test_statistics_table_says_which_variance_is_used_where():
    labels = list(bx.statistics_table(bx.steps_of(bx.parse_table(bx.default_table()), (1,) * 3, (0,) * 3, EPS),
                                      EPS).index)
    assert "÷ m = 6" in labels[1] and "normalizes" in labels[1]
    assert "(m−1) = 5" in labels[2] and "running var" in labels[2]


# ---- reading the table -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "says"), [
    (None, "is empty"), (np.nan, "is empty"), ("", "is empty"), ("   ", "is empty"), ("abc", "is not a number"),
    (np.inf, "is infinite"), ("-inf", "is infinite"), ("nan", "is not a number"), (True, "is not a number"),
])
def test_bad_cell_raises_a_clear_value_error(bad, says):
    table = bx.default_table().astype(object)
    table.iat[1, 2] = bad
    with pytest.raises(ValueError, match=f"sample 2, channel 3 {says}"):
        bx.parse_table(table)


def test_every_bad_cell_is_named_and_text_numbers_are_accepted():
    table = bx.default_table().astype(object)
    table.iat[0, 0], table.iat[5, 1], table.iat[2, 2] = "", "x", " 2.5 "
    with pytest.raises(ValueError) as info:
        bx.parse_table(table)
    assert "sample 1, channel 1 is empty" in str(info.value)
    assert "sample 6, channel 2 is not a number" in str(info.value)
    assert "sample 3" not in str(info.value)  # " 2.5 " is a number


def test_one_sample_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        bx.parse_table(bx.default_table().iloc[:1])


def test_fallback_replaces_only_the_bad_cells():
    table = bx.default_table().astype(object)
    table.iat[2, 1], table.iat[0, 0] = None, 4.0
    x, message = bx.table_or_fallback(table, bx.default_table())
    assert "sample 3, channel 2 is empty" in message
    assert x[2, 1].item() == bx.DEFAULT_BATCH[2][1]
    assert x[0, 0].item() == 4.0  # the good edit is kept
    assert bx.table_or_fallback(bx.default_table(), bx.default_table())[1] is None


# ---- eps, running statistics, eval mode, PyTorch -----------------------------------------------------------------


def test_eps_demo_constant_and_nearly_constant_channel():
    demo = bx.eps_demo()
    assert (demo["constant: x̂"] == 0).all()
    np.testing.assert_allclose(demo["constant: √(σ²+ε)"], np.sqrt(EPS_CHOICES), rtol=1e-12)
    wobble = demo[[c for c in demo.columns if c.startswith("nearly constant: x̂")][0]].to_numpy()
    assert wobble[0] == pytest.approx(math.sqrt(5), rel=1e-3)  # one outlier in 6: sqrt(5) when eps is negligible
    assert np.all(np.diff(wobble) < 0)  # a larger eps damps the wobble


def test_eps_notes():
    default = bx.steps_of(bx.parse_table(bx.default_table()), (1,) * 3, (0,) * 3, EPS)
    assert bx.eps_notes(default, EPS) == []
    constant = bx.parse_table(bx.default_table().assign(**{"channel 3": 0.1}))
    notes = bx.eps_notes(bx.steps_of(constant, (1,) * 3, (0,) * 3, EPS), EPS)
    assert len(notes) == 1 and "channel 3" in notes[0] and "0/√ε" in notes[0]
    tiny = bx.parse_table(bx.default_table()) * 1e-3  # variances 4e-6, 9e-4, 1e-6 against eps 1e-5
    assert [n[2:11] for n in bx.eps_notes(bx.steps_of(tiny, (1,) * 3, (0,) * 3, EPS), EPS)] == \
        ["channel 1", "channel 3"]


def _torch_layer(momentum: float) -> torch.nn.BatchNorm1d:
    """PyTorch's BatchNorm1d in float64 with the page's default γ and β."""
    layer = torch.nn.BatchNorm1d(3, eps=EPS, momentum=momentum).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(bx.DEFAULT_GAMMA))
        layer.bias.copy_(torch.tensor(bx.DEFAULT_BETA))
    return layer


@pytest.mark.parametrize("momentum", [0.1, 0.35, 1.0])
def test_running_update_and_eval_match_torch_batchnorm1d(table, momentum):
    x = bx.parse_table(table)
    layer = _torch_layer(momentum)
    y_train = layer.train()(x).detach()
    y_eval = layer.eval()(x).detach()

    run = bx.train_and_eval(x, bx.DEFAULT_GAMMA, bx.DEFAULT_BETA, EPS, momentum)
    running = run["running"]
    np.testing.assert_allclose(running.loc["running mean after"], layer.running_mean.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(running.loc["running var after"], layer.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(run["y_train"].to_numpy(), y_train.numpy(), atol=1e-10)
    np.testing.assert_allclose(run["y_eval"].to_numpy(), y_eval.numpy(), atol=1e-10)
    a, b = run["affine"]["a"].to_numpy(), run["affine"]["b"].to_numpy()
    np.testing.assert_allclose(a * x.numpy() + b, y_eval.numpy(), atol=1e-10)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_the_settled_gap_is_torch_eval_after_many_updates_on_the_same_batch(table, momentum):
    x = bx.parse_table(table)
    layer = _torch_layer(momentum)
    for _ in range(2000):  # the running statistics converge on this batch's mean and unbiased variance
        y_train = layer.train()(x).detach()
    settled = (y_train - layer.eval()(x).detach()).abs().max().item()
    run = bx.train_and_eval(x, bx.DEFAULT_GAMMA, bx.DEFAULT_BETA, EPS, momentum)
    assert run["settled_gap"] == pytest.approx(settled, rel=1e-9)
    assert 0 < settled < run["gap"] / 2
    note = bx.gap_note(run, momentum)
    assert note.startswith(f"Largest train–eval difference: {bx.format_number(run['gap'])}. Most of it")
    assert bx.format_number(run["settled_gap"]) in note


def test_with_momentum_1_the_whole_gap_is_the_unbiased_variance(table):
    run = bx.train_and_eval(bx.parse_table(table), bx.DEFAULT_GAMMA, bx.DEFAULT_BETA, EPS, 1.0)
    assert run["gap"] == pytest.approx(run["settled_gap"], rel=1e-12)
    assert "all of it comes from the running variance's m/(m − 1)" in bx.gap_note(run, 1.0)


def test_compare_with_torch_on_default_table_is_tiny():
    diffs = bx.compare_with_torch(bx.parse_table(bx.default_table()), bx.DEFAULT_GAMMA, bx.DEFAULT_BETA,
                                  bx.DEFAULT_EPS, bx.DEFAULT_MOMENTUM)
    assert len(diffs) == 4
    assert diffs.iloc[:, 0].max() < 1e-6


def test_max_abs_diff():
    assert bx.max_abs_diff(torch.tensor([1.0, 2.0]), torch.tensor([1.5, -1.0])) == 3.0


# ---- (N, C, H, W) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "count"), [("batch", 3 * 3 * 3), ("layer", 4 * 3 * 3), ("instance", 3 * 3),
                                             ("group", 2 * 3 * 3)])
def test_norm_mask_sizes(kind, count):
    assert norm_mask(kind, sample=1, channel=2).sum() == count


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_norm_mask_matches_torch_normalization(kind):
    x = torch.randn(*EXAMPLE_SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    n, c = 2, 3
    mask = torch.from_numpy(norm_mask(kind, sample=n, channel=c))
    values = x[mask]
    expected = (x[n, c] - values.mean()) / torch.sqrt(values.var(unbiased=False) + EPS)
    reference = {
        "batch": lambda: F.batch_norm(x, None, None, training=True, eps=EPS),
        "layer": lambda: F.layer_norm(x, x.shape[1:], eps=EPS),
        "instance": lambda: F.instance_norm(x, eps=EPS),
        "group": lambda: F.group_norm(x, EXAMPLE_GROUPS, eps=EPS),
    }[kind]()
    torch.testing.assert_close(reference[n, c], expected)


NORMALIZE = {  # torch's own normalizations, each with the statistics its kind shares
    "batch": lambda x, groups: F.batch_norm(x, None, None, training=True, eps=EPS),
    "layer": lambda x, groups: F.layer_norm(x, x.shape[1:], eps=EPS),
    "instance": lambda x, groups: F.instance_norm(x, eps=EPS),
    "group": lambda x, groups: F.group_norm(x, groups, eps=EPS),
}


def _torch_shared_set(kind: str, shape, sample: int, channel: int, groups: int) -> np.ndarray:
    """The values torch's normalization pools with (sample, channel, 0, 0), by brute force: the input values its
    output there depends on (nonzero gradient: through the shared mean and variance), for a random input."""
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sample * 7 + channel))
    x.requires_grad_(True)
    NORMALIZE[kind](x, groups)[sample, channel, 0, 0].backward()
    return (x.grad.abs() > 1e-12).numpy()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("shape", "groups"), [(EXAMPLE_SHAPE, EXAMPLE_GROUPS), ((3, 4, 3, 3), 1), ((3, 4, 3, 3), 4),
                                               ((4, 6, 2, 3), 3), ((2, 6, 1, 2), 2)])
def test_norm_mask_is_the_set_torch_pools(kind, shape, groups):
    n, c = shape[:2]
    for sample in range(n):
        for channel in range(c):
            mask = norm_mask(kind, shape, sample, channel, groups)
            np.testing.assert_array_equal(mask, _torch_shared_set(kind, shape, sample, channel, groups))
            # without spatial axes (the zoo's grid of feature maps) the mask is the same per (sample, channel)
            np.testing.assert_array_equal(norm_mask(kind, (n, c), sample, channel, groups), mask.all(axis=(2, 3)))


def test_step_page_labels_every_kind_of_the_mask():
    assert tuple(bx.NORM_KINDS) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_axes_figure_highlights_the_mask(kind):
    n, c, h, w = EXAMPLE_SHAPE
    z = np.asarray(figures.axes_figure(kind, sample=2, channel=1).data[0].z, dtype=float)
    mask = norm_mask(kind, EXAMPLE_SHAPE, sample=2, channel=1)
    for i in range(n):
        for j in range(c):
            np.testing.assert_array_equal(z[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w], mask[i, j])


def test_norm_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown normalization"):
        norm_mask("weight")
    with pytest.raises(ValueError, match="divisible"):
        norm_mask("group", groups=3)


def test_shapes_table_and_figure():
    table = bx.shapes_table()
    assert list(table["averaged over"]) == ["N", "N, L", "N, H, W"]
    assert list(table["dims (reduce_dims)"]) == ["(0,)", "(0, 2)", "(0, 2, 3)"]
    assert table["values per mean, m"].iloc[2].startswith("27 ")
    fig = figures.axes_figure("group", sample=1, channel=3)
    assert len(fig.data) == 1
    assert np.nansum(fig.data[0].z) == 2 * 3 * 3


def test_labels():
    assert [bx.eps_label(e) for e in (1e-5, 1.0, 1e-8, 0.0)] == ["1e-5", "1", "1e-8", "0"]
    assert [bx.format_number(v) for v in (6.0, -1.666666, 0.0, -0.0, 1.389e-5, 1080.0)] == \
        ["6", "-1.6667", "0", "0", "1.39e-05", "1080"]


# ---- the page ----------------------------------------------------------------------------------------------------


def _stats(at: AppTest) -> pd.DataFrame:
    return at.table[0].value


def test_page_renders_and_eps_changes_the_numbers():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert not at.error
    assert at.success and "same numbers" in at.success[0].value  # compare-with-PyTorch verdict
    std_before = _stats(at).iloc[3].to_numpy(dtype=float)
    np.testing.assert_allclose(std_before, np.sqrt(np.array([4.0, 900.0, 1.0]) + 1e-5))

    at.select_slider(key="bn_steps_eps").set_value(1.0).run()
    assert not at.exception
    std_after = _stats(at).iloc[3].to_numpy(dtype=float)
    np.testing.assert_allclose(std_after, np.sqrt(np.array([4.0, 900.0, 1.0]) + 1.0))
    assert at.table[2].value.iloc[0, 2] == pytest.approx(-1 / math.sqrt(2))  # x_hat of sample 1, channel 3

    at.button(key="bn_steps_constant").click().run()
    assert not at.exception
    assert any("channel 3** is constant" in info.value for info in at.info)


def test_page_with_a_bad_cell_shows_a_message_not_a_traceback():
    at = AppTest.from_file(PAGE, default_timeout=60)
    bad = bx.default_table()
    bad.iat[3, 0] = np.nan
    at.session_state["bn_steps_base"] = bad
    at.session_state["bn_steps_version"] = 0
    at.run()
    assert not at.exception
    assert "sample 4, channel 1 is empty" in at.error[0].value
    np.testing.assert_allclose(_stats(at).iloc[0].to_numpy(dtype=float), [6.0, 100.0, 0.0])  # default value used
