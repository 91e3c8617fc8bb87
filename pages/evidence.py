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
distribution while the layers before it learn. That BN speeds up training and tolerates larger learning rates is
well supported by experiments, theirs and many since; *why* is still debated. Reducing the shift was their
hypothesis. Santurkar et al. (2018) argued that BN helps mostly by making the loss landscape **smoother**, which
allows larger learning rates, and that reducing the shift is not the mechanism; other accounts are listed at the end
of the page. Run the experiments below, each a small version of a published one on the 8x8 digits, and judge the
evidence yourself.
""")


EXPECTED_NOTE = ("'Ours': measured by the run above. 'Paper' or 'expected': what the paper reports, or, where it "
                 "reports nothing for this setting, what an earlier reference run of this same small experiment "
                 "showed (not a published number).")


def wrapped_table(frame) -> None:
    """A table whose long cells wrap (an interactive dataframe cuts them off at 1280 px); the first column labels
    the rows."""
    st.table(frame.set_index(frame.columns[0]))


def table_with_note(frame) -> None:
    wrapped_table(frame)
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
The paper's network, 3 hidden layers of 100 sigmoid units with batch 60, learns the digits with and without BN,
on the same batches, from the same initial weights where their layers match. What differs from the paper (its
setting is above): the 8x8 digits and at most 3,000 steps; plain SGD with learning rate 0.5 and PyTorch's default
initial weights are our choices, as the paper gives no learning rate or optimizer.
**Look for** the median and the 15th/85th percentiles of the values entering a sigmoid of the last hidden layer: the
paper found them moving in mean and spread without BN and "much more stable" with BN (γ and β can still move them);
see how far they move here, and how fast each network's accuracy rises. The hypothesis came first: section 4.1 of
the paper tests whether BN stabilizes these distributions. Showing that it does is not yet showing that this
stability is why BN trains faster.
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
        table_with_note(figure1_table(f1))
        with st.expander("The same input pooled over all units and images (not the paper's measure)"):
            show(figures.figure1_pooled_percentiles(f1), "f1_pooled")

# ---- 2 ---------------------------------------------------------------------------------------------------------------
st.header("2. Santurkar et al.: noisy BN, a gradient measure of ICS, and the landscape")
published("santurkar")
st.markdown("""
Three networks (4 hidden layers of 64 ReLU units, SGD with learning rate 0.1) train on the same batches: without BN,
with BN, and with **noisy BN**, where after every BN layer a fresh random shift and scale is added at every step, so
the next layer's input distribution moves on purpose. **Look for** three things. (a) If stable input distributions
were *why* BN helps, noisy BN should train badly; Santurkar et al. found it trains about as well as BN. (b) Their
gradient measure of ICS, how much a layer's gradient changes when the earlier layers update first, was not smaller
with BN in their networks; compare it here. (c) Along the gradient direction, Santurkar et al. measured far smaller
changes of the loss and the gradient with BN: a smoother landscape, which in their account is what lets BN use
larger learning rates (their hypothesis, not a measurement). Compare the landscape of this run.
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
        wrapped_table(santurkar_table(sant))
        st.markdown("**What this run showed**\n\n" + bullets(santurkar_findings(sant)))
        st.markdown("""
**Judge for yourself.** If noisy BN's inputs move at least as much as those of the network without BN and it
trains about as well as BN, stable input distributions are not necessary for BN's benefit. The gradient ICS depends
on the network and the measure: compare finding (b) of this run with Santurkar et al.'s networks (VGG, deep linear
networks), where it was not smaller with BN. Santurkar et al.'s reading is that BN helps optimization mostly by
smoothing the landscape and so allowing larger learning rates. It is one account among several (listed at the end
of this page). Reducing internal covariate shift was the original hypothesis, not an established mechanism.
""")

# ---- 3 ---------------------------------------------------------------------------------------------------------------
st.header("3. Learning-rate tolerance")
published("lr_sweep")
st.markdown("""
A deeper network (6 hidden layers of 64 ReLU units, plain SGD, batch 64) trains with learning rates from 0.01 to 3,
with and without BN. **Look for** the learning rates at which each network fails, and how: a run can diverge (the
table says at which step), learn a little and fall back to chance, or stay near chance because its steps are too
small to leave the starting plateau in time (slow, not intolerant: compare it with the next larger rate). Bjorck et
al. (2018) found that without BN, large updates make the activations and the loss diverge, more so the deeper the
network, which caps the usable learning rate; and that BN's gain in generalization comes through the larger learning
rates it allows.
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
            table_with_note(lr_table(lrs))

# ---- 4 ---------------------------------------------------------------------------------------------------------------
st.header("4. Sensitivity to the initial weights")
published("init_sweep")
st.markdown("""
The sigmoid network of section 1 starts from weights drawn from N(0, s²) for scales s from 0.01 to 5. **Look for**
the scales at which each network stays near chance or ends lower. Without BN, tiny weights let the signal and the
gradients fade through the layers, and huge ones saturate the sigmoids, whose gradients then vanish. BN(a·W·u) =
BN(W·u) makes the forward pass of a layer followed by BN independent of its weights' scale, but not the training
dynamics: the gradient scales as 1/a, so the effective step of plain SGD scales as lr / a² (large weights learn
slowly, tiny ones take huge steps), and the output layer (no BN after it) still sees the scale. Whether every scale
trains is what the sweep measures.
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
            table_with_note(init_table(inits))

st.divider()
st.markdown("""
**Other accounts of why BN helps.** Bjorck et al. (2018) found that without BN large updates make the activations
and the loss diverge as depth grows, and that BN's benefit comes through the larger learning rates it allows.
Kohler et al. (2019) credit BN's splitting of each weight vector into a length and a direction. Arora et al. (2019)
show that its scale invariance tunes the effective learning rate automatically. De & Smith (2020) find that in
residual networks BN shrinks the residual branches relative to the skip connections, so deep residual networks
start close to the identity. Yang et al. (2019) show that in deep networks without skip connections BN *causes*
gradient explosion at initialization. None of these is settled as *the* explanation.

**Sources.** Ioffe & Szegedy (2015), *Batch normalization: accelerating deep network training by reducing internal
covariate shift*. Santurkar, Tsipras, Ilyas & Madry (2018), *How does batch normalization help optimization?*
Bjorck, Gomes, Selman & Weinberger (2018), *Understanding batch normalization*. Kohler et al. (2019), *Exponential
convergence rates for batch normalization: the power of length-direction decoupling in non-convex optimization*.
Arora, Li & Lyu (2019), *Theoretical analysis of auto rate-tuning by batch normalization*. De & Smith (2020), *Batch
normalization biases residual blocks towards the identity function in deep networks*. Yang, Pennington, Rao,
Sohl-Dickstein & Schoenholz (2019), *A mean field theory of batch normalization*. The small versions here run on the
bundled 8x8 digits; their numbers are ours, measured with the settings shown, not the papers'.
""")
