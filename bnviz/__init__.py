"""bnviz: watch internal covariate shift and batch normalization happen.

The public API, for a script or a notebook::

    from bnviz import RunConfig, train, watch, History

    run = train(RunConfig(norm="batch", steps=200))   # train one of the app's networks, recording every step
    run.history.layers_frame()                         # what every block saw, step by step (a DataFrame)
    with watch(model, optimizer=opt) as w: ...         # record *your* model from your own training loop

The package is layered, imports pointing down only (tests/test_layers.py checks it from the code):

    bnviz/engine/    the backend: config, data, models, batch norm, recorder, history, run files, trainer, jobs
    bnviz/science/   canned experiments, published numbers, BN step-by-step maths, quiz content (no Plotly)
    bnviz/figures/   History and experiment results -> Plotly figures, captions, tables, the HTML report
    bnviz/ui/        the only Streamlit-aware code: what the pages share
    bnviz/watching.py, cli.py, bench.py   entry points: `bnviz.watch`, `python -m bnviz`

`import bnviz` stays light (no torch, no Streamlit): each name below is imported on first use.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
_API = {
    "RunConfig": "bnviz.engine.config",
    "train": "bnviz.engine.trainer",
    "History": "bnviz.engine.history",
    "watch": "bnviz.watching",
    "Watch": "bnviz.watching",
    "BnvizError": "bnviz.errors",
    "fold_batch_norm": "bnviz.engine.folding",
}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bnviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


__all__ = sorted(_API)
