"""Measures of internal covariate shift.

(a) Distribution drift, from a history's fixed-bin histograms: the 1-Wasserstein ("earth mover's") distance between
    a block's activation distribution at two recorded steps, and the change of its mean and std. Pure functions.
(b) Santurkar et al. (2018)'s gradient-based ICS: G = gradient of the loss w.r.t. a layer's weights, G' = the same
    gradient, on the same batch, after all *earlier* layers have taken their update; reported as ||G - G'|| and
    cos(G, G'). It costs one extra forward/backward pass per layer, so the trainer measures it every K steps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .history import ACT_STATS, History


def wasserstein_1d(hist_a: np.ndarray, hist_b: np.ndarray, edges: np.ndarray,
                   below_a=0.0, above_a=0.0, below_b=0.0, above_b=0.0) -> np.ndarray:
    """W1 distance between distributions given as bin fractions on the same evenly spaced `edges`.

    hist_*: (..., B) fractions; below/above: (...) fractions outside the edges, placed at the first/last edge.
    Mass inside a bin is placed at the bin's centre. Returns (...) distances in the units of the values.
    """
    edges = np.asarray(edges, dtype=np.float64)
    centres = (edges[..., :-1] + edges[..., 1:]) / 2
    support = np.concatenate([edges[..., :1], centres, edges[..., -1:]], axis=-1)  # (..., B + 2)
    gaps = np.diff(support, axis=-1)  # (..., B + 1)

    def masses(hist, below, above):
        hist = np.asarray(hist, dtype=np.float64)
        return np.concatenate([np.asarray(below, np.float64)[..., None], hist,
                               np.asarray(above, np.float64)[..., None]], axis=-1)

    cdf_a = np.cumsum(masses(hist_a, np.broadcast_to(below_a, hist_a.shape[:-1]),
                             np.broadcast_to(above_a, hist_a.shape[:-1])), axis=-1)[..., :-1]
    cdf_b = np.cumsum(masses(hist_b, np.broadcast_to(below_b, hist_b.shape[:-1]),
                             np.broadcast_to(above_b, hist_b.shape[:-1])), axis=-1)[..., :-1]
    return np.sum(np.abs(cdf_a - cdf_b) * gaps, axis=-1)


def distribution_drift(history: History, reference: str = "previous") -> dict[str, np.ndarray]:
    """Per recorded row and probe: W1 distance, |change of mean| and |change of std|.

    reference="previous": against the previous recorded row (0 for the first); "first": against step 0.
    Distances are also returned divided by the step-0 std of that probe ("w1_rel"), so layers compare.
    Returns arrays of shape (rows, probes).
    """
    if reference not in ("previous", "first"):
        raise ValueError(f"reference={reference!r} is not allowed: use 'previous' or 'first'")
    n = len(history)
    hist = history.column("act_hist").astype(np.float64)  # (rows, probes, bins)
    stats = history.column("act_stats").astype(np.float64)
    below, above = stats[..., ACT_STATS.index("frac_below")], stats[..., ACT_STATS.index("frac_above")]
    mean, std = stats[..., ACT_STATS.index("mean")], stats[..., ACT_STATS.index("std")]
    if n == 0:
        empty = np.zeros((0, len(history.layout.probes)))
        return {"w1": empty, "w1_rel": empty, "d_mean": empty, "d_std": empty}
    ref = np.zeros(n, dtype=int) if reference == "first" else np.maximum(np.arange(n) - 1, 0)
    w1 = wasserstein_1d(hist, hist[ref], history.hist_edges[None], below, above, below[ref], above[ref])
    scale = np.where(std[0] > 0, std[0], 1.0)
    return {"w1": w1, "w1_rel": w1 / scale, "d_mean": np.abs(mean - mean[ref]), "d_std": np.abs(std - std[ref])}


def relative_drift(history: History, reference: str, rows: np.ndarray, probes: list[int]) -> np.ndarray:
    """`distribution_drift(history, reference)["w1_rel"][rows][:, probes]`, computed for those rows and probes only
    (a live page needs a few rows and probes, not the full computation over all of them)."""
    rows = np.asarray(rows, dtype=np.intp)
    ref = np.zeros_like(rows) if reference == "first" else np.maximum(rows - 1, 0)
    hist_col, stats_col = history.column("act_hist"), history.column("act_stats")

    def at(idx: np.ndarray):  # only the rows asked for are converted, not the whole history
        hist = hist_col[idx][:, probes, :].astype(np.float64)
        stats = stats_col[idx][:, probes, :].astype(np.float64)
        return hist, stats[..., ACT_STATS.index("frac_below")], stats[..., ACT_STATS.index("frac_above")]

    (hist, below, above), (hist_ref, below_ref, above_ref) = at(rows), at(ref)
    std0 = stats_col[0, probes, ACT_STATS.index("std")].astype(np.float64)
    w1 = wasserstein_1d(hist, hist_ref, history.hist_edges[probes][None], below, above, below_ref, above_ref)
    return w1 / np.where(std0 > 0, std0, 1.0)


def gradient_ics(model: nn.Module, params_before: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
                 ) -> np.ndarray:
    """Santurkar et al.'s ICS for every block of a bnviz Net, right after an optimizer step.

    `model` holds the updated weights and, in `.grad`, the gradients G computed before the update;
    `params_before` are the weights before the update (in `model.parameters()` order). Returns (blocks, 2):
    ||G - G'|| and cos(G, G') for each block's layer weight; NaN for block 1, which has no earlier layer.
    The model's weights, gradients, buffers and noise are left exactly as they were.
    """
    params = list(model.parameters())
    after = [p.detach().clone() for p in params]
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    block_of = {}
    for b, block in enumerate(model.blocks):
        for p in block.parameters():
            block_of[id(p)] = b
    n_blocks = len(model.blocks)
    out = np.full((n_blocks, 2), np.nan, dtype=np.float32)
    noisy = [m for m in model.modules() if hasattr(m, "freeze_noise")]
    for m in noisy:
        m.freeze_noise = True
    was_training = model.training
    model.train()
    try:
        for i in range(1, n_blocks):
            weight = model.blocks[i].layer.weight
            g = grads[next(j for j, p in enumerate(params) if p is weight)]
            if g is None:
                continue
            with torch.no_grad():
                for p, old, new in zip(params, params_before, after, strict=True):
                    p.copy_(new if block_of.get(id(p), n_blocks) < i else old)
                for k, v in model.named_buffers():
                    v.copy_(buffers[k])
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            g2 = weight.grad
            out[i, 0] = float(torch.linalg.vector_norm(g - g2))
            out[i, 1] = float(F.cosine_similarity(g.reshape(1, -1), g2.reshape(1, -1)).item())
    finally:
        with torch.no_grad():
            for p, new, g in zip(params, after, grads, strict=True):
                p.copy_(new)
                p.grad = g
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        for m in noisy:
            m.freeze_noise = False
        model.train(was_training)
    return out
