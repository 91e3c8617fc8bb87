"""Is it really internal covariate shift? Four experiments, the published claims, and our numbers."""


import streamlit as st

from bnviz import figures
from bnviz.science.figure1 import figure1
from bnviz.science.findings import (
    figure1_findings,
    figure1_table,
    init_table,
    lr_table,
    santurkar_findings,
    santurkar_table,
)
from bnviz.science.published import PUBLISHED
from bnviz.science.santurkar import santurkar
from bnviz.science.sweeps import init_sweep, lr_sweep
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("Is it really internal covariate shift?", """
Ioffe & Szegedy (2015) introduced batch norm to reduce **internal covariate shift**: the change of each layer's input
distribution while the layers before it learn. That BN speeds up training is beyond doubt; *why* is another
question. Santurkar et al. (2018) argued that BN helps mostly by making the loss landscape **smoother**, which
allows larger learning rates, and that reducing the shift is not the mechanism. Run the experiments below, each a
small version of a published one on the 8x8 digits, and judge the evidence yourself.
""")


EXPECTED_NOTE = ("'Paper': the published claim. 'Small version': what this same small experiment on the 8x8 digits "
                 "is expected to show according to the app's reference notes. 'Ours': measured just now.")


def table(frame, key: str) -> None:
    st.dataframe(frame, hide_index=True, key=key)
    st.caption(EXPECTED_NOTE)


def published(name: str) -> None:
    entry = PUBLISHED[name]
    st.caption(f"Published: {entry['source']}. {entry['claim']}")


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def seed_input(key: str, column) -> int:
    return int(column.number_input("seed", min_value=0, max_value=9999, value=0, step=1, key=f"{key}_seed"))


# ---- 1 ---------------------------------------------------------------------------------------------------------------
st.header("1. The original picture: Ioffe & Szegedy's Figure 1")
published("figure1")
st.markdown("""
A network of 3 hidden layers of 100 sigmoid units (batch 60, SGD with learning rate 0.5) learns the digits with and
without BN, from the same weights on the same batches. **Look for** the median and the 15th/85th percentiles of the
values entering a sigmoid of the last hidden layer: without BN they wander as the earlier layers learn, with BN they
stay nearly put, and BN's accuracy shoots up within the first hundred steps. This is the evidence that motivated the
ICS explanation: it shows that BN stabilizes the distributions, not yet that this stability is why it trains faster.
""")
c1, c2 = st.columns(2)
f1_steps = c1.select_slider("training steps", options=[1000, 2000, 3000], value=3000, key="f1_steps")
f1 = run_section("f1", figure1, dict(steps=int(f1_steps), seed=seed_input("f1", c2)),
                 "▶ Run Figure 1 (about 15-30 s)")
if f1 is not None:
    with drawing("Figure 1"):
        left, right = st.columns(2)
        show(figures.figure1_accuracy(f1), "f1_acc", narrow=True, container=left)
        show(figures.figure1_percentiles(f1), "f1_pct", narrow=True, container=right)
        st.markdown(bullets(figure1_findings(f1)))
        table(figure1_table(f1), "f1_table")
        with st.expander("The same input pooled over all units and images (not the paper's measure)"):
            show(figures.figure1_pooled_percentiles(f1), "f1_pooled")

# ---- 2 ---------------------------------------------------------------------------------------------------------------
st.header("2. Santurkar et al.: noisy BN, a gradient measure of ICS, and the landscape")
published("santurkar")
st.markdown("""
Three networks (4 hidden layers of 64 ReLU units, SGD with learning rate 0.1) train on the same batches: without BN,
with BN, and with **noisy BN**, where after every BN layer a fresh random shift and scale is added at every step, so
the next layer's input distribution moves on purpose. **Look for** three things. (a) If stable distributions were
what BN gives, noisy BN should train badly; Santurkar et al. found it trains about as well as BN. (b) Their
gradient measure of ICS, how much a layer's gradient changes when the earlier layers update first, was not smaller
with BN in their networks; compare it here. (c) Along the gradient direction, the loss and the gradient change far
less with BN: a smoother landscape, which is what lets BN use larger learning rates.
""")
c1, c2 = st.columns(2)
s_steps = c1.select_slider("training steps", options=[300, 600, 1000], value=600, key="s_steps")
sant = run_section("s", santurkar, dict(steps=int(s_steps), seed=seed_input("s", c2)),
                   "▶ Run no BN vs BN vs noisy BN (about 15-30 s)")
if sant is not None:
    with drawing("the Santurkar experiment"):
        left, right = st.columns(2)
        show(figures.santurkar_accuracy(sant), "s_acc", narrow=True, container=left)
        show(figures.santurkar_drift(sant), "s_drift", narrow=True, container=right)
        left, right = st.columns(2)
        show(figures.santurkar_ics(sant), "s_ics", narrow=True, container=left)
        show(figures.santurkar_landscape(sant), "s_land", narrow=True, container=right)
        st.dataframe(santurkar_table(sant), hide_index=True, key="s_table")
        st.markdown("**What this run showed**\n\n" + bullets(santurkar_findings(sant)))
        st.markdown("""
**Judge for yourself.** If noisy BN's inputs move at least as much as those of the network without BN and it still
trains about as well as BN, stable input distributions cannot be the whole story. The gradient ICS depends on the
network: a small network like this one may show BN reducing it somewhat, while in the networks Santurkar et al.
studied (VGG, deep linear networks) it did not, and the landscape was smoother with BN. Today's reading: BN helps
optimization mostly by smoothing the landscape and so allowing larger learning rates; reducing internal covariate
shift was the original hypothesis, not the established mechanism.
""")

# ---- 3 ---------------------------------------------------------------------------------------------------------------
st.header("3. Learning-rate tolerance")
published("lr_sweep")
st.markdown("""
A deeper network (6 hidden layers of 64 ReLU units, plain SGD, batch 64) trains with learning rates from 0.01 to 3,
with and without BN. **Look for** the learning rates at which the network without BN never leaves chance or diverges
(its loss becomes infinite), while the BN network trains. A landscape that stays predictable over longer steps
(section 2) is exactly what a large learning rate needs: this is the practical benefit that matters most.
""")
c1, c2 = st.columns(2)
lr_steps = c1.select_slider("training steps", options=[500, 1000], value=1000, key="lr_steps")
lrs = run_section("lr", lr_sweep, dict(steps=int(lr_steps), seed=seed_input("lr", c2)),
                  "▶ Run the learning-rate sweep (about 20-40 s)")
if lrs is not None:
    with drawing("the learning-rate sweep"):
        left, right = st.columns([3, 2])
        show(figures.lr_sweep_chart(lrs), "lr_chart", container=left)
        with right:
            table(lr_table(lrs), "lr_table")

# ---- 4 ---------------------------------------------------------------------------------------------------------------
st.header("4. Sensitivity to the initial weights")
published("init_sweep")
st.markdown("""
The sigmoid network of section 1 starts from weights drawn from N(0, s²) for scales s from 0.01 to 5. **Look for**
the scales where the network without BN is stuck: with tiny weights the signal and the gradients fade through the
layers; with huge ones the sigmoids saturate and their gradients vanish. BN rescales every layer's input whatever the
weights' size (BN(a·W·u) = BN(W·u)), so each scale trains.
""")
c1, c2 = st.columns(2)
init_steps = c1.select_slider("training steps", options=[500, 1000], value=1000, key="init_steps")
inits = run_section("init", init_sweep, dict(steps=int(init_steps), seed=seed_input("init", c2)),
                    "▶ Run the initialization sweep (about 15-30 s)")
if inits is not None:
    with drawing("the initialization sweep"):
        left, right = st.columns([3, 2])
        show(figures.init_sweep_chart(inits), "init_chart", container=left)
        with right:
            table(init_table(inits), "init_table")

st.divider()
st.markdown("""
**Sources.** Ioffe & Szegedy (2015), *Batch normalization: accelerating deep network training by reducing internal
covariate shift*. Santurkar, Tsipras, Ilyas & Madry (2018), *How does batch normalization help optimization?*
Bjorck, Gomes, Selman & Weinberger (2018), *Understanding batch normalization*. The small versions here run on the
bundled 8x8 digits; their numbers are ours, measured with the settings shown, not the papers'.
""")
