"""Widgets for every engine knob, bounded to valid values; they return a validated RunConfig.

Each widget has an explicit key `<prefix>_<field>` and keeps its value across pages (`persist_state="session"`).
Learning rate and epsilon are chosen on log scales.
"""

from __future__ import annotations

import streamlit as st

from ..config import ACTIVATIONS, LIMITS, MODELS, NORMS, OPTIMIZERS, PLACEMENTS, RunConfig
from ..presets import PRESETS
from .userdata import dataset_choices

LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
EPS_CHOICES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)
BATCH_CHOICES = (2, 4, 8, 16, 32, 60, 64, 128, 256)  # 60: Ioffe & Szegedy's batch size
WIDTH_CHOICES = (4, 8, 16, 32, 64, 100, 128)
INIT_SCALE_CHOICES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 5.0, 10.0)
DATASET_CHOICES = ("digits", "shapes")  # bundled or generated: work offline
NORM_LABELS = {"none": "none", "batch": "batch norm", "batch-noisy": "batch norm + noise (Santurkar)",
               "layer": "layer norm", "instance": "instance norm", "group": "group norm"}
TWIN_FIELDS = {"norm": "normalization", "placement": "norm placement", "lr": "learning rate",
               "batch_size": "batch size", "init_scale": "init scale"}


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def seed_widgets(prefix: str, cfg: RunConfig) -> None:
    """Put a config's values into the widgets' state (used by presets and 'reset to defaults')."""
    for name, value in cfg.to_dict().items():
        st.session_state[_key(prefix, name)] = _nearest(name, value)


def _nearest(name: str, value):
    choices = {"lr": LR_CHOICES, "eps": EPS_CHOICES, "batch_size": BATCH_CHOICES, "width": WIDTH_CHOICES,
               "init_scale": INIT_SCALE_CHOICES}.get(name)
    if choices is None:
        return value
    return min(choices, key=lambda c: abs(c - value) / max(abs(value), 1e-12))


def _ensure_defaults(prefix: str, defaults: RunConfig | None) -> None:
    if _key(prefix, "lr") not in st.session_state:
        seed_widgets(prefix, defaults or RunConfig())


def config_controls(prefix: str, container=None, compact: bool = False, defaults: RunConfig | None = None
                    ) -> RunConfig:
    """Draw the config widgets into `container` (default: the sidebar) and return the validated config."""
    c = container or st.sidebar
    _ensure_defaults(prefix, defaults)
    k = lambda name: dict(key=_key(prefix, name), persist_state="session")  # noqa: E731
    values = {}
    with c.expander("Model and data", expanded=not compact):
        datasets, dataset_label = dataset_choices(_key(prefix, "dataset"), DATASET_CHOICES)
        values["dataset"] = st.selectbox("Dataset", datasets, format_func=dataset_label, **k("dataset"),
                                         help="digits: scikit-learn's 8x8 handwritten digits (bundled). "
                                              "shapes: generated coloured shapes, 16x16. Yours: upload them "
                                              "under 'Use your own images'.")
        values["model"] = st.radio("Model", MODELS, horizontal=True, **k("model"),
                                   help="cnn: conv blocks + global pooling; mlp: fully connected blocks")
        values["depth"] = st.slider("Hidden blocks", 1, 6, **k("depth"))
        values["width"] = st.select_slider("Width (channels or units)", WIDTH_CHOICES, **k("width"))
        values["activation"] = st.radio("Activation", ACTIVATIONS, horizontal=True, **k("activation"))
    with c.expander("Normalization", expanded=True):
        values["norm"] = st.selectbox("Normalization", NORMS, format_func=NORM_LABELS.get, **k("norm"))
        values["placement"] = st.radio("Placement", PLACEMENTS, horizontal=True, **k("placement"),
                                       help="before: layer -> norm -> activation (Ioffe & Szegedy); "
                                            "after: layer -> activation -> norm")
        values["eps"] = st.select_slider("Epsilon", EPS_CHOICES, format_func=_sci, **k("eps"),
                                         help="added to the variance before the square root")
        values["bn_momentum"] = st.slider("BN momentum", 0.0, 1.0, step=0.01, **k("bn_momentum"),
                                          help="PyTorch convention: running = (1 - m) x running + m x batch")
        values["groups"] = st.select_slider("Groups (group norm)", (1, 2, 4, 8, 16), **k("groups"))
    with c.expander("Training", expanded=not compact):
        values["batch_size"] = st.select_slider("Batch size", BATCH_CHOICES, **k("batch_size"))
        values["lr"] = st.select_slider("Learning rate", LR_CHOICES, format_func=_sci, **k("lr"))
        values["optimizer"] = st.radio("Optimizer", OPTIMIZERS, horizontal=True, **k("optimizer"))
        values["sgd_momentum"] = st.slider("SGD momentum", 0.0, 0.99, step=0.01, **k("sgd_momentum"),
                                           help="0 is plain SGD (as in Ioffe & Szegedy's Figure 1); not used by Adam")
        values["init"] = st.radio("Weight init", ("default", "normal"), horizontal=True, **k("init"),
                                  help="default: PyTorch's, times the scale; normal: N(0, scale^2)")
        values["init_scale"] = st.select_slider("Init scale", INIT_SCALE_CHOICES, **k("init_scale"))
        values["steps"] = st.number_input("Steps", 10, 20_000, step=100, **k("steps"))
        values["seed"] = st.number_input("Seed", 0, 2**31 - 1, step=1, **k("seed"))
    values["eval_every"] = max(10, int(values["steps"]) // 20)
    return _validated(values)


def _validated(values: dict) -> RunConfig:
    if values.get("norm") == "group" and values["width"] % values["groups"]:
        values["groups"] = 1
    if values.get("norm") == "instance" and values["model"] == "mlp":
        values["norm"] = "layer"
    try:
        return RunConfig(**values).validate()
    except ValueError as exc:
        st.warning(f"Adjusted an invalid setting: {exc}")
        return RunConfig()


def twin_controls(prefix: str, base: RunConfig, container=None) -> RunConfig | None:
    """A second run that differs from `base` in one setting (same batches, same initial weights), or None."""
    c = container or st.sidebar
    k = lambda name: dict(key=_key(prefix, name), persist_state="session")  # noqa: E731
    if _key(prefix, "on") not in st.session_state:
        st.session_state[_key(prefix, "on")] = True
        st.session_state[_key(prefix, "field")] = "norm"
    on = c.toggle("Train a twin side by side", **k("on"),
                  help="Same batches, same initial weights; only the setting below differs.")
    if not on:
        return None
    field = c.selectbox("The twin differs in", tuple(TWIN_FIELDS), format_func=TWIN_FIELDS.get, **k("field"))
    default = {"norm": "none" if base.norm != "none" else "batch",
               "placement": "after" if base.placement == "before" else "before",
               "lr": _nearest("lr", base.lr * 10), "batch_size": 2 if base.batch_size > 2 else 64,
               "init_scale": 0.01 if base.init_scale >= 0.1 else 1.0}[field]
    value_key = _key(prefix, f"value_{field}")
    if value_key not in st.session_state:
        st.session_state[value_key] = default
    options = {"norm": NORMS, "placement": PLACEMENTS, "lr": LR_CHOICES, "batch_size": BATCH_CHOICES,
               "init_scale": INIT_SCALE_CHOICES}[field]
    label = f"Twin's {TWIN_FIELDS[field]}"
    fmt = NORM_LABELS.get if field == "norm" else (_sci if field == "lr" else str)
    value = c.selectbox(label, options, format_func=fmt, key=value_key, persist_state="session")
    try:
        twin = base.replace(**{field: value})
    except ValueError as exc:
        c.warning(f"The twin cannot use that value: {exc}")
        return None
    if twin == base:
        c.warning(f"The twin's {TWIN_FIELDS[field]} equals run A's: pick another value to compare.")
    return twin


def preset_picker(prefix: str, twin_prefix: str, container=None) -> None:
    """A select box of canned experiments; choosing one fills the run and twin controls."""
    c = container or st.sidebar
    names = ("(your own settings)", *PRESETS)

    def apply() -> None:
        preset = PRESETS.get(st.session_state[_key(prefix, "preset")])
        if preset is None:
            return
        a, b = preset.configs()
        seed_widgets(prefix, a)
        field = next((f for f in TWIN_FIELDS if getattr(a, f) != getattr(b, f)), "norm")
        st.session_state[_key(twin_prefix, "on")] = True
        st.session_state[_key(twin_prefix, "field")] = field
        st.session_state[_key(twin_prefix, f"value_{field}")] = _nearest(field, getattr(b, field))

    c.selectbox("Preset experiment", names, key=_key(prefix, "preset"), on_change=apply, persist_state="session")
    preset = PRESETS.get(st.session_state.get(_key(prefix, "preset")))
    if preset is not None:
        c.caption(f"**{preset.summary}** Look for: {preset.look_for}")


NORM_SHORT = {"none": "no BN", "batch": "BN", "batch-noisy": "noisy BN", "layer": "LN", "instance": "IN",
              "group": "GN"}


def run_label(cfg: RunConfig, other: RunConfig | None) -> str:
    """A short name for a run that says what differs from its twin ("BN" vs "no norm", "lr 0.5", ...)."""
    if other is None:
        return "A"
    if cfg.norm != other.norm:
        if cfg.norm == "none" and not other.uses_batch_norm:
            return "no norm"
        return NORM_SHORT[cfg.norm]
    for field, text in (("placement", "norm {}"), ("lr", "lr {:g}"), ("batch_size", "batch {}"),
                        ("init_scale", "init x{:g}"), ("activation", "{}"), ("optimizer", "{}")):
        if getattr(cfg, field) != getattr(other, field):
            return text.format(getattr(cfg, field))
    return "A"


def sidebar_setup() -> tuple[list[RunConfig], list[str]]:
    """The sidebar shared by the live pages: preset, settings of run A and the optional twin B."""
    st.sidebar.header("Settings")
    preset_picker("cfg", "twin")
    cfg = config_controls("cfg")
    twin = twin_controls("twin", cfg)
    if twin is None:
        return [cfg], ["A"]
    labels = [run_label(cfg, twin), run_label(twin, cfg)]
    return [cfg, twin], labels if labels[0] != labels[1] else ["A", "B"]


def _sci(x: float) -> str:
    return f"{x:g}"


__all__ = ["config_controls", "twin_controls", "preset_picker", "seed_widgets", "sidebar_setup", "LIMITS"]
