"""Lesson: batch norm at inference is a fixed affine map, so it folds into the layer before it.

`fold_lesson` trains the app's default CNN with BN before each ReLU, folds every BN into its conv layer
(`engine.folding.fold_model`) and compares the two networks on the test set: largest difference of the logits,
whether every prediction agrees, test accuracy, and the time of one forward pass over the test set on this CPU
(median of several, both networks measured alternately so they share the machine's load).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..engine.config import RunConfig
from ..engine.folding import fold_model
from ..engine.trainer import Job
from .experiment_runs import Progress, StageProgress, drive
from .result_cache import remembered

TIMING_REPEATS = 15  # forward passes per network: enough for a stable median, a fraction of a second in all


@dataclass
class FoldResult:
    """What folding changed (nothing but speed, if the maths holds) and the settings and runtime of the lesson."""

    settings: dict
    seconds: float
    folded_layers: int
    max_logit_difference: float
    predictions_agree: float  # share of test images with the same predicted class
    accuracy: float  # eval mode, unfolded
    accuracy_folded: float
    ms_unfolded: float  # one forward pass over the test set, median
    ms_folded: float
    parameters: int  # weights and biases (BN's gamma and beta included) of the unfolded network
    parameters_folded: int

    @property
    def speedup(self) -> float:
        return self.ms_unfolded / self.ms_folded


def median_forward_ms(nets: list[torch.nn.Module], x: torch.Tensor, repeats: int = TIMING_REPEATS) -> list[float]:
    """Median time in ms of `net(x)` for each net, the nets run in turn so a busy machine slows all of them."""
    times: list[list[float]] = [[] for _ in nets]
    with torch.no_grad():
        for net in nets:
            net(x)  # warm-up
        for _ in range(repeats):
            for i, net in enumerate(nets):
                start = time.perf_counter()
                net(x)
                times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


@remembered
def fold_lesson(steps: int = 300, seed: int = 0, progress: Progress = None) -> FoldResult:
    """Train the default CNN with BN (before ReLU) for `steps`, fold its BN layers, compare on the test set."""
    start = time.perf_counter()
    report = StageProgress(progress)
    cfg = RunConfig(norm="batch", placement="before", steps=steps, seed=seed, record_every=0, eval_every=steps)
    job = Job(cfg)
    run = job.runs[0]
    drive(job.runs, job.streams, report.part(0.0, 0.9, "training the CNN with BN"))
    net = run.model.eval()
    folded, count = fold_model(net)
    report(0.9, "folding and timing both networks", force=True)
    x_test, y_test = run.dataset.x_test, run.dataset.y_test
    with torch.no_grad():
        logits, logits_folded = net(x_test), folded(x_test)
    ms_unfolded, ms_folded = median_forward_ms([net, folded], x_test)
    report(1.0, "done", force=True)
    return FoldResult(
        settings={"steps": steps, "seed": seed, "model": "default CNN (3 conv blocks of 16 channels, BN before ReLU)",
                  "test images": len(x_test)},
        seconds=time.perf_counter() - start,
        folded_layers=count,
        max_logit_difference=float((logits - logits_folded).abs().max()),
        predictions_agree=float((logits.argmax(1) == logits_folded.argmax(1)).float().mean()),
        accuracy=float((logits.argmax(1) == y_test).float().mean()),
        accuracy_folded=float((logits_folded.argmax(1) == y_test).float().mean()),
        ms_unfolded=ms_unfolded, ms_folded=ms_folded,
        parameters=sum(p.numel() for p in net.parameters()),
        parameters_folded=sum(p.numel() for p in folded.parameters()),
    )


def fold_findings(result: FoldResult) -> list[str]:
    """What this run showed, in sentences computed from it."""
    n = result.settings["test images"]
    same = f"all {n}" if result.predictions_agree == 1.0 else f"{result.predictions_agree:.1%} of the {n}"
    return [
        f"Folded {result.folded_layers} batch-norm layers into their conv layers: "
        f"{result.parameters:,} parameters became {result.parameters_folded:,} (γ, β and the running statistics "
        "are now inside the conv weights and biases).",
        "Largest difference of any logit on the test images: "
        f"{result.max_logit_difference:.1e} (float32 rounding); the predicted class is the same for {same} "
        f"test images, and test accuracy is {result.accuracy:.1%} before and {result.accuracy_folded:.1%} after.",
        f"One forward pass over the test set on this CPU: {result.ms_unfolded:.1f} ms with BN layers, "
        f"{result.ms_folded:.1f} ms folded ({result.speedup:.2f}x; median of {TIMING_REPEATS}, both measured in "
        "turn). Timings vary with the machine's load.",
    ]
