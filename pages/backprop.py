"""Beyond the basics: gradients through batch norm (the bias before BN, the gradient through the statistics, and
how BN's backward pass mixes the samples of a batch)."""

import numpy as np
import streamlit as st
import torch

from bnviz import figures
from bnviz.science.bn_backprop import batch_jacobian, bias_experiment, bias_findings
from bnviz.science.bn_steps import CHANNELS, DEFAULT_BATCH, INIT_RUNNING_VAR
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("Backprop through batch norm", """
Batch norm is not only a forward computation: its batch mean and variance depend on every sample, and backprop
goes through them. Two consequences from Ioffe & Szegedy (2015), and a look at the gradient itself.
""")

st.header("1. The bias before BN does nothing, and 2. why the gradient must go through the statistics")
st.markdown(r"""
BN subtracts the batch mean, so a bias $b$ added just before it cancels: $(x + b) - \mathrm{mean}(x + b) = x -
\mathrm{mean}(x)$. Its gradient is zero and it never moves; BN's $\beta$ does its job, which is why the app's
networks drop that bias (Ioffe & Szegedy, section 3.2). After the activation nothing cancels it.

Ioffe & Szegedy (section 2) also warn what happens if the normalization ignores that the mean depends on the
parameters: a gradient step on $b$ is undone by the next batch mean, so the output does not change, and $b$ keeps
growing. The third network below normalizes exactly like BN but treats the batch mean and variance as constants in
backprop. **Look for:** the bias that never moves, the one that moves a little, and the one that keeps drifting.
""")
result = run_section("bias", bias_experiment, dict(steps=600), "▶ Train the three networks",
                     empty_text="Press the button to train the three networks (a few seconds).")
with drawing("the bias lesson"):
    show(figures.bias_chart(result), "bias_chart")
    if result is not None:
        st.markdown("\n".join(f"- {line}" for line in bias_findings(result)))
        st.caption("Same initial weights and the same batches for all three; our setting (not the paper's): "
                   f"{result.settings['network']}, learning rate {result.settings['lr']}. A gradient of about 1e-8 "
                   "is float32 rounding: in exact arithmetic it is 0.")

st.header("3. BN's gradient mixes the samples of a batch")
st.markdown(r"""
In training mode every output $y_i$ depends on every input $x_j$ of its channel, through the batch mean and
variance: $\partial y_i / \partial x_j = \frac{\gamma}{\sigma}\big(\delta_{ij} - \frac{1}{m} - \frac{\hat x_i
\hat x_j}{m}\big)$. So a sample's gradient depends on which other samples share its batch (one source of BN's mild
regularizing noise). In eval mode the running statistics are constants and the matrix is diagonal. **Look for:**
the off-diagonal cells, and that each row sums to 0 in training mode (shifting the whole batch changes nothing).
Computed by autograd on the batch of *BatchNorm step by step* (γ = 1, ε = 1e-5; eval mode with running variance 1).
""")
channel = st.radio("channel of that batch", CHANNELS, horizontal=True, key="jacobian_channel")
values = torch.tensor([row[CHANNELS.index(channel)] for row in DEFAULT_BATCH], dtype=torch.float64)
train = batch_jacobian(values).numpy()
evaluation = batch_jacobian(values, training=False, running_var=INIT_RUNNING_VAR).numpy()
show(figures.jacobian_heatmaps(train, evaluation), "jacobian")
off = np.abs(train - np.diag(np.diag(train))).max()
st.caption(f"Largest off-diagonal entry in training mode: {off:.3f}; row sums: "
           f"{np.abs(train.sum(axis=1)).max():.1e} at most.")
