"""BatchNorm step by step: one training-mode forward pass on a small batch you can edit, number by number."""

import streamlit as st

from bnviz import figures
from bnviz.engine.config import EPS_CHOICES
from bnviz.science import bn_steps as bx
from bnviz.science.normalization_axes import EXAMPLE_SHAPE
from bnviz.ui import plot
from bnviz.ui.page import page_header, tab_heading

page_header("BatchNorm step by step", r"""
Edit the batch (6 samples × 3 channels) or the parameters and follow every number of one **training-mode**
forward pass. Each channel (column) is normalized on its own, with the mean and variance of **this batch**.
""")
st.markdown("<style>[data-testid='stTable'] td, [data-testid='stTable'] th {font-size: 1.15rem;}</style>",
            unsafe_allow_html=True)
if "bn_steps_base" not in st.session_state:
    st.session_state.bn_steps_base, st.session_state.bn_steps_version = bx.default_table(), 0


def set_batch(table) -> None:
    st.session_state.bn_steps_base = table
    st.session_state.bn_steps_version += 1  # a new editor key drops the old edits


def show_table(table, caption=None, highlight=None, compact=False) -> None:
    """A table with readable numbers; the row named `highlight` stands out. compact: for one of three columns, the
    labels shortened ("ch 1", sample numbers) so that every channel fits at 1280 px and on a projector."""
    mark = "background-color: #FFF1B8; font-weight: bold"
    if compact:
        table = table.rename(columns=lambda c: str(c).replace("channel ", "ch "),
                             index=lambda i: str(i).replace("sample ", ""))
        table.index.name = "sample"
    styler = table.style.format(bx.format_number)
    st.table(styler.apply(lambda row: [mark if row.name == highlight else ""] * len(row), axis=1))
    if caption:
        st.caption(caption)


left, right = st.columns([5, 4], gap="large")
with left:
    edited = st.data_editor(st.session_state.bn_steps_base, key=f"bn_steps_batch_{st.session_state.bn_steps_version}",
                            num_rows="fixed", width="stretch")
    b1, b2 = st.columns([2, 3])
    b1.button("↺ Default batch", key="bn_steps_reset", on_click=set_batch, args=(bx.default_table(),))
    b2.button("Constant channel 3", key="bn_steps_constant", on_click=set_batch,
              help="Every sample of channel 3 becomes 7: its variance is 0, so only ε keeps the division finite",
              args=(edited.assign(**{"channel 3": 7.0}),))  # your edits of the other channels stay
with right:
    eps = st.select_slider("ε, added to the variance (log scale; default 1e-5)", EPS_CHOICES,
                           value=bx.DEFAULT_EPS, format_func=bx.eps_label, key="bn_steps_eps", persist_state="session")
    momentum = st.slider("momentum: weight of the new batch (default 0.1)", 0.0, 1.0,
                         bx.DEFAULT_MOMENTUM, 0.05, key="bn_steps_momentum", persist_state="session")
    gamma, beta = [], []
    for c, col in enumerate(st.columns(3)):
        for label, key, values, default in (("γ{} (scale)", "gamma", gamma, bx.DEFAULT_GAMMA[c]),
                                            ("β{} (shift)", "beta", beta, bx.DEFAULT_BETA[c])):
            values.append(col.number_input(label.format(c + 1), value=default, step=0.5, key=f"bn_steps_{key}{c}",
                                           persist_state="session"))
x, problem = bx.table_or_fallback(edited, bx.default_table())
if problem:
    st.error(problem, icon=":material/edit_off:")
run = bx.train_and_eval(x, gamma, beta, eps, momentum)
steps = run["steps"]

steps_tab, eps_tab, mode_tab, torch_tab, conv_tab = st.tabs(
    ["Steps 1–5", "What ε does", "Train vs eval", "Compare with PyTorch", "Conv layers: (N, C, H, W)"])
with steps_tab:
    tab_heading("Steps 1–5")
    f, t = st.columns([2, 3], gap="large")
    f.latex(r"\mu = \frac{1}{m}\sum_{i=1}^{m} x_i")
    f.latex(r"\sigma^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i-\mu)^2")
    f.latex(r"\text{std} = \sqrt{\sigma^2 + \epsilon}")
    f.markdown(f"*m* = {steps.m} values per channel. Normalizing uses σ² with **1/m**, the batch's own variance; "
               "the **1/(m−1)** (unbiased) variance only feeds the running variance (tab *Train vs eval*).")
    with t:
        show_table(bx.statistics_table(steps, eps))
        for note in bx.eps_notes(steps, eps):
            st.info(note, icon=":material/info:")
    for col, (title, formula, table) in zip(st.columns(3, gap="medium"), (
            ("Input x", "x", bx.per_sample_table(x)),
            ("Step 4 · normalize", r"\hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}}",
             bx.per_sample_table(steps.x_hat)),
            ("Step 5 · scale and shift", r"y = \gamma\,\hat x + \beta", run["y_train"])), strict=True):
        with col:
            st.markdown(f"### {title}")
            st.latex(formula)
            show_table(table, compact=True)
with eps_tab:
    tab_heading("What ε does")
    st.markdown("Six samples of a channel that is **constant** (all 7), and of one that is constant except for a "
                "tiny **+0.01** in the last sample. Constant: x̂ = 0/√ε = 0 for every ε (without ε: 0/0, undefined; "
                "PyTorch refuses ε ≤ 0 in training). Nearly constant: with a tiny ε the 0.01 wobble is blown up "
                f"to x̂ ≈ 2.2, as large as a real signal; a larger ε damps it. Your ε = **{bx.eps_label(eps)}**.")
    show_table(bx.eps_demo(), highlight=bx.eps_label(eps))
with mode_tab:
    tab_heading("Train vs eval")
    tr, ev = st.columns(2, gap="large")
    tr.markdown("### Training: this batch's statistics")
    tr.latex(r"y = \gamma\,\frac{x-\mu_B}{\sqrt{\sigma_B^2+\epsilon}} + \beta")
    tr.markdown("Each sample's output depends on the other samples in its batch.")
    ev.markdown("### Evaluation: running statistics, a fixed affine map")
    ev.latex(r"y = \gamma\,\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}} + \beta = a\,x + b")
    ev.markdown("Same input, same output, whatever else is in the batch.")
    st.markdown("### One running-statistics update (PyTorch convention), from a fresh layer (0 and 1)")
    st.latex(r"\hat\mu \leftarrow (1-\text{momentum})\,\hat\mu + \text{momentum}\,\mu_B \qquad "
             r"\hat\sigma^2 \leftarrow (1-\text{momentum})\,\hat\sigma^2 + \text{momentum}\,\tfrac{m}{m-1}\sigma_B^2")
    st.caption(f"momentum = {momentum:g}: keep {1 - momentum:.0%} of the old value, take {momentum:.0%} of this "
               "batch. Keras/TensorFlow write the kept share instead (0.9 there = 0.1 here).")
    show_table(run["running"])
    a, y_t, y_e = st.columns(3, gap="medium")
    with a:
        st.markdown("### Eval map y = a x + b")
        st.latex(r"a = \frac{\gamma}{\sqrt{\hat\sigma^2+\epsilon}} \qquad b = \beta - a\,\hat\mu")
        show_table(run["affine"])
    with y_t:
        st.markdown("### y in train mode")
        show_table(run["y_train"])
    with y_e:
        st.markdown("### y in eval mode")
        show_table(run["y_eval"], bx.gap_note(run, momentum))
with torch_tab:
    tab_heading("Compare with PyTorch")
    st.markdown("`torch.nn.functional.batch_norm` on the same batch, γ, β, ε and momentum, in float64, against "
                "bnviz's from-scratch `batch_norm` (no torch normalization op inside).")
    diffs = bx.compare_with_torch(x, gamma, beta, eps, momentum)
    st.table(diffs.style.format("{:.1e}"))
    worst = diffs.iloc[:, 0].max()
    if worst < bx.TORCH_TOLERANCE:
        st.success(f"Largest difference {worst:.1e}: the same numbers, up to float64 rounding.")
    else:
        st.error(f"Largest difference {worst:.1e}: bnviz and PyTorch disagree.")
with conv_tab:
    tab_heading("Conv layers: (N, C, H, W)")
    st.markdown("For a conv layer the input has shape (N, C, H, W). BN keeps **one mean and one variance per "
                "channel**, taken over all N images and all H × W positions. Each small grid is one H × W feature map.")
    fig, ctl = st.columns([3, 2], gap="large")
    with ctl:
        kind = st.radio("Compare: which values share one mean?", tuple(bx.NORM_KINDS), format_func=bx.NORM_KINDS.get,
                        key="bn_steps_kind", persist_state="session")
        channel = st.selectbox("channel", range(EXAMPLE_SHAPE[1]), format_func=lambda i: str(i + 1),
                               key="bn_steps_c", persist_state="session")
        sample = st.selectbox("sample (layer, instance and group norm: G = 2 groups)", range(EXAMPLE_SHAPE[0]),
                              format_func=lambda i: str(i + 1), key="bn_steps_n", persist_state="session")
    with fig:
        axes = figures.axes_figure(kind, sample=sample, channel=channel)
        st.plotly_chart(axes, theme=None, key="bn_steps_axes")
        plot.texts_below(plot.chart_texts(axes))
    st.table(bx.shapes_table())
