"""When a training run counts as diverged: the one rule, used by the trainer (and nowhere else).

A run diverged at step k when
- its loss at step k is not finite (inf or NaN): reason NON_FINITE; or
- its loss has been above BLOWUP_FACTOR x the step-0 loss for BLOWUP_STEPS steps in a row, step k being the last of
  them: reason STAYS_HIGH. A spike that comes back below the line within fewer steps does not count, and the count
  starts again after it.

The step-0 loss is that of the untrained network (for 10 classes about ln 10 = 2.3, so the line is about 23). A run
whose step-0 loss is itself not finite diverged at step 0. The rule is pure: it sees only the sequence of losses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

BLOWUP_FACTOR = 10.0  # "far above where it started": this many times the step-0 loss
BLOWUP_STEPS = 20  # ... for this many steps in a row
NON_FINITE = "non-finite"
STAYS_HIGH = "loss-stays-high"


@dataclass(frozen=True)
class Divergence:
    """Why and when a run diverged. step: the step at which the rule fired (the run stops there); since: the first
    step of the run of high losses (== step for a non-finite loss); start_loss: the step-0 loss."""

    step: int
    reason: str
    since: int
    start_loss: float | None

    def to_summary(self) -> dict:
        """The keys a run's summary carries (next to "status": "diverged")."""
        return {"diverged_at": self.step, "diverged_reason": self.reason, "diverged_since": self.since,
                "start_loss": self.start_loss}


class DivergenceWatch:
    """Feeds the rule one loss at a time (steps 0, 1, 2, ... in order); `update` returns a Divergence once it fires."""

    def __init__(self) -> None:
        self.start_loss: float | None = None
        self.high_since: int | None = None

    def update(self, step: int, loss: float) -> Divergence | None:
        if not math.isfinite(loss):
            return Divergence(step, NON_FINITE, step, self.start_loss)
        if self.start_loss is None:
            self.start_loss = loss
            return None
        if loss <= BLOWUP_FACTOR * self.start_loss:
            self.high_since = None
            return None
        if self.high_since is None:
            self.high_since = step
        if step - self.high_since + 1 >= BLOWUP_STEPS:
            return Divergence(step, STAYS_HIGH, self.high_since, self.start_loss)
        return None


def find_divergence(losses: Iterable[float]) -> Divergence | None:
    """The rule applied to a whole sequence of losses (index = step): the first step at which it fires, or None."""
    watch = DivergenceWatch()
    for step, loss in enumerate(losses):
        found = watch.update(step, float(loss))
        if found is not None:
            return found
    return None


def describe(summary: dict) -> str:
    """'diverged at step k (why)' from a run's summary. Runs saved before the second reason existed carry no
    "diverged_reason": a non-finite loss was then the only one."""
    step = summary.get("diverged_at")
    if summary.get("diverged_reason") == STAYS_HIGH:
        start = summary.get("start_loss")
        line = f" ({start:.2f})" if isinstance(start, int | float) else ""
        why = (f"the loss stayed above {BLOWUP_FACTOR:g}x its step-0 value{line} for {BLOWUP_STEPS} steps in a row, "
               f"from step {summary.get('diverged_since')}")
    else:
        why = "the loss became infinite or NaN"
    return f"diverged at step {step} ({why}; try a smaller learning rate or batch norm)"
