"""Quiz questions, glossary terms and flashcards of the "Beyond the basics" lessons (topic "beyond the basics").

`learning_aids` appends them to its own; each question has one defensible answer and says where the claim is from.
"""

from __future__ import annotations

from .quiz_types import Card, Question, Term

TOPIC = "beyond the basics"

LESSON_QUESTIONS: tuple[Question, ...] = (
    Question(
        "fold_bn", TOPIC,
        "A trained network with conv -> BN -> ReLU blocks is deployed. Why can each BN be folded into its conv?",
        ("Because BN's output always has mean 0 and variance 1, so it can simply be removed",
         "In eval mode BN uses fixed running statistics, so it is an affine map per channel, and an affine map "
         "after a convolution is again a convolution",
         "Because γ and β are learned, so the conv can learn them instead during deployment",
         "It can be folded in training mode too, since the batch statistics are constants"),
        1,
        "In eval mode y = γ (x − running_mean)/√(running_var + ε) + β is fixed: W' = diag(γ/√(running_var + ε)) W "
        "and b' = γ (b − running_mean)/√(running_var + ε) + β give the same outputs (the app measures the largest "
        "difference on its page). In training mode the statistics change with every batch, so nothing can be folded.",
    ),
    Question(
        "bias_before_bn", TOPIC,
        "A linear layer with a bias b is followed directly by batch norm (training mode). What is the gradient of "
        "the loss with respect to b?",
        ("The same as without BN",
         "It grows with the batch size",
         "Zero: BN subtracts the batch mean, so b cancels out of the output",
         "It equals the gradient with respect to β divided by γ"),
        2,
        "(x + b) − mean(x + b) = x − mean(x): the output does not depend on b, so its gradient is 0 and b never "
        "moves; BN's β takes over its role (Ioffe & Szegedy 2015, section 3.2). The Backprop through BN page shows "
        "it on a live run (up to float32 rounding), and that a bias *after* the activation does move.",
    ),
    Question(
        "stat_gradient", TOPIC,
        "Ioffe & Szegedy (2015, section 2) warn against normalizing with the batch mean while treating that mean as a "
        "constant in backprop. What goes wrong?",
        ("A bias before the normalization keeps growing while the output does not change",
         "Training becomes faster but less accurate",
         "The running statistics stop updating",
         "Nothing: the gradient is the same either way"),
        0,
        "A gradient step on b is undone by the next batch mean, so the loss does not change and the same step is "
        "taken again and again: b grows without bound. Backprop must go through the mean and variance; the app's "
        "live version shows the bias drifting only in the network whose statistics carry no gradient.",
    ),
    Question(
        "bn_mixes_samples", TOPIC,
        "In training mode, does changing one sample's input change the BN outputs of the *other* samples in its batch?",
        ("No: BN works on each sample separately",
         "Only when the batch size is 1",
         "Only in eval mode",
         "Yes: they all share the batch mean and variance, so ∂y_i/∂x_j ≠ 0 for i ≠ j"),
        3,
        "∂y_i/∂x_j = (γ/σ)(δ_ij − 1/m − x̂_i x̂_j/m): every output depends on every input of its channel. In eval mode "
        "the running statistics are constants and the Jacobian is diagonal. The mixing is one source of BN's "
        "batch-dependent noise.",
    ),
    Question(
        "deep_bn_gradients", TOPIC,
        "Yang et al. (ICLR 2019) studied deep fully connected networks *without skip connections* at initialization. "
        "What did they show batch norm does to the gradients?",
        ("It keeps them exactly the same size in every layer",
         "It makes them explode: the gradient reaching the early layers grows exponentially with depth",
         "It makes them vanish in the early layers",
         "It has no effect before training starts"),
        1,
        "Their mean-field theory of batch norm predicts, and their experiments confirm, gradient explosion at "
        "initialization in deep plain networks with BN. The Inference and depth page measures the first/last layer "
        "gradient ratio by depth on the digits. So 'BN keeps gradients in a workable range' is not true in general.",
    ),
    Question(
        "effective_lr", TOPIC,
        "A conv layer is followed by BN and trained with plain SGD, without weight decay. What happens to the norm "
        "||W|| of its weights, and to the effective learning rate of the layer?",
        ("||W|| stays the same because BN normalizes it",
         "||W|| grows, so the effective learning rate lr/||W||² shrinks",
         "||W|| shrinks, so the effective learning rate grows",
         "||W|| grows, but the effective learning rate stays lr because BN removes the scale"),
        1,
        "BN(aWx) = BN(Wx), so the gradient is orthogonal to W and a step can only lengthen it: ||W − ηg||² = "
        "||W||² + η²||g||². The change of W's direction, which is all that moves the output, scales as η/||W||² "
        "(van Laarhoven 2017; Hoffer et al. 2018). Weight decay keeps ||W|| small and the effective rate up "
        "(Zhang et al. 2019). The Scale and weight decay page measures ||W|| with and without it.",
    ),
    Question(
        "batch_renorm", TOPIC,
        "Batch renormalization (Ioffe 2017) trains with x̂ = (x − μ_B)/σ_B · r + d. What are r and d?",
        ("Two more learned parameters, like γ and β",
         "σ_B/σ and (μ_B − μ)/σ with the running σ and μ, clipped to [1/r_max, r_max] and [−d_max, d_max], "
         "and carrying no gradient",
         "Random noise that regularizes training, drawn anew every step",
         "The mean and standard deviation of the whole training set, computed before training"),
        1,
        "r and d correct the batch statistics towards the running ones; as constants for backprop, they make the "
        "training output match the test output when unclipped. r_max = 1 and d_max = 0 is plain BN; the paper "
        "relaxes them to 3 and 5 during training. The app's version is tested against these equations.",
    ),
    Question(
        "variance_shift", TOPIC,
        "Li et al. (CVPR 2019) found a 'variance shift' when dropout is placed before a BN layer. What shifts?",
        ("The mean of the BN input: dropout removes half the units",
         "γ and β: dropout stops their gradients",
         "The variance of the BN input: larger in training (dropout on) than at test time, while BN keeps using the "
         "running variance it learned in training",
         "Nothing, as long as dropout divides by the keep probability"),
        2,
        "Dividing by the keep probability keeps the mean but inflates the variance in training. At test time "
        "dropout is off, the input varies less than the running variance says, and BN normalizes with the wrong "
        "scale. Their remedy: dropout only after the last BN layer. The Small batches, dropout page measures the "
        "ratio of the two variances per BN layer.",
    ),
)

LESSON_TERMS: tuple[Term, ...] = (
    Term("Folding batch norm",
         "Merging an eval-mode BN into the conv or linear layer before it: W' = diag(γ/√(running_var + ε)) W, "
         "b' = γ (b − running_mean)/√(running_var + ε) + β. Same outputs, one layer less; only valid in eval mode."),
    Term("Batch renormalization",
         "Ioffe (2017): batch norm that corrects the batch statistics towards the running ones during training, "
         "x̂ = (x − μ_B)/σ_B · r + d with r and d clipped and carrying no gradient, so training and inference agree "
         "better with small or non-i.i.d. batches."),
    Term("Skip connection",
         "A path that adds a block's input to its output (y = x + F(x)), as in ResNets. Deep networks with BN and no "
         "skip connections have exploding gradients at initialization (Yang et al. 2019)."),
    Term("Jacobian",
         "The matrix of partial derivatives ∂y_i/∂x_j of a function's outputs with respect to its inputs. For BN in "
         "training mode it has nonzero off-diagonal entries: the samples of a batch interact."),
    Term("Weight decay",
         "An L2 penalty on the weights: the optimizer adds λ·w to each parameter's gradient (PyTorch's weight_decay). "
         "For weights followed by BN it cannot change the function; it keeps ||W|| small and so the effective "
         "learning rate up (Zhang et al. 2019)."),
    Term("Scale invariance",
         "BN(aWx) = BN(Wx) for a > 0 in training mode: the output of a BN layer does not depend on the scale of the "
         "weights before it. Their gradient is then orthogonal to W and scales as 1/a."),
    Term("Effective learning rate",
         "For scale-invariant weights, how fast their direction changes: about lr/||W||² (van Laarhoven 2017; "
         "Hoffer et al. 2018). It shrinks as ||W|| grows."),
    Term("Ghost batch normalization",
         "Batch norm whose statistics come from sub-batches ('ghost batches') of a fixed size instead of the whole "
         "batch (Hoffer, Hubara & Soudry 2017); proposed for training with large batches."),
    Term("Dropout",
         "In training, each unit is zeroed with probability q and the others are divided by 1 − q; at test time "
         "nothing is dropped. It keeps the mean of a unit and enlarges its variance in training."),
    Term("Variance shift",
         "Li et al. (CVPR 2019): with dropout before a BN layer, the variance of the BN input in training differs "
         "from the one at test time, so BN's running variance is wrong at test time."),
)

LESSON_CARDS: tuple[Card, ...] = (
    Card("Fold BN into the conv before it: W' and b'?",
         "W' = diag(γ/√(running_var + ε)) W; b' = γ (b − running_mean)/√(running_var + ε) + β (eval mode only)."),
    Card("Gradient of a bias just before BN?", "Zero: the mean subtraction cancels it; β does its job."),
    Card("BN in a deep net without skip connections, at initialization?",
         "Gradients explode towards the input as depth grows (Yang et al., ICLR 2019)."),
    Card("Effective learning rate of weights followed by BN?",
         "About lr/||W||²: it falls as ||W|| grows under SGD; weight decay keeps it up."),
    Card("Batch renorm's r and d?", "r = clip(σ_B/σ, 1/r_max, r_max), d = clip((μ_B − μ)/σ, −d_max, d_max); "
         "no gradient through them."),
    Card("Where to put dropout in a network with BN?",
         "After the last BN layer: dropout before BN shifts the variance between training and test (Li et al. 2019)."),
)
