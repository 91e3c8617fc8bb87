"""Canned experiments trained in a background thread, so that a page's rerun (another button, another section, a
widget) never throws a half-trained experiment away, and shared by every session that asks for the same one.

`start(fn, settings, limiter)` begins `fn(progress=..., **settings)` in a thread holding one slot of the server-wide
job limiter (ServerBusy when none is free), or returns the run already training with the same arguments (no second
slot: a class pressing the same button trains it once). `find(fn, settings)` is that run while it trains or shortly
after. `fn` is an experiment wrapped by `result_cache.remembered`, so a finished result is also in the result cache.
Nothing here imports Streamlit: the page polls `ExperimentRun.fraction` and `.message`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

KEEP_FINISHED_S = 600.0  # a finished run stays findable this long (its starter sees its result or error)


@dataclass
class ExperimentRun:
    key: tuple
    name: str
    fraction: float = 0.0
    message: str = "starting..."
    result: object = None
    error: Exception | None = None
    ended_at: float | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def report(self, fraction: float, message: str) -> None:
        """The experiment's progress callback."""
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), str(message)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (tests, the CLI); True if it did within `timeout`."""
        return self._done.wait(timeout)


_RUNS: dict[tuple, ExperimentRun] = {}
_LOCK = threading.Lock()


def find(fn, settings: dict) -> ExperimentRun | None:
    """The run of `fn(**settings)` that is training, or that ended less than KEEP_FINISHED_S ago."""
    with _LOCK:
        return _RUNS.get(fn.cache_key((), settings))


def start(fn, settings: dict, limiter) -> ExperimentRun:
    """Train `fn(**settings)` in the background (or join the identical run already training)."""
    key = fn.cache_key((), settings)
    with _LOCK:
        _forget_old_runs()
        running = _RUNS.get(key)
        if running is not None and not running.done:
            return running
        run = ExperimentRun(key, fn.__name__)  # the slot's holder: alive until the thread ends, so its id is unique
        limiter.claim(id(run))  # ServerBusy (a BnvizError) when every slot is taken
        _RUNS[key] = run
    thread = threading.Thread(target=_train, args=(run, fn, settings, limiter), daemon=True,
                              name=f"bnviz-experiment-{fn.__name__}")
    thread.start()
    return run


def _train(run: ExperimentRun, fn, settings: dict, limiter) -> None:
    try:
        run.result = fn(progress=run.report, **settings)
        run.report(1.0, "done")
    except Exception as exc:  # noqa: BLE001 - handed to the page, which shows it as a message
        run.error = exc
    finally:
        limiter.release(id(run))
        run.ended_at = time.monotonic()
        run._done.set()


def _forget_old_runs() -> None:
    now = time.monotonic()
    for key in [k for k, r in _RUNS.items() if r.ended_at is not None and now - r.ended_at > KEEP_FINISHED_S]:
        del _RUNS[key]


def runs() -> list[ExperimentRun]:
    """Every run that is training or ended recently (tests wait for them; a status page could list them)."""
    with _LOCK:
        return list(_RUNS.values())
