"""Pure helpers of the "BatchNorm step by step" page: no Streamlit here.

The page shows one training-mode batch-norm forward pass on a small, editable batch (N samples x C channels),
every intermediate of it (from :func:`bnviz.engine.batchnorm.batch_norm_steps`), one running-statistics update, the
eval-mode affine map, a check against ``torch.nn.functional.batch_norm`` and, for conv layers, which axes of an
(N, C, H, W) tensor share one mean and variance (`shapes_table`; the picture of it is drawn from
`bnviz.science.normalization_axes`). Everything is computed in float64 so that the numbers on the
screen are the exact maths, not float32 rounding.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..engine.batchnorm import BatchNormSteps, batch_norm, batch_norm_steps, channel_reduce_dims
from ..engine.config import EPS_CHOICES
from ..errors import BnvizError
from .normalization_axes import EXAMPLE_SHAPE

DTYPE = torch.float64
CHANNELS = ("channel 1", "channel 2", "channel 3")
# Chosen so that every statistic is a round number: mean 6 / 100 / 0, biased variance 4 / 900 / 1, so
# std ~ 2 / 30 / 1 and x_hat ~ -2..1, -5/3..5/3, -1..1. Channel 3 is "already normalized".
DEFAULT_BATCH = (
    (2.0, 90.0, -1.0),
    (6.0, 150.0, 1.0),
    (8.0, 110.0, -1.0),
    (6.0, 50.0, 1.0),
    (8.0, 110.0, -1.0),
    (6.0, 90.0, 1.0),
)
# A fresh PyTorch layer has gamma = 1 and beta = 0; channels 2 and 3 start as if the layer had learned something.
DEFAULT_GAMMA = (1.0, 2.0, 0.5)
DEFAULT_BETA = (0.0, 5.0, -1.0)
DEFAULT_EPS = 1e-5  # PyTorch's default
DEFAULT_MOMENTUM = 0.1  # PyTorch's default (weight of the new batch)
INIT_RUNNING_MEAN, INIT_RUNNING_VAR = 0.0, 1.0  # PyTorch's initial buffers
TORCH_TOLERANCE = 1e-6  # largest |ours - PyTorch| we call "the same numbers"


def eps_label(eps: float) -> str:
    """1e-05 -> '1e-5', 1.0 -> '1': how eps is written on the page."""
    if eps <= 0:
        return "0"
    k = math.log10(eps)
    return "1" if k == 0 else (f"1e{round(k)}" if abs(k - round(k)) < 1e-9 else f"{eps:g}")


def sample_labels(n: int) -> list[str]:
    return [f"sample {i + 1}" for i in range(n)]


def default_table() -> pd.DataFrame:
    """The default batch as the editable table: one row per sample, one column per channel."""
    return pd.DataFrame(DEFAULT_BATCH, columns=list(CHANNELS), index=sample_labels(len(DEFAULT_BATCH)))


# ---- reading the editable table ----------------------------------------------------------------------------


def _cell_problem(value) -> str | None:
    """Why a cell is not a usable number, or None if it is one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is empty"
    if isinstance(value, bool):
        return "is not a number"
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return f"is not a number ({str(value)[:20]!r})"
    if math.isnan(number):
        return "is empty" if not isinstance(value, str) else "is not a number (NaN)"
    if math.isinf(number):
        return "is infinite"
    return None


def table_problems(table: pd.DataFrame) -> list[str]:
    """One readable sentence per bad cell (empty, text, NaN, inf) and per shape problem."""
    problems = []
    if table.shape[0] < 2:
        problems.append(f"the batch needs at least 2 samples per channel (it has {table.shape[0]})")
    if table.shape[1] < 1:
        problems.append("the batch needs at least 1 channel")
    for r, row_name in enumerate(table.index):
        for c, col_name in enumerate(table.columns):
            problem = _cell_problem(table.iat[r, c])
            if problem:
                problems.append(f"{row_name}, {col_name} {problem}")
    return problems


def parse_table(table: pd.DataFrame) -> Tensor:
    """The edited table as a float64 tensor of shape (N, C).

    Raises:
        BnvizError: naming every bad cell, e.g. "sample 3, channel 2 is empty".
    """
    problems = table_problems(table)
    if problems:
        raise BnvizError("Cannot use this batch: " + "; ".join(problems) + ".")
    values = [[float(v.strip() if isinstance(v, str) else v) for v in row] for row in table.itertuples(index=False)]
    return torch.tensor(values, dtype=DTYPE)


def table_or_fallback(table: pd.DataFrame, fallback: pd.DataFrame) -> tuple[Tensor, str | None]:
    """Parse `table`; every bad cell takes the value of the same cell of `fallback` (same shape).

    Returns the tensor and a note for the user saying which cells were replaced (None when every cell was fine):
    not an error, since the page goes on with the repaired batch.
    """
    try:
        return parse_table(table), None
    except BnvizError as error:
        message = str(error)
    if table.shape != fallback.shape:
        return parse_table(fallback), message + " Showing the default batch instead."
    fixed = table.copy().astype(object)
    for r in range(table.shape[0]):
        for c in range(table.shape[1]):
            if _cell_problem(table.iat[r, c]):
                fixed.iat[r, c] = fallback.iat[r, c]
    return parse_table(fixed), message + " Those cells keep their default values until you fix them."


def format_number(value: float) -> str:
    """Up to 4 decimals without trailing zeros (6, -1.6667); tiny values in scientific notation (1.39e-05)."""
    if value != value:  # NaN
        return "undefined"
    if value == 0 or abs(value) >= 1e-3:
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{value:.2e}"


# ---- the steps as tables -----------------------------------------------------------------------------------


def steps_of(x: Tensor, gamma, beta, eps: float) -> BatchNormSteps:
    """Every intermediate of the training-mode forward pass of `x` (N, C), in float64."""
    return batch_norm_steps(x.to(DTYPE), torch.tensor(gamma, dtype=DTYPE), torch.tensor(beta, dtype=DTYPE), eps)


def statistics_table(steps: BatchNormSteps, eps: float, channels=CHANNELS) -> pd.DataFrame:
    """Steps 1-3, one column per channel: mean, both variances (and where each is used), std."""
    m = steps.m
    rows = {
        "step 1 · mean μ": steps.mean,
        f"step 2 · variance σ² (÷ m = {m}): normalizes": steps.var_biased,
        f"variance ÷ (m−1) = {m - 1}: running var only": steps.var_unbiased,
        f"step 3 · std √(σ² + ε), ε = {eps_label(eps)}": steps.std,
    }
    return pd.DataFrame({k: v.tolist() for k, v in rows.items()}, index=list(channels)[: steps.mean.numel()]).T


def per_sample_table(values: Tensor, channels=CHANNELS) -> pd.DataFrame:
    """An (N, C) tensor as a table with the sample and channel labels."""
    return pd.DataFrame(values.tolist(), columns=list(channels)[: values.shape[1]], index=sample_labels(len(values)))


EPS_NOTICEABLE = 0.99  # note a channel when eps shrinks its x_hat by more than 1% (sigma / sqrt(sigma^2 + eps))


def eps_notes(steps: BatchNormSteps, eps: float, channels=CHANNELS) -> list[str]:
    """A sentence for every channel whose variance is so small next to eps that eps visibly shapes its x_hat."""
    notes = []
    for name, mean, var, std in zip(channels, steps.mean.tolist(), steps.var_biased.tolist(), steps.std.tolist(),
                                    strict=True):
        if var <= (1e-12 * max(1.0, abs(mean))) ** 2:  # all values equal, up to float64 rounding of the mean
            notes.append(f"**{name}** is constant: σ² = 0, so x̂ = (x − μ)/√(σ² + ε) = 0/√ε = 0 and y = β. "
                         "Without ε this would be 0/0.")
        elif math.sqrt(var) / std < EPS_NOTICEABLE:
            notes.append(f"**{name}**: ε is not small next to its variance (σ² = {format_number(var)}, "
                         f"ε = {eps_label(eps)}), so √(σ² + ε) = {format_number(std)} and its x̂ values are only "
                         f"{math.sqrt(var) / std:.0%} of (x − μ)/σ.")
    return notes


def eps_demo(eps_values=EPS_CHOICES, value: float = 7.0, wobble: float = 0.01, m: int = 6) -> pd.DataFrame:
    """What eps does to a constant channel and to one that is constant up to a tiny `wobble` in the last sample.

    Constant: var = 0, so x_hat = 0 / sqrt(eps) = 0 for every eps (without eps: 0/0). Nearly constant: with a tiny
    eps the wobble is blown up to the size of a real signal (x_hat ~ 2.2); a larger eps keeps it small.
    """
    constant = torch.full((m, 1), value, dtype=DTYPE)
    nearly = constant.clone()
    nearly[-1, 0] += wobble
    rows = []
    for eps in eps_values:
        flat, bumpy = batch_norm_steps(constant, eps=eps), batch_norm_steps(nearly, eps=eps)
        rows.append({
            "ε": eps_label(eps),
            "constant: σ²": flat.var_biased.item(),
            "constant: √(σ²+ε)": flat.std.item(),
            "constant: x̂": flat.x_hat[-1, 0].item(),
            "nearly constant: σ²": bumpy.var_biased.item(),
            f"nearly constant: x̂ of the +{wobble:g} sample": bumpy.x_hat[-1, 0].item(),
        })
    return pd.DataFrame(rows).set_index("ε")


# ---- training vs evaluation ----------------------------------------------------------------------------------


def updated_running(steps: BatchNormSteps, momentum: float, running_mean: float = INIT_RUNNING_MEAN,
                    running_var: float = INIT_RUNNING_VAR) -> tuple[Tensor, Tensor]:
    """One PyTorch running-statistics update: new = (1 - momentum) * old + momentum * batch statistic.

    The mean uses the batch mean; the variance uses the *unbiased* batch variance (m / (m - 1) * biased).
    """
    return ((1 - momentum) * running_mean + momentum * steps.mean,
            (1 - momentum) * running_var + momentum * steps.var_unbiased)


def running_update(steps: BatchNormSteps, momentum: float, running_mean: float = INIT_RUNNING_MEAN,
                   running_var: float = INIT_RUNNING_VAR, channels=CHANNELS) -> pd.DataFrame:
    """The table of one update (see `updated_running`): before, the batch statistic and after, per channel."""
    new_mean, new_var = updated_running(steps, momentum, running_mean, running_var)
    return pd.DataFrame({
        "running mean before": [running_mean] * len(new_mean),
        "batch mean μ": steps.mean.tolist(),
        "running mean after": new_mean.tolist(),
        "running var before": [running_var] * len(new_var),
        "batch var, 1/(m−1)": steps.var_unbiased.tolist(),
        "running var after": new_var.tolist(),
    }, index=list(channels)[: len(new_mean)]).T


def eval_affine(running_mean: Tensor, running_var: Tensor, gamma, beta, eps: float) -> tuple[Tensor, Tensor]:
    """Eval mode as y = a * x + b per channel: a = gamma / sqrt(running_var + eps), b = beta - a * running_mean."""
    a = torch.as_tensor(gamma, dtype=DTYPE) / torch.sqrt(torch.as_tensor(running_var, dtype=DTYPE) + eps)
    return a, torch.as_tensor(beta, dtype=DTYPE) - a * torch.as_tensor(running_mean, dtype=DTYPE)


def train_and_eval(x: Tensor, gamma, beta, eps: float, momentum: float) -> dict[str, object]:
    """Train-mode output, the running statistics after that one batch, and the eval-mode output of the same batch."""
    steps = steps_of(x, gamma, beta, eps)
    a, b = eval_affine(*updated_running(steps, momentum), gamma, beta, eps)
    y_eval = a * x.to(DTYPE) + b
    affine = pd.DataFrame({"a": a.tolist(), "b": b.tolist()}, index=list(CHANNELS)[: x.shape[1]])
    settled_a, settled_b = eval_affine(steps.mean, steps.var_unbiased, gamma, beta, eps)
    return {"steps": steps, "running": running_update(steps, momentum), "affine": affine,
            "y_train": per_sample_table(steps.output), "y_eval": per_sample_table(y_eval),
            "gap": (steps.output - y_eval).abs().max().item(),
            "settled_gap": (steps.output - (settled_a * x.to(DTYPE) + settled_b)).abs().max().item()}


def gap_note(run: dict, momentum: float) -> str:
    """Why train and eval mode differ on this batch, from `train_and_eval`'s numbers: after one update from a fresh
    layer the running statistics are mostly the initial 0 and 1; `settled_gap` is what would remain once they had
    settled on this batch's own statistics (many updates on the same batch), from the unbiased variance alone."""
    gap, settled = run["gap"], run["settled_gap"]
    if gap <= settled * (1 + 1e-9):  # momentum 1: the one update already set them to this batch's statistics
        return (f"Largest train–eval difference: {format_number(gap)}. With momentum {momentum:g} the one update "
                "already set the running statistics to this batch's own, so all of it comes from the running "
                "variance's m/(m − 1).")
    share = "Most of it" if settled < gap / 2 else "Part of it"
    return (f"Largest train–eval difference: {format_number(gap)}. {share} comes from the running statistics "
            f"having had a single update from a fresh layer's 0 and 1 (keeping {1 - momentum:.0%} of them): had they "
            f"settled on this batch's own statistics, the difference would be {format_number(settled)}, from the "
            "running variance's m/(m − 1) alone.")


# ---- comparison with PyTorch ---------------------------------------------------------------------------------


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    """The largest absolute difference between two tensors of the same shape."""
    return (a.to(DTYPE) - b.to(DTYPE)).abs().max().item()


def compare_with_torch(x: Tensor, gamma, beta, eps: float, momentum: float) -> pd.DataFrame:
    """Run bnviz's from-scratch batch norm and torch.nn.functional.batch_norm on the same batch (float64, fresh
    running buffers 0 and 1) and give the largest |ours - PyTorch| of every output."""
    x = x.to(DTYPE)
    g, b = torch.tensor(gamma, dtype=DTYPE), torch.tensor(beta, dtype=DTYPE)
    c = x.shape[1]
    ours_rm, ours_rv = torch.zeros(c, dtype=DTYPE), torch.ones(c, dtype=DTYPE)
    ref_rm, ref_rv = torch.zeros(c, dtype=DTYPE), torch.ones(c, dtype=DTYPE)
    ours = batch_norm(x, ours_rm, ours_rv, g, b, True, momentum, eps)
    ref = F.batch_norm(x, ref_rm, ref_rv, g, b, True, momentum, eps)
    ours_eval = batch_norm(x, ours_rm, ours_rv, g, b, False, momentum, eps)
    ref_eval = F.batch_norm(x, ref_rm, ref_rv, g, b, False, momentum, eps)
    rows = {
        "output y, train mode": max_abs_diff(ours, ref),
        "running mean after the update": max_abs_diff(ours_rm, ref_rm),
        "running var after the update": max_abs_diff(ours_rv, ref_rv),
        "output y, eval mode": max_abs_diff(ours_eval, ref_eval),
    }
    return pd.DataFrame({"largest |bnviz − PyTorch|": list(rows.values())}, index=list(rows))


# ---- which axes share one mean: (N, C, H, W) -------------------------------------------------------------------

NORM_KINDS = {
    "batch": "Batch norm: per channel, over N, H, W",
    "layer": "Layer norm: per sample, over C, H, W",
    "instance": "Instance norm: per sample and channel, over H, W",
    "group": "Group norm: per sample and group of channels, over (C/G), H, W",
}


def shapes_table(shape=EXAMPLE_SHAPE) -> pd.DataFrame:
    """What batch norm averages over for each kind of layer input, checked on a real tensor of each shape."""
    n, c, h, w = shape
    rows = []
    for name, dims, letters in (("fully connected (N, C)", (n, c), "N"), ("1-D conv (N, C, L)", (n, c, h * w), "N, L"),
                                ("2-D conv (N, C, H, W)", shape, "N, H, W")):
        steps = batch_norm_steps(torch.randn(*dims, dtype=DTYPE, generator=torch.Generator().manual_seed(0)))
        rows.append({"layer input": name, "example shape": str(tuple(dims)), "averaged over": letters,
                     "dims (reduce_dims)": str(channel_reduce_dims(torch.empty(dims))),
                     "values per mean, m": f"{steps.m} = " + " · ".join(str(dims[d]) for d in steps.reduce_dims),
                     "mean and var shape": str(tuple(steps.mean.shape))})
    return pd.DataFrame(rows).set_index("layer input")
