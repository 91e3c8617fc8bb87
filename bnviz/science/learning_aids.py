"""Learning aids as plain data: quiz questions, a glossary and flashcards, plus pure checking functions.

Every statement here follows /work/shared/SCIENCE.md (the maths of batch norm as in Ioffe & Szegedy 2015 and
PyTorch, the experiments the app reproduces, and the claims that need care). `validate()` lists every problem with
the content (the tests call it); the Learn page only displays the data and calls `check_answer`, `search_glossary`
and `card_order`.
"""

from __future__ import annotations

import random

from .lesson_aids import LESSON_CARDS, LESSON_QUESTIONS, LESSON_TERMS
from .quiz_types import Card, Question, Term

TOPICS = ("maths", "experiments", "misconceptions", "beyond the basics")
MIN_OPTIONS, MAX_OPTIONS = 3, 5


QUESTIONS: tuple[Question, ...] = (
    # ---- the maths ----------------------------------------------------------------------------------------------
    Question(
        "biased_var", "maths",
        "In training mode, which variance does batch norm use to normalize a channel of a mini-batch of m values?",
        ("The unbiased variance, Σ(x − μ)² / (m − 1)",
         "The biased variance, Σ(x − μ)² / m",
         "The running variance stored in the layer",
         "The variance of the whole training set"),
        1,
        "The forward pass in training divides by m: it uses the variance the batch really has (Ioffe & Szegedy, "
        "Algorithm 1; PyTorch). The unbiased m/(m − 1) version is only fed into the running variance.",
    ),
    Question(
        "running_var_unbiased", "maths",
        "Which batch variance does PyTorch feed into running_var when it updates the running statistics?",
        ("The biased one (divide by m)",
         "The standard deviation, not the variance",
         "The unbiased one, m/(m − 1) times the biased one"),
        2,
        "running_var is updated with the unbiased estimate m/(m − 1) · σ², while the normalization in training "
        "uses the biased batch variance σ². With m = 6 the two differ by a factor 6/5; with large batches the "
        "difference is small.",
    ),
    Question(
        "eps_place", "maths",
        "Where does ε go in x̂ = (x − μ) / ...?",
        ("Under the square root: √(σ² + ε)",
         "After the square root: √σ² + ε",
         "In the numerator: x − μ + ε",
         "Nowhere in training; only in eval mode"),
        0,
        "ε is added to the variance before the square root: x̂ = (x − μ)/√(σ² + ε), in training and in eval mode "
        "(PyTorch's default ε = 1e-5). For a constant channel σ² = 0, so x̂ = 0/√ε = 0 instead of 0/0.",
    ),
    Question(
        "gamma_beta", "maths",
        "What are γ and β in y = γ x̂ + β?",
        ("Running estimates of the mean and the standard deviation",
         "A learned scale and shift per channel, which could even undo the normalization",
         "Fixed constants 1 and 0",
         "Learning-rate multipliers for the layer"),
        1,
        "γ and β are trainable parameters, one pair per channel (initialized to 1 and 0 in PyTorch). With fixed "
        "statistics μ and σ² (as in eval mode), γ = √(σ² + ε) and β = μ give back the input exactly. In training the "
        "statistics change from batch to batch while γ and β do not, so they can undo the normalization only "
        "approximately; Ioffe & Szegedy added them so that normalizing does not limit what the layer can represent.",
    ),
    Question(
        "momentum_convention", "maths",
        "In PyTorch, BatchNorm's momentum = 0.1 (the default) means...",
        ("running = 0.1 · running + 0.9 · batch statistic",
         "the optimizer uses momentum 0.1 for γ and β",
         "running = 0.9 · running + 0.1 · batch statistic",
         "the running statistics are updated every 10th batch"),
        2,
        "PyTorch: running ← (1 − momentum) · running + momentum · batch statistic, so 0.1 is the weight of the new "
        "batch. Keras/TensorFlow define it the other way round (momentum 0.9 or 0.99 = share kept). momentum=None "
        "in PyTorch gives a plain cumulative average.",
    ),
    Question(
        "eval_mode", "maths",
        "After model.eval(), what does a BatchNorm layer compute?",
        ("A fixed affine map y = a·x + b per channel, from the running statistics, γ and β",
         "The same as in training: it normalizes with the current batch's statistics",
         "Nothing: BatchNorm layers are skipped at inference",
         "It keeps updating the running statistics with each test batch"),
        0,
        "In eval mode the running mean and variance replace the batch statistics: a = γ/√(running_var + ε) and "
        "b = β − a · running_mean are constants, so one sample's output no longer depends on the rest of the batch.",
    ),
    Question(
        "forgot_eval", "maths",
        "You test a trained network on batches of 2 images but forget model.eval(). What happens?",
        ("Nothing: BatchNorm behaves the same in both modes",
         "Each prediction depends on the other image in its batch and accuracy can drop; the running statistics "
         "also keep being updated",
         "PyTorch raises an error at the first batch"),
        1,
        "In train mode BN normalizes with the statistics of each tiny batch, which are noisy and differ from the "
        "running statistics learned in training, and every forward pass updates the running buffers. Forgetting "
        "model.eval() is a classic bug.",
    ),
    Question(
        "scale_invariance", "maths",
        "A linear layer W is followed by BN. What happens to the BN output if every weight is multiplied by a = 10?",
        ("It becomes 10 times larger",
         "It becomes 10 times smaller",
         "It turns into γ for every input",
         "Nothing (up to the tiny effect of ε): BN(aWu) = BN(Wu)"),
        3,
        "Scaling W by a > 0 scales both the batch mean and the standard deviation by a, and they cancel. BN makes "
        "the layer's forward pass invariant to the scale of its weights (Ioffe & Szegedy, section 3.3). The "
        "training dynamics do change: the gradient with respect to the scaled weights shrinks by 1/a, so the "
        "effective step of plain SGD scales as lr / a².",
    ),
    Question(
        "conv_axes", "maths",
        "For a conv layer's output of shape (N, C, H, W), over which axes does BatchNorm2d compute each mean?",
        ("N, H and W: one mean per channel",
         "C, H and W: one mean per sample",
         "H and W: one mean per sample and channel",
         "All four axes: one mean for the whole tensor"),
        0,
        "Batch norm keeps one mean and variance per channel, from all N images and all H × W positions "
        "(m = N·H·W values). Over (C, H, W) per sample is layer norm; over (H, W) per sample and channel is "
        "instance norm.",
    ),
    Question(
        "one_value", "maths",
        "A fully connected layer with BN is trained on a batch of a single sample. What does PyTorch do?",
        ("It trains normally",
         "It raises \"Expected more than 1 value per channel when training\"",
         "It silently uses the running statistics"),
        1,
        "With one value per channel the batch variance is 0 and x̂ = 0 for any input, so the output would be β "
        "whatever the input. PyTorch refuses training with m = 1. (A conv layer with H·W > 1 still has several "
        "values per channel.)",
    ),
    # ---- the experiments ----------------------------------------------------------------------------------------
    Question(
        "ioffe_fig1", "experiments",
        "Ioffe & Szegedy's Figure 1 (MNIST, 3 hidden layers of 100 sigmoid units) tracks the 15th, 50th and 85th "
        "percentiles of a sigmoid input in the last hidden layer. What does it show?",
        ("With BN the distribution drifts more than without",
         "Without BN the distribution moves in mean and spread during training; with BN it is much more stable",
         "Both networks show the same distribution; only accuracy differs",
         "The percentiles explode to infinity without BN"),
        1,
        "Without BN the inputs to the sigmoid move in mean and spread over training; with BN they are \"much more "
        "stable\" (the paper's words: the learned γ and β can still move them), and the BN network's test accuracy "
        "rises faster. The Evidence page reruns a small version on 8×8 digits and reports how much the input moved "
        "in that run, and by which measure.",
    ),
    Question(
        "noisy_bn", "experiments",
        "Santurkar et al. (2018) added random noise after each BN layer (a random shift and scale, new at every "
        "step), so that layer inputs shift even more than without BN. What happened?",
        ("Training diverged, which proves BN works by removing the shift",
         "The network trained about as well as with plain BN",
         "The network became more accurate than any network without noise",
         "The experiment could not be run: BN removes any added noise"),
        1,
        "\"Noisy BN\" trained about as well as standard BN despite strong distribution shift of the layer inputs. "
        "So, in their experiments, stable layer inputs were not *necessary* for BN's benefit; this alone does not "
        "say where the benefit comes from.",
    ),
    Question(
        "ics_measure", "experiments",
        "Santurkar et al. measured internal covariate shift as the change in a layer's gradient after the earlier "
        "layers take their update (same batch). With BN, this shift was...",
        ("not smaller: about the same, or even larger",
         "zero",
         "about ten times smaller",
         "impossible to measure"),
        0,
        "In their networks (VGG on CIFAR-10, deep linear networks) the gradient-based ICS (‖G − G′‖ and "
        "cos(G, G′)) was not reduced by BN. What BN did change: the loss landscape along the gradient was smoother "
        "(the loss and the gradient changed less over a range of step sizes), which they argue permits larger "
        "learning rates. The answer depends on the network and the measure: in this app's own small run (Evidence "
        "page, a 4×64 ReLU MLP, seed 0) the cosine came out closer to 1 with BN (0.87 vs 0.62 without), i.e. by "
        "that measure BN *reduced* this ICS there, while ‖G − G′‖ / ‖G‖ was about the same (0.54 vs 0.58).",
    ),
    Question(
        "wu_he_batch", "experiments",
        "Wu & He (2018), ResNet-50 on ImageNet: what happens to the top-1 error of BN as the batch per GPU shrinks "
        "from 32 to 2?",
        ("It stays at 23.6%",
         "It improves, because small batches regularize",
         "It rises from 23.6% to 34.7%, while group norm stays around 24%",
         "It rises for both BN and group norm equally"),
        2,
        "BN: 23.6 / 23.7 / 24.8 / 27.3 / 34.7% at 32 / 16 / 8 / 4 / 2 images per GPU; GN: 24.1 / 24.2 / 24.0 / 24.2 "
        "/ 24.1%. Batch statistics from tiny batches are noisy; GN's statistics do not use the batch at all.",
    ),
    Question(
        "higher_lr", "experiments",
        "Which benefit of batch norm is well supported by experiments?",
        ("Larger usable learning rates and less sensitivity to the weight initialization",
         "A fixed 20% speed-up of training for every network",
         "92.2% test accuracy on CIFAR-10 for any architecture",
         "No need for a validation set"),
        0,
        "Ioffe & Szegedy trained with much higher learning rates, and many experiments since agree. In this app's "
        "learning-rate sweep (a 6×64 ReLU MLP, plain SGD, 1,000 steps, seed 0) BN reached about 98% at learning "
        "rates 1.0 and 3.0. Without BN, at 1.0 the network learned a little (up to about 24%) and then fell back to "
        "chance; at 3.0 it stayed at chance. At 0.01 it also ended at chance, but for another reason: its loss "
        "stayed flat because the steps were too small to leave the starting plateau in 1,000 steps (slow "
        "convergence, not intolerance; at 0.1 it reached about 69%). Fixed percentages without a source and a "
        "setup are not facts.",
    ),
    Question(
        "why_bn_helps", "experiments",
        "What did Santurkar et al. (2018) conclude about why BN helps optimization?",
        ("It provably eliminates internal covariate shift",
         "It reduces the number of parameters",
         "It works only because it adds noise",
         "It makes the loss landscape smoother, which allows larger learning rates; reducing ICS is not the "
         "mechanism"),
        3,
        "Ioffe & Szegedy proposed reducing internal covariate shift as the reason. Santurkar et al. found that BN "
        "still helps when the shift is made larger, measured a smoother loss landscape with BN, and argued that "
        "this smoothness is why BN helps. It is their account, not a consensus: Bjorck et al. (2018), Kohler et "
        "al. (2019), Arora et al. (2019), De & Smith (2020) and Yang et al. (2019) offer others (Evidence page).",
    ),
    # ---- the misconceptions -------------------------------------------------------------------------------------
    Question(
        "after_activation", "misconceptions",
        "A guide says: \"Always apply batch normalization after the activation function.\" What is right?",
        ("It is the rule from the original paper",
         "PyTorch forbids BN before an activation",
         "Neither placement is a law: the paper puts BN before the nonlinearity; after is also common in practice",
         "BN must come after the loss function"),
        2,
        "Ioffe & Szegedy apply BN to Wu, immediately before the nonlinearity (dropping the layer's bias, which β "
        "replaces). Placing it after the activation is also used and can work well. Try both in the app.",
    ),
    Question(
        "std_m_minus_1", "misconceptions",
        "A tutorial normalizes a batch with std = √(Σ(x − μ)² / (m − 1)). Compared with PyTorch's BatchNorm in "
        "training mode, this is...",
        ("exactly what PyTorch does",
         "off by a factor √((m − 1)/m): training normalizes with 1/m; m/(m − 1) belongs to the running variance",
         "what PyTorch does in eval mode",
         "correct for conv layers only"),
        1,
        "PyTorch (and the paper's Algorithm 1) divide by m in the forward pass. With 1/(m − 1) every normalized "
        "value comes out √((m − 1)/m) times PyTorch's (ignoring ε): 1/√2 at m = 2, about 0.99 at m = 64. The "
        "m/(m − 1) correction is applied only to the estimate that goes into running_var, which eval mode uses.",
    ),
    Question(
        "layer_norm", "misconceptions",
        "\"Layer normalization normalizes each layer.\" What does it actually normalize over?",
        ("Over the batch, like BN, but once per layer",
         "Over the layer's weights",
         "Over the features (C, H, W) of each single sample, independently of the batch",
         "Over (H, W) of each channel of each sample"),
        2,
        "LN computes one mean and variance per sample across its features, so it does not depend on the batch "
        "size and behaves the same in training and evaluation. Over (H, W) per sample and channel is instance norm.",
    ),
    Question(
        "ics_proven", "misconceptions",
        "\"Batch norm works because it reduces internal covariate shift.\" How should you treat this?",
        ("As the original hypothesis, not a settled explanation: later work offers others, such as a smoother "
         "loss landscape",
         "As a proven theorem",
         "As false: batch norm does not help training",
         "As irrelevant: batch norm is only a regularizer"),
        0,
        "The 2015 paper proposed it; Santurkar et al. (2018) found networks with extra injected shift train as well, "
        "and BN did not reduce their gradient-based ICS measure in their networks. BN's benefits themselves (faster "
        "training, larger learning rates) are well supported; their cause is still debated.",
    ),
    Question(
        "unsourced_claims", "misconceptions",
        "A blog post says: \"BN gives 92.2% on CIFAR-10 and trains 20% faster.\" What do you do with it?",
        ("Quote it: it is a well-known fact",
         "Treat it as unverified: without a source and the exact setup (model, schedule, augmentation) such numbers "
         "say nothing",
         "Assume it holds for every network with BN"),
        1,
        "Accuracy and speed depend on the architecture, the data pipeline and the training schedule. Check the "
        "cited paper, or run the comparison yourself with everything else fixed (as this app's twin runs do).",
    ),
    Question(
        "group_norm_g", "misconceptions",
        "Group norm splits the C channels into G groups. Which G turns it into layer norm?",
        ("G = C", "G = 1", "G = 32", "G = N"),
        1,
        "With one group GN normalizes over all (C, H, W) of a sample: layer norm. G = C gives instance norm; "
        "G = 32 is Wu & He's default. None of them use the batch.",
    ),
) + LESSON_QUESTIONS


GLOSSARY: tuple[Term, ...] = (
    Term("Normalization",
         "Rescaling values to a standard location and spread, usually mean 0 and variance 1: "
         "x̂ = (x − mean)/√(variance + ε). Normalization layers differ in which values share the statistics."),
    Term("Batch normalization",
         "BN (Ioffe & Szegedy 2015). Per channel, over the mini-batch (and H, W for conv layers): subtract the "
         "batch mean, divide by √(biased batch variance + ε), then y = γ x̂ + β. In eval mode the running "
         "statistics replace the batch statistics.", "BN"),
    Term("Internal covariate shift",
         "The change in the distribution of a layer's inputs during training, because the earlier layers keep "
         "learning. Ioffe & Szegedy's hypothesis is that BN helps by reducing it; Santurkar et al. (2018) reported "
         "evidence against that being the main mechanism and argued that BN helps by smoothing the loss landscape. "
         "Other accounts exist; the question is open.", "ICS"),
    Term("Gamma and beta",
         "The learnable per-channel scale γ and shift β applied after normalizing: y = γ x̂ + β. Initialized to 1 "
         "and 0 in PyTorch (`weight` and `bias`). They let the layer choose any mean and spread per channel; with "
         "fixed statistics they could even give back the original input.",
         "γ, β"),
    Term("Running statistics",
         "running_mean and running_var: moving averages of the batch means and (unbiased) batch variances seen in "
         "training, starting at 0 and 1. Eval mode normalizes with them instead of the batch's statistics."),
    Term("Epsilon",
         "A small constant added to the variance before the square root, √(σ² + ε), so the division is defined "
         "for a constant channel and tiny variances are not blown up. PyTorch default 1e-5; must be > 0 in "
         "training.", "ε"),
    Term("Momentum",
         "In PyTorch's BatchNorm, the weight of the new batch in the running statistics: running ← (1 − momentum) "
         "· running + momentum · batch statistic, default 0.1. Other frameworks give the kept share instead "
         "(0.9 or 0.99). Not the optimizer's momentum."),
    Term("Mini-batch",
         "The m examples processed in one training step. BN's statistics come from it, so they are noisy for small "
         "batches."),
    Term("Biased and unbiased variance",
         "Σ(x − μ)²/m (biased) and Σ(x − μ)²/(m − 1) (unbiased). BN normalizes with the biased one in training and "
         "feeds the unbiased one into running_var."),
    Term("Layer normalization",
         "LN (Ba et al. 2016): one mean and variance per sample, across its features (C, H, W for images). "
         "Independent of the batch; the same computation in training and evaluation.", "LN"),
    Term("Instance normalization",
         "IN: one mean and variance per sample and per channel, over (H, W).", "IN"),
    Term("Group normalization",
         "GN (Wu & He 2018): per sample, over groups of C/G channels and (H, W); G = 32 by default. G = 1 is layer "
         "norm, G = C is instance norm. In Wu & He's ResNet-50 on ImageNet its error barely changed from 32 to 2 "
         "images per GPU (24.1% at both).", "GN"),
    Term("Train vs eval mode",
         "model.train(): BN uses the batch statistics and updates the running ones. model.eval(): BN uses the "
         "running statistics, a fixed affine map. With tiny batches the two can score very differently; "
         "forgetting model.eval() at test time is a classic bug."),
    Term("Affine map",
         "A function y = a·x + b. BN in eval mode is one per channel, with a = γ/√(running_var + ε) and "
         "b = β − a · running_mean."),
    Term("Loss landscape smoothness",
         "How much the loss and its gradient change when the weights move. Santurkar et al. (2018) measured a "
         "smoother landscape along the gradient with BN in their networks and argued that this is what allows "
         "larger learning rates."),
) + LESSON_TERMS


FLASHCARDS: tuple[Card, ...] = (
    Card("The four steps of BN in training (per channel)",
         "μ = mean of the batch; σ² = Σ(x − μ)²/m; x̂ = (x − μ)/√(σ² + ε); y = γ x̂ + β."),
    Card("Variance used to normalize in training?", "The biased one, divided by m."),
    Card("Variance that goes into running_var (PyTorch)?", "The unbiased one, m/(m − 1) times the biased one."),
    Card("Where is ε added?", "To the variance, under the square root: √(σ² + ε). Default 1e-5."),
    Card("A channel is constant in the batch. What is x̂?", "0/√ε = 0 for every value, so y = β."),
    Card("PyTorch's running-statistics update",
         "running ← (1 − momentum) · running + momentum · batch statistic; default momentum 0.1 (Keras writes the "
         "kept share: its 0.9 is PyTorch's 0.1)."),
    Card("Initial values of γ, β, running_mean, running_var", "1, 0, 0, 1."),
    Card("BN in eval mode is...", "A fixed affine map per channel: y = a·x + b, from the running statistics."),
    Card("Axes BatchNorm2d averages over for (N, C, H, W)", "N, H and W: one mean and variance per channel."),
    Card("Layer norm averages over...", "The features (C, H, W) of each single sample: no batch dependence."),
    Card("Group norm with G = 1 and G = C", "G = 1: layer norm. G = C: instance norm."),
    Card("BN(aWu) for a > 0",
         "= BN(Wu): the forward pass does not depend on the weights' scale. Training does: the gradient scales as "
         "1/a, the effective SGD step as lr / a²."),
    Card("Where did Ioffe & Szegedy place BN?",
         "Immediately before the nonlinearity, on Wu (the layer's bias is dropped; β replaces it). After the "
         "activation is also common: neither is a law."),
    Card("Santurkar et al. (2018): noisy BN",
         "Injecting random shift and scale after BN makes the input distributions shift more, yet training works "
         "about as well as with plain BN."),
    Card("What BN changes, according to Santurkar et al.",
         "A smoother loss landscape (loss and gradient change less along the gradient), not less ICS: their "
         "account of why BN helps, one of several."),
    Card("Wu & He: BN top-1 error at 32 vs 2 images per GPU", "23.6% vs 34.7% (group norm: 24.1% at both)."),
    Card("Well-supported benefits of BN",
         "Larger usable learning rates, less sensitivity to initialization, faster convergence, mild regularization "
         "from mini-batch noise."),
    Card("Costs of BN",
         "Depends on the batch size, differs between train and eval mode, extra computation, trouble with very "
         "small or non-i.i.d. batches."),
) + LESSON_CARDS

REQUIRED_TERMS = ("normalization", "batch normalization", "internal covariate shift", "gamma and beta",
                  "running statistics", "epsilon", "momentum", "layer normalization", "instance normalization",
                  "group normalization", "train vs eval mode")


# ---- checking --------------------------------------------------------------------------------------------------


def validate(questions=QUESTIONS, glossary=GLOSSARY, cards=FLASHCARDS) -> list[str]:
    """Every problem with the content, one sentence each; an empty list means it is fine."""
    problems = []
    keys = [q.key for q in questions]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"question key {key!r} is used more than once")
    for q in questions:
        where = f"question {q.key!r}"
        if q.topic not in TOPICS:
            problems.append(f"{where}: topic {q.topic!r} is not one of {TOPICS}")
        if not q.prompt.strip():
            problems.append(f"{where}: empty prompt")
        if not MIN_OPTIONS <= len(q.options) <= MAX_OPTIONS:
            problems.append(f"{where}: {len(q.options)} options, expected {MIN_OPTIONS} to {MAX_OPTIONS}")
        if any(not option.strip() for option in q.options):
            problems.append(f"{where}: an option is empty")
        if len({option.strip().lower() for option in q.options}) != len(q.options):
            problems.append(f"{where}: two options are the same, so the correct one is not unique")
        if isinstance(q.answer, bool) or not isinstance(q.answer, int) or not 0 <= q.answer < len(q.options):
            problems.append(f"{where}: answer {q.answer!r} is not an index into its {len(q.options)} options")
        if not q.explanation.strip():
            problems.append(f"{where}: empty explanation")
    names = [t.term.strip().lower() for t in glossary]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"glossary term {name!r} appears more than once")
    for t in glossary:
        if not t.term.strip() or not t.definition.strip():
            problems.append(f"glossary term {t.term!r}: empty term or definition")
    for i, card in enumerate(cards):
        if not card.front.strip() or not card.back.strip():
            problems.append(f"flashcard {i + 1}: empty front or back")
    return problems


def missing_terms(glossary=GLOSSARY, required=REQUIRED_TERMS) -> list[str]:
    """Required glossary terms that have no entry."""
    present = {t.term.strip().lower() for t in glossary}
    return [term for term in required if term not in present]


def check_answer(question: Question, choice: int | None) -> bool:
    """True if `choice` (an option index, or None when nothing was picked) is the correct option."""
    return choice is not None and choice == question.answer


def score(questions, choices: dict[str, int | None]) -> tuple[int, int]:
    """(correct, answered) for the checked choices, a dict question key -> chosen option index."""
    by_key = {q.key: q for q in questions}
    answered = [(by_key[k], c) for k, c in choices.items() if k in by_key and c is not None]
    return sum(check_answer(q, c) for q, c in answered), len(answered)


def search_glossary(query: str, glossary=GLOSSARY) -> list[Term]:
    """Entries whose term, symbol or definition contains every word of `query` (case-insensitive), in glossary
    order except that entries whose term or symbol matches come first. An empty query gives the whole glossary."""
    words = query.lower().split()
    hits = [t for t in glossary if all(w in f"{t.term} {t.symbol} {t.definition}".lower() for w in words)]
    return sorted(hits, key=lambda t: not all(w in f"{t.term} {t.symbol}".lower() for w in words))  # stable


def card_order(n: int, seed: int) -> list[int]:
    """A shuffled order of n flashcards; the same seed always gives the same order."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order
