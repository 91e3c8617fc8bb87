"""Hooks that turn training steps into rows of statistics (no activation tensor is kept).

What is measured, per recorded step:

* For every probe (a block's stage output: `pre`, `norm`, `act`): a fixed random sample of `samples` values
  (the same positions every step, so steps are comparable). All probes share one sample size: `samples`, or the
  size of the smallest probed tensor at the first recorded step when that is smaller; a tensor no larger than that
  is sampled completely (every value, each once), a larger one is subsampled. Mean,
  std (1/n), min, max, the 15th/50th/85th percentiles (numpy's linear interpolation), the saturated fraction
  (tanh: |y| > 0.97; sigmoid: y < 0.03 or y > 0.97) or dead fraction (ReLU: y == 0) and a histogram on fixed
  bins are computed from that sample. The histogram edges are fixed at the first recorded step that saw the tensor
  (step 0 in training): sigmoid
  and tanh outputs use their whole range; any other tensor uses its step-0 median +- 6 step-0 standard deviations,
  widened to include the step-0 min and max (ReLU outputs start at 0). Values outside the edges are not dropped:
  they are counted in `frac_below` / `frac_above`, and the percentiles are exact for the sample whatever the edges.
* The gradient of the loss w.r.t. each probe's output, at the same positions: std, zero fraction, a histogram of
  |gradient| in octaves (powers of two, zeros excluded), and the L2 norm of the whole tensor estimated from the
  sample as sqrt(numel * mean(sample^2)) (exact when every value is sampled).
* Every conv/linear weight (exact, all values): norm and std of the weight (as the step's forward pass used it),
  its gradient and its update (the change made by the optimizer step); grad:data = std(grad) / std(weight),
  update:data = std(update) / std(weight).
* Every normalization layer, per channel: gamma and beta after the step's update and, for batch norm, the batch mean
  and biased batch variance of its input and the running mean and variance after the step's forward pass. The
  batch statistics are solved exactly from the running-average update (PyTorch: running = (1 - momentum) *
  running + momentum * batch, with the unbiased batch variance), or computed from the input when there is no
  usable update (momentum 0, no running statistics). A step in which a layer's running statistics were updated
  more than once (two training-mode forward passes) cannot be solved: its batch statistics are NaN.

A module called more than once in a step (one ReLU module reused, as in torchvision's ResNet blocks) is recorded
at its first call. Values are sampled inside the forward hook, so a later in-place change of the tensor (`out +=
identity`, `ReLU(inplace=True)`) does not alter them; its gradient is likewise the one of the value the hook saw.

Cost: the forward hooks sample with one `take` per tensor (the first recorded step keeps a copy until every
probe's size is known), and each probe's gradient hook with one more (a pre-hook on the autograd node that made the
output: what `Tensor.register_hook` does, without its per-call Python bookkeeping); `begin` and `end` copy the
weights, running statistics, gradients and per-channel tensors with one concatenation each, and note the rest as
Python values (step, scalars, which probes ran, their sizes, BN counts and momenta), which the hand-over writes into
the chunk's arrays once per chunk; the training accuracy is computed there too, for the whole chunk in one call
(`end(accuracy_of=(logits, labels))`). Every `chunk` recorded steps (32 for a
small model, fewer for a large one, not below 8: `default_chunk`; a hand-over costs the training thread a fixed
time, so longer chunks cost less per step) the statistics of all of them are computed in a few numpy calls on
stacked arrays (bnviz.engine.chunk_stats) and appended to the history with one call (`History.extend`), in a
separate process while the machine has a spare core (`spare_core`), else inline in `end`. A thread would not do:
numpy's calls on arrays this small are mostly Python overhead, holding the GIL the training thread needs. The
process reads the chunk's samples and copies from shared memory (the arrays are moved there when it starts) and
sends back its rows, which are appended to the history in step order (so the history lags by at most 2 * chunk - 1
steps; `flush` waits until every pending step is in). It is started at the first hand-over with a spare core
once a chunk's worth of steps is recorded (a job's first flush, drawn at once by a page, stays inline), computes
nothing until it is ready (inline meanwhile), and is stopped by `detach`.
Either way the numbers are the same.

Usage, for a model the trainer built or any `nn.Module` (see `bnviz.engine.targets`)::

    with Recorder(targets) as rec:
        for step in range(steps):
            rec.begin(step)          # arms the hooks when step % every == 0
            loss = ...; loss.backward(); opt.step()
            rec.end(loss=loss.item(), lr=lr)
    rec.history                      # flushed on exit
"""

from __future__ import annotations

import contextlib
import os
from collections import deque

import numpy as np
import torch
from torch import nn

from .chunk_stats import (
    ROWS,
    SLOT_KEYS,
    ChunkStats,
    ProcessGone,
    StatsProcess,
    chunk_views,
    shared_empty,
    shared_support,
)
from .history import CHANNEL_STATS, ICS_STATS, SCALARS, History, Layout
from .targets import NormTarget, Targets, norm_channels, norm_kind

DEFAULT_CHUNK = 32  # recorded steps per chunk, for a model whose chunk copies fit in CHUNK_BUDGET_BYTES
MIN_DEFAULT_CHUNK = 8  # ... and for a larger one (each hand-over costs ~0.3-0.6 ms on the training thread)
CHUNK_BUDGET_BYTES = 64 * 1024 * 1024  # the two banks of chunk slots (copies of weights, gradients, samples)
BACKGROUND = True  # compute the statistics in a separate process when a core is spare (False: always inline)
PROCESS_AFTER_CHUNKS = 1  # ... started only once this many chunks' worth of steps are recorded (see _ready_process)


def spare_core() -> bool:
    """True when the machine has, on average, half a core more than the caller's training thread and everything
    else use (1-minute load average < cores - 0.5; the training thread itself counts about 1). The statistics
    process only helps then: on a busy machine it takes its core from the training thread or from someone else."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except OSError:  # no load average on this platform
        return False


_SCALAR_COLUMN = {name: i for i, name in enumerate(SCALARS)}
# the per-slot bookkeeping arrays, by their name in a chunk (ChunkStats.rows) -> the recorder's attribute
_SLOT_ARRAYS = dict(zip(SLOT_KEYS, ("_act_present", "_grad_present", "_numel", "_steps", "_scalars", "_ics",
                                    "_g_missing", "_chunk_factors", "_chunk_counts"), strict=True))


def default_chunk(targets: Targets, samples: int) -> int:
    """Steps per chunk when the caller does not choose: DEFAULT_CHUNK, fewer for a model whose two banks of
    slots would take more than CHUNK_BUDGET_BYTES, never fewer than MIN_DEFAULT_CHUNK. A slot holds the weights
    three times (before, after, gradient), four per-channel tensors and the running statistics of each norm
    layer, and a sample of each probe's output and gradient."""
    weights = sum(w.numel() for _, w in targets.weights)
    channels = sum(norm_channels(t.module) for t in targets.norms)
    slot_bytes = 4 * (3 * weights + 6 * channels + 2 * len(targets.probes) * samples)
    fit = CHUNK_BUDGET_BYTES // max(2 * slot_bytes, 1)
    return int(min(DEFAULT_CHUNK, max(MIN_DEFAULT_CHUNK, fit)))


def layout_for(targets: Targets, bins: int = 64) -> Layout:
    """The history layout (which rows and columns) for recording these targets."""
    return Layout(
        layers=list(targets.layers),
        probes=[(p.layer, p.stage) for p in targets.probes],
        act_kinds=[p.kind if p.stage == "act" else "" for p in targets.probes],
        weights=[name for name, _ in targets.weights],
        norm_layers=[(t.layer, norm_kind(t.module), norm_channels(t.module)) for t in targets.norms],
        bins=bins,
    )


class SlotBuffer:
    """A (slots, total) float32 buffer; slot c of a list of tensors is filled by one call (a concatenation into the
    slot's row when every tensor is float32, else a foreach copy)."""

    def __init__(self, tensors: list[torch.Tensor], slots: int):
        sizes = [t.numel() for t in tensors]
        self.offsets = np.cumsum([0, *sizes])
        # empty, not zeros: every slot is written whole before it is read, and the pages of a slot never used (the
        # second bank, when the statistics are computed inline) are never touched, so they take no memory
        self._spans = [(a, b, t.shape) for a, b, t in zip(self.offsets[:-1], self.offsets[1:], tensors, strict=True)]
        self.bind(torch.empty(slots, int(self.offsets[-1]), dtype=torch.float32))

    def bind(self, buffer: torch.Tensor) -> None:
        """Use `buffer` (same shape) from now on: a copy of the current one moved to shared memory."""
        self.buffer = buffer
        self._views: dict[int, list[torch.Tensor]] = {}  # per slot, made when first needed (see views)
        self.rows = list(buffer.unbind(0))
        self.array = buffer.numpy()

    def views(self, slot: int) -> list[torch.Tensor]:
        """Slot `slot` of the buffer as one view per tensor (its shape). Made on first use, not at `bind`: all of
        them took ~13 ms for Home's twin (two recorders, each ~30 tensors x 64 slots, twice), on the way from a click
        on Start to the first chart, and only a slot copied from tensors that are not all float32 needs them."""
        views = self._views.get(slot)
        if views is None:
            views = self._views[slot] = [self.buffer[slot, a:b].view(shape) for a, b, shape in self._spans]
        return views

    def copy(self, slot: int, tensors: list[torch.Tensor]) -> None:
        if not tensors:
            return
        if all(t.dtype == torch.float32 for t in tensors):
            torch.cat([t.reshape(-1) for t in tensors], out=self.rows[slot])
        else:
            torch._foreach_copy_(self.views(slot), tensors)

    def copy_flat(self, slot: int, flat: list[torch.Tensor]) -> None:
        """Like copy, for float32 tensors already flattened (1-D views of the tensors): one concatenation."""
        if flat:
            torch.cat(flat, out=self.rows[slot])


class Recorder:
    """Forward/backward hooks plus batched statistics; appends one row to `history` per recorded step."""

    def __init__(self, targets: Targets, history: History | None = None, *, samples: int = 512, bins: int = 64,
                 every: int = 1, seed: int = 0, capacity: int | None = None, chunk: int | None = None):
        self.targets = targets
        layout = layout_for(targets, bins)
        self.history = history if history is not None else History(layout, capacity=capacity)
        chunk = default_chunk(targets, samples) if chunk is None else chunk
        self.samples, self.every, self.seed, self.chunk = samples, max(1, every), seed, max(1, chunk)
        self.armed, self.step = False, -1
        self._handles: list = []
        self._suspended = 0
        self._index_cache: dict[tuple[int, int], torch.Tensor] = {}
        self._last_index: list[tuple[int, torch.Tensor | None]] = [(-1, None)] * len(targets.probes)  # per probe
        self._sample_size: int | None = None
        k, m = len(targets.probes), 2 * self.chunk
        self._outputs: list[torch.Tensor | None] = [None] * k
        self._outputs_kept = 0  # how many of _outputs are set
        self._begun = False
        # chunk storage, two banks of `chunk` slots: while the statistics process computes the statistics of one
        # bank's steps, the next steps fill the other. Slot `_slot` = bank * chunk + fill holds the fill-th step of
        # the bank.
        self._fill = self._bank = self._slot = 0
        self.background = BACKGROUND
        self._process: StatsProcess | None | bool = None  # started at the first hand-over with a spare core
        self._in_flight: deque[slice] = deque()  # the slots handed to the process, oldest first
        self._state_sent = False  # whether the process has the histogram edges as they are
        self._rows_out: dict[str, np.ndarray] = {}  # where the process writes each slot's row (shared memory)
        self._acts: torch.Tensor | None = None  # (2 * chunk, probes, samples), allocated at the first step
        self._grad_samples: torch.Tensor | None = None
        self._act_present = np.zeros((m, k), bool)
        self._grad_present = np.zeros((m, k), bool)
        self._numel = np.zeros((m, k), np.float64)
        self._steps = np.zeros(m, np.int64)
        self._scalars = np.full((m, len(SCALARS)), np.nan)
        self._ics = np.full((m, len(layout.layers), len(ICS_STATS)), np.nan)
        weights = [w.detach() for _, w in targets.weights]  # aliases: same storage, no autograd on copies
        self._weights = weights
        self._g_missing = np.zeros((m, len(weights)), bool)
        # what `begin` and `end` note about a slot's step, as Python values: written into the arrays above (which the
        # statistics read) at the hand-over, for the whole chunk at once (a numpy assignment per step and array costs
        # the training thread more than the statistics of that array)
        self._notes = [_StepNotes() for _ in range(m)]
        self._channel_tensors, self._channel_slots = self._channel_layout()
        self._running = [j for j, t in enumerate(targets.norms) if _running_average_factor(t.module, before=True)]
        # one copy per step at `begin` (weights, running statistics) and one at `end` (weights, their gradients,
        # per-channel tensors), each into its own slot row: [before] = w | running, [after] = w | grad | channels
        self._before = SlotBuffer(weights + self._running_tensors(), m)
        self._after = SlotBuffer(weights + weights + self._channel_tensors, m)
        self._w_offsets = np.cumsum([0, *(w.numel() for w in weights)])
        # the same tensors every step (aliases of the parameters and buffers, updated in place): flattened once
        stable = weights + self._running_tensors() + self._channel_tensors
        if all(t.dtype == torch.float32 and t.is_contiguous() for t in stable):
            self._flat_before = [t.view(-1) for t in weights + self._running_tensors()]
            self._flat_weights = [w.view(-1) for w in weights]
            self._flat_channels = [t.view(-1) for t in self._channel_tensors]
        else:
            self._flat_before = self._flat_weights = self._flat_channels = None
        self._channel_offsets = np.cumsum([0, *(t.numel() for t in self._channel_tensors)])
        self._factors = np.zeros((m, len(self._running)))
        self._tracked = np.zeros((m, len(self._running)), np.int64)  # num_batches_tracked at the step's start
        self._tracked_after = np.zeros((m, len(self._running)), np.int64)  # ... and at its end
        self._chunk_factors = np.zeros((m, len(self._running)))  # _solvable_factors, set at the hand-over
        self._chunk_counts = np.zeros((m, len(targets.norms)))  # _norm_counts, likewise
        self._running_modules = [targets.norms[j].module for j in self._running]
        # each running-average layer's num_batches_tracked, read through a 0-d numpy view of its buffer (the forward
        # pass increments it in place): int() of a tensor costs microseconds, a view's read a tenth of one
        self._tracked_views = [_count_view(module) for module in self._running_modules]
        self._params = [w for _, w in targets.weights]
        self._direct: list[dict[int, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(m)]
        # values per channel that a norm layer normalizes over = numel of its output / channels
        probe_of = {(p.layer, p.stage): k for k, p in enumerate(targets.probes)}
        self._norm_probe = [probe_of.get((t.layer, "norm")) for t in targets.norms]
        self._norm_width = np.array([max(norm_channels(t.module), 1) for t in targets.norms], np.float64)
        self._stats = ChunkStats(layout, self.history.hist_edges, self._w_offsets, self._channel_offsets,
                                 self._channel_slots, self._running)

    def _solvable_factors(self, s: slice) -> np.ndarray:
        """The running-average factors of the slots in s, 0 where a layer's running statistics were not updated
        exactly once in the step (its batch statistics cannot be solved then); a count of -1: the module keeps
        no count, trust it."""
        factors, before = self._factors[s].copy(), self._tracked[s]
        factors[(before >= 0) & (self._tracked_after[s] - before != 1)] = 0.0
        return factors

    def _norm_counts(self, numel: np.ndarray) -> np.ndarray:
        """Values per channel each norm layer normalized over in each step (0 when unknown): from its output size."""
        counts = np.zeros((len(numel), len(self.targets.norms)))
        for j, k in enumerate(self._norm_probe):
            if k is not None:
                counts[:, j] = numel[:, k] / self._norm_width[j]
        return counts

    def _running_tensors(self) -> list[torch.Tensor]:
        return [b for j in self._running for b in (self.targets.norms[j].module.running_mean,
                                                   self.targets.norms[j].module.running_var)]

    def _batches_tracked(self) -> list[int]:
        return [int(view) for view in self._tracked_views]

    def _chunk_step_factors(self, notes: list[_StepNotes]) -> np.ndarray:
        """_running_average_factor(before=True) of each running-average layer in each of these steps, from the counts
        and momenta noted at their `begin`: once per layer when its momentum was the same number in every step (the
        factor is the momentum then, whatever the count)."""
        factors = np.zeros((len(notes), len(self._running_modules)))
        for j, module in enumerate(self._running_modules):
            momenta = {n.momenta[j] for n in notes}
            if len(momenta) == 1 and None not in momenta:
                factors[:, j] = _running_average_factor(module, before=True, tracked=0, momentum=momenta.pop())
            else:
                factors[:, j] = [_running_average_factor(module, before=True, tracked=n.tracked[j],
                                                         momentum=n.momenta[j]) for n in notes]
        return factors

    def _channel_layout(self):
        """Which per-channel tensors exist, and where each lands in the row's `channels` array."""
        tensors, slots = [], []
        for sl, target in zip(self.history.layout.channel_slices(), self.targets.norms, strict=True):
            for name, attr in (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
                               ("running_var", "running_var")):
                tensor = getattr(target.module, attr, None)
                if isinstance(tensor, torch.Tensor) and tensor.numel() == sl.stop - sl.start:
                    tensors.append(tensor.detach())
                    slots.append((sl, CHANNEL_STATS.index(name)))
        return tensors, slots

    # ---- hooks ---------------------------------------------------------------------------------------------
    def attach(self) -> Recorder:
        if not self._handles:
            for k, probe in enumerate(self.targets.probes):
                self._handles.append(probe.module.register_forward_hook(self._forward_hook(k)))
            for j, target in enumerate(self.targets.norms):
                if norm_kind(target.module) == "batch" and self._needs_direct_stats(j):
                    self._handles.append(target.module.register_forward_hook(self._norm_input_hook(j)))
        return self

    def detach(self) -> None:
        """Remove every hook and flush what is pending; safe to call more than once."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.armed = False
        self._outputs[:] = [None] * len(self._outputs)  # a step left unfinished keeps nothing alive
        self._outputs_kept = 0
        try:
            self.flush()
        finally:
            self._in_flight.clear()
            if self._process:
                self._process.close()
            self._process = None

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def __del__(self):
        with contextlib.suppress(Exception):
            for handle in self._handles:
                handle.remove()
        with contextlib.suppress(Exception):
            if self._process:
                self._process.close()

    @contextlib.contextmanager
    def suspended(self):
        """Hooks ignore forward passes inside this block (evaluation, extra measurement passes)."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1

    def _listening(self, module: nn.Module) -> bool:
        return self.armed and not self._suspended and module.training

    def _forward_hook(self, k: int):
        def grad_hook(grad):  # sample at once and keep no reference: autograd can reuse the gradient's memory
            if self._acts is not None or self._ensure_buffers():
                numel, idx = self._last_index[k]
                if numel != grad.numel():
                    idx = self._indices(k, grad.numel())
                torch.take(grad, idx, out=self._grad_rows[self._slot][k])
                self._notes[self._slot].grad_present[k] = True

        prehooks = {}
        def grad_prehook(nr: int):  # the node's gradient for its output nr, when there is one
            prehook = prehooks.get(nr)
            if prehook is None:
                def prehook(grads):
                    if grads[nr] is not None:
                        grad_hook(grads[nr])
                prehooks[nr] = prehook
            return prehook

        def hook(module, inputs, output):
            if not (self.armed and module.training) or self._suspended or not isinstance(output, torch.Tensor):
                return
            if not self._begun:
                self._ensure_begun()
            c = self._slot
            notes = self._notes[c]
            if notes.act_present[k]:  # a module called again in this step (a shared ReLU): keep its first call
                return
            notes.act_present[k] = True
            notes.numel[k] = numel = output.numel()
            if self._acts is not None:  # sample now: the forward may still change this tensor in place
                last, idx = self._last_index[k]
                if last != numel:
                    idx = self._indices(k, numel)
                torch.take(output.detach(), idx, out=self._act_rows[c][k])
            else:  # the first recorded step: the sample size is known once every probe has run
                self._outputs[k] = output.detach().clone()
                self._outputs_kept += 1
            if output.requires_grad:  # its gradient is that of this value, even if it is modified in place later
                node = output.grad_fn
                if node is None:  # a leaf (a module that returns a parameter)
                    output.register_hook(grad_hook)
                else:  # a pre-hook on the node that made it: what a tensor hook does, without its Python bookkeeping
                    node.register_prehook(grad_prehook(output.output_nr))
        return hook

    def _needs_direct_stats(self, j: int) -> bool:
        """True when a BN layer's batch statistics cannot (always) be solved from its running-average update."""
        module = self.targets.norms[j].module
        return j not in self._running or getattr(module, "momentum", 0.1) is None

    def _norm_input_hook(self, j: int):
        def hook(module, inputs, output):
            if not self._listening(module):
                return
            x = inputs[0]
            if j not in self._running or not _running_average_factor(module):  # nothing to solve for: measure x
                with torch.no_grad():
                    dims = [d for d in range(x.dim()) if d != 1]
                    mean = x.mean(dims)
                    var = ((x * x).mean(dims) - mean * mean).clamp_min(0)
                self._direct[self._slot][j] = (mean.float().numpy(), var.float().numpy())
        return hook

    def _indices(self, k: int, numel: int) -> torch.Tensor:
        key = (k, numel)
        idx = self._index_cache.get(key)
        if idx is None:
            size = self._sample_size or min(self.samples, numel)
            g = torch.Generator().manual_seed(self.seed * 7919 + k)
            if numel >= size:
                idx = torch.randperm(numel, generator=g)[:size].sort().values
            else:  # a smaller tensor than at the first step (a short last batch): sample with replacement
                idx = torch.randint(numel, (size,), generator=g)
            self._index_cache[key] = idx
        self._last_index[k] = (numel, idx)
        return idx

    def sample_indices(self, k: int, numel: int) -> torch.Tensor:
        """The flat positions sampled from probe k's output when it has `numel` values (for tests and teaching)."""
        return self._indices(k, numel)

    # ---- step protocol -------------------------------------------------------------------------------------
    def begin(self, step: int) -> bool:
        """Arm the hooks if this step is recorded; return whether it is."""
        self.step = step
        self.armed = step % self.every == 0
        self._begun = False
        if self.armed:
            self._ensure_begun()
        return self.armed

    def _ensure_begun(self) -> None:
        if self._begun:
            return
        self._begun = True
        c = self._slot
        if self._outputs_kept:
            self._outputs[:] = [None] * len(self._outputs)
            self._outputs_kept = 0
        notes = self._notes[c]
        k = len(self.targets.probes)
        notes.act_present, notes.grad_present, notes.numel = [False] * k, [False] * k, [0] * k
        self._direct[c].clear()
        if self._flat_before is not None:
            self._before.copy_flat(c, self._flat_before)
        else:
            self._before.copy(c, self._weights + self._running_tensors())
        if self._running:
            notes.tracked = self._batches_tracked()
            notes.momenta = [getattr(module, "momentum", None) for module in self._running_modules]

    def end(self, ics: np.ndarray | None = None, accuracy_of: tuple[torch.Tensor, torch.Tensor] | None = None,
            **scalars: float | None) -> bool:
        """Store this step (after backward and the optimizer step); return whether it was recorded.

        accuracy_of: (logits (N, classes), labels (N,)) of the step's batch, whose accuracy is the step's `train_acc`
        (the fraction of argmax(logits) == labels, as float32, as `(logits.argmax(1) == labels).float().mean()`
        gives it): computed at the hand-over for the whole chunk in one call, instead of five small torch calls in
        the step. The tensors are kept until then (they must not be changed in place)."""
        if not self.armed or not self._begun:
            self.armed = False
            return False
        self.armed = False
        c = self._slot
        notes = self._notes[c]
        notes.step = self.step
        row = [np.nan] * len(SCALARS)
        for name, value in scalars.items():
            row[_SCALAR_COLUMN[name]] = np.nan if value is None else value
        notes.scalars, notes.ics = row, ics
        notes.accuracy = None if accuracy_of is None else (accuracy_of[0].detach(), accuracy_of[1])
        self._gather(c)
        grads = [p.grad for p in self._params]
        notes.g_missing = missing = [g is None for g in grads]
        if True in missing:
            grads = [w if g is None else g for w, g in zip(self._weights, grads, strict=True)]
        if self._flat_weights is not None and all(g.dtype == torch.float32 for g in grads):
            self._after.copy_flat(c, self._flat_weights + [g.reshape(-1) for g in grads] + self._flat_channels)
        else:
            self._after.copy(c, self._weights + grads + self._channel_tensors)
        if self._running:
            notes.tracked_after = self._batches_tracked()
        if self._outputs_kept:
            self._outputs[:] = [None] * len(self._outputs)
            self._outputs_kept = 0
        self._fill += 1
        self._slot += 1
        self._begun = False
        if self._fill == self.chunk:
            self._hand_over()
        return True

    def _ensure_buffers(self) -> bool:
        """Allocate the chunk's sample buffers once every probe's size is known (after the first forward)."""
        if self._acts is None:
            present = [o.numel() for o in self._outputs if o is not None]
            if not present:
                return False
            self._sample_size = min(self.samples, min(present))
            shape = (2 * self.chunk, len(self._outputs), self._sample_size)
            self._bind_samples(torch.zeros(shape), torch.zeros(shape))
        return True

    def _bind_samples(self, acts: torch.Tensor, grads: torch.Tensor) -> None:
        self._acts, self._grad_samples = acts, grads
        # one view per (slot, probe), made once: indexing a tensor in a hook costs more than the take
        self._act_rows = [list(acts[c].unbind(0)) for c in range(2 * self.chunk)]
        self._grad_rows = [list(grads[c].unbind(0)) for c in range(2 * self.chunk)]

    def _gather(self, c: int) -> None:
        """Sample the outputs the hooks kept (first recorded step only) into chunk slot c."""
        if not self._outputs_kept or not self._ensure_buffers():
            return
        for k, out in enumerate(self._outputs):
            if out is not None:
                torch.take(out, self._indices(k, out.numel()), out=self._acts[c, k])

    # ---- statistics, once per chunk ------------------------------------------------------------------------
    def flush(self) -> None:
        """Compute the statistics of the pending steps and append them to the history; return when they are in."""
        self._hand_over()
        self._collect(len(self._in_flight))

    def _hand_over(self) -> None:
        """Give the current bank's steps to the statistics process and switch to the other bank (once the process
        is done with it), or, without a process, compute them here. Rows reach the history in step order."""
        if self._fill == 0:
            return
        s = self._bank_slice(self._bank, self._fill)
        self._write_notes(s)
        self._chunk_factors[s] = self._solvable_factors(s)
        self._chunk_counts[s] = self._norm_counts(self._numel[s])
        process = self._ready_process()
        if process is not None:
            # the histogram edges travel with a chunk only when the process may not have them: the chunks before
            # were computed here. (With a chunk in flight, the process's edges are the newer ones.)
            state = None if self._state_sent else self._stats.state()
            try:
                process.submit(s, [dict(d) for d in self._direct[s]], state)
            except ProcessGone:  # died since its last chunk: this one is computed here too
                self._lose_process()
                process = None
        if process is None:  # inline, after what the process still holds (step order)
            self._collect(len(self._in_flight))
            self._compute(self._pending_chunk(s))
            self._state_sent = False
            self._fill, self._slot = 0, self._bank * self.chunk
            return
        self._state_sent = True
        self._in_flight.append(s)
        self._bank = 1 - self._bank
        self._fill, self._slot = 0, self._bank * self.chunk
        while any(t.start == self._bank * self.chunk for t in self._in_flight):  # the bank to fill is in use
            self._collect(1)

    def _write_notes(self, s: slice) -> None:
        """Move what `begin` and `end` noted about slots s into the slot arrays (one assignment per array)."""
        notes = self._notes[s]
        self._steps[s] = [n.step for n in notes]
        self._act_present[s] = [n.act_present for n in notes]
        self._grad_present[s] = [n.grad_present for n in notes]
        self._numel[s] = [n.numel for n in notes]
        self._scalars[s] = [n.scalars for n in notes]
        measured = [i for i, n in enumerate(notes) if n.accuracy is not None]
        if measured:
            self._scalars[[s.start + i for i in measured], _SCALAR_COLUMN["train_acc"]] = batch_accuracies(
                [notes[i].accuracy for i in measured])
            for i in measured:
                notes[i].accuracy = None  # the batch's tensors are not kept past the hand-over
        self._ics[s] = np.nan
        for i, n in enumerate(notes):
            if n.ics is not None:
                self._ics[s.start + i] = n.ics
        self._g_missing[s] = [n.g_missing for n in notes]
        if self._running:
            self._tracked[s] = [n.tracked for n in notes]
            self._tracked_after[s] = [n.tracked_after for n in notes]
            self._factors[s] = self._chunk_step_factors(notes)

    def _collect(self, count: int) -> None:
        """Append the rows of the `count` oldest chunks in flight (waiting for them)."""
        for _ in range(count):
            s = self._in_flight[0]
            try:
                state = self._process.result()
            except ProcessGone:
                self._lose_process()
                return
            self._in_flight.popleft()
            if state is not None:
                self._stats.set_state(state)
            self._compute({"rows": {name: rows[s] for name, rows in self._rows_out.items()}})

    def _lose_process(self) -> None:
        """The process died (killed, out of memory): the chunks it held are still in their slots, so they are
        computed here, in order, and so is everything after."""
        self._process.close()
        self._process = False
        while self._in_flight:
            self._compute(self._pending_chunk(self._in_flight.popleft()))

    def _ready_process(self) -> StatsProcess | None:
        """The statistics process, if it should be used for this chunk and is ready; starts it if need be. Used
        only while a core is spare (`spare_core`); while it starts, and when it cannot, chunks are computed inline.
        It is started once PROCESS_AFTER_CHUNKS chunks' worth of steps are recorded, not before: a live job flushes
        its first step at once so that a page draws it, and starting the process there (a fork and exec of the
        server, then its imports on the spare core) put ~70 ms and a second busy core between a click on Start and
        the first chart (measured with scripts/measure_live.py)."""
        if not (self.background and spare_core()):
            return None
        if self._process is None:
            if self.history.records + self._fill < PROCESS_AFTER_CHUNKS * self.chunk:
                return None  # not yet (a job's first flush, say): computed inline
            self._process = self._start_process()
        try:
            return self._process if self._process and self._process.poll_ready() else None
        except ProcessGone:  # died while starting (nothing in flight yet)
            self._lose_process()
            return None

    def _start_process(self) -> StatsProcess | bool:
        """Move every array of the chunk slots into shared memory, add the rows' arrays, and start the process
        (False when the platform cannot, or nothing was sampled yet: the recorder stays inline)."""
        if self._acts is None or not shared_support():
            return False
        try:
            return self._share_and_start()
        except OSError:  # no memory files or processes left: the numbers are the same inline
            return False

    def _share_and_start(self) -> StatsProcess:
        shared: dict[str, tuple[np.ndarray, int]] = {}

        def share(name: str, array: np.ndarray) -> np.ndarray:  # a copy in shared memory
            copy, fd = shared_empty(array.shape, array.dtype)
            shared[name] = (copy, fd)
            copy[...] = array
            return copy

        try:
            self._bind_samples(torch.from_numpy(share("acts", self._acts.numpy())),
                               torch.from_numpy(share("grads", self._grad_samples.numpy())))
            self._before.bind(torch.from_numpy(share("before", self._before.array)))
            self._after.bind(torch.from_numpy(share("after", self._after.array)))
            for key, attribute in _SLOT_ARRAYS.items():
                setattr(self, attribute, share(key, getattr(self, attribute)))
            m = 2 * self.chunk
            self._rows_out = {name: share(ROWS + name, np.empty((m, *shape), dtype)) for name, (shape, dtype) in
                              self.history.layout.row_shapes().items() if name != "record"}
            return StatsProcess(self._stats, shared)
        finally:
            for _, fd in shared.values():
                os.close(fd)  # the process has its own; the mappings keep the memory

    def _bank_slice(self, bank: int, n: int) -> slice:
        return slice(bank * self.chunk, bank * self.chunk + n)

    def _pending_chunk(self, s: slice) -> dict:
        """Views of slots s, by name (what `ChunkStats.rows` reads)."""
        arrays = {"acts": None if self._acts is None else self._acts.numpy(),
                  "grads": None if self._grad_samples is None else self._grad_samples.numpy(),
                  "before": self._before.array, "after": self._after.array}
        return {**chunk_views(arrays, s, int(self._w_offsets[-1])),
                **{key: getattr(self, attribute)[s] for key, attribute in _SLOT_ARRAYS.items()},
                "direct": self._direct[s]}

    def _compute(self, ch: dict) -> None:
        """Append the chunk's rows to the history: computed by the process (ch["rows"]) or here."""
        rows = ch["rows"] if "rows" in ch else self._stats.rows(ch)
        self.history.extend(rows, len(rows["step"]))


def _count_view(module: nn.Module) -> np.ndarray:
    """A 0-d numpy view of the module's num_batches_tracked buffer (-1 when it keeps no count)."""
    count = getattr(module, "num_batches_tracked", None)
    return np.array(-1) if count is None else count.numpy()


_MODULE_MOMENTUM = object()  # _running_average_factor: read the module's momentum now


def _running_average_factor(module: nn.Module, before: bool = False, tracked: int | None = None,
                            momentum=_MODULE_MOMENTUM) -> float:
    """The weight of this forward pass's batch statistics in the running-average update (0 if none).

    PyTorch: momentum m gives running = (1 - m) running + m batch; momentum None is the cumulative average,
    weight 1 / num_batches_tracked (counted after the increment). Solving for the batch statistic divides by the
    weight, so below 1e-3 (float32 precision) the recorder measures the input directly instead. tracked: the
    module's num_batches_tracked when the caller has read it already (`Recorder._batches_tracked`); momentum: its
    momentum, likewise (read at the step's start).
    """
    if getattr(module, "running_mean", None) is None or not getattr(module, "track_running_stats", True):
        return 0.0
    if momentum is _MODULE_MOMENTUM:
        momentum = getattr(module, "momentum", None)
    if momentum is None:
        count = int(module.num_batches_tracked) if tracked is None else tracked
        factor = 1.0 / max(count + (1 if before else 0), 1)
    else:
        factor = float(momentum)
    return factor if factor >= 1e-3 else 0.0


class _StepNotes:
    """What `begin` and `end` note about one recorded step, until the hand-over writes it into the slot arrays."""

    __slots__ = ("step", "scalars", "ics", "accuracy", "g_missing", "tracked", "momenta", "tracked_after",
                 "act_present", "grad_present", "numel")

    def __init__(self):
        self.step, self.scalars, self.ics, self.accuracy, self.g_missing = 0, None, None, None, None
        self.tracked = self.momenta = self.tracked_after = None
        self.act_present = self.grad_present = self.numel = None  # per probe, set at `begin`


def batch_accuracies(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """float((logits.argmax(1) == labels).float().mean()) of each (logits, labels) pair, in one call when they all
    have the same shapes (the same numbers: a mean of 0s and 1s in float32 is the exact count divided by N, rounded
    once, whichever way it is reduced)."""
    shapes = {(tuple(logits.shape), tuple(labels.shape)) for logits, labels in pairs}
    if len(shapes) == 1 and len(pairs) > 1:
        logits = torch.stack([logits for logits, _ in pairs])
        labels = torch.stack([labels for _, labels in pairs])
        return (logits.argmax(2) == labels).float().mean(1).tolist()
    return [float((logits.argmax(1) == labels).float().mean()) for logits, labels in pairs]


__all__ = ["Recorder", "Targets", "NormTarget", "SlotBuffer", "batch_accuracies"]
