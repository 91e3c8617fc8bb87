"""Every figure that makes sense for one run, by a file-friendly name (`figure_catalog`, for the report and watch)."""

from __future__ import annotations

import re

import numpy as np

from ..engine.history import History
from .distributions import distribution_heatmap, drift, histogram_now_vs_start, percentile_lines, saturation
from .gradients import gradient_histogram, gradient_norms, update_ratios
from .norm_layers import gamma_beta, running_vs_batch, train_eval_gap
from .run_facts import activation_input_stage
from .style import Figure
from .training import ics_measure, loss_accuracy


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "layer"


def figure_catalog(history: History | None) -> dict[str, Figure]:
    """Every figure that makes sense for one run, keyed by a file-friendly name (captions: `caption(key)`).

    Keys: "loss_accuracy", "train_eval_gap", "distribution_<block>_<stage>", "histogram_<block>_<stage>",
    "percentiles_<block>_<stage>", "saturation", "drift", "gradient_norms", "gradient_histogram_<block>_<stage>",
    "update_data", "grad_data", and with normalization "gamma_beta_<block>", "running_mean_<block>",
    "running_var_<block>"; "ics" when it was measured.
    """
    if history is None:
        return {"loss_accuracy": loss_accuracy([])}
    runs = [("run", history)]
    layers = [_slug(name) for name in history.layout.layers]
    out: dict[str, Figure] = {"loss_accuracy": loss_accuracy(runs)}
    if np.isfinite(history.scalar("test_acc_train_mode")).any() or not len(history):
        out["train_eval_gap"] = train_eval_gap(runs)
    for layer, name in enumerate(layers):
        for probe_layer, stage in history.layout.probes:
            if probe_layer == layer:
                out[f"distribution_{name}_{stage}"] = distribution_heatmap(history, layer, stage)
    for layer, name in enumerate(layers):
        stage = activation_input_stage(history, layer)
        out[f"histogram_{name}_{stage}"] = histogram_now_vs_start(history, layer, stage)
        out[f"percentiles_{name}_{stage}"] = percentile_lines(runs, layer, stage)
    out["saturation"] = saturation(history)
    out["drift"] = drift(history)
    out["gradient_norms"] = gradient_norms(history)
    for layer, name in enumerate(layers):
        stage = activation_input_stage(history, layer)
        out[f"gradient_histogram_{name}_{stage}"] = gradient_histogram(history, layer, stage)
    out["update_data"] = update_ratios(history, "update_data")
    out["grad_data"] = update_ratios(history, "grad_data")
    for layer, kind, _ in history.layout.norm_layers:
        name = layers[layer]
        out[f"gamma_beta_{name}"] = gamma_beta(history, layer)
        if kind == "batch":
            out[f"running_mean_{name}"] = running_vs_batch(history, layer, "mean")
            out[f"running_var_{name}"] = running_vs_batch(history, layer, "var")
    if np.isfinite(history.column("ics")).any():
        out["ics"] = ics_measure(runs)
    return out
