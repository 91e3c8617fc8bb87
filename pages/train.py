"""Train & watch: every knob, presets, and the live distributions of every block."""

import streamlit as st

from bnviz import figures
from bnviz.ui.choices import BLOCKS, DETAIL_VIEWS, STAGE_VIEWS, layer_index
from bnviz.ui.controls import sidebar_setup
from bnviz.ui.live import LIVE_POINTS, download_button, live_view, run_buttons
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain
from bnviz.ui.upload_panel import upload_panel

page_header("Train & watch", """
Pick a preset or set every knob in the sidebar, press **▶ Start**, and watch each block's values change while the
network learns. Each heatmap column is one step's histogram (darker = more values); the orange lines are the 15th,
50th and 85th percentiles. A *twin* run trains on the very same batches from the same initial weights and differs
in one setting only, so any difference you see comes from that setting.
""")

lab = get_lab()
configs, labels = sidebar_setup()
upload_panel(("cfg_dataset",))

run_buttons(lab, lambda: configs, labels, key="train")
stages = {"act_input": "input to the activation", "pre": "pre: conv/linear output", "norm": "norm: normalized",
          "act": "act: activation output"}
c1, c2 = st.columns(2)
stage = c1.radio("Which values", STAGE_VIEWS, format_func=stages.get, horizontal=True, key="train_stage",
                 persist_state="session")
details = {"histogram": "this block now vs step 0", "drift": "drift of every block",
           "saturation": "saturated / dead units"}
detail = c2.radio("Detail chart", DETAIL_VIEWS, format_func=details.get, horizontal=True, key="train_detail",
                  persist_state="session")
block = c2.slider("Block (for the histogram)", BLOCKS[0], BLOCKS[-1], BLOCKS[0], key="train_block",
                  persist_state="session")


def draw(labels, histories):
    runs = list(zip(labels, histories, strict=True))
    show(figures.loss_accuracy(runs), "train_loss")
    show(figures.distribution_grid(runs, stage=stage, max_points=LIVE_POINTS), "train_grid")
    st.caption(figures.caption("distribution_grid"))
    layer = layer_index(block, len(histories[0].layout.layers))
    for column, (label, history) in zip(st.columns(len(runs)), runs, strict=True):
        with column:
            st.markdown(f"**Run {plain(label)}**")
            if detail == "histogram":
                fig = figures.histogram_now_vs_start(history, layer, stage)
            else:
                fig = getattr(figures, detail)(history)
            show(fig, f"train_{detail}_{label}", narrow=True)
    st.caption(figures.caption(detail))


live_view(lab, draw, key="train", preview=(
    "Loss and accuracy", "The loss and accuracy will appear here, and below them every block's distribution, step "
    "by step while the network trains."))
download_button(lab, key="train")
