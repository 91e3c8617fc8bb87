"""Runs' settings in words: the names of two runs by what differs between them, and what changed between the
settings of the runs on screen and the settings a page shows now. No Streamlit, no Plotly: pages and tests call
these with RunConfigs.
"""

from __future__ import annotations

from ..engine.config import RunConfig

# The settings a user picks (the widgets' and the links'), in the words the widgets use.
FIELD_WORDS = {
    "dataset": "dataset", "model": "model", "depth": "hidden blocks", "width": "width", "activation": "activation",
    "norm": "normalization", "placement": "norm placement", "eps": "epsilon", "bn_momentum": "BN momentum",
    "groups": "groups", "batch_size": "batch size", "lr": "learning rate", "optimizer": "optimizer",
    "sgd_momentum": "SGD momentum", "init": "weight init", "init_scale": "init scale", "steps": "steps",
    "weight_decay": "weight decay", "ghost_batch": "ghost batch size",
    "seed": "seed",
}
NORM_WORDS = {"none": "none", "batch": "batch norm", "batch-noisy": "batch norm + noise", "layer": "layer norm",
              "instance": "instance norm", "group": "group norm", "batch-renorm": "batch renorm"}
NORM_SHORT = {"none": "no BN", "batch": "BN", "batch-noisy": "noisy BN", "layer": "LN", "instance": "IN",
              "group": "GN", "batch-renorm": "BRN"}
# How a run is named by a setting in which it differs from the other run (norm is named by NORM_SHORT).
NAME_FORMATS = (("placement", "norm {}"), ("lr", "lr {:g}"), ("batch_size", "batch {}"), ("init_scale", "init x{:g}"),
                ("activation", "{}"), ("optimizer", "{}"), ("depth", "{} blocks"), ("width", "width {}"),
                ("model", "{}"), ("dataset", "{}"), ("seed", "seed {}"), ("steps", "{:,} steps"),
                ("weight_decay", "wd {:g}"), ("ghost_batch", "ghost {}"))


def value_words(field: str, value) -> str:
    """A setting's value as the widgets show it ("batch norm", "0.05", "1,000")."""
    if field == "norm":
        return NORM_WORDS.get(value, str(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def differing_fields(a: RunConfig, b: RunConfig) -> list[str]:
    """The user-set fields (FIELD_WORDS) in which a and b differ, in the widgets' order."""
    return [f for f in FIELD_WORDS if getattr(a, f) != getattr(b, f)]


def run_name(cfg: RunConfig, other: RunConfig) -> str:
    """A short name for `cfg` that says how it differs from `other` ("no BN", "lr 0.5"): the first differing
    setting, normalization first (a run's colour follows its name: "BN" is blue and "no BN" vermillion in every
    chart); "" when they do not differ in a setting that has a name."""
    if cfg.norm != other.norm:
        return "no norm" if cfg.norm == "none" and not other.uses_batch_norm else NORM_SHORT[cfg.norm]
    for field, text in NAME_FORMATS:
        if getattr(cfg, field) != getattr(other, field):
            return text.format(getattr(cfg, field))
    return ""


def run_names(a: RunConfig, b: RunConfig, fallback: tuple[str, str] = ("A", "B")) -> tuple[str, str]:
    """Names for two runs by what differs ("no BN" / "BN", "lr 0.05" / "lr 0.5"); `fallback` when the settings do
    not tell them apart."""
    names = run_name(a, b), run_name(b, a)
    return names if names[0] and names[1] and names[0] != names[1] else fallback


def settings_change(shown: list[RunConfig], current: list[RunConfig], labels: list[str]) -> str | None:
    """What differs between the runs on screen (`shown`, named by `labels`) and the settings a page shows now
    (`current`), in words ("BN: steps 300 → 1,000; activation relu → tanh"), or None when they match."""
    if len(shown) != len(current):
        words = {1: "one run", 2: "two runs"}
        return (f"{words.get(len(current), f'{len(current)} runs')} instead of "
                f"{words.get(len(shown), f'{len(shown)} runs')}")
    parts = []
    for label, was, now in zip(labels, shown, current, strict=True):
        fields = differing_fields(was, now)
        if fields:
            changes = ", ".join(_change(f, was, now) for f in fields)
            parts.append(f"{label}: {changes}" if len(shown) > 1 else changes)
    return "; ".join(parts) or None


def _change(field: str, was: RunConfig, now: RunConfig) -> str:
    return f"{FIELD_WORDS[field]} {value_words(field, getattr(was, field))} → {value_words(field, getattr(now, field))}"


def settings_words(settings: dict, skip: tuple[str, ...] = ()) -> str:
    """An experiment's settings as words, not code: "steps 600, seed 0, norms batch, group and layer"."""
    def words(value) -> str:
        if isinstance(value, (tuple, list)):
            items = [words(v) for v in value]
            return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    return ", ".join(f"{FIELD_WORDS.get(key, key.replace('_', ' '))} {words(value)}"
                     for key, value in settings.items() if key not in skip)
