"""Compare two runs: any two settings, trained in lockstep; a line says what the two share."""

import streamlit as st

from bnviz import figures
from bnviz.engine.twins import what_runs_share
from bnviz.science.run_words import run_names
from bnviz.ui.controls import config_controls, seed_widgets
from bnviz.ui.link_params import COMPARE
from bnviz.ui.live import LIVE_POINTS, download_button, live_view, run_buttons
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.upload_panel import upload_panel

page_header("Compare two runs", """
Set up run **A** and run **B** (by default identical except that A uses batch norm and B does not). Both train in
lockstep; B starts from A's initial weights wherever their layers match, and both train on the same batches when
their data and batch size match (the line under the settings says which holds). Every chart uses shared axes, so
the difference you see is the difference you made, and whatever the two do not share.
""")

lab = get_lab()
left, right = st.columns(2)
with left:
    st.header("Run A")
    a = config_controls("cmpA", container=left, compact=True, defaults=COMPARE.configs["a."])
with right:
    st.header("Run B")
    b = config_controls("cmpB", container=right, compact=True, defaults=COMPARE.configs["b."])
st.caption(what_runs_share(a, b).sentence())
upload_panel(("cmpA_dataset", "cmpB_dataset"))
run_buttons(lab, lambda: [a, b], list(run_names(a, b)), key="compare")  # named by what differs: "no BN" / "BN"


def put_back(configs):
    seed_widgets("cmpA", configs[0])
    seed_widgets("cmpB", configs[-1])


def draw(labels, histories):
    runs = list(zip(labels, histories, strict=True))
    show(figures.loss_accuracy(runs), "cmp_loss")
    show(figures.distribution_grid(runs, stage=figures.ACT_INPUT, max_points=LIVE_POINTS), "cmp_grid")
    st.caption(figures.caption("distribution_grid"))
    show(figures.percentile_lines(runs), "cmp_pct")
    st.caption(figures.caption("percentiles"))
    st.dataframe(figures.final_numbers(runs), hide_index=True,  # accuracy in %, as the charts show it
                 column_config={"last test accuracy": st.column_config.NumberColumn(format="percent")})


live_view(lab, draw, key="compare", settings=([a, b], put_back), preview=(
    "Loss and accuracy, run A and run B", "Both runs' loss and accuracy will appear here, and below them their "
    "distributions side by side on shared axes."))
download_button(lab, key="compare")
