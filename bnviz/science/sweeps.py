"""The sweep experiments: BN and no BN across learning rates and initial weight scales, and norms across batch sizes."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pandas as pd

from ..engine.config import RunConfig
from .experiment_runs import (
    NORM_LABELS,
    SWEEP_LABELS,
    Progress,
    StageProgress,
    SweepResult,
    drive,
    final_accuracy,
    lockstep,
)
from .result_cache import remembered

LR_NET = dict(model="mlp", depth=6, width=64, activation="relu", batch_size=64, sgd_momentum=0.0)
INIT_NET = dict(model="mlp", depth=3, width=100, activation="sigmoid", batch_size=60, lr=0.5, sgd_momentum=0.0)
BATCH_NET = dict(model="mlp", depth=3, width=64, activation="relu", groups=8, sgd_momentum=0.9)
TRAIN_IMAGES = 1437  # training images of the digits split (80% of 1,797)


def _check_choice(name: str, values: Sequence, lo: float | None = None) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one value")
    if lo is not None and any(not isinstance(v, (int, float)) or v <= lo for v in values):
        raise ValueError(f"{name}={values} is not allowed: every value must be a number > {lo}")
    return values


# ---- learning-rate tolerance -------------------------------------------------------------------------------------
@remembered
def lr_sweep(lrs: Sequence[float] = (0.01, 0.1, 1.0, 3.0), steps: int = 1000, seed: int = 0,
             net: tuple = tuple(LR_NET.items()), progress: Progress = None) -> SweepResult:
    """Learning-rate tolerance (Ioffe & Szegedy 2015; Bjorck et al. 2018): a 6x64 ReLU MLP on the digits, plain
    SGD (no momentum, so the learning rate is the step size), batch 64, with BN and without, one twin Job per
    learning rate. Summary per (lr, model): final test accuracy in eval mode (for a diverged run, that of its last
    finite weights), diverged (by the rule of `bnviz.engine.divergence`) and at which step.

    Default (1,000 steps, seed 0): BN 97% / 98% / 98% / 98% at lr 0.01 / 0.1 / 1 / 3; no BN 10% / 69% / 10% / 10%.
    None diverged: without BN at lr 1 the test accuracy rose to 27% at step 400 and fell back to chance, the loss
    peaking at 3.7 and ending near 2.31; at lr 3 it stayed at chance (loss near 2.32); at lr 0.01 it is near chance
    from slow progress, not from the learning rate being too large."""
    lrs = _check_choice("lrs", lrs, lo=0.0)
    start = time.perf_counter()
    report = StageProgress(progress)
    rows = []
    for i, lr in enumerate(lrs):
        base = RunConfig(**dict(net), lr=float(lr), steps=steps, seed=seed, record_every=0, eval_every=steps)
        runs, streams = lockstep([base.replace(norm="batch"), base.replace(norm="none")])
        drive(runs, streams, report.part(i / len(lrs), (i + 1) / len(lrs), f"learning rate {lr:g}"))
        for run in runs:
            rows.append({"lr": float(lr), "model": NORM_LABELS[run.cfg.norm], "final_acc": final_accuracy(run),
                         "diverged": run.status == "diverged", "diverged_at": run.diverged_at,
                         "last_loss": run.last_loss})
    report(1.0, "done", force=True)
    settings = {**dict(net), "lrs": lrs, "steps": steps, "seed": seed}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)


# ---- initialization scale ----------------------------------------------------------------------------------------
@remembered
def init_sweep(scales: Sequence[float] = (0.01, 0.1, 1.0, 5.0), steps: int = 1000, seed: int = 0,
               net: tuple = tuple(INIT_NET.items()), progress: Progress = None) -> SweepResult:
    """Sensitivity to the initial weight scale (Ioffe & Szegedy 2015, section 3.3): the sigmoid 3x100 MLP of
    Figure 1 with every weight ~ N(0, s^2) (init="normal", init_scale=s), with BN and without, one twin Job per s.
    Summary per (scale, model): final test accuracy (eval mode) and whether the run diverged.

    Default (1,000 steps, seed 0): BN 97% / 98% / 97% / 97% at s = 0.01 / 0.1 / 1 / 5; no BN 10% / 84% / 95% /
    65%."""
    scales = _check_choice("scales", scales, lo=0.0)
    start = time.perf_counter()
    report = StageProgress(progress)
    rows = []
    for i, scale in enumerate(scales):
        base = RunConfig(**dict(net), init="normal", init_scale=float(scale), steps=steps, seed=seed,
                         record_every=0, eval_every=steps)
        runs, streams = lockstep([base.replace(norm="batch"), base.replace(norm="none")])
        drive(runs, streams, report.part(i / len(scales), (i + 1) / len(scales), f"weight scale {scale:g}"))
        for run in runs:
            rows.append({"init_scale": float(scale), "model": NORM_LABELS[run.cfg.norm],
                         "final_acc": final_accuracy(run), "diverged": run.status == "diverged",
                         "last_loss": run.last_loss})
    report(1.0, "done", force=True)
    settings = {**dict(net), "init": "normal", "scales": scales, "steps": steps, "seed": seed}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)


# ---- batch size: BN vs GN vs LN (Wu & He) ------------------------------------------------------------------------
@remembered
def batch_size_sweep(batch_sizes: Sequence[int] = (2, 4, 8, 16, 32), norms: Sequence[str] = ("batch", "group",
                     "layer", "none"), epochs: float = 2.0, lr_at_32: float = 0.1, seed: int = 0,
                     net: tuple = tuple(BATCH_NET.items()), progress: Progress = None) -> SweepResult:
    """Wu & He (2018), small version: the same network with BN, GN, LN or no normalization, at several batch sizes.

    The setting, and why. Wu & He train every batch size for the same number of epochs with the learning rate
    scaled linearly with the batch size; so do we: every run sees `epochs` passes over the 1,437 training images
    (batch 2: 1,437 steps for 2 epochs; batch 32: 89) with lr = lr_at_32 * B / 32, SGD momentum 0.9, and at one
    batch size all norms start from the same weights and see the same batches. The network is the engine's MLP
    (3 hidden layers of 64 ReLU units; GN with 8 groups of 8 units), i.e. a conv net with 1x1 feature maps, for two
    reasons found by trying the engine's CNN (3 conv blocks, 8x8 maps, global average pooling): (1) BN's
    statistics there come from B x 64 values per channel, so even batch 2 gives 128 values and BN did not degrade
    (eval-mode accuracy 0.93-0.98 at batch 2); (2) with GN, LN or IN right before the global average pool, each
    sample's own per-channel level is normalized away, and that level is what the linear head reads: GN and LN
    crawled (about 0.4 after 3 epochs at batch 32, chance at batch 2 with lr 0.01-0.02) while the same CNN with a
    flattened head reached 0.93-0.95. In the MLP, BN's statistics come from the B values of each unit only: a
    harsher and different setting from Wu & He's, whose BN averages over B x H x W values per channel (hundreds or
    more even at 2 images per GPU). At B = 2 the two values of a unit become (x - mean) / sqrt(var + eps) = about
    +1 and -1 whatever they were, a degenerate case they never had. So this sweep shows the direction of BN's
    dependence on the batch size and its train/eval gap, not a replica of their numbers; pages show the two in
    separate tables (`findings.wu_he_table`, `findings.batch_size_table`).

    Summary per (batch size, norm): eval-mode test accuracy (running statistics for BN), train-mode accuracy (each
    test batch of B images normalized with its own statistics; the same as eval mode for GN, LN and none), the gap,
    steps and lr.

    Default (2 epochs, lr 0.1 at batch 32, seed 0; 11,000 steps in all): eval-mode accuracy at batch 2 / 4 / 8 / 16
    / 32: BN 29% / 92% / 94% / 96% / 95%, GN 85% / 91% / 85% / 91% / 80%, LN 88% / 91% / 95% / 90% / 87%, no norm
    93% / 92% / 84% / 84% / 85%; BN's train-mode accuracy 20% / 70% / 85% / 91% / 93% (train minus eval: -9 / -21 /
    -9 / -6 / -2 points).
    """
    batch_sizes = tuple(int(b) for b in _check_choice("batch_sizes", batch_sizes, lo=1))
    norms = _check_choice("norms", norms)
    if epochs <= 0 or lr_at_32 <= 0:
        raise ValueError(f"epochs={epochs} and lr_at_32={lr_at_32} must be > 0")
    start = time.perf_counter()
    report = StageProgress(progress)
    plan = [(b, max(1, round(epochs * TRAIN_IMAGES / b))) for b in batch_sizes]
    work = sum(steps * len(norms) for _, steps in plan)
    done = 0
    rows = []
    for b, steps in plan:
        lr = lr_at_32 * b / 32
        base = RunConfig(**dict(net), batch_size=b, lr=lr, steps=steps, seed=seed, record_every=0, eval_every=steps)
        share = steps * len(norms) / work
        runs, streams = lockstep([base.replace(norm=n) for n in norms])
        drive(runs, streams, report.part(done, done + share, f"batch size {b} ({', '.join(norms)})"))
        done += share
        for run in runs:
            eval_acc = final_accuracy(run)
            train_acc = final_accuracy(run, train_mode=True) if run.cfg.uses_batch_norm else eval_acc
            rows.append({"batch_size": b, "norm": run.cfg.norm, "model": SWEEP_LABELS[run.cfg.norm],
                         "eval_acc": eval_acc, "train_mode_acc": train_acc, "gap": train_acc - eval_acc,
                         "steps": steps, "lr": lr, "diverged": run.status == "diverged"})
    report(1.0, "done", force=True)
    settings = {**dict(net), "batch_sizes": batch_sizes, "norms": norms, "epochs": epochs, "lr_at_32": lr_at_32,
                "seed": seed, "lr_rule": "lr = lr_at_32 * batch_size / 32", "steps_rule": "epochs * 1437 / batch"}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)
