"""Lesson: small batches and the remedies (batch renorm, group norm, ghost batch norm), side by side.

Batch norm trains with each batch's own statistics and tests with running averages; with a few images per batch the
two differ, and the batch statistics are noisy. Remedies compared here on the default CNN over the digits, at batch
sizes 2, 4 and 8 with the **same number of images seen** (steps = images / batch size), the learning rate scaled with
the batch size (lr = BASE_LR x B / 8, as Wu & He scale theirs with B), every network from the same seed:

* BN: torch's batch norm;
* batch renorm (Ioffe 2017): the batch statistics corrected towards the running ones with r and d, clipped with the
  r_max / d_max schedule of the paper (bnviz.engine.batch_renorm.renorm_limits, scaled to the run's length);
* GN (Wu & He 2018): statistics per image over groups of channels, no batch dependence at all;
* ghost BN (Hoffer et al. 2017): BN whose statistics come from sub-batches of half the batch (only for B >= 4, a
  sub-batch needs 2 images). Ghost BN was proposed for *large* batches (it keeps the statistics' noise of a small
  batch while the gradient averages a large one); at a small batch it can only make the statistics noisier: it is
  here to show that it is not a small-batch remedy.

Measured per network: test accuracy in eval mode (running statistics; GN has none) and in train mode (each test
batch of B images normalized with its own statistics): the train/eval gap is what batch renorm is meant to close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from ..engine.config import RunConfig
from .experiment_runs import Progress, StageProgress, drive, final_accuracy, lockstep
from .result_cache import remembered

BATCH_SIZES = (2, 4, 8)
IMAGES = 4000  # images seen by every network (steps = IMAGES / batch size)
BASE_LR = 0.05  # learning rate at batch 8; lr = BASE_LR * B / 8 (linear scaling)
VARIANTS = ("BN", "batch renorm", "GN", "ghost BN")
SMALL_NET = dict(sgd_momentum=0.9, record_every=0, groups=4)  # the default CNN: 3 conv blocks of 16 channels


def variant_config(variant: str, batch_size: int, images: int = IMAGES, seed: int = 0) -> RunConfig | None:
    """The RunConfig of one variant at one batch size, or None where it is not meaningful (ghost BN at B = 2)."""
    steps = images // batch_size
    base = dict(SMALL_NET, batch_size=batch_size, steps=steps, eval_every=steps, seed=seed,
                lr=BASE_LR * batch_size / 8)
    if variant == "BN":
        return RunConfig(**base, norm="batch")
    if variant == "batch renorm":
        return RunConfig(**base, norm="batch-renorm")
    if variant == "GN":
        return RunConfig(**base, norm="group")
    if batch_size < 4:
        return None
    return RunConfig(**base, norm="batch", ghost_batch=batch_size // 2)


@dataclass
class SmallBatchResult:
    settings: dict
    seconds: float
    summary: pd.DataFrame  # variant, batch_size, ghost_batch, steps, lr, eval_acc, train_mode_acc, status


@remembered
def small_batch_lesson(images: int = IMAGES, seed: int = 0, progress: Progress = None) -> SmallBatchResult:
    """Every variant at every batch size of BATCH_SIZES, `images` images each; see the module docstring."""
    start = time.perf_counter()
    report = StageProgress(progress)
    jobs = [(v, b, variant_config(v, b, images, seed)) for b in BATCH_SIZES for v in VARIANTS]
    jobs = [(v, b, cfg) for v, b, cfg in jobs if cfg is not None]
    total = sum(cfg.steps for _, _, cfg in jobs)
    done, rows = 0, []
    for variant, batch, cfg in jobs:
        runs, streams = lockstep([cfg])
        drive(runs, streams, report.part(done / total, (done + cfg.steps) / total, f"{variant}, batch {batch}"))
        run = runs[0]
        done += cfg.steps
        rows.append({"variant": variant, "batch_size": batch, "ghost_batch": cfg.ghost_batch, "steps": cfg.steps,
                     "lr": cfg.lr, "status": run.status, "eval_acc": run.final_test_acc,
                     "train_mode_acc": final_accuracy(run, train_mode=True)})
    settings = {"model": "default CNN (3 conv blocks of 16 channels, norm before ReLU)", "images seen": images,
                "learning rate": f"{BASE_LR:g} x batch / 8, SGD momentum 0.9", "seed": seed,
                "batch renorm": "momentum 0.1; r_max 1 → 3, d_max 0 → 5 (Ioffe 2017's schedule scaled to the run)",
                "GN groups": 4}
    report(1.0, "done", force=True)
    return SmallBatchResult(settings, time.perf_counter() - start, pd.DataFrame(rows))


def small_batch_findings(result: SmallBatchResult) -> list[str]:
    """Sentences computed from the table: per batch size, each variant's eval-mode and train-mode accuracy."""
    out = []
    for batch, part in result.summary.groupby("batch_size"):
        cells = []
        for row in part.itertuples():
            ghost = f" (ghost batches of {row.ghost_batch})" if row.ghost_batch else ""
            state = "" if row.status == "finished" else f", {row.status}"
            cells.append(f"{row.variant}{ghost} {row.eval_acc:.1%} (train mode {row.train_mode_acc:.1%}{state})")
        out.append(f"Batch {batch} ({part['steps'].iloc[0]:,} steps, lr {part['lr'].iloc[0]:g}): "
                   + "; ".join(cells) + ".")
    return out
