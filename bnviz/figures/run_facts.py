"""What a figure needs to know about a run: the runs to compare, its blocks and stages, and their names in words.

Builders accept runs in several forms (`as_runs`), a block by index or name (`layer_index`) and the stage alias
`ACT_INPUT` (`resolve_stage`: the input of the block's activation); `stage_label` and `norm_name` give the words a
figure's title uses, and `missing_stage_text` / `no_norm_text` what a figure says when a run lacks what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..engine.history import History

ACT_INPUT = "act_input"  # stage alias: whatever feeds the activation (the norm output with BN before it, else pre)


def activation_input_stage(history: History, layer: int) -> str:
    """The stage whose values enter the block's activation: "norm" if the block is normalized before the
    activation (the config in `history.meta` says placement "before"), else "pre" (the conv/linear output).
    A run of `bnviz.watch` names the stage for each layer in `history.meta["watch"]["act_input"]`."""
    stage = _watched(history, "act_input", layer)
    if stage and history.probe_index(layer, stage) is not None:
        return stage
    placement = (history.meta.get("config") or {}).get("placement")
    if placement == "before" and history.probe_index(layer, "norm") is not None:
        return "norm"
    return "pre"


def as_runs(runs) -> list[tuple[str, History | None]]:
    """Runs to compare as (label, History) pairs, from a list of pairs, a dict or one History (label "run")."""
    if runs is None:
        return []
    if isinstance(runs, History):
        return [("run", runs)]
    if isinstance(runs, Mapping):
        return [(str(k), v) for k, v in runs.items()]
    return [(str(label), h) for label, h in runs]


def with_data(runs: list[tuple[str, History | None]]) -> list[tuple[str, History]]:
    """The runs that have recorded at least one step (the others are still waiting)."""
    return [(label, h) for label, h in runs if row_count(h)]


def row_count(history: History | None) -> int:
    """Rows recorded so far (0 for None: a figure of no run says it is waiting)."""
    return 0 if history is None else len(history)


def layer_index(history: History, layer: int | str) -> int:
    """A block's index from an index (negative counts from the last) or a name; ValueError if there is none."""
    names = history.layout.layers
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"layer={layer!r} is unknown: this run has {', '.join(names)}")
        return names.index(layer)
    if not -len(names) <= layer < len(names):
        raise ValueError(f"layer={layer} is out of range: this run has {len(names)} blocks (0 to {len(names) - 1})")
    return layer % len(names)


def resolve_stage(history: History, layer: int, stage: str) -> str:
    """The recorded stage a stage name stands for: `ACT_INPUT` becomes "norm" or "pre" (see above)."""
    return activation_input_stage(history, layer) if stage == ACT_INPUT else stage


def probe_of(history: History | None, layer: int | str, stage: str) -> int | None:
    """The probe of a block's stage (block by index or name, stage alias resolved), or None when the history has no
    rows or did not record that stage."""
    if not row_count(history):
        return None
    layer = layer_index(history, layer)
    return history.probe_index(layer, resolve_stage(history, layer, stage))


def run_config(history: History) -> dict:
    """The run's config as saved in its meta ({} for a watched model, which has none)."""
    return history.meta.get("config") or {}


def _watched(history: History, key: str, layer: int):
    """Per-layer facts a `bnviz.watch` run keeps in meta["watch"] (None for other runs)."""
    values = (history.meta.get("watch") or {}).get(key)
    value = values[layer] if isinstance(values, list) and 0 <= layer < len(values) else None
    return value if isinstance(value, str) else None  # meta comes from a file: trust only strings


def norm_name(history: History) -> str:
    """The run's normalization in words: "BN", "layer norm", ..., or "norm" if it is unknown or mixed."""
    names = {"batch": "BN", "batch-noisy": "noisy BN", "layer": "layer norm", "instance": "instance norm",
             "group": "group norm", "batch-renorm": "batch renorm"}
    norm = run_config(history).get("norm")
    if norm in names:
        return names[norm]
    kinds = {kind for _, kind, _ in history.layout.norm_layers}
    return names.get(kinds.pop(), "norm") if len(kinds) == 1 else "norm"


def _activation_name(history: History, layer: int) -> str:
    k = history.probe_index(layer, "act")
    kind = history.layout.act_kinds[k] if k is not None else ""
    return {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}.get(kind, "activation")


def stage_label(history: History, layer: int, stage: str) -> str:
    """Plain words for a stage: "conv output", "BN output (input to the ReLU)", "ReLU output"."""
    stage = resolve_stage(history, layer, stage)
    act = _activation_name(history, layer)
    feeds = ""
    if stage == activation_input_stage(history, layer) and history.probe_index(layer, "act") is not None:
        feeds = " (input to the " + act + ")"  # a watched layer may have no activation module
    if stage == "pre":
        model = run_config(history).get("model") or _watched(history, "pre", layer)
        return {"cnn": "conv output", "mlp": "linear output", "conv": "conv output",
                "linear": "linear output"}.get(model, "layer output") + feeds
    if stage == "norm":
        return f"{norm_name(history)} output{feeds}"
    if stage == "act":
        return f"{act} output"
    return stage


def missing_stage_text(history: History, layer: int, stage: str) -> str:
    """What a figure says when the run did not record `stage` of block `layer`."""
    name = history.layout.layers[layer]
    if stage == "norm" and not history.layout.norm_layers:
        return f"This run has no normalization layers,<br>so {name} has no norm stage to show."
    return f"Stage {stage!r} of {name} is not recorded in this run."


def no_norm_text(history: History, what: str) -> str:
    """What a figure about normalization layers says for a run that has none."""
    return f"This run has no normalization layers (norm = none):<br>there is no {what} to show."
