"""Beyond the basics: small batches and their remedies (batch renorm, ghost BN, GN), and dropout with BN."""

import streamlit as st

from bnviz import figures
from bnviz.science.dropout_shift import dropout_findings, dropout_shift_lesson
from bnviz.science.small_batches import IMAGES, small_batch_findings, small_batch_lesson
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("Small batches, and BN with dropout", """
Batch norm trains with statistics of the batch and tests with running averages. Two situations make the two
disagree: very small batches, and dropout in front of a BN layer. What the remedies do, measured.
""")

st.header("1. Small batches: batch renorm, ghost BN and GN")
st.markdown(r"""
- **Batch renormalization** (Ioffe 2017) trains with the batch statistics corrected towards the running ones:
  $\hat x = \frac{x - \mu_B}{\sigma_B}\, r + d$ with $r = \mathrm{clip}_{[1/r_{max}, r_{max}]}(\sigma_B / \sigma)$ and
  $d = \mathrm{clip}_{[-d_{max}, d_{max}]}((\mu_B - \mu)/\sigma)$, both treated as constants in backprop; $r_{max}$
  rises from 1 to 3 and $d_{max}$ from 0 to 5 during training (plain BN at first). Unclipped, the training output
  equals the test output. In the app: normalization "batch renorm" (CLI `--norm batch-renorm`).
- **Ghost batch norm** (Hoffer, Hubara & Soudry 2017) computes the statistics over sub-batches ("ghost batches").
  It was proposed for *large* batches (to keep the statistics' noise of small ones); in the app: "Ghost batch size"
  (CLI `--ghost-batch`).
- **Group norm** (Wu & He 2018) normalizes each image over groups of channels: nothing depends on the batch.

**Look for:** the gap between eval mode (solid) and train mode (dotted) for BN at batch 2, and whether batch renorm
closes it; GN's train and eval modes are the same computation.
""")
result = run_section("smallbatch", small_batch_lesson, dict(images=IMAGES), "▶ Train the eleven networks",
                     empty_text=f"Press the button to train 11 small CNNs on {IMAGES:,} images each (about 20 to "
                                "40 s).")
with drawing("the small-batch comparison"):
    show(figures.small_batch_chart(None if result is None else result.summary), "smallbatch_chart")
    if result is not None:
        st.markdown("\n".join(f"- {line}" for line in small_batch_findings(result)))
        st.caption("Our small version: 8x8 digits, a 3-block CNN, one seed, equal images seen (so a larger batch "
                   "takes fewer steps), lr scaled with the batch size. GN's accuracy falls as the batch grows, "
                   "that is as its steps get fewer; our hypothesis: on this small CNN it needs more steps than BN. "
                   "Ioffe (2017) trained Inception on ImageNet with micro-batches of 4 per worker and reports "
                   "that batch renorm improves on BN there; Wu & He's BN error rises from 23.6% (32 per GPU) to "
                   "34.7% (2 per GPU) while GN stays at 24.0-24.2% (ResNet-50, ImageNet). Both papers train to "
                   "convergence; in our runs with seeds 1 and 2 these numbers moved by several points (GN by "
                   "tens).")

st.header("2. Dropout before BN: the variance shift")
st.markdown(r"""
Dropout with drop probability $q$ multiplies each unit by $m/(1-q)$, $m \sim \mathrm{Bernoulli}(1-q)$: the mean
stays, the variance grows. A BN layer after it learns its running variance from these training inputs; at test
time dropout is off, its input varies less, and BN divides by too large a number. Li, Chen, Hu & Yang (CVPR 2019)
call this the **variance shift** and recommend dropout only after the last BN layer.

Here an MLP with BN (3 blocks of 64 units) is trained three times from the same weights on the same batches. For
every BN layer: the variance its input really has on the test set (eval mode) divided by the running variance BN
uses at test time; 1 means no shift. **Look for:** values below 1 behind dropout, and none when dropout comes after
the last BN.
""")
shift = run_section("dropout", dropout_shift_lesson, dict(drop=0.5), "▶ Train the three MLPs",
                    empty_text="Press the button to train the three MLPs (1,000 steps each).")
if shift is not None:
    with drawing("the variance shift"):
        st.markdown("\n".join(f"- {line}" for line in dropout_findings(shift)))
        st.caption("Our small version: 8x8 digits, an MLP, drop probability 0.5, one seed. The first BN layer has "
                   "no dropout before it in any network (dropout sits between blocks). Li et al. measure on CIFAR "
                   "and ImageNet networks (DenseNet, ResNet, ResNeXt, Wide ResNet) and report their shift as the "
                   "ratio of the running variance to the test variance, the inverse of ours.")
