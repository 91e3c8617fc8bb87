"""No chart title states a result fixed in advance: a title names what is shown, the run's numbers say what happened.

Every run figure is built on two short runs with opposite outcomes (one learns, one ends at chance with a huge
loss), every experiment figure on a small real result and on a copy with its accuracies reversed and its models'
labels swapped; the titles must not change, and none may carry a verdict.
"""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.trainer import train
from bnviz.science.figure1 import figure1
from bnviz.science.santurkar import santurkar
from bnviz.science.sweeps import batch_size_sweep, init_sweep, lr_sweep

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")

# Words that would state an outcome in a title (unless a number from the run came with them).
VERDICTS = ("still trains", "stays", "stay put", "breaks", "rescue", "better", "worse", "fails", "wins", "beats",
            "collapses", "explodes", "no longer", "much less", "much more", "helps", "hurts")


def titles(figs: dict) -> dict[str, str]:
    return {key: (fig.layout.title.text or "") for key, fig in figs.items()}


def assert_no_verdict(text: str) -> None:
    lowered = text.lower()
    for word in VERDICTS:
        assert not re.search(rf"\b{word}", lowered), f"{text!r} states a result: {word!r}"


@pytest.fixture(scope="module")
def opposite_runs():
    """The same BN CNN: at lr 0.1 it learns; at lr 100 it ends at chance with a loss in the hundreds."""
    good = train(RunConfig(steps=30, eval_every=10, ics_every=10, lr=0.1))
    bad = train(RunConfig(steps=30, eval_every=10, ics_every=10, lr=100.0))
    assert good.final_test_acc > 0.3 and bad.final_test_acc < 0.2 and bad.last_loss > 50  # really opposite
    return good.history, bad.history


def run_figures(history, other) -> dict:
    figs = dict(figures.figure_catalog(history))
    pair = [("A", history), ("B", other)]
    figs.update(loss_accuracy_pair=figures.loss_accuracy(pair), grid_pair=figures.distribution_grid(pair),
                percentiles_pair=figures.percentile_lines(pair), gap_pair=figures.train_eval_gap(pair),
                ics_pair=figures.ics_measure(pair))
    return figs


def test_run_figure_titles_do_not_depend_on_the_outcome(opposite_runs):
    good, bad = opposite_runs
    learned, failed = titles(run_figures(good, bad)), titles(run_figures(bad, good))
    assert learned.keys() == failed.keys() and len(learned) > 15
    assert learned == failed
    for text in learned.values():
        assert_no_verdict(text)


# ---- the canned experiments --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results():
    return {
        "figure1": figure1(steps=100, record_every=10, eval_every=50),
        "santurkar": santurkar(steps=100, ics_every=50, probe_every=50, record_every=10, eval_every=50),
        "lr": lr_sweep(lrs=(0.1, 3.0), steps=30),
        "init": init_sweep(scales=(0.01, 1.0), steps=30),
        "batch": batch_size_sweep(batch_sizes=(16, 32), norms=("batch", "group"), epochs=0.2),
    }


def reversed_outcomes(result):
    """A copy whose accuracies read 1 - accuracy and whose models swap labels: every comparison flips."""
    out = copy.deepcopy(result)
    for name, frame in vars(out).items():
        if not isinstance(frame, pd.DataFrame):
            continue
        frame = frame.copy()
        for column in frame.columns:
            if "acc" in column:
                frame[column] = 1 - frame[column]
        if "model" in frame.columns:
            labels = list(dict.fromkeys(frame["model"]))
            frame["model"] = frame["model"].map(dict(zip(labels, labels[::-1], strict=True)))
        setattr(out, name, frame)
    return out


EXPERIMENT_FIGURES = {
    "figure1_accuracy": ("figure1", figures.figure1_accuracy),
    "figure1_percentiles": ("figure1", figures.figure1_percentiles),
    "santurkar_accuracy": ("santurkar", figures.santurkar_accuracy),
    "santurkar_drift": ("santurkar", figures.santurkar_drift),
    "santurkar_ics": ("santurkar", figures.santurkar_ics),
    "santurkar_landscape": ("santurkar", figures.santurkar_landscape),
    "lr_sweep_chart": ("lr", figures.lr_sweep_chart),
    "init_sweep_chart": ("init", figures.init_sweep_chart),
    "batch_size_accuracy": ("batch", figures.batch_size_accuracy),
    "batch_size_gap": ("batch", figures.batch_size_gap),
}


def test_experiment_figure_titles_do_not_depend_on_the_outcome(results):
    for name, (which, builder) in EXPERIMENT_FIGURES.items():
        real = builder(results[which]).layout.title.text
        flipped = builder(reversed_outcomes(results[which])).layout.title.text
        assert real == flipped, name
        assert_no_verdict(real)
    for fig in (figures.wu_he_published(), figures.normalization_zoo()):
        assert_no_verdict(fig.layout.title.text or "")


def test_the_noisy_bn_chart_is_titled_neutrally(results):
    title = figures.santurkar_accuracy(results["santurkar"]).layout.title.text
    assert title == "Test accuracy: no BN, BN and noisy BN"


def test_the_verdict_check_catches_a_verdict():
    with pytest.raises(AssertionError):
        assert_no_verdict("Noisy BN still trains: test accuracy")
    assert_no_verdict("Test accuracy: no BN, BN and noisy BN")
