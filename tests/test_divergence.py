"""bnviz.engine.divergence: the one rule for "diverged", on hand-made loss sequences."""

from __future__ import annotations

import math

import pytest

from bnviz.engine import divergence
from bnviz.engine.divergence import BLOWUP_FACTOR, BLOWUP_STEPS, DivergenceWatch, describe, find_divergence

NON_FINITE, STAYS_HIGH = divergence.NON_FINITE, divergence.STAYS_HIGH

HIGH = 2.0 * BLOWUP_FACTOR + 1.0  # above the line for a step-0 loss of 2.0
LINE = 2.0 * BLOWUP_FACTOR


def test_a_loss_that_falls_never_diverges():
    assert find_divergence([2.3, 2.0, 1.5, 0.9, 0.4] * 20) is None


def test_exactly_blowup_steps_above_the_line_fires_on_the_last_of_them():
    losses = [2.0, 1.9] + [HIGH] * BLOWUP_STEPS + [1.0]
    found = find_divergence(losses)
    assert found is not None and found.reason == STAYS_HIGH
    assert found.since == 2 and found.step == 2 + BLOWUP_STEPS - 1 and found.start_loss == 2.0


def test_one_step_fewer_is_a_spike_not_a_divergence():
    assert find_divergence([2.0] + [HIGH] * (BLOWUP_STEPS - 1) + [1.0] * 50) is None


def test_a_spike_that_comes_back_restarts_the_count():
    losses = [2.0] + [HIGH] * (BLOWUP_STEPS - 1) + [1.5] + [HIGH] * (BLOWUP_STEPS - 1) + [1.0]
    assert find_divergence(losses) is None
    found = find_divergence(losses[:-1] + [HIGH])  # the second stretch reaches BLOWUP_STEPS
    assert found is not None and found.since == BLOWUP_STEPS + 1 and found.step == 2 * BLOWUP_STEPS


def test_exactly_on_the_line_is_not_above_it():
    assert find_divergence([2.0] + [LINE] * (3 * BLOWUP_STEPS)) is None
    assert find_divergence([2.0] + [math.nextafter(LINE, math.inf)] * BLOWUP_STEPS).step == BLOWUP_STEPS


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_diverges_at_once(bad):
    found = find_divergence([2.0, 1.0, HIGH, bad, 1.0])
    assert (found.step, found.since, found.reason, found.start_loss) == (3, 3, NON_FINITE, 2.0)


def test_a_non_finite_step_zero_loss_diverges_at_step_zero():
    found = find_divergence([math.nan, 1.0])
    assert (found.step, found.reason, found.start_loss) == (0, NON_FINITE, None)


def test_the_watch_fires_once_per_feed_and_matches_the_sequence_rule():
    losses = [2.0, 3.0] + [HIGH] * (BLOWUP_STEPS + 5)
    watch = DivergenceWatch()
    fired = [step for step, loss in enumerate(losses) if watch.update(step, loss) is not None]
    assert fired[0] == find_divergence(losses).step == 1 + BLOWUP_STEPS


def test_describe_says_why_and_reads_old_summaries():
    high = describe(find_divergence([2.0] + [HIGH] * BLOWUP_STEPS).to_summary())
    assert f"diverged at step {BLOWUP_STEPS}" in high and "stayed above 10x" in high and "from step 1" in high
    assert "infinite or NaN" in describe(find_divergence([2.0, math.nan]).to_summary())
    assert "diverged at step 7 (the loss became infinite or NaN" in describe({"status": "diverged", "diverged_at": 7})
