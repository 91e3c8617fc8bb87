"""Beyond the basics: scale invariance, weight decay and the effective learning rate of the weights before BN."""

import streamlit as st

from bnviz import figures
from bnviz.science.weight_decay import scale_findings, scale_invariance, weight_decay_findings, weight_decay_lesson
from bnviz.ui.choices import WEIGHT_DECAY_CHOICES
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("Scale invariance and weight decay", """
With batch norm right after a layer, the scale of that layer's weights does not matter for the output. Then what
does weight decay do to such weights, and why does it still help? Van Laarhoven (2017), Hoffer et al. (2018) and
Zhang et al. (2019) gave the answer this page measures: it sets the **effective learning rate**.
""")

st.header("1. The output does not depend on the scale of the weights")
st.markdown(r"""
In training mode BN divides by the batch's own standard deviation, so scaling the weights $W$ before it by $a > 0$
scales its input and that standard deviation alike: $\mathrm{BN}(aWx) = \mathrm{BN}(Wx)$. Differentiating that
identity gives two facts: the gradient at $aW$ is the gradient at $W$ divided by $a$, and it is **orthogonal** to
$W$ (moving along $W$ changes nothing). Below: block 2 of the untrained default CNN, one batch of 64 digits, in float64.
""")
with drawing("the scale check"):
    st.markdown("\n".join(f"- {line}" for line in scale_findings(scale_invariance())))
    st.caption("The small change in training mode at scale 0.1 is ε: BN adds ε = 1e-5 to the variance, which "
               "matters once the weights, and so the variance, are 100x smaller. Eval mode is not scale invariant: "
               "its running statistics were computed with the old weights.")

st.header("2. So plain SGD grows the weights, and the effective step shrinks")
st.markdown(r"""
A gradient orthogonal to $W$ can only lengthen it: $\|W - \eta g\|^2 = \|W\|^2 + \eta^2\|g\|^2$. And what moves the
output is the change of $W$'s *direction*, about $\eta\|g\| / \|W\|$ with $\|g\| \propto 1/\|W\|$: an **effective
learning rate** $\eta / \|W\|^2$ (van Laarhoven 2017; Hoffer, Banner, Golan & Soudry 2018, "Norm matters"). As
$\|W\|$ grows during training, the effective step shrinks, like an automatic learning-rate decay. Weight decay
($g \leftarrow g + \lambda W$) cannot change the function of such a layer (it is scale invariant), but it keeps
$\|W\|$ small and thereby the effective learning rate high: Zhang, Wang, Xu & Grosse (2019) found this to be the
main way weight decay helps networks with BN.

**Look for:** $\|W\|$ growing without weight decay and staying near its start with it; the effective learning rate
falling; the measured relative update std(ΔW)/std(W) of each step, which follows the effective learning rate.
""")
decay = st.select_slider("weight decay of the second network", [v for v in WEIGHT_DECAY_CHOICES if v > 0],
                         value=5e-3, key="wd_value", format_func=lambda v: f"{v:g}")
result = run_section("wd", weight_decay_lesson, dict(weight_decay=float(decay)), "▶ Train with and without it",
                     empty_text="Press the button to train the default CNN twice (500 steps each), without and with "
                                "weight decay.")
block = st.radio("conv block", (1, 2, 3), index=1, horizontal=True, key="wd_block",
                 format_func=lambda b: f"block {b}")
with drawing("the weight-decay lesson"):
    show(figures.weight_norm_chart(result, block), "wd_chart")
    if result is not None:
        st.markdown("\n".join(f"- {line}" for line in weight_decay_findings(result)))
        st.caption("Our small version: the 8x8 digits, a 3-block CNN, 500 steps, one seed; PyTorch's weight_decay "
                   "(an L2 term added to the gradient of every parameter, γ, β and the head included). The papers "
                   "use ImageNet and CIFAR networks trained for many epochs; Zhang et al. also study Adam and K-FAC, "
                   "not shown here. The head's weights have no BN after them and are not scale invariant.")
