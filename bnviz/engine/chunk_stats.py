"""The statistics of a chunk of recorded steps (numpy only), computed inline or in the recorder's statistics process.

`ChunkStats.rows` turns what the recorder's hooks and copies gathered for a few steps (the chunk: sampled stage
outputs and gradients, weights before and after, gradients, per-channel tensors) into history rows; the maths is
bnviz.engine.stats, and bnviz.engine.recorder's docstring says what each number is.

`StatsProcess` runs the same code in a child process. Numpy's calls on arrays this small are mostly Python
overhead holding the GIL, so a thread cannot take them off the training thread; a process can. Every array of the
chunk slots (samples, copies, per-step bookkeeping) and the rows it computes live in shared memory (`shared_empty`:
anonymous memory files handed to the child over its pipe), so a hand-over sends only the slot range, the batch
statistics measured directly in a hook (rare) and, after chunks computed inline, the histogram edges; the child
answers when the rows are written, with its edges if it fixed any. The child is started with `spawn` and told not
to import the parent's `__main__` (under `streamlit run` that is the app); it imports numpy and this module (a
fraction of a second, 33 MB resident), then says it is ready; until then, and whenever it is not used, the
recorder computes inline. It exits when its pipe closes.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import traceback
from multiprocessing.reduction import recv_handle, send_handle
from typing import TYPE_CHECKING

import numpy as np

from . import stats as S
from .no_main import skip_main_for

if TYPE_CHECKING:
    from .history import Layout

PROCESS_NAME = "bnviz-stats"
ROWS = "rows/"  # shared array "rows/<column>": the process writes each slot's row of that history column there
SLOT_KEYS = ("act_present", "grad_present", "numel", "steps", "scalars", "ics", "g_missing", "factors", "counts")
_CONTEXT: list = []


class ChunkStats:
    """Rows of statistics from a chunk's arrays, and the histogram edges fixed at the first step that saw each
    probe (the recorder's copy shares its edges array with the history)."""

    def __init__(self, layout: Layout, hist_edges: np.ndarray, w_offsets: np.ndarray, channel_offsets: np.ndarray,
                 channel_slots: list, running: list[int]):
        # the parent's side imports the history's columns; what the process unpickles is plain data (it imports
        # numpy and bnviz.engine.stats only, not bnviz.engine.history and its pandas: 33 MB resident, not 110)
        from . import history as H

        self.hist_edges = hist_edges
        self.row_shapes = {name: shape for name, shape in layout.row_shapes().items() if name not in ("step", "record")}
        self.act_kinds, self.bins, self.channel_slices = list(layout.act_kinds), layout.bins, layout.channel_slices()
        self.columns = {"act": list(H.ACT_STATS), "grad": list(H.GRAD_STATS), "weight": list(H.WEIGHT_STATS),
                        "channel": list(H.CHANNEL_STATS)}
        self.grad_octaves = (H.GRAD_LOWEST_OCTAVE, H.GRAD_BINS)
        self.w_offsets, self.channel_offsets = w_offsets, channel_offsets
        self.channel_slots, self.running = channel_slots, running
        self.has_edges = np.zeros(len(layout.probes), bool)
        self.edges_ready = False
        self._buffer: np.ndarray | None = None  # see _scratch

    def _scratch(self, shape: tuple[int, int]) -> np.ndarray:
        """A float64 array of this shape, from a buffer kept for the next chunks (as many rows as the most steps)."""
        if self._buffer is None or len(self._buffer) < shape[0] or self._buffer.shape[1] != shape[1]:
            self._buffer = np.empty(shape)
        return self._buffer[:shape[0]]

    def __getstate__(self) -> dict:  # the scratch buffer does not travel to the process
        return {**self.__dict__, "_buffer": None}

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.hist_edges.copy(), self.has_edges.copy()

    def set_state(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        edges, has_edges = state
        self.hist_edges[:] = edges  # in place: in the recorder, this array is the history's
        self.has_edges[:] = has_edges
        self.edges_ready = bool(has_edges.all())

    def rows(self, ch: dict) -> dict[str, np.ndarray]:
        """One array per history column, a row per step of the chunk (see `chunk_views` for what ch holds)."""
        with np.errstate(all="ignore"):  # a diverging step has inf/NaN values: they become NaN statistics
            n = len(ch["steps"])
            rows = {name: np.full((n, *shape), np.nan, dtype) for name, (shape, dtype) in
                    self.row_shapes.items()}
            if ch["acts"] is not None:
                self._activation_stats(ch, rows)
                self._gradient_stats(ch, rows)
            self._weight_stats(ch, rows)
            self._channel_stats(ch, rows)
            rows["scalars"][:] = ch["scalars"]
            rows["ics"][:] = ch["ics"]
            rows["step"] = ch["steps"].copy()
        return rows

    def _activation_stats(self, ch: dict, rows: dict) -> None:
        a = ch["acts"]  # (steps, probes, samples)
        present = ch["act_present"]
        if not self.edges_ready:  # each probe's edges come from the first recorded step that saw it
            for k in np.flatnonzero(~self.has_edges & present.any(axis=0)):
                first = np.flatnonzero(present[:, k])[0]
                self.hist_edges[k] = S.histogram_edges(a[first, k], self.act_kinds[k], self.bins)
                self.has_edges[k] = True
            self.edges_ready = bool(self.has_edges.all())
        out = rows["act_stats"]
        col = self.columns["act"].index
        s = np.sort(a, axis=-1)
        out[..., col("mean")], out[..., col("std")] = S.mean_std(a)
        out[..., col("min")], out[..., col("max")] = s[..., 0], s[..., -1]
        for q, name in zip(S.PERCENTILES, ("p15", "p50", "p85"), strict=True):
            out[..., col(name)] = S.sorted_percentile(s, q)
        for kind in ("relu", "tanh", "sigmoid"):
            ks = [k for k, kk in enumerate(self.act_kinds) if kk == kind]
            if ks:
                out[:, ks, col("frac_dead" if kind == "relu" else "frac_saturated")] = S.saturation(a[:, ks], kind)
        hist, below, above = S.fixed_histograms(a, self.hist_edges)
        rows["act_hist"][:] = hist
        out[..., col("frac_below")], out[..., col("frac_above")] = below, above
        out[~present] = np.nan
        rows["act_hist"][~present] = np.nan

    def _gradient_stats(self, ch: dict, rows: dict) -> None:
        g = ch["grads"]
        present = ch["grad_present"]
        out = rows["grad_stats"]
        col = self.columns["grad"].index
        g64 = g.astype(np.float64)
        mean_square = (g64 * g64).mean(axis=-1)
        out[..., col("grad_norm")] = np.sqrt(mean_square * ch["numel"])
        out[..., col("grad_std")] = S.mean_std(g)[1]
        out[..., col("grad_frac_zero")] = (g == 0).mean(axis=-1)
        rows["grad_hist"][:] = S.log2_histograms(g, *self.grad_octaves)
        out[~present] = np.nan
        rows["grad_hist"][~present] = np.nan

    def _weight_stats(self, ch: dict, rows: dict) -> None:
        if len(self.w_offsets) < 2:  # no weights
            return
        offsets = self.w_offsets
        w, g = ch["w_before"], ch["g_now"]  # the weights the step's forward pass used, and their gradient
        # each in float64 in one scratch array kept from chunk to chunk: a fresh one per call costs more in page
        # faults than the arithmetic (the numbers are those of w.astype(np.float64), w_now - w in float64, ...)
        v = self._scratch(w.shape)
        np.copyto(v, w)
        w_norm, w_std = S.segment_norm_std(v, offsets, overwrite=True)
        np.copyto(v, g)
        g_norm, g_std = S.segment_norm_std(v, offsets, overwrite=True)
        np.copyto(v, ch["w_now"])
        v -= w  # the update the optimizer made
        u_norm, u_std = S.segment_norm_std(v, offsets, overwrite=True)
        g_norm[ch["g_missing"]] = np.nan
        g_std[ch["g_missing"]] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {"w_norm": w_norm, "w_std": w_std, "grad_norm": g_norm, "grad_std": g_std,
                      "update_std": u_std, "grad_data": g_std / w_std, "update_data": u_std / w_std}
        for name, v in values.items():
            rows["weight_stats"][..., self.columns["weight"].index(name)] = v

    def _channel_stats(self, ch: dict, rows: dict) -> None:
        out = rows["channels"]
        values, offsets = ch["channels"], self.channel_offsets
        for (sl, column), a, b in zip(self.channel_slots, offsets[:-1], offsets[1:], strict=True):
            out[:, sl, column] = values[:, a:b]
        slices = self.channel_slices
        before = ch["running_before"].astype(np.float64)
        offset = 0
        col = self.columns["channel"].index
        for r, j in enumerate(self.running):
            sl = slices[j]
            c = sl.stop - sl.start
            old_mean, old_var = before[:, offset:offset + c], before[:, offset + c:offset + 2 * c]
            offset += 2 * c
            factor = ch["factors"][:, r:r + 1]
            m = ch["counts"][:, j:j + 1]
            ok = ((factor > 0) & (m > 1))[:, 0]
            mean, var = S.solve_batch_stats(out[:, sl, col("running_mean")].astype(np.float64),
                                            out[:, sl, col("running_var")].astype(np.float64),
                                            old_mean, old_var, np.where(factor > 0, factor, 1.0),
                                            np.where(m > 1, m, 2.0))
            out[ok, sl, col("batch_mean")] = mean[ok]
            out[ok, sl, col("batch_var")] = var[ok]
        for i, direct in enumerate(ch["direct"]):
            for j, (mean, var) in direct.items():
                out[i, slices[j], col("batch_mean")] = mean
                out[i, slices[j], col("batch_var")] = var



def chunk_views(arrays: dict[str, np.ndarray | None], s: slice, weights: int) -> dict:
    """The chunk's large arrays for slots s: samples (steps, probes, samples) and the `begin`/`end` copies, split
    into their parts (`weights` = values in all weights)."""
    acts, grads, before, after = (arrays[name] for name in ("acts", "grads", "before", "after"))
    before, after = before[s], after[s]
    return {"acts": None if acts is None else acts[s], "grads": None if grads is None else grads[s],
            "w_now": after[:, :weights], "g_now": after[:, weights:2 * weights], "w_before": before[:, :weights],
            "channels": after[:, 2 * weights:], "running_before": before[:, weights:]}


# ---- the statistics process -------------------------------------------------------------------------------------


def shared_support() -> bool:
    """Anonymous memory files (Linux) and handing them to a child over a pipe (Unix)."""
    return hasattr(os, "memfd_create") and hasattr(mmap, "MAP_SHARED")


def shared_empty(shape: tuple[int, ...], dtype=np.float32) -> tuple[np.ndarray, int]:
    """An uninitialized array in a new anonymous memory file, and the file's descriptor (for `StatsProcess`)."""
    size = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
    fd = os.memfd_create("bnviz-stats", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return _map(fd, shape, dtype), fd
    except OSError:
        os.close(fd)
        raise


def _map(fd: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    size = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
    buffer = mmap.mmap(fd, size)  # keeps its own duplicate of fd; the array keeps the mapping alive
    count = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(buffer, dtype, count).reshape(shape)


class ProcessGone(RuntimeError):
    """The statistics process died (killed, out of memory): what it held can be computed inline."""


class StatsProcess:
    """The parent's handle on one recorder's statistics process: `submit` a chunk, then `result`s in order."""

    def __init__(self, stats: ChunkStats, shared: dict[str, tuple[np.ndarray, int] | None]):
        context = _spawn_context()
        self.conn, there = context.Pipe()
        specs = {name: None if v is None else (v[0].shape, v[0].dtype.str) for name, v in shared.items()}
        self.process = context.Process(target=_serve, args=(there, stats, specs), daemon=True, name=PROCESS_NAME)
        self.process.start()
        there.close()
        for value in shared.values():
            if value is not None:
                send_handle(self.conn, value[1], self.process.pid)
        self.ready = False

    def poll_ready(self) -> bool:
        """True once the child has mapped the arrays and imported what it needs (never blocks)."""
        if not self.ready and self.conn.poll():
            try:
                self._check(self.conn.recv())
            except (EOFError, OSError):
                raise self._gone() from None
            self.ready = True
        return self.ready

    def submit(self, s: slice, direct: list[dict], state) -> None:
        """Compute the rows of slots s (written to the shared "rows/..." arrays); `direct`: the slots' directly
        measured batch statistics; `state`: the histogram edges to use (None: the process's own)."""
        try:
            self.conn.send((s, direct, state))
        except OSError:  # a broken pipe: the child is gone
            raise self._gone() from None

    def result(self):
        """Wait for the oldest submitted chunk; return the histogram edges state after it when it changed them
        (else None); re-raise the child's error."""
        try:
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        return self._check(reply)[0]

    def _gone(self) -> ProcessGone:
        return ProcessGone(f"the statistics process exited (code {self.process.exitcode})")

    @staticmethod
    def _check(reply):
        kind, *payload = reply
        if kind == "error":
            raise RuntimeError(f"in the statistics process:\n{payload[0]}")
        return payload

    def close(self) -> None:
        """Stop the child: it finishes the chunk it is on, reads the end of its pipe and exits."""
        try:
            if self.ready:
                with contextlib.suppress(OSError):  # it may be gone already
                    self.conn.send(None)
            self.conn.close()
            self.process.join(1.0 if self.ready else 0.0)
        finally:
            if self.process.is_alive():  # still importing, or stuck: it holds nothing of ours that matters
                self.process.terminate()
                self.process.join(1.0)


def _spawn_context():
    if not _CONTEXT:
        _CONTEXT.append(multiprocessing.get_context("spawn"))
        skip_main_for(PROCESS_NAME)
    return _CONTEXT[0]


def batch_policy() -> None:
    """Put this process under Linux's SCHED_BATCH policy: the same share of the CPU as any other process, but never
    preempting a running one when it wakes up. Without it, each chunk handed over woke the child onto the training
    thread's core (a pipe's wake-up tells the scheduler that the writer is about to sleep), which then waited for the
    child's ~2 ms of statistics: measured with the process forced on at load ~5, the hand-over took 0.8-2.5 ms per
    chunk, and 0.14-0.33 ms with this policy. (The recorder uses the process only while a core is spare; on a quiet
    machine the bench's ratio was the same with and without it.) Elsewhere (no such policy, or not allowed)
    nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _serve(conn, stats: ChunkStats, specs: dict) -> None:
    """The child: map the shared arrays, say ready, then compute each chunk it is sent until the pipe closes."""
    batch_policy()
    try:
        arrays = {}
        for name, spec in specs.items():
            if spec is None:
                arrays[name] = None
            else:
                fd = recv_handle(conn)
                arrays[name] = _map(fd, spec[0], np.dtype(spec[1]))
                os.close(fd)
        weights = int(stats.w_offsets[-1])
        conn.send(("ready",))
        while True:
            message = conn.recv()
            if message is None:
                return
            s, direct, state = message
            try:
                if state is not None:
                    stats.set_state(state)
                edges_were_ready = stats.edges_ready
                rows = stats.rows({**chunk_views(arrays, s, weights), **{key: arrays[key][s] for key in SLOT_KEYS},
                                   "direct": direct})
                for name, values in rows.items():
                    arrays[ROWS + name][s] = values
                conn.send(("rows", None if edges_were_ready else stats.state()))
            except Exception:  # noqa: BLE001 - reported to the recorder, which raises it at its next hand-over or flush
                conn.send(("error", traceback.format_exc()))
    except (EOFError, OSError):  # the parent closed the pipe (or exited)
        return
