"""The per-process memory of experiment results: an experiment called again with the same arguments answers at once.

`@remembered` wraps an experiment; `cached(fn, ...)` looks a result up without computing, `remember(fn, result, ...)`
stores one and `forget(fn, ...)` drops one. The key is the function's name and its arguments (defaults filled in,
`progress` left out). Treat a returned result as read-only: it is shared by every page and session of the process.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict

import numpy as np

CACHE_SIZE = 32  # results kept per process (each is a few hundred kB of DataFrames)

_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def remembered(fn):
    """Remember `fn`'s result per (arguments without `progress`); hits report 100% at once."""
    signature = inspect.signature(fn)

    def key_of(args, kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        bound.arguments.pop("progress", None)
        return (fn.__name__, _freeze(dict(bound.arguments)))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = key_of(args, kwargs)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
        if hit is not None:
            if kwargs.get("progress") is not None:
                kwargs["progress"](1.0, "done (remembered from an earlier run)")
            return hit
        result = fn(*args, **kwargs)
        with _CACHE_LOCK:
            _CACHE[key] = result
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        return result

    wrapper.cache_key = key_of
    return wrapper


def cached(fn, *args, **kwargs):
    """The stored result of `fn(*args, **kwargs)` if this process computed it already, else None (no training)."""
    with _CACHE_LOCK:
        return _CACHE.get(fn.cache_key(args, kwargs))


def remember(fn, result, *args, **kwargs) -> None:
    """Store `result` as `fn(*args, **kwargs)`'s (tests; a teacher warming the cache before a lecture)."""
    with _CACHE_LOCK:
        _CACHE[fn.cache_key(args, kwargs)] = result


def forget(fn, *args, **kwargs) -> None:
    """Drop the stored result of `fn(*args, **kwargs)`, if any, so the next call computes it again (tests)."""
    with _CACHE_LOCK:
        _CACHE.pop(fn.cache_key(args, kwargs), None)
