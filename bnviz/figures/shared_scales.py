"""One scale for panels that compare runs side by side.

Students compare the shapes and colours of two runs' panels, not their tick labels, so panels that stand next to
each other must share their axes and colour scales (a twin's gradient norms on 1e-3..1e-1 next to 1e-10..1e1 look
alike). Each builder drawn once per run has a `<builder>_span` partner that returns the ranges it would draw
({"y": (lo, hi)}, {"gamma": ..., "beta": ...}); `side_by_side` unites them over the runs and hands the union to
every panel as `scale`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..engine.history import History
from .distributions import drift, drift_span, histogram_now_vs_start, histogram_now_vs_start_span
from .gradients import (
    gradient_histogram,
    gradient_histogram_span,
    gradient_norms,
    gradient_norms_span,
    update_ratios,
    update_ratios_span,
)
from .norm_layers import gamma_beta, gamma_beta_span, running_vs_batch, running_vs_batch_span
from .style import Figure

SPANS: dict[Callable, Callable[..., dict]] = {
    gradient_norms: gradient_norms_span, gradient_histogram: gradient_histogram_span,
    update_ratios: update_ratios_span, drift: drift_span, histogram_now_vs_start: histogram_now_vs_start_span,
    gamma_beta: gamma_beta_span, running_vs_batch: running_vs_batch_span,
}


def shared_span(spans: Iterable[dict]) -> dict[str, tuple[float, float]]:
    """The union of several runs' spans ({"y": (lo, hi), ...}; missing keys and None skipped)."""
    out: dict[str, tuple[float, float]] = {}
    for span in spans:
        for key, value in span.items():
            if value is None:
                continue
            old = out.get(key)
            out[key] = (float(value[0]), float(value[1])) if old is None else (min(old[0], value[0]),
                                                                              max(old[1], value[1]))
    return out


def side_by_side(builder: Callable[..., Figure], histories: list[History | None], *args, **options
                 ) -> list[Figure]:
    """`builder(history, *args, **options)` for each run, every panel drawn on the scale that holds all runs.
    A builder without a span partner (its scale is fixed, like saturation's 0-100 %) is called as it is."""
    span_of = SPANS.get(builder)
    if span_of is None:
        return [builder(h, *args, **options) for h in histories]
    scale = shared_span(span_of(h, *args, **options) for h in histories)
    return [builder(h, *args, scale=scale, **options) for h in histories]
