"""Gradients: how big they are per block, how they are distributed, and how big each update is."""

import streamlit as st

from bnviz import figures
from bnviz.ui.choices import BLOCKS, layer_index
from bnviz.ui.controls import sidebar_setup
from bnviz.ui.live import live_view, run_buttons
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain

page_header("Gradients", """
Learning happens through gradients. If they shrink layer by layer (*vanishing*) the first layers stop learning; if
they grow (*exploding*) training diverges. Batch norm keeps each layer's input at a steady scale, which also keeps
its gradients in a workable range, one reason it tolerates larger learning rates.
""")

lab = get_lab()
configs, labels = sidebar_setup()
run_buttons(lab, lambda: configs, labels, key="grad")
block = st.slider("Block for the gradient histogram", BLOCKS[0], BLOCKS[-1], BLOCKS[0], key="grad_block",
                  persist_state="session")


def draw(labels, histories):
    runs = list(zip(labels, histories, strict=True))
    for column, (label, history) in zip(st.columns(len(runs)), runs, strict=True):
        with column:
            st.markdown(f"**Run {plain(label)}**")
            show(figures.gradient_norms(history), f"grad_norms_{label}", narrow=True)
            layer = layer_index(block, len(history.layout.layers))
            show(figures.gradient_histogram(history, layer), f"grad_hist_{label}", narrow=True)
            show(figures.update_ratios(history, "update_data"), f"grad_upd_{label}", narrow=True)
            show(figures.update_ratios(history, "grad_data"), f"grad_gd_{label}", narrow=True)
    st.caption("How to read them: **gradient norm** (log scale) — similar sizes across blocks mean every block "
               "learns; a block far below the others barely moves. **Gradient histogram** — the spread of "
               "log10 |gradient| at each step. **update:data** — how much one step changes a weight relative to "
               "its size; around 1e-3 (dashed line) is a healthy rule of thumb (Karpathy); far above means "
               "unstable, far below means slow. **grad:data** — the gradient's size relative to the weight's.")


live_view(lab, draw, key="grad", preview=(
    "Gradient norm per block", "Each block's gradient size, its histogram and the size of each update "
    "relative to the weights will appear here while the network trains."))
