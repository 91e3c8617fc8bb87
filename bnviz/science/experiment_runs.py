"""How a canned experiment trains its networks and what it returns: lockstep runs, progress, result types.

The canned experiments (`figure1`, `santurkar`, `sweeps`) are small CPU replications of the published batch-norm
experiments (SCIENCE.md, sections 1-5). Each trains a few small networks on the bundled 8x8 digits and returns a
result dataclass of tidy pandas DataFrames (`.summary`, one row per model or setting, plus the curves), the settings
it ran with and the seconds it took; `to_frame(result)` gives its main frame. Every experiment

* is deterministic for its arguments (the seed fixes the split, the initial weights, the batches and the noise);
* compares like with like: the models of one comparison start from the same initial weights wherever their layers
  match and see the identical sequence of mini-batches (`lockstep`: a twin `trainer.Job`; a third model joins the
  twin's batch stream and copies its weights, exactly as `Job` does for the second one);
* reports progress through an optional `progress(fraction_done, message)` callback (a page's progress bar);
* is remembered per process (`result_cache`): calling it again with the same arguments returns the stored result
  at once. Treat a returned result as read-only: it is shared.

Default settings and what they showed (seed 0) are in each experiment's docstring; `published` holds the papers'
numbers to show next to ours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..engine.config import RunConfig
from ..engine.data import BatchStream
from ..engine.history import History
from ..engine.trainer import Job, Run, stream_for
from ..engine.twins import data_key

Progress = Callable[[float, str], None] | None

CHANCE = 0.1  # ten digit classes
PROGRESS_SECONDS = 0.2  # report progress at most this often (a Streamlit progress bar redraws on every call)

NORM_LABELS = {"none": "no BN", "batch": "BN", "batch-noisy": "noisy BN", "layer": "LN", "group": "GN",
               "instance": "IN"}
SWEEP_LABELS = {**NORM_LABELS, "none": "no norm"}  # among several normalizations, "none" is not just "no BN"


class StageProgress:
    """Maps a stage's own 0..1 onto a slice of the overall bar and rate-limits the callback."""

    def __init__(self, callback: Progress):
        self.callback = callback
        self.last = -math.inf

    def __call__(self, fraction: float, message: str, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.perf_counter()
        if force or now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.callback(min(max(float(fraction), 0.0), 1.0), message)

    def part(self, lo: float, hi: float, label: str) -> Callable[[float, str], None]:
        def report(fraction: float, message: str = "", force: bool = False) -> None:
            self(lo + (hi - lo) * fraction, f"{label}: {message}" if message else label, force)
        return report


_DATASETS: dict = {}  # (name, seed, difficulty) -> Dataset, the same dict Job uses; read-only tensors


# ---- training in lockstep --------------------------------------------------------------------------------------
def lockstep(configs: Sequence[RunConfig]) -> tuple[list[Run], list[BatchStream]]:
    """Runs that share initial weights and batches: a twin Job for the first two configs; any further config joins
    it the way Job adds its second run (weights copied from the first run where names and shapes match, the same
    batch stream when dataset and batch size match)."""
    configs = list(configs)
    job = Job(configs[:2], datasets=_DATASETS)
    runs, streams = list(job.runs), list(job.streams)
    for cfg in configs[2:]:
        cfg.validate()
        key = data_key(cfg)
        run = Run(cfg, _DATASETS.get(key), init_from=runs[0])  # loads the dataset if no run has it yet
        _DATASETS.setdefault(key, run.dataset)
        streams.append(stream_for(run, runs, streams))
        runs.append(run)
    return runs, streams


def drive(runs: list[Run], streams: list[BatchStream], report: Callable | None = None,
          before_step: Callable[[int, Run, torch.Tensor, torch.Tensor], None] | None = None) -> None:
    """Train the runs to their end in this thread, one step each on the same batch, like `Job._work`.

    before_step(index, run, x, y) is called before each run's step (the landscape probe uses it)."""
    torch.set_num_threads(max(r.cfg.threads for r in runs))
    total = max(r.cfg.steps for r in runs)
    for run in runs:
        run.status = "running"
    try:
        while True:
            active = [(i, run, stream) for i, (run, stream) in enumerate(zip(runs, streams, strict=True))
                      if not run.done]
            if not active:
                break
            batches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            for i, run, stream in active:
                if id(stream) not in batches:
                    batches[id(stream)] = stream.next()
                x, y = batches[id(stream)]
                if before_step is not None:
                    before_step(i, run, x, y)
                run.train_step(x, y)
            if report is not None:
                step = max(r.step for r in runs)
                report(step / total, f"step {step:,} of {total:,}")
    finally:
        for run in runs:
            if not run.done:  # an exception mid-way: remove the hooks, keep what was recorded
                run.status = "stopped"
                run.finish()


def final_accuracy(run: Run, train_mode: bool = False) -> float:
    """Whole-test-set accuracy; also for a diverged run (its last finite weights: usually one class, ~chance)."""
    if not train_mode and run.status == "finished" and math.isfinite(run.final_test_acc):
        return float(run.final_test_acc)
    with np.errstate(all="ignore"):
        return float(run.evaluate(train_mode=train_mode))


def act_input_probe(history: History, layer: int, cfg: RunConfig) -> int:
    """The probe whose values enter block `layer`'s activation: the norm output with norm before it, else pre."""
    stage = "norm" if cfg.norm != "none" and cfg.placement == "before" else "pre"
    k = history.probe_index(layer, stage)
    if k is None:
        raise ValueError(f"block {layer + 1} has no recorded {stage!r} stage")
    return k


# ---- result types ----------------------------------------------------------------------------------------------
@dataclass
class ExperimentResult:
    """What every experiment returns: a one-row-per-model (or setting) summary, the settings and the runtime."""

    summary: pd.DataFrame
    settings: dict
    seconds: float

    def to_frame(self) -> pd.DataFrame:
        return self.summary


@dataclass
class Figure1Result(ExperimentResult):
    """curves: model, step, test_acc, p15, p50, p85 (the last hidden layer's sigmoid input, pooled over all units
    and images). unit_curves: model, step, unit, p15, p50, p85 of one typical unit (over the training batch).
    summary: model, unit_drift_median, typical_unit, typical_unit_drift, units, pooled_median_drift,
    pooled_median_drift_mean, pooled_spread_change, acc_at_100, final_acc, diverged (see `figure1.figure1`)."""

    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    unit_curves: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_frame(self) -> pd.DataFrame:
        return self.curves


@dataclass
class SanturkarResult(ExperimentResult):
    """curves: model, step, test_acc, loss, drift and jump (W1 distance of the activation inputs from step 0 and
    from the previous recorded step, in step-0 stds, mean over blocks). ics: model, step, block, ics_l2, ics_rel
    (= ics_l2 / ||G||), ics_cos. landscape: model, step, multiple, eta, loss, grad_change, beta (one row per
    checkpoint and step size; multiple 0 is the starting point). summary: one row per model, means of the above."""

    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    ics: pd.DataFrame = field(default_factory=pd.DataFrame)
    landscape: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_frame(self) -> pd.DataFrame:
        return self.curves


@dataclass
class SweepResult(ExperimentResult):
    """summary: one row per (setting, model) with final accuracy (eval mode), train-mode accuracy, diverged."""


def to_frame(result: ExperimentResult, which: str | None = None) -> pd.DataFrame:
    """The main tidy frame of a result, or one of its frames by name ("summary", "curves", "ics", ...)."""
    if which is None:
        return result.to_frame()
    frame = getattr(result, which, None)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{type(result).__name__} has no frame {which!r}")
    return frame
