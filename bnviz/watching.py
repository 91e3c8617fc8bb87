"""`bnviz.watch`: record what every layer of *your* PyTorch model sees, from your own training loop.

    import bnviz

    with bnviz.watch(model, every=1, samples=512) as w:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            w.step(loss=loss.item())             # the one added call, after optimizer.step()
    w.figure("distributions")                    # the app's Plotly figures; w.FIGURES lists the names
    w.save("runs/mine")                          # opens in the app and in `python -m bnviz report runs/mine`

A thin layer over the engine: `Targets.discover` finds the layers (see its docstring for what it finds and what
it cannot see), bnviz's `Recorder` records them into the same bounded `History` the app uses, with the same
statistics (see `bnviz.engine.recorder`). What watch adds is the step protocol: a forward pre-hook on the model arms the
recorder at the first training-mode forward pass (with gradients enabled) of each step, so that pass's weights
are the "before" of the update; `w.step()` closes the step. Passes in eval mode (`model.eval()`) or under
`torch.no_grad()` never arm it, and hooks ignore modules in eval mode; only the first call of each module in a
step is recorded. Every hook is removed when the `with` block ends, also when the loop raises.

Limits: one training forward pass per step is assumed. A second train-mode pass in the same step (gradient
accumulation, a train-mode accuracy check) is not recorded, and because it updates batch norm's running
statistics again, the batch mean and variance of that step cannot be solved from them: they are NaN (run such
passes in eval mode). The model must be called as a whole (`model(x)`): calling only a submodule does not arm
the recorder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from . import figures
from .engine.history import SCALARS, History
from .engine.recorder import Recorder
from .engine.targets import LAYER_TYPES, Targets
from .errors import ConfigError

# w.figure(name) -> the charts builder it calls (see Watch.figure for the keyword arguments)
FIGURES = ("loss", "distributions", "distribution", "histogram", "percentiles", "saturation", "drift", "gradients",
           "gradient_histogram", "update_data", "grad_data", "gamma_beta", "running_mean", "running_var")


class Watch:
    """Hooks on one model, the recorder behind them, and the figures of what it recorded. Use `bnviz.watch`."""

    def __init__(self, model: nn.Module, *, every: int = 1, samples: int = 512, bins: int = 64, include=None,
                 optimizer: torch.optim.Optimizer | None = None, label: str | None = None, seed: int = 0,
                 capacity: int | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch needs a torch.nn.Module, got {type(model).__name__}")
        if every < 1 or samples < 1:
            raise ConfigError(f"every={every} and samples={samples} must be positive integers")
        self.model, self.optimizer = model, optimizer
        self.label = label or type(model).__name__
        self.targets = Targets.discover(model, include)
        self.recorder = Recorder(self.targets, samples=samples, bins=bins, every=every, seed=seed, capacity=capacity)
        self.recorder.history.meta["watch"] = describe(model, self.targets, every=every, samples=samples)
        self.steps = 0  # steps closed by w.step()
        self._in_step = False  # a training forward pass of step `steps` has begun
        self._unclosed = 0  # training forward passes seen in steps never closed (for a warning)
        self._arm_handle = None

    # ---- hooks ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Watch:
        self.recorder.attach()
        if self._arm_handle is None:
            self._arm_handle = self.model.register_forward_pre_hook(self._arm)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()
        if exc_type is None and self._unclosed and not self.steps:
            warnings.warn("watch saw training forward passes but w.step() was never called: nothing was recorded. "
                          "Call w.step(loss=...) once per step, after optimizer.step().", stacklevel=2)

    def close(self) -> None:
        """Remove every hook and record what is complete (the `with` block does this); safe to call twice."""
        if self._arm_handle is not None:
            self._arm_handle.remove()
            self._arm_handle = None
        self.recorder.detach()  # drops a step begun but never closed
        self._in_step = False

    def _arm(self, module, inputs) -> None:
        if self._in_step or not module.training or not torch.is_grad_enabled():
            return
        self._in_step = True
        self._unclosed += 1
        self.recorder.begin(self.steps)

    # ---- the one call per step -----------------------------------------------------------------------------
    def step(self, loss: float | torch.Tensor | None = None, **scalars) -> bool:
        """Close this step (call it after `optimizer.step()`); return whether the step was recorded.

        Scalars (numbers or one-element tensors) are stored with the step: `loss`, and optionally `train_acc`,
        `test_acc`, `test_acc_train_mode` and `lr` (taken from `optimizer`, if watch was given one).
        """
        unknown = sorted(set(scalars) - set(SCALARS))
        if unknown:
            raise ConfigError(f"w.step() got {', '.join(unknown)}: it records {', '.join(SCALARS)}")
        scalars["loss"] = loss
        if "lr" not in scalars and self.optimizer is not None:
            scalars["lr"] = self.optimizer.param_groups[0]["lr"]
        values = {k: None if v is None else float(v.detach() if isinstance(v, torch.Tensor) else v)
                  for k, v in scalars.items()}
        recorded = self.recorder.end(**values) if self._in_step else False
        self._in_step = False
        self._unclosed = 0
        self.steps += 1
        return recorded

    # ---- results -------------------------------------------------------------------------------------------
    @property
    def history(self) -> History:
        """The recorded history (every closed step; while the `with` block runs, between steps)."""
        if not self._in_step:
            self.recorder.flush()  # safe between steps; mid-step the latest few steps may still be pending
        return self.recorder.history

    @property
    def layers(self) -> list[str]:
        return list(self.targets.layers)

    def figure(self, name: str, **kw):
        """One of the app's figures of this run, by name (`FIGURES`).

        "loss" (loss and test accuracy), "distributions" (every layer's heatmap, one row each; stage=),
        "distribution", "histogram", "percentiles", "gradient_histogram" (one layer: layer= index or module path,
        default the last; stage= "pre", "norm", "act" or the activation's input, the default), "saturation",
        "drift", "gradients" (gradient norm per layer), "update_data", "grad_data", and for normalization layers
        "gamma_beta", "running_mean", "running_var" (layer= default: the first layer with a norm).
        """
        h, runs = self.history, [(self.label, self.history)]
        if name in ("gamma_beta", "running_mean", "running_var") and "layer" not in kw and h.layout.norm_layers:
            kw["layer"] = h.layout.norm_layers[0][0]
        builders = {
            "loss": lambda: figures.loss_accuracy(runs),
            "distributions": lambda: figures.distribution_grid(runs, **kw),
            "distribution": lambda: figures.distribution_heatmap(h, **kw),
            "histogram": lambda: figures.histogram_now_vs_start(h, **kw),
            "percentiles": lambda: figures.percentile_lines(runs, **kw),
            "saturation": lambda: figures.saturation(h),
            "drift": lambda: figures.drift(h, **kw),
            "gradients": lambda: figures.gradient_norms(h, **kw),
            "gradient_histogram": lambda: figures.gradient_histogram(h, **kw),
            "update_data": lambda: figures.update_ratios(h, "update_data"),
            "grad_data": lambda: figures.update_ratios(h, "grad_data"),
            "gamma_beta": lambda: figures.gamma_beta(h, **kw),
            "running_mean": lambda: figures.running_vs_batch(h, stat="mean", **kw),
            "running_var": lambda: figures.running_vs_batch(h, stat="var", **kw),
        }
        if name not in builders:
            raise ConfigError(f"figure {name!r} is unknown: use one of {', '.join(FIGURES)}")
        return builders[name]()

    def figures(self) -> dict:
        """Every figure that makes sense for this run, as `python -m bnviz report` writes them."""
        return figures.figure_catalog(self.history)

    def save(self, directory: str | Path) -> Path:
        """Write the run directory (run.json, arrays.npz, histograms.npz, CSVs) that `History.load`, the app's
        "Save & open runs" page and `python -m bnviz report` open; return its path."""
        history = self.history
        history.meta["summary"] = {"status": "watched", "steps": self.steps}
        return history.save(directory)


def watch(model: nn.Module, *, every: int = 1, samples: int = 512, bins: int = 64, include=None,
          optimizer: torch.optim.Optimizer | None = None, label: str | None = None, seed: int = 0,
          capacity: int | None = None) -> Watch:
    """Record `model`'s layers in a `with` block around your training loop; see the module docstring.

    every: record every n-th step (step 0 always); samples: values sampled per tensor for the statistics;
    bins: histogram bins; include: which modules (see `Targets.discover`); optimizer: to record its learning
    rate; label: the run's name in figures (default: the model's class name); seed: the sampled positions;
    capacity: rows kept in the history (default: from a 32 MB budget; older rows are thinned, never the first).
    """
    return Watch(model, every=every, samples=samples, bins=bins, include=include, optimizer=optimizer, label=label,
                 seed=seed, capacity=capacity)


def describe(model: nn.Module, targets: Targets, **settings) -> dict:
    """What `History.meta["watch"]` holds: the model, settings, and per layer the modules found and which stage
    feeds the activation (the one registered just before it; without an activation module, the last one)."""
    modules, act_input, pre = [], [], []
    for i in range(len(targets.layers)):
        probes = [p for p in targets.probes if p.layer == i]
        stages = [p.stage for p in probes]
        modules.append({p.stage: type(p.module).__name__ for p in probes})
        before = stages[:stages.index("act")] if "act" in stages else stages
        act_input.append(before[-1] if before else stages[0])
        layer = next((p.module for p in probes if p.stage == "pre"), None)
        pre.append("linear" if isinstance(layer, nn.Linear) else "conv" if isinstance(layer, LAYER_TYPES) else "")
    return {"model": type(model).__name__, **settings, "modules": modules, "act_input": act_input, "pre": pre}
