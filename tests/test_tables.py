"""figures.tables: the Compare page's final numbers, checked against the history's own arrays and shift's full drift."""

from __future__ import annotations

import numpy as np
import pytest

from bnviz.engine.config import RunConfig
from bnviz.engine.history import History
from bnviz.engine.shift import distribution_drift, relative_drift
from bnviz.engine.trainer import train
from bnviz.figures.tables import final_numbers


@pytest.fixture(scope="module")
def runs():
    bn = train(RunConfig(width=4, depth=2, steps=30, eval_every=10, seed=1)).history
    none = train(RunConfig(width=4, depth=2, steps=30, eval_every=10, seed=1, norm="none")).history
    return [("A", bn), ("B", none)]


def test_one_row_per_run_with_its_last_numbers(runs):
    table = final_numbers(runs)
    assert list(table["run"]) == ["A", "B"] and list(table["norm"]) == ["batch", "none"]
    for (_, h), row in zip(runs, table.to_dict("records"), strict=True):
        assert row["steps recorded"] == 30 == len(h)
        assert row["last loss"] == pytest.approx(h.scalars_frame()["loss"].iloc[-1])
        evaluated = h.scalars_frame()["test_acc"].dropna()
        assert row["last test accuracy"] == pytest.approx(evaluated.iloc[-1])
        full = distribution_drift(h, "first")["w1_rel"][-1]  # every row and probe, then the last row
        assert row["mean drift (last step, in step-0 stds)"] == pytest.approx(np.nanmean(full))
        assert row["status"] == "finished"


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_relative_drift_of_some_rows_equals_the_full_computation(runs, reference):
    h = runs[0][1]
    rows, probes = np.array([0, 7, 29]), [0, 2, 3]
    full = distribution_drift(h, reference)["w1_rel"]
    np.testing.assert_allclose(relative_drift(h, reference, rows, probes), full[rows][:, probes])


def test_a_run_without_steps_has_no_numbers_yet(runs):
    empty = History(runs[0][1].layout, capacity=4)
    row = final_numbers([("new", empty)]).to_dict("records")[0]
    assert row["steps recorded"] == 0 and row["status"] == "training"
    assert row["last loss"] is None and row["last test accuracy"] is None
    assert row["mean drift (last step, in step-0 stds)"] is None
