"""Runs in words: names by what differs, what changed since the run on screen, and a finished run's result,
checked on configs and on hand-made histories (known accuracies, histograms moved by a known number of bins)."""

from __future__ import annotations

import numpy as np
import pytest

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.history import ACT_STATS, SCALARS, History
from bnviz.engine.trainer import train
from bnviz.science.run_words import run_names, settings_change, settings_words


def test_runs_are_named_by_what_differs():
    base = RunConfig()
    assert run_names(base, base.replace(norm="none")) == ("BN", "no BN")
    assert run_names(base.replace(lr=0.05), base.replace(lr=0.5)) == ("lr 0.05", "lr 0.5")
    assert run_names(base, base.replace(batch_size=2)) == ("batch 64", "batch 2")
    assert run_names(base.replace(norm="layer"), base.replace(norm="none")) == ("LN", "no norm")
    assert run_names(base, base) == ("A", "B")  # nothing tells them apart


def test_settings_change_says_what_differs_in_the_widgets_words():
    shown = [RunConfig(steps=300), RunConfig(steps=300, norm="none")]
    assert settings_change(shown, shown, ["BN", "no BN"]) is None
    now = [RunConfig(steps=1000, activation="tanh"), RunConfig(steps=1000, norm="none")]
    assert settings_change(shown, now, ["BN", "no BN"]) == \
        "BN: activation relu → tanh, steps 300 → 1,000; no BN: steps 300 → 1,000"
    assert settings_change(shown[:1], [RunConfig(steps=300, norm="none")], ["A"]) == \
        "normalization batch norm → none"
    assert settings_change(shown, shown[:1], ["BN", "no BN"]) == "one run instead of two runs"


@pytest.fixture(scope="module")
def short() -> History:
    return train(RunConfig(steps=20, eval_every=10, depth=2, width=4)).history


def _handmade(history: History, accuracy: float, shifts: list[int], std0: float = 0.5) -> History:
    """A copy whose last test accuracy is `accuracy` and whose block inputs moved by shifts[block] bins: at step 0
    every value of a block sits in bin 20, at the last step in bin 20 + shift; step-0 std `std0`."""
    out = history.copy()
    out.data["scalars"][out.n - 1, SCALARS.index("test_acc")] = accuracy
    hist, stats = out.data["act_hist"], out.data["act_stats"]
    for layer, shift in enumerate(shifts):
        k = out.probe_index(layer, figures.activation_input_stage(out, layer))
        hist[: out.n, k, :] = 0
        hist[0, k, 20] = hist[out.n - 1, k, 20 + shift] = 1
        stats[0, k, ACT_STATS.index("std")] = std0
        for stat in ("frac_below", "frac_above"):
            stats[out.n - 1, k, ACT_STATS.index(stat)] = stats[0, k, ACT_STATS.index(stat)] = 0
    return out


def test_result_sentence_from_hand_made_histories(short):
    bn = _handmade(short, 0.99, [1, 1])
    nobn = _handmade(short, 0.10, [4, 8])
    width = np.diff(short.hist_edges[short.probe_index(0, figures.activation_input_stage(short, 0))])[0]
    drift_bn, drift_nobn = width / 0.5, np.mean([4, 8]) * width / 0.5  # W1 of a point mass moved by n bins
    text = figures.run_result([("BN", bn), ("no BN", nobn)])
    assert text == (f"BN reached 99% test accuracy, no BN 10%. BN's block inputs drifted {drift_bn:.2g} step-0 "
                    f"standard deviations from step 0 (mean over blocks), no BN's {drift_nobn:.2g}.")
    alone = figures.run_result([("A", bn)])
    assert alone.startswith("The run reached 99% test accuracy. Its block inputs drifted")
    first = figures.run_result([("no BN", nobn), ("BN", bn)])
    assert first.startswith("No BN reached 10% test accuracy, BN 99%. No BN's block inputs drifted")


def test_result_says_when_a_run_diverged_or_values_left_the_range(short):
    gone = _handmade(short, 0.10, [2, 2])
    gone.meta["summary"] = {"status": "diverged", "diverged_at": 12}
    text = figures.run_result([("BN", _handmade(short, 0.9, [1, 1])), ("no BN", gone)])
    assert "no BN diverged at step 12" in text
    escaped = _handmade(short, 0.5, [1, 1])
    k = escaped.probe_index(1, figures.activation_input_stage(escaped, 1))
    escaped.data["act_stats"][escaped.n - 1, k, ACT_STATS.index("frac_above")] = 0.3
    assert "drifted at least" in figures.run_result([("A", escaped)])
    assert figures.run_result([]) is None


def test_experiment_settings_are_words_not_code():
    text = settings_words({"steps": 1000, "lr": 0.1, "norms": ("batch", "group", "layer"), "lr_rule": "linear",
                           "multiples": (1, 2)}, skip=("multiples",))
    assert text == "steps 1,000, learning rate 0.1, norms batch, group and layer, lr rule linear"
