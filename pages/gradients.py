"""Gradients: how big they are per block, how they are distributed, and how big each update is."""

import streamlit as st

from bnviz import figures
from bnviz.ui.choices import layer_index
from bnviz.ui.controls import block_slider, put_in_sidebar, sidebar_setup
from bnviz.ui.live import live_view, run_buttons
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain

page_header("Gradients", """
Learning happens through gradients. If they shrink layer by layer (*vanishing*) the first layers stop learning; if
they grow (*exploding*) training diverges. What batch norm does to them is contested. Ioffe & Szegedy (2015,
section 3.3) argued that by normalizing every layer's input, BN keeps small parameter changes from growing into
large changes of the activations and gradients, which allows larger learning rates. Yang et al. (ICLR 2019, a
mean-field theory of batch norm) showed that at initialization BN *causes* gradients to explode as depth grows, in
deep networks without skip connections. Compare the gradient sizes of your own runs below, block by block.
""")

lab = get_lab()
configs, labels = sidebar_setup()
run_buttons(lab, lambda: configs, labels, key="grad")
block = block_slider(st, "Block for the gradient histogram", "grad_block", configs, lab.histories()[1])


def draw(labels, histories):
    layer = layer_index(block, min(len(h.layout.layers) for h in histories))
    panels = [figures.side_by_side(figures.gradient_norms, histories),  # one scale per row: the runs compare
              figures.side_by_side(figures.gradient_histogram, histories, layer),
              figures.side_by_side(figures.update_ratios, histories, "update_data"),
              figures.side_by_side(figures.update_ratios, histories, "grad_data")]
    for i, (column, label) in enumerate(zip(st.columns(len(labels)), labels, strict=True)):
        with column:
            st.markdown(f"**Run {plain(label)}**")
            for name, row in zip(("norms", "hist", "upd", "gd"), panels, strict=True):
                show(row[i], f"grad_{name}_{label}", narrow=True)
    st.caption("How to read them: **gradient norm** (log scale) — similar sizes across blocks mean every block "
               "learns; a block far below the others barely moves. **Gradient histogram** — the spread of "
               "log10 |gradient| at each step. **update:data** — how much one step changes a weight relative to "
               "its size; around 1e-3 (dashed line) is a healthy rule of thumb (Karpathy); far above means "
               "unstable, far below means slow. **grad:data** — the gradient's size relative to the weight's.")


live_view(lab, draw, key="grad", settings=(configs, put_in_sidebar), preview=(
    "Gradient norm per block", "Each block's gradient size, its histogram and the size of each update "
    "relative to the weights will appear here while the network trains."))
