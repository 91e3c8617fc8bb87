"""The normalization zoo: which values BN, LN, IN and GN normalize together, and what batch size does to BN."""


import streamlit as st

from bnviz import figures
from bnviz.science.findings import batch_size_setting, batch_size_table, wu_he_table
from bnviz.science.published import PUBLISHED
from bnviz.science.sweeps import batch_size_sweep
from bnviz.ui.experiment_section import drawing, run_section
from bnviz.ui.page import page_header, show

page_header("The normalization zoo", """
Every normalization layer does the same two things: subtract a mean and divide by a standard deviation, then scale
by a learned **γ** and shift by a learned **β** per channel. They differ only in **which values share one mean and
variance**. For a conv layer the activations form a block of **N** samples × **C** channels × **H × W** positions
(Wu & He 2018, Figure 2):
""")

show(figures.normalization_zoo(), "zoo_picture")

st.header("When to use which")
st.markdown("""
- **Batch norm (BN)**: per channel, over the batch and the positions (N, H, W). The default for conv nets trained
  with reasonably large batches; at inference it uses running averages, so it becomes a fixed affine map, but its
  training depends on the batch size and it struggles with very small or non-i.i.d. batches.
- **Layer norm (LN)**: per sample, over all its features (C, H, W). No dependence on the batch and identical in
  training and inference: the standard choice in transformers and recurrent networks. For conv nets with tiny
  batches Wu & He prefer GN: their ResNet-50 at 32 images per GPU had 25.3% top-1 error with LN, 24.1% with GN.
- **Instance norm (IN)**: per sample and per channel, over the positions (H, W) only. It removes each image's own
  per-channel contrast and brightness, which style transfer and image generation want and classification usually
  does not.
- **Group norm (GN)**: per sample, over a group of C/G channels and their positions (G = 32 in Wu & He; G = 1 is LN,
  G = C is IN). Wu & He's choice for conv nets whose batches must be small (detection, segmentation, video).
""")

st.header("Try it: batch size")
st.markdown("""
Wu & He trained ResNet-50 on ImageNet with 32 down to 2 images per GPU: BN's error grew from 23.6% to 34.7% while
GN's stayed near 24%. Below is a much smaller and **harsher, different setting**, not a replica: a 3 x 64 ReLU MLP
on the 8x8 digits, where BN normalizes each unit over just the B values of the batch (at B = 2 every normalized
value is about ±1), while Wu & He's BN averages over B x H x W values per channel, hundreds or more even at 2 images
per GPU. What it shares with theirs: at every batch size each run sees the same number of epochs, with the learning
rate proportional to the batch size; all norms at one batch size start from the same weights and see the same
batches. **Look for** how BN's eval-mode accuracy changes as the batch shrinks, and for the gap between BN's two
scores of the same network.
""")
st.caption(f"Published: {PUBLISHED['batch_size']['source']}. "
           f"{PUBLISHED['batch_size']['claim']}")
with st.expander("Settings, and why this network", expanded=False):
    st.markdown("""
The network is a 3 x 64 ReLU MLP, i.e. a conv net with 1 x 1 feature maps: each BN unit is normalized with the
statistics of only the B values in the batch, fewer than in any of Wu & He's runs. The app's small CNN (8 x 8 maps,
global average pooling) is not used here: its BN statistics come from B x 64 values, so even batch 2 gives BN 128
values, and a per-sample norm right before the global average pool removes the very level the classifier reads, so
GN and LN barely learned in the time we have.
""")
    c1, c2, c3 = st.columns(3)
    epochs = c1.select_slider("epochs per run", options=[1.0, 2.0, 3.0], value=2.0, key="zoo_epochs")
    lr32 = c2.select_slider("learning rate at batch 32", options=[0.03, 0.1, 0.3], value=0.1, key="zoo_lr")
    with_none = c3.checkbox("also without normalization", value=True, key="zoo_none")
    seed = c3.number_input("seed", min_value=0, max_value=9999, value=0, step=1, key="zoo_seed")

norms = ("batch", "group", "layer", "none") if with_none else ("batch", "group", "layer")
settings = dict(norms=norms, epochs=float(epochs), lr_at_32=float(lr32), seed=int(seed))
result = run_section("zoo", batch_size_sweep, settings, "▶ Run the batch-size sweep (about 30 s)",
                     empty_text="Press the button to train the networks; the published numbers are shown below "
                                "meanwhile.")
if result is None:
    show(figures.wu_he_published(), "zoo_published_only")
else:
    with drawing("the batch-size sweep"):
        st.caption(f"{len(result.summary)} networks trained.")  # how long it took: run_section's caption
        left, right = st.columns(2)
        with left:
            show(figures.batch_size_accuracy(result), "zoo_accuracy")
        with right:
            show(figures.wu_he_published(), "zoo_published")
        theirs, ours = st.columns([2, 3])
        theirs.markdown("**Wu & He (2018)**: ResNet-50 on ImageNet, top-1 validation error (%) by images per GPU "
                        "(published).")
        theirs.dataframe(wu_he_table(), hide_index=True, key="zoo_published_table")
        ours.markdown(f"**This run**: test error (%) = 100% − accuracy; {batch_size_setting(result)}.")
        table = batch_size_table(result)
        ours.dataframe(table, hide_index=True, key="zoo_table",
                       column_config={c: st.column_config.NumberColumn(c, format="%.1f") for c in table.columns[1:]})
        left, right = st.columns([3, 2])
        show(figures.batch_size_gap(result), "zoo_gap", container=left)
        right.markdown("""
**Reading the gap.** In *eval mode* BN normalizes with the running averages it collected during training; in
*train mode* each test batch is normalized with its own statistics. With large batches the two nearly agree; with tiny
batches they differ, because the statistics of two or four samples are far from the averages. Forgetting
`model.eval()` before testing is a classic bug for exactly this reason. GN and LN never look at other samples, so
they score the same either way, at any batch size.
""")
