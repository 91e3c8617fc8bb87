"""Widgets for every engine knob, bounded to valid values; they return a validated RunConfig.

Each widget has an explicit key `<prefix>_<field>` and keeps its value across pages (`persist_state="session"`).
Learning rate and epsilon are chosen on log scales. What each widget offers is in `bnviz.ui.choices` (shared with the
shareable links). In presenter mode (`bnviz.ui.page.presenting`) only the learning rate is drawn; the hidden
settings keep their values and still make up the config.
"""

from __future__ import annotations

import streamlit as st

from ..engine.config import (
    ACTIVATIONS,
    BATCH_NORMS,
    EPS_CHOICES,
    LIMITS,
    MODELS,
    NORMS,
    OPTIMIZERS,
    PLACEMENTS,
    RunConfig,
)
from ..engine.twins import what_runs_share
from ..engine.uploads import is_user_data
from ..science.presets import PRESETS
from ..science.run_words import run_names
from .choices import (
    BATCH_CHOICES,
    BLOCKS,
    DEPTH_RANGE,
    DROPOUT_CHOICES,
    GROUP_CHOICES,
    INIT_SCALE_CHOICES,
    LR_CHOICES,
    MOMENTUM_STEP,
    SEED_RANGE,
    SGD_MOMENTUM_MAX,
    STEPS_RANGE,
    TWIN_FIELDS,
    TWIN_OPTIONS,
    WEIGHT_DECAY_CHOICES,
    WIDTH_CHOICES,
    ghost_choices,
    nearest,
    twin_changes,
    twin_default,
)
from .link_params import LINKED_FIELDS, canonical, preset_configs
from .page import presenting
from .state import get_lab
from .upload_panel import dataset_choices

DATASET_CHOICES = ("digits", "shapes")  # bundled or generated: work offline
NORM_LABELS = {"none": "none", "batch": "batch norm", "batch-noisy": "batch norm + noise (Santurkar)",
               "layer": "layer norm", "instance": "instance norm", "group": "group norm",
               "batch-renorm": "batch renorm (Ioffe 2017)"}


OWN_SETTINGS = "(your own settings)"  # the preset picker's entry for "no preset"


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def config_key(prefix: str) -> str:
    """Where the config last drawn by `config_controls(prefix)` is kept (the shareable link reads it)."""
    return _key(prefix, "config")


def seed_widgets(prefix: str, cfg: RunConfig) -> None:
    """Put a config's values into the widgets' state (used by presets and 'reset to defaults')."""
    for name, value in cfg.to_dict().items():
        st.session_state[_key(prefix, name)] = nearest(name, value)


def _ensure_defaults(prefix: str, defaults: RunConfig | None) -> None:
    if _key(prefix, "lr") not in st.session_state:
        seed_widgets(prefix, defaults or RunConfig())
    for name, value in (defaults or RunConfig()).to_dict().items():  # a setting added after the session began
        st.session_state.setdefault(_key(prefix, name), nearest(name, value))


def config_controls(prefix: str, container=None, compact: bool = False, defaults: RunConfig | None = None
                    ) -> RunConfig:
    """Draw the config widgets into `container` (default: the sidebar) and return the validated config."""
    c = container or st.sidebar
    _ensure_defaults(prefix, defaults)
    k = lambda name: dict(key=_key(prefix, name), persist_state="session")  # noqa: E731
    if presenting():
        values = {name: st.session_state[_key(prefix, name)] for name in LINKED_FIELDS}
        values["lr"] = c.select_slider("Learning rate", LR_CHOICES, format_func=_sci, **k("lr"))
        c.caption("Presenter mode hides the other settings; they keep their values.")
    else:
        values = _all_widgets(prefix, c, k, compact)
    cfg = st.session_state[config_key(prefix)] = _validated(values)
    return cfg


def _all_widgets(prefix: str, c, k, compact: bool) -> dict:
    values = {}
    with c.expander("Model and data", expanded=not compact):
        datasets, dataset_label = dataset_choices(_key(prefix, "dataset"), DATASET_CHOICES)
        values["dataset"] = st.selectbox("Dataset", datasets, format_func=dataset_label, **k("dataset"),
                                         help="digits: scikit-learn's 8x8 handwritten digits (bundled). "
                                              "shapes: generated coloured shapes, 16x16. Yours: upload them "
                                              "under 'Use your own images'.")
        values["model"] = st.radio("Model", MODELS, horizontal=True, **k("model"),
                                   help="cnn: conv blocks + global pooling; mlp: fully connected blocks")
        values["depth"] = st.slider("Hidden blocks", *DEPTH_RANGE, **k("depth"))
        values["width"] = st.select_slider("Width (channels or units)", WIDTH_CHOICES, **k("width"))
        values["activation"] = st.radio("Activation", ACTIVATIONS, horizontal=True, **k("activation"))
    with c.expander("Normalization", expanded=True):
        values["norm"] = st.selectbox("Normalization", NORMS, format_func=NORM_LABELS.get, **k("norm"))
        values["placement"] = st.radio("Placement", PLACEMENTS, horizontal=True, **k("placement"),
                                       help="before: layer -> norm -> activation (Ioffe & Szegedy); "
                                            "after: layer -> activation -> norm")
        no_norm = values["norm"] == "none"  # controls that do nothing are off, and say why
        values["eps"] = st.select_slider("Epsilon", EPS_CHOICES, format_func=_sci, **k("eps"), disabled=no_norm,
                                         help="added to the variance before the square root"
                                              + (" (off: no normalization)" if no_norm else ""))
        no_running = values["norm"] not in BATCH_NORMS
        values["bn_momentum"] = st.slider("BN momentum", 0.0, 1.0, step=MOMENTUM_STEP, **k("bn_momentum"),
                                          disabled=no_running,
                                          help="PyTorch convention: running = (1 - m) x running + m x batch"
                                               + (" (off: only batch norm keeps running statistics)"
                                                  if no_running else ""))
        values["groups"] = st.select_slider("Groups (group norm)", GROUP_CHOICES, **k("groups"),
                                            disabled=values["norm"] != "group",
                                            help="channels per group = width / groups (only used by group norm)")
        ghosts = ghost_choices(st.session_state.get(_key(prefix, "batch_size"), RunConfig().batch_size))
        no_ghost = values["norm"] != "batch" or len(ghosts) == 1
        if st.session_state.get(_key(prefix, "ghost_batch")) not in ghosts or no_ghost:
            st.session_state[_key(prefix, "ghost_batch")] = 0  # the batch size or norm changed: off
        values["ghost_batch"] = st.selectbox("Ghost batch size", ghosts, **k("ghost_batch"), disabled=no_ghost,
                                             format_func=lambda g: "off" if g == 0 else str(g),
                                             help="ghost batch norm (Hoffer et al. 2017): batch statistics over "
                                                  "sub-batches of this many images; must divide the batch size"
                                                  + (" (off: only for batch norm)" if no_ghost else ""))
    with c.expander("Training", expanded=not compact):
        values["batch_size"] = batch_size_slider(k("batch_size"), values["dataset"])
        values["lr"] = st.select_slider("Learning rate", LR_CHOICES, format_func=_sci, **k("lr"))
        values["optimizer"] = st.radio("Optimizer", OPTIMIZERS, horizontal=True, **k("optimizer"))
        values["sgd_momentum"] = st.slider("SGD momentum", 0.0, SGD_MOMENTUM_MAX, step=MOMENTUM_STEP,
                                           **k("sgd_momentum"), disabled=values["optimizer"] == "adam",
                                           help="0 is plain SGD (our Figure 1 replica uses it: the paper names no "
                                                "optimizer); not used by Adam"
                                                + (" (off: Adam is chosen)" if values["optimizer"] == "adam" else ""))
        values["weight_decay"] = st.select_slider("Weight decay", WEIGHT_DECAY_CHOICES, **k("weight_decay"),
                                                  format_func=lambda v: "off" if v == 0 else _sci(v),
                                                  help="L2 penalty: the optimizer adds weight_decay x w to every "
                                                       "parameter's gradient (PyTorch's weight_decay)")
        values["dropout"] = st.select_slider("Dropout", DROPOUT_CHOICES, **k("dropout"),
                                             format_func=lambda p: "off" if p == 0 else f"{p:g}",
                                             help="in training, each value of every hidden block's output (after "
                                                  "its activation) is zeroed with this probability and the rest "
                                                  "divided by 1 - p; off in eval mode")
        values["init"] = st.radio("Weight init", ("default", "normal"), horizontal=True, **k("init"),
                                  help="default: PyTorch's, times the scale; normal: N(0, scale^2)")
        values["init_scale"] = st.select_slider("Init scale", INIT_SCALE_CHOICES, **k("init_scale"))
        values["steps"] = st.number_input("Steps", *STEPS_RANGE, step=100, **k("steps"))
        values["seed"] = st.number_input("Seed", *SEED_RANGE, step=1, **k("seed"))
    return values


def batch_size_slider(widget: dict, dataset: str) -> int:
    """The Batch size slider, bounded by the data: an upload of 40 images leaves 32 for training, so 64 is not
    offered; a larger value chosen before is lowered to the largest allowed, and the caption says so."""
    images = get_lab().uploads.get(dataset)
    n_train = images.train_size() if images is not None else None
    choices = tuple(b for b in BATCH_CHOICES if n_train is None or b <= n_train) or BATCH_CHOICES[:1]
    key, note_key = widget["key"], f"{widget['key']}_lowered_from"
    if st.session_state.get(key) not in choices:
        st.session_state[note_key] = st.session_state.get(key)
        st.session_state[key] = choices[-1]
    if n_train is None:
        st.session_state.pop(note_key, None)
    if len(choices) > 1:
        value = st.select_slider("Batch size", choices, **widget)
    else:
        value = choices[0]
        st.caption(f"Batch size: {value}")
    if n_train is not None and choices[-1] < BATCH_CHOICES[-1]:
        before = st.session_state.get(note_key)
        lowered = f"lowered from {before}; " if before is not None else ""
        st.caption(f"Batch size at most {choices[-1]} ({lowered}your images leave {n_train} for training: 20 % of "
                   "each class is kept for testing).")
    return value


def block_slider(container, label: str, key: str, configs: list[RunConfig], histories: list) -> int:
    """A block slider from 1 to the depth of the runs on screen (else of the settings), never past the model: on a
    3-block model "block 5" would silently show block 3. Returns the chosen block (1-based)."""
    depths = [len(h.layout.layers) for h in histories] or [cfg.depth for cfg in configs]
    top = max(1, min(min(depths), BLOCKS[-1]))
    if st.session_state.get(key, 1) > top:  # a link, or a deeper model before
        st.session_state[key] = top
    if top == 1:
        container.caption(f"{label}: 1 (the model has one block)")
        return 1
    default = {} if key in st.session_state else {"value": 1}
    return container.slider(label, 1, top, key=key, persist_state="session", **default)


def _validated(values: dict) -> RunConfig:
    if values.get("norm") == "group" and values["width"] % values["groups"]:
        values["groups"] = 1
    if values.get("norm") == "instance" and values["model"] == "mlp":
        values["norm"] = "layer"
    try:
        return canonical(RunConfig(**values).validate())  # eval_every from steps, momenta on the sliders' grid
    except ValueError as exc:
        st.warning(f"Adjusted an invalid setting: {exc}")
        return RunConfig()


def twin_controls(prefix: str, base: RunConfig, container=None) -> RunConfig | None:
    """A second run that differs from `base` in one setting, or None; a caption says what the two share
    (`twins.what_runs_share`: initial weights where layers match, batches when data and batch size match)."""
    c = container or st.sidebar
    k = lambda name: dict(key=_key(prefix, name), persist_state="session")  # noqa: E731
    if _key(prefix, "on") not in st.session_state:
        st.session_state[_key(prefix, "on")] = True
        st.session_state[_key(prefix, "field")] = "norm"
    if presenting():  # the twin is part of the experiment on screen: keep it, without its widgets
        on, field = st.session_state[_key(prefix, "on")], st.session_state[_key(prefix, "field")]
    else:
        on = c.toggle("Train a twin side by side", **k("on"),
                      help="Only the setting below differs; the line under it says what the two runs share.")
        field = c.selectbox("The twin differs in", tuple(TWIN_FIELDS), format_func=TWIN_FIELDS.get,
                            **k("field")) if on else None
    if not on:
        return None
    value_key = _key(prefix, f"value_{field}")
    if value_key not in st.session_state:
        st.session_state[value_key] = twin_default(base, field)
    if presenting():
        value = st.session_state[value_key]
    else:
        fmt = {"norm": NORM_LABELS.get, "lr": _sci, "dropout": lambda p: "off" if p == 0 else f"{p:g}"}.get(field, str)
        value = c.selectbox(f"Twin's {TWIN_FIELDS[field]}", TWIN_OPTIONS[field], format_func=fmt, key=value_key,
                            persist_state="session")
    try:
        twin = base.replace(**twin_changes(base, field, value))
    except ValueError as exc:
        c.warning(f"The twin cannot use that value: {exc}")
        return None
    if twin == base:
        c.warning(f"The twin's {TWIN_FIELDS[field]} equals run A's: pick another value to compare.")
    else:
        c.caption(what_runs_share(base, twin).sentence())
    return twin


def put_in_sidebar(configs: list[RunConfig], prefix: str = "cfg", twin_prefix: str = "twin") -> None:
    """Set the sidebar's widgets to run A's settings and, for two runs, the twin to B's first differing setting
    among those a twin can change (a callback: runs before the widgets are drawn)."""
    seed_widgets(prefix, configs[0])
    st.session_state[_key(twin_prefix, "on")] = len(configs) > 1
    if len(configs) > 1:
        a, b = configs[:2]
        field = next((f for f in TWIN_FIELDS if getattr(a, f) != getattr(b, f)), "norm")
        st.session_state[_key(twin_prefix, "field")] = field
        st.session_state[_key(twin_prefix, f"value_{field}")] = nearest(field, getattr(b, field))


def preset_picker(prefix: str, twin_prefix: str, container=None) -> None:
    """A select box of canned experiments; choosing one fills the run and twin controls (an uploaded dataset that is
    selected stays selected: the preset then runs on your images)."""
    c = container or st.sidebar
    names = (OWN_SETTINGS, *PRESETS)

    def apply() -> None:
        preset = PRESETS.get(st.session_state[_key(prefix, "preset")])
        if preset is None:
            return
        a, b = preset_configs(preset.name)
        current = st.session_state.get(_key(prefix, "dataset"))
        if isinstance(current, str) and is_user_data(current):  # your own images stay: the preset sets the rest
            a, b = a.replace(dataset=current), b.replace(dataset=current)
        put_in_sidebar([a, b], prefix, twin_prefix)

    c.selectbox("Preset experiment", names, key=_key(prefix, "preset"), on_change=apply, persist_state="session")
    preset = current_preset(prefix)
    if preset is not None and not presenting():  # presenter mode shows it above the charts (look_for_line)
        c.caption(f"**{preset.summary}** Look for: {preset.look_for}")


def current_preset(prefix: str = "cfg"):
    """The preset chosen in the sidebar's picker, or None for your own settings."""
    return PRESETS.get(st.session_state.get(_key(prefix, "preset")))


def look_for_line(prefix: str = "cfg") -> None:
    """In presenter mode, the chosen preset's question above the charts, where the class looks (not grey, not in
    the sidebar, not below the fold)."""
    preset = current_preset(prefix)
    if preset is not None and presenting():
        st.markdown(f"**Look for:** {preset.look_for}")


def sidebar_setup() -> tuple[list[RunConfig], list[str]]:
    """The sidebar shared by the live pages: preset, settings of run A and the optional twin B."""
    st.sidebar.header("Settings")
    preset_picker("cfg", "twin")
    cfg = config_controls("cfg")
    twin = twin_controls("twin", cfg)
    if twin is None:
        return [cfg], ["A"]
    return [cfg, twin], list(run_names(cfg, twin))


def _sci(x: float) -> str:
    return f"{x:g}"


__all__ = ["config_controls", "twin_controls", "preset_picker", "seed_widgets", "sidebar_setup", "LIMITS"]
