"""What two runs trained side by side share: their initial weights and their batches, as rules and as a sentence.

A Job (bnviz.engine.trainer) trains run B next to run A:

- **initial weights**: B copies A's initial value of every parameter and buffer that has the same name and shape
  in both models (`models.copy_shared_weights`), unless the two configs draw their weights differently (`init`,
  `init_scale`): copying would undo the very difference being compared (`copies_weights`). B's other tensors are
  drawn from B's own seed.
- **batches**: B trains on A's batch stream when both have the same data (dataset, seed, difficulty: one loaded
  dataset per `data_key`) and the same batch size (`shares_batches`, the rule `trainer.stream_for` applies);
  otherwise each run draws its own stream from its seed.

`what_runs_share(a, b)` answers both for two configs before anything is trained; its `sentence()` is what the
pages show wherever they say what a twin or a comparison shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig
from .models import build_model, shared_state_names

# The parameter names and shapes that differ between two models built for the same data do not depend on the
# data's image size or class count (both models see the same ones), so any valid shape gives the same answer.
NOMINAL_DATA = ((1, 8, 8), 10)


def data_key(cfg: RunConfig) -> tuple:
    """What identifies a run's data: a Job loads one dataset per key and its runs share it."""
    return (cfg.dataset, cfg.seed, cfg.difficulty)


def shares_batches(a: RunConfig, b: RunConfig) -> bool:
    """True when runs with these configs train on the same batch stream: same data and same batch size."""
    return data_key(a) == data_key(b) and a.batch_size == b.batch_size


def copies_weights(a: RunConfig, b: RunConfig) -> bool:
    """True when run B starts from A's initial weights where names and shapes match: unless the configs draw their
    weights differently (`init`, `init_scale`), which is then what the two runs compare."""
    return a.init == b.init and a.init_scale == b.init_scale


@dataclass(frozen=True)
class Sharing:
    """What run B shares with run A. `copied`: B's parameters that start as A's; `own`: the rest of B's
    parameters (drawn from B's seed); None for both when the data differ and their shapes were not given."""

    copies_weights: bool
    copied: tuple[str, ...] | None
    own: tuple[str, ...] | None
    batches: bool
    batch_sizes: tuple[int, int]
    same_data: bool
    scale: float | None  # B's weights = A's draws times this, when only init_scale differs

    def sentence(self) -> str:
        """One plain sentence for the pages."""
        return f"{self._weights_part()}. {self._batches_part()}."

    def _weights_part(self) -> str:
        if self.scale is not None:
            return (f"The second run's initial weights are the first run's random draws multiplied by "
                    f"{self.scale:g} (same seed, different init scale; the biases are the same)")
        if not self.copies_weights:
            return ("The two runs draw their initial weights differently (their init or init scale differs), so "
                    "they start from different weights")
        if self.copied is None:
            return ("The second run starts from the first run's initial weights wherever a layer has the same "
                    "name and shape in both")
        if not self.copied:
            return "The two runs share no initial weights (no layer has the same name and shape in both)"
        if not self.own:
            return "Both runs start from the same initial weights"
        return (f"Both runs start from the same initial weights where a layer has the same name and shape in both "
                f"({len(self.copied)} of the second run's {len(self.copied) + len(self.own)} weight tensors); "
                f"its own initialization gives the rest: {own_kinds(self.own)}")

    def _batches_part(self) -> str:
        if self.batches:
            return "They train on the same batches in the same order"
        if not self.same_data:
            return "They train on different batches (their data differ: dataset, seed or difficulty)"
        a, b = self.batch_sizes
        return (f"They train on different batches: with batch sizes {a} and {b} each run draws its own stream "
                f"of batches from its seed")


def own_kinds(names: tuple[str, ...]) -> str:
    """Parameter names in plain words for the sentence: "the normalization layers' γ and β (1 and 0 at the start in
    every run), 3 biases"."""
    norm = [n for n in names if ".norm." in n]
    biases = [n for n in names if n.endswith(".bias") and n not in norm]
    weights = [n for n in names if n not in norm and n not in biases]
    parts = ["the normalization layers' γ and β (1 and 0 at the start in every run)"] if norm else []
    parts += [f"{len(biases)} {'bias' if len(biases) == 1 else 'biases'}"] if biases else []
    parts += [f"the weights of {len(weights)} {'layer' if len(weights) == 1 else 'layers'} whose shape differs"
              ] if weights else []
    return ", ".join(parts)


def what_runs_share(a: RunConfig, b: RunConfig, data: tuple | None = None) -> Sharing:
    """What run B (config `b`) shares with run A (config `a`) when a Job trains them side by side.

    data: (input_shape, n_classes) of the data both use; needed only when the configs name different data, to tell
    which layers match (without it the sentence states the rule instead of the layers)."""
    copied = own = scale = None
    if a.dataset == b.dataset or data is not None:
        shape, classes = data if data is not None else NOMINAL_DATA
        model_a, model_b = build_model(a, shape, classes), build_model(b, shape, classes)
        shared = set(shared_state_names(model_a, model_b))
        names = [name for name, _ in model_b.named_parameters()]
        same_layers = all(name in shared for name in names) and len(names) == len(list(model_a.parameters()))
        if copies_weights(a, b):
            copied = tuple(n for n in names if n in shared)
            own = tuple(n for n in names if n not in shared)
        elif a.init == b.init and a.seed == b.seed and same_layers:
            scale = b.init_scale / a.init_scale  # the same random draws (same seed, same layers), scaled
    return Sharing(copies_weights(a, b), copied, own, shares_batches(a, b), (a.batch_size, b.batch_size),
                   data_key(a) == data_key(b), scale)
