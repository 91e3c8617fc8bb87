"""The first canned experiment: Ioffe & Szegedy's Figure 1 (a sigmoid input's percentiles with and without BN).

The paper follows *one typical sigmoid* of the last hidden layer. This replica records every unit of that layer
(`UnitInputs`), shows one typical unit, and summarizes all units by the median of their drifts (`unit_drifts`); the
recorder's pooled sample of all units and images is kept as a second, pooled, view.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.config import RunConfig
from ..engine.history import History
from ..engine.trainer import Run
from .experiment_runs import (
    Figure1Result,
    Progress,
    StageProgress,
    act_input_probe,
    drive,
    final_accuracy,
    lockstep,
)
from .result_cache import remembered

# Ioffe & Szegedy's Figure 1 network (3 hidden layers of 100 sigmoid units, batch 60) with our optimizer settings:
# the paper gives no learning rate or optimizer; plain SGD with lr 0.5 is ours.
FIGURE1_NET = dict(model="mlp", depth=3, width=100, activation="sigmoid", batch_size=60, lr=0.5, sgd_momentum=0.0)
PERCENTILES = (15, 50, 85)


class UnitInputs:
    """The input of every sigmoid of the last hidden layer, per unit, on the training batch of each record step.

    A forward pre-hook on the last block's activation keeps the first train-mode forward pass of each step that is
    a multiple of `every`: the training step's own pass, on its training batch, exactly as the sigmoid received it
    (with BN: normalized with that batch's statistics, then gamma and beta). Later passes of the same step (the
    train-mode evaluation, the ICS measure) are ignored. `percentiles()` gives the 15th/50th/85th percentile over
    the batch, per unit and step."""

    def __init__(self, run: Run, every: int):
        self.run, self.every = run, every
        self.steps: list[int] = []
        self.values: list[np.ndarray] = []  # one (batch, units) array per record step
        self.handle = run.model.blocks[-1].act.register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        step = self.run.step
        if module.training and step % self.every == 0 and (not self.steps or self.steps[-1] != step):
            self.steps.append(step)
            self.values.append(args[0].detach().to(torch.float64).numpy().copy())

    def detach(self) -> None:
        self.handle.remove()

    def percentiles(self) -> np.ndarray:
        """(3, steps, units): the 15th, 50th and 85th percentile over the batch of each unit's input."""
        return np.stack([np.percentile(v, PERCENTILES, axis=0) for v in self.values], axis=1)


def unit_drifts(pct: np.ndarray) -> np.ndarray:
    """Each unit's drift: the largest move of its median (over the batch) from its step-0 value, in the units of the
    sigmoid's input (the chart's value axis): drift[u] = max over record steps t of |p50[t, u] - p50[0, u]|.

    pct: (3, steps, units) from `UnitInputs.percentiles`. Not divided by the step-0 spread: without BN that spread
    is tiny at the start (the 8x8-digit sigmoid net's last hidden inputs differ little between images, about 0.01
    at seed 0), so a relative drift would measure the start, not the movement."""
    p50 = pct[1]
    return np.nanmax(np.abs(p50 - p50[0]), axis=0)


def typical_unit(drift: np.ndarray) -> int:
    """The unit whose drift is the median over units (for an even count: the lower of the two middle ones)."""
    finite = np.flatnonzero(np.isfinite(drift))
    order = finite[np.argsort(drift[finite], kind="stable")]
    return int(order[(len(order) - 1) // 2])


@remembered
def figure1(steps: int = 3000, seed: int = 0, record_every: int = 25, eval_every: int = 50,
            progress: Progress = None) -> Figure1Result:
    """Ioffe & Szegedy (2015), Figure 1, on the 8x8 digits: a 64-100-100-100-10 sigmoid MLP, batch 60, SGD lr 0.5
    (no momentum: our settings, the paper names none), with BN before each sigmoid and without, trained as a twin
    Job (same initial weights, same batches).

    Measured as the paper did, per unit: every `record_every` steps, each of the 100 inputs of the last hidden
    layer's sigmoids on that step's training batch (`UnitInputs`). Summary per model: unit_drift_median = the
    median over units of each unit's drift (`unit_drifts`: the largest move of its median from step 0, in the
    sigmoid's input units); typical_unit = the unit whose drift is that median, and its 15/50/85th percentiles are
    `unit_curves`. Pooled over all units (the recorder's sample of all units and images, `curves`):
    pooled_median_drift = max over steps of |p50 - p50 at step 0| (pooled_median_drift_mean: the mean over steps),
    pooled_spread_change = max |(p85 - p15) - its step-0 value|. Test accuracy every `eval_every` steps (a
    multiple of record_every that divides 100, so step 100 is measured), at step 100 and at the end.

    Default (3,000 steps, seed 0): median over the 100 units of the drift, BN 0.63 vs no BN 2.87 (4.5x less with
    BN; typical units 13 and 43); pooled over all units, largest move of the median 0.50 vs 2.71 (5.4x), averaged
    over the steps 0.14 vs 2.17 (15x); test accuracy at step 100: 96% vs 10%; at the end 99% vs 67%.
    """
    if eval_every % record_every or 100 % eval_every:
        raise ValueError(f"eval_every={eval_every} must be a multiple of record_every={record_every} and divide 100")
    start = time.perf_counter()
    report = StageProgress(progress)
    base = RunConfig(**FIGURE1_NET, steps=steps, seed=seed, record_every=record_every, eval_every=eval_every)
    configs = [base.replace(norm="batch"), base.replace(norm="none")]
    labels = ["BN", "no BN"]
    runs, streams = lockstep(configs)
    watches = [UnitInputs(run, record_every) for run in runs]
    try:
        drive(runs, streams, report.part(0.0, 0.98, "training BN and no BN"))
    finally:
        for watch in watches:
            watch.detach()
    curves, unit_curves, summary = [], [], []
    for label, run, watch in zip(labels, runs, watches, strict=True):
        pooled, row = _pooled(label, run)
        pct = watch.percentiles()
        drift = unit_drifts(pct)
        unit = typical_unit(drift)
        curves.append(pooled)
        unit_curves.append(pd.DataFrame({"model": label, "step": watch.steps, "unit": unit,
                                         **{f"p{q}": pct[i, :, unit] for i, q in enumerate(PERCENTILES)}}))
        summary.append({"model": label, "unit_drift_median": float(np.nanmedian(drift)), "typical_unit": unit,
                        "typical_unit_drift": float(drift[unit]), "units": int(drift.size), **row,
                        "acc_at_100": _at_step(run.history, "test_acc", 100), "final_acc": final_accuracy(run),
                        "diverged": run.status == "diverged"})
    report(1.0, "done", force=True)
    settings = {**FIGURE1_NET, "steps": steps, "seed": seed, "record_every": record_every,
                "eval_every": eval_every, "unit_inputs_on": "the training batch of each record step (train mode)"}
    return Figure1Result(pd.DataFrame(summary), settings, time.perf_counter() - start,
                         curves=pd.concat(curves, ignore_index=True),
                         unit_curves=pd.concat(unit_curves, ignore_index=True))


def _pooled(label: str, run: Run) -> tuple[pd.DataFrame, dict]:
    """The recorder's pooled view (all units and images of the last hidden layer's sigmoid input): its percentile
    curves and the pooled drift measures."""
    h = run.history
    k = act_input_probe(h, len(h.layout.layers) - 1, run.cfg)
    p15, p50, p85 = (h.act(q)[:, k].astype(np.float64) for q in ("p15", "p50", "p85"))
    curves = pd.DataFrame({"model": label, "step": h.steps, "test_acc": h.scalar("test_acc"),
                           "p15": p15, "p50": p50, "p85": p85})
    spread = p85 - p15
    return curves, {"pooled_median_drift": float(np.nanmax(np.abs(p50 - p50[0]))),
                    "pooled_median_drift_mean": float(np.nanmean(np.abs(p50 - p50[0]))),
                    "pooled_spread_change": float(np.nanmax(np.abs(spread - spread[0])))}


def _at_step(history: History, column: str, step: int) -> float:
    values = history.scalar(column)
    hit = np.flatnonzero((history.steps == step) & np.isfinite(values))
    return float(values[hit[0]]) if hit.size else math.nan
