"""What the settings widgets offer: the values a user can pick, and the rules that derive one setting from others.

No Streamlit here: the widgets (`bnviz.ui.controls`) and the links (`bnviz.ui.link_params`) both read these, so a
link can only carry a value the widgets can show, and a run started from a link is the run the widgets describe.
"""

from __future__ import annotations

from ..engine.config import EPS_CHOICES, NORMS, PLACEMENTS, RunConfig

LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_CHOICES = (2, 4, 8, 16, 32, 60, 64, 128, 256)  # 60: Ioffe & Szegedy's batch size
WIDTH_CHOICES = (4, 8, 16, 32, 64, 100, 128)
INIT_SCALE_CHOICES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 5.0, 10.0)
GROUP_CHOICES = (1, 2, 4, 8, 16)
WEIGHT_DECAY_CHOICES = (0.0, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05)  # 0 = off; 5e-4 is a common ImageNet value
GHOST_CHOICES = (0, 2, 4, 8, 16, 32)  # ghost batch sizes (0 = off: statistics over the whole batch)
DEPTH_RANGE = (1, 6)  # hidden blocks a live run may have (RunConfig allows more; the pages' charts show six)
STEPS_RANGE = (10, 20_000)
SEED_RANGE = (0, 2**31 - 1)
MOMENTUM_STEP = 0.01  # the momentum sliders move in hundredths
SGD_MOMENTUM_MAX = 0.99

# What a live page's view choices offer (not part of a run, but of its shared link), the default first.
STAGE_VIEWS = ("act_input", "pre", "norm", "act")  # which values the distribution charts show
DETAIL_VIEWS = ("histogram", "drift", "saturation")  # Train & watch's detail chart
BLOCKS = tuple(range(1, DEPTH_RANGE[1] + 1))  # the block sliders


def layer_index(block: int, n_layers: int) -> int:
    """The 0-based layer a block slider (1-based) names, in a run with `n_layers` blocks (the last one if beyond)."""
    return min(int(block), n_layers) - 1
BN_STATS = ("mean", "var")  # Inside BatchNorm: batch vs running mean or variance

# The settings a twin run may change, with their labels.
TWIN_FIELDS = {"norm": "normalization", "placement": "norm placement", "lr": "learning rate",
               "batch_size": "batch size", "init_scale": "init scale"}
TWIN_OPTIONS = {"norm": NORMS, "placement": PLACEMENTS, "lr": LR_CHOICES, "batch_size": BATCH_CHOICES,
                "init_scale": INIT_SCALE_CHOICES}


def nearest(name: str, value):
    """The widget option closest to `value` (relative distance) for the fields chosen from a list; else `value`."""
    choices = {"lr": LR_CHOICES, "eps": EPS_CHOICES, "batch_size": BATCH_CHOICES, "width": WIDTH_CHOICES,
               "init_scale": INIT_SCALE_CHOICES, "weight_decay": WEIGHT_DECAY_CHOICES,
               "ghost_batch": GHOST_CHOICES}.get(name)
    if choices is None:
        return value
    return min(choices, key=lambda c: abs(c - value) / max(abs(value), 1e-12))


def ghost_choices(batch_size: int) -> tuple[int, ...]:
    """The ghost batch sizes a run with this batch size can use: 0 (off) and the offered sizes that divide it."""
    return tuple(g for g in GHOST_CHOICES if g == 0 or (g < batch_size and batch_size % g == 0))


def eval_every_for(steps: int) -> int:
    """Test accuracy about 20 times per run, at most every 10 steps."""
    return max(10, int(steps) // 20)


def twin_changes(base: RunConfig, field: str, value) -> dict:
    """The changes that make a twin of `base` differ in `field`: the field, and ghost batch norm turned off when the
    twin's normalization or batch size cannot have base's ghost batches (it is a setting of batch norm only)."""
    changes = {field: value}
    norm, batch = changes.get("norm", base.norm), changes.get("batch_size", base.batch_size)
    if base.ghost_batch and (norm != "batch" or batch % base.ghost_batch):
        changes["ghost_batch"] = 0
    return changes


def twin_default(base: RunConfig, field: str):
    """The value a new twin takes for `field`: the contrast the field is usually shown with."""
    return {"norm": "none" if base.norm != "none" else "batch",
            "placement": "after" if base.placement == "before" else "before",
            "lr": nearest("lr", base.lr * 10), "batch_size": 2 if base.batch_size > 2 else 64,
            "init_scale": 0.01 if base.init_scale >= 0.1 else 1.0}[field]
