"""Your own labelled images as a bnviz `Dataset`: a zip or folder of one folder per class, an NPZ, or a CSV.

Formats (the first three are read in memory; nothing is ever extracted to disk, nothing is unpickled):
  * zip of class folders   ``cats/1.png, dogs/7.jpg, ...`` (PNG or JPEG), optionally inside one top folder
                           (``animals/cats/1.png``). Other files are ignored and counted; hidden files and
                           ``__MACOSX`` are ignored silently.
  * a directory            of the same shape (command line).
  * NPZ                    ``x``: (N, H, W) or (N, H, W, C) with C = 1 or 3 (channels first also accepted);
                           ``y``: whole-number labels; optional ``classes``: the class names, label k -> classes[k].
  * CSV                    a header with a ``label`` column (whole numbers); every other column is one pixel of a
                           square *grayscale* image (784 columns -> 28x28), row-major.

Choices, written down:
  * Size: every image becomes ``size`` x ``size`` (4 to 64). ``size=None`` (auto) takes the most common image
    side (the longer one), at most 32 so that live charts stay fluid; non-square images are stretched.
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
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserDataError
from .config import BUILTIN_DATASETS, UPLOAD_PREFIX
from .data import Dataset

MAX_FILE_BYTES = 100 * 1024 * 1024  # an uploaded file; .streamlit/config.toml's maxUploadSize matches
MAX_UNPACKED_BYTES = 400 * 1024 * 1024  # all members of a zip (or files of a folder) together
MAX_IMAGES = 20_000
MAX_CLASSES = 100
MAX_IMAGE_PIXELS = 4096 * 4096  # one source image; larger ones are skipped (decompression bombs)
MAX_SOURCE_PIXELS = 500_000_000  # all source images together: bounds the decoding time of one upload
MAX_VALUES = 32_000_000  # images x channels x size x size after resizing: 128 MB as float32
SIZE_RANGE = (4, 64)
AUTO_SIZE_CAP = 32  # auto size never goes above this: a 64x64 CNN step costs ~16x a 16x16 one
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class UserImages:
    """A parsed image set before its train/test split: uint8 images (N, C, S, S) and int64 labels (N,)."""

    name: str  # what the user calls it: the file or folder name
    sha256: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    skipped: int = 0  # images that could not be read
    notes: list[str] = field(default_factory=list)  # what was done to the images, one sentence each

    @property
    def ref(self) -> str:
        """How a RunConfig names this set in the app: upload:<12 hex digits>."""
        return UPLOAD_PREFIX + self.sha256[:12]

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, per_class)}

    def summary(self) -> str:
        """One paragraph: classes, counts, size, colour, and everything that was skipped or changed."""
        counts = ", ".join(f"{name} {n:,}" for name, n in self.counts().items())
        colour = "grayscale" if self.channels == 1 else "RGB"
        return " ".join([f"{len(self.labels):,} images in {len(self.classes)} classes ({counts}),",
                         f"{self.size}x{self.size} {colour}.", *self.notes])

    def train_size(self, test_fraction: float = 0.2) -> int:
        """Training images after the split (the batch size must not be larger)."""
        return len(stratified_split(self.labels, 0, test_fraction)[0])

    def example_grid(self, per_class: int = 8, max_classes: int = 10, tile: int = 40) -> np.ndarray:
        """The first `per_class` images of each class side by side, one row per class (the first `max_classes`),
        enlarged to about `tile` pixels without smoothing and 2-pixel white gaps: RGB uint8 (H, W, 3)."""
        scale = max(1, -(-tile // self.size))  # ceil: small images grow to at least `tile` pixels
        side, gap = self.size * scale, 2
        rows = min(len(self.classes), max_classes)
        grid = np.full((rows * (side + gap), per_class * (side + gap), 3), 255, dtype=np.uint8)
        for row in range(rows):
            for col, index in enumerate(np.flatnonzero(self.labels == row)[:per_class]):
                img = np.repeat(np.repeat(self.images[index], scale, axis=1), scale, axis=2)  # (C, side, side)
                y, x = row * (side + gap), col * (side + gap)
                grid[y:y + side, x:x + side] = img.transpose(1, 2, 0)  # 1 channel broadcasts to 3
        return grid

    def to_dataset(self, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
        """Stratified train/test split (deterministic in `seed`) as float32 tensors in [0, 1]."""
        train, test = stratified_split(self.labels, seed, test_fraction)
        source = {"file": self.name, "sha256": self.sha256, "ref": self.ref, "image_size": self.size,
                  "channels": self.channels, "skipped": self.skipped}
        return Dataset(name=self.name, classes=self.classes, source=source,
                       x_train=_floats(self.images[train]), y_train=torch.from_numpy(self.labels[train]),
                       x_test=_floats(self.images[test]), y_test=torch.from_numpy(self.labels[test]))


def _floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / np.float32(255.0))


def stratified_split(labels: np.ndarray, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test), each shuffled. Per class: round(n * test_fraction) test images, at least one
    and at most n - 1 when n >= 2; a class with a single image is used for training only."""
    if not 0.0 < test_fraction < 1.0:
        raise UserDataError(f"test_fraction={test_fraction} is not allowed: use a number between 0 and 1")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        n_test = min(max(round(n * test_fraction), 1), n - 1) if n >= 2 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------


def read_user_data(path: str | os.PathLike, size: int | None = None) -> UserImages:
    """A directory of class folders, or a .zip, .npz or .csv file on disk."""
    path, size = Path(path).expanduser(), _check_size(size)
    if path.is_dir():
        entries = _directory_entries(path)
        return _from_entries(path.resolve().name, _entries_hash(entries), entries, size)
    if not path.is_file():
        raise UserDataError(f"{path}: no such file or folder")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserDataError(f"{path.name} is {path.stat().st_size / 1e6:,.0f} MB; the limit is "
                            f"{MAX_FILE_BYTES / 1e6:,.0f} MB")
    return parse_upload(path.name, path.read_bytes(), size)


def parse_upload(name: str, data: bytes, size: int | None = None) -> UserImages:
    """An uploaded file's bytes; the format comes from the name's ending (.zip, .npz or .csv)."""
    if len(data) > MAX_FILE_BYTES:
        raise UserDataError(f"{name} is {len(data) / 1e6:,.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:,.0f} MB")
    size = _check_size(size)
    digest = hashlib.sha256(data).hexdigest()
    kind = Path(name).suffix.lower()
    if kind == ".zip":
        with _open_zip(name, data) as zf:
            return _from_entries(name, digest, _zip_entries(zf), size)
    if kind == ".npz":
        x, y, classes = _read_npz(name, data)
        return _from_arrays(name, digest, x, y, classes, size)
    if kind == ".csv":
        x, y = _read_csv(name, data)
        return _from_arrays(name, digest, x, y, None, size)
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
    lo, hi = SIZE_RANGE
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi):
        raise UserDataError(f"image size {size!r} is not allowed: use a whole number from {lo} to {hi}, or auto")
    return size


# ---------------------------------------------------------------------------------------------------------------
# Class folders: zip members or files on disk, read in memory
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    parts: tuple[str, ...]
    is_dir: bool
    size: int
    read: Callable[[], bytes]


def _open_zip(name: str, data: bytes) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError):
        raise UserDataError(f"{name} is not a readable zip file") from None
    infos = zf.infolist()
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:  # zipfile never reads more than the declared size
        raise UserDataError(f"{name} unpacks to more than {MAX_UNPACKED_BYTES / 1e6:,.0f} MB: send fewer or "
                            "smaller images")
    if len(infos) > 2 * MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(infos):,} files; the limit is {MAX_IMAGES:,} images")
    for info in infos:
        member = info.filename
        if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member) or \
                ".." in re.split(r"[/\\]", member):
            raise UserDataError(f"{name} contains an unsafe file name {member!r} (absolute or with '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserDataError(f"{name} contains a symbolic link {member!r}: zip the images themselves")
        if info.flag_bits & 0x1:
            raise UserDataError(f"{name} is password-protected: zip the images without a password")
    return zf


def _zip_entries(zf: zipfile.ZipFile) -> list[_Entry]:
    return [_Entry(tuple(p for p in re.split(r"[/\\]", info.filename) if p), info.is_dir(), info.file_size,
                   lambda info=info: zf.read(info)) for info in zf.infolist()]


def _directory_entries(root: Path) -> list[_Entry]:
    entries, total = [], 0
    for folder, dirs, files in os.walk(root):  # does not follow symbolic links to folders
        rel = Path(folder).relative_to(root).parts
        entries += [_Entry((*rel, d), True, 0, bytes) for d in dirs]
        for f in files:
            path = Path(folder) / f
            try:
                size = path.stat().st_size
            except OSError:  # e.g. a broken link: reading it fails later, and an image is counted as skipped
                size = 0
            entries.append(_Entry((*rel, f), False, size, path.read_bytes))
            total += size
            if total > MAX_UNPACKED_BYTES or len(entries) > 2 * MAX_IMAGES:
                raise UserDataError(f"{root} holds more than {MAX_UNPACKED_BYTES / 1e6:,.0f} MB or "
                                    f"{MAX_IMAGES:,} images: use a smaller folder")
    return entries


def _entries_hash(entries: list[_Entry]) -> str:
    """SHA-256 over the files' relative paths and contents, in sorted order: a folder's fingerprint."""
    h = hashlib.sha256()
    for e in sorted((e for e in entries if not e.is_dir), key=lambda e: e.parts):
        h.update("/".join(e.parts).encode() + b"\0" + str(e.size).encode() + b"\0")
        h.update(e.read())
    return h.hexdigest()


def _junk(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1] in ("Thumbs.db", "desktop.ini")


def _from_entries(name: str, digest: str, entries: list[_Entry], size: int | None) -> UserImages:
    entries = [e for e in entries if e.parts and not _junk(e.parts)]
    images = [e for e in entries if not e.is_dir and e.parts[-1].lower().endswith(IMAGE_SUFFIXES)]
    ignored = sum(1 for e in entries if not e.is_dir) - len(images)
    if len(images) > MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(images):,} images; the limit is {MAX_IMAGES:,}")
    tops = {e.parts[0] for e in images}
    wrapped = len(tops) == 1 and all(len(e.parts) == 3 for e in images)
    depth = 1 if wrapped else 0  # the parts before the class folder
    for e in images:
        if len(e.parts) < depth + 2:
            raise UserDataError(f"{name}: '{'/'.join(e.parts)}' is not inside a class folder; put the images in "
                                "one folder per class (cats/1.png, dogs/1.png, ...)")
        if len(e.parts) > depth + 2:
            raise UserDataError(f"{name}: '{'/'.join(e.parts)}' is too deep; use one folder per class with the "
                                "images directly inside (cats/1.png, dogs/1.png, ...)")
    inside = [e for e in entries if e.parts[:depth] == tuple(tops)[:depth] and len(e.parts) > depth]
    folders = {e.parts[depth] for e in inside if e.is_dir or len(e.parts) > depth + 1}
    classes = tuple(sorted(folders, key=_natural))
    _check_classes(name, classes)
    labels = np.array([classes.index(e.parts[depth]) for e in images], dtype=np.int64)
    pixels, kept, failures = _decode_all(name, images, size)
    notes = [] if not ignored else [f"{ignored:,} file(s) that are not PNG or JPEG were ignored."]
    return _finish(name, digest, pixels, labels[kept], classes, len(images), failures, notes)


def _natural(text: str) -> tuple:
    """Sort key: "2" before "10"."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


def _check_classes(name: str, classes: tuple[str, ...]) -> None:
    if not classes:
        raise UserDataError(f"{name}: no classes found; put the images in one folder per class "
                            "(cats/1.png, dogs/1.png, ...)")
    if len(classes) == 1:
        raise UserDataError(f"{name}: only one class ({classes[0]!r}); a classifier needs at least two")
    if len(classes) > MAX_CLASSES:
        raise UserDataError(f"{name}: {len(classes):,} classes; the limit is {MAX_CLASSES}")


def _decode_all(name: str, entries: list[_Entry], size: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two passes: read every header (sizes decide the auto size and the decoding budget), then decode.
    Returns RGB uint8 (n, S, S, 3), the indices of the images kept, and one reason per skipped image."""
    from PIL import Image

    readable, sides, failures, total = [], [], [], 0
    for i, e in enumerate(entries):
        where = "/".join(e.parts)
        try:
            blob = e.read()
            with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as im:
                w, h = im.size
        except NotImplementedError:  # e.g. Deflate64, written by some Windows zip tools
            raise UserDataError(f"{name} uses a compression method that cannot be read; zip it again with "
                                "ordinary (deflate) compression") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, Image.DecompressionBombError):
            failures.append(f"{where} is not a readable PNG or JPEG")
            continue
        if w * h > MAX_IMAGE_PIXELS:
            failures.append(f"{where} is {w}x{h}; the limit is {MAX_IMAGE_PIXELS:,} pixels per image")
            continue
        total += w * h
        if total > MAX_SOURCE_PIXELS:
            raise UserDataError(f"{name}: the images add up to more than {MAX_SOURCE_PIXELS / 1e6:,.0f} million "
                                "pixels; shrink them or send fewer")
        readable.append(i)
        sides.append(max(w, h))
    target = size or _auto_size(sides)
    _check_values(name, len(readable), 1, target)
    kept, pixels = [], []
    for i in readable:  # read again rather than hold every file's bytes at once
        try:
            pixels.append(_decode(entries[i].read(), target))
            kept.append(i)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, Image.DecompressionBombError):
            failures.append(f"{'/'.join(entries[i].parts)} is damaged (cannot be decoded)")
    stack = np.stack(pixels) if pixels else np.zeros((0, target, target, 3), np.uint8)
    return stack, np.array(kept, dtype=np.int64), failures


def _decode(blob: bytes, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as im:
        im.draft(im.mode, (size, size))  # JPEG: decode at a reduced scale, much faster for photos
        im = ImageOps.exif_transpose(im).convert("RGBA")  # phone photos: upright as they were taken
        flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
        flat.alpha_composite(im)  # transparent pixels over white
        rgb = flat.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    return np.asarray(rgb, dtype=np.uint8)


def _auto_size(sides: list[int]) -> int:
    if not sides:
        return AUTO_SIZE_CAP
    common = collections.Counter(sides).most_common(1)[0][0]
    return int(min(max(common, SIZE_RANGE[0]), AUTO_SIZE_CAP))


def _check_values(name: str, n: int, channels: int, size: int) -> None:
    values = n * channels * size * size
    if values > MAX_VALUES:
        raise UserDataError(f"{name}: {n:,} images of {channels}x{size}x{size} are {values:,} pixel values; the "
                            f"limit is {MAX_VALUES:,}: choose a smaller image size or send fewer images")


def _finish(name: str, digest: str, rgb: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], found: int,
            failures: list[str], notes: list[str]) -> UserImages:
    """Colour decision, per-class checks, summary notes. `rgb` is (N, S, S, 3) uint8."""
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        why = " readable" if failures else ""
        raise UserDataError(f"{name}: class {empty[0]!r} has no{why} images; add some or remove the class")
    gray = bool(np.all(rgb[..., :1] == rgb[..., 1:]))
    images = np.ascontiguousarray((rgb[..., :1] if gray else rgb).transpose(0, 3, 1, 2))  # (N, C, S, S)
    _check_values(name, len(images), images.shape[1], images.shape[-1])
    if failures:
        notes = [f"{len(failures):,} of {found:,} images could not be read and were skipped "
                 f"(e.g. {failures[0]}).", *notes]
    single = [c for c, n in zip(classes, counts) if n == 1]
    if single:
        notes.append(f"Class {single[0]!r} has a single image: it is used for training only.")
    return UserImages(name, digest, images, labels, classes, skipped=len(failures), notes=notes)


# ---------------------------------------------------------------------------------------------------------------
# Arrays: NPZ and CSV
# ---------------------------------------------------------------------------------------------------------------


def _read_npz(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    with _open_zip(name, data):  # the same size, name and link checks as an image zip
        pass
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise UserDataError(f"{name} has no array {missing[0]!r}: save it with "
                                    "np.savez(path, x=images, y=labels)")
            x, y = npz["x"], npz["y"]
            classes = npz["classes"] if "classes" in npz.files else None
    except UserDataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise UserDataError(f"{name} holds Python objects (pickled arrays), which are never loaded: save "
                                "plain numeric arrays and a string array of class names") from None
        raise UserDataError(f"{name} is not a readable NPZ file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserDataError(f"{name} is not a readable NPZ file ({exc})") from None
    return x, y, classes


def _read_csv(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), nrows=MAX_IMAGES + 1)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserDataError(f"{name} is not a readable CSV file ({str(exc).splitlines()[0]})") from None
    if "label" not in frame.columns:
        raise UserDataError(f"{name} has no 'label' column: the first row must name the columns, one of them "
                            "'label'")
    pixels = frame.drop(columns="label")
    text = [c for c in pixels.columns if not pd.api.types.is_numeric_dtype(pixels[c])]
    if text:
        row = int(pd.to_numeric(pixels[text[0]], errors="coerce").isna().to_numpy().argmax())
        raise UserDataError(f"{name}: column {text[0]!r} holds text ({pixels[text[0]].iloc[row]!r} in data row "
                            f"{row + 1}); every column but 'label' must be a pixel value")
    return pixels.to_numpy(), _csv_labels(name, frame["label"])


def _csv_labels(name: str, column) -> np.ndarray:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column):
        raise UserDataError(f"{name}: the label column holds text (e.g. {column.dropna().iloc[0]!r}); use whole "
                            "numbers 0, 1, 2, ... (or an NPZ with a 'classes' array for names)")
    return column.to_numpy()


def _from_arrays(name: str, digest: str, x: np.ndarray, y: np.ndarray, classes: np.ndarray | None,
                 size: int | None) -> UserImages:
    x = _image_array(name, x)  # (N, H, W, C)
    labels, classes = _array_labels(name, y, classes, len(x))
    notes = []
    _check_classes(name, classes)
    rgb, note = _to_uint8(x)
    if note:
        notes.append(note)
    source = max(x.shape[1], x.shape[2])
    target = size or min(source, AUTO_SIZE_CAP)
    _check_values(name, len(x), rgb.shape[-1], target)
    if (x.shape[1], x.shape[2]) != (target, target):
        notes.append(f"Resized from {x.shape[1]}x{x.shape[2]} to {target}x{target}.")
        rgb = _resize_all(rgb, target)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return _finish(name, digest, rgb, labels, classes, len(x), [], notes)


def _image_array(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "buif":
        raise UserDataError(f"{name}: the images are of type {x.dtype}; use numbers (uint8 0..255 or floats)")
    if x.ndim == 2:  # a CSV: one row of pixels per image, square and grayscale
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1] or side == 0:
            raise UserDataError(f"{name}: {x.shape[1]} pixel columns is not a square image (28x28 needs 784); "
                                "CSV images must be square and grayscale")
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # channels first -> channels last
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise UserDataError(f"{name}: images of shape {x.shape} are not allowed; use (N, H, W) for grayscale or "
                            "(N, H, W, 3) for RGB")
    if len(x) == 0:
        raise UserDataError(f"{name}: no images")
    if len(x) > MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(x):,} or more images; the limit is {MAX_IMAGES:,}")
    if x.shape[1] * x.shape[2] > MAX_IMAGE_PIXELS:
        raise UserDataError(f"{name}: images of {x.shape[1]}x{x.shape[2]} are too large; the limit is "
                            f"{MAX_IMAGE_PIXELS:,} pixels per image")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if x.dtype.kind == "f" else np.zeros(len(x), bool)
    if bad.any():
        raise UserDataError(f"{name}: image {int(bad.argmax()) + 1} has NaN, missing or infinite pixel values")
    return x


def _array_labels(name: str, y: np.ndarray, classes: np.ndarray | None, n: int) -> tuple[np.ndarray, tuple]:
    y = np.asarray(y)
    if y.dtype.kind not in "buif":
        raise UserDataError(f"{name}: the labels are of type {y.dtype}; use whole numbers 0, 1, 2, ... "
                            "(class names go in a separate 'classes' array)")
    if y.shape != (n,):
        raise UserDataError(f"{name}: {n:,} images but labels of shape {y.shape}; need one label per image")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UserDataError(f"{name}: the labels must be whole numbers, found {y[~(y == np.round(y))][:1]}")
    y = y.astype(np.int64)
    if classes is None:
        values = np.unique(y)
        return np.searchsorted(values, y).astype(np.int64), tuple(str(v) for v in values)
    if classes.dtype.kind not in "US" or classes.ndim != 1:
        raise UserDataError(f"{name}: 'classes' must be a 1-D array of names, got {classes.dtype} {classes.shape}")
    names = tuple(str(c.decode() if isinstance(c, bytes) else c) for c in classes.tolist())
    if y.min() < 0 or y.max() >= len(names):
        raise UserDataError(f"{name}: label {int(y.max() if y.max() >= len(names) else y.min())} has no class "
                            f"name; labels must be 0..{len(names) - 1} for the {len(names)} names in 'classes'")
    return y, names


def _to_uint8(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    if x.dtype.kind == "b":
        x = x.astype(np.uint8) * 255
    lo, hi = float(x.min()), float(x.max())
    if x.dtype.kind == "f" and lo >= 0 and hi <= 1:
        return np.round(x * 255).astype(np.uint8), None
    if lo >= 0 and hi <= 255:
        return np.round(x).astype(np.uint8), None
    span = hi - lo if hi > lo else 1.0
    scaled = np.round((x.astype(np.float64) - lo) / span * 255).astype(np.uint8)
    return scaled, f"Pixel values from {lo:g} to {hi:g} were rescaled to 0..255."


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        mode_img = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        resized = np.asarray(mode_img.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized[..., None] if resized.ndim == 2 else resized
    return out
