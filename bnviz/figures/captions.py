"""The one-paragraph reading guide of each kind of run figure (`CAPTIONS`), and `caption(key)` to find it."""

from __future__ import annotations

CAPTIONS: dict[str, str] = {
    "loss_accuracy": (
        "Left: the training loss of each step's mini-batch (noisy, because every batch differs). Right: accuracy "
        "on a fixed subset of the test set in eval mode, measured every few steps."),
    "train_eval_gap": (
        "The same network scored two ways: in eval mode batch norm uses its running statistics (solid); in train "
        "mode each test batch is normalized with its own statistics (dashed). With small batches the two differ; "
        "a network without batch-dependent layers scores the same in both. Forgetting model.eval() before testing "
        "is a classic bug."),
    "distribution": (
        "Each column is the histogram of this block's values at one step (darker = more values; white = none), on "
        "bins fixed at step 0; the orange lines are the exact 15th, 50th and 85th percentiles. A band that moves or "
        "widens means the layers after it see a changing input distribution, the 'internal covariate shift' Ioffe "
        "& Szegedy (2015) designed batch norm to reduce. Whether reducing it is why batch norm helps is debated "
        "(Santurkar et al. 2018)."),
    "distribution_grid": (
        "One heatmap per block (rows) and run (columns) on shared axes: compare how far each run's distributions "
        "move and spread over training. Darker = more values; orange lines: 15th, 50th and 85th percentiles."),
    "histogram": (
        "The latest histogram (bars) over the one at step 0 (outline), on the same fixed bins. The note gives the "
        "share of values that fell outside the bins, below or above."),
    "percentiles": (
        "Like Figure 1 (b, c) of Ioffe & Szegedy (2015): the median (solid) and the 15th and 85th percentiles "
        "(dashed) of the input to a nonlinearity over training. The paper found them moving in mean and spread "
        "without batch norm and \"much more stable\" with it. With batch norm before the activation every "
        "channel's batch mean and spread are set by the learned beta and gamma, so only these (and the shape of "
        "the distribution) can move them."),
    "saturation": (
        "For tanh and sigmoid: the share of outputs in the flat ends of the curve, where the gradient almost "
        "vanishes (saturated). For ReLU: the share of outputs that are exactly zero; about half is normal, a share "
        "near 1 means units are dying (a unit that is zero for every input never learns again)."),
    "drift": (
        "One number per block for how far its value distribution has moved: the 1-Wasserstein (earth mover's) "
        "distance from the distribution at step 0, divided by the standard deviation at step 0, so blocks compare. "
        "It measures the distribution shift the original batch-norm paper talks about, not how much that shift "
        "hurts training. Values beyond the fixed bins count at the nearest edge, so a curve flattens once its "
        "distribution has left the range (the figure says when)."),
    "gradient_norms": (
        "The size (L2 norm) of the loss gradient arriving at each block's activation input, log scale. Curves that "
        "sit decades apart, falling with depth from the output, show vanishing gradients; rising without bound, "
        "exploding ones. Compare runs with and without normalization."),
    "gradient_histogram": (
        "How the gradient values are spread over orders of magnitude: each column is a histogram of log10 |gradient| "
        "at one step (darker = more values). Exact zeros, e.g. behind inactive ReLUs, are counted separately; values "
        "beyond the range land in the end rows."),
    "update_data": (
        "How much each step changes each weight matrix, relative to its size: std(update) / std(weight), log scale. "
        "Karpathy's rule of thumb is about 1e-3 (dashed): far below, learning is slow; far above, it may be unstable. "
        "A heuristic for plain SGD, not a law."),
    "grad_data": (
        "The gradient's size relative to the weights it updates: std(gradient) / std(weight), log scale. Layers far "
        "apart here learn at very different speeds with one shared learning rate."),
    "gamma_beta": (
        "The normalization layer's learned per-channel scale gamma (starts at 1) and shift beta (starts at 0). "
        "After normalizing, "
        "the layer multiplies by gamma and adds beta, so the network can undo the normalization where that helps: "
        "red = above the starting value, blue = below."),
    "running_mean": (
        "Per channel, the mean of the batch-norm input in this batch (thin, noisy; used in training) and the running "
        "estimate used in eval mode (thick). PyTorch updates it as running = (1 − momentum) · running + momentum · "
        "batch value, momentum 0.1 by default."),
    "running_var": (
        "Per channel, the variance of the batch-norm input in this batch (thin; the biased 1/m variance used to "
        "normalize in training) and the running estimate used in eval mode (thick; PyTorch averages the unbiased "
        "m/(m − 1) variance). Small batches make the thin line noisy and the two modes disagree."),
    "ics": (
        "Santurkar et al.'s (2018) gradient measure of internal covariate shift: how much a block's weight gradient "
        "changes when the earlier blocks take their update first, on the same batch (||G − G′||, and the cosine: "
        "1 = unchanged). In their experiments (VGG, deep linear networks) this shift was not smaller with batch "
        "norm, one reason why 'batch norm works by reducing internal covariate shift' is a hypothesis, not the "
        "established explanation; they argue for a smoother loss landscape instead. In other networks the measure "
        "can come out smaller with batch norm: read it from your run."),
}


def caption(key: str) -> str:
    """The caption for a figure key of `figure_catalog` ("distribution_block1_pre" -> CAPTIONS["distribution"])."""
    matches = [k for k in CAPTIONS if key == k or key.startswith(k + "_")]
    return CAPTIONS[max(matches, key=len)] if matches else ""
