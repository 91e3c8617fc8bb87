"""Runs shared by every session of a server: identical runs are trained once, finished runs are cached, and runs wait
their turn in a fair first-come-first-served queue instead of being refused. No Streamlit here.

Run key: a SHA-256 of every field of every config of a job (`dataclasses.asdict`, so a knob added to RunConfig
later takes part without a change here), the dataset (a built-in name, or `upload:<hash>` of the uploaded file's
contents: both are config fields), and `CODE_VERSION`, a hash of the source of bnviz.engine (the code that
decides the numbers). A config that trains on a path to the user's own files has no key (the path says nothing
about the contents) and is never shared.

Sharing: a session whose Start asks for a run that is queued or training becomes a viewer of that entry (its charts
show the history from step 0 and go on live from the step it joins); one that asks for a finished run gets the
cached history at once. Controls that would change another viewer's run are refused while more than one session
watches (`SharedRunControl`, shown as a note); a session alone on a run may pause it or change its learning rate,
which makes it private: it leaves the key index, so a later identical Start trains afresh, and a run whose
learning rate was changed is not cached. Stop by one of several viewers only detaches that viewer.

Cache: finished (and diverged: also deterministic) runs of unmodified shareable jobs, least recently used out,
bounded by BNVIZ_CACHE_MB (default 256 MB, the size of the histories; 0 turns caching off). The key contains the
code version, so a cache never serves a run of other code.

Queue: when every slot (`JobLimiter.capacity`) or the memory budget is taken, a new run waits in FIFO order; its
position and estimated wait (the cost model's time for what runs and waits ahead, divided by the slots) are shown
by the page, with Cancel. A session holds one active or queued run (Lab.start stops the previous one), a client
address at most BNVIZ_RUNS_PER_CLIENT distinct runs it started (default: capacity - 1, at least 1; runs it only
watches do not count; loopback addresses are not capped: this machine's own browser, or every client behind a
proxy on this machine, which the cap cannot tell apart) and the queue at most BNVIZ_MAX_QUEUE entries (default 64).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BnvizError, ServerBusy
from . import cost
from .config import BUILTIN_DATASETS, UPLOAD_REF, RunConfig
from .trainer import JobSnapshot

log = logging.getLogger(__name__)

SNAPSHOT_REUSE_S = 0.2  # viewers of one live run share a snapshot this young (one history copy per refresh)
DEFAULT_CACHE_MB = 256.0
DEFAULT_MAX_QUEUE = 64
RETRY_S = 1.0  # while a Ray cluster has no free CPU (other servers' runs), the queue is looked at this often


class SharedRunControl(BnvizError):
    """A control that would change a run other sessions watch too."""


def _code_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def shareable(cfg: RunConfig) -> bool:
    """True when the config names its data by content or by a bundled name (not a path to local files)."""
    return cfg.dataset in BUILTIN_DATASETS or bool(UPLOAD_REF.fullmatch(cfg.dataset))


def run_key(configs: list[RunConfig], code_version: str = CODE_VERSION) -> str | None:
    """The identity of a job: every config field, the dataset and the code version; None if it cannot be shared."""
    if not configs or not all(shareable(c) for c in configs):
        return None
    blob = json.dumps({"code": code_version, "runs": [dataclasses.asdict(c) for c in configs]}, sort_keys=True,
                      default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class _RunView:
    """What pages read of one run of a finished (cached) job: its config and final learning rate."""

    cfg: RunConfig
    lr: float
    step: int
    status: str


class FinishedJob:
    """A cached job, read-only: the job interface (status, step, runs, snapshot, join, ...) over its snapshot."""

    def __init__(self, snap: JobSnapshot):
        self._snap = snap
        self.status, self.step, self.steps, self.error = snap.status, snap.step, snap.steps, snap.error
        self.runs = [_RunView(r.config, float(r.summary.get("lr", r.config.lr)), r.step, r.status) for r in snap.runs]
        self.alive = False
        self.finished = True
        self.cached = True

    def snapshot(self) -> JobSnapshot:
        return self._snap

    def join(self, timeout: float | None = None) -> bool:
        return True

    def wait_for_data(self, timeout: float) -> bool:
        return True

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def stop(self, wait: float | None = 5.0) -> None:
        pass

    def set_lr(self, lr: float) -> None:
        raise SharedRunControl("This run has finished; its learning rate cannot change any more.")


@dataclass(eq=False)
class Entry:
    """One job of the registry: queued, active (training), or done; watched by a set of viewers (sessions)."""

    key: str | None
    job: object  # trainer.Job, a backend's job proxy, or FinishedJob
    cost: cost.Cost | None
    client: str | None = None  # the address of the session that asked first
    viewers: set = field(default_factory=set)
    state: str = "queued"  # queued | active | done
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    modified: bool = False  # its learning rate was changed while training: not the config's run any more
    private: bool = False  # left the key index (paused or changed by its only viewer, or not shareable)
    on_start: Callable | None = None  # called (with the entry) when the job leaves the queue and starts
    _snap: JobSnapshot | None = None
    _snap_at: float = 0.0
    _snap_final: bool = False  # the snapshot was taken after the job ended: it never changes again
    _snap_lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> JobSnapshot:
        """The job's snapshot; viewers polling within SNAPSHOT_REUSE_S of each other share one copy."""
        with self._snap_lock:
            now = time.monotonic()
            final = self._snap is not None and self._snap_final
            if not final and (self._snap is None or now - self._snap_at > SNAPSHOT_REUSE_S or self.state == "done"):
                self._snap_final = self.state == "done" and not getattr(self.job, "alive", False)
                self._snap, self._snap_at = self.job.snapshot(), now
            return self._snap

    @property
    def waited(self) -> float:
        """Seconds it waited in the queue (so far, if it still waits)."""
        return (self.started_at if self.started_at is not None else time.monotonic()) - self.queued_at


@dataclass
class QueuePlace:
    position: int  # 1 = next to start
    length: int
    wait_s: float  # estimated from the cost model (None-free: 0 when nothing is ahead)


class RunRegistry:
    """Every job of a server: the key index of shareable live jobs, the FIFO queue, and the finished-run cache."""

    def __init__(self, limiter, cache_bytes: int | None = None, per_client: int | None = None,
                 max_queue: int | None = None):
        self.limiter = limiter
        self.cache_bytes = cache_bytes if cache_bytes is not None else cache_budget()
        self.per_client = per_client or _env_int("BNVIZ_RUNS_PER_CLIENT") or max(1, limiter.capacity - 1)
        self.max_queue = max_queue or _env_int("BNVIZ_MAX_QUEUE") or DEFAULT_MAX_QUEUE
        self._lock = threading.RLock()
        self._live: dict[str, Entry] = {}  # key -> queued or active shareable entry
        self._queue: list[Entry] = []
        self._active: list[Entry] = []
        self._cache: OrderedDict[str, tuple[JobSnapshot, int]] = OrderedDict()  # key -> (snapshot, bytes)
        self._dispatching = False  # guards _dispatch against re-entry (under the lock: one thread at a time)
        self._retry: threading.Timer | None = None  # a later look at the queue while the Ray cluster is full
        self.trained = 0  # jobs started (for the load test and the status caption)
        self.shared_hits = 0  # Starts served by a live or cached identical run
        limiter.on_release.append(self.kick)  # a slot freed elsewhere (an experiment's) starts the next in line

    def kick(self) -> None:
        """Start what the free slots allow (also called by the limiter when any slot is given back)."""
        with self._lock:
            self._dispatch()

    # ---- asking for a run ----------------------------------------------------------------------------------
    def lookup(self, configs: list[RunConfig], viewer: int, cluster: bool = False) -> Entry | None:
        """The live or cached entry identical to `configs`, with `viewer` attached; None if there is none.
        `cluster`: also ask the Ray cluster's run index (runs of other app servers; bnviz.engine.ray_index)."""
        key = run_key(configs)
        with self._lock:
            return self._attach(key, viewer, cluster)

    def _attach(self, key: str | None, viewer: int, cluster: bool = False) -> Entry | None:
        if key is None:
            return None
        entry = self._live.get(key)
        if entry is not None and getattr(entry.job, "status", "") == "paused":  # paused by a direct call: private
            del self._live[key]
            entry.private, entry = True, None
        if entry is not None:
            entry.viewers.add(viewer)
            self.shared_hits += 1
            return entry
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.shared_hits += 1
            done = Entry(key, FinishedJob(cached[0]), None, state="done", viewers={viewer})
            return done
        return self._attach_in_cluster(key, viewer) if cluster else None

    def _attach_in_cluster(self, key: str, viewer: int) -> Entry | None:
        """Another server's live run (attached: its actor then counts this server as a watcher) or finished run."""
        from . import ray_index
        from .ray_backend import RayJob, snapshot_from_plain

        found = ray_index.call("lookup", key)
        if not found:
            return None
        kind, value = found
        if kind == "done":
            snap = snapshot_from_plain(value)
            self._keep(key, snap)
            self.shared_hits += 1
            return Entry(key, FinishedJob(snap), None, state="done", viewers={viewer})
        job = RayJob.attach(key, value)
        if job is None:
            return None
        entry = Entry(key, job, None, viewers={viewer}, state="active", started_at=time.monotonic())
        job.on_done = lambda: self._done(entry)
        self._live[key] = entry
        self._active.append(entry)
        self.shared_hits += 1
        log.info("shared run %s joined in the cluster (%s)", key[:8], value)
        job.follow()
        return entry

    def submit(self, configs: list[RunConfig], job, job_cost: cost.Cost, viewer: int, client: str | None,
               on_start: Callable[[Entry], None] | None = None, cluster: bool = False) -> Entry:
        """Queue a built job (or attach to an identical one that appeared meanwhile: then `job` is dropped).
        Raises ServerBusy when the client or the queue is at its cap."""
        key = run_key(configs)
        client = capped_client(client)
        with self._lock:
            entry = self._attach(key, viewer, cluster)
            if entry is not None:
                return entry
            if client is not None:
                mine = sum(1 for e in self._queue + self._active if e.client == client and e.viewers)
                if mine >= self.per_client:
                    raise ServerBusy(f"Your computer already has {mine} run(s) training or waiting in other tabs "
                                     f"(the limit is {self.per_client} per computer, so everyone gets a turn). "
                                     "Stop one there first.")
            if len(self._queue) >= self.max_queue:
                raise ServerBusy(f"The queue is full ({self.max_queue} runs wait already). Try again in a few "
                                 "minutes.")
            entry = Entry(key, job, job_cost, client=client, viewers={viewer}, private=key is None, on_start=on_start)
            if key is not None:
                self._live[key] = entry
            self._queue.append(entry)
            self._dispatch()
            return entry

    # ---- the queue ---------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Start queued jobs in order while a slot and memory are free (the head waits: first come, first served).
        Not re-entered: a slot given back while it runs (its own trial below) does not call it again."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            self._dispatch_queue()
        finally:
            self._dispatching = False

    def _dispatch_queue(self) -> None:
        while self._queue:
            entry = self._queue[0]
            holder = id(entry)
            has_room = getattr(entry.job, "has_room", None)  # a Ray job: a CPU free in the cluster (other servers')
            if has_room is not None and self.limiter.in_use < self.limiter.capacity and not has_room():
                self._retry_later()
                return
            if not self.limiter.try_acquire(holder):
                return
            try:
                self.limiter.reserve_memory(holder, entry.cost)
            except ServerBusy:
                self.limiter.release(holder)
                return
            self._queue.pop(0)
            self._active.append(entry)
            entry.state, entry.started_at = "active", time.monotonic()
            entry.job.on_done = lambda e=entry: self._done(e)
            self.trained += 1
            if entry.key is not None and hasattr(entry.job, "publish_as"):
                entry.job.publish_as(entry.key, self.cache_bytes > 0)  # other servers join it (ray_index)
            log.info("shared run %s started after %.1f s in the queue (%d waiting)", (entry.key or "private")[:8],
                     entry.waited, len(self._queue))  # scripts/load_test.py --class counts these lines
            try:
                entry.job.start()
            except Exception as exc:  # noqa: BLE001 - a backend that cannot start: this entry fails, others go on
                log.warning("job could not start: %s", exc)
                entry.job.error = f"{type(exc).__name__}: {exc}"
                entry.job.status = "error"
                self._done(entry)
                continue
            if entry.on_start is not None:
                entry.on_start(entry)

    def _retry_later(self) -> None:
        """The cluster is full (other servers' runs): look again in a second (pages also look when they refresh)."""
        if self._retry is None:
            self._retry = threading.Timer(RETRY_S, self._retry_now)
            self._retry.daemon = True
            self._retry.start()

    def _retry_now(self) -> None:
        with self._lock:
            self._retry = None  # a look that finds the cluster still full schedules the next one
            self._dispatch()

    def _keep(self, key: str, snap: JobSnapshot) -> None:
        """Cache a finished run's snapshot under `key` (least recently used out beyond the budget)."""
        size = snap.history_bytes
        if 0 < self.cache_bytes and size <= self.cache_bytes:
            self._cache[key] = (snap, size)
            self._cache.move_to_end(key)
            self._evict()

    def _done(self, entry: Entry) -> None:
        """A job ended (however): free its slot, cache it if it is the config's run, start the next in line."""
        with self._lock:
            if entry.state == "done":
                return
            entry.state = "done"
            self.limiter.release(id(entry))
            if entry in self._active:
                self._active.remove(entry)
            if entry.key is not None and self._live.get(entry.key) is entry:
                del self._live[entry.key]
            job = entry.job
            if (entry.key is not None and not entry.modified and job.status in ("finished", "diverged")
                    and self.cache_bytes > 0):
                self._keep(entry.key, job.snapshot())
            self._dispatch()

    def _evict(self) -> None:
        while self._cache and sum(size for _, size in self._cache.values()) > self.cache_bytes:
            self._cache.popitem(last=False)

    def place(self, entry: Entry) -> QueuePlace | None:
        """Where a queued entry stands, and its estimated wait; None once it is not queued."""
        with self._lock:
            self._dispatch()
            if entry not in self._queue:
                return None
            index = self._queue.index(entry)
            running = sum(_remaining_s(e) for e in self._active)
            ahead = sum(e.cost.total_seconds for e in self._queue[:index] if e.cost is not None)
            return QueuePlace(index + 1, len(self._queue), (running + ahead) / max(1, self.limiter.capacity))

    # ---- leaving and controls ----------------------------------------------------------------------------
    def leave(self, entry: Entry, viewer: int, wait: float | None = 5.0) -> bool:
        """`viewer` stops watching; the last viewer's leaving cancels a queued job or stops a training one.
        Returns True when the job itself was stopped (or cancelled)."""
        with self._lock:
            entry.viewers.discard(viewer)
            if entry.viewers or entry.state == "done":
                return False
            if entry.state == "queued":
                self._queue.remove(entry)
                entry.state = "done"
                if entry.key is not None and self._live.get(entry.key) is entry:
                    del self._live[entry.key]
                self._dispatch()
                return True
            if entry.key is not None and self._live.get(entry.key) is entry:
                del self._live[entry.key]  # nobody watches: an identical Start from now on trains afresh
            job = entry.job
        release = getattr(job, "release", None)  # a Ray job: it goes on while another server's sessions watch it
        if release is not None:
            return release(wait) == 0
        job.stop(wait=wait)  # outside the lock: the worker's on_done takes it
        return True

    def take_private(self, entry: Entry, viewer: int, what: str) -> None:
        """Before `viewer` pauses or changes the run: refuse if others watch it, else make it private."""
        with self._lock:
            others = len(entry.viewers - {viewer})
            elsewhere = getattr(entry.job, "shared_elsewhere", lambda: False)()  # another app server's sessions
            if others or elsewhere:
                who = f"{others + 1} sessions watch" if others else "sessions on another server watch"
                raise SharedRunControl(f"{who} this run, so {what} is off: no one changes another's run. Change a "
                                       "setting and press Start for a run of your own.")
            if entry.key is not None and self._live.get(entry.key) is entry:
                del self._live[entry.key]
            getattr(entry.job, "unpublish", lambda: None)()  # out of the cluster's index too
            entry.private = True

    def watching(self) -> int:
        """Sessions watching a run that trains (each refreshes its charts while it does)."""
        with self._lock:
            return sum(len(e.viewers) for e in self._active)

    def watchers(self, entry: Entry) -> int:
        with self._lock:
            return len(entry.viewers)

    # ---- reading -----------------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {"active": len(self._active), "queued": len(self._queue), "cached": len(self._cache),
                    "cache_mb": sum(s for _, s in self._cache.values()) / 2**20, "trained": self.trained,
                    "shared_hits": self.shared_hits}

    def cached_bytes(self, key: str | None) -> int | None:
        """The size of the cached history of run `key`, or None when it is not cached (read-only: no hit counted)."""
        with self._lock:
            cached = self._cache.get(key) if key is not None else None
            return cached[1] if cached is not None else None

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


def capped_client(address: str | None) -> str | None:
    """The address the per-client cap counts, or None for no cap: this machine (a local user, scripts/load_test.py,
    or a proxy on this machine: the cap cannot tell clients apart behind it). A dual-stack server sees an IPv4 client
    as an IPv4-mapped IPv6 address ("::ffff:127.0.0.1", which Python 3.11 does not call loopback): it counts as
    that IPv4 address, so one computer is one client however its connection arrives."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a proxy's label): count it as it is
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return None if ip.is_loopback else str(ip)


def _remaining_s(entry: Entry) -> float:
    if entry.cost is None:
        return 0.0
    return entry.cost.step_seconds * max(0, entry.cost.steps - int(getattr(entry.job, "step", 0)))


def cache_budget() -> int:
    """Bytes of finished histories the server keeps for sharing: BNVIZ_CACHE_MB (default 256; 0: no cache)."""
    value = os.environ.get("BNVIZ_CACHE_MB", "").strip()
    try:
        mb = float(value) if value else DEFAULT_CACHE_MB
    except ValueError:
        mb = DEFAULT_CACHE_MB
    return int(max(0.0, mb) * 2**20)


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0
