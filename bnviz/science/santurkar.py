"""The second canned experiment: Santurkar et al. (2018), noisy BN, gradient ICS and the loss landscape."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..engine.config import RunConfig
from ..engine.history import WEIGHT_STATS, History
from ..engine.shift import distribution_drift
from ..engine.trainer import Run
from .experiment_runs import (
    NORM_LABELS,
    Progress,
    SanturkarResult,
    StageProgress,
    act_input_probe,
    drive,
    final_accuracy,
    lockstep,
)
from .result_cache import remembered

LANDSCAPE_MULTIPLES = (0.5, 1.0, 2.0, 3.0, 4.0)  # step sizes along the gradient, in units of the learning rate
SANTURKAR_NET = dict(model="mlp", depth=4, width=64, activation="relu", batch_size=64, lr=0.1, sgd_momentum=0.0)
LANDSCAPE_COLUMNS = ["model", "step", "multiple", "eta", "loss", "grad_change", "beta"]


def landscape_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float,
                    multiples: Sequence[float] = LANDSCAPE_MULTIPLES) -> pd.DataFrame:
    """Santurkar et al.'s loss-landscape measures at the model's current weights w, on the batch (x, y).

    g = gradient of the loss at w. For each step size eta = multiple * lr: the loss L(w - eta g) and the gradient
    change ||g(w - eta g) - g(w)|| (all parameters, one L2 norm); "beta" = gradient change / ||eta g||, the effective
    smoothness. Computed functionally (torch.func.functional_call) on copies of the parameters and buffers, with the
    model in train mode (BN normalizes with this batch's statistics, as in training); noisy BN and dropout reuse their
    last draw. The model's parameters, gradients, running statistics, noise generator and mode are left exactly as they
    were. Returns one row per step size, plus multiple 0 (the starting point): multiple, eta, loss, grad_change, beta.
    """
    names = [n for n, _ in model.named_parameters()]
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    noisy = [m for m in model.modules() if hasattr(m, "freeze_noise")]  # noisy BN and dropout: reuse their draw
    noise_state = [(m.freeze_noise, m.last_noise, m.generator.get_state()) for m in noisy]
    was_training = model.training

    def loss_and_grad(params: dict[str, torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        state = {**params, **{n: b.clone() for n, b in buffers.items()}}  # BN updates these clones, not the model
        with torch.enable_grad():
            loss = F.cross_entropy(functional_call(model, state, (x,)), y)
            grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        grads = [torch.zeros_like(params[n]) if g is None else g.detach() for n, g in zip(names, grads, strict=True)]
        return float(loss.detach()), grads

    def norm(tensors: list[torch.Tensor]) -> float:
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))

    rows = []
    try:
        for m in noisy:
            m.freeze_noise = True
        model.train()
        loss0, g0 = loss_and_grad(weights)
        g_norm = norm(g0)
        rows.append({"multiple": 0.0, "eta": 0.0, "loss": loss0, "grad_change": 0.0, "beta": math.nan})
        for multiple in multiples:
            eta = float(multiple) * lr
            moved = {n: weights[n] - eta * g for n, g in zip(names, g0, strict=True)}
            loss, g = loss_and_grad(moved)
            change = norm([a - b for a, b in zip(g, g0, strict=True)])
            distance = eta * g_norm
            rows.append({"multiple": float(multiple), "eta": eta, "loss": loss, "grad_change": change,
                         "beta": change / distance if distance > 0 else math.nan})
    finally:
        for m, (frozen, last, generator_state) in zip(noisy, noise_state, strict=True):
            m.freeze_noise, m.last_noise = frozen, last
            m.generator.set_state(generator_state)
        model.train(was_training)
    return pd.DataFrame(rows)


@remembered
def santurkar(steps: int = 600, seed: int = 0, ics_every: int = 50, probe_every: int = 100,
              record_every: int = 10, eval_every: int = 50, net: tuple = tuple(SANTURKAR_NET.items()),
              progress: Progress = None) -> SanturkarResult:
    """Santurkar, Tsipras, Ilyas & Madry (2018), small version: no BN vs BN vs noisy BN ("batch-noisy": after every
    BN layer a <- s * a + m, with s and m drawn anew every step for each activation of each sample:
    `models.draw_noise`), on the same initial weights and batches.

    Measured: test accuracy; the drift of every block's activation input from its step-0 distribution
    (shift.distribution_drift, W1 in step-0 standard deviations, mean over blocks); Santurkar's gradient ICS every
    `ics_every` steps (||G - G'|| and cos(G, G') per block); and every `probe_every` steps (from step probe_every
    on) the loss landscape along the gradient (`landscape_probe`, step sizes 0.5x to 4x the learning rate), on the
    batch of that step, before the step is taken. `net` holds the RunConfig fields of the network (a tuple of
    pairs, so the arguments stay hashable); default a 4x64 ReLU MLP, batch 64, plain SGD lr 0.1, where all three
    train (a sigmoid MLP or the CNN with plain SGD left the network without BN stuck near chance, where the tiny
    gradients make every measure trivially small).

    Default (600 steps, seed 0): accuracy no BN 93%, BN 98%, noisy BN 98%; step-to-step input shift 0.19 / 0.08 /
    0.34 (noisy BN moves most); gradient ICS ||G - G'|| / ||G|| 0.58 / 0.54 / 1.09 and cos 0.62 / 0.87 / 0.46 (by
    the cosine BN *reduced* this ICS here, unlike in Santurkar et al.'s VGG); loss range along the gradient
    1.32 / 0.011 / 0.017 and gradient change 3.3 / 0.31 / 0.52 (BN far smoother; before step ~200 the
    network without BN sits on a plateau where its landscape is flat, hence also the "_late" means).
    """
    if ics_every % record_every or eval_every % record_every:
        raise ValueError(f"ics_every={ics_every} and eval_every={eval_every} must be multiples of "
                         f"record_every={record_every} (only recorded steps keep their measurements)")
    if probe_every < 1:
        raise ValueError(f"probe_every={probe_every} is not allowed: it must be at least 1")
    start = time.perf_counter()
    report = StageProgress(progress)
    base = RunConfig(**dict(net), steps=steps, seed=seed, record_every=record_every, eval_every=eval_every,
                     ics_every=ics_every)
    norms = ["batch", "none", "batch-noisy"]
    runs, streams = lockstep([base.replace(norm=n) for n in norms])
    probes: list[pd.DataFrame] = []
    drive(runs, streams, report.part(0.0, 0.97, "training no BN, BN and noisy BN"), _probing(probe_every, probes))
    by_label = {NORM_LABELS[r.cfg.norm]: r for r in runs}
    landscape = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(columns=LANDSCAPE_COLUMNS)
    curves, ics_rows, summary = [], [], []
    for label in ["no BN", "BN", "noisy BN"]:
        curve, ics, row = _measures(label, by_label[label], landscape[landscape["model"] == label], steps // 2)
        curves.append(curve)
        ics_rows.append(ics)
        summary.append(row)
    report(1.0, "done", force=True)
    settings = {**dict(net), "steps": steps, "seed": seed, "ics_every": ics_every, "probe_every": probe_every,
                "record_every": record_every, "eval_every": eval_every, "multiples": LANDSCAPE_MULTIPLES}
    return SanturkarResult(pd.DataFrame(summary), settings, time.perf_counter() - start,
                           curves=pd.concat(curves, ignore_index=True),
                           ics=pd.concat(ics_rows, ignore_index=True), landscape=landscape)


def _probing(probe_every: int, probes: list[pd.DataFrame]) -> Callable[[int, Run, torch.Tensor, torch.Tensor], None]:
    """A `drive` before_step that probes the landscape every `probe_every` steps (from then on) into `probes`."""

    def before_step(i: int, run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
        if run.step and run.step % probe_every == 0:
            with run.recorder.suspended() if run.recorder else contextlib.nullcontext():
                frame = landscape_probe(run.model, x, y, run.lr)
            frame.insert(0, "step", run.step)
            frame.insert(0, "model", NORM_LABELS[run.cfg.norm])
            probes.append(frame)

    return before_step


def _measures(label: str, run: Run, landscape: pd.DataFrame,
              late_from: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One model's curves (accuracy, loss, input drift and jump), gradient ICS rows and summary row."""
    h = run.history
    probes_k = [act_input_probe(h, b, run.cfg) for b in range(len(h.layout.layers))]
    drift = distribution_drift(h, "first")["w1_rel"][:, probes_k]  # (rows, blocks), in step-0 stds
    jumps = distribution_drift(h, "previous")["w1_rel"][:, probes_k]  # since the previous recorded step
    curve = pd.DataFrame({"model": label, "step": h.steps, "test_acc": h.scalar("test_acc"),
                          "loss": h.scalar("loss"), "drift": _row_mean(drift), "jump": _row_mean(jumps)})
    ics = _gradient_ics(h, label)
    row = {"model": label, "final_acc": final_accuracy(run), "diverged": run.status == "diverged",
           "drift_mean": _nanmean(drift), "jump_mean": _nanmean(jumps[1:]),
           "ics_l2": _nanmean(ics["ics_l2"]), "ics_rel": _nanmean(ics["ics_rel"]),
           "ics_cos": _nanmean(ics["ics_cos"]), **_landscape_summary(landscape, late_from)}
    return curve, ics, row


def _gradient_ics(h: History, label: str) -> pd.DataFrame:
    """Santurkar's gradient ICS per block at the steps where it was measured: ||G - G'||, relative to ||G||, cos."""
    ics = h.column("ics").astype(np.float64)
    grad_norm = h.column("weight_stats")[:, :, WEIGHT_STATS.index("grad_norm")].astype(np.float64)
    frames = []
    for b in range(len(h.layout.layers)):
        measured = np.isfinite(ics[:, b, 0])
        w = h.layout.weights.index(f"{h.layout.layers[b]}.weight")
        with np.errstate(all="ignore"):
            relative = ics[measured, b, 0] / grad_norm[measured, w]
        frames.append(pd.DataFrame({"model": label, "step": h.steps[measured], "block": b + 1,
                                    "ics_l2": ics[measured, b, 0], "ics_rel": relative,
                                    "ics_cos": ics[measured, b, 1]}))
    return pd.concat(frames, ignore_index=True)


def _landscape_summary(frame: pd.DataFrame, late_from: int) -> dict[str, float]:
    """Per model: mean over checkpoints of the loss range (max - min over the step sizes, starting point excluded),
    of the gradient change (mean over step sizes) and of the largest effective beta; and the first two over the
    checkpoints from step `late_from` on ("_late"), i.e. after a slow network has usually left its first plateau,
    where tiny gradients make its landscape look flat."""
    keys = ("loss_range", "grad_change", "beta", "loss_range_late", "grad_change_late")
    moved = frame[frame["multiple"] > 0]
    if moved.empty:
        return dict.fromkeys(keys, math.nan)
    per_step = moved.groupby("step").agg(lo=("loss", "min"), hi=("loss", "max"), change=("grad_change", "mean"),
                                         beta=("beta", "max")).replace([np.inf, -np.inf], np.nan)
    per_step["range"] = per_step["hi"] - per_step["lo"]
    late = per_step[per_step.index >= late_from]
    return dict(zip(keys, (_nanmean(per_step["range"]), _nanmean(per_step["change"]), _nanmean(per_step["beta"]),
                           _nanmean(late["range"]), _nanmean(late["change"])), strict=True))


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN, NaN (no warning) where a row has no finite value."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=-1)
    sums = np.where(finite, values, 0.0).sum(axis=-1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
