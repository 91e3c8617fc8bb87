"""Tables of runs for the pages: pure functions, History -> pandas DataFrame (no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.history import History
from ..engine.shift import relative_drift


def final_numbers(runs: list[tuple[str, History]]) -> pd.DataFrame:
    """One row per run: its normalization, steps recorded, last measured test accuracy, last loss, mean drift of
    every recorded stage at the last step (1-Wasserstein distance to step 0, in step-0 standard deviations) and
    status. None where a run has no such number yet. Cheap enough for a live page: the drift is computed for the
    last row only."""
    rows = []
    for label, h in runs:
        n = len(h)
        test = h.scalar("test_acc")
        measured = test[np.isfinite(test)]
        drift = None
        if n:
            last = relative_drift(h, "first", np.array([n - 1]), list(range(len(h.layout.probes))))
            drift = float(np.nanmean(last)) if np.isfinite(last).any() else None
        rows.append({"run": label, "norm": h.meta.get("config", {}).get("norm"), "steps recorded": n,
                     "last test accuracy": float(measured[-1]) if len(measured) else None,
                     "last loss": float(h.scalar("loss")[-1]) if n else None,
                     "mean drift (last step, in step-0 stds)": drift,
                     "status": h.meta.get("summary", {}).get("status", "training")})
    return pd.DataFrame(rows)
