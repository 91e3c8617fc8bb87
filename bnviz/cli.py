"""`python -m bnviz`: train and record from a terminal, benchmark the recorder, write HTML reports, get datasets.

    python -m bnviz run --norm none --lr 0.5 --steps 2000 --out runs/nobn
    python -m bnviz run --dataset my_images/ --steps 500 --out runs/mine   # a folder of class folders, .zip/.npz/.csv
    python -m bnviz report runs/nobn
    python -m bnviz bench [--model resnet18]
    python -m bnviz download mnist

Bad flags exit with status 2 and one line on stderr. A diverged run is a result: exit 0, status "diverged".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

from .engine.config import BUILTIN_DATASETS, RunConfig
from .engine.divergence import describe
from .errors import BnvizError

# CLI flag -> config field, for the flags whose names differ
FLAG_FIELDS = {"momentum": "bn_momentum", "eval_every": "eval_every"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the usage first)
        raise BnvizError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bnviz", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    run = sub.add_parser("run", help="train one config and write its recorded history to --out")
    defaults = RunConfig()
    add = run.add_argument
    add("--dataset", default=defaults.dataset,
        help="digits (bundled), shapes, mnist, fashion-mnist, cifar10, or your own images: a folder of class "
             "folders, or a .zip, .npz or .csv file (see bnviz/engine/uploads.py)")
    add("--model", default=defaults.model, help="cnn or mlp")
    add("--depth", type=int, default=defaults.depth)
    add("--width", type=int, default=defaults.width)
    add("--activation", default=defaults.activation, help="relu, tanh or sigmoid")
    add("--norm", default=defaults.norm, help="none, batch, batch-noisy, layer, instance, group or batch-renorm")
    add("--placement", default=defaults.placement, help="before or after the activation")
    add("--eps", type=float, default=defaults.eps)
    add("--momentum", type=float, default=defaults.bn_momentum,
        help="batch norm momentum, PyTorch convention: running = (1 - m) * running + m * batch")
    add("--groups", type=int, default=defaults.groups)
    add("--ghost-batch", type=int, default=defaults.ghost_batch,
        help="ghost batch norm: batch statistics over sub-batches of this size (divides --batch-size); 0 = off")
    add("--bn-impl", default=defaults.bn_impl, help="torch or scratch (bnviz's own batch norm)")
    add("--batch-size", type=int, default=defaults.batch_size)
    add("--lr", type=float, default=defaults.lr)
    add("--optimizer", default=defaults.optimizer, help="sgd (with --sgd-momentum) or adam")
    add("--sgd-momentum", type=float, default=defaults.sgd_momentum)
    add("--weight-decay", type=float, default=defaults.weight_decay,
        help="L2 penalty (PyTorch's weight_decay); 0 = off")
    add("--dropout", type=float, default=defaults.dropout,
        help="probability of zeroing each value of every hidden block's output in training (0 <= p < 1); 0 = off")
    add("--init", default=defaults.init, help="default (PyTorch's, times --init-scale) or normal (N(0, scale^2))")
    add("--init-scale", type=float, default=defaults.init_scale)
    add("--steps", type=int, default=defaults.steps)
    add("--eval-every", type=int, default=defaults.eval_every)
    add("--seed", type=int, default=defaults.seed)
    add("--record-every", type=int, default=defaults.record_every, help="0 records nothing")
    add("--ics-every", type=int, default=defaults.ics_every, help="Santurkar et al.'s gradient ICS; 0 = off")
    add("--threads", type=int, default=defaults.threads)
    add("--samples", type=int, default=defaults.samples, help="values sampled per tensor for the statistics")
    add("--difficulty", type=float, default=defaults.difficulty, help="for --dataset shapes, 0 to 1")
    add("--out", required=True, help="directory for config.json, summary.json, scalars.csv, layers.csv, ...")
    add("--force", action="store_true", help="replace the run already in --out")
    add("--quiet", action="store_true", help="no progress bar")
    add("--backend", default=None, choices=["threads", "ray"],
        help="where to train: in this process (threads, the default) or in a Ray actor (ray; BNVIZ_RAY_ADDRESS "
             "names a cluster, else a local instance starts). Default: BNVIZ_BACKEND, else threads")

    report = sub.add_parser("report", help="write every chart of a run directory as standalone HTML")
    report.add_argument("directory")

    bench = sub.add_parser("bench", help="measure the cost of recording every step, and the history's memory")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    bench.add_argument("--no-peers", action="store_true",
                       help="leave out TensorBoard and W&B (measured only when requirements-bench.txt is installed)")
    bench.add_argument("--model", default="cnn", choices=["cnn", "resnet18"],
                       help="cnn: the app's default run; resnet18: bnviz.watch on a ResNet-18-shaped model")

    download = sub.add_parser("download", help="fetch mnist, fashion-mnist or cifar10 into the data directory")
    download.add_argument("name")
    download.add_argument("--data-dir", default=None)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = {}
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for key, value in vars(args).items():
        field = FLAG_FIELDS.get(key, key)
        if field in names:
            values[field] = value
    if values["dataset"] not in BUILTIN_DATASETS and Path(values["dataset"]).expanduser().exists():
        values["dataset"] = str(Path(values["dataset"]).expanduser().resolve())  # config.json names it exactly
    return RunConfig(**values).validate()


def cmd_run(args: argparse.Namespace) -> int:
    from .engine.jobs import backend_name
    from .engine.trainer import Job

    cfg = config_from_args(args)
    out = check_out(Path(args.out), force=args.force)
    if (args.backend or backend_name()) == "ray":
        from .engine.ray_backend import RayJob

        job = RayJob(cfg)  # reads the dataset here too: a bad one stops before --out is created
    else:
        job = Job(cfg)  # reads the dataset: a bad one stops here, before --out is created
    make_out(out)
    if not args.quiet:  # your own machine: no time budget, but the estimate
        from .engine.jobs import estimate_job

        print(f"estimate: {estimate_job(job).describe()}", file=sys.stderr)
    started = time.perf_counter()
    job.start()
    show = sys.stderr.isatty() and not args.quiet
    try:
        while job.alive:
            job.join(0.2 if isinstance(job, Job) else 1.0)
            if show:
                loss = job.runs[0].last_loss if isinstance(job, Job) else job.snapshot().runs[0].summary["last_loss"]
                _progress(job.step, cfg.steps, math.nan if loss is None else loss)
    except KeyboardInterrupt:
        job.stop()
    elapsed = time.perf_counter() - started
    if show:
        sys.stderr.write("\n")
    if job.status == "error":  # a failure inside the training thread, reported by the job
        raise BnvizError(f"the run failed: {job.error}")
    snap = job.snapshot().runs[0] if not isinstance(job, Job) else None  # Ray: the actor's final history
    run = job.runs[0]
    steps = snap.step if snap is not None else run.step
    rate = steps / elapsed if elapsed > 0 else 0.0
    summary = {**snap.summary, "steps_per_s": rate} if snap is not None else run.summary(steps_per_s=rate)
    history = snap.history if snap is not None else run.history
    history.meta["summary"] = summary
    try:
        history.save(out)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    except OSError as exc:
        raise BnvizError(f"cannot write the run to {out}: {exc.strerror or exc}") from None
    acc = summary.get("final_test_acc")
    line = f"{summary['status']}: {steps} steps in {elapsed:.1f} s ({summary['steps_per_s']:.0f} steps/s)"
    if acc is not None:
        line += f", test accuracy {acc:.3f}"
    if summary.get("diverged_at") is not None or getattr(run, "divergence", None) is not None:
        line += f", {describe(summary)}"
    print(f"{line}; files in {out}")
    return 0


def check_out(out: Path, force: bool) -> Path:
    """The --out folder, checked before training so that a run is never lost at the end: not a file, not a
    symbolic link, and not a run folder already unless `force`."""
    if out.is_symlink():
        raise BnvizError(f"--out {out} is a symbolic link: name a folder itself")
    if out.exists() and not out.is_dir():
        raise BnvizError(f"--out {out} is a file, not a folder: name a new folder")
    if (out / "run.json").exists() and not force:
        raise BnvizError(f"--out {out} already holds a run: name a new folder, or add --force to replace it")
    return out


def make_out(out: Path) -> None:
    """Create the --out folder and check that it is writable (before training starts)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BnvizError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BnvizError(f"cannot write into --out {out}: permission denied")


def _progress(step: int, total: int, loss: float) -> None:
    width = 30
    done = int(width * step / max(total, 1))
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {step:>7,}/{total:,} loss {loss:8.4f}")
    sys.stderr.flush()


def cmd_report(args: argparse.Namespace) -> int:
    from . import figures

    try:
        index = figures.write_report(args.directory)
    except (ValueError, OSError) as exc:
        raise BnvizError(f"cannot make a report from {args.directory}: {exc}") from None
    print(f"wrote {index}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.model == "resnet18":
        bench.main_watch(quick=args.quick)
    else:
        bench.main(quick=args.quick, with_peers=not args.no_peers)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .engine.data import download_dataset

    folder = download_dataset(args.name, args.data_dir)
    print(f"{args.name} is ready in {folder}")
    return 0


COMMANDS = {"run": cmd_run, "report": cmd_report, "bench": cmd_bench, "download": cmd_download}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BnvizError as exc:  # a user's mistake: one line, no traceback
        message = str(exc)
        print(message if message.startswith("python -m bnviz") else f"python -m bnviz: {message}", file=sys.stderr)
        return 2
