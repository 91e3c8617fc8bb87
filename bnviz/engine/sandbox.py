"""Untrusted files are read in a separate, limited process: the server never decodes a user's bytes itself.

`parse_upload` (your own images) and `unpack_runs` (a run file) do what their namesakes in `uploads` and `runfile`
do, in a fresh process forked from a forkserver that has already imported bnviz (a few tens of milliseconds per
file). The process may add at most `limits.PARSE_MEMORY_BYTES` of address space (`RLIMIT_AS`) and gets
`limits.PARSE_SECONDS` of wall-clock time before it is killed; at most `limits.PARSE_WORKERS` run at once. A file
that hits a limit costs its sender a one-line BnvizError; the server's memory, time and GIL are never spent on it.

Nothing is pickled on the way back: the process sends one uncompressed NPZ (plain numeric and text arrays, read
here with `allow_pickle=False`) whose `__meta__` array holds JSON (strings, numbers, lists, mappings). The parent
checks what it gets (`History.from_parts`, `UserImages`'s types) before using it.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import resource
import threading

import numpy as np

from .. import errors
from ..errors import BnvizError, RunFileError, ServerBusy, UserDataError
from . import limits
from .no_main import skip_main_for

META = "__meta__"
MAX_REPLY_BYTES = 1024 * 1024 * 1024  # far above the largest legal reply (32 M pixel values or 4 runs of 64 MiB)
_SLOTS = threading.BoundedSemaphore(limits.PARSE_WORKERS)
_CONTEXT: list = []  # the forkserver context, made on first use
PROCESS_NAME = "bnviz-parser"
last_worker_peak_bytes = 0  # how much the latest parsing process's RSS grew at its peak (scripts/measure_safety.py)


def parse_upload(name: str, data: bytes, size: int | None = None):
    """`uploads.parse_upload` in the parsing process: the UserImages of an uploaded file."""
    from .user_images import UserImages

    arrays, meta = _run("upload", {"name": name, "size": size}, data, UserDataError, name)
    images, labels = arrays.get("images"), arrays.get("labels")
    classes = meta.get("classes")
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.shape == images.shape[:1]
            and isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UserDataError(f"{name} could not be read (the reading process sent something unexpected)")
    return UserImages(str(meta["name"]), str(meta["sha256"]), images, labels, tuple(classes),
                      skipped=int(meta["skipped"]), notes=[str(n) for n in meta["notes"]])


def unpack_runs(data: bytes):
    """`runfile.unpack_runs` in the parsing process: the labels and histories of a run file."""
    from .history import History

    arrays, meta = _run("runs", {}, data, RunFileError, "the run file")
    labels, infos = meta.get("labels"), meta.get("infos")
    if not (isinstance(labels, list) and isinstance(infos, list) and len(labels) == len(infos)):
        raise RunFileError("the run file could not be read (the reading process sent something unexpected)")
    histories = []
    for i, info in enumerate(infos):
        numeric = {k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{i}/a/")}
        hists = {k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{i}/h/")}
        histories.append(History.from_parts(info, numeric, hists, limits.MAX_RUN_MEMORY))
    return [str(label) for label in labels], histories


# ---- the parent's side ------------------------------------------------------------------------------------------


def _context():
    if not _CONTEXT:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["bnviz.engine.sandbox", "bnviz.engine.uploads", "bnviz.engine.runfile"])
        _CONTEXT.append(context)
        skip_main_for(PROCESS_NAME)
    return _CONTEXT[0]


def _run(task: str, args: dict, data: bytes, error: type[BnvizError], what: str):
    """Run `task` on `data` in a fresh limited process; (arrays, meta) it sent, or its error raised here."""
    if not _SLOTS.acquire(timeout=limits.PARSE_SECONDS):
        raise ServerBusy("the server is reading other people's files: try again in a minute")
    context = _context()
    here, there = context.Pipe()
    process = context.Process(target=_worker, args=(task, args, there, limits.PARSE_MEMORY_BYTES), daemon=True,
                              name=PROCESS_NAME)
    try:
        process.start()
        there.close()
        return _exchange(process, here, data, error, what)
    finally:
        here.close()
        if process.pid is not None:  # started
            process.join(1)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
        _SLOTS.release()


def _exchange(process, conn, data: bytes, error: type[BnvizError], what: str):
    try:
        try:
            conn.send_bytes(data)
        except BrokenPipeError:  # the process stopped before reading it all: its reply says why
            pass
        if not conn.poll(limits.PARSE_SECONDS):
            process.kill()
            raise error(f"reading {what} took longer than {limits.PARSE_SECONDS:.0f} s: send a smaller file")
        reply = conn.recv_bytes(MAX_REPLY_BYTES)
    except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
        process.join(1)
        raise error(f"{what} could not be read: the reading process stopped (exit code {process.exitcode}), "
                    "probably at its memory limit; send a smaller file") from None
    global last_worker_peak_bytes
    status, payload = reply[:2], reply[2:]
    if status == b"er":
        problem = json.loads(payload.decode("utf-8"))
        last_worker_peak_bytes = int(problem.get("peak_rss_bytes", 0))
        kind = getattr(errors, str(problem.get("kind")), None)
        if isinstance(kind, type) and issubclass(kind, BnvizError):
            raise kind(str(problem.get("message")))
        raise error(f"{what} {problem.get('message')}")
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays.pop(META).tobytes().decode("utf-8"))
    last_worker_peak_bytes = int(meta.pop("peak_rss_bytes", 0))
    return arrays, meta


# ---- the parsing process's side -----------------------------------------------------------------------------------


def _worker(task: str, args: dict, conn, memory_bytes: int) -> None:
    """Entry point of the parsing process: limit its memory, read the file, send the answer, exit."""
    _plain_allocator()
    start_rss = _limit_memory(memory_bytes)
    problem = None
    try:
        arrays, meta = TASKS[task](conn.recv_bytes(limits.MAX_FILE_BYTES * 2), **args)
    except BnvizError as exc:
        problem = {"kind": type(exc).__name__, "message": str(exc)}
    except MemoryError:
        problem = {"kind": "", "message": f"needs more than {memory_bytes / 2**20:,.0f} MB of memory to read: "
                                          "send a smaller file"}
    except Exception as exc:  # noqa: BLE001 - an unforeseen problem in a file is still one line for its sender
        problem = {"kind": "", "message": f"could not be read ({type(exc).__name__})"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
    if problem:
        reply = b"er" + json.dumps({**problem, "peak_rss_bytes": peak}).encode()
    else:
        reply = b"ok" + _encode(arrays, {**meta, "peak_rss_bytes": peak})
    conn.send_bytes(reply)
    conn.close()


def _plain_allocator() -> None:
    """pandas reads text columns with pyarrow, whose default allocator (mimalloc/jemalloc) reserves a large address
    range at its first use, which RLIMIT_AS would refuse at random: use the C library's malloc instead."""
    try:
        import pyarrow
    except ImportError:
        return
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def _limit_memory(extra_bytes: int) -> int:
    """Let this process grow by at most `extra_bytes` of address space beyond what it maps now (the imported
    libraries map far more than they use, so an absolute limit would be meaningless); returns its RSS now."""
    with open("/proc/self/status") as f:
        status = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.startswith(("Vm", "Rss"))}
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = status["VmSize"] + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    return status["VmRSS"]


def _encode(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{META: np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)})
    return buffer.getvalue()


def _upload_task(data: bytes, name: str, size: int | None):
    from .uploads import parse_upload as parse

    images = parse(name, data, size)
    meta = {"name": images.name, "sha256": images.sha256, "classes": list(images.classes),
            "skipped": images.skipped, "notes": list(images.notes)}
    return {"images": images.images, "labels": images.labels}, meta


def _runs_task(data: bytes):
    from .runfile import unpack_runs as unpack

    labels, histories = unpack(data)
    arrays, infos = {}, []
    for i, history in enumerate(histories):
        info, numeric, hists = history.parts()
        infos.append(info)
        arrays.update({f"{i}/a/{k}": v for k, v in numeric.items()})
        arrays.update({f"{i}/h/{k}": v for k, v in hists.items()})
    return arrays, {"labels": labels, "infos": infos}


TASKS = {"upload": _upload_task, "runs": _runs_task}
