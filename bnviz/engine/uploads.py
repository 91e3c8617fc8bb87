"""Your own labelled images as a bnviz `Dataset`: a zip or folder of one folder per class, an NPZ, or a CSV.

Formats (the first three are read in memory; nothing is ever extracted to disk, nothing is unpickled):
  * zip of class folders   ``cats/1.png, dogs/7.jpg, ...`` (PNG or JPEG), optionally inside one top folder
                           (``animals/cats/1.png``). Other files are ignored and counted; hidden files and
                           ``__MACOSX`` are ignored silently.
  * a directory            of the same shape (command line).
  * NPZ                    ``x``: (N, H, W) or (N, H, W, C) with C = 1 or 3 (channels first also accepted);
                           ``y``: whole-number labels; optional ``classes``: the class names, label k -> classes[k].
                           Only these three arrays, checked from their headers before any data is read.
  * CSV                    a header with a ``label`` column (whole numbers); every other column is one pixel of a
                           square *grayscale* image (784 columns -> 28x28), row-major; at most 64x64 + 1
                           columns, checked on the first line before the file is parsed.
  * Class names            at most 64 characters each, at most 100 classes, no name twice.

Choices, written down:
  * Size: every image becomes ``size`` x ``size`` (4 to 64). ``size=None`` (auto) takes the most common image
    side (the longer one), at least 4 and at most 32 so that live charts stay fluid; non-square images are
    stretched. 16-bit grayscale PNGs are scaled to 0..255 (value / 257).
  * Colour: images are decoded as RGB (transparent pixels over white); if every image has R = G = B the set
    is grayscale (1 channel), otherwise RGB (3 channels).
  * Pixel values: integers are 0..255; floats in [0, 1] are scaled by 255; any other range is rescaled
    linearly from its minimum and maximum (and the summary says so). Stored as uint8; training sees float32
    in [0, 1], like the built-in datasets.
  * Corrupt or unreadable images are skipped and counted; a class left with no image is an error.
  * Split: stratified by class with a seed, ``test_fraction`` (default 0.2) of each class, at least one test
    and one training image per class when the class has two or more.
  * Naming: the app refers to an upload as ``upload:<first 12 hex digits of the file's SHA-256>``; the
    dataset's ``source`` (file name, SHA-256, size) is saved in every run's metadata.
Every problem is a `bnviz.errors.UserDataError` (a ValueError) with a one-line message saying what to change.

This module reads a path or an upload and picks the format; `upload_archives` reads class folders, `upload_arrays`
NPZ and CSV, and `user_images` holds the result (`UserImages`), its split and the shared limits.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import UserDataError
from . import files, user_images
from .config import BUILTIN_DATASETS, UPLOAD_PREFIX
from .data import Dataset
from .upload_archives import directory_entries, entries_hash, images_from_entries, open_zip, zip_entries
from .upload_arrays import images_from_arrays, read_csv, read_npz
from .user_images import UserImages


def read_user_data(path: str | os.PathLike, size: int | None = None) -> UserImages:
    """A directory of class folders, or a .zip, .npz or .csv file on disk."""
    path, size = Path(path).expanduser(), _check_size(size)
    if path.is_dir():
        entries = directory_entries(path)
        return images_from_entries(path.resolve().name, entries_hash(entries), entries, size)
    if not path.exists():
        raise UserDataError(f"{path}: no such file or folder")
    return parse_upload(path.name, files.read_regular(path, user_images.MAX_FILE_BYTES, UserDataError), size)


def parse_upload(name: str, data: bytes, size: int | None = None) -> UserImages:
    """An uploaded file's bytes; the format comes from the name's ending (.zip, .npz or .csv)."""
    if len(data) > user_images.MAX_FILE_BYTES:
        raise UserDataError(f"{name} is {len(data) / 1e6:,.0f} MB; the limit is "
                            f"{user_images.MAX_FILE_BYTES / 1e6:,.0f} MB")
    size = _check_size(size)
    digest = hashlib.sha256(data).hexdigest()
    kind = Path(name).suffix.lower()
    if kind == ".zip":
        with open_zip(name, data) as zf:
            return images_from_entries(name, digest, zip_entries(zf), size)
    if kind == ".npz":
        x, y, classes = read_npz(name, data)
        return images_from_arrays(name, digest, x, y, classes, size)
    if kind == ".csv":
        x, y = read_csv(name, data)
        return images_from_arrays(name, digest, x, y, None, size)
    raise UserDataError(f"{name}: use a .zip of class folders, an .npz or a .csv file")


def load_for_config(name: str, seed: int) -> Dataset:
    """The Dataset a RunConfig's `dataset` names when it is not built in: a path is read here (command line,
    Python); an app upload cannot be found by name, the app supplies it."""
    if name.startswith(UPLOAD_PREFIX):
        raise UserDataError(f"the uploaded image set {name} is not available here: upload it again")
    return read_user_data(name).to_dataset(seed)


def is_user_data(name: str) -> bool:
    """True for a path or an upload reference, False for a built-in dataset name."""
    return name not in BUILTIN_DATASETS


def _check_size(size: int | None) -> int | None:
    lo, hi = user_images.SIZE_RANGE
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi):
        raise UserDataError(f"image size {size!r} is not allowed: use a whole number from {lo} to {hi}, or auto")
    return size
