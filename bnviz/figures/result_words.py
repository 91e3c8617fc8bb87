"""A finished run's result in one or two sentences, computed from its history (for the end of a live run)."""

from __future__ import annotations

import numpy as np

from ..engine.history import History
from ..engine.shift import relative_drift
from .distributions import OUTSIDE_WARNING
from .run_facts import ACT_INPUT, as_runs, resolve_stage, with_data


def final_accuracy(history: History) -> float | None:
    """The last measured test accuracy (eval mode), or None if none was measured."""
    acc = history.scalar("test_acc")
    acc = acc[np.isfinite(acc)]
    return float(acc[-1]) if acc.size else None


def input_drift(history: History) -> tuple[float, bool] | None:
    """How far the blocks' activation inputs moved since step 0 by the last record: the mean over blocks of the
    1-Wasserstein distance in step-0 standard deviations (figures.drift's measure), and whether it is a lower bound
    (more than OUTSIDE_WARNING of some block's values left the fixed histogram range)."""
    probes = [k for layer in range(len(history.layout.layers))
              if (k := history.probe_index(layer, resolve_stage(history, layer, ACT_INPUT))) is not None]
    if not probes or len(history) < 2:
        return None
    w1 = relative_drift(history, "first", np.array([len(history) - 1]), probes)[0]
    outside = (history.act("frac_below")[-1] + history.act("frac_above")[-1])[probes]
    finite = w1[np.isfinite(w1)]
    return (float(finite.mean()), bool((outside > OUTSIDE_WARNING).any())) if finite.size else None


def _accuracy_words(label: str, history: History, first: bool) -> str:
    summary = history.meta.get("summary", {})
    if summary.get("diverged_at") is not None or summary.get("status") == "diverged":
        return f"{label} diverged at step {int(summary.get('diverged_at', history.steps[-1])):,}"
    acc = final_accuracy(history)
    if acc is None:
        return f"{label} has no test accuracy yet"
    return f"{label} reached {acc:.0%} test accuracy" if first else f"{label} {acc:.0%}"


def _drift_words(label: str, history: History, first: bool) -> str | None:
    drift = input_drift(history)
    if drift is None:
        return None
    value, lower_bound = drift
    amount = f"{'at least ' if lower_bound else ''}{value:.2g}"
    if first:
        return f"{label}'s block inputs drifted {amount} step-0 standard deviations from step 0 (mean over blocks)"
    return f"{label}'s {amount}"


def run_result(runs) -> str | None:
    """One or two sentences from the runs' histories: each run's final test accuracy, and how far its blocks'
    inputs drifted from step 0 ("BN reached 99% test accuracy, no BN 10%. BN's block inputs drifted 0.2 step-0
    standard deviations from step 0 (mean over blocks), no BN's 2.9."). A single run is called "the run"."""
    live = with_data(as_runs(runs))
    if not live:
        return None
    if len(live) == 1:
        live = [("The run", live[0][1])]
    accuracy = [_accuracy_words(label, h, i == 0) for i, (label, h) in enumerate(live)]
    drift = [words for i, (label, h) in enumerate(live) if (words := _drift_words(label, h, i == 0)) is not None]
    sentences = [", ".join(accuracy) + "."]
    if drift and len(drift) == len(live):
        sentences.append(", ".join(drift).replace("The run's", "Its") + ".")
    return " ".join(s[0].upper() + s[1:] for s in sentences)  # a label such as "no BN" may start a sentence
