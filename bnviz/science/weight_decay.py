"""Lesson: scale invariance, weight decay and the effective learning rate of the weights before a BN layer.

With BN right after a conv or linear layer, the layer's output does not depend on the scale of its weights:
BN(a W x) = BN(W x) for a > 0 (training mode: the batch statistics scale with a). Two consequences follow, shown by
van Laarhoven (2017, "L2 regularization versus batch and weight normalization"), Hoffer, Banner, Golan & Soudry
(2018, "Norm matters") and Zhang, Wang, Xu & Grosse (2019, "Three mechanisms of weight decay regularization"):

* the gradient with respect to W is orthogonal to W (`<W, dL/dW> = 0`) and scales as 1/a, so a plain SGD step
  only *grows* ||W|| (||W + dW||^2 = ||W||^2 + ||dW||^2), and the step's effect on the direction of W, the only thing
  that matters for the output, scales as lr / ||W||^2: the **effective learning rate**;
* weight decay (an L2 penalty) does not regularize such a layer's function (it is scale invariant); it keeps
  ||W|| small and thereby the effective learning rate up.

`scale_invariance` checks the first point on one batch; `weight_decay_lesson` trains the default CNN twice, with
and without weight decay, from the same initial weights on the same batches, and reads each block's ||W|| from the
recorded history (`w_norm`, every recorded step) and the measured relative update ||dW|| / ||W||.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..engine.config import RunConfig
from ..engine.data import BatchStream
from ..engine.history import WEIGHT_STATS
from ..engine.models import build_model
from ..engine.trainer import load_for
from .experiment_runs import Progress, StageProgress, drive, lockstep
from .result_cache import remembered

SCALES = (0.1, 10.0)  # factors the weights of one block are multiplied by in the scale-invariance check
LESSON_NET = dict(steps=500, lr=0.1, sgd_momentum=0.9, batch_size=64, record_every=5, eval_every=500,
                  samples=64, hist_bins=16)  # the default CNN; few samples and bins: only weight norms are read


@dataclass
class ScaleCheck:
    block: int  # 1-based block whose conv weights were scaled
    rows: pd.DataFrame  # scale, max |logit change| (train mode), eval mode too, gradient norm x scale / original
    cosine: float  # cos(W, dL/dW) at scale 1: 0 up to rounding


def scale_invariance(block: int = 2, seed: int = 0, batch_size: int = 64, scales=SCALES) -> ScaleCheck:
    """Multiply the conv weights of `block` (1-based) of an untrained default CNN with BN by each scale and compare,
    on one batch of digits: the logits in training mode (batch statistics) and in eval mode (running statistics,
    fixed before the scaling), and the gradient of the loss with respect to those weights."""
    cfg = RunConfig(seed=seed, batch_size=batch_size, steps=1)
    data = load_for(cfg)
    x, y = BatchStream(data, batch_size, seed).next()
    net = build_model(cfg, data.input_shape, data.n_classes).double()
    x = x.double()
    weight = net.blocks[block - 1].layer.weight
    original = weight.detach().clone()

    def logits_and_grad(scale: float, train: bool):
        with torch.no_grad():
            weight.copy_(original * scale)
        net.train(train)
        buffers = {k: v.clone() for k, v in net.named_buffers()}
        net.zero_grad(set_to_none=True)
        out = net(x)
        F.cross_entropy(out, y).backward()
        with torch.no_grad():  # a train-mode pass moves the running statistics: put them back
            for k, v in net.named_buffers():
                v.copy_(buffers[k])
        return out.detach(), weight.grad.detach().clone()

    base_train, base_grad = logits_and_grad(1.0, True)
    base_eval, _ = logits_and_grad(1.0, False)
    rows = []
    for scale in scales:
        train_out, grad = logits_and_grad(scale, True)
        eval_out, _ = logits_and_grad(scale, False)
        rows.append({"scale": scale, "train_diff": float((train_out - base_train).abs().max()),
                     "eval_diff": float((eval_out - base_eval).abs().max()),
                     "grad_ratio": float(grad.norm() * scale / base_grad.norm())})
    with torch.no_grad():
        weight.copy_(original)
    cosine = float(F.cosine_similarity(original.flatten(), base_grad.flatten(), dim=0))
    return ScaleCheck(block, pd.DataFrame(rows), cosine)


@dataclass
class WeightDecayResult:
    settings: dict
    seconds: float
    curves: pd.DataFrame  # run, weight_decay, block, step, w_norm, effective_lr, update_ratio
    summary: pd.DataFrame  # one row per run: weight_decay, final test accuracy


@remembered
def weight_decay_lesson(weight_decay: float = 5e-3, steps: int = LESSON_NET["steps"], seed: int = 0,
                        progress: Progress = None) -> WeightDecayResult:
    """The default CNN (BN before ReLU) trained without and with `weight_decay`, same initial weights and batches;
    per conv block and recorded step: ||W||, lr / ||W||^2 and the measured update ||W_after - W_before|| / ||W||."""
    start = time.perf_counter()
    report = StageProgress(progress)
    net = dict(LESSON_NET, steps=steps, eval_every=steps, seed=seed)
    configs = [RunConfig(**net, weight_decay=0.0), RunConfig(**net, weight_decay=float(weight_decay))]
    runs, streams = lockstep(configs)
    drive(runs, streams, lambda f, m: report(0.95 * f, f"training: {m}"))
    frames, summary = [], []
    for run in runs:
        h = run.history
        steps_ = h.steps
        stats = h.column("weight_stats")  # (rows, weights, WEIGHT_STATS)
        label = run_label(run.cfg.weight_decay)
        n_blocks = len(h.layout.layers)  # the weights before a BN layer; the last weight (the head) has no BN after it
        for b in range(n_blocks):
            w_norm = stats[:, b, WEIGHT_STATS.index("w_norm")].astype(np.float64)
            frames.append(pd.DataFrame({
                "run": label, "weight_decay": run.cfg.weight_decay, "block": b + 1, "step": steps_,
                "w_norm": w_norm, "effective_lr": h.scalar("lr") / w_norm ** 2,
                "update_ratio": stats[:, b, WEIGHT_STATS.index("update_data")].astype(np.float64)}))
        summary.append({"run": label, "weight_decay": run.cfg.weight_decay, "final_test_acc": run.final_test_acc})
    settings = {"model": "default CNN (3 conv blocks of 16 channels, BN before ReLU)", "steps": steps,
                "batch size": net["batch_size"], "lr": net["lr"], "optimizer": f"SGD, momentum {net['sgd_momentum']}",
                "seed": seed, "weight decay": f"0 and {weight_decay:g}"}
    report(1.0, "done", force=True)
    return WeightDecayResult(settings, time.perf_counter() - start, pd.concat(frames, ignore_index=True),
                             pd.DataFrame(summary))


def run_label(weight_decay: float) -> str:
    return "no weight decay" if weight_decay == 0 else f"weight decay {weight_decay:g}"


def weight_decay_findings(result: WeightDecayResult) -> list[str]:
    """Sentences computed from the runs: ||W|| and the effective learning rate at the start and the end, per run."""
    curves = result.curves
    out = []
    for row in result.summary.itertuples():
        part = curves[curves["run"] == row.run]
        first, last = part["step"].min(), part["step"].max()
        start = part[part["step"] == first].set_index("block")
        end = part[part["step"] == last].set_index("block")
        growth = ", ".join(f"block {b}: {start.w_norm[b]:.2f} → {end.w_norm[b]:.2f}" for b in start.index)
        factor = float(np.exp(np.mean(np.log(start.effective_lr / end.effective_lr))))
        out.append(f"{row.run[0].upper()}{row.run[1:]}: ||W|| {growth} (step {first} → {last}); the effective "
                   f"learning rate lr/||W||² fell {factor:.1f}x on average over the blocks; final test accuracy "
                   f"{row.final_test_acc:.1%}.")
    late = curves[curves["step"] >= curves["step"].max() * 0.8].groupby("run")["update_ratio"].mean()
    out.append("Measured relative update std(ΔW)/std(W) per step, mean over the last fifth of training and the "
               "blocks: "
               + ", ".join(f"{run} {value:.2e}" for run, value in late.items()) + ".")
    return out


def scale_findings(check: ScaleCheck) -> list[str]:
    """Sentences from the scale-invariance check."""
    out = []
    for row in check.rows.itertuples():
        out.append(f"Block {check.block}'s weights × {row.scale:g}: largest change of a logit {row.train_diff:.1e} "
                   f"in training mode (batch statistics), {row.eval_diff:.2g} in eval mode (running statistics "
                   f"kept from before the scaling); gradient norm × {row.scale:g} / original = {row.grad_ratio:.6f}.")
    out.append(f"cos(W, ∂L/∂W) = {check.cosine:.1e}: the gradient is orthogonal to the weights.")
    return out
