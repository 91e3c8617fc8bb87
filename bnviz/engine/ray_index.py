"""The cluster-wide run index of the Ray backend: one named Ray actor that every app server of a cluster shares, so a
run started through one server is joined by identical Starts on the others, and a finished run is served to all of
them from one cache. No Streamlit here; `ray` is imported only when the Ray backend is used.

The index (actor `bnviz-index` in namespace `bnviz`, detached: it outlives the server that created it, until
`ray stop`) holds:
- live runs: run key (registry.run_key: every config field, the data and the code version) -> the name of the job
  actor that trains it. A server whose session asks for that key attaches to the actor (`RayJob.attach`) instead of
  training it again.
- finished runs: run key -> the run's final snapshot as plain data (`ray_backend.snapshot_to_plain`: JSON and numpy
  arrays), least recently used out beyond the budget the first server gave (its BNVIZ_CACHE_MB).

Calls are bounded (INDEX_TIMEOUT_S); an index that cannot be reached is logged and treated as empty, so a server
never fails a Start because of it: it trains the run itself. Two servers that start the same run within the same
moment may both train it (the second one's actor is simply not indexed); the numbers are the same either way.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

log = logging.getLogger(__name__)

NAMESPACE = "bnviz"
INDEX_NAME = "bnviz-index"
INDEX_TIMEOUT_S = 10.0
_INDEX_CLASS: list = []


def _index_class():
    if not _INDEX_CLASS:
        from .ray_backend import ray_module

        ray = ray_module()

        @ray.remote(num_cpus=0)
        class RunIndex:
            """The actor: plain dictionaries, one call at a time (Ray runs a synchronous actor's calls in order)."""

            def __init__(self, cache_bytes: int):
                self.cache_bytes = int(cache_bytes)
                self.live: dict[str, str] = {}
                self.done: OrderedDict[str, tuple[dict, int]] = OrderedDict()

            def claim(self, key: str, name: str) -> bool:
                """Index `name` as the actor that trains `key`, unless a live one is indexed already."""
                current = self.live.get(key)
                if current is not None and current != name and _actor_alive(current):
                    return False
                self.live[key] = name
                return True

            def lookup(self, key: str):
                """("live", actor name), ("done", plain snapshot) or None."""
                name = self.live.get(key)
                if name is not None:
                    if _actor_alive(name):
                        return "live", name
                    del self.live[key]
                if key in self.done:
                    self.done.move_to_end(key)
                    return "done", self.done[key][0]
                return None

            def finish(self, key: str, name: str, plain: dict | None, size: int) -> None:
                """`name` ended; keep its final snapshot (a finished or diverged run of the config) if it fits."""
                if self.live.get(key) == name:
                    del self.live[key]
                if plain is not None and 0 < size <= self.cache_bytes:
                    self.done[key] = (plain, size)
                    self.done.move_to_end(key)
                    while sum(s for _, s in self.done.values()) > self.cache_bytes:
                        self.done.popitem(last=False)

            def drop(self, key: str, name: str) -> None:
                """`name` is not the config's run any more (paused or changed by its only viewer)."""
                if self.live.get(key) == name:
                    del self.live[key]

            def stats(self) -> dict:
                return {"live": len(self.live), "done": len(self.done),
                        "cache_mb": sum(s for _, s in self.done.values()) / 2**20}

        _INDEX_CLASS.append(RunIndex)
    return _INDEX_CLASS[0]


def _actor_alive(name: str) -> bool:
    """Whether a named job actor still exists (inside the index actor: the same namespace)."""
    import ray

    try:
        ray.get_actor(name, namespace=NAMESPACE)
        return True
    except ValueError:
        return False


def index():
    """The cluster's index actor, created by the first server that asks (its cache budget: BNVIZ_CACHE_MB)."""
    from .registry import cache_budget

    return _index_class().options(name=INDEX_NAME, namespace=NAMESPACE, get_if_exists=True,
                                  lifetime="detached").remote(cache_budget())


def call(method: str, *args, default=None):
    """A bounded call on the index; `default` (and a log line) if the index cannot be reached."""
    from .ray_backend import ray_module

    ray = ray_module()
    try:
        return ray.get(getattr(index(), method).remote(*args), timeout=INDEX_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the index is an optimisation: without it, a server trains itself
        log.warning("the cluster's run index did not answer %s: %s", method, exc)
        return default
