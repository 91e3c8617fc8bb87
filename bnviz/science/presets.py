"""Canned experiments for the live lab: each trains two runs side by side (A and B) that differ in one thing.

Every preset was run on the bundled digits before it was written down here; `expect` says what it showed
(test accuracy at the end, 2 cores, seed 0), so a teacher knows what the class will see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.config import RunConfig

SIGMOID_MLP = dict(model="mlp", depth=3, width=100, activation="sigmoid", batch_size=60, lr=0.5, sgd_momentum=0.0)


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str  # one sentence: what the preset shows
    look_for: str  # what to watch in the charts
    a: dict  # config changes for run A (from the defaults)
    b: dict  # config changes for run B
    labels: tuple[str, str] = ("A", "B")
    expect: str = ""
    shared: dict = field(default_factory=dict)  # changes applied to both

    def configs(self, base: RunConfig | None = None) -> list[RunConfig]:
        base = base or RunConfig()
        return [base.replace(**{**self.shared, **self.a}), base.replace(**{**self.shared, **self.b})]


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset(
        "BN vs no BN (default CNN)",
        "The same small CNN without and with BN.",
        "How far each block's input distribution moves in mean and spread, without BN and with BN. With BN every "
        "channel's batch mean and spread are set by β and γ, which start at 0 and 1 and are learned.",
        a=dict(norm="none"), b=dict(norm="batch"), labels=("no BN", "BN"),
        shared=dict(steps=400, lr=0.05), expect="no BN 0.93, BN 0.99 test accuracy after 1,000 steps",
    ),
    Preset(
        "BN rescues a high learning rate",
        "Learning rate 0.5 (ten times the default), the CNN without and with BN: does each one learn?",
        "The loss: does it fall, stay flat near 2.3 (chance for 10 classes) or blow up? The share of dead ReLUs in "
        "each run. The gradient norms on the Gradients page.",
        a=dict(norm="none"), b=dict(norm="batch"), labels=("no BN", "BN"),
        shared=dict(lr=0.5, steps=300), expect="no BN 0.10 (chance), BN 0.99 after 300 steps",
    ),
    Preset(
        "Sigmoid network (Ioffe & Szegedy, Figure 1)",
        "The network of the paper's Figure 1 (3 hidden layers of 100 sigmoid units, batch 60) on 8x8 digits, with "
        "our choices where the paper gives none: plain SGD, lr 0.5, PyTorch's default initial weights.",
        "The percentile lines of the last block's sigmoid input: how far they move without BN and with BN (the "
        "paper found them \"much more stable\" with BN; γ and β can still move them).",
        a=dict(norm="none"), b=dict(norm="batch"), labels=("no BN", "BN"),
        shared=dict(SIGMOID_MLP, steps=2000, eval_every=100), expect="no BN 0.25, BN 0.98 after 2,000 steps",
    ),
    Preset(
        "Bad initialization",
        "The sigmoid MLP with weights drawn from N(0, 0.01²), much smaller than PyTorch's default, without and "
        "with BN.",
        "Whether the run without BN keeps its sigmoid outputs bunched at 0.5 (the signal fading through the "
        "layers) and its loss flat; BN rescales each layer's input whatever the weights' size.",
        a=dict(norm="none"), b=dict(norm="batch"), labels=("no BN", "BN"),
        shared=dict(SIGMOID_MLP, init="normal", init_scale=0.01, steps=1000, eval_every=100),
        expect="no BN 0.10 (chance), BN 0.97 after 1,000 steps",
    ),
    Preset(
        "BN before vs after the activation",
        "Batch norm on the conv output (before ReLU, as in the paper) or on the ReLU output (after).",
        "Neither is a law: compare the stage distributions and the accuracy; results depend on the task.",
        a=dict(placement="before"), b=dict(placement="after"), labels=("before", "after"),
        shared=dict(norm="batch", steps=300), expect="before 0.88, after 0.99 after 300 steps on digits",
    ),
    Preset(
        "Tiny batches break BN",
        "Batch norm with batches of 64 vs batches of 2: with 2 images, each batch's mean and variance are noisy "
        "guesses and so are the running averages used at test time.",
        "Inside BatchNorm: batch vs running statistics, and the train-mode vs eval-mode accuracy gap.",
        a=dict(batch_size=64), b=dict(batch_size=2), labels=("batch 64", "batch 2"),
        shared=dict(norm="batch", lr=0.02, steps=600, eval_every=50),
    ),
]}

DEFAULT_PRESET = "BN vs no BN (default CNN)"
