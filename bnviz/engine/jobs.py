"""One browser session's lab bench, and the server-wide cap on concurrent training jobs. No Streamlit here.

A `Lab` owns at most one `Job` (a single run or a twin pair), optionally runs re-opened from files, and the image
sets uploaded in this session (the newest two; configs name them `upload:<hash>`). The UI keeps
one Lab per browser session and stops it when the session goes away. `JobLimiter` is shared by all sessions of a
server: when every slot is taken, `Lab.start` queues the run (bnviz.engine.registry: identical runs shared, finished
ones cached, a fair FIFO queue) instead of overloading the CPU.

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
import dataclasses
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field

from ..errors import ConfigError, ServerBusy
from . import cost
from .config import RunConfig
from .history import History
from .registry import Entry, FinishedJob, RunRegistry
from .trainer import Job, JobSnapshot, stop_all
from .user_images import UserImages

log = logging.getLogger(__name__)

RUN_LABELS = ("A", "B")
FIRST_DATA_WAIT = 1.0  # s that Lab.start waits for a new job's first recorded step
MAX_UPLOADS = 2  # uploaded image sets kept per session (each up to 32 MB as uint8)
PAUSE_RELEASE_S = 120.0  # a job paused this long stops and gives its slot back
# s a new job's worker waits once its first step is handed over, while the page that started it draws that step
# (Job.first_hold): with two training threads taking the GIL at once, Home's click -> first chart took 60-80 ms longer
# (scripts/measure_live.py's in-page time, alternating servers; README, "How fast it is live")
FIRST_CHART_HOLD_S = 0.15


class JobLimiter:
    """At most `capacity` jobs train at once on this server (default: one per core)."""

    def __init__(self, capacity: int | None = None, memory_bytes: int | None = None):
        self.capacity = capacity or _env_int("BNVIZ_MAX_JOBS") or available_cores()
        self.memory_budget = memory_bytes or cost.memory_budget()  # for all jobs together (BNVIZ_MEMORY_MB)
        self._lock = threading.Lock()
        self._holders: set[int] = set()
        self._memory: dict[int, int] = {}  # holder -> bytes its job is estimated to take
        self.on_release: list = []  # called (no arguments, outside the lock) whenever a slot is given back

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

    def check_fits(self, job_cost: cost.Cost) -> None:
        """ConfigError saying what to lower when the job alone needs more memory than the whole budget."""
        if job_cost.memory_bytes > self.memory_budget:
            raise ConfigError(f"This run would take {job_cost.describe()}; this server allows "
                              f"{self.memory_budget / 2**20:,.0f} MB for all training. Lower the batch size, "
                              "width, depth or image size.")

    def reserve_memory(self, holder: int, job_cost: cost.Cost) -> None:
        """Count `holder`'s estimated memory against the server's budget, or raise saying what to lower."""
        need, budget = job_cost.memory_bytes, self.memory_budget
        self.check_fits(job_cost)
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
            freed = holder in self._holders
            self._holders.discard(holder)
            self._memory.pop(holder, None)
        if freed:
            for listener in list(self.on_release):
                listener()

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


BACKENDS = ("threads", "ray")


def backend_name() -> str:
    """The job backend of this server: BNVIZ_BACKEND ("threads", the default, or "ray")."""
    name = os.environ.get("BNVIZ_BACKEND", "").strip().lower() or "threads"
    if name not in BACKENDS:
        raise ConfigError(f"BNVIZ_BACKEND={name!r} is not one of {', '.join(BACKENDS)}")
    return name


def make_job(configs: list[RunConfig], datasets: dict, backend: str = "threads"):
    """A job built but not started, on `backend`: the same interface (start, pause, resume, stop, set_lr,
    snapshot, status, step, runs, join, on_done) in-process (trainer.Job) or as a Ray actor (ray_backend.RayJob)."""
    if backend == "ray":
        from .ray_backend import RayJob

        return RayJob(configs, datasets=datasets)
    return Job(configs, datasets=datasets)


def _discard(job) -> None:
    """Free a built job that will not run (a Ray actor is killed; a thread job was never started)."""
    with contextlib.suppress(Exception):
        getattr(job, "discard", lambda: None)()


_REGISTRIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry_for(limiter: JobLimiter) -> RunRegistry:
    """The run registry (shared runs, cache, queue) that goes with a limiter: one per server for LIMITER."""
    with _REGISTRIES_LOCK:
        if limiter not in _REGISTRIES:
            _REGISTRIES[limiter] = RunRegistry(limiter)
        return _REGISTRIES[limiter]


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
    client: str | None = None  # the browser's address (st.context.ip_address): the per-client cap counts it
    backend: str = field(default_factory=lambda: backend_name())  # "threads" or "ray" (BNVIZ_BACKEND)
    registry: RunRegistry | None = None  # the server's; by default the one of `limiter`
    entry: Entry | None = None  # this session's place in the registry (queued, active, or a cached run)

    def __post_init__(self) -> None:
        if self.registry is None:
            self.registry = registry_for(self.limiter)

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
        """Stop any current job and start a new one, or join an identical one that trains or is cached
        (bnviz.engine.registry), or queue it when every slot is taken (`queued`, `place`). Raises a BnvizError when a
        setting or the data cannot be used, or ServerBusy when this client or the queue is at its cap; then no job
        is held."""
        self.stop()
        threads = max(1, available_cores() // self.limiter.capacity)  # jobs x threads <= cores
        configs = [c.replace(threads=min(c.threads, threads)) for c in configs]
        cluster = self.backend == "ray"  # also join identical runs of other app servers of the cluster
        entry = self.registry.lookup(configs, id(self), cluster)
        if entry is None:
            job = make_job(configs, self._user_datasets(configs), self.backend)
            try:
                self.last_cost = estimate_job(job)
                if self.max_run_s is not None:
                    cost.check_time(self.last_cost, self.max_run_s)
                self.limiter.check_fits(self.last_cost)
                job.pause_limit = PAUSE_RELEASE_S
                job.first_hold = FIRST_CHART_HOLD_S
                entry = self.registry.submit(configs, job, self.last_cost, id(self), self.client, cluster=cluster)
            except BaseException:
                _discard(job)
                raise
            if entry.job is not job:  # an identical run appeared while this one was built
                _discard(job)
        self.entry, self.job = entry, entry.job
        self.labels = list(labels or RUN_LABELS[: len(configs)])
        self.loaded = None
        if entry.state == "active":
            entry.job.wait_for_data(FIRST_DATA_WAIT)  # the page drawn next already shows step 0

    def stop(self) -> None:
        """Stop the current job (or leave the queue) and free its slot; what it recorded stays readable. A run
        other sessions watch goes on for them: this session keeps what it has seen so far."""
        entry, self.entry = self.entry, None
        if entry is None:
            return
        if entry.state == "queued":
            self.registry.leave(entry, id(self))
            self.job = None  # it never started: nothing to show
            return
        if not self.registry.leave(entry, id(self)) and entry.state != "done":  # others go on watching
            snap = entry.snapshot()
            self.job = FinishedJob(dataclasses.replace(snap, status="stopped"))

    @property
    def queued(self) -> bool:
        return self.entry is not None and self.entry.state == "queued"

    def place(self):
        """This session's place in the queue (position, length, estimated wait), or None when not queued."""
        return self.registry.place(self.entry) if self.entry is not None else None

    @property
    def watchers(self) -> int:
        """Sessions watching this session's run (1: only this one; 0: no run)."""
        if self.entry is None or self.entry.state == "done":
            return 0
        return self.registry.watchers(self.entry)

    def pause(self) -> None:
        """Pause the run; refused (SharedRunControl) while other sessions watch it."""
        if self.entry is not None and self.entry.state == "active":
            self.registry.take_private(self.entry, id(self), "pausing")
            self.job.pause()

    def resume(self) -> None:
        if self.job is not None:
            self.job.resume()

    def set_lr(self, lr: float) -> None:
        """Change the learning rate while training; refused (SharedRunControl) while other sessions watch."""
        if self.entry is not None and self.entry.state == "active":
            self.registry.take_private(self.entry, id(self), "changing the learning rate")
            self.entry.modified = True
            self.job.set_lr(lr)

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
        """Training, paused or waiting in the queue (the page keeps refreshing)."""
        return self.queued or (self.job is not None and self.job.status in ("running", "paused"))

    def snapshot(self) -> JobSnapshot | None:
        if self.job is None or self.queued:
            return None
        if self.entry is not None and self.entry.job is self.job:
            return self.entry.snapshot()  # shared by every viewer of the run
        return self.job.snapshot()

    def histories(self, snap: JobSnapshot | None = None) -> tuple[list[str], list[History]]:
        """What the pages draw: the current job's runs (from `snap` if given), or the re-opened ones."""
        if self.job is not None and not self.queued:
            snap = snap if snap is not None else self.snapshot()
            return self.labels, [r.history for r in snap.runs]
        if self.loaded is not None:
            return self.loaded.labels, self.loaded.histories
        return [], []
