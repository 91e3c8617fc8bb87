"""The step loop: `Run` trains one model step by step; `Job` drives one run, or two in lockstep, in a thread.

Step k means: the forward and backward pass at the weights after k updates, then update k+1. The record of
step k (statistics, loss, and test accuracy on evaluated steps) describes the network *before* that update, so
step 0 is the untrained network. A run that diverges (bnviz.engine.divergence: a non-finite loss, or a loss above
10x its step-0 value for 20 steps in a row) stops with status "diverged" at that step; everything recorded before
it is kept, and the summary says at which step and why.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from . import uploads
from .batch_renorm import BatchRenorm, renorm_limits
from .config import RunConfig
from .data import BatchStream, Dataset, load_dataset
from .divergence import NON_FINITE, Divergence, DivergenceWatch, describe
from .history import History
from .models import NoisyBatchNorm, SeededDropout, build_model, copy_shared_weights
from .recorder import Recorder, layout_for
from .shift import gradient_ics
from .targets import Targets
from .twins import copies_weights, data_key, shares_batches

EVAL_SUBSET = 1000  # test accuracy during training uses a fixed subset of this many test images (speed)
EVAL_CHUNK = 500  # images per forward pass when evaluating
FLUSH_SECONDS = 0.25  # a live job hands its pending statistics to the history at least this often

log = logging.getLogger(__name__)
_JOB_IDS = itertools.count(1)
_LIVE_JOBS: weakref.WeakSet = weakref.WeakSet()  # jobs whose thread was started: what stop_all stops


class Run:
    """One model, its optimizer and recorder. Not thread-safe by itself: `Job` owns the thread."""

    def __init__(self, cfg: RunConfig, dataset: Dataset | None = None, init_from: Run | None = None):
        self.cfg = cfg.validate()
        self.dataset = dataset if dataset is not None else load_for(cfg)
        self.model = build_model(cfg, self.dataset.input_shape, self.dataset.n_classes)
        copy = init_from is not None and copies_weights(init_from.cfg, cfg)  # twins.py: what twins share, and why
        self.shared_weights = copy_shared_weights(init_from.model, self.model) if copy else []
        self.optimizer = make_optimizer(self.model, cfg)
        self.recorder: Recorder | None = None
        targets = Targets.from_net(self.model)
        if cfg.record_every > 0:
            self.recorder = Recorder(targets, samples=cfg.samples, bins=cfg.hist_bins, every=cfg.record_every,
                                     seed=cfg.seed).attach()
            self.history = self.recorder.history
        else:  # nothing is recorded, but the run still has an (empty) history with the right layout
            self.history = History(layout_for(targets, cfg.hist_bins), capacity=4)
        self.history.meta["config"] = cfg.to_dict()
        self.history.meta["dataset"] = {"name": self.dataset.name, "classes": list(self.dataset.classes),
                                        "input_shape": list(self.dataset.input_shape), **self.dataset.source}
        self.step = 0
        self.status = "ready"  # ready | running | finished | stopped | diverged | error
        self.divergence: Divergence | None = None
        self._divergence_watch = DivergenceWatch()
        self.last_loss = math.nan
        self.last_test_acc = math.nan
        self.final_test_acc = math.nan
        self.error: str | None = None
        self.defer_eval = False  # see train_step
        self._deferred: tuple[int, dict[str, torch.Tensor]] | None = None  # (step, network) to evaluate later

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def diverged_at(self) -> int | None:
        return self.divergence.step if self.divergence is not None else None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "diverged", "error")

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One step on the batch (x, y); returns the loss. When the divergence rule fires on this step's loss, the
        run is marked diverged and stops before the update.

        While `defer_eval` is set, a test-accuracy evaluation due at this step keeps a copy of the network as it
        would be evaluated (its parameters and buffers) instead, and `deferred_eval` evaluates that copy and writes
        the accuracies into this step's history row: the same numbers, later (a job's first step, so that a page
        draws it sooner). Not at the last step (`finish` summarizes the run with it) nor with the gradient-ICS
        measure at this step (its extra passes see what the evaluation leaves behind)."""
        cfg, rec, step = self.cfg, self.recorder, self.step
        recording = rec.begin(step) if rec else False
        self._relax_renorm_limits(step)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)  # (N, classes)
        loss = F.cross_entropy(logits, y)
        loss_value = float(loss.item())
        self.last_loss = loss_value
        lr = self.lr
        self.divergence = self._divergence_watch.update(step, loss_value)
        if self.divergence is not None:
            if recording:
                rec.end(loss=loss_value, lr=lr)
            self.status = "diverged"
            self.finish()
            return loss_value
        loss.backward()
        evaluate = step % cfg.eval_every == 0 or step == cfg.steps - 1
        test_acc = test_acc_train = None
        measure_ics = cfg.ics_every > 0 and step % cfg.ics_every == 0 and recording
        if evaluate and self.defer_eval and not measure_ics and step < cfg.steps - 1:  # the last step's is in finish()
            self._deferred = (step, _copy_state(self.model))
        elif evaluate:
            test_acc, test_acc_train = self._accuracies()
        before = [p.detach().clone() for p in self.model.parameters()] if measure_ics else None
        self.optimizer.step()
        if recording:
            ics = None
            if measure_ics:
                with rec.suspended():
                    ics = gradient_ics(self.model, before, x, y)
            rec.end(ics=ics, accuracy_of=(logits, y), loss=loss_value, lr=lr, test_acc=test_acc,
                    test_acc_train_mode=test_acc_train)
        self.step += 1
        if self.step >= cfg.steps:
            self.status = "finished"
            self.finish()
        return loss_value

    def _accuracies(self) -> tuple[float, float]:
        """The test accuracy in eval mode and in train mode (batch statistics), on the evaluation subset."""
        test_acc = self.evaluate(train_mode=False, limit=EVAL_SUBSET)
        test_acc_train = self.evaluate(train_mode=True, limit=EVAL_SUBSET)
        self.last_test_acc = test_acc
        return test_acc, test_acc_train

    def deferred_eval(self) -> None:
        """The evaluation that a step taken with `defer_eval` set put off, on the network as it was then; its accuracies
        go into that step's history row. Call it before the next step (the evaluation draws from the noise
        generators of noisy BN layers, in the order a step and its evaluation use them)."""
        if self._deferred is None:
            return
        step, state = self._deferred
        self._deferred = None
        now = _copy_state(self.model)
        self.model.load_state_dict(state)
        try:
            test_acc, test_acc_train = self._accuracies()
        finally:
            self.model.load_state_dict(now)
        self.history.set_scalars(step, test_acc=test_acc, test_acc_train_mode=test_acc_train)

    def _relax_renorm_limits(self, step: int) -> None:
        """Batch renorm's r_max and d_max for this step (Ioffe 2017's schedule, scaled to the run's length)."""
        if self.cfg.norm == "batch-renorm":
            limits = renorm_limits(step, self.cfg.steps)
            for module in self.model.modules():
                if isinstance(module, BatchRenorm):
                    module.set_limits(*limits)

    @torch.no_grad()
    def evaluate(self, train_mode: bool = False, limit: int | None = None) -> float:
        """Test accuracy. train_mode=True normalizes with each test batch's own statistics (batches of the
        training batch size) and leaves the running statistics untouched: the train/eval gap of batch norm. Dropout
        is off in both (it would add its own noise to what the gap measures, and use up masks of the training run)."""
        x, y = self.dataset.x_test, self.dataset.y_test
        if limit is not None:
            x, y = x[:limit], y[:limit]
        was_training = self.model.training
        buffers = {k: v.clone() for k, v in self.model.named_buffers()} if train_mode else None
        noisy = [m for m in self.model.modules() if isinstance(m, NoisyBatchNorm)]
        for m in noisy:
            m.freeze_noise = True
        self.model.train(train_mode)
        for m in self.model.modules():
            if isinstance(m, SeededDropout):
                m.eval()
        chunk = self.cfg.batch_size if train_mode else EVAL_CHUNK
        correct = 0
        counted = 0
        try:
            context = self.recorder.suspended() if self.recorder else contextlib.nullcontext()
            with context:
                for start in range(0, len(x), chunk):
                    xb, yb = x[start:start + chunk], y[start:start + chunk]
                    if train_mode and self.cfg.uses_batch_norm and len(xb) < 2:
                        continue  # batch norm cannot normalize a single image with its own statistics
                    correct += int((self.model(xb).argmax(1) == yb).sum())
                    counted += len(xb)
        finally:
            if buffers is not None:
                for k, v in self.model.named_buffers():
                    v.copy_(buffers[k])
            for m in noisy:
                m.freeze_noise = False
            self.model.train(was_training)
        return correct / max(counted, 1)

    def finish(self) -> None:
        """Final test accuracy (whole test set, eval mode; also for a run diverged with finite weights) and hook
        removal; safe to call twice."""
        if self.recorder is not None:
            self.recorder.detach()
        finite_weights = self.divergence is None or self.divergence.reason != NON_FINITE
        if math.isnan(self.final_test_acc) and self.status in ("finished", "stopped", "diverged") and finite_weights:
            self.final_test_acc = self.evaluate(train_mode=False)
        self.history.meta["summary"] = self.summary()

    def summary(self, steps_per_s: float | None = None) -> dict:
        out = {"status": self.status, "steps": self.step, "final_test_acc": _finite_or_none(self.final_test_acc),
               "last_test_acc": _finite_or_none(self.last_test_acc), "last_loss": _finite_or_none(self.last_loss),
               "lr": self.lr}
        if steps_per_s is not None:
            out["steps_per_s"] = steps_per_s
        if self.divergence is not None:
            out.update(self.divergence.to_summary())
        if self.error:
            out["error"] = self.error
        return out


def stream_for(run: Run, earlier_runs: list[Run], earlier_streams: list[BatchStream]) -> BatchStream:
    """The batches `run` trains on: an earlier run's stream when both have the same data and batch size (twins
    then see the very same batches: `twins.shares_batches`), else a new stream from the run's seed."""
    for other, stream in zip(earlier_runs, earlier_streams, strict=True):
        if other.dataset is run.dataset and shares_batches(other.cfg, run.cfg):
            return stream
    return BatchStream(run.dataset, run.cfg.batch_size, run.cfg.seed)


def load_for(cfg: RunConfig) -> Dataset:
    """The dataset `cfg` names: built in (bnviz.engine.data), or your own images (bnviz.engine.uploads)."""
    if uploads.is_user_data(cfg.dataset):
        return uploads.load_for_config(cfg.dataset, cfg.seed)
    return load_dataset(cfg.dataset, cfg.seed, difficulty=cfg.difficulty)


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """SGD or Adam over every parameter; weight_decay is PyTorch's coupled L2 term (gradient += wd * parameter)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay)


@dataclass
class RunSnapshot:
    config: RunConfig
    status: str
    step: int
    history: History | None
    summary: dict


@dataclass
class JobSnapshot:
    status: str  # ready | running | paused | finished | stopped | diverged | error
    step: int
    steps: int
    steps_per_s: float
    runs: list[RunSnapshot] = field(default_factory=list)
    error: str | None = None
    note: str | None = None  # why a run ended early when nobody pressed Stop (a pause that ran out)

    @property
    def history_bytes(self) -> int:
        """Bytes of its runs' histories (what a cache of finished runs keeps)."""
        return sum(r.history.nbytes() for r in self.runs if r.history is not None)

    @property
    def message(self) -> str:
        """The status line in plain words. The rate is left out until two steps have been timed (a run's first
        step, or just after Resume): "0 steps/s" under the first chart read as if the run were stuck."""
        parts = [f"step {self.step:,} of {self.steps:,}"]
        if self.steps_per_s > 0:
            parts.append(f"{self.steps_per_s:,.0f} steps/s")
        parts.append(self.status)
        for i, run in enumerate(self.runs):
            label = f"run {'AB'[i]}: " if len(self.runs) > 1 else ""
            if run.status == "diverged":
                parts.append(f"{label}{describe(run.summary)}")
        if self.note:
            parts.append(self.note)
        if self.error:
            parts.append(f"error: {self.error}")
        return " · ".join(parts)


class Job:
    """Trains one config, or two in lockstep: the second starts from the first's initial weights and trains on its
    batches where `twins` says they share them (`twins.what_runs_share` says it in a sentence).

    Thread-safe controls: start, pause, resume, stop, set_lr, snapshot. The worker thread never touches Streamlit.
    """

    def __init__(self, configs: RunConfig | list[RunConfig], datasets: dict | None = None):
        configs = [configs] if isinstance(configs, RunConfig) else list(configs)
        if not 1 <= len(configs) <= 2:
            raise ConfigError(f"a job trains 1 or 2 configs, got {len(configs)}")
        datasets = datasets if datasets is not None else {}
        self.runs: list[Run] = []
        for cfg in configs:
            cfg.validate()
            key = data_key(cfg)
            if key not in datasets:
                datasets[key] = load_for(cfg)
            self.runs.append(Run(cfg, datasets[key], init_from=self.runs[0] if self.runs else None))
        self.streams: list[BatchStream] = []
        for i, run in enumerate(self.runs):
            self.streams.append(stream_for(run, self.runs[:i], self.streams))
        self.steps = max(r.cfg.steps for r in self.runs)
        self.threads = max(r.cfg.threads for r in self.runs)
        self._unpaused = threading.Event()  # cleared by pause; set by resume and by stop, so the worker wakes
        self.pause_limit: float | None = None  # seconds a pause may last before the job stops (None: no limit)
        # Seconds the worker waits after handing over the first step (before its deferred evaluation and step 1),
        # or until stopped: set by a page that draws that step at once (Lab.start). Meanwhile the page's script and
        # the server's event loop, which sends the chart, need the GIL that two training threads would take.
        self.first_hold = 0.0
        self._unpaused.set()
        self._stop = threading.Event()
        self._first_data = threading.Event()  # set once the first step's statistics are in the histories
        self._thread: threading.Thread | None = None
        self._lr_request: float | None = None
        self._times: deque = deque(maxlen=64)
        self.status = "ready"
        # How the worker thread reports a failure ("Type: message", status "error"): it cannot raise to the page that
        # started it, so the page reads this from a snapshot. Mistakes found before the thread starts are raised.
        self.error: str | None = None
        self.note: str | None = None
        self.step = 0
        self.on_done = None  # called (no arguments) by the worker when training ends, however it ends
        self.name = f"job-{next(_JOB_IDS)}"  # in the log lines that say when a job starts and ends

    # ---- controls -------------------------------------------------------------------------------------------
    def start(self) -> Job:
        if self._thread is None:
            self.status = "running"
            self._thread = threading.Thread(target=self._work, name="bnviz-job", daemon=True)
            _LIVE_JOBS.add(self)
            log.info("%s started: %d run(s), %d steps, %d torch thread(s)", self.name, len(self.runs), self.steps,
                     self.threads)
            self._thread.start()
        return self

    def pause(self) -> None:
        if self.status == "running":
            self._unpaused.clear()
            self.status = "paused"
            if not self.alive:  # it finished meanwhile: report how it ended, not "paused"
                self.status = _job_status(self.runs)

    def resume(self) -> None:
        if self.status == "paused":
            self._unpaused.set()
            self.status = "running"

    def stop(self, wait: float | None = 5.0) -> None:
        self._stop.set()
        self._unpaused.set()
        if self._thread is not None and wait:
            self._thread.join(wait)

    def set_lr(self, lr: float) -> None:
        """Change every run's learning rate at the next step boundary."""
        RunConfig(lr=lr).validate()
        self._lr_request = float(lr)

    def wait_for_data(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the first step is recorded or the job has ended; True if it happened."""
        return self._first_data.wait(timeout)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.status in ("finished", "stopped", "diverged", "error")

    def run_to_end(self) -> Job:
        """Train in the calling thread (CLI, tests, experiments)."""
        self._work()
        return self

    # ---- reading --------------------------------------------------------------------------------------------
    def steps_per_s(self) -> float:
        """Steps per second over the last 64 steps (since the last Resume, if that is more recent)."""
        times = self._times.copy()  # one atomic copy: the worker appends and clears meanwhile
        if len(times) < 2:
            return 0.0
        (t0, s0), (t1, s1) = times[0], times[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self) -> JobSnapshot:
        """A consistent copy of what a page needs; cheap enough to call twice a second while training runs."""
        rate = self.steps_per_s()
        runs = [RunSnapshot(r.cfg, r.status, r.step, r.history.snapshot(), r.summary(rate))
                for r in self.runs]
        return JobSnapshot(self.status, self.step, self.steps, rate, runs, self.error, self.note)

    # ---- worker ---------------------------------------------------------------------------------------------
    def _work(self) -> None:
        """The worker: train every run to its end, or until stop. It runs in its own thread, so a failure cannot be
        raised to the page that started the job: it is caught, and reported as `self.error` and status "error",
        which the next snapshot carries to the page."""
        self._begin()
        try:
            self._train_until_done()
            self._end_runs()
        except Exception as exc:  # shown to this user as a message; the server keeps serving everyone else
            self._fail(exc)
        finally:
            self._after()

    def _begin(self) -> None:
        torch.set_num_threads(self.threads)
        self.status = "running" if self.status in ("ready", "running") else self.status
        for run in self.runs:
            run.status = "running"

    def _train_until_done(self) -> None:
        """Step every run that is not done until none is left or stop is asked; wait (no polling) while paused."""
        last_flush = -math.inf  # the first step is handed over at once: a page can draw step 0 right away
        while not self._stop.is_set():
            if not self._unpaused.is_set():
                self._flush()  # a paused page shows every step so far
                if not self._unpaused.wait(self.pause_limit):  # set again by resume, or by stop
                    log.info("%s stopped: paused for more than %.0f s", self.name, self.pause_limit)
                    self.note = (f"stopped after a pause of {self.pause_limit:.0f} s, to free the server for others; "
                                 "press Start to train again")
                    self._stop.set()  # paused too long: stop, and on_done gives the slot back
                self._times.clear()  # the rate after Resume counts steps since Resume, not the pause
                continue
            active = [(run, stream) for run, stream in zip(self.runs, self.streams, strict=True) if not run.done]
            if not active:
                break
            self._apply_lr_request()
            first = not self._first_data.is_set()
            if first:  # the first step's evaluation after its statistics are handed over (below)
                for run, _ in active:
                    run.defer_eval = True
            self._step(active)
            now = time.perf_counter()
            self._times.append((now, self.step))
            if now - last_flush > FLUSH_SECONDS:  # slow steps: do not let a chunk hold a page's charts back
                last_flush = now
                self._flush()
                self._first_data.set()
            if first:
                self._hold_for_first_chart()
                for run, _ in active:
                    run.defer_eval = False
                    run.deferred_eval()

    def _hold_for_first_chart(self) -> None:
        """Wait `first_hold` seconds (less if stopped) once the first step is handed over; the rate shown counts
        steps from here on."""
        if self.first_hold > 0:
            self._stop.wait(self.first_hold)
            self._times.clear()

    def _apply_lr_request(self) -> None:
        if self._lr_request is not None:
            for run in self.runs:
                run.set_lr(self._lr_request)
            self._lr_request = None

    def _step(self, active: list[tuple[Run, BatchStream]]) -> None:
        """One step of each active run; runs that share a stream train on the same batch (twins in lockstep)."""
        batches = {}
        for run, stream in active:
            if id(stream) not in batches:
                batches[id(stream)] = stream.next()
            run.train_step(*batches[id(stream)])
        self.step = max(run.step for run in self.runs)

    def _flush(self) -> None:
        """Hand every run's pending statistics to its history (what snapshots copy)."""
        for run in self.runs:
            if run.recorder is not None:
                run.recorder.flush()

    def _end_runs(self) -> None:
        """Runs still going when the loop ends were stopped: say so, and take their final accuracy."""
        for run in self.runs:
            if not run.done:
                run.status = "stopped"
                run.finish()
        self.status = _job_status(self.runs)

    def _fail(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.status = "error"
        for run in self.runs:
            if not run.done:
                run.status, run.error = "error", self.error
            if run.recorder is not None:
                with contextlib.suppress(Exception):
                    run.recorder.detach()

    def _after(self) -> None:
        """However training ended: wake `wait_for_data`, log the end, call `on_done`."""
        self._first_data.set()
        if self._thread is not None:  # a threaded job: say when it ended (the load test counts these lines)
            log.info("%s ended: %s at step %d", self.name, self.status, self.step)
        if self.on_done is not None:
            self.on_done()


def stop_all(timeout: float = 5.0) -> int:
    """Ask every running job to stop and wait (at most `timeout` seconds in all) for their threads to end; return
    how many were still running. For server shutdown: a daemon thread killed by the interpreter in the middle of a
    torch call can crash the exit, a thread that sees the stop flag finishes its step and ends cleanly."""
    jobs = [job for job in list(_LIVE_JOBS) if job.alive]
    for job in jobs:
        job.stop(wait=None)
    deadline = time.monotonic() + timeout
    for job in jobs:
        job.join(max(0.0, deadline - time.monotonic()))
    return len(jobs)


def _job_status(runs: list[Run]) -> str:
    statuses = {r.status for r in runs}
    if statuses == {"diverged"}:
        return "diverged"
    if "stopped" in statuses:
        return "stopped"
    return "finished"


def train(cfg: RunConfig) -> Run:
    """Train one config to the end in this thread and return the run (history in run.history)."""
    job = Job(cfg).run_to_end()
    return job.runs[0]


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The network's parameters and buffers (running statistics), copied (`load_state_dict` puts them back)."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
