"""Inside BatchNorm: gamma and beta, batch vs running statistics, and the train/eval gap."""

import streamlit as st

from bnviz import figures
from bnviz.ui.choices import BN_STATS, layer_index
from bnviz.ui.controls import block_slider, put_in_sidebar, sidebar_setup
from bnviz.ui.live import live_view, run_buttons
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain

page_header("Inside BatchNorm", r"""
In training, BN normalizes each channel with the **current batch's** mean μ and variance σ² (divided by *m*, the
number of values per channel): $\hat x = (x-\mu)/\sqrt{\sigma^2+\epsilon}$, then $y = \gamma \hat x + \beta$
with a learned scale γ and shift β per channel. It also keeps **running averages** for use at test time (eval
mode): running = (1 − momentum) × running + momentum × batch statistic, with momentum 0.1 by default (PyTorch's
convention; some frameworks write 0.9 for the same thing). The running variance is fed the unbiased estimate
*m*/(*m* − 1) · σ² (divided by *m* − 1), while the normalization in training uses σ² (divided by *m*). A larger
momentum follows recent batches more closely but more noisily.
""")

lab = get_lab()
configs, labels = sidebar_setup()
run_buttons(lab, lambda: configs, labels, key="bn")
c1, c2 = st.columns(2)
block = block_slider(c1, "Block", "bn_block", configs, lab.histories()[1])
stat = c2.radio("Statistic", BN_STATS, horizontal=True, key="bn_stat", persist_state="session",
                format_func={"mean": "mean", "var": "variance"}.get)


def draw(labels, histories):
    runs = list(zip(labels, histories, strict=True))
    show(figures.train_eval_gap(runs), "bn_gap")
    st.caption(figures.caption("train_eval_gap"))
    layer = layer_index(block, min(len(h.layout.layers) for h in histories))
    gamma_beta = figures.side_by_side(figures.gamma_beta, histories, layer)  # the runs share colour scales
    running = figures.side_by_side(figures.running_vs_batch, histories, layer, stat)  # and y axes
    for i, (column, label) in enumerate(zip(st.columns(len(runs)), labels, strict=True)):
        with column:
            st.markdown(f"**Run {plain(label)}**")
            show(gamma_beta[i], f"bn_gb_{label}", narrow=True)
            show(running[i], f"bn_rb_{label}", narrow=True)
    st.caption(figures.caption("running_vs_batch"))


live_view(lab, draw, key="bn", settings=(configs, put_in_sidebar), preview=(
    "Test accuracy in eval mode and in train mode", "The train/eval gap, γ and β per channel and the batch "
    "against the running statistics will appear here while the network trains."))
