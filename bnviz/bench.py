"""`python -m bnviz bench`: the cost of recording every step, measured side by side in one process.

Copies of the same run (same config, seed, batches and initial weights) are stepped in blocks, the order rotated
from block to block: the bare loop (no hooks), bnviz recording everything, two reference rows (bnviz.bench_peers:
the hooks that only copy the sampled values, and those hooks with the weight, gradient and norm-tensor copies bnviz
makes each step) and its peers (TensorBoard's add_histogram of the same stage outputs and gradients, W&B's
watch(log="all") offline), each at every step and every 10th step. Rotating cancels most of the drift of a shared
machine; a row's ratio is the median over blocks of (its block time / the bare loop's time in the same block), with
quartiles, and the load average is printed with it (compare only numbers measured in one run). Evaluation is
switched off in all of them (it is not recording). A peer whose package is missing (requirements-bench.txt) is
listed as skipped. The memory part feeds 100,000 records into a History and prints its size as it goes.
`--model resnet18` instead times `bnviz.watch` around a plain training loop of the ResNet-18-shaped model of
`bnviz.engine.example_models` against the same loop on identical copies without it and with the two reference
rows' hooks and copies, rotated the same way.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from .engine.config import RunConfig
from .engine.data import BatchStream
from .engine.history import History
from .engine.recorder import spare_core
from .engine.targets import Targets
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


def interleave(steppers: dict, batches: list, blocks: int, warmup: int) -> dict:
    """Time `blocks` passes over `batches` with each step function (the first is the reference), the order rotated
    from block to block; per block, each one's time / the reference's time in the same block."""
    names = list(steppers)
    for i in range(warmup):
        for name in names:
            steppers[name](*batches[i % len(batches)])
    times = {name: [] for name in names}
    for b in range(blocks):
        shift = b % len(names)
        for name in names[shift:] + names[:shift]:
            step = steppers[name]
            t0 = time.perf_counter()
            for x, y in batches:
                step(x, y)
            times[name].append(time.perf_counter() - t0)
    reference = times[names[0]]
    out = {}
    for name in names:
        ratios = [t / r for t, r in zip(times[name], reference, strict=True)]
        out[name] = {"steps_per_s": len(batches) / statistics.median(times[name]), "ratio": statistics.median(ratios),
                     "ratio_q1_q3": tuple(float(q) for q in np.percentile(ratios, [25, 75]))}
    return out


def alternate(bare_step, recorded_step, batches: list, blocks: int, warmup: int) -> dict:
    """Time `blocks` passes over `batches` with each step function, in alternating order; ratios per block."""
    out = interleave({"bare": bare_step, "recorded": recorded_step}, batches, blocks, warmup)
    return {"bare_steps_per_s": out["bare"]["steps_per_s"], "recorded_steps_per_s": out["recorded"]["steps_per_s"],
            "ratio": out["recorded"]["ratio"], "ratio_q1_q3": out["recorded"]["ratio_q1_q3"]}


def bnviz_records(run: Run) -> str:
    """What bnviz records per recorded step, from the run's recorder."""
    rec = run.recorder
    k, w = len(rec.targets.probes), len(rec.targets.weights)
    values = sum(p.numel() for _, p in rec.targets.weights)
    channels = sum(c for *_, c in rec.history.layout.norm_layers)
    return (f"{k} stage outputs + their {k} gradients, {rec._sample_size or rec.samples} sampled values each "
            f"(10 statistics + {rec.history.layout.bins}-bin histogram; 3 statistics + octave histogram); "
            f"{w} weights, their gradients and updates, all {values:,} values (7 statistics); "
            f"{channels} norm channels (gamma, beta, batch and running mean/var)")


def measure_peers(cfg: RunConfig, blocks: int = 20, steps_per_block: int = 10, warmup: int = 5,
                  everys=(1, 10), peers=None) -> dict:
    """The bare loop, bnviz and its peers (bnviz.bench_peers) at each `every`, interleaved in blocks, each on its
    own copy of the same run (same initial weights, batches and seed). Missing peers are listed in `skipped`."""
    from . import bench_peers

    torch.set_num_threads(cfg.threads)
    steps = (blocks * steps_per_block + warmup) * 2 + 10
    bare = Run(cfg.replace(record_every=0, steps=steps, eval_every=10**9))
    stream = BatchStream(bare.dataset, cfg.batch_size, cfg.seed)
    batches = [stream.next() for _ in range(steps_per_block)]
    rows = {"bare": {"name": "bare loop", "every": None, "step": bare.train_step, "records": "nothing"}}
    skipped, opened = {}, []
    peers = bench_peers.PEERS if peers is None else peers
    try:
        for every in everys:
            run = Run(cfg.replace(record_every=every, steps=steps, eval_every=10**9), bare.dataset, init_from=bare)
            rows[f"bnviz/{every}"] = {"name": "bnviz", "every": every, "step": run.train_step, "run": run}
            for key, make in peers.items():
                run = Run(cfg.replace(record_every=0, steps=steps, eval_every=10**9), bare.dataset, init_from=bare)
                try:
                    peer = make(run, every, batches[0][0])
                except bench_peers.PeerMissing as exc:
                    skipped[key] = str(exc)
                    continue
                opened.append(peer)
                rows[f"{key}/{every}"] = {"name": peer.name, "every": every, "step": peer.step,
                                          "records": peer.records, "peer": peer}
        load_before, worker_before = os.getloadavg(), spare_core()
        out = interleave({k: r["step"] for k, r in rows.items()}, batches, blocks, warmup)
        load_after, worker_after = os.getloadavg(), spare_core()
    finally:
        for peer in opened:
            peer.close()
    for key, row in rows.items():
        if "run" in row:
            row["records"] = bnviz_records(row.pop("run"))
        row.pop("step")
        row.update(out[key])
    return {"rows": rows, "skipped": skipped, "load": (load_before, load_after), "blocks": blocks,
            "worker": (worker_before, worker_after),
            "steps_per_block": steps_per_block}


def print_peers(result: dict) -> None:
    (b1, b5, b15), (a1, a5, a15) = result["load"]
    print(f"  interleaved: {result['blocks']} blocks x {result['steps_per_block']} steps, each on its own copy of "
          f"the same run (weights, batches, seed); ratio = its block time / the bare loop's in the same block")
    print(f"  load average (1/5/15 min): before {b1:.2f} {b5:.2f} {b15:.2f}, after {a1:.2f} {a5:.2f} {a15:.2f} "
          f"on {os.cpu_count()} cores")
    where = {(True, True): "in its statistics process (a core was spare)",
             (False, False): "inline (no spare core: 1-minute load >= cores - 0.5)"}
    print(f"  bnviz's statistics were computed {where.get(tuple(result['worker']), 'partly in its process')}")
    print(f"  {'':<3}{'what':<27}{'every':>5}{'steps/s':>10}{'ratio':>9}  quartiles")
    legend = {}
    for row in result["rows"].values():
        q1, q3 = row["ratio_q1_q3"]
        mark = legend.setdefault(row["name"], f"[{len(legend) + 1}]")
        every = "-" if row["every"] is None else str(row["every"])
        print(f"  {mark:<3}{row['name']:<27}{every:>5}{row['steps_per_s']:10.1f}{row['ratio']:9.3f}  {q1:.3f}-{q3:.3f}")
    print("  what each records per recorded step:")
    seen = set()
    for row in result["rows"].values():
        if row["name"] not in seen:
            seen.add(row["name"])
            print(f"    {legend[row['name']]} {row['name']}: {row['records']}")
    for key, why in result["skipped"].items():
        print(f"  {key}: skipped ({why}; install with: python -m pip install -r requirements-bench.txt)")
    bnviz_rows = [r for r in result["rows"].values() if r["name"] == "bnviz" and r["every"] == 1]
    if bnviz_rows:
        ratio = bnviz_rows[0]["ratio"]
        print(f"  bnviz every step: {ratio:.3f}, target <= {TARGET_RATIO}: "
              f"{'OK' if ratio <= TARGET_RATIO else 'ABOVE TARGET'}")


def measure_watch_overhead(blocks: int = 20, steps_per_block: int = 10, warmup: int = 10, batch_size: int = 32,
                           samples: int = 512, threads: int = 1) -> dict:
    """`bnviz.watch` on the ResNet-18-shaped model (16x16 inputs) against the same loop without it, and the floor
    rows (bnviz.bench_peers): the same loop with only the hooks that copy the sampled values, and with those hooks
    and the copies of weights, gradients and norm tensors that the recorder makes. All four interleaved."""
    from .bench_peers import SamplingHooks, StepCopies, module_probe_sizes
    from .engine.example_models import resnet18_shaped
    from .watching import watch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(batch_size, 1, 16, 16, generator=g), torch.randint(10, (batch_size,), generator=g))
               for _ in range(steps_per_block)]
    models = {name: resnet18_shaped() for name in ("bare", "floor", "copies", "watched")}
    for model in models.values():
        model.load_state_dict(models["bare"].state_dict())

    def stepper(model, w=None, copies=None, counter=None):
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):  # the user's loop: forward, backward, update, loss.item(), and w.step with watch
            if copies is not None:
                copies.before()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = loss.item()
            if w is not None:
                w.step(loss=value)
            if copies is not None:
                copies.after()
            if counter is not None:
                counter[0] += 1
        return step

    floors, steppers = [], {"bare": stepper(models["bare"])}
    try:
        for name in ("floor", "copies"):
            model, counter = models[name], [0]
            targets = Targets.discover(model)
            sizes = module_probe_sizes(model, targets, batches[0][0])
            sampled = min(samples, *sizes)  # as the recorder: one sample size, at most the smallest tensor
            floors.append(SamplingHooks(targets, sizes, sampled, 0, lambda c=counter: c[0]))
            copies = StepCopies(targets, sampled) if name == "copies" else None
            steppers[name] = stepper(model, copies=copies, counter=counter)
        with watch(models["watched"], samples=samples) as w:
            steppers["watched"] = stepper(models["watched"], w)
            out = interleave(steppers, batches, blocks, warmup)
    finally:
        for hooks in floors:
            hooks.close()
    return {"bare_steps_per_s": out["bare"]["steps_per_s"], "recorded_steps_per_s": out["watched"]["steps_per_s"],
            "ratio": out["watched"]["ratio"], "ratio_q1_q3": out["watched"]["ratio_q1_q3"],
            "floors": {"hooks only (floor)": out["floor"], "hooks + copies (floor)": out["copies"]},
            "layers": len(w.layers), "probes": len(w.targets.probes), "rows": len(w.history)}


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
    load_before = os.getloadavg()
    over = measure_watch_overhead(blocks=6 if quick else 20, threads=threads)
    print("  load average (1/5/15 min): before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))
    print(f"  {over['layers']} layers, {over['probes']} recorded tensors")
    print_overhead(over, "watched, every step:")
    for name, row in over["floors"].items():
        q1, q3 = row["ratio_q1_q3"]
        print(f"  {name + ':':<24}{row['steps_per_s']:8.1f} steps/s, ratio {row['ratio']:.3f} (quartiles "
              f"{q1:.3f}-{q3:.3f}; the same loop, interleaved)")
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


def main(cfg: RunConfig | None = None, quick: bool = False, with_peers: bool = True) -> dict:
    cfg = (cfg or RunConfig()).validate()
    print(f"bnviz bench: {cfg.model}, depth {cfg.depth}, width {cfg.width}, norm {cfg.norm}, "
          f"batch {cfg.batch_size}, {cfg.samples} samples/tensor, {cfg.threads} thread(s)")
    from .bench_peers import hook_floor_peer, hooks_and_copies_peer

    floors = {"floor": hook_floor_peer, "copies": hooks_and_copies_peer}
    peers = measure_peers(cfg, blocks=6 if quick else 20, peers=None if with_peers else floors)
    print_peers(peers)
    mem = measure_memory(cfg, records=10_000 if quick else 100_000,
                         checkpoints=(1_000, 10_000) if quick else (1_000, 10_000, 50_000, 100_000))
    print(f"  history memory (capacity {mem['capacity']} rows):")
    for records, (mb, rows, first, last) in mem["sizes"].items():
        print(f"    after {records:>7,} records: {mb:6.1f} MB in {rows} rows (steps {first}..{last})")
    peak = max(mb for mb, *_ in mem["sizes"].values())
    print(f"  memory target < {TARGET_MEMORY_MB} MB: {'OK' if peak < TARGET_MEMORY_MB else 'ABOVE TARGET'}")
    return {"peers": peers, "memory": mem}
