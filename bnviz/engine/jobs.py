"""One browser session's lab bench, and the server-wide cap on concurrent training jobs. No Streamlit here.

A `Lab` owns at most one `Job` (a single run or a twin pair), optionally runs re-opened from files, and the image
sets uploaded in this session (the newest two; configs name them `upload:<hash>`). The UI keeps
one Lab per browser session and stops it when the session goes away. `JobLimiter` is shared by all sessions of a
server: when every slot is taken, `Lab.start` raises `ServerBusy` instead of overloading the CPU.

Threads: a job gets `cores // capacity` torch threads (at least 1), so with the default capacity (one job per core)
jobs x threads <= cores. Each worker calls `torch.set_num_threads` at its start. With the OpenMP backend of the CPU
wheel that count is per calling thread (it sets that thread's OpenMP team size; a thread that first uses torch later
adopts the latest value); MKL's count is process-wide, but every live job asks for the same number, so it agrees.
Only a capacity above the core count (BNVIZ_MAX_JOBS > cores) oversubscribes: then each job has one thread and the
operating system shares the cores. tests/test_lab.py checks the per-thread behaviour this relies on.

Shutdown: `stop_all` (registered with atexit) stops every running job and waits briefly, so a stopped server ends
its runs cleanly instead of killing daemon threads in the middle of a torch call.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field

from ..errors import ConfigError, ServerBusy
from . import cost
from .config import RunConfig
from .history import History
from .trainer import Job, JobSnapshot, stop_all
from .user_images import UserImages

log = logging.getLogger(__name__)

RUN_LABELS = ("A", "B")
FIRST_DATA_WAIT = 1.0  # s that Lab.start waits for a new job's first recorded step
MAX_UPLOADS = 2  # uploaded image sets kept per session (each up to 32 MB as uint8)
PAUSE_RELEASE_S = 120.0  # a job paused this long stops and gives its slot back


class JobLimiter:
    """At most `capacity` jobs train at once on this server (default: one per core)."""

    def __init__(self, capacity: int | None = None, memory_bytes: int | None = None):
        self.capacity = capacity or _env_int("BNVIZ_MAX_JOBS") or available_cores()
        self.memory_budget = memory_bytes or cost.memory_budget()  # for all jobs together (BNVIZ_MEMORY_MB)
        self._lock = threading.Lock()
        self._holders: set[int] = set()
        self._memory: dict[int, int] = {}  # holder -> bytes its job is estimated to take

    def try_acquire(self, holder: int) -> bool:
        with self._lock:
            if holder in self._holders:
                return True
            if len(self._holders) >= self.capacity:
                return False
            self._holders.add(holder)
            return True

    def claim(self, holder: int) -> None:
        """Take a slot for `holder` (kept until `release`), or raise ServerBusy saying so."""
        if not self.try_acquire(holder):
            raise ServerBusy(f"The server is busy: {self.capacity} runs are training already. Try again in a "
                             "minute (a run of yours on another page counts too: stop it there), or ask your "
                             "teacher to raise BNVIZ_MAX_JOBS.")

    @contextlib.contextmanager
    def slot(self):
        """Hold a slot for the duration of a `with` block (an experiment a page runs), or raise ServerBusy."""
        holder = object()
        self.claim(id(holder))
        try:
            yield
        finally:
            self.release(id(holder))

    def reserve_memory(self, holder: int, job_cost: cost.Cost) -> None:
        """Count `holder`'s estimated memory against the server's budget, or raise saying what to lower."""
        need, budget = job_cost.memory_bytes, self.memory_budget
        if need > budget:
            raise ConfigError(f"This run would take {job_cost.describe()}; this server allows "
                              f"{budget / 2**20:,.0f} MB for all training. Lower the batch size, width, depth or "
                              "image size.")
        with self._lock:
            used = sum(m for h, m in self._memory.items() if h != holder)
            if used + need <= budget:
                self._memory[holder] = need
                return
        raise ServerBusy(f"The server is busy: the runs training now take {used / 2**20:,.0f} of its "
                         f"{budget / 2**20:,.0f} MB and this one needs about {need / 2**20:,.0f} MB. Try again in "
                         "a minute, or lower the batch size, width or image size.")

    def release(self, holder: int) -> None:
        with self._lock:
            self._holders.discard(holder)
            self._memory.pop(holder, None)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._holders)


def estimate_job(job: Job) -> cost.Cost:
    """The cost model's estimate for a job that is built but not started (its data is loaded)."""
    data = job.runs[0].dataset
    return cost.estimate([run.cfg for run in job.runs], data.input_shape, data.n_classes,
                         len(data.x_train) + len(data.x_test))


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity limits, e.g. in a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


LIMITER = JobLimiter()
if LIMITER.capacity > available_cores():
    log.warning("BNVIZ_MAX_JOBS=%d is more than the %d cores: runs will share cores and train slower",
                LIMITER.capacity, available_cores())
atexit.register(stop_all)


@dataclass
class LoadedRuns:
    """Runs re-opened from a file: looked at, not trained."""

    labels: list[str]
    histories: list[History]
    source: str = ""


@dataclass
class Lab:
    limiter: JobLimiter = field(default_factory=lambda: LIMITER)
    job: Job | None = None
    labels: list[str] = field(default_factory=list)
    loaded: LoadedRuns | None = None
    uploads: dict[str, UserImages] = field(default_factory=dict)  # ref -> images, newest last
    max_run_s: float | None = field(default_factory=cost.run_time_budget)  # None: no time budget
    last_cost: cost.Cost | None = None  # the estimate of the job started last

    def add_upload(self, images: UserImages) -> str:
        """Keep an uploaded image set for this session (the newest MAX_UPLOADS only); return its reference."""
        self.uploads.pop(images.ref, None)
        self.uploads[images.ref] = images
        while len(self.uploads) > MAX_UPLOADS:
            del self.uploads[next(iter(self.uploads))]
        return images.ref

    def _user_datasets(self, configs: list[RunConfig]) -> dict:
        """Job's `datasets` for the configs that train on an upload of this session (split by each run's seed)."""
        return {(c.dataset, c.seed, c.difficulty): self.uploads[c.dataset].to_dataset(c.seed)
                for c in configs if c.dataset in self.uploads}

    def start(self, configs: list[RunConfig], labels: list[str] | None = None) -> None:
        """Stop any current job and start a new one. Raises ServerBusy when every slot is taken, and another
        BnvizError when a setting or the data cannot be used; then no job runs and no slot is held."""
        self.stop()
        self.limiter.claim(id(self))
        try:
            threads = max(1, available_cores() // self.limiter.capacity)  # jobs x threads <= cores
            configs = [c.replace(threads=min(c.threads, threads)) for c in configs]
            job = Job(configs, datasets=self._user_datasets(configs))
            self.last_cost = estimate_job(job)
            if self.max_run_s is not None:
                cost.check_time(self.last_cost, self.max_run_s)
            self.limiter.reserve_memory(id(self), self.last_cost)
            job.pause_limit = PAUSE_RELEASE_S
        except BaseException:
            self.limiter.release(id(self))
            raise
        job.on_done = lambda: self._finished(job)
        self.job = job
        self.labels = list(labels or RUN_LABELS[: len(configs)])
        self.loaded = None
        job.start()
        job.wait_for_data(FIRST_DATA_WAIT)  # the page drawn next already shows step 0

    def _finished(self, job: Job) -> None:
        if job is self.job:  # an old job ending late must not free the slot of its successor
            self.limiter.release(id(self))

    def stop(self) -> None:
        """Stop the current job (if any) and free its slot; what it recorded stays readable."""
        if self.job is not None:
            self.job.stop(wait=5.0)
            if self.job.alive:  # still finishing a step: its on_done frees the slot when it ends
                return
        self.limiter.release(id(self))

    def reset(self) -> None:
        self.stop()
        self.job = None
        self.labels = []
        self.loaded = None

    def load(self, loaded: LoadedRuns) -> None:
        self.reset()
        self.loaded = loaded

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.status in ("running", "paused")

    def snapshot(self) -> JobSnapshot | None:
        return self.job.snapshot() if self.job is not None else None

    def histories(self, snap: JobSnapshot | None = None) -> tuple[list[str], list[History]]:
        """What the pages draw: the current job's runs (from `snap` if given), or the re-opened ones."""
        if self.job is not None:
            snap = snap if snap is not None else self.job.snapshot()
            return self.labels, [r.history for r in snap.runs]
        if self.loaded is not None:
            return self.loaded.labels, self.loaded.histories
        return [], []
