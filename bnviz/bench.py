"""`python -m bnviz bench`: the cost of recording every step, measured side by side in one process.

Two copies of the same run (same config, seed, batches and initial weights) are stepped in alternating blocks:
one bare (no hooks), one recording everything at every step. Alternating cancels most of the drift of a shared
machine; the ratio is the median over blocks of (recording time / bare time). Evaluation is switched off in both
(it is not recording). The memory part feeds 100,000 records into a History and prints its size as it goes.
`--model resnet18` instead times `bnviz.watch` around a plain training loop of the ResNet-18-shaped model of
`bnviz.engine.example_models` against the same loop on an identical copy without it, alternating the same way.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from .engine.config import RunConfig
from .engine.data import BatchStream
from .engine.history import History
from .engine.trainer import Run

TARGET_RATIO = 1.10
TARGET_MEMORY_MB = 100


def measure_overhead(cfg: RunConfig, blocks: int = 20, steps_per_block: int = 25, warmup: int = 30) -> dict:
    torch.set_num_threads(cfg.threads)
    steps = (blocks * steps_per_block + warmup) * 2 + 10
    bare = Run(cfg.replace(record_every=0, steps=steps, eval_every=10**9))
    recorded = Run(cfg.replace(record_every=1, steps=steps, eval_every=10**9), bare.dataset, init_from=bare)
    stream = BatchStream(bare.dataset, cfg.batch_size, cfg.seed)
    batches = [stream.next() for _ in range(steps_per_block)]
    out = alternate(bare.train_step, recorded.train_step, batches, blocks, warmup)
    return {**out, "recorded_rows": len(recorded.history)}


def alternate(bare_step, recorded_step, batches: list, blocks: int, warmup: int) -> dict:
    """Time `blocks` passes over `batches` with each step function, in alternating order; ratios per block."""
    for i in range(warmup):
        for step in (bare_step, recorded_step):
            step(*batches[i % len(batches)])
    times = {"bare": [], "recorded": []}
    for b in range(blocks):
        order = ("bare", "recorded") if b % 2 == 0 else ("recorded", "bare")
        for which in order:
            step = bare_step if which == "bare" else recorded_step
            t0 = time.perf_counter()
            for x, y in batches:
                step(x, y)
            times[which].append(time.perf_counter() - t0)
    ratios = [r / b for r, b in zip(times["recorded"], times["bare"], strict=True)]
    per_step = {k: statistics.median(v) / len(batches) for k, v in times.items()}
    return {"bare_steps_per_s": 1 / per_step["bare"], "recorded_steps_per_s": 1 / per_step["recorded"],
            "ratio": statistics.median(ratios), "ratio_q1_q3": tuple(np.percentile(ratios, [25, 75]))}


def measure_watch_overhead(blocks: int = 20, steps_per_block: int = 10, warmup: int = 10, batch_size: int = 32,
                           samples: int = 512, threads: int = 1) -> dict:
    """`bnviz.watch` on the ResNet-18-shaped model (16x16 inputs) against the same loop without it."""
    from .engine.example_models import resnet18_shaped
    from .watching import watch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(batch_size, 1, 16, 16, generator=g), torch.randint(10, (batch_size,), generator=g))
               for _ in range(steps_per_block)]
    bare = resnet18_shaped()
    watched = resnet18_shaped()
    watched.load_state_dict(bare.state_dict())

    def stepper(model, w=None):
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):  # the user's loop: forward, backward, update, loss.item(), and w.step with watch
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = loss.item()
            if w is not None:
                w.step(loss=value)
        return step

    with watch(watched, samples=samples) as w:
        out = alternate(stepper(bare), stepper(watched, w), batches, blocks, warmup)
    return {**out, "layers": len(w.layers), "probes": len(w.targets.probes), "rows": len(w.history)}


def print_overhead(over: dict, label: str) -> None:
    q1, q3 = over["ratio_q1_q3"]
    verdict = "OK" if over["ratio"] <= TARGET_RATIO else "ABOVE TARGET"
    print(f"  bare loop:              {over['bare_steps_per_s']:8.1f} steps/s")
    print(f"  {label:<24}{over['recorded_steps_per_s']:8.1f} steps/s")
    print(f"  overhead ratio:         {over['ratio']:8.3f}  (quartiles {q1:.3f}-{q3:.3f}; "
          f"target <= {TARGET_RATIO}: {verdict})")


def main_watch(quick: bool = False, threads: int = 1) -> dict:
    print(f"bnviz bench: bnviz.watch on a ResNet-18-shaped model (widths 8/16/32/64, 16x16 inputs, batch 32), "
          f"recording every step, 512 samples/tensor, {threads} thread(s)")
    over = measure_watch_overhead(blocks=6 if quick else 20, threads=threads)
    print(f"  {over['layers']} layers, {over['probes']} recorded tensors")
    print_overhead(over, "watched, every step:")
    return over


def measure_memory(cfg: RunConfig, records: int = 100_000, checkpoints=(1_000, 10_000, 50_000, 100_000)) -> dict:
    """Size of a History after `records` appends of a real recorded row (the step number changes)."""
    run = Run(cfg.replace(record_every=1, steps=2, eval_every=10**9))
    stream = BatchStream(run.dataset, cfg.batch_size, cfg.seed)
    run.train_step(*stream.next())
    template = {k: v[0].copy() for k, v in run.history.data.items() if k != "record"}
    history = History(run.history.layout)
    sizes = {}
    for step in range(records):
        template["step"] = step
        history.append(template)
        if step + 1 in checkpoints:
            sizes[step + 1] = (history.nbytes() / 1e6, len(history), int(history.steps[0]), int(history.steps[-1]))
    return {"sizes": sizes, "capacity": history.capacity}


def main(cfg: RunConfig | None = None, quick: bool = False) -> dict:
    cfg = (cfg or RunConfig()).validate()
    print(f"bnviz bench: {cfg.model}, depth {cfg.depth}, width {cfg.width}, norm {cfg.norm}, "
          f"batch {cfg.batch_size}, {cfg.samples} samples/tensor, {cfg.threads} thread(s)")
    over = measure_overhead(cfg, blocks=6 if quick else 20)
    print_overhead(over, "recording every step:")
    mem = measure_memory(cfg, records=10_000 if quick else 100_000,
                         checkpoints=(1_000, 10_000) if quick else (1_000, 10_000, 50_000, 100_000))
    print(f"  history memory (capacity {mem['capacity']} rows):")
    for records, (mb, rows, first, last) in mem["sizes"].items():
        print(f"    after {records:>7,} records: {mb:6.1f} MB in {rows} rows (steps {first}..{last})")
    peak = max(mb for mb, *_ in mem["sizes"].values())
    print(f"  memory target < {TARGET_MEMORY_MB} MB: {'OK' if peak < TARGET_MEMORY_MB else 'ABOVE TARGET'}")
    return {"overhead": over, "memory": mem}
