"""Home: what internal covariate shift and batch normalization are, and a one-click demo."""

import streamlit as st

from bnviz import figures
from bnviz.engine.twins import what_runs_share
from bnviz.science.presets import DEFAULT_PRESET, PRESETS
from bnviz.ui.link_params import preset_configs
from bnviz.ui.live import LIVE_POINTS, live_view, start
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab

page_header("Batch normalization, live", """
A deep network learns every layer at once, so while it trains, the values that each layer receives keep
changing: their mean and spread **drift**. Ioffe & Szegedy (2015) called this *internal covariate shift* and
proposed **batch normalization (BN)**: for each channel, subtract the mini-batch mean, divide by the mini-batch
standard deviation, then scale by a learned **γ** and shift by a learned **β**. In their experiments BN let
networks train faster and with larger learning rates. *Why* it helps is still debated: reducing the shift was their
hypothesis; Santurkar et al. (2018) argued that BN helps more by smoothing the loss landscape, and there are other
accounts (page **Is it really ICS?**). The demo below shows the shift itself: each block's input distribution, with
BN and without.
""")

lab = get_lab()
preset = PRESETS[DEFAULT_PRESET]
left, right = st.columns([1, 2])
with left:
    st.header("One-click demo")
    if st.button("▶ Watch BN vs no BN", type="primary", key="home_demo"):
        start(lab, preset_configs(DEFAULT_PRESET), list(preset.labels), origin="home")  # the picker's runs
    st.markdown(f"**Look for:** {preset.look_for}")  # next to the button: on a projector's first screen
    st.markdown(f"{preset.summary} {what_runs_share(*preset.configs()).sentence()}")
with right:
    def draw(labels, histories):
        runs = list(zip(labels, histories, strict=True))
        show(figures.distribution_grid(runs, stage=figures.ACT_INPUT, max_points=LIVE_POINTS), "home_grid")
        st.caption(figures.caption("distribution_grid"))

    live_view(lab, draw, key="home", start_hint="press **▶ Watch BN vs no BN**",
              preview=("Distribution of each block's activation input, run by run",
                       "Each block's values, with BN and without, will appear here side by side and change while "
                       "both runs train."))

st.header("The pages")
st.markdown("""
- **Train & watch**: every setting, six preset experiments, live distributions of every layer, twin runs.
- **Compare two runs**: any two settings side by side (on the same batches when their data and batch size match),
  with a table of the final numbers.
- **Gradients**: gradient sizes per layer, their histograms, and how big each update is relative to the weights.
- **Inside BatchNorm**: γ and β per channel, batch vs running statistics, and the train-mode vs eval-mode gap.
- **Save & open runs**: download what you trained, open it again later (or on another computer).
- **BatchNorm step by step**: the arithmetic of one BN layer on a batch you can edit, checked against PyTorch.
- **The normalization zoo**: batch, layer, instance and group norm side by side, and what tiny batches do to BN.
- **Is it really ICS?**: the published experiments on *why* BN helps, rerun live (Ioffe & Szegedy; Santurkar et al.).
- **Quiz and glossary**: check what you understood, look up a term, flip through flashcards.
""")
