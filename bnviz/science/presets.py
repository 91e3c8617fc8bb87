"""Canned experiments for the live lab: each trains two runs side by side (A and B) that differ in one thing.

Every preset was run on the bundled digits before it was written down here; `expect` says what it showed at its
own step count (test accuracy on the whole test set at the end, eval mode unless it says otherwise, seed 0), so a
teacher knows what the class will see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.config import RunConfig

BATCH_OF_TWO = "Batches of 2: BN's train/eval gap, vs GN"
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
        shared=dict(steps=400, lr=0.05), expect="no BN 0.77, BN 0.99 test accuracy after 400 steps",
    ),
    Preset(
        "A high learning rate (0.5), without and with BN",
        "Learning rate 0.5 (ten times the default), the CNN without and with BN: does each one learn?",
        "The loss: does it fall, stay flat near 2.3 (chance for 10 classes) or blow up? The share of dead ReLUs in "
        "each run. The gradient norms on the Gradients page.",
        a=dict(norm="none"), b=dict(norm="batch"), labels=("no BN", "BN"),
        shared=dict(lr=0.5, steps=300),
        expect="no BN 0.10 (chance: its loss stays near 2.3, a plateau, not a divergence), BN 0.99 after 300 steps",
    ),
    Preset(
        "Sigmoid network (Ioffe & Szegedy, Figure 1)",
        "The network of the paper's Figure 1 (3 hidden layers of 100 sigmoid units, batch 60) on 8x8 digits, with "
        "our choices where the paper gives none: plain SGD, lr 0.5, PyTorch's default initial weights.",
        "Percentile lines of the last block's sigmoid input (pooled over its units): compare how far they move "
        "without BN and with BN (the paper found them \"much more stable\" with BN; γ and β can still move them).",
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
        shared=dict(norm="batch", steps=300),
        expect="before 0.77 (0.97 in train mode: its running statistics lag), after 0.99 after 300 steps on digits",
    ),
    Preset(
        BATCH_OF_TWO,
        "Both runs train with batches of 2 images, on the same batches with the same settings: batch norm "
        "normalizes with the statistics of the 2 images (2 x 8 x 8 values per channel) and tests with running "
        "averages of them; group norm normalizes each image on its own, the same way in training and at test time.",
        "Inside BatchNorm: batch vs running statistics, and BN's train-mode vs eval-mode accuracy gap (GN has "
        "none by construction). Which of the two learns faster here is this run's result, not a rule.",
        a=dict(norm="batch"), b=dict(norm="group"), labels=("BN", "GN"),
        shared=dict(batch_size=2, lr=0.02, steps=1500, eval_every=100),
        expect="after 1,500 steps: BN 0.93 in eval mode, 0.88 in train mode (test images in batches of 2; at step "
               "1,000, on the 1,000-image subset: 0.87 vs 0.67); GN 0.16 in both modes (with these settings it "
               "barely leaves chance). Wu & He's ResNet-50 on ImageNet at 2 images per GPU found the opposite "
               "order (BN 34.7% vs GN 24.1% error): a different network, data and schedule.",
    ),
]}

DEFAULT_PRESET = "BN vs no BN (default CNN)"
# Presets renamed when what they showed was re-measured: an old shared link that names one opens the new one.
FORMER_NAMES = {"Tiny batches break BN": BATCH_OF_TWO,
                "BN rescues a high learning rate": "A high learning rate (0.5), without and with BN"}
