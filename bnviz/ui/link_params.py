"""Shareable links: an experiment's settings <-> URL query parameters of short strings. No Streamlit here.

A link carries what a page's widgets show, and only what differs from the page's defaults, so the default
experiment has a bare URL and a changed learning rate reads `/train?lr=0.5`. Keys are short names (`bs` for
batch_size, `act` for activation); a compare page prefixes run A's and B's keys with `a.` and `b.`:

    /train?norm=none&lr=0.5&seed=7&twin=norm:batch&present=1
    /compare?a.lr=0.5&b.lr=0.5&b.steps=800
    /train?stage=norm&detail=drift&block=2          (what the page shows: which values, chart and block)

Reading a link never raises: every value is checked against what the widgets can show (a link cannot ask for a
learning rate the slider does not offer, or the run would differ from the one on screen); anything unknown,
repeated, too long, out of range or inconsistent with the other settings falls back to the default for that one
setting and is named in the returned notes. `eval_every` follows from `steps` as it does in the widgets.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..engine.config import ACTIVATIONS, EPS_CHOICES, INITS, MODELS, NORMS, OPTIMIZERS, PLACEMENTS, RunConfig
from ..science.presets import FORMER_NAMES, PRESETS
from .choices import (
    BATCH_CHOICES,
    BLOCKS,
    BN_STATS,
    DEPTH_RANGE,
    DETAIL_VIEWS,
    DROPOUT_CHOICES,
    GHOST_CHOICES,
    GROUP_CHOICES,
    INIT_SCALE_CHOICES,
    LR_CHOICES,
    MOMENTUM_STEP,
    SEED_RANGE,
    SGD_MOMENTUM_MAX,
    STAGE_VIEWS,
    STEPS_RANGE,
    TWIN_FIELDS,
    TWIN_OPTIONS,
    WEIGHT_DECAY_CHOICES,
    WIDTH_CHOICES,
    eval_every_for,
    twin_default,
)

# Datasets a link can name: bundled or generated, so the same on every machine. An uploaded dataset exists only in
# the uploader's session, so it cannot travel in a link.
LINK_DATASETS = ("digits", "shapes")
MAX_VALUE_CHARS = 64  # longer values are ignored unread (no setting needs more)
MAX_NOTES = 8  # notes shown for one link; the rest are counted
PRESENT = "present"
TWIN = "twin"
PRESET = "preset"


@dataclass(frozen=True)
class Setting:
    """One RunConfig field in a link: its key, and the values the widgets can show (a tuple, or an int range,
    or a float range on a grid of `step`)."""

    name: str
    key: str
    options: tuple = ()
    bounds: tuple | None = None
    step: float | None = None

    def format(self, value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    def parse(self, text: str):
        """The value `text` names, or ValueError saying what is allowed."""
        if self.options:
            return _pick(text, self.options)
        if self.step is None:
            return _whole(text, *self.bounds)
        return _on_grid(text, *self.bounds, self.step)


SETTINGS = (
    Setting("dataset", "data", LINK_DATASETS),
    Setting("model", "model", MODELS),
    Setting("depth", "depth", bounds=DEPTH_RANGE),
    Setting("width", "width", WIDTH_CHOICES),
    Setting("activation", "act", ACTIVATIONS),
    Setting("norm", "norm", NORMS),
    Setting("placement", "place", PLACEMENTS),
    Setting("eps", "eps", EPS_CHOICES),
    Setting("bn_momentum", "bnmom", bounds=(0.0, 1.0), step=MOMENTUM_STEP),
    Setting("groups", "groups", GROUP_CHOICES),
    Setting("batch_size", "bs", BATCH_CHOICES),
    Setting("ghost_batch", "ghost", GHOST_CHOICES),  # after bs: a ghost size that does not divide it is dropped
    Setting("lr", "lr", LR_CHOICES),
    Setting("optimizer", "opt", OPTIMIZERS),
    Setting("sgd_momentum", "mom", bounds=(0.0, SGD_MOMENTUM_MAX), step=MOMENTUM_STEP),
    Setting("weight_decay", "wd", WEIGHT_DECAY_CHOICES),
    Setting("dropout", "drop", DROPOUT_CHOICES),
    Setting("init", "init", INITS),
    Setting("init_scale", "iscale", INIT_SCALE_CHOICES),
    Setting("steps", "steps", bounds=STEPS_RANGE),
    Setting("seed", "seed", bounds=SEED_RANGE),
)
BY_NAME = {s.name: s for s in SETTINGS}
LINKED_FIELDS = tuple(BY_NAME)


@dataclass(frozen=True)
class View:
    """A view choice of a page in its link (which values, which chart, which block): the link key, the key of the
    widget that shows it, and the values that widget offers, its default first."""

    key: str
    widget: str
    options: tuple

    @property
    def default(self):
        return self.options[0]


@dataclass(frozen=True)
class PageLink:
    """What a page's link carries: one config per key prefix ("" or "a."/"b."), whether a twin and a preset, and
    the page's view choices."""

    configs: dict = field(default_factory=dict)  # prefix -> that run's defaults
    twin: bool = False
    preset: bool = False
    views: tuple[View, ...] = ()


LIVE = PageLink({"": RunConfig()}, twin=True, preset=True)
TRAIN = dataclasses.replace(LIVE, views=(View("stage", "train_stage", STAGE_VIEWS),
                                         View("detail", "train_detail", DETAIL_VIEWS),
                                         View("block", "train_block", BLOCKS)))
GRADIENTS = dataclasses.replace(LIVE, views=(View("block", "grad_block", BLOCKS),))
INSIDE_BN = dataclasses.replace(LIVE, views=(View("block", "bn_block", BLOCKS), View("stat", "bn_stat", BN_STATS)))
COMPARE = PageLink({"a.": RunConfig(steps=400), "b.": RunConfig(norm="none", steps=400)})
PLAIN = PageLink()
PAGE_LINKS = {"train": TRAIN, "gradients": GRADIENTS, "inside-bn": INSIDE_BN, "compare": COMPARE}


@dataclass
class Experiment:
    """The settings a link carries: run configs by prefix, the twin (field, value) or None when off, the preset's
    name or None, presenter mode, and the page's view choices (widget key -> value; absent: the default)."""

    configs: dict = field(default_factory=dict)
    twin: tuple | None = None
    preset: str | None = None
    present: bool = False
    views: dict = field(default_factory=dict)


def canonical(cfg: RunConfig) -> RunConfig:
    """`cfg` as a link reproduces it: eval_every from steps, momenta on the sliders' grid."""
    return dataclasses.replace(cfg, eval_every=eval_every_for(cfg.steps),
                               bn_momentum=round(cfg.bn_momentum, 2), sgd_momentum=round(cfg.sgd_momentum, 2))


def preset_configs(name: str) -> list[RunConfig]:
    """The configs a Start of preset `name` trains (before the server's thread share): the preset's, as the sidebar's
    widgets give them back (`canonical`: eval_every from steps). The picker, the home page's demo and the server's
    warm-up (BNVIZ_WARM=presets) all use it, so they ask for the same runs and share them."""
    return [canonical(cfg) for cfg in PRESETS[name].configs()]


def defaults_of(page: PageLink) -> Experiment:
    """The experiment a bare URL of this page opens."""
    configs = {prefix: canonical(cfg) for prefix, cfg in page.configs.items()}
    twin = None
    if page.twin:
        base = configs[""]
        twin = ("norm", twin_default(base, "norm"))
    return Experiment(configs, twin, views={view.widget: view.default for view in page.views})


def to_params(exp: Experiment, page: PageLink) -> dict[str, str]:
    """The query parameters of `exp` on this page: only the settings that differ from the page's defaults."""
    params: dict[str, str] = {}
    for prefix, defaults in page.configs.items():
        cfg, base = exp.configs[prefix], canonical(defaults)
        for s in SETTINGS:
            value = getattr(cfg, s.name)
            if value != getattr(base, s.name) and (s.name != "dataset" or value in LINK_DATASETS):
                params[prefix + s.key] = s.format(value)
    if page.twin:
        params.update(_twin_params(exp.twin, exp.configs[""]))
    if page.preset and exp.preset in PRESETS:
        params[PRESET] = slug(exp.preset)
    if exp.present:
        params[PRESENT] = "1"
    for view in page.views:
        value = exp.views.get(view.widget, view.default)
        if value != view.default:
            params[view.key] = str(value)
    return params


def left_out(exp: Experiment) -> list[str]:
    """What the link of `exp` cannot carry (an uploaded dataset), in words."""
    return [f"your own dataset is not in the link: a link can only name {' or '.join(LINK_DATASETS)}, so whoever "
            f"opens it trains on {RunConfig().dataset}"
            for cfg in exp.configs.values() if cfg.dataset not in LINK_DATASETS][:1]


def from_params(params: Mapping[str, str | Iterable[str]], page: PageLink) -> tuple[Experiment, list[str]]:
    """The experiment a link describes, and one note per value that was ignored (its setting keeps its default)."""
    values = {key: [value] if isinstance(value, str) else list(value) for key, value in params.items()}
    notes: list[str] = []
    used: set[str] = set()
    exp = defaults_of(page)
    for prefix, defaults in page.configs.items():
        exp.configs[prefix] = _read_config(values, prefix, canonical(defaults), notes, used)
    if page.twin:
        exp.twin = _read_twin(values, exp.configs[""], notes, used)
    if page.preset:
        names = {**{slug(old): new for old, new in FORMER_NAMES.items()}, **{slug(name): name for name in PRESETS}}
        exp.preset = _read_choice(values, PRESET, names, notes, used)
    exp.present = _read_choice(values, PRESENT, {"1": True, "0": False}, notes, used) or False
    for view in page.views:
        text = _single(values, view.key, notes, used)
        if text is not None:
            try:
                exp.views[view.widget] = _pick(text, view.options)
            except ValueError as exc:
                notes.append(_note(view.key, text, str(exc), str(view.default)))
    for key in values:
        if key not in used:
            notes.append(f"{_show(key)} is not a setting of this page, so it is not used")
    if len(notes) > MAX_NOTES:
        notes = [*notes[:MAX_NOTES], f"and {len(notes) - MAX_NOTES} more"]
    return exp, notes


def slug(name: str) -> str:
    """A preset's name in a URL: "BN vs no BN (default CNN)" -> "bn-vs-no-bn-default-cnn"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---- reading one value --------------------------------------------------------------------------------------------
def _single(values: dict, key: str, notes: list[str], used: set[str]) -> str | None:
    """The one value given for `key`, or None (absent, repeated or too long: noted)."""
    given = values.get(key)
    if given is None:
        return None
    used.add(key)
    if len(given) != 1:
        notes.append(f"{_show(key)} was given {len(given)} times, so none of them is used")
        return None
    if len(given[0]) > MAX_VALUE_CHARS:
        notes.append(f"{_show(key)} is too long ({len(given[0]):,} characters), so it is not used")
        return None
    return given[0]


def _read_config(values: dict, prefix: str, defaults: RunConfig, notes: list[str], used: set[str]) -> RunConfig:
    changes = {}
    for s in SETTINGS:
        key = prefix + s.key
        text = _single(values, key, notes, used)
        if text is None:
            continue
        try:
            changes[s.name] = s.parse(text)
        except ValueError as exc:
            notes.append(_note(key, text, str(exc), s.format(getattr(defaults, s.name))))
    cfg = _consistent(defaults, changes, prefix, notes)
    return canonical(cfg)


def _consistent(defaults: RunConfig, changes: dict, prefix: str, notes: list[str]) -> RunConfig:
    """Apply `changes`; while the result breaks a rule between settings, drop the change the rule names
    (the last one listed, if it names several)."""
    changes = dict(changes)
    while True:
        try:
            return dataclasses.replace(defaults, **changes).validate()
        except ValueError as exc:
            if not changes:  # the page's own defaults are valid; this is only a guard
                return defaults
            named = [name for name in changes if re.search(rf"\b{name}\b", str(exc))] or list(changes)
            name = named[-1]
            s = BY_NAME[name]
            value, default = s.format(changes.pop(name)), s.format(getattr(defaults, name))
            notes.append(_note(prefix + s.key, value, str(exc), default))


def _twin_params(twin: tuple | None, base: RunConfig) -> dict[str, str]:
    if twin is None:
        return {TWIN: "off"}
    name, value = twin
    if name == "norm" and value == twin_default(base, "norm"):
        return {}
    return {TWIN: f"{BY_NAME[name].key}:{BY_NAME[name].format(value)}"}


def _read_twin(values: dict, base: RunConfig, notes: list[str], used: set[str]) -> tuple | None:
    default = ("norm", twin_default(base, "norm"))
    text = _single(values, TWIN, notes, used)
    if text is None:
        return default
    if text == "off":
        return None
    key, _, value = text.partition(":")
    names = {BY_NAME[name].key: name for name in TWIN_FIELDS}
    try:
        name = names[key]
    except KeyError:
        notes.append(_note(TWIN, text, f"a twin differs in one of {', '.join(names)} (e.g. twin=lr:0.5), or "
                                       "twin=off", "norm"))
        return default
    try:
        return name, _pick(value, TWIN_OPTIONS[name])
    except ValueError as exc:
        default_value = twin_default(base, name)
        notes.append(_note(TWIN, text, str(exc), f"{key}:{BY_NAME[name].format(default_value)}"))
        return name, default_value


def _read_choice(values: dict, key: str, allowed: dict, notes: list[str], used: set[str]):
    text = _single(values, key, notes, used)
    if text is None:
        return None
    if text not in allowed:
        notes.append(_note(key, text, f"use one of {', '.join(allowed)}", None))
        return None
    return allowed[text]


# ---- parsing numbers and choices ----------------------------------------------------------------------------------
def _pick(text: str, options: tuple):
    """The option `text` names: equal text for words; for numbers, the option equal to the number."""
    if isinstance(options[0], str):
        if text in options:
            return text
    else:
        number = _number(text)
        for option in options:
            if math.isclose(number, option, rel_tol=1e-9):
                return option
    shown = ", ".join(f"{o:g}" if isinstance(o, float) else str(o) for o in options)
    raise ValueError(f"use one of {shown}")


def _number(text: str) -> float:
    if not text.isascii():  # float() accepts full-width and other Unicode digits: a link holds ASCII only
        raise ValueError("not a number")
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _whole(text: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", text.strip()):  # ASCII digits only: not "１２３"
        raise ValueError(f"a whole number from {lo:,} to {hi:,}")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"a whole number from {lo:,} to {hi:,}")
    return value


def _on_grid(text: str, lo: float, hi: float, step: float) -> float:
    number = _number(text)
    steps = round(number / step)
    if not lo <= number <= hi or not math.isclose(steps * step, number, abs_tol=1e-9):
        raise ValueError(f"a number from {lo:g} to {hi:g} in steps of {step:g}")
    return round(steps * step, 2)


def _note(key: str, text: str, reason: str, default: str | None) -> str:
    kept = f"; kept {default}" if default is not None else ""
    return f"{_show(f'{key}={text}')}: {reason}{kept}"


def _show(text: str, limit: int = 32) -> str:
    """Text from a URL as a note shows it: cut short, printable, inside a Markdown code span (so it can never
    be read as Markdown or HTML, whatever it holds)."""
    text = text if len(text) <= limit else text[:limit] + "..."
    text = "".join(c if c.isprintable() and c != "`" else "?" for c in text)
    return f"`{text}`"
