"""A bounded, columnar store of per-step statistics, with safe save/load and tidy DataFrames.

Memory stays flat for runs of any length: the store has a fixed number of rows (chosen from a byte budget). When
it is full it keeps every second row and from then on keeps only every second record ("decimation"); the first
record (step 0) is always kept and the latest record is always present (as a provisional last row that the next
record replaces unless it falls on the kept grid).

Files: `run.json` (layout and metadata), `arrays.npz` (numbers), `histograms.npz` (histograms and their bin edges),
plus the tidy exports `scalars.csv` and `layers.csv`. NPZ files are read with `allow_pickle=False`; nothing is ever
unpickled.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RunFileError
from . import files, npz_reader
from .limits import MAX_JSON_DEPTH, MAX_LOAD_BYTES, MAX_NAME_CHARS, MAX_RUN_FILE_BYTES

FORMAT_VERSION = 1
SCALARS = ("loss", "train_acc", "lr", "test_acc", "test_acc_train_mode")
ACT_STATS = ("mean", "std", "p15", "p50", "p85", "min", "max",
             "frac_saturated", "frac_dead", "frac_below", "frac_above")
GRAD_STATS = ("grad_norm", "grad_std", "grad_frac_zero")
WEIGHT_STATS = ("w_norm", "w_std", "grad_norm", "grad_std", "update_std", "grad_data", "update_data")
CHANNEL_STATS = ("gamma", "beta", "batch_mean", "batch_var", "running_mean", "running_var")
ICS_STATS = ("ics_l2", "ics_cos")
# |gradient| histogram in octaves, 2**-34 (~6e-11) to 2**6 (64), shared by all steps and layers; edges are stored
# as log10 values (GRAD_LOWEST_OCTAVE + i) * log10(2)
GRAD_LOWEST_OCTAVE = -34
GRAD_BINS = 40
MAX_FILE_BYTES = MAX_RUN_FILE_BYTES  # the limits live in bnviz.engine.limits; these names are kept for importers
META_MAPPINGS = ("config", "summary", "watch", "dataset")
UNMARKED_NAME = re.compile(r"[^<>&\x00-\x1f\x7f]*")
_TEXT, _WHOLE, _NUMBER, _LIST = (str,), (int,), (int, float), (list,)
# the types of the metadata pages, charts and the report read (RunConfig's fields, the summary, bnviz.watch's facts)
META_TYPES = {
    "config": {"dataset": _TEXT, "model": _TEXT, "activation": _TEXT, "norm": _TEXT, "placement": _TEXT,
               "optimizer": _TEXT, "bn_impl": _TEXT, "init": _TEXT, "depth": _WHOLE, "width": _WHOLE,
               "groups": _WHOLE, "batch_size": _WHOLE, "steps": _WHOLE, "eval_every": _WHOLE, "seed": _WHOLE,
               "record_every": _WHOLE, "ics_every": _WHOLE, "threads": _WHOLE, "hist_bins": _WHOLE,
               "samples": _WHOLE, "eps": _NUMBER, "bn_momentum": _NUMBER, "lr": _NUMBER, "sgd_momentum": _NUMBER,
               "init_scale": _NUMBER, "difficulty": _NUMBER, "extra": (dict,),
               "ghost_batch": _WHOLE, "weight_decay": _NUMBER, "dropout": _NUMBER},
    "summary": {"status": _TEXT, "steps": _WHOLE, "final_test_acc": _NUMBER},
    "watch": {"model": _TEXT, "modules": _LIST, "act_input": _LIST, "pre": _LIST},
    "dataset": {"file": _TEXT, "name": _TEXT, "classes": _LIST},
}


@dataclass
class Layout:
    """What one row holds: which layers and stages, which weights, which norm channels."""

    layers: list[str]  # layer names in depth order ("block1", ... or module paths for watched models)
    probes: list[tuple[int, str]]  # (layer index, stage) for each recorded tensor
    act_kinds: list[str]  # activation kind per probe ("relu", "tanh", "sigmoid" or "")
    weights: list[str]  # weight parameter names (conv/linear weights, head included)
    norm_layers: list[tuple[int, str, int]] = field(default_factory=list)  # (layer index, kind, channels)
    bins: int = 64

    @property
    def n_channels(self) -> int:
        return sum(c for _, _, c in self.norm_layers)

    def channel_slices(self) -> list[slice]:
        out, start = [], 0
        for _, _, count in self.norm_layers:
            out.append(slice(start, start + count))
            start += count
        return out

    def row_shapes(self) -> dict[str, tuple[tuple[int, ...], type]]:
        k, w, c, n_layers = len(self.probes), len(self.weights), self.n_channels, len(self.layers)
        return {
            "step": ((), np.int64),
            "record": ((), np.int64),  # index of the record among all offered (decimation bookkeeping)
            "scalars": ((len(SCALARS),), np.float64),
            "act_stats": ((k, len(ACT_STATS)), np.float32),
            "act_hist": ((k, self.bins), np.float32),
            "grad_stats": ((k, len(GRAD_STATS)), np.float32),
            "grad_hist": ((k, GRAD_BINS), np.float32),
            "weight_stats": ((w, len(WEIGHT_STATS)), np.float32),
            "channels": ((c, len(CHANNEL_STATS)), np.float32),
            "ics": ((n_layers, len(ICS_STATS)), np.float32),
        }

    def row_bytes(self) -> int:
        return sum(int(np.prod(s, dtype=np.int64)) * np.dtype(t).itemsize for s, t in self.row_shapes().values())


def capacity_for(layout: Layout, budget_bytes: int = 32 * 1024 * 1024, lo: int = 256, hi: int = 4096) -> int:
    """How many rows fit the byte budget (clamped), rounded down to an even number."""
    rows = max(lo, min(hi, budget_bytes // max(layout.row_bytes(), 1)))
    return rows - rows % 2


class History:
    """Columnar arrays of shape (capacity, ...) plus the fixed histogram edges; see the module docstring."""

    def __init__(self, layout: Layout, capacity: int | None = None):
        self.layout = layout
        self.capacity = capacity or capacity_for(layout)
        if self.capacity < 4 or self.capacity % 2:
            raise ValueError(f"capacity={self.capacity} must be an even number >= 4")
        # empty, not filled: only rows < n are ever read, and each is written whole by `_append`. The pages of rows
        # not reached yet are never touched: a new run's history costs no time (it was ~15 ms for the default CNN's
        # 4096 rows, on the way from a click to the first chart) and only the memory its rows use.
        self.data = {name: np.empty((self.capacity, *shape), dtype)
                     for name, (shape, dtype) in layout.row_shapes().items()}
        self.hist_edges = np.zeros((len(layout.probes), layout.bins + 1), np.float32)  # set at the first record
        self.grad_edges = (np.arange(GRAD_BINS + 1) + GRAD_LOWEST_OCTAVE) * np.float32(np.log10(2.0))
        self.n = 0  # rows in use
        self.stride = 1  # keep records whose index is a multiple of this
        self.records = 0  # records offered so far
        self._last_is_provisional = False
        self.meta: dict = {}  # config, summary, anything JSON-able the owner wants saved
        self.lock = threading.Lock()  # held briefly by append and copy: a page can copy while training appends

    # ---- writing -------------------------------------------------------------------------------------------
    def new_row(self) -> dict[str, np.ndarray]:
        """A row of NaNs with the right shapes, for the caller to fill and hand to `append`."""
        return {name: np.full(shape, np.nan if dtype != np.int64 else -1, dtype)
                for name, (shape, dtype) in self.layout.row_shapes().items()}

    def append(self, row: dict[str, np.ndarray]) -> None:
        """Store one record (a dict of arrays shaped like `new_row()`), decimating when full."""
        with self.lock:
            self._append(row)

    def extend(self, rows: dict[str, np.ndarray], count: int) -> None:
        """Store `count` records at once: rows[name][i] is record i's value of that column (what `append` stores
        one by one, in order, with the same result). While every record is kept and they fit, each column is
        written with one slice assignment (a recorder's chunk of steps: one call instead of `count`)."""
        with self.lock:
            if self.stride == 1 and not self._last_is_provisional and self.n + count <= self.capacity:
                n = self.n
                for name, values in rows.items():
                    self.data[name][n:n + count] = values[:count]
                for name in self.data.keys() - rows.keys() - {"record"}:  # unknown: NaN (-1 for integers)
                    self.data[name][n:n + count] = -1 if self.data[name].dtype == np.int64 else np.nan
                self.data["record"][n:n + count] = np.arange(self.records, self.records + count)
                self.records += count
                self.n += count
                return
            for i in range(count):
                self._append({name: values[i] for name, values in rows.items()})

    def _append(self, row: dict[str, np.ndarray]) -> None:
        index = self.records
        self.records += 1
        keep = index % self.stride == 0
        if self._last_is_provisional:
            slot = self.n - 1
        else:
            if self.n == self.capacity:
                self._compact()
                keep = index % self.stride == 0
                slot = self.n - 1 if self._last_is_provisional else self.n
            else:
                slot = self.n
        for name, values in row.items():
            self.data[name][slot] = values
        for name in self.data.keys() - row.keys():  # what the row does not give is unknown: NaN (-1 for integers)
            self.data[name][slot] = -1 if self.data[name].dtype == np.int64 else np.nan
        self.data["record"][slot] = index
        self.n = max(self.n, slot + 1)
        self._last_is_provisional = not keep

    def _compact(self) -> None:
        """Keep rows on the doubled grid (row 0 always); the latest row stays as a provisional last row."""
        grid = self.stride * 2
        record_index = self.data["record"][: self.n]
        kept = np.flatnonzero(record_index % grid == 0)
        last = self.n - 1
        latest_dropped = kept[-1] != last
        if latest_dropped:
            kept = np.append(kept, last)
        new = {}
        for name, arr in self.data.items():  # new arrays: a snapshot taken before keeps its own rows intact
            fresh = np.empty_like(arr)
            fresh[: len(kept)] = arr[kept]
            new[name] = fresh
        self.data = new
        self.n = len(kept)
        self.stride = grid
        self._last_is_provisional = bool(latest_dropped)

    def set_scalars(self, step: int, **values: float) -> None:
        """Write scalars (SCALARS names) into the row of `step`, if it is kept: a value computed after its row was
        appended (the first step's test accuracy, `Run.deferred_eval`). Snapshots that share the row see it too."""
        with self.lock:
            rows = np.flatnonzero(self.data["step"][: self.n] == step)
            if len(rows):
                for name, value in values.items():
                    self.data["scalars"][rows[-1], SCALARS.index(name)] = value

    # ---- reading -------------------------------------------------------------------------------------------
    def copy(self) -> History:
        """An independent copy holding only the rows in use (what a page draws from)."""
        with self.lock:
            other = self._header()
            other.data = {k: v[: self.n].copy() for k, v in self.data.items()}
        return other

    def snapshot(self) -> History:
        """Like `copy`, read-only, and cheap: what a page draws from twice a second while the run trains.

        Its arrays are read-only views of this history's rows when those can no longer change: appending writes
        only past them, and decimating (`_compact`) moves the rows to new arrays. Only a provisional last row is
        rewritten in place by the next append; then the rows are copied, but only that row while holding the lock
        the training thread appends under: the final rows before it are copied after it is released. A snapshot of
        a long run costs microseconds of the training thread's time instead of a copy of megabytes. (One value is
        written into a final row later: a job's step-0 test accuracies, by `set_scalars`, a refresh after the row.)"""
        with self.lock:
            other, data, n = self._header(), self.data, self.n
            last = {k: v[n - 1].copy() for k, v in data.items()} if self._last_is_provisional else None
        if last is None:
            other.data = {k: _read_only(v[:n]) for k, v in data.items()}
        else:
            other.data = {k: _read_only(_with_last_row(v[: n - 1], last[k])) for k, v in data.items()}
        return other

    def _header(self) -> History:
        """A new History with this one's layout, edges, counters and meta, and no rows yet (the caller sets
        `data`); called under the lock."""
        other = History.__new__(History)
        other.lock = threading.Lock()
        other.layout = self.layout
        other.capacity = self.capacity
        other.hist_edges = self.hist_edges.copy()
        other.grad_edges = self.grad_edges.copy()
        other.n, other.stride, other.records = self.n, self.stride, self.records
        other._last_is_provisional = self._last_is_provisional
        other.meta = json.loads(json.dumps(self.meta))
        return other

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> np.ndarray:
        return self.data[name][: self.n]

    @property
    def steps(self) -> np.ndarray:
        return self.data["step"][: self.n]

    def scalar(self, name: str) -> np.ndarray:
        return self.data["scalars"][: self.n, SCALARS.index(name)]

    def act(self, stat: str) -> np.ndarray:
        """(rows, probes) array of one activation statistic."""
        return self.data["act_stats"][: self.n, :, ACT_STATS.index(stat)]

    def probe_index(self, layer: int, stage: str) -> int | None:
        """Index of the probe for layer (0-based) and stage, or None if that stage is not recorded."""
        try:
            return self.layout.probes.index((layer, stage))
        except ValueError:
            return None

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.data.values()) + self.hist_edges.nbytes + self.grad_edges.nbytes

    # ---- tidy frames ---------------------------------------------------------------------------------------
    def scalars_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.data["scalars"][: self.n], columns=list(SCALARS))
        frame.insert(0, "step", self.steps)
        return frame

    def layers_frame(self) -> pd.DataFrame:
        """One row per step x probe: step, layer (1-based), layer_name, stage, activation and gradient stats."""
        n, k = self.n, len(self.layout.probes)
        layer_idx = np.array([p[0] for p in self.layout.probes])
        stages = np.array([p[1] for p in self.layout.probes], dtype=object)
        frame = pd.DataFrame({
            "step": np.repeat(self.steps, k),
            "layer": np.tile(layer_idx + 1, n),
            "layer_name": np.tile(np.array(self.layout.layers, dtype=object)[layer_idx], n),
            "stage": np.tile(stages, n),
        })
        for i, stat in enumerate(ACT_STATS):
            frame[stat] = self.data["act_stats"][:n, :, i].reshape(-1)
        for i, stat in enumerate(GRAD_STATS):
            frame[stat] = self.data["grad_stats"][:n, :, i].reshape(-1)
        return frame

    def weights_frame(self) -> pd.DataFrame:
        n, w = self.n, len(self.layout.weights)
        frame = pd.DataFrame({"step": np.repeat(self.steps, w),
                              "weight": np.tile(np.array(self.layout.weights, dtype=object), n)})
        for i, stat in enumerate(WEIGHT_STATS):
            frame[stat] = self.data["weight_stats"][:n, :, i].reshape(-1)
        return frame

    def channels_frame(self) -> pd.DataFrame:
        """One row per step x norm layer x channel: gamma, beta, batch and running mean/var."""
        n = self.n
        layer_of, channel_of = [], []
        for (layer, _, count) in self.layout.norm_layers:
            layer_of += [layer + 1] * count
            channel_of += list(range(count))
        c = len(layer_of)
        frame = pd.DataFrame({"step": np.repeat(self.steps, c), "layer": np.tile(layer_of, n),
                              "channel": np.tile(channel_of, n)})
        for i, stat in enumerate(CHANNEL_STATS):
            frame[stat] = self.data["channels"][:n, :, i].reshape(-1)
        return frame

    # ---- files ---------------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the run files into `directory` (created if needed); return its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        info, numeric, hists = self.parts()
        (out / "run.json").write_text(json.dumps(info, indent=1))
        np.savez_compressed(out / "arrays.npz", **numeric)
        np.savez_compressed(out / "histograms.npz", **hists)
        self.scalars_frame().to_csv(out / "scalars.csv", index=False)
        self.layers_frame().to_csv(out / "layers.csv", index=False)
        return out

    def parts(self) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """What `save` writes: run.json's contents (plain JSON), and the arrays of arrays.npz and histograms.npz.
        `from_parts` turns them back into a History (the parsing process sends a run this way)."""
        info = {"format": "bnviz-history", "version": FORMAT_VERSION, "layout": asdict(self.layout),
                "capacity": self.capacity, "n": self.n, "stride": self.stride, "records": self.records,
                "last_is_provisional": self._last_is_provisional, "meta": self.meta}
        n = self.n
        numeric = {k: v[:n] for k, v in self.data.items() if k not in ("act_hist", "grad_hist")}
        hists = {"steps": self.steps, "act_hist": self.data["act_hist"][:n], "act_edges": self.hist_edges,
                 "grad_hist": self.data["grad_hist"][:n], "grad_log10_edges": self.grad_edges,
                 "probes": np.array([f"{layer + 1}:{stage}" for layer, stage in self.layout.probes])}
        return _jsonable(info), numeric, hists

    @classmethod
    def load(cls, directory: str | os.PathLike, max_bytes: int = MAX_LOAD_BYTES) -> History:
        """Read a directory written by `save`; any missing, oversized or malformed part raises RunFileError.
        `max_bytes` bounds the memory the loaded history may take (its capacity times the layout's row size)."""
        src = Path(directory)
        try:
            raw = _read_limited(src / "run.json")
        except RunFileError as exc:
            raise RunFileError(f"not a bnviz run: {exc}") from None
        try:
            info = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise RunFileError(f"not a bnviz run: cannot read run.json ({exc.__class__.__name__})") from None
        layout, n = _checked_info(info, max_bytes)[:2]
        array_shapes, hist_shapes = _file_shapes(layout, n)
        arrays = _read_npz(src / "arrays.npz", array_shapes, max_bytes)
        hists = _read_npz(src / "histograms.npz", hist_shapes, max_bytes)
        return cls.from_parts(info, arrays, hists, max_bytes)

    @classmethod
    def from_parts(cls, info, arrays: dict[str, np.ndarray], hists: dict[str, np.ndarray],
                   max_bytes: int = MAX_LOAD_BYTES) -> History:
        """The History whose `parts()` these are, every part checked (RunFileError otherwise)."""
        layout, n, capacity, stride, records = _checked_info(info, max_bytes)
        try:
            history = cls(layout, capacity=capacity)
        except ValueError as exc:  # an odd capacity
            raise RunFileError(str(exc)) from None
        arrays = dict(arrays)
        arrays["act_hist"], arrays["grad_hist"] = hists.get("act_hist"), hists.get("grad_hist")
        for name, (shape, dtype) in layout.row_shapes().items():
            arr = arrays.get(name)
            if arr is None or arr.shape != (n, *shape) or arr.dtype.kind not in "fiu":
                got = None if arr is None else arr.shape
                raise RunFileError(f"run file is damaged: {name} should have shape {(n, *shape)}, found {got}")
            history.data[name][:n] = arr.astype(dtype)
        edges = hists.get("act_edges")
        if edges is None or edges.shape != history.hist_edges.shape:
            raise RunFileError("run file is damaged: histogram edges missing or of the wrong shape")
        history.hist_edges[:] = edges
        history.n = n
        history.stride = stride
        history.records = records
        history._last_is_provisional = bool(info.get("last_is_provisional", False))
        history.meta = _checked_meta(info.get("meta"))
        return history


def _checked_info(info, max_bytes: int) -> tuple[Layout, int, int, int, int]:
    """run.json's layout, n, capacity, stride and records, once its format, nesting and sizes pass the checks."""
    if _depth(info) > MAX_JSON_DEPTH:
        raise RunFileError(f"run.json is malformed: it is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(info, dict) or info.get("format") != "bnviz-history":
        raise RunFileError("not a bnviz run: run.json has no 'format: bnviz-history'")
    if info.get("version") != FORMAT_VERSION:
        raise RunFileError(f"run.json has format version {info.get('version')!r}; "
                           f"this bnviz reads {FORMAT_VERSION}")
    try:
        layout = _layout_from_json(info["layout"])
        n = int(info["n"])
        capacity = max(int(info["capacity"]), n + n % 2, 4)
        stride = max(1, int(info.get("stride", 1)))
        records = max(n, int(info.get("records", n)))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise RunFileError(f"run.json is malformed: {exc}") from None
    if n < 0 or capacity * layout.row_bytes() > max_bytes:
        raise RunFileError(f"run.json is malformed: n={n} and capacity={capacity} would need "
                           f"{capacity * layout.row_bytes() // 10**6} MB; the limit is {max_bytes // 10**6} MB")
    return layout, n, capacity, stride, records


def _depth(obj) -> int:
    """How deeply lists and mappings nest in a JSON value (0 for a number or a string), without recursion."""
    deepest, todo = 0, [(obj, 0)]
    while todo:
        value, level = todo.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, level + 1)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            todo += [(child, level + 1) for child in children]
    return deepest


def _checked_meta(meta) -> dict:
    """The metadata pages and charts can trust: "config", "summary", "watch" and "dataset" are mappings (anything
    else in a file is dropped), and the settings they read have their types; a setting of the wrong type is a
    RunFileError."""
    meta = meta if isinstance(meta, dict) else {}
    meta = {k: v for k, v in meta.items() if k not in META_MAPPINGS or isinstance(v, dict)}
    for part, types in META_TYPES.items():
        for key, value in meta.get(part, {}).items():
            allowed = types.get(key)
            if allowed and value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
                raise RunFileError(f"run.json is malformed: {part}.{key} is {type(value).__name__}, not "
                                   f"{' or '.join(t.__name__ for t in allowed)}")
    return meta


def _layout_from_json(obj) -> Layout:
    if not isinstance(obj, dict):
        raise RunFileError("layout is not a mapping")
    layout = Layout(
        layers=[str(x) for x in obj["layers"]],
        probes=[(int(a), str(b)) for a, b in obj["probes"]],
        act_kinds=[str(x) for x in obj["act_kinds"]],
        weights=[str(x) for x in obj["weights"]],
        norm_layers=[(int(a), str(b), int(c)) for a, b, c in obj.get("norm_layers", [])],
        bins=int(obj.get("bins", 64)),
    )
    if not 2 <= layout.bins <= 4096 or len(layout.layers) > 10_000 or len(layout.probes) > 100_000:
        raise RunFileError("layout sizes out of range")
    if any(not 0 <= layer < len(layout.layers) for layer, _ in layout.probes):
        raise RunFileError("a probe names a layer that does not exist")
    if len(layout.act_kinds) != len(layout.probes) or layout.n_channels > 10_000_000:
        raise RunFileError("layout sizes do not match")
    names = [*layout.layers, *layout.weights, *(stage for _, stage in layout.probes)]
    odd = next((name for name in names if len(name) > MAX_NAME_CHARS or not UNMARKED_NAME.fullmatch(name)), None)
    if odd is not None:  # charts show these names: Plotly would read '<' and '&' as HTML
        raise RunFileError(f"layout names a layer, weight or stage {odd[:40]!r}: names hold at most "
                           f"{MAX_NAME_CHARS} printable characters, none of < > &")
    return layout


def _read_limited(path: Path) -> bytes:
    return files.read_regular(path, MAX_FILE_BYTES, RunFileError)


def _file_shapes(layout: Layout, n: int) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """The arrays `save` writes into arrays.npz and histograms.npz, with their shapes for `n` rows: the allow-list
    `load` checks every member's .npy header against before reading any data."""
    rows = {name: (n, *shape) for name, (shape, _) in layout.row_shapes().items()}
    k = len(layout.probes)
    hist_shapes = {"steps": (n,), "act_hist": rows.pop("act_hist"), "grad_hist": rows.pop("grad_hist"),
                   "act_edges": (k, layout.bins + 1), "grad_log10_edges": (GRAD_BINS + 1,), "probes": (k,)}
    return rows, hist_shapes


def _read_npz(path: Path, shapes: dict[str, tuple], max_bytes: int) -> dict[str, np.ndarray]:
    """Only the members in `shapes`, each of that shape and numeric ("probes": text), checked from the .npy
    headers before any data is read; anything else in the file is refused."""
    try:
        data = _read_limited(path)  # missing, special or too large files are refused before anything is parsed
    except RunFileError as exc:
        raise RunFileError(f"run file is damaged: {exc}") from None
    kinds = {key: "US" if key == "probes" else "fiu" for key in shapes}
    required = tuple(key for key in shapes if key not in ("steps", "grad_log10_edges", "probes"))

    def check(headers: dict[str, npz_reader.Header]) -> None:
        npz_reader.expect(headers, path.name, shapes, kinds, required, RunFileError)

    try:
        return npz_reader.read_npz(data, path.name, check, max_bytes, RunFileError)
    except RunFileError as exc:
        raise RunFileError(f"run file is damaged: {exc}") from None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _with_last_row(final: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A new array: the final rows, then the last row."""
    out = np.empty((len(final) + 1, *final.shape[1:]), final.dtype)
    out[:-1] = final
    out[-1] = last
    return out


def _read_only(view: np.ndarray) -> np.ndarray:
    """A view that cannot be written through (a snapshot shares its rows with the live history)."""
    view = view.view()
    view.flags.writeable = False
    return view
