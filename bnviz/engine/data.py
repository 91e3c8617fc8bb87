"""Datasets for bnviz: small image sets as float tensors, plus a deterministic batch stream.

Built in (no files, no network):
  * ``digits``  - scikit-learn's bundled 8x8 handwritten digits, (N, 1, 8, 8).
  * ``shapes``  - procedurally drawn coloured shapes, (N, 3, 16, 16), with a ``difficulty`` knob.

From files in ``data_dir/<name>/`` (fetched only when asked, e.g. ``python -m bnviz download mnist``):
  * ``mnist``, ``fashion-mnist`` - the four gzipped IDX files, parsed with numpy.
  * ``cifar10``                  - the *binary* archive ``cifar-10-binary.tar.gz``, read with tarfile
                                    and numpy (never the pickle version).

Every file is checked against the SHA-256 table ``SHA256`` before it is used. Downloads go to a
temporary ``.part`` file in the target directory, are hashed while streaming, and are renamed into
place (``os.replace``) only when the hash matches, so a cut-off or wrong download is never used.

All images are float32 in [0, 1]; labels are int64.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import logging
import os
import pathlib
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable

__all__ = [
    "DATASETS",
    "DOWNLOADABLE",
    "FILES",
    "MIRRORS",
    "SHA256",
    "BatchStream",
    "Dataset",
    "default_data_dir",
    "download_dataset",
    "load_dataset",
    "parse_cifar_records",
    "parse_idx",
    "read_cifar_archive",
    "read_idx_gz",
]

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")
DOWNLOADABLE: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")

# ---------------------------------------------------------------------------------------------
# File tables. Tests monkeypatch SHA256 (and MIRRORS) - always read them at call time.
# ---------------------------------------------------------------------------------------------

_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"

FILES: dict[str, tuple[str, ...]] = {
    "mnist": _IDX_FILES,
    "fashion-mnist": _IDX_FILES,
    "cifar10": (_CIFAR_ARCHIVE,),
}

# SHA-256 of the files as distributed. The upstream pages publish no SHA-256 (LeCun's MNIST page:
# no checksum at all; Fashion-MNIST README and the CIFAR page: MD5 only), so these values were
# cross-checked across several independent public projects that download and verify the same
# files (e.g. the torchvision port in torch.rb, TensorFlow-datasets-style manifests, guild.ai's
# mnist package, gomlx's CIFAR downloader); every source agreed byte for byte.
#   MNIST sizes:         9,912,422 / 28,881 / 1,648,877 / 4,542 bytes
#   Fashion-MNIST sizes: 26,421,880 / 29,515 / 4,422,102 / 5,148 bytes (MD5 8d4fb7e6..., 25c81989...,
#                        bef4ecab..., bb300cfd... as in the official README)
#   CIFAR-10 binary:     170,052,171 bytes (official MD5 c32a1d4ab5d03f1284b67883e8d87530)
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        _CIFAR_ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    },
}

# Base URLs tried in order; the file name is appended. yann.lecun.com no longer serves MNIST.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

_CLASSES: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(i) for i in range(10)),
    "shapes": ("circle", "square", "triangle", "cross"),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}

SHAPES_TOTAL = 2500  # train + test images for "shapes" (2,000 / 500 at test_fraction=0.2)
SHAPES_SIZE = 16

_CHUNK = 1 << 20
_TIMEOUT_S = 60


# ---------------------------------------------------------------------------------------------
# Dataset container
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train/test tensors: x float32 (N, C, H, W) in [0, 1], y int64 (N,)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    source: dict = field(default_factory=dict)  # user data: file name, SHA-256, ... (see bnviz.engine.uploads)

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != torch.float32 or x.ndim != 4:
                raise ValueError(f"x_{split} must be float32 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(f"y_{split} must be int64 (N,) matching x_{split}, got {y.dtype} {tuple(y.shape)}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train/test image shapes differ: {tuple(self.x_train.shape[1:])} "
                             f"vs {tuple(self.x_test.shape[1:])}")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def height(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def width(self) -> int:
        return int(self.x_train.shape[3])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"input_shape={self.input_shape}, n_classes={self.n_classes})")


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _canonical_name(name: object, allowed: tuple[str, ...] = DATASETS) -> str:
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else None
    if key not in allowed:
        raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(allowed)}")
    return key


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed={seed!r} is not allowed: use an integer in [0, 2**32)")
    return int(seed)


def _check_fraction(test_fraction: object) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0.0 < float(test_fraction) < 1.0:
        raise ConfigError(f"test_fraction={test_fraction!r} is not allowed: use a number strictly between 0 and 1")
    return float(test_fraction)


def _check_difficulty(difficulty: object) -> float:
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)) \
            or not 0.0 <= float(difficulty) <= 1.0:
        raise ConfigError(f"difficulty={difficulty!r} is not allowed: use a number in [0, 1]")
    return float(difficulty)


def _images(arr: np.ndarray, scale: float) -> torch.Tensor:
    """(N, C, H, W) array of raw values -> new float32 tensor divided by `scale` (one copy)."""
    out = np.array(arr, dtype=np.float32, order="C", copy=True)
    out /= np.float32(scale)
    return torch.from_numpy(out)


def _labels(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.int64, order="C", copy=True))


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 bundled digits as read-only uint8 (N, 8, 8) in 0..16 and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    target = bunch.target.astype(np.int64)
    images.setflags(write=False)
    target.setflags(write=False)
    return images, target


def _load_digits(seed: int, test_fraction: float) -> Dataset:
    from sklearn.model_selection import train_test_split

    images, target = _digits_raw()
    idx_train, idx_test = train_test_split(
        np.arange(len(target)), test_size=test_fraction, random_state=seed, stratify=target)
    return Dataset(
        name="digits",
        x_train=_images(images[idx_train][:, None], 16.0),
        y_train=_labels(target[idx_train]),
        x_test=_images(images[idx_test][:, None], 16.0),
        y_test=_labels(target[idx_test]),
        classes=_CLASSES["digits"],
    )


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def _shape_masks(labels: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
                 size: int = SHAPES_SIZE, supersample: int = 2) -> np.ndarray:
    """Anti-aliased coverage in [0, 1], shape (N, size, size), of one shape per image.

    Shape k of `_CLASSES["shapes"]` centred at (cx, cy) pixels (x right, y down) with half-size r.
    Vectorised over all images with a supersampled coordinate grid; no per-pixel Python loops.
    """
    s = supersample
    coords = (np.arange(size * s, dtype=np.float32) + 0.5) / s  # sub-pixel centres in pixel units
    labels = np.asarray(labels)
    out = np.zeros((len(labels), size, size), dtype=np.float32)
    for k in np.unique(labels):
        sel = labels == k
        inv_r = (1.0 / np.asarray(r, dtype=np.float32)[sel])[:, None, None]
        dx = (coords[None, None, :] - np.asarray(cx, dtype=np.float32)[sel][:, None, None]) * inv_r  # (n, 1, W*s)
        dy = (coords[None, :, None] - np.asarray(cy, dtype=np.float32)[sel][:, None, None]) * inv_r  # (n, H*s, 1)
        ax, ay = np.abs(dx), np.abs(dy)
        if k == 0:    # circle
            mask = dx * dx + dy * dy <= 1.0
        elif k == 1:  # square
            mask = (ax <= 0.8) & (ay <= 0.8)
        elif k == 2:  # triangle, apex up
            mask = (dy >= -0.9) & (dy <= 0.8) & (ax <= (dy + 0.9) / 1.7)
        elif k == 3:  # plus-shaped cross
            mask = ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
        else:
            raise ValueError(f"no shape for label {k}")
        n = int(sel.sum())
        out[sel] = mask.astype(np.float32).reshape(n, size, s, size, s).mean(axis=(2, 4))
    return out


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, inputs (N,) in [0, 1], output (N, 3)."""
    n = np.array([5.0, 3.0, 1.0], dtype=np.float32)
    k = (n[None, :] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _generate_shapes(n: int, rng: np.random.Generator, difficulty: float,
                     n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.float32(difficulty)
    size = SHAPES_SIZE
    labels = rng.permutation(np.arange(n) % n_classes)
    # size variation grows with difficulty: r in [5, 6] at d=0, [3, 7] at d=1
    r = rng.uniform(5.0 - 2.0 * d, 6.0 + 1.0 * d, n).astype(np.float32)
    # random position, keeping (almost) the whole shape inside the image
    margin = np.maximum(r * 0.95, 1.0)
    cx = margin + rng.random(n, dtype=np.float32) * np.maximum(size - 2 * margin, 0.0)
    cy = margin + rng.random(n, dtype=np.float32) * np.maximum(size - 2 * margin, 0.0)
    coverage = _shape_masks(labels, cx, cy, r)[:, None]  # (N, 1, H, W)

    # colour overlap: each class has its own hue; with difficulty the hue jitter grows until, at
    # d=1, hues are uniform and colour says nothing about the class. Background brightness range
    # also grows, so foreground/background contrast overlaps.
    class_hue = np.arange(n_classes, dtype=np.float32) / n_classes
    hue = (class_hue[labels] + d * rng.uniform(-0.5, 0.5, n).astype(np.float32)) % 1.0
    sat = rng.uniform(0.6, 1.0, n).astype(np.float32)
    val = rng.uniform(0.75 - 0.35 * d, 1.0, n).astype(np.float32)
    fg = _hsv_to_rgb(hue, sat, val)                                               # (N, 3)
    bg = rng.uniform(0.0, 0.3 + 0.4 * d, (n, 3)).astype(np.float32)               # (N, 3)
    img = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * coverage          # (N, 3, H, W)
    # pixel noise: Gaussian, sigma 0.02 (d=0) .. 0.20 (d=1)
    img += rng.standard_normal(img.shape, dtype=np.float32) * (0.02 + 0.18 * d)
    np.clip(img, 0.0, 1.0, out=img)
    return img, labels.astype(np.int64)


def _load_shapes(seed: int, difficulty: float, test_fraction: float) -> Dataset:
    classes = _CLASSES["shapes"]
    n_test = max(len(classes), round(SHAPES_TOTAL * test_fraction))
    n_train = SHAPES_TOTAL - n_test
    if n_train < len(classes):
        raise ConfigError(f"test_fraction={test_fraction!r} leaves fewer than {len(classes)} training images")
    rng = np.random.default_rng(seed)
    x, y = _generate_shapes(SHAPES_TOTAL, rng, difficulty, len(classes))
    # The labels are a permutation of a balanced list; a second, class-balanced split keeps both
    # train and test balanced (class counts differ by at most one).
    order = np.argsort(y, kind="stable")
    pos_in_class = np.empty(SHAPES_TOTAL, dtype=np.int64)
    counts = np.bincount(y, minlength=len(classes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos_in_class[order] = np.arange(SHAPES_TOTAL) - np.repeat(starts, counts)
    # interleave classes: rank by (position within class, class) and take the first n_test as test
    rank = np.lexsort((y, pos_in_class))
    test_idx = np.sort(rank[:n_test])
    train_mask = np.ones(SHAPES_TOTAL, dtype=bool)
    train_mask[test_idx] = False
    return Dataset(
        name="shapes",
        x_train=torch.from_numpy(np.ascontiguousarray(x[train_mask])),
        y_train=_labels(y[train_mask]),
        x_test=torch.from_numpy(np.ascontiguousarray(x[test_idx])),
        y_test=_labels(y[test_idx]),
        classes=classes,
    )


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary parsing
# ---------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, *, ndim: int | None = None) -> np.ndarray:
    """Parse an (uncompressed) IDX blob; ValueError on a bad magic number or wrong length."""
    if len(data) < 4:
        raise ValueError(f"IDX data too short ({len(data)} bytes) for a header")
    zero0, zero1, code, dims = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or dims == 0:
        raise ValueError(f"bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x}")
    if ndim is not None and dims != ndim:
        raise ValueError(f"IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"IDX data truncated inside the header ({len(data)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"IDX data {kind}: {len(data)} bytes, header {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_gz(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read a gzipped IDX file; ValueError (naming the file) when it is corrupt or truncated."""
    path = pathlib.Path(path)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable gzip file ({exc})") from exc
    try:
        return parse_idx(data, ndim=ndim)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _load_idx_split(folder: pathlib.Path, prefix: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", ndim=3)
    labels = read_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", ndim=1)
    where = folder / f"{prefix}-*"
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{where}: expected unsigned-byte IDX data, got {images.dtype}/{labels.dtype}")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{where}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.max() >= n_classes:
        raise ValueError(f"{where}: label {int(labels.max())} out of range 0..{n_classes - 1}")
    return images, labels


_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"


def parse_cifar_records(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary records (1 label byte + 3072 pixel bytes, R then G then B planes)
    -> uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise ValueError(f"CIFAR batch of {len(data)} bytes is not a whole number of {_CIFAR_RECORD}-byte records")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"CIFAR label {int(labels.max())} out of range 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def read_cifar_archive(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read data_batch_1..5.bin and test_batch.bin from cifar-10-binary.tar.gz without extracting
    to disk. Returns (x_train, y_train, x_test, y_test) with uint8 images."""
    path = pathlib.Path(path)
    wanted = set(_CIFAR_TRAIN) | {_CIFAR_TEST}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    if base in blobs:
                        raise ValueError(f"{path}: {base} appears twice in the archive")
                    fh = tar.extractfile(member)
                    if fh is None:
                        raise ValueError(f"{path}: cannot read {member.name} from the archive")
                    blobs[base] = fh.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable tar.gz archive ({exc})") from exc
    missing = sorted(wanted - set(blobs))
    if missing:
        raise ValueError(f"{path}: archive lacks {', '.join(missing)} (is it the binary version?)")
    try:
        train = [parse_cifar_records(blobs[name]) for name in _CIFAR_TRAIN]
        x_test, y_test = parse_cifar_records(blobs[_CIFAR_TEST])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------------------------
# Files on disk: locate, verify, download
# ---------------------------------------------------------------------------------------------


def default_data_dir() -> pathlib.Path:
    """$BNVIZ_DATA_DIR if set (and non-empty), else ~/.cache/bnviz."""
    env = os.environ.get("BNVIZ_DATA_DIR", "").strip()
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "bnviz"


def _dataset_dir(name: str, data_dir: str | os.PathLike | None) -> pathlib.Path:
    root = default_data_dir() if data_dir is None else pathlib.Path(data_dir).expanduser()
    return root / name


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_hash(name: str, filename: str) -> str:
    expected = SHA256.get(name, {}).get(filename)
    if not expected:
        raise DatasetUnavailable(f"{name}: no SHA-256 is known for {filename}, refusing to use it")
    return expected.lower()


def _how_to_get(name: str, folder: pathlib.Path) -> str:
    return f"run `python -m bnviz download {name}` or place the files in {folder}"


def _check_files(name: str, folder: pathlib.Path) -> tuple[list[str], list[str]]:
    """Return (missing, bad) file names; bad = present but the SHA-256 does not match."""
    missing, bad = [], []
    for filename in FILES[name]:
        path = folder / filename
        if not path.is_file():
            missing.append(filename)
        elif _sha256_file(path) != _expected_hash(name, filename):
            bad.append(filename)
    return missing, bad


def _download_file(name: str, filename: str, folder: pathlib.Path) -> pathlib.Path:
    """Fetch one file into `folder` via a .part file; rename into place only if the hash matches."""
    expected = _expected_hash(name, filename)
    target = folder / filename
    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    offline = True
    for base in MIRRORS.get(name, ()):
        url = base + filename
        fd, part_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
        part = pathlib.Path(part_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
            got = h.hexdigest()
            if got != expected:
                offline = False
                errors.append(f"{url}: SHA-256 {got[:12]}... != expected {expected[:12]}... (cut off or wrong file)")
                continue
            os.replace(part, target)
            log.info("downloaded %s -> %s", url, target)
            return target
        except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, resets, SSL
            network = isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError))
            if isinstance(exc, urllib.error.HTTPError) or not network:
                offline = False  # the server answered (e.g. 404), or a local error such as a full disk
            errors.append(f"{url}: {exc.reason if type(exc) is urllib.error.URLError else exc}")
        finally:
            part.unlink(missing_ok=True)  # after a successful os.replace the .part name is gone
    hint = " (offline?)" if offline else ""
    detail = "; ".join(errors) if errors else "no mirror configured"
    raise DatasetUnavailable(f"{name}: could not download {filename}{hint}: {detail}; "
                             f"place the file in {folder} by hand")


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Make sure every file of a downloadable dataset is in data_dir/<name>/ with the right
    SHA-256, downloading missing or wrong ones. Returns that directory."""
    key = _canonical_name(name, DATASETS)
    if key not in DOWNLOADABLE:
        raise ConfigError(f"dataset {name!r} is built in and needs no download: downloadable are "
                         f"{', '.join(DOWNLOADABLE)}")
    folder = _dataset_dir(key, data_dir)
    missing, bad = _check_files(key, folder)
    for filename in missing + bad:
        _download_file(key, filename, folder)
    return folder


def _require_files(name: str, folder: pathlib.Path, download: bool) -> None:
    if download:
        download_dataset(name, folder.parent)
        return
    missing, bad = _check_files(name, folder)
    if missing:
        raise DatasetUnavailable(f"{name}: missing {', '.join(missing)} in {folder}; {_how_to_get(name, folder)}")
    if bad:
        raise DatasetUnavailable(f"{name}: SHA-256 mismatch for {', '.join(bad)} in {folder} (corrupt or wrong "
                                 f"file); delete it and {_how_to_get(name, folder)}")


@functools.lru_cache(maxsize=2)
def _read_raw(name: str, folder: pathlib.Path, signature: tuple) -> tuple[np.ndarray, ...]:
    """Parsed uint8 arrays, cached per (dataset, folder, file sizes/mtimes/expected hashes).
    Only called after the files were verified."""
    del signature  # part of the cache key only
    if name == "cifar10":
        arrays = read_cifar_archive(folder / _CIFAR_ARCHIVE)
    else:
        n_classes = len(_CLASSES[name])
        arrays = (*_load_idx_split(folder, "train", n_classes), *_load_idx_split(folder, "t10k", n_classes))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _load_files(name: str, data_dir: str | os.PathLike | None, download: bool) -> Dataset:
    folder = _dataset_dir(name, data_dir)
    _require_files(name, folder, download)
    signature = tuple(
        (f, (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns, _expected_hash(name, f))
        for f in FILES[name]
    )
    try:
        x_train, y_train, x_test, y_test = _read_raw(name, folder.resolve(), signature)
    except ValueError as exc:
        raise DatasetUnavailable(f"{name}: unreadable data ({exc}); delete the files and "
                                 f"{_how_to_get(name, folder)}") from exc
    if x_train.ndim == 3:  # IDX: (N, 28, 28) -> (N, 1, 28, 28)
        x_train, x_test = x_train[:, None], x_test[:, None]
    return Dataset(
        name=name,
        x_train=_images(x_train, 255.0),
        y_train=_labels(y_train),
        x_test=_images(x_test, 255.0),
        y_test=_labels(y_test),
        classes=_CLASSES[name],
    )


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def load_dataset(name: str, seed: int = 0, *, data_dir: str | os.PathLike | None = None,
                 download: bool = False, difficulty: float = 0.5, test_fraction: float = 0.2) -> Dataset:
    """Load a dataset by name (see DATASETS).

    seed          - the train/test split of ``digits`` and the images of ``shapes``; the file
                    datasets keep their official split and ignore it.
    data_dir      - root of the file datasets (default ``default_data_dir()``); files live in
                    ``data_dir/<name>/``.
    download      - fetch missing/wrong files of a downloadable dataset (otherwise
                    DatasetUnavailable says how to get them).
    difficulty    - ``shapes`` only, in [0, 1]: noise, size variation and colour overlap.
    test_fraction - ``digits`` and ``shapes`` only, in (0, 1).
    """
    key = _canonical_name(name)
    seed = _check_seed(seed)
    test_fraction = _check_fraction(test_fraction)
    difficulty = _check_difficulty(difficulty)
    if key == "digits":
        return _load_digits(seed, test_fraction)
    if key == "shapes":
        return _load_shapes(seed, difficulty, test_fraction)
    return _load_files(key, data_dir, bool(download))


# ---------------------------------------------------------------------------------------------
# Mini-batches
# ---------------------------------------------------------------------------------------------


class BatchStream:
    """Deterministic infinite stream of training mini-batches.

    Each epoch is a fresh permutation from ``numpy.random.Generator(PCG64(seed))``; every batch has
    exactly ``batch_size`` rows, and an epoch's tail shorter than that is dropped.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        n = int(dataset.x_train.shape[0])
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is not allowed: use a positive integer")
        if batch_size > n:
            raise ConfigError(f"batch_size={batch_size} is larger than the {n} training images of {dataset.name!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = _check_seed(seed)
        self.steps_per_epoch = n // self.batch_size
        self.epoch = 0  # number of epochs started so far
        self._rng = np.random.default_rng(self.seed)
        self._order = np.empty(0, dtype=np.int64)
        self._pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos + self.batch_size > len(self._order):
            self._order = self._rng.permutation(int(self.dataset.x_train.shape[0]))
            self._pos = 0
            self.epoch += 1
        idx = torch.from_numpy(self._order[self._pos:self._pos + self.batch_size])
        self._pos += self.batch_size
        return self.dataset.x_train[idx], self.dataset.y_train[idx]

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.next()
