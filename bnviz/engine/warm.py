"""Start-up warm-up for a class (BNVIZ_WARM=presets): train each canned experiment once, in the background, through
the path a session's Start takes, so that a class clicking presets gets finished runs at once. No Streamlit here; the
UI (bnviz.ui.state.warm_up, once per server) names the runs as its pages build them.

- Same path, same key: each warm run is started by `Lab.start` of a Lab of its own (a session without a browser),
  so the server's thread share is applied as for a student and the run key (every config field) is the one a
  student's Start of that preset asks for (bnviz.engine.registry).
- Through the queue: a warm run waits for a slot like any run, and at most `parallel` of them are queued or training
  at once (default: the slots minus one, at least one), so on a server with two or more slots a student's own
  settings still find a slot while the presets warm.
- Nothing stays behind: a warm session leaves its run as soon as the run ends (finished runs go to the cache), so it
  holds no slot and no run; it has no client address, so it never counts against the per-client cap.
- A student who starts a preset while it warms joins the live run as a viewer (while the warm session watches too,
  pausing and changing the learning rate are off for that run); one who starts it afterwards gets the cached run.
- The log: one INFO line per preset, a summary (presets warmed, seconds, MB of cached history) and a WARNING when
  their histories do not all fit the cache (BNVIZ_CACHE_MB). The cost model only bounds a history
  (cost.HISTORY_BYTES a run), so the sizes reported are measured on the finished runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import cost
from .config import RunConfig
from .jobs import LIMITER, JobLimiter, Lab, registry_for
from .registry import RunRegistry

log = logging.getLogger(__name__)

ENV = "BNVIZ_WARM"
MODES = ("presets",)  # the values BNVIZ_WARM accepts (unset or empty: no warm-up)
POLL_S = 0.2  # how often a warm session looks whether its run has ended
CACHED = ("finished", "diverged")  # the endings the registry caches


def warm_mode(value: str | None = None) -> str | None:
    """The warm-up asked for by `value` (default: $BNVIZ_WARM): "presets", or None. Any other non-empty value is
    logged as a warning naming the accepted values, and means no warm-up (never an error: the app must start)."""
    raw = os.environ.get(ENV, "") if value is None else value
    mode = raw.strip().lower()
    if not mode:
        return None
    if mode in MODES:
        return mode
    log.warning("%s=%r is not understood, so nothing is warmed: accepted values are %s (or leave it unset)", ENV,
                raw, ", ".join(repr(m) for m in MODES))
    return None


@dataclass(frozen=True)
class WarmRun:
    """One job to warm: a preset's name, its configs as a Start asks for them, and its run labels."""

    name: str
    configs: list[RunConfig]
    labels: list[str] = field(default_factory=list)


@dataclass
class WarmResult:
    name: str
    status: str  # how the run ended: finished | diverged (both cached) | stopped | error | refused
    seconds: float  # from asking for it to its end (queue wait included)
    steps: int = 0
    history_bytes: int = 0  # of all its runs' histories (what the cache keeps)
    cached: bool = False  # in the server's cache after it ended
    before: bool = False  # it was cached already when asked for (nothing trained)
    key: str | None = None
    note: str = ""


@dataclass
class WarmReport:
    results: list[WarmResult]
    seconds: float
    cache_budget: int  # bytes (BNVIZ_CACHE_MB)

    @property
    def warmed(self) -> list[WarmResult]:
        return [r for r in self.results if r.cached]

    @property
    def cached_bytes(self) -> int:
        """Bytes of the presets' histories in the cache when warming ended (measured)."""
        return sum(r.history_bytes for r in self.warmed)

    @property
    def needed_bytes(self) -> int:
        """Bytes the presets' histories need together (every run that ended in a cacheable state)."""
        return sum(r.history_bytes for r in self.results if r.status in CACHED)

    def summary(self) -> str:
        text = (f"warmed {len(self.warmed)} presets in {self.seconds:.0f} s, cache {self.cached_bytes / 2**20:.1f} MB "
                f"(BNVIZ_CACHE_MB allows {self.cache_budget / 2**20:.0f} MB)")
        missed = len(self.results) - len(self.warmed)
        return text + (f"; {missed} not cached" if missed else "")


def warm(runs: list[WarmRun], limiter: JobLimiter | None = None, registry: RunRegistry | None = None,
         parallel: int | None = None, stop: threading.Event | None = None) -> WarmReport:
    """Train every run of `runs` through `Lab.start` (at most `parallel` at a time) and wait until all have ended;
    log one line per run and a summary. Never raises for a run that cannot train: it is logged and reported."""
    limiter = limiter or LIMITER
    registry = registry or registry_for(limiter)
    stop = stop or threading.Event()
    parallel = max(1, min(parallel or limiter.capacity - 1, len(runs) or 1))
    began = time.monotonic()
    if registry.cache_bytes <= 0:
        log.warning("%s: BNVIZ_CACHE_MB=0 turns the finished-run cache off, so warming would keep nothing: skipped",
                    ENV)
        return WarmReport([], 0.0, registry.cache_bytes)
    bound = sum(len(run.configs) for run in runs) * cost.HISTORY_BYTES  # the cost model's bound, not an estimate
    log.info("warm-up: training %d presets in the background, %d at a time; the cache allows %.0f MB (%s)",
             len(runs), parallel, registry.cache_bytes / 2**20,
             f"their histories take at most {bound / 2**20:.0f} MB: they fit" if bound <= registry.cache_bytes
             else "their sizes are measured as they finish")
    todo = deque(enumerate(runs))
    results: list[WarmResult | None] = [None] * len(runs)
    lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if not todo:
                    return
                index, run = todo.popleft()
            results[index] = _warm_one(run, limiter, registry, stop)

    threads = [threading.Thread(target=worker, name=f"bnviz-warm-{i}", daemon=True) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if r is not None]
    report = WarmReport(done, time.monotonic() - began, registry.cache_bytes)
    log.info("warm-up: %s", report.summary())
    if report.needed_bytes > report.cache_budget:
        log.warning("warm-up: the presets' histories take %.1f MB together, more than BNVIZ_CACHE_MB=%.0f: only %d "
                    "of %d stay cached (the least recently used leave first); set BNVIZ_CACHE_MB to at least %.0f",
                    report.needed_bytes / 2**20, report.cache_budget / 2**20, len(report.warmed), len(done),
                    report.needed_bytes / 2**20 + 1)
    elif len(report.warmed) < len(done):
        log.warning("warm-up: not cached: %s", "; ".join(f"{r.name} ({r.status}{': ' + r.note if r.note else ''})"
                                                         for r in done if not r.cached))
    return report


def _warm_one(run: WarmRun, limiter: JobLimiter, registry: RunRegistry, stop: threading.Event) -> WarmResult:
    """One preset: start it as a session would, wait until it ends, leave it (nothing of the session stays)."""
    lab = Lab(limiter=limiter, registry=registry)
    began = time.monotonic()
    try:
        lab.start(run.configs, run.labels)
        entry = lab.entry
        before = entry.state == "done"  # a cached run came back: nothing to train
        while entry.state != "done" and not stop.wait(POLL_S):
            pass
        snap = entry.snapshot()
        size = snap.history_bytes
        result = WarmResult(run.name, snap.status, time.monotonic() - began, snap.step, size,
                            registry.cached_bytes(entry.key) is not None, before, entry.key, snap.error or "")
    except Exception as exc:  # noqa: BLE001 - a preset that cannot train is reported; the server goes on
        result = WarmResult(run.name, "refused", time.monotonic() - began, note=f"{type(exc).__name__}: {exc}")
    finally:
        lab.reset()  # leave the run: a run only this session watched and that still trains (stop) ends here
    how = "was cached already" if result.before else result.status
    log.info("warm-up: preset %r %s in %.1f s (%d steps, %.1f MB of history%s)%s", run.name, how, result.seconds,
             result.steps, result.history_bytes / 2**20, ", cached" if result.cached else ", NOT cached",
             f": {result.note}" if result.note else "")
    return result


def start_warming(runs: list[WarmRun], limiter: JobLimiter | None = None, registry: RunRegistry | None = None,
                  parallel: int | None = None, stop: threading.Event | None = None) -> threading.Thread:
    """`warm` in a daemon thread (the first page is not kept waiting); returns the thread."""
    thread = threading.Thread(target=warm, args=(runs, limiter, registry, parallel, stop), name="bnviz-warm",
                              daemon=True)
    thread.start()
    return thread
