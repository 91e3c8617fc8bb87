"""Train & watch: every knob, presets, and the live distributions of every block."""

import streamlit as st

from bnviz import figures
from bnviz.ui.choices import DETAIL_VIEWS, STAGE_VIEWS, layer_index
from bnviz.ui.controls import block_slider, look_for_line, put_in_sidebar, sidebar_setup
from bnviz.ui.live import LIVE_POINTS, download_button, live_view, run_buttons
from bnviz.ui.page import page_header, presenting, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain
from bnviz.ui.upload_panel import upload_panel

page_header("Train & watch", """
Pick a preset or set every knob in the sidebar, press **▶ Start**, and watch each block's values change while the
network learns. Each heatmap column is one step's histogram (darker = more values); the orange lines are the 15th,
50th and 85th percentiles. A *twin* run differs in one setting only; the line under the twin's controls says what
the two runs share (the same initial weights where their layers match, the same batches when their data and batch
size match). Whatever they do not share is a second difference between them.
""")

lab = get_lab()
configs, labels = sidebar_setup()
upload_panel(("cfg_dataset",))

look_for_line()
run_buttons(lab, lambda: configs, labels, key="train")
stages = {"act_input": "input to the activation", "pre": "pre: conv/linear output", "norm": "norm: normalized",
          "act": "act: activation output"}
# in presenter mode the view choices fold away: the charts start on the projector's first screen
c1, c2 = st.expander("Chart options").columns(2) if presenting() else st.columns(2)
stage = c1.radio("Which values", STAGE_VIEWS, format_func=stages.get, horizontal=True, key="train_stage",
                 persist_state="session")
details = {"histogram": "this block now vs step 0", "drift": "drift of every block",
           "saturation": "saturated / dead units"}
detail = c2.radio("Detail chart", DETAIL_VIEWS, format_func=details.get, horizontal=True, key="train_detail",
                  persist_state="session")
block = block_slider(c2, "Block (for the histogram)", "train_block", configs, lab.histories()[1])


def frame(labels):
    """What stays the same while a run trains (drawn once, not on every refresh: live_view): the grid's caption, a
    column per run with its heading, and the detail chart's caption; returns the columns, for the detail charts."""
    st.caption(figures.caption("distribution_grid"))
    columns = st.columns(len(labels))
    for column, label in zip(columns, labels, strict=True):
        column.markdown(f"**Run {plain(label)}**")
    st.caption(figures.caption(detail))
    return columns


def draw(labels, histories, place):
    runs = list(zip(labels, histories, strict=True))
    show(figures.loss_accuracy(runs), "train_loss")
    show(figures.distribution_grid(runs, stage=stage, max_points=LIVE_POINTS), "train_grid")
    columns = place()  # the frame: drawn here, or already, below the part that refreshes (live_view)
    layer = layer_index(block, min(len(h.layout.layers) for h in histories))
    if detail == "histogram":
        panels = figures.side_by_side(figures.histogram_now_vs_start, histories, layer, stage)
    else:
        panels = figures.side_by_side(getattr(figures, detail), histories)  # one scale: the runs compare
    for column, label, fig in zip(columns, labels, panels, strict=True):
        show(fig, f"train_{detail}_{label}", narrow=True, container=column)


live_view(lab, draw, key="train", settings=(configs, put_in_sidebar), frame=frame, preview=(
    "Loss and accuracy", "The loss and accuracy will appear here, and below them every block's distribution, step "
    "by step while the network trains."))
download_button(lab, key="train")
