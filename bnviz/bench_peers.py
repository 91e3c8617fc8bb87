"""The benchmark's peers: what a user would otherwise run to watch the same training, each on its own copy of the run.

Every peer wraps `Run.train_step` of a run that records nothing itself (record_every=0) and logs in its own way:

* TensorBoard's way: `SummaryWriter.add_histogram` of every probed stage output (the tensors bnviz samples: each
  block's layer output, norm output and activation) from a forward hook, and of each one's gradient from a tensor
  hook, whole tensors, to a temporary log directory, on every `every`-th step.
* Weights & Biases' way: `run.watch(model, log="all", log_freq=every)` in offline mode with every directory in a
  temporary one, and `run.log({"loss": ...})` each step (what commits the step). It logs the parameters and their
  gradients only: it records less than bnviz (no activations, no activation gradients, no BN batch statistics).

* The floor: the cheapest way to record with per-tensor hooks, as a reference rather than a product: a forward hook
  on each probe that copies the `samples` values bnviz samples (one `torch.take` into a preallocated buffer) and a
  tensor hook that does the same for its gradient, and nothing else (no statistics, no weights, no BN statistics, no
  history). What bnviz costs above this row is its own work; this row is what the hooks themselves cost.
* The floor with copies: the floor's hooks, and on each recorded step the copies bnviz makes on the training thread
  (the same `SlotBuffer` copies into as many slots as bnviz's two banks): every conv/linear weight before the step,
  and after it the weights, their gradients and the norm layers' per-channel tensors (gamma, beta, running mean and
  variance). Still no statistics and no history: what a recorder of everything costs before any bookkeeping.

A peer whose package is missing raises `PeerMissing`; the bench prints it as skipped (`requirements-bench.txt`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .engine.targets import Targets
from .engine.trainer import Run


class PeerMissing(Exception):
    """A peer's optional package is not installed."""


@dataclass
class Peer:
    name: str
    every: int
    step: Callable  # step(x, y) -> loss
    records: str  # what it records per recorded step, in words
    close: Callable[[], None] = field(default=lambda: None)


def _tensor_sizes(sizes: list[int]) -> str:
    lo, hi = min(sizes), max(sizes)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def probe_sizes(run: Run, x) -> list[int]:
    """numel of each probed stage output for a batch like x (one forward pass without gradients, eval untouched)."""
    return module_probe_sizes(run.model, Targets.from_net(run.model), x)


def module_probe_sizes(model, targets: Targets, x) -> list[int]:
    """numel of each of `targets`' probe outputs (at a module's first call) for a batch like x: one forward pass
    without gradients, after which the model's state (BN's running statistics) is put back."""
    sizes = {}

    def size_hook(k):
        def hook(module, inputs, output):  # returns None: the output is left as it is
            sizes.setdefault(k, output.numel())
        return hook

    handles = [p.module.register_forward_hook(size_hook(k)) for k, p in enumerate(targets.probes)]
    try:
        with torch.no_grad():
            state = {k: v.clone() for k, v in model.state_dict().items()}
            model(x)
            model.load_state_dict(state)  # the pass updated BN's running statistics: undo it
    finally:
        for h in handles:
            h.remove()
    return [sizes[k] for k in range(len(targets.probes))]


def tensorboard_peer(run: Run, every: int, x) -> Peer:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch's module imports the tensorboard package
        raise PeerMissing(str(exc)) from None
    logdir = tempfile.mkdtemp(prefix="bnviz-bench-tb-")
    writer = SummaryWriter(logdir)
    targets = Targets.from_net(run.model)
    names = [f"{targets.layers[p.layer]}/{p.stage}" for p in targets.probes]

    def forward_hook(name):
        def hook(module, inputs, output):
            step = run.step
            if step % every or not module.training or not torch.is_grad_enabled():  # not the evaluation passes
                return
            writer.add_histogram(name, output, step)
            if output.requires_grad:
                output.register_hook(lambda grad: writer.add_histogram(f"{name}/grad", grad, step))
        return hook

    sizes = probe_sizes(run, x)
    handles = [p.module.register_forward_hook(forward_hook(n)) for p, n in zip(targets.probes, names, strict=True)]

    def close():
        for h in handles:
            h.remove()
        writer.close()
        shutil.rmtree(logdir, ignore_errors=True)

    records = (f"{len(names)} stage outputs + their {len(names)} gradients, whole tensors "
               f"({_tensor_sizes(sizes)} values each): a histogram and min/max/sum/sum of squares per tensor")
    peer = Peer("TensorBoard add_histogram", every, run.train_step, records, close)
    peer.logdir, peer.writer = logdir, writer
    return peer


WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
             "WANDB_ARTIFACT_DIR", "WANDB_SILENT")


@contextlib.contextmanager
def _wandb_env(root: str):
    """Offline, silent, and every wandb directory inside `root`, for the duration of the block."""
    saved = {k: os.environ.get(k) for k in WANDB_ENV}
    os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                       **{k: os.path.join(root, k.lower()) for k in WANDB_ENV[1:-1]}})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_WANDB: dict = {"run": None, "root": None, "users": 0}  # one offline run for every watched copy (see wandb_peer)


def wandb_peer(run: Run, every: int, x) -> Peer:
    """wandb's torch hooks log into the global `wandb.run`: every watched copy shares one offline run, and each
    copy's step commits its own histograms (run.log right after its train_step)."""
    try:
        import wandb
    except ImportError as exc:
        raise PeerMissing(str(exc)) from None
    if _WANDB["run"] is None:
        root = tempfile.mkdtemp(prefix="bnviz-bench-wandb-")
        with _wandb_env(root):
            _WANDB["run"] = wandb.init(project="bnviz-bench", dir=root, mode="offline",
                                       settings=wandb.Settings(silent=True))
        _WANDB["root"] = root
    wb, root = _WANDB["run"], _WANDB["root"]
    _WANDB["users"] += 1
    wb.watch(run.model, log="all", log_freq=every)

    def step(x, y):
        loss = run.train_step(x, y)
        wb.log({"loss": loss})
        return loss

    def close():
        wb.unwatch(run.model)
        _WANDB["users"] -= 1
        if _WANDB["users"] == 0:
            with _wandb_env(root):
                wb.finish()
                wandb.teardown()  # stops wandb's service process too
            _WANDB.update(run=None, root=None)
            shutil.rmtree(root, ignore_errors=True)

    params = [p.numel() for p in run.model.parameters() if p.requires_grad]
    records = (f"{len(params)} parameters + their {len(params)} gradients ({_tensor_sizes(params)} values each): "
               f"a 64-bin histogram per tensor; no activations or their gradients: records less than bnviz")
    peer = Peer("W&B watch(log='all')", every, step, records, close)
    peer.root, peer.run = root, wb
    return peer


class SamplingHooks:
    """The floor's hooks: on each probe a forward hook that copies `samples` values of its output (one `torch.take`
    of fixed positions into a preallocated row) and, through a pre-hook on the autograd node that made the output,
    the same positions of its gradient; nothing else. `step()` gives the step being recorded, or None for a step
    that is not; a module called again in the same step (a shared ReLU) is copied at its first call only, as bnviz
    does."""

    def __init__(self, targets: Targets, sizes: list[int], samples: int, seed: int, step):
        g = torch.Generator().manual_seed(seed)
        self.index = [torch.randperm(n, generator=g)[:samples].sort().values for n in sizes]
        self.acts, self.grads = torch.zeros(len(sizes), samples), torch.zeros(len(sizes), samples)
        self._handles = [p.module.register_forward_hook(self._hook(k, sizes[k], step))
                         for k, p in enumerate(targets.probes)]

    def _hook(self, k: int, size: int, step):
        idx, act_row, grad_row = self.index[k], self.acts[k], self.grads[k]
        last = [None]

        def grad_hook(grad):
            torch.take(grad, idx, out=grad_row)

        def grad_prehook(grads):  # the gradient of output 0 of the node that made the stage output
            if grads[0] is not None:
                torch.take(grads[0], idx, out=grad_row)

        def hook(module, inputs, output):
            now = step()
            if now is None or now == last[0] or not module.training or not torch.is_grad_enabled():
                return
            last[0] = now
            if output.numel() == size:  # a short last batch is skipped: this row is a reference, not a recorder
                torch.take(output.detach(), idx, out=act_row)
                if output.requires_grad:  # the recorder's cheapest way to the gradient, likewise
                    if output.grad_fn is not None and output.output_nr == 0:
                        output.grad_fn.register_prehook(grad_prehook)
                    else:
                        output.register_hook(grad_hook)
        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()


class StepCopies:
    """The copies bnviz's recorder makes on the training thread in a recorded step, with its `SlotBuffer`s and as
    many slots as its two banks: `before()` copies every conv/linear weight (and the running statistics), `after()`
    the weights, their gradients and the norm layers' per-channel tensors (gamma, beta, running mean and variance),
    each with one concatenation into the next slot."""

    def __init__(self, targets: Targets, samples: int):
        from .engine.recorder import SlotBuffer, default_chunk

        weights = [w.detach() for _, w in targets.weights]
        running = [b for t in targets.norms for b in (t.module.running_mean, t.module.running_var) if b is not None]
        self.channels = [t.detach() for n in targets.norms for t in
                         (getattr(n.module, name, None) for name in ("weight", "bias", "running_mean", "running_var"))
                         if isinstance(t, torch.Tensor)]
        self.slots = 2 * default_chunk(targets, samples)
        self.before_buffer = SlotBuffer(weights + running, self.slots)
        self.after_buffer = SlotBuffer(weights + weights + self.channels, self.slots)
        self.weights, self.params = weights, [w for _, w in targets.weights]
        self._flat_before = [t.reshape(-1) for t in weights + running]
        self._flat_weights = [w.reshape(-1) for w in weights]
        self._flat_channels = [t.reshape(-1) for t in self.channels]
        self.slot = 0

    @property
    def values(self) -> int:
        return int(self.before_buffer.offsets[-1] + self.after_buffer.offsets[-1])

    def before(self) -> None:
        self.slot = (self.slot + 1) % self.slots
        self.before_buffer.copy_flat(self.slot, self._flat_before)

    def after(self) -> None:
        grads = [p.grad.reshape(-1) for p in self.params]
        self.after_buffer.copy_flat(self.slot, self._flat_weights + grads + self._flat_channels)

    def describe(self) -> str:
        return (f"the floor's hooks, and bnviz's copies: {len(self.weights)} weights before and after the step and "
                f"their gradients, {len(self.channels)} per-channel norm tensors, {self.values:,} values; no "
                f"statistics or history")


def hook_floor_peer(run: Run, every: int, x) -> Peer:
    """Forward and gradient hooks that only copy `samples` values of each stage output and its gradient."""
    targets = Targets.from_net(run.model)
    sizes = probe_sizes(run, x)
    samples = min(run.cfg.samples, *sizes)
    hooks = SamplingHooks(targets, sizes, samples, run.cfg.seed, lambda: None if run.step % every else run.step)
    records = (f"{len(sizes)} stage outputs + their {len(sizes)} gradients, {samples} sampled values each copied to "
               f"a buffer; no statistics, weights or BN statistics: the cost of the hooks alone")
    peer = Peer("hooks only (floor)", every, run.train_step, records, hooks.close)
    peer.acts, peer.grads = hooks.acts, hooks.grads
    return peer


def hooks_and_copies_peer(run: Run, every: int, x) -> Peer:
    """The floor's hooks, and each recorded step the copies bnviz's recorder makes (`StepCopies`)."""
    peer = hook_floor_peer(run, every, x)
    copies = StepCopies(Targets.from_net(run.model), peer.acts.shape[1])

    def step(x, y):
        if run.step % every:
            return run.train_step(x, y)
        copies.before()
        loss = run.train_step(x, y)
        copies.after()
        return loss

    with_copies = Peer("hooks + copies (floor)", every, step, copies.describe(), peer.close)
    with_copies.acts, with_copies.grads, with_copies.copies = peer.acts, peer.grads, copies
    return with_copies


PEERS = {"floor": hook_floor_peer, "copies": hooks_and_copies_peer, "tensorboard": tensorboard_peer,
         "wandb": wandb_peer}
