"""What a run showed, next to the papers' numbers: display tables (ours vs expected) and plain-sentence findings."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from .experiment_runs import Figure1Result, SanturkarResult, SweepResult
from .published import WU_HE_TABLE

# ---- our numbers next to the papers' ------------------------------------------------------------------------------
# "small version": the outcome the app's reference notes (SCIENCE.md) give for the same small experiment on the digits
EXPECTED = "expected (paper, or small version)"


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _ratio(without: float, with_bn: float, fewer: str = "less") -> str:
    """'6x less with BN' (or '2x more with BN' when BN's value is the larger one)."""
    if not (without > 0 and with_bn > 0 and math.isfinite(without / with_bn)):
        return "no ratio"
    r = without / with_bn
    opposite = {"less": "more", "smaller": "larger"}.get(fewer, "more")
    word, r = (fewer, r) if r >= 1 else (opposite, 1 / r)
    return f"{r:,.0f}x {word} with BN" if r >= 10 else f"{r:.1f}x {word} with BN"


def figure1_table(result: Figure1Result) -> pd.DataFrame:
    """Measure, ours, what Ioffe & Szegedy report (they give no number for the drift)."""
    m = result.summary.set_index("model")
    bn, no = m.loc["BN"], m.loc["no BN"]
    steps = result.settings["steps"]
    units = int(bn.units)

    def pair(column: str) -> str:
        return f"BN {bn[column]:.2f} · no BN {no[column]:.2f} ({_ratio(no[column], bn[column])})"

    rows = [
        (f"per unit: median over the {units} units of the largest move of each unit's median from step 0",
         pair("unit_drift_median"), "no number; 'much more stable' with BN (one typical unit, Figure 1b, c)"),
        ("pooled over all units: largest move of the median from step 0", pair("pooled_median_drift"),
         "(not the paper's measure)"),
        ("pooled over all units: average move of the median from step 0", pair("pooled_median_drift_mean"),
         "(not the paper's measure)"),
        ("test accuracy at step 100", f"BN {_pct(bn.acc_at_100)} · no BN {_pct(no.acc_at_100)}",
         "(no number at this step)"),
        (f"test accuracy at the end (step {steps:,})", f"BN {_pct(bn.final_acc)} · no BN {_pct(no.final_acc)}",
         "BN higher and sooner (Figure 1a, MNIST, 50,000 steps)"),
    ]
    return pd.DataFrame(rows, columns=["measure", "ours (8x8 digits)", "Ioffe & Szegedy (2015)"])


def santurkar_table(result: SanturkarResult) -> pd.DataFrame:
    """Measure, ours (no BN · BN · noisy BN), what Santurkar et al. report."""
    m = result.summary.set_index("model")

    def three(column: str, fmt: str) -> str:
        return " · ".join(f"{label} {format(m.loc[label, column], fmt)}" for label in m.index)

    rows = [
        ("final test accuracy", " · ".join(f"{label} {_pct(m.loc[label, 'final_acc'])}" for label in m.index),
         "noisy BN trains about as well as BN, better than no BN"),
        ("shift of the layer inputs between records (W1, step-0 stds)", three("jump_mean", ".2f"),
         "noisy BN's inputs shift more than without BN"),
        ("shift of the layer inputs from step 0 (W1, step-0 stds)", three("drift_mean", ".2f"), "(not reported)"),
        ("gradient ICS ||G − G′|| / ||G||", three("ics_rel", ".2f"), "not smaller with BN"),
        ("gradient ICS cos(G, G′) (1 = no shift)", three("ics_cos", ".2f"), "not closer to 1 with BN"),
        ("loss range along the gradient (0.5x to 4x lr), all checkpoints", three("loss_range", ".3g"),
         "much smaller with BN"),
        ("the same, second half of training", three("loss_range_late", ".3g"), "much smaller with BN"),
        ("gradient change ||g(w − ηg) − g(w)||, all checkpoints", three("grad_change", ".3g"),
         "much smaller with BN"),
        ("the same, second half of training", three("grad_change_late", ".3g"), "much smaller with BN"),
    ]
    return pd.DataFrame(rows, columns=["measure", "ours", "Santurkar et al. (VGG, CIFAR-10)"])


def wu_he_table() -> pd.DataFrame:
    """Wu & He's published numbers, on their own: ResNet-50 on ImageNet, top-1 validation error (%) by images per GPU.
    Never joined with ours: their setting (BN over B x H x W values per channel) is not our MLP's."""
    return WU_HE_TABLE.rename(columns={"batch_size": "images per GPU"})


def batch_size_table(result: SweepResult) -> pd.DataFrame:
    """Our sweep's numbers, on their own: test error (%) per batch size and normalization, eval mode (BN: running
    statistics), and BN's error in train mode (each test batch normalized with its own statistics)."""
    frame = result.summary
    ours = frame.pivot_table(index="batch_size", columns="model", values="eval_acc", sort=False)
    out = pd.DataFrame(index=sorted(ours.index, reverse=True))
    out.index.name = "images per batch"
    for model in dict.fromkeys(frame["model"]):
        out[f"{model} error (%)"] = (1 - ours[model]) * 100
    bn = frame[frame["norm"] == "batch"].set_index("batch_size")
    if not bn.empty:
        out["BN error in train mode (%)"] = (1 - bn["train_mode_acc"]) * 100
    return out.reset_index()


def batch_size_setting(result: SweepResult) -> str:
    """Our sweep's setting in one sentence, for the label of its table and chart."""
    s = result.settings
    activation = {"relu": "ReLU"}.get(s["activation"], s["activation"])
    return (f"{s['depth']} x {s['width']} {activation} MLP on the 8x8 digits; every run {s['epochs']:g} epochs, "
            f"lr = {s['lr_at_32']:g} x B / 32, seed {s['seed']}; BN normalizes each unit over the B values of the "
            "batch (at B = 2 every normalized value is about ±1)")


def _sweep_table(result: SweepResult, x: str, reference: Callable[[float], str]) -> pd.DataFrame:
    frame = result.summary
    rows = []
    for value, part in frame.groupby(x, sort=True):
        m = part.set_index("model")
        ours = " · ".join(f"{label} {_pct(m.loc[label, 'final_acc'])}" + (" (diverged)" if m.loc[label, "diverged"]
                                                                           else "") for label in m.index)
        rows.append((f"{value:g}", ours, reference(value)))
    return pd.DataFrame(rows, columns=[x, "ours (final test accuracy)", EXPECTED])


def lr_table(result: SweepResult) -> pd.DataFrame:
    def reference(lr: float) -> str:
        if lr >= 1.0:
            return "no BN fails (may learn a little, then diverge, or stay at chance); BN about 98%"
        if lr <= 0.01:
            return "no BN also near chance: too slow to leave its start, not intolerance; BN trains"
        return "(not reported)"
    return _sweep_table(result, "lr", reference)


def init_table(result: SweepResult) -> pd.DataFrame:
    def reference(scale: float) -> str:
        if scale <= 0.01:
            return "no BN stays at chance (10%); BN trains"
        if scale >= 5:
            return "no BN degrades; BN trains"
        return "BN trains"
    return _sweep_table(result, "init_scale", reference)


# ---- what a run showed, in plain sentences ---------------------------------------------------------------------
def _compare(a: float, b: float, smaller: str, larger: str, tolerance: float = 0.1) -> str:
    """'smaller' / 'larger' / 'about the same' for a vs b (within `tolerance`, relative)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return "not measured"
    if abs(a - b) <= tolerance * max(abs(a), abs(b)):
        return "about the same"
    return smaller if a < b else larger


def figure1_findings(result: Figure1Result) -> list[str]:
    """Plain sentences on what this run showed (so a page never claims what the numbers do not)."""
    m = result.summary.set_index("model")
    bn, no = m.loc["BN"], m.loc["no BN"]
    return [
        f"Per unit, as in the paper: the median of a sigmoid's input moved at most {bn.unit_drift_median:.2f} from "
        f"its start with BN and {no.unit_drift_median:.2f} without (median over the {int(bn.units)} units of the "
        f"last hidden layer; {_ratio(no.unit_drift_median, bn.unit_drift_median)}). The charts follow the unit "
        f"with that median drift: unit {int(bn.typical_unit)} with BN, unit {int(no.typical_unit)} without.",
        f"Pooled over all units and images (not the paper's measure): the median moved at most "
        f"{bn.pooled_median_drift:.2f} with BN and {no.pooled_median_drift:.2f} without "
        f"({_ratio(no.pooled_median_drift, bn.pooled_median_drift)}; averaged over the steps: "
        f"{_ratio(no.pooled_median_drift_mean, bn.pooled_median_drift_mean)}). The paper reports no number for "
        "either.",
        f"Test accuracy at step 100: {_pct(bn.acc_at_100)} with BN, {_pct(no.acc_at_100)} without; at the end "
        f"{_pct(bn.final_acc)} and {_pct(no.final_acc)}.",
    ]


def santurkar_findings(result: SanturkarResult) -> list[str]:
    m = result.summary.set_index("model")
    no, bn, noisy = m.loc["no BN"], m.loc["BN"], m.loc["noisy BN"]
    shift = _compare(noisy.jump_mean, no.jump_mean, "less", "more")
    ics = _compare(bn.ics_rel, no.ics_rel, "smaller", "larger")
    cos = _compare(1 - bn.ics_cos, 1 - no.ics_cos, "closer to 1 (less shift)", "further from 1 (more shift)")
    return [
        f"(a) Noisy BN reached {_pct(noisy.final_acc)} test accuracy, BN {_pct(bn.final_acc)}, no BN "
        f"{_pct(no.final_acc)}; noisy BN's layer inputs moved {shift} between records than without BN "
        f"({noisy.jump_mean:.2f} vs {no.jump_mean:.2f} step-0 standard deviations).",
        f"(b) Gradient ICS ||G − G′|| / ||G||: {bn.ics_rel:.2f} with BN, {no.ics_rel:.2f} without ({ics} with BN); "
        f"cos(G, G′): {bn.ics_cos:.2f} with BN, {no.ics_cos:.2f} without ({cos} with BN).",
        f"(c) Loss range along the gradient, mean over the checkpoints: {bn.loss_range:.3g} with BN, "
        f"{no.loss_range:.3g} without ({_ratio(no.loss_range, bn.loss_range, 'smaller')}); gradient change "
        f"{bn.grad_change:.3g} vs {no.grad_change:.3g} ({_ratio(no.grad_change, bn.grad_change, 'smaller')}). "
        f"Over the second half of training: loss range {bn.loss_range_late:.3g} vs {no.loss_range_late:.3g}, "
        f"gradient change {bn.grad_change_late:.3g} vs {no.grad_change_late:.3g}. (While a network is stuck near "
        "chance its gradients are tiny, so its landscape looks flat: compare the checkpoints after it starts "
        "learning.)",
    ]
