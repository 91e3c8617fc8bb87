"""Ray as the job backend (BNVIZ_BACKEND=ray): each job is a Ray actor, on any node of the cluster, that runs the
same `trainer.Job` the thread backend runs; the app server only draws. No Streamlit here; `ray` is optional
(requirements-ray.txt) and imported only when this backend is used.

`RayJob` has the job interface of `trainer.Job` (start, pause, resume, stop, set_lr, snapshot, status, step, runs,
join, wait_for_data, alive, on_done, pause_limit), so the Lab and the run registry drive either the same way. The
actor is created when the job leaves the queue (a queued job holds no cluster resources) and killed when it ends,
after its last snapshot is fetched.

What crosses the boundary: configs as plain dicts, uploaded image sets as plain numpy arrays (never torch objects or
pickled user objects of ours), and snapshots as `History.parts()` (plain JSON plus numpy arrays: the bounded history
rows a run file holds), turned back into a History by the checked `History.from_parts`. A snapshot carries the whole
history so far (at most the 32 MiB history budget per run); viewers on one server share one fetch per refresh
(registry.Entry.snapshot).

Cluster: BNVIZ_RAY_ADDRESS=auto (a cluster started with `ray start --head` on this machine) or `host:port`; unset,
the first job starts a private local Ray instance with one CPU per core. Workers import bnviz from the same path as
the server (PYTHONPATH in the actor's runtime environment): on other machines bnviz must be installed at that path
or importable (pip install -e .).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from . import ray_index
from .config import RunConfig
from .data import Dataset
from .history import History
from .ray_index import NAMESPACE
from .trainer import JobSnapshot, RunSnapshot, load_for
from .twins import data_key

log = logging.getLogger(__name__)

ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds the bnviz package
CALL_TIMEOUT_S = 30.0  # a control or snapshot call that takes longer than this reports the job as failed
_INIT_LOCK = threading.Lock()
_ACTOR_CLASS: list = []


def ray_module():
    try:
        import ray
    except ImportError:
        raise ConfigError("BNVIZ_BACKEND=ray needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the cluster (BNVIZ_RAY_ADDRESS) or start a local instance, once per process."""
    ray = ray_module()
    with _INIT_LOCK:
        if ray.is_initialized():
            return
        address = address if address is not None else os.environ.get("BNVIZ_RAY_ADDRESS", "").strip() or None
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}}
        if address:
            in_lasting_thread(lambda: ray.init(address=address, runtime_env=env, log_to_driver=False,
                                               namespace=NAMESPACE))
        else:  # "local": a new instance beside any `ray start`
            in_lasting_thread(lambda: ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                                               runtime_env=env, log_to_driver=False, namespace=NAMESPACE))
        log.info("Ray backend: %s", "cluster at " + address if address else "a local instance")


def in_lasting_thread(call) -> None:
    """Run `call` (ray.init) in a thread that lives as long as the process, and wait for it.

    Why: ray.init starts a local instance's processes (GCS server, raylet) with Linux's PR_SET_PDEATHSIG, which kills
    them when the *thread* that started them ends, not the process. Streamlit runs every script run in a thread of
    its own that ends with the run, so an instance started from a page died a few seconds later (seen: the GCS
    server killed 2 s after its first actor, every later Ray call failing). The main thread is fine as it is."""
    if threading.current_thread() is threading.main_thread():
        call()
        return
    outcome: list = []
    started = threading.Event()

    def keep():
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)
        started.set()
        if not outcome:
            threading.Event().wait()  # forever: Ray's processes share this thread's fate (the process's)

    threading.Thread(target=keep, name="bnviz-ray-keeper", daemon=True).start()
    started.wait()
    if outcome:
        raise outcome[0]


def _actor_class():
    """The actor class, defined once `ray` is imported (one CPU per job, concurrent calls for the controls)."""
    if not _ACTOR_CLASS:
        ray = ray_module()

        @ray.remote(num_cpus=1, max_concurrency=4)
        class JobActor:
            def __init__(self, config_dicts: list[dict], datasets: dict, pause_limit: float | None):
                from bnviz.engine.trainer import Job

                configs = [RunConfig.from_dict(d) for d in config_dicts]
                data = {tuple(k): dataset_from_plain(v) for k, v in datasets}
                self.job = Job(configs, datasets=data)
                self.job.pause_limit = pause_limit
                self.servers = 1  # app servers whose sessions watch this job (the one that started it)
                self.job.start()  # at once: calls made meanwhile wait for the constructor, so none comes first

            def attach(self) -> int:
                """Another server's sessions watch too; how many servers watch now."""
                self.servers += 1
                return self.servers

            def detach(self) -> int:
                """A server's last viewer left; the job stops when no server watches. How many still watch."""
                self.servers = max(0, self.servers - 1)
                if self.servers == 0:
                    self.job.stop(wait=None)
                return self.servers

            def watching_servers(self) -> int:
                return self.servers

            def pause(self) -> str:
                self.job.pause()
                return self.job.status

            def resume(self) -> str:
                self.job.resume()
                return self.job.status

            def stop(self) -> None:
                self.job.stop(wait=None)

            def set_lr(self, lr: float) -> None:
                self.job.set_lr(lr)

            def wait_for_data(self, timeout: float) -> bool:
                return self.job.wait_for_data(timeout)

            def wait_done(self, timeout: float | None) -> bool:
                return self.job.join(timeout)

            def snapshot(self) -> dict:
                return snapshot_to_plain(self.job.snapshot())

        _ACTOR_CLASS.append(JobActor)
    return _ACTOR_CLASS[0]


# ---- plain data across the boundary -------------------------------------------------------------------------------
def dataset_to_plain(data: Dataset) -> dict:
    return {"name": data.name, "classes": list(data.classes), "source": dict(data.source),
            **{k: getattr(data, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}}


def dataset_from_plain(plain: dict) -> Dataset:
    arrays = {k: torch.from_numpy(np.asarray(plain[k])) for k in ("x_train", "y_train", "x_test", "y_test")}
    return Dataset(plain["name"], classes=tuple(plain["classes"]), source=dict(plain["source"]), **arrays)


def snapshot_to_plain(snap: JobSnapshot) -> dict:
    return {"status": snap.status, "step": snap.step, "steps": snap.steps, "steps_per_s": snap.steps_per_s,
            "error": snap.error,
            "runs": [{"config": r.config.to_dict(), "status": r.status, "step": r.step, "summary": r.summary,
                      "parts": r.history.parts() if r.history is not None else None} for r in snap.runs]}


def snapshot_from_plain(plain: dict) -> JobSnapshot:
    runs = [RunSnapshot(RunConfig.from_dict(r["config"]), r["status"], r["step"],
                        History.from_parts(*r["parts"]) if r["parts"] is not None else None, r["summary"])
            for r in plain["runs"]]
    return JobSnapshot(plain["status"], plain["step"], plain["steps"], plain["steps_per_s"], runs, plain["error"])


# ---- the server's side ---------------------------------------------------------------------------------------------
class _RemoteRun:
    """What the Lab and pages read of one run of a Ray job: its config, data (for the cost estimate), learning rate."""

    def __init__(self, cfg: RunConfig, dataset: Dataset):
        self.cfg, self.dataset = cfg, dataset
        self.lr = cfg.lr
        self.step = 0
        self.status = "ready"


class RayJob:
    """A job trained by a Ray actor, with the interface of trainer.Job."""

    def __init__(self, configs: RunConfig | list[RunConfig], datasets: dict | None = None, data_for=load_for):
        configs = [configs] if isinstance(configs, RunConfig) else list(configs)
        if not 1 <= len(configs) <= 2:
            raise ConfigError(f"a job trains 1 or 2 configs, got {len(configs)}")
        self.datasets = dict(datasets or {})  # uploads of the session: sent to the actor as plain arrays
        local = dict(self.datasets)
        self.runs = []
        for cfg in configs:
            cfg.validate()
            key = data_key(cfg)
            if key not in local:
                local[key] = data_for(cfg)  # checks the data here (a bad name fails on Start) and sizes the estimate
            self.runs.append(_RemoteRun(cfg, local[key]))
        self.steps = max(c.steps for c in configs)
        self.threads = max(c.threads for c in configs)
        self.pause_limit: float | None = None
        self.on_done = None
        self.status = "ready"
        self.step = 0
        self.error: str | None = None
        self._actor = None
        self._last: JobSnapshot | None = None
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._ended = threading.Event()
        self._final = False  # the watcher has the last snapshot: no more calls to the actor
        self.key: str | None = None  # the run key it is indexed under in the cluster (publish_as, attach)
        self.name: str | None = None  # its actor's name when indexed
        self.owner = True  # False: attached to another server's actor (never kills it)
        self.modified = False  # its learning rate was changed: not the config's run, not cached
        self.keep_final = True  # its final snapshot goes to the cluster's cache (publish_as)

    @classmethod
    def attach(cls, key: str, name: str) -> RayJob | None:
        """A proxy for the live job actor `name` that another server started (its sessions and ours then watch the
        same run); None if it has ended meanwhile. Set `on_done`, then call `follow`."""
        ray = ray_module()
        try:
            actor = ray.get_actor(name, namespace=NAMESPACE)
            ray.get(actor.attach.remote(), timeout=CALL_TIMEOUT_S)
            snap = snapshot_from_plain(ray.get(actor.snapshot.remote(), timeout=CALL_TIMEOUT_S))
        except Exception as exc:  # noqa: BLE001 - gone between the index's answer and now
            log.info("could not attach to %s: %s", name, exc)
            return None
        if snap.status not in ("running", "paused"):  # it ended meanwhile: its final snapshot reaches the index
            with contextlib.suppress(Exception):
                ray.get(actor.detach.remote(), timeout=CALL_TIMEOUT_S)
            return None
        job = cls([r.config for r in snap.runs], data_for=lambda cfg: None)  # the data is the other server's
        job._actor, job.key, job.name, job.owner = actor, key, name, False
        job._take(snap)
        return job

    def follow(self) -> None:
        """Start watching an attached actor for its end (`on_done` is called then)."""
        self._watcher = threading.Thread(target=self._watch, name="bnviz-ray-viewer", daemon=True)
        self._watcher.start()

    def publish_as(self, key: str, keep_final: bool = True) -> None:
        """Before start: index this job in the cluster under `key`, so other servers join it; `keep_final`: its
        final snapshot goes to the cluster's cache of finished runs."""
        self.key, self.keep_final = key, keep_final

    # ---- controls -------------------------------------------------------------------------------------------
    def start(self) -> RayJob:
        if self._actor is not None:
            return self
        ensure_ray()
        datasets = [(list(k), dataset_to_plain(v)) for k, v in self.datasets.items()]
        actor_class = _actor_class()
        if self.key is not None:
            self.name = f"bnviz-job-{self.key}-{uuid.uuid4().hex[:8]}"
            actor_class = actor_class.options(name=self.name, namespace=NAMESPACE)
        self._actor = actor_class.remote([r.cfg.to_dict() for r in self.runs], datasets, self.pause_limit)
        self.status = "running"  # the actor starts training as soon as it is built (not waited for here)
        self._watcher = threading.Thread(target=self._watch, name="bnviz-ray-job", daemon=True)
        self._watcher.start()
        if self.key is not None:  # after: a page that looks meanwhile sees a running job, not a "ready" one
            ray_index.call("claim", self.key, self.name)
        return self

    def _call(self, method: str, *args, timeout: float = CALL_TIMEOUT_S):
        ray = ray_module()
        return ray.get(getattr(self._actor, method).remote(*args), timeout=timeout)

    def pause(self) -> None:
        if self.status == "running" and not self._ended.is_set():
            self.status = self._safe(lambda: self._call("pause"), self.status)

    def resume(self) -> None:
        if self.status == "paused" and not self._ended.is_set():
            self.status = self._safe(lambda: self._call("resume"), self.status)

    def stop(self, wait: float | None = 5.0) -> None:
        if self._actor is None or self._ended.is_set():
            return
        self._safe(lambda: self._call("stop"), None)
        if wait:
            self._ended.wait(wait)

    def release(self, wait: float | None = 5.0) -> int:
        """This server's last viewer left: the job stops unless another server's sessions watch it. Returns how
        many servers still watch (0: it stops, and this waits up to `wait` s for its end)."""
        if self._actor is None or self._ended.is_set():
            return 0
        left = self._safe(lambda: self._call("detach"), 0)
        if left == 0 and wait:
            self._ended.wait(wait)
        return left

    def shared_elsewhere(self) -> bool:
        """Whether another app server's sessions watch this job too."""
        if self._actor is None or self._ended.is_set():
            return False
        return self._safe(lambda: self._call("watching_servers"), 1) > 1

    def unpublish(self) -> None:
        """Out of the cluster's index: paused or changed by its only viewer, it is not the config's run any more."""
        if self.key is not None and self.name is not None:
            ray_index.call("drop", self.key, self.name)
        self.key = None

    def has_room(self) -> bool:
        """Whether the cluster has a free CPU for one more job (several servers share it)."""
        try:
            return ray_module().available_resources().get("CPU", 0.0) >= 1.0
        except Exception:  # noqa: BLE001 - the cluster cannot say: let Ray queue the actor itself
            return True

    def set_lr(self, lr: float) -> None:
        RunConfig(lr=lr).validate()
        self.modified = True
        if self._actor is not None and not self._ended.is_set():
            self._safe(lambda: self._call("set_lr", float(lr)), None)
            for run in self.runs:
                run.lr = float(lr)

    def wait_for_data(self, timeout: float) -> bool:
        """Up to `timeout` s in all: an actor that is still starting (a worker process that imports torch, a few
        seconds) answers later, and the page's refresh then shows the first step."""
        if self._actor is None:
            return False
        ray = ray_module()
        try:
            return bool(ray.get(self._actor.wait_for_data.remote(timeout), timeout=timeout))
        except ray.exceptions.GetTimeoutError:
            return False
        except Exception as exc:  # noqa: BLE001 - a dead actor: reported by the watcher as the job's error
            log.warning("Ray job call failed: %s", exc)
            return False

    def join(self, timeout: float | None = None) -> bool:
        self._ended.wait(timeout)
        return self.finished

    def discard(self) -> None:
        """Kill the actor (a job that will not run, or has ended)."""
        if self._actor is not None:
            try:
                ray_module().kill(self._actor)
            except Exception:  # noqa: BLE001 - already gone
                pass

    @property
    def alive(self) -> bool:
        return self._watcher is not None and not self._ended.is_set()

    @property
    def finished(self) -> bool:
        return self.status in ("finished", "stopped", "diverged", "error")

    # ---- reading --------------------------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        if self._final and self._last is not None:
            return self._last
        if self._actor is None:
            return JobSnapshot(self.status, 0, self.steps, 0.0, [], self.error)
        try:
            snap = snapshot_from_plain(self._call("snapshot"))
        except Exception as exc:  # noqa: BLE001 - the actor died or timed out: the last good snapshot, and why
            if self._last is None:
                return JobSnapshot("error", self.step, self.steps, 0.0, [], f"{type(exc).__name__}: {exc}")
            return self._last
        self._take(snap)
        return snap

    def _take(self, snap: JobSnapshot) -> None:
        with self._lock:
            self._last, self.step = snap, snap.step
            if not self._final and snap.status in ("running", "paused"):
                self.status = snap.status  # an end is set by the watcher, with the final snapshot
            for run, rs in zip(self.runs, snap.runs, strict=False):
                run.lr, run.step, run.status = float(rs.summary.get("lr", run.lr)), rs.step, rs.status

    def _safe(self, call, fallback):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - a dead actor: reported by the watcher as the job's error
            log.warning("Ray job call failed: %s", exc)
            return fallback

    def _watch(self) -> None:
        """Wait for the actor's job to end (or the actor to die), keep its last snapshot, free the actor."""
        ray = ray_module()
        try:
            ray.get(self._actor.wait_done.remote(None))
            try:
                plain = self._call("snapshot", timeout=CALL_TIMEOUT_S * 4)
            except Exception:  # the owner's server fetched the end first and freed the actor: its final snapshot
                found = None if self.owner or self.key is None else ray_index.call("lookup", self.key)
                if not found or found[0] != "done":
                    raise
                plain = found[1]
            snap = snapshot_from_plain(plain)
            self._take(snap)
            self.status, self.error = snap.status, snap.error
            if self.owner and self.key is not None:
                cacheable = snap.status in ("finished", "diverged") and not self.modified and self.keep_final
                size = snap.history_bytes
                ray_index.call("finish", self.key, self.name, plain if cacheable else None, size)
        except Exception as exc:  # noqa: BLE001 - the worker process died (a crash, a lost node)
            self.error = f"the Ray worker of this run ended ({type(exc).__name__})"
            self.status = "error"
            if self._last is not None:
                self._last = JobSnapshot("error", self._last.step, self._last.steps, 0.0, self._last.runs,
                                         self.error)
        finally:
            self._final = True  # snapshots now come from _last
            if self.owner:
                self.discard()
            log.info("ray job ended: %s at step %d", self.status, self.step)
            try:
                if self.on_done is not None:
                    self.on_done()  # before join returns, as with trainer.Job
            finally:
                self._ended.set()
