"""bnviz: watch internal covariate shift and batch normalization happen. `bnviz.watch(model)` records your model.

`import bnviz` stays light (no torch, no Streamlit): `watch` is imported on first use.
"""


def __getattr__(name: str):
    if name in ("watch", "Watch"):
        from . import watch as watching

        return getattr(watching, name)
    raise AttributeError(f"module 'bnviz' has no attribute {name!r}")


__all__ = ["watch", "Watch"]
