"""Pure numpy statistics on stacked samples: every function works on many rows (steps x tensors) at once.

The recorder calls each of these once per chunk of steps rather than once per tensor: at the size of bnviz's
networks the fixed cost of a call, not the arithmetic, is what makes recording expensive.
"""

from __future__ import annotations

import numpy as np

TANH_SATURATED = 0.97  # |tanh(x)| above this: the unit's gradient is below 6% of its maximum
SIGMOID_SATURATED = 0.03  # sigmoid within this of 0 or 1: gradient below 12% of its maximum
HIST_HALF_WIDTH_STDS = 6.0  # histogram range at step 0: median +- this many standard deviations
PERCENTILES = (15.0, 50.0, 85.0)  # Ioffe & Szegedy's Figure 1
BOUNDED_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def sorted_percentile(s: np.ndarray, q: float) -> np.ndarray:
    """numpy's default ('linear') percentile along the last axis of an already sorted array."""
    n = s.shape[-1]
    pos = q / 100 * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return s[..., lo] + (s[..., hi] - s[..., lo]) * (pos - lo)


def mean_std(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (1/n) along the last axis, computed in float64."""
    a64 = a.astype(np.float64)
    mean = a64.mean(axis=-1)
    var = np.maximum((a64 * a64).mean(axis=-1) - mean * mean, 0.0)
    return mean, np.sqrt(var)


def histogram_edges(values: np.ndarray, kind: str, bins: int) -> np.ndarray:
    """Fixed bin edges for one tensor, chosen from its step-0 sample (see bnviz.engine.recorder's docstring)."""
    values = values[np.isfinite(values)].astype(np.float64)  # float32 std overflows for |values| > ~1e19
    if kind in BOUNDED_RANGES:
        lo, hi = BOUNDED_RANGES[kind]
        pad = (hi - lo) * 1e-6
        lo, hi = lo - pad, hi + pad
    elif values.size:
        center, spread = float(np.median(values)), float(values.std())
        spread = max(spread, abs(center) * 0.1, 1e-3)
        lo = min(center - HIST_HALF_WIDTH_STDS * spread, float(values.min()))
        hi = max(center + HIST_HALF_WIDTH_STDS * spread, float(values.max()))
        if kind == "relu":
            lo = 0.0
        hi += (hi - lo) * 1e-6  # the step-0 maximum falls inside the last bin
    else:
        lo, hi = -1.0, 1.0
    return np.linspace(lo, hi, bins + 1, dtype=np.float64).astype(np.float32)


def fixed_histograms(a: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histograms of a (..., K, n) on per-tensor evenly spaced edges (K, B+1), as fractions of n.

    Returns (hist (..., K, B), below (..., K), above (..., K)): values under the first edge are `below`; values at or
    over the last edge, and NaN, are `above`.
    """
    k, n = a.shape[-2:]
    lead = a.shape[:-2]
    bins = edges.shape[1] - 1
    lo = edges[:, :1].astype(np.float64)  # (K, 1)
    width = (edges[:, -1:].astype(np.float64) - lo) / bins
    pos = np.floor((a - lo) / width)
    pos[np.isnan(pos)] = bins
    np.clip(pos, -1, bins, out=pos)
    index = pos.astype(np.int64) + 1  # 0: below, 1..bins: inside, bins + 1: above
    rows = int(np.prod(lead, dtype=np.int64)) * k
    index += (np.arange(rows) * (bins + 2)).reshape(*lead, k, 1)
    counts = np.bincount(index.ravel(), minlength=rows * (bins + 2)).reshape(*lead, k, bins + 2) / n
    return counts[..., 1:-1], counts[..., 0], counts[..., -1]


def log2_histograms(g: np.ndarray, lowest: int, bins: int) -> np.ndarray:
    """Histograms of |g| in octaves (bin i holds 2**(lowest + i) <= |g| < 2**(lowest + i + 1)) along the last axis,
    as fractions of all values. Read straight from the float32 exponent bits: no logarithm is computed.

    Zeros are left out (they are reported separately); values beyond the range go to the end bins.
    """
    n = g.shape[-1]
    bits = np.ascontiguousarray(g, dtype=np.float32).view(np.int32)
    exponent = ((bits >> 23) & 0xFF) - 127  # floor(log2 |g|) for normal numbers; -127 for zero
    valid = (bits & 0x7FFFFFFF) != 0
    index = np.clip(exponent - lowest, 0, bins - 1)
    rows = int(np.prod(g.shape[:-1], dtype=np.int64))
    index += (np.arange(rows, dtype=np.int32) * bins).reshape(*g.shape[:-1], 1)
    return np.bincount(index[valid], minlength=rows * bins).reshape(*g.shape[:-1], bins) / n


def saturation(a: np.ndarray, kind: str) -> np.ndarray:
    """Fraction of values of activation outputs that are saturated (tanh, sigmoid) or dead (ReLU: exactly 0)."""
    if kind == "relu":
        return (a == 0).mean(axis=-1)
    if kind == "tanh":
        return (np.abs(a) > TANH_SATURATED).mean(axis=-1)
    if kind == "sigmoid":
        return ((a < SIGMOID_SATURATED) | (a > 1 - SIGMOID_SATURATED)).mean(axis=-1)
    return np.full(a.shape[:-1], np.nan)


def segment_norm_std(values: np.ndarray, offsets: np.ndarray, overwrite: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """L2 norm and population std of each segment [offsets[i], offsets[i+1]) along the last axis (float64).
    overwrite=True: float64 values may be used as scratch space (squared in place), saving a copy of them."""
    v = values if overwrite and values.dtype == np.float64 else values.astype(np.float64)
    counts = np.maximum(np.diff(offsets), 1)
    sums = np.add.reduceat(v, offsets[:-1], axis=-1)
    squares = np.add.reduceat(np.multiply(v, v, out=v), offsets[:-1], axis=-1)  # v is ours: squared in place
    mean = sums / counts
    return np.sqrt(squares), np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))


def solve_batch_stats(new_mean, new_var, old_mean, old_var, factor, m):
    """Batch mean and biased variance from one running-average update (PyTorch's convention).

    running_mean = (1 - f) old + f mean;  running_var = (1 - f) old + f * var * m / (m - 1)  (unbiased).
    """
    mean = (new_mean - (1 - factor) * old_mean) / factor
    unbiased = (new_var - (1 - factor) * old_var) / factor
    return mean, np.maximum(unbiased * (m - 1) / m, 0.0)  # float32 rounding can leave a zero variance at -1e-7
