"""Beyond the basics: batch norm at inference (fold it away) and in very deep plain networks (gradients at init)."""

import streamlit as st

from bnviz import figures
from bnviz.science.depth_gradients import INITS, depth_experiment, depth_findings
from bnviz.science.inference_folding import fold_findings, fold_lesson
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("BN at inference, and in very deep networks", """
Two things a learner meets right after the basics: what happens to batch norm when a trained network is deployed,
and what it does to the gradients of a very deep network before training starts.
""")

st.header("1. At inference, fold it away")
st.markdown(r"""
In eval mode BN normalizes with its **running** statistics, which no longer change: it is a fixed affine map per
channel, $y = \gamma\,(x - \mu_{run}) / \sqrt{\sigma^2_{run} + \epsilon} + \beta$. A fixed affine map after a
convolution (or a linear layer) is again a convolution, so the two fold into one:
""")
st.latex(r"W' = \mathrm{diag}\left(\frac{\gamma}{\sqrt{\sigma^2_{run} + \epsilon}}\right) W, \qquad "
         r"b' = \frac{\gamma\,(b - \mu_{run})}{\sqrt{\sigma^2_{run} + \epsilon}} + \beta")
st.markdown("""
Deployment tools do this (PyTorch: `torch.nn.utils.fusion.fuse_conv_bn_eval`; the app's own `bnviz.fold_batch_norm`
is checked against it in the tests). **Look for:** the same predictions from a network with one layer less per block.
It works only in eval mode, and only for BN placed directly after the layer (before the activation).
""")
seed = st.number_input("seed", min_value=0, max_value=9999, value=0, step=1, key="fold_seed")
result = run_section("fold", fold_lesson, dict(steps=300, seed=int(seed)), "▶ Train a CNN with BN and fold it",
                     empty_text="Press the button to train the CNN (300 steps) and compare it with its folded copy.")
if result is not None:
    with drawing("the folding result"):
        st.markdown("\n".join(f"- {line}" for line in fold_findings(result)))

st.header("2. Very deep plain networks: BN can make gradients explode")
st.markdown("""
Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz (ICLR 2019, "A mean field theory of batch normalization") showed
that in deep fully connected networks **without skip connections**, batch norm itself causes the gradients to
explode at initialization: the gradient reaching the first layer grows exponentially with depth. Residual
connections (as in ResNets) are one way deep networks with BN avoid it. This is a counterweight to the common claim
that BN "keeps gradients in a workable range".

Here: MLPs of 2 to 50 ReLU layers of width 64 on one batch of 128 digits, before any training step. **Look for:**
the ratio of the first hidden layer's gradient norm to the last one's as depth grows, with and without BN. Without
BN the answer depends on the initialization: PyTorch's default shrinks the signal layer by layer (the gradients
vanish), He initialization keeps it steady; try both.
""")
INIT_NAMES = {"he": "He (N(0, 2/fan_in), made for ReLU)", "default": "PyTorch's default (Kaiming-uniform, a = √5)"}
init = st.radio("initialization of the weights", INITS, index=INITS.index("he"), horizontal=True, key="depth_init",
                format_func=INIT_NAMES.get)
depth = run_section("depth", depth_experiment, dict(init=init), "▶ Measure the gradients at initialization",
                    empty_text="Press the button to build the networks and measure their gradients.")
with drawing("the gradient measurement"):
    show(figures.depth_gradient_chart(None if depth is None else depth.summary, INIT_NAMES[init]), "depth_chart")
    if depth is not None:
        st.markdown("\n".join(f"- {line}" for line in depth_findings(depth.summary)))
        st.caption("Our small version: digits, width 64, one batch, geometric mean over 3 seeds. Yang et al. derive "
                   "the growth with mean-field theory for wide networks and test it in experiments; the ratio here "
                   "is this app's own measure of the same effect.")
