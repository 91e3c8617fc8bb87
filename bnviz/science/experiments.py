"""Canned experiments: small CPU replications of the published batch-norm experiments (SCIENCE.md, sections 1-5).

Each experiment trains a few small networks on the bundled 8x8 digits and returns a result dataclass of tidy
pandas DataFrames (`.summary`, one row per model or setting, plus the curves), the settings it ran with and the
seconds it took; `to_frame(result)` gives its main frame. Every experiment

* is deterministic for its arguments (the seed fixes the split, the initial weights, the batches and the noise);
* compares like with like: the models of one comparison start from the same initial weights wherever their layers
  match and see the identical sequence of mini-batches (a twin `trainer.Job`; a third model joins the twin's batch
  stream and copies its weights, exactly as `Job` does for the second one);
* reports progress through an optional `progress(fraction_done, message)` callback (a page's progress bar);
* is remembered per process: calling it again with the same arguments returns the stored result at once
  (`cached(fn, **kwargs)` looks without computing). Treat a returned result as read-only: it is shared.

Default settings and what they showed (seed 0) are in each docstring; `PUBLISHED` holds the papers' numbers to
show next to ours. No Streamlit here: `run_guarded` is what a page calls (it takes a slot of the server-wide job
limiter and turns an error into a plain message).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..engine.config import RunConfig
from ..engine.data import BatchStream
from ..engine.history import WEIGHT_STATS, History
from ..engine.models import NoisyBatchNorm
from ..engine.shift import distribution_drift
from ..engine.trainer import Job, Run
from ..errors import DatasetUnavailable

Progress = Callable[[float, str], None] | None

CHANCE = 0.1  # ten digit classes
PROGRESS_SECONDS = 0.2  # report progress at most this often (a Streamlit progress bar redraws on every call)
CACHE_SIZE = 32  # results kept per process (each is a few hundred kB of DataFrames)

# The sigmoid MLP of Ioffe & Szegedy's Figure 1 (3 hidden layers of 100 sigmoid units, batch 60, SGD lr 0.5).
FIGURE1_NET = dict(model="mlp", depth=3, width=100, activation="sigmoid", batch_size=60, lr=0.5, sgd_momentum=0.0)

# ---- the papers' numbers, for display next to ours -----------------------------------------------------------
WU_HE_BATCH_SIZES = (32, 16, 8, 4, 2)
PUBLISHED = {
    "figure1": {
        "source": "Ioffe & Szegedy (2015), Figure 1: MNIST, 3x100 sigmoid MLP, batch 60, 50,000 steps",
        "claim": "Without BN the sigmoid input's percentiles drift in mean and spread; with BN they stay put, "
                 "and BN reaches a higher test accuracy sooner.",
        "small_version": "SCIENCE.md, 8x8 digits, 3,000 steps: the median drifts about ten times less with BN; "
                         "test accuracy at step 100 about 0.9 with BN vs 0.1 without.",
    },
    "santurkar": {
        "source": "Santurkar, Tsipras, Ilyas & Madry (2018), 'How does batch normalization help optimization?', "
                  "VGG on CIFAR-10",
        "claim": "(a) Noisy BN (injected, moving distribution shift after every BN layer) trains about as well as "
                 "BN. (b) Their gradient ICS (||G - G'||, cos(G, G')) is not smaller with BN. (c) With BN the loss "
                 "landscape along the gradient is smoother: smaller loss variation and gradient change.",
    },
    "lr_sweep": {
        "source": "Ioffe & Szegedy (2015); Bjorck et al. (2018), 'Understanding batch normalization'",
        "claim": "BN allows much higher learning rates.",
        "small_version": "SCIENCE.md, 6x64 ReLU MLP on digits, 1,000 steps: without BN lr 1.0 and 3.0 stay at "
                         "chance (0.1); with BN they reach about 0.98.",
    },
    "init_sweep": {
        "source": "Ioffe & Szegedy (2015), section 3.3",
        "claim": "BN makes training less sensitive to the scale of the initial weights.",
        "small_version": "SCIENCE.md, sigmoid 3x100, weights ~ N(0, s^2): without BN s = 0.01 stays at chance "
                         "and s = 5 degrades; with BN every s trains.",
    },
    "batch_size": {
        "source": "Wu & He (2018), 'Group Normalization', ResNet-50 on ImageNet, top-1 error (%) by images per GPU",
        "claim": "BN's error grows as the batch shrinks; GN's does not.",
        "small_version": "SCIENCE.md: at batch size 2, BN's eval-mode accuracy collapses while LN/GN do not.",
    },
}
WU_HE_TABLE = pd.DataFrame({
    "batch_size": list(WU_HE_BATCH_SIZES),
    "BN top-1 error (%)": [23.6, 23.7, 24.8, 27.3, 34.7],
    "GN top-1 error (%)": [24.1, 24.2, 24.0, 24.2, 24.1],
})

NORM_LABELS = {"none": "no BN", "batch": "BN", "batch-noisy": "noisy BN", "layer": "LN", "group": "GN",
               "instance": "IN"}
SWEEP_LABELS = {**NORM_LABELS, "none": "no norm"}  # among several normalizations, "none" is not just "no BN"


# ---- plumbing: progress, datasets, cache ---------------------------------------------------------------------
class _Progress:
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
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _cached(fn):
    """Remember `fn`'s result per (arguments without `progress`); hits report 100% at once."""
    signature = inspect.signature(fn)

    def key_of(args, kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        bound.arguments.pop("progress", None)
        return (fn.__name__, _freeze(dict(bound.arguments)))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = key_of(args, kwargs)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
        if hit is not None:
            if kwargs.get("progress") is not None:
                kwargs["progress"](1.0, "done (remembered from an earlier run)")
            return hit
        result = fn(*args, **kwargs)
        with _CACHE_LOCK:
            _CACHE[key] = result
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        return result

    wrapper.cache_key = key_of
    return wrapper


def cached(fn, *args, **kwargs):
    """The stored result of `fn(*args, **kwargs)` if this process computed it already, else None (no training)."""
    with _CACHE_LOCK:
        return _CACHE.get(fn.cache_key(args, kwargs))


def remember(fn, result, *args, **kwargs) -> None:
    """Store `result` as `fn(*args, **kwargs)`'s (tests; a teacher warming the cache before a lecture)."""
    with _CACHE_LOCK:
        _CACHE[fn.cache_key(args, kwargs)] = result


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# ---- plumbing: training in lockstep --------------------------------------------------------------------------
def _lockstep(configs: Sequence[RunConfig]) -> tuple[list[Run], list[BatchStream]]:
    """Runs that share initial weights and batches: a twin Job for the first two configs; any further config joins
    it the way Job adds its second run (weights copied from the first run where names and shapes match, the same
    batch stream when dataset and batch size match)."""
    configs = list(configs)
    job = Job(configs[:2], datasets=_DATASETS)
    runs, streams = list(job.runs), list(job.streams)
    for cfg in configs[2:]:
        cfg.validate()
        key = (cfg.dataset, cfg.seed, cfg.difficulty)
        run = Run(cfg, _DATASETS.get(key), init_from=runs[0])  # loads the dataset if no run has it yet
        _DATASETS.setdefault(key, run.dataset)
        shared = next((s for r, s in zip(runs, streams)
                       if r.dataset is run.dataset and r.cfg.batch_size == cfg.batch_size), None)
        runs.append(run)
        streams.append(shared or BatchStream(run.dataset, cfg.batch_size, cfg.seed))
    return runs, streams


def _drive(runs: list[Run], streams: list[BatchStream], report: Callable | None = None,
           before_step: Callable[[int, Run, torch.Tensor, torch.Tensor], None] | None = None) -> None:
    """Train the runs to their end in this thread, one step each on the same batch, like `Job._work`.

    before_step(index, run, x, y) is called before each run's step (the landscape probe uses it)."""
    torch.set_num_threads(max(r.cfg.threads for r in runs))
    total = max(r.cfg.steps for r in runs)
    for run in runs:
        run.status = "running"
    try:
        while True:
            active = [(i, run, stream) for i, (run, stream) in enumerate(zip(runs, streams)) if not run.done]
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


def _final_accuracy(run: Run, train_mode: bool = False) -> float:
    """Whole-test-set accuracy; also for a diverged run (its last finite weights: usually one class, ~chance)."""
    if not train_mode and run.status == "finished" and math.isfinite(run.final_test_acc):
        return float(run.final_test_acc)
    with np.errstate(all="ignore"):
        return float(run.evaluate(train_mode=train_mode))


def _at_step(history: History, column: str, step: int) -> float:
    values = history.scalar(column)
    hit = np.flatnonzero((history.steps == step) & np.isfinite(values))
    return float(values[hit[0]]) if hit.size else math.nan


def _act_input_probe(history: History, layer: int, cfg: RunConfig) -> int:
    """The probe whose values enter block `layer`'s activation: the norm output with norm before it, else pre."""
    stage = "norm" if cfg.norm != "none" and cfg.placement == "before" else "pre"
    k = history.probe_index(layer, stage)
    if k is None:
        raise ValueError(f"block {layer + 1} has no recorded {stage!r} stage")
    return k


def _check_choice(name: str, values: Sequence, lo: float | None = None) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one value")
    if lo is not None and any(not isinstance(v, (int, float)) or v <= lo for v in values):
        raise ValueError(f"{name}={values} is not allowed: every value must be a number > {lo}")
    return values


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
    """curves: model, step, test_acc, p15, p50, p85 (the last hidden layer's sigmoid input).
    summary: model, median_drift, median_drift_mean, spread_change, acc_at_100, final_acc, diverged."""

    curves: pd.DataFrame = field(default_factory=pd.DataFrame)

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


# ---- 1. Ioffe & Szegedy, Figure 1 -----------------------------------------------------------------------------
@_cached
def figure1(steps: int = 3000, seed: int = 0, record_every: int = 25, eval_every: int = 50,
            progress: Progress = None) -> Figure1Result:
    """Ioffe & Szegedy (2015), Figure 1, on the 8x8 digits: a 64-100-100-100-10 sigmoid MLP, batch 60, SGD lr 0.5
    (no momentum), with BN before each sigmoid and without, trained as a twin Job (same initial weights, same batches).

    Recorded every `record_every` steps: the 15th/50th/85th percentiles of the last hidden layer's sigmoid input
    (the BN output with BN, the linear output without); test accuracy every `eval_every` steps (a multiple of
    record_every that divides 100, so step 100 is measured). Summary per model: median_drift = max over steps of
    |p50 - p50 at step 0| (median_drift_mean: the mean over steps); spread_change = max |(p85 - p15) - its step-0
    value|; accuracy at step 100 and at the end.

    Default (3,000 steps, seed 0; ~19 s of CPU, 34 s wall on the shared 2-core machine at load 3.5-5.5): median
    drift BN 0.50 vs no BN 2.71 (5.4x less with BN; averaged over the steps 0.14 vs 2.17, 15x); accuracy at step
    100: 96% vs 10%; at the end 99% vs 67%.
    """
    if eval_every % record_every or 100 % eval_every:
        raise ValueError(f"eval_every={eval_every} must be a multiple of record_every={record_every} and divide 100")
    start = time.perf_counter()
    report = _Progress(progress)
    base = RunConfig(**FIGURE1_NET, steps=steps, seed=seed, record_every=record_every, eval_every=eval_every)
    configs = [base.replace(norm="batch"), base.replace(norm="none")]
    labels = ["BN", "no BN"]
    runs, streams = _lockstep(configs)
    _drive(runs, streams, report.part(0.0, 0.98, "training BN and no BN"))
    curves, summary = [], []
    for label, run in zip(labels, runs):
        h = run.history
        k = _act_input_probe(h, len(h.layout.layers) - 1, run.cfg)
        p15, p50, p85 = (h.act(q)[:, k].astype(np.float64) for q in ("p15", "p50", "p85"))
        curves.append(pd.DataFrame({"model": label, "step": h.steps, "test_acc": h.scalar("test_acc"),
                                    "p15": p15, "p50": p50, "p85": p85}))
        spread = p85 - p15
        summary.append({"model": label, "median_drift": float(np.nanmax(np.abs(p50 - p50[0]))),
                        "median_drift_mean": float(np.nanmean(np.abs(p50 - p50[0]))),
                        "spread_change": float(np.nanmax(np.abs(spread - spread[0]))),
                        "acc_at_100": _at_step(h, "test_acc", 100), "final_acc": _final_accuracy(run),
                        "diverged": run.status == "diverged"})
    report(1.0, "done", force=True)
    summary = pd.DataFrame(summary)
    settings = {**FIGURE1_NET, "steps": steps, "seed": seed, "record_every": record_every,
                "eval_every": eval_every}
    return Figure1Result(summary, settings, time.perf_counter() - start, curves=pd.concat(curves, ignore_index=True))


# ---- 2. Santurkar et al.: noisy BN, gradient ICS, loss landscape ----------------------------------------------
LANDSCAPE_MULTIPLES = (0.5, 1.0, 2.0, 3.0, 4.0)  # step sizes along the gradient, in units of the learning rate


def landscape_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float,
                    multiples: Sequence[float] = LANDSCAPE_MULTIPLES) -> pd.DataFrame:
    """Santurkar et al.'s loss-landscape measures at the model's current weights w, on the batch (x, y).

    g = gradient of the loss at w. For each step size eta = multiple * lr: the loss L(w - eta g) and the gradient
    change ||g(w - eta g) - g(w)|| (all parameters, one L2 norm); "beta" = gradient change / ||eta g||, the effective
    smoothness. Computed functionally (torch.func.functional_call) on copies of the parameters and buffers, with the
    model in train mode (BN normalizes with this batch's statistics, as in training); noisy BN reuses its last noise
    draw. The model's parameters, gradients, running statistics, noise generator and mode are left exactly as they
    were. Returns one row per step size, plus multiple 0 (the starting point): multiple, eta, loss, grad_change, beta.
    """
    names = [n for n, _ in model.named_parameters()]
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    noisy = [m for m in model.modules() if isinstance(m, NoisyBatchNorm)]
    noise_state = [(m.freeze_noise, m._last, m.generator.get_state()) for m in noisy]
    was_training = model.training

    def loss_and_grad(params: dict[str, torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        state = {**params, **{n: b.clone() for n, b in buffers.items()}}  # BN updates these clones, not the model
        with torch.enable_grad():
            loss = F.cross_entropy(functional_call(model, state, (x,)), y)
            grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        grads = [torch.zeros_like(params[n]) if g is None else g.detach() for n, g in zip(names, grads)]
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
            moved = {n: weights[n] - eta * g for n, g in zip(names, g0)}
            loss, g = loss_and_grad(moved)
            change = norm([a - b for a, b in zip(g, g0)])
            distance = eta * g_norm
            rows.append({"multiple": float(multiple), "eta": eta, "loss": loss, "grad_change": change,
                         "beta": change / distance if distance > 0 else math.nan})
    finally:
        for m, (frozen, last, generator_state) in zip(noisy, noise_state):
            m.freeze_noise, m._last = frozen, last
            m.generator.set_state(generator_state)
        model.train(was_training)
    return pd.DataFrame(rows)


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
                           _nanmean(late["range"]), _nanmean(late["change"]))))


SANTURKAR_NET = dict(model="mlp", depth=4, width=64, activation="relu", batch_size=64, lr=0.1, sgd_momentum=0.0)


@_cached
def santurkar(steps: int = 600, seed: int = 0, ics_every: int = 50, probe_every: int = 100,
              record_every: int = 10, eval_every: int = 50, net: tuple = tuple(SANTURKAR_NET.items()),
              progress: Progress = None) -> SanturkarResult:
    """Santurkar, Tsipras, Ilyas & Madry (2018), small version: no BN vs BN vs noisy BN ("batch-noisy": after every
    BN layer a <- s * a + m, a new random shift and scale every step), on the same initial weights and batches.

    Measured: test accuracy; the drift of every block's activation input from its step-0 distribution
    (shift.distribution_drift, W1 in step-0 standard deviations, mean over blocks); Santurkar's gradient ICS every
    `ics_every` steps (||G - G'|| and cos(G, G') per block); and every `probe_every` steps (from step probe_every
    on) the loss landscape along the gradient (`landscape_probe`, step sizes 0.5x to 4x the learning rate), on the
    batch of that step, before the step is taken. `net` holds the RunConfig fields of the network (a tuple of
    pairs, so the arguments stay hashable); default a 4x64 ReLU MLP, batch 64, plain SGD lr 0.1, where all three
    train (a sigmoid MLP or the CNN with plain SGD left the network without BN stuck near chance, where the tiny
    gradients make every measure trivially small).

    Default (600 steps, seed 0; ~7 s of CPU, 15 s wall at load 5.5): accuracy no BN 93%, BN 98%, noisy BN 98%;
    step-to-step input shift 0.19 / 0.08 / 0.30 (noisy BN moves most); gradient ICS ||G - G'|| / ||G|| 0.58 / 0.54 /
    0.68 (about the same) and cos 0.62 / 0.87 / 0.75 (by the cosine BN *reduced* this ICS here, unlike in
    Santurkar et al.'s VGG);
    loss range along the gradient 1.32 / 0.011 / 0.041 and gradient change 3.3 / 0.31 / 1.1 (BN far smoother; before
    step ~200 the network without BN sits on a plateau where its landscape is flat, hence also the "_late" means).
    """
    if ics_every % record_every or eval_every % record_every:
        raise ValueError(f"ics_every={ics_every} and eval_every={eval_every} must be multiples of "
                         f"record_every={record_every} (only recorded steps keep their measurements)")
    if probe_every < 1:
        raise ValueError(f"probe_every={probe_every} is not allowed: it must be at least 1")
    start = time.perf_counter()
    report = _Progress(progress)
    base = RunConfig(**dict(net), steps=steps, seed=seed, record_every=record_every, eval_every=eval_every,
                     ics_every=ics_every)
    norms = ["batch", "none", "batch-noisy"]
    configs = [base.replace(norm=n) for n in norms]
    runs, streams = _lockstep(configs)
    probes: list[pd.DataFrame] = []

    def before_step(i: int, run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
        if run.step and run.step % probe_every == 0:
            with run.recorder.suspended() if run.recorder else contextlib.nullcontext():
                frame = landscape_probe(run.model, x, y, run.lr)
            frame.insert(0, "step", run.step)
            frame.insert(0, "model", NORM_LABELS[run.cfg.norm])
            probes.append(frame)

    _drive(runs, streams, report.part(0.0, 0.97, "training no BN, BN and noisy BN"), before_step)
    order = ["no BN", "BN", "noisy BN"]
    by_label = {NORM_LABELS[r.cfg.norm]: r for r in runs}
    curves, ics_rows, summary = [], [], []
    landscape = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(
        columns=["model", "step", "multiple", "eta", "loss", "grad_change", "beta"])
    for label in order:
        run = by_label[label]
        h = run.history
        blocks = range(len(h.layout.layers))
        probes_k = [_act_input_probe(h, b, run.cfg) for b in blocks]
        drift = distribution_drift(h, "first")["w1_rel"][:, probes_k]  # (rows, blocks), in step-0 stds
        jumps = distribution_drift(h, "previous")["w1_rel"][:, probes_k]  # since the previous recorded step
        curves.append(pd.DataFrame({"model": label, "step": h.steps, "test_acc": h.scalar("test_acc"),
                                    "loss": h.scalar("loss"), "drift": _row_mean(drift), "jump": _row_mean(jumps)}))
        ics = h.column("ics").astype(np.float64)
        grad_norm = h.column("weight_stats")[:, :, WEIGHT_STATS.index("grad_norm")].astype(np.float64)
        mine_ics = []
        for b in blocks:
            measured = np.isfinite(ics[:, b, 0])
            w = h.layout.weights.index(f"{h.layout.layers[b]}.weight")
            with np.errstate(all="ignore"):
                relative = ics[measured, b, 0] / grad_norm[measured, w]
            mine_ics.append(pd.DataFrame({"model": label, "step": h.steps[measured], "block": b + 1,
                                          "ics_l2": ics[measured, b, 0], "ics_rel": relative,
                                          "ics_cos": ics[measured, b, 1]}))
        mine_ics = pd.concat(mine_ics, ignore_index=True)
        ics_rows.append(mine_ics)
        summary.append({"model": label, "final_acc": _final_accuracy(run), "diverged": run.status == "diverged",
                        "drift_mean": _nanmean(drift), "jump_mean": _nanmean(jumps[1:]),
                        "ics_l2": _nanmean(mine_ics["ics_l2"]), "ics_rel": _nanmean(mine_ics["ics_rel"]),
                        "ics_cos": _nanmean(mine_ics["ics_cos"]),
                        **_landscape_summary(landscape[landscape["model"] == label], steps // 2)})
    report(1.0, "done", force=True)
    settings = {**dict(net), "steps": steps, "seed": seed, "ics_every": ics_every, "probe_every": probe_every,
                "record_every": record_every, "eval_every": eval_every, "multiples": LANDSCAPE_MULTIPLES}
    return SanturkarResult(pd.DataFrame(summary), settings, time.perf_counter() - start,
                           curves=pd.concat(curves, ignore_index=True),
                           ics=pd.concat(ics_rows, ignore_index=True), landscape=landscape)


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


# ---- 3. learning-rate tolerance ---------------------------------------------------------------------------------
LR_NET = dict(model="mlp", depth=6, width=64, activation="relu", batch_size=64, sgd_momentum=0.0)


@_cached
def lr_sweep(lrs: Sequence[float] = (0.01, 0.1, 1.0, 3.0), steps: int = 1000, seed: int = 0,
             net: tuple = tuple(LR_NET.items()), progress: Progress = None) -> SweepResult:
    """Learning-rate tolerance (Ioffe & Szegedy 2015; Bjorck et al. 2018): a 6x64 ReLU MLP on the digits, plain
    SGD (no momentum, so the learning rate is the step size), batch 64, with BN and without, one twin Job per
    learning rate. Summary per (lr, model): final test accuracy in eval mode (for a diverged run, that of its last
    finite weights), diverged (the loss became infinite or NaN) and at which step.

    Default (1,000 steps, seed 0; ~24 s of CPU, 56 s wall at load 5.6): BN 97% / 98% / 98% / 97% at lr 0.01 / 0.1 /
    1 / 3; no BN 10% / 70% / 10% (diverged at step 617) / 10% (stuck at loss 2.33). With 500 steps the run without
    BN at lr 1 had not diverged yet (31%), so the default keeps the 1,000 steps of the reference setting."""
    lrs = _check_choice("lrs", lrs, lo=0.0)
    start = time.perf_counter()
    report = _Progress(progress)
    rows = []
    for i, lr in enumerate(lrs):
        base = RunConfig(**dict(net), lr=float(lr), steps=steps, seed=seed, record_every=0, eval_every=steps)
        runs, streams = _lockstep([base.replace(norm="batch"), base.replace(norm="none")])
        _drive(runs, streams, report.part(i / len(lrs), (i + 1) / len(lrs), f"learning rate {lr:g}"))
        for run in runs:
            rows.append({"lr": float(lr), "model": NORM_LABELS[run.cfg.norm], "final_acc": _final_accuracy(run),
                         "diverged": run.status == "diverged", "diverged_at": run.diverged_at,
                         "last_loss": run.last_loss})
    report(1.0, "done", force=True)
    settings = {**dict(net), "lrs": lrs, "steps": steps, "seed": seed}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)


# ---- 4. initialization scale --------------------------------------------------------------------------------------
INIT_NET = dict(model="mlp", depth=3, width=100, activation="sigmoid", batch_size=60, lr=0.5, sgd_momentum=0.0)


@_cached
def init_sweep(scales: Sequence[float] = (0.01, 0.1, 1.0, 5.0), steps: int = 1000, seed: int = 0,
               net: tuple = tuple(INIT_NET.items()), progress: Progress = None) -> SweepResult:
    """Sensitivity to the initial weight scale (Ioffe & Szegedy 2015, section 3.3): the sigmoid 3x100 MLP of
    Figure 1 with every weight ~ N(0, s^2) (init="normal", init_scale=s), with BN and without, one twin Job per s.
    Summary per (scale, model): final test accuracy (eval mode) and whether the run diverged.

    Default (1,000 steps, seed 0; ~20 s of CPU, 48 s wall at load 5.7): BN 97% / 98% / 97% / 97% at s = 0.01 / 0.1
    / 1 / 5; no BN 10% / 84% / 95% / 65%."""
    scales = _check_choice("scales", scales, lo=0.0)
    start = time.perf_counter()
    report = _Progress(progress)
    rows = []
    for i, scale in enumerate(scales):
        base = RunConfig(**dict(net), init="normal", init_scale=float(scale), steps=steps, seed=seed,
                         record_every=0, eval_every=steps)
        runs, streams = _lockstep([base.replace(norm="batch"), base.replace(norm="none")])
        _drive(runs, streams, report.part(i / len(scales), (i + 1) / len(scales), f"weight scale {scale:g}"))
        for run in runs:
            rows.append({"init_scale": float(scale), "model": NORM_LABELS[run.cfg.norm],
                         "final_acc": _final_accuracy(run), "diverged": run.status == "diverged",
                         "last_loss": run.last_loss})
    report(1.0, "done", force=True)
    settings = {**dict(net), "init": "normal", "scales": scales, "steps": steps, "seed": seed}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)


# ---- 5. batch size: BN vs GN vs LN (Wu & He) -------------------------------------------------------------------
BATCH_NET = dict(model="mlp", depth=3, width=64, activation="relu", groups=8, sgd_momentum=0.9)
TRAIN_IMAGES = 1437  # training images of the digits split (80% of 1,797)


@_cached
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
    flattened head reached 0.93-0.95. In the MLP, BN's statistics come from the B values of each unit only, the
    situation of Wu & He's small per-GPU batches, at a size that trains in seconds.

    Summary per (batch size, norm): eval-mode test accuracy (running statistics for BN), train-mode accuracy (each
    test batch of B images normalized with its own statistics; the same as eval mode for GN, LN and none), the gap,
    steps and lr.

    Default (2 epochs, lr 0.1 at batch 32, seed 0; 11,000 steps in all, ~26 s of CPU, 52 s wall at load 5.5;
    without "none" ~20 s of CPU): eval-mode accuracy at batch 2 / 4 / 8 / 16 / 32: BN 38% / 89% / 94% / 96% / 95%,
    GN 89% / 92% / 89% / 84% / 80%, LN 88% / 91% / 92% / 90% / 87%, no norm 93% / 92% / 84% / 84% / 85%; BN's
    train-mode accuracy 26% / 66% / 85% / 91% / 93% (train minus eval: -12 / -23 / -9 / -6 / -2 points).
    """
    batch_sizes = tuple(int(b) for b in _check_choice("batch_sizes", batch_sizes, lo=1))
    norms = _check_choice("norms", norms)
    if epochs <= 0 or lr_at_32 <= 0:
        raise ValueError(f"epochs={epochs} and lr_at_32={lr_at_32} must be > 0")
    start = time.perf_counter()
    report = _Progress(progress)
    plan = [(b, max(1, round(epochs * TRAIN_IMAGES / b))) for b in batch_sizes]
    work = sum(steps * len(norms) for _, steps in plan)
    done = 0
    rows = []
    for b, steps in plan:
        lr = lr_at_32 * b / 32
        base = RunConfig(**dict(net), batch_size=b, lr=lr, steps=steps, seed=seed, record_every=0, eval_every=steps)
        share = steps * len(norms) / work
        runs, streams = _lockstep([base.replace(norm=n) for n in norms])
        _drive(runs, streams, report.part(done, done + share, f"batch size {b} ({', '.join(norms)})"))
        done += share
        for run in runs:
            eval_acc = _final_accuracy(run)
            train_acc = _final_accuracy(run, train_mode=True) if run.cfg.uses_batch_norm else eval_acc
            rows.append({"batch_size": b, "norm": run.cfg.norm, "model": SWEEP_LABELS[run.cfg.norm],
                         "eval_acc": eval_acc, "train_mode_acc": train_acc, "gap": train_acc - eval_acc,
                         "steps": steps, "lr": lr, "diverged": run.status == "diverged"})
    report(1.0, "done", force=True)
    settings = {**dict(net), "batch_sizes": batch_sizes, "norms": norms, "epochs": epochs, "lr_at_32": lr_at_32,
                "seed": seed, "lr_rule": "lr = lr_at_32 * batch_size / 32", "steps_rule": "epochs * 1437 / batch"}
    return SweepResult(pd.DataFrame(rows), settings, time.perf_counter() - start)


def wu_he_comparison(result: SweepResult) -> pd.DataFrame:
    """Our accuracies as error (%) next to Wu & He's published top-1 errors, one row per batch size."""
    ours = result.summary.pivot_table(index="batch_size", columns="model", values="eval_acc")
    table = WU_HE_TABLE.set_index("batch_size")
    out = pd.DataFrame(index=sorted(set(ours.index) | set(table.index), reverse=True))
    out.index.name = "batch_size"
    for column in table.columns:
        out[f"Wu & He {column}"] = table[column]
    for model in ours.columns:
        out[f"ours {model} error (%)"] = (1 - ours[model]) * 100
    return out.reset_index()


# ---- our numbers next to the papers' ------------------------------------------------------------------------------
# "small version": the outcome the app's reference notes (SCIENCE.md) give for the same small experiment on the digits
EXPECTED = "expected (paper, or small version)"


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _ratio(without: float, with_bn: float, fewer: str = "less") -> str:
    """'6x less with BN' (or '2x more with BN' when BN's value is the larger one)."""
    if not (without > 0 and with_bn > 0 and math.isfinite(without / with_bn)):
        return "no ratio"
    r = without / with_bn
    opposite = {"less": "more", "smaller": "larger"}.get(fewer, "more")
    word, r = (fewer, r) if r >= 1 else (opposite, 1 / r)
    return f"{r:,.0f}x {word} with BN" if r >= 10 else f"{r:.1f}x {word} with BN"


def figure1_table(result: Figure1Result) -> pd.DataFrame:
    """Measure, ours, reference (Ioffe & Szegedy; SCIENCE.md's small version)."""
    m = result.summary.set_index("model")
    bn, no = m.loc["BN"], m.loc["no BN"]
    steps = result.settings["steps"]
    rows = [
        ("median of the sigmoid input: largest move from step 0",
         f"BN {bn.median_drift:.2f} · no BN {no.median_drift:.2f} ({_ratio(no.median_drift, bn.median_drift)})",
         "about 10x less with BN (small version); 'stays put' with BN (paper)"),
        ("median of the sigmoid input: average move from step 0",
         f"BN {bn.median_drift_mean:.2f} · no BN {no.median_drift_mean:.2f} "
         f"({_ratio(no.median_drift_mean, bn.median_drift_mean)})", "(not reported)"),
        ("test accuracy at step 100", f"BN {_pct(bn.acc_at_100)} · no BN {_pct(no.acc_at_100)}",
         "about 90% vs 10% (small version)"),
        (f"test accuracy at the end (step {steps:,})", f"BN {_pct(bn.final_acc)} · no BN {_pct(no.final_acc)}",
         "BN higher and sooner (paper, Figure 1a)"),
    ]
    return pd.DataFrame(rows, columns=["measure", "ours", EXPECTED])


def santurkar_table(result: SanturkarResult) -> pd.DataFrame:
    """Measure, ours (no BN · BN · noisy BN), what Santurkar et al. report."""
    m = result.summary.set_index("model")

    def three(column: str, fmt: str) -> str:
        return " · ".join(f"{label} {format(m.loc[label, column], fmt)}" for label in m.index)

    rows = [
        ("final test accuracy", " · ".join(f"{label} {_pct(m.loc[label, 'final_acc'])}" for label in m.index),
         "noisy BN trains about as well as BN, better than no BN"),
        ("shift of the layer inputs between records (W1, step-0 stds)", three("jump_mean", ".2f"),
         "noisy BN's inputs shift more than without BN"),
        ("shift of the layer inputs from step 0 (W1, step-0 stds)", three("drift_mean", ".2f"), "(not reported)"),
        ("gradient ICS ||G − G′|| / ||G||", three("ics_rel", ".2f"), "not smaller with BN"),
        ("gradient ICS cos(G, G′) (1 = no shift)", three("ics_cos", ".2f"), "not closer to 1 with BN"),
        ("loss range along the gradient (0.5x to 4x lr), all checkpoints", three("loss_range", ".3g"),
         "much smaller with BN"),
        ("the same, second half of training", three("loss_range_late", ".3g"), "much smaller with BN"),
        ("gradient change ||g(w − ηg) − g(w)||, all checkpoints", three("grad_change", ".3g"),
         "much smaller with BN"),
        ("the same, second half of training", three("grad_change_late", ".3g"), "much smaller with BN"),
    ]
    return pd.DataFrame(rows, columns=["measure", "ours", "Santurkar et al. (VGG, CIFAR-10)"])


def _sweep_table(result: SweepResult, x: str, reference: Callable[[float], str]) -> pd.DataFrame:
    frame = result.summary
    rows = []
    for value, part in frame.groupby(x, sort=True):
        m = part.set_index("model")
        ours = " · ".join(f"{label} {_pct(m.loc[label, 'final_acc'])}" + (" (diverged)" if m.loc[label, "diverged"]
                                                                           else "") for label in m.index)
        rows.append((f"{value:g}", ours, reference(value)))
    return pd.DataFrame(rows, columns=[x, "ours (final test accuracy)", EXPECTED])


def lr_table(result: SweepResult) -> pd.DataFrame:
    def reference(lr: float) -> str:
        return "no BN stays at chance (10%), BN about 98%" if lr >= 1.0 else "(not reported)"
    return _sweep_table(result, "lr", reference)


def init_table(result: SweepResult) -> pd.DataFrame:
    def reference(scale: float) -> str:
        if scale <= 0.01:
            return "no BN stays at chance (10%); BN trains"
        if scale >= 5:
            return "no BN degrades; BN trains"
        return "BN trains"
    return _sweep_table(result, "init_scale", reference)


def _compare(a: float, b: float, smaller: str, larger: str, tolerance: float = 0.1) -> str:
    """'smaller' / 'larger' / 'about the same' for a vs b (within `tolerance`, relative)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return "not measured"
    if abs(a - b) <= tolerance * max(abs(a), abs(b)):
        return "about the same"
    return smaller if a < b else larger


def figure1_findings(result: Figure1Result) -> list[str]:
    """Plain sentences on what this run showed (so a page never claims what the numbers do not)."""
    m = result.summary.set_index("model")
    bn, no = m.loc["BN"], m.loc["no BN"]
    return [
        f"The median of the sigmoid input moved at most {bn.median_drift:.2f} from its start with BN and "
        f"{no.median_drift:.2f} without ({_ratio(no.median_drift, bn.median_drift)}; averaged over the steps: "
        f"{_ratio(no.median_drift_mean, bn.median_drift_mean)}).",
        f"Test accuracy at step 100: {_pct(bn.acc_at_100)} with BN, {_pct(no.acc_at_100)} without; at the end "
        f"{_pct(bn.final_acc)} and {_pct(no.final_acc)}.",
    ]


def santurkar_findings(result: SanturkarResult) -> list[str]:
    m = result.summary.set_index("model")
    no, bn, noisy = m.loc["no BN"], m.loc["BN"], m.loc["noisy BN"]
    shift = _compare(noisy.jump_mean, no.jump_mean, "less", "more")
    ics = _compare(bn.ics_rel, no.ics_rel, "smaller", "larger")
    cos = _compare(1 - bn.ics_cos, 1 - no.ics_cos, "closer to 1 (less shift)", "further from 1 (more shift)")
    return [
        f"(a) Noisy BN reached {_pct(noisy.final_acc)} test accuracy, BN {_pct(bn.final_acc)}, no BN "
        f"{_pct(no.final_acc)}; noisy BN's layer inputs moved {shift} between records than without BN "
        f"({noisy.jump_mean:.2f} vs {no.jump_mean:.2f} step-0 standard deviations).",
        f"(b) Gradient ICS ||G − G′|| / ||G||: {bn.ics_rel:.2f} with BN, {no.ics_rel:.2f} without ({ics} with BN); "
        f"cos(G, G′): {bn.ics_cos:.2f} with BN, {no.ics_cos:.2f} without ({cos} with BN).",
        f"(c) Loss range along the gradient, mean over the checkpoints: {bn.loss_range:.3g} with BN, "
        f"{no.loss_range:.3g} without ({_ratio(no.loss_range, bn.loss_range, 'smaller')}); gradient change "
        f"{bn.grad_change:.3g} vs {no.grad_change:.3g} ({_ratio(no.grad_change, bn.grad_change, 'smaller')}). "
        f"Over the second half of training: loss range {bn.loss_range_late:.3g} vs {no.loss_range_late:.3g}, "
        f"gradient change {bn.grad_change_late:.3g} vs {no.grad_change_late:.3g}. (While a network is stuck near "
        "chance its gradients are tiny, so its landscape looks flat: compare the checkpoints after it starts "
        "learning.)",
    ]


# ---- for pages: the server-wide job slot and plain error messages ------------------------------------------------
EXPERIMENTS = {"figure1": figure1, "santurkar": santurkar, "lr_sweep": lr_sweep, "init_sweep": init_sweep,
               "batch_size_sweep": batch_size_sweep}


def run_guarded(fn, progress: Progress = None, **kwargs) -> tuple[ExperimentResult | None, str | None]:
    """Run an experiment for a page: (result, None), or (None, a plain message) when the server is busy, a setting
    is invalid or something failed. Takes one slot of the server-wide job limiter (shared with the live lab), so
    experiments and live runs together never use more cores than the server allows."""
    hit = cached(fn, **kwargs)
    if hit is not None:
        if progress is not None:
            progress(1.0, "done (remembered from an earlier run)")
        return hit, None
    from ..engine.jobs import LIMITER  # imported here: the lab is only needed when a page runs an experiment

    holder = object()
    if not LIMITER.try_acquire(id(holder)):
        return None, (f"The server is busy: {LIMITER.capacity} runs are training already. Try again in a minute "
                      "(a live run of yours on another page counts too: stop it there).")
    try:
        return fn(progress=progress, **kwargs), None
    except (ValueError, DatasetUnavailable) as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
        return None, f"The experiment failed ({type(exc).__name__}: {exc})."
    finally:
        LIMITER.release(id(holder))
