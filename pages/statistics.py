"""Beyond the basics: BN's running statistics at test time, and what BN does not do (decorrelate channels)."""

import streamlit as st

from bnviz import figures
from bnviz.science.running_statistics import (
    MOMENTA,
    centered_mean,
    ema,
    running_stats_findings,
    running_stats_lesson,
)
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("Running statistics, and what BN does not do", """
In eval mode batch norm normalizes with **running statistics**: averages of the batch statistics it saw while
training. How good are they, what happens when a model is left in train mode at test time, and does BN also
decorrelate its channels? One run of the default CNN with BN, trained with small batches (8 images), answers all
three.
""")

st.markdown("""
**Look for:**
- the eval-mode accuracy with the running averages kept during training vs with statistics recomputed over the
  training set after training ("precise BN", Wu & Johnson 2021, *Rethinking "Batch" in BatchNorm*): the running
  averages mix batches seen while the weights were still changing;
- the score when the network is left in **train mode** and sees test images one at a time: each image is then
  normalized with its own statistics (the classic forgotten `model.eval()`);
- how the running mean follows one channel's batch mean for three momenta (PyTorch: running = (1 − momentum) ·
  running + momentum · batch statistic; default 0.1);
- the correlation between channels before and after BN (Ioffe & Szegedy 2015, section 3: BN normalizes each
  channel on its own, it does not whiten them).
""")
result = run_section("stats", running_stats_lesson, dict(steps=400, batch_size=8), "▶ Train and measure",
                     empty_text="Press the button to train the CNN (400 steps, batches of 8) and measure.")
if result is not None:
    with drawing("the running-statistics lesson"):
        st.markdown("\n".join(f"- {line}" for line in running_stats_findings(result)))
        means = result.batch_means
        show(figures.ema_chart(means, {m: ema(means, m) for m in MOMENTA}, centered_mean(means)), "stats_ema")
        show(figures.correlation_heatmaps(result.correlation_in, result.correlation_out), "stats_corr")
        st.caption("Our setting, not the papers': " + ", ".join(f"{k} {v}" for k, v in result.settings.items())
                   + ". Correlations on the test set in eval mode. Precise BN here averages the training set's "
                     "batch statistics (batches of 256) with the final weights.")
