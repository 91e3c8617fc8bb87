"""Time and peak memory of the server process while it opens the hostile files of issue 13 (rows 1, 2, 4, 5) and a
few ordinary ones, read in-process (what `main` does) or through the parsing process (bnviz.engine.sandbox).

    python scripts/measure_safety.py            # every case, both ways where the checkout has a sandbox
    PYTHONPATH=/path/to/other/checkout python scripts/measure_safety.py --modes inprocess

Each case runs in a fresh Python process; its peak is VmHWM (reset through /proc/self/clear_refs) minus its RSS
just before the file is opened, so imports do not count. The parsing process's own growth is printed beside.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

MB = 1024 * 1024


def _zip(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _png(side: int, value: int = 255) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), value).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _run_folder_zip(extra_gib: float = 0.0) -> bytes:
    """A small real run zipped as a folder; with `extra_gib`, arrays.npz gains a zero array of that size."""
    from bnviz.engine.config import RunConfig
    from bnviz.engine.trainer import Job

    job = Job(RunConfig(width=4, depth=2, steps=20, eval_every=10)).run_to_end()
    with tempfile.TemporaryDirectory() as tmp:
        folder = job.runs[0].history.save(Path(tmp) / "run")
        files = {f"run/{p.name}": p.read_bytes() for p in folder.iterdir()}
    if extra_gib:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(files["run/arrays.npz"])) as src, \
                zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
            count = int(extra_gib * 1024 ** 3 // 8)
            with dst.open("extra.npy", "w", force_zip64=True) as stream:
                np.lib.format.write_array_header_1_0(stream, {"descr": "<f8", "fortran_order": False,
                                                              "shape": (count,)})
                chunk = bytes(8 * MB)
                for start in range(0, count * 8, len(chunk)):
                    stream.write(chunk[:min(len(chunk), count * 8 - start)])
        files["run/arrays.npz"] = out.getvalue()
    return _zip(files)


def build_cases(folder: Path) -> dict[str, tuple[str, str]]:
    """Write every case's file; {case: (kind "upload" or "runs", file path)}."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images * 255 / 16).astype(np.uint8), digits.target
    csv = "label," + ",".join(f"p{i}" for i in range(64)) + "\n" + "\n".join(
        f"{label}," + ",".join(str(v) for v in row.reshape(-1)) for label, row in zip(y, x, strict=True))
    cases = {
        "row1 run zip + 1 GiB extra array": ("runs", _run_folder_zip(1.0)),
        "row2 csv header of 400,000 commas": ("upload", ("label," + "," * 400_000 + "\n0" + "\n").encode()),
        "row4 npz with a 50 MB class name": ("upload", _npz(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]),
                                                            classes=np.array([b"a" * 50_000_000, b"b"]))),
        "row5 npz float64 20000x50x50": ("upload", _npz(x=np.zeros((20000, 50, 50)), y=np.arange(20000) % 10)),
        "row5 zip of 29 blank 4096^2 PNGs": ("upload", _zip({f"c{i % 2}/{i}.png": _png(4096) for i in range(29)})),
        "row5 zip of 600k entries": ("upload", _zip({f"c/{i}.txt": b"" for i in range(600_000)})),
        "ordinary: digits npz (1797 8x8)": ("upload", _npz(x=x, y=y)),
        "ordinary: digits csv": ("upload", csv.encode()),
        "ordinary: zip of 300 16x16 PNGs": ("upload", _zip({f"c{i % 3}/{i}.png": _png(16, i % 256)
                                                            for i in range(300)})),
        "ordinary: run file of 20 steps": ("runs", _run_folder_zip()),
    }
    paths = {}
    for i, (name, (kind, data)) in enumerate(cases.items()):
        path = folder / f"case{i}{'.csv' if 'csv' in name else '.npz' if 'npz' in name else '.zip'}"
        path.write_bytes(data)
        paths[name] = (kind, str(path))
    return paths


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def measure_one(kind: str, path: str, mode: str) -> dict:
    """Open one file in this process (`inprocess`) or through the parsing process (`sandbox`)."""
    if mode == "sandbox":
        from bnviz.engine import history  # noqa: F401 - imported by the server already: not part of the cost
        from bnviz.engine import sandbox as reader

        reader.parse_upload("warm.csv", b"label,a,b,c,d\n0,1,2,3,4\n1,1,2,3,4\n0,1,2,3,4\n1,1,2,3,4\n")
    else:
        from bnviz.engine import runfile, uploads

        reader = uploads if kind == "upload" else runfile
    data = Path(path).read_bytes()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _status("VmRSS")
    started = time.perf_counter()
    try:
        result = reader.parse_upload(Path(path).name, data) if kind == "upload" else reader.unpack_runs(data)
        outcome = f"opened ({type(result).__name__})"
    except Exception as exc:  # noqa: BLE001 - the outcome is what is measured
        outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
    seconds = time.perf_counter() - started
    worker = getattr(reader, "last_worker_peak_bytes", 0) if mode == "sandbox" else 0
    return {"seconds": seconds, "server_peak_mb": (_status("VmHWM") - before) / MB, "worker_peak_mb": worker / MB,
            "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="inprocess,sandbox")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "PATH", "MODE"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cases = build_cases(Path(tmp))
        print(f"{'case':40s} {'mode':9s} {'seconds':>8s} {'server MB':>9s} {'worker MB':>9s}  outcome")
        for name, (kind, path) in cases.items():
            for mode in args.modes.split(","):
                out = subprocess.run([sys.executable, __file__, "--one", kind, path, mode], capture_output=True,
                                     text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
                try:
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    print(f"{name:40s} {mode:9s} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                print(f"{name:40s} {mode:9s} {r['seconds']:8.2f} {r['server_peak_mb']:9.1f} "
                      f"{r['worker_peak_mb']:9.1f}  {r['outcome']}", flush=True)


if __name__ == "__main__":
    main()
