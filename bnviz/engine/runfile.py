"""A run (or a pair of runs) as one zip file to download and open again. No pickle: JSON, CSV and NPZ only.

Layout inside the zip: `<label>/run.json`, `<label>/arrays.npz`, ... one folder per run, as History.save writes
them, plus `bnviz-runs.json` naming the folders in order. A zip of one run folder without that file (a folder
written by `python -m bnviz run` or by `bnviz.watch`'s `w.save`, zipped) opens as a single run. Opening checks the
size, every member's name and size, and then each folder with History.load, which refuses pickled arrays; anything
off is a RunFileError (a ValueError) with a message.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from pathlib import Path

from ..errors import BnvizError, RunFileError
from .history import History
from .limits import MAX_RUN_MEMORY, MAX_RUN_UNPACKED_BYTES, MAX_ZIP_BYTES
from .npz_reader import DAMAGE

MAX_UNPACKED_BYTES = MAX_RUN_UNPACKED_BYTES
MANIFEST = "bnviz-runs.json"
ALLOWED_FILES = {"run.json", "arrays.npz", "histograms.npz", "scalars.csv", "layers.csv", "config.json",
                 "summary.json"}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,39}")  # starts with a letter or digit: no "." or ".."


def pack_runs(labels: list[str], histories: list[History]) -> bytes:
    """The zip file's bytes for these runs."""
    buffer = io.BytesIO()
    folders = [_folder_name(label, i) for i, label in enumerate(labels)]
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, history in zip(folders, histories, strict=True):
            directory = history.save(Path(tmp) / folder)
            for path in sorted(directory.iterdir()):
                zf.write(path, f"{folder}/{path.name}")
        zf.writestr(MANIFEST, json.dumps({"format": "bnviz-runs", "version": 1, "runs": folders,
                                          "labels": list(labels)}))
    return buffer.getvalue()


def unpack_runs(data: bytes) -> tuple[list[str], list[History]]:
    """Labels and histories from a zip made by `pack_runs`; RunFileError (with a plain message) otherwise."""
    if len(data) > MAX_ZIP_BYTES:
        raise RunFileError(f"the file is {len(data) / 1e6:.0f} MB; the limit is {MAX_ZIP_BYTES / 1e6:.0f} MB")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except DAMAGE:  # not a zip, or a damaged central directory (an unknown version: NotImplementedError, ...)
        raise RunFileError("this is not a bnviz run file (not a zip archive)") from None
    with zf:
        try:
            return _unpack(zf)
        except BnvizError:
            raise
        except (*DAMAGE, RecursionError) as exc:  # Deflate64, a password flag, corrupt deflate/bzip2/LZMA data, ...
            raise RunFileError(f"the run file is damaged or uses a compression that cannot be read "
                               f"({exc.__class__.__name__}): zip it again with ordinary (deflate) compression") \
                from None


def _unpack(zf: zipfile.ZipFile) -> tuple[list[str], list[History]]:
    infos = zf.infolist()
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES or len(infos) > 100:
        raise RunFileError("the zip file is too large once unpacked")
    if any(i.flag_bits & 0x1 for i in infos):
        raise RunFileError("the run file is password-protected: zip it again without a password")
    names = {i.filename for i in infos}
    if MANIFEST not in names:  # a zipped run folder (History.save, bnviz.watch's w.save, `python -m bnviz run`)
        return _unpack_folder(zf, infos)
    try:
        manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
        folders, labels = list(manifest["runs"]), list(manifest["labels"])
    except (KeyError, ValueError, TypeError):
        raise RunFileError(f"this is not a bnviz run file ({MANIFEST} is unreadable)") from None
    if not 1 <= len(folders) <= 4 or len(labels) != len(folders):
        raise RunFileError("the run file lists no runs, or too many")
    if not all(isinstance(f, str) and SAFE_NAME.fullmatch(f) for f in folders + labels) or \
            len(set(folders)) != len(folders):
        raise RunFileError("the run file has unexpected run names")
    expected = {MANIFEST} | {f"{folder}/{name}" for folder in folders for name in ALLOWED_FILES}
    stray = [i.filename for i in infos if i.filename not in expected]
    if stray:
        raise RunFileError(f"unexpected file {stray[0]!r} in the run file")
    return labels, [_load_folder(zf, infos, folder + "/") for folder in folders]


def _unpack_folder(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> tuple[list[str], list[History]]:
    """One run folder zipped as it is: its files at the top of the zip or inside one folder."""
    files = [i for i in infos if not i.is_dir()]
    runs = [i.filename for i in files if i.filename.rsplit("/", 1)[-1] == "run.json"]
    if len(runs) != 1:
        raise RunFileError(f"this is not a bnviz run file (no {MANIFEST}, and not one zipped run folder)")
    folder = runs[0][: -len("run.json")]  # "" or "name/"
    if folder and not SAFE_NAME.fullmatch(folder.rstrip("/")):
        raise RunFileError("the run file has unexpected run names")
    stray = [i.filename for i in files if not i.filename.startswith(folder)
             or i.filename[len(folder):] not in ALLOWED_FILES]
    if stray:
        raise RunFileError(f"unexpected file {stray[0]!r} in the run file")
    history = _load_folder(zf, files, folder)
    label = history.meta.get("label")
    label = label if isinstance(label, str) and SAFE_NAME.fullmatch(label) else folder.rstrip("/") or "run"
    return [label], [history]


def _load_folder(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], prefix: str) -> History:
    """The run whose files are the members named `prefix` + one of ALLOWED_FILES (checked by the caller: no path
    tricks), written to a temporary folder and read by History.load."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp)
        for info in infos:
            if info.filename.startswith(prefix) and not info.is_dir():
                (target / info.filename[len(prefix):]).write_bytes(zf.read(info))
        return History.load(target, max_bytes=MAX_RUN_MEMORY)


def _folder_name(label: str, index: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("_.") or "run"
    return f"{index + 1}_{cleaned}"[:40]
