"""Datasets for bnviz: the built-in image sets as float tensors, the file datasets' loading, and a batch stream.

Built in (no files, no network):
  * ``digits``  - scikit-learn's bundled 8x8 handwritten digits, (N, 1, 8, 8).
  * ``shapes``  - procedurally drawn coloured shapes, (N, 3, 16, 16), with a ``difficulty`` knob.

From files in ``data_dir/<name>/`` (``mnist``, ``fashion-mnist``, ``cifar10``): `bnviz.engine.downloads` verifies,
fetches and parses them; this module turns them into a `Dataset`.

All images are float32 in [0, 1]; labels are int64.

Train/test splits: three datasets, three stratified splits, kept apart on purpose because saved runs and tests
depend on their exact indices: ``digits`` uses scikit-learn's ``train_test_split(stratify=...)`` (seeded),
``shapes`` a deterministic interleave of the classes (`_balanced_test_indices`), and uploaded images
`bnviz.engine.user_images.stratified_split` (a seeded permutation per class, at least one test image per class).
For the same labels and seed they pick different images (even different test counts), so one cannot
replace another without changing every number they produce.
"""

from __future__ import annotations

import functools
import os
import pathlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from .config import BUILTIN_DATASETS
from .downloads import DOWNLOADABLE, fetch_files, read_dataset_files

__all__ = [
    "BatchStream",
    "Dataset",
    "download_dataset",
    "load_dataset",
]

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


def _canonical_name(name: object, allowed: tuple[str, ...] = BUILTIN_DATASETS) -> str:
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
    test_idx = _balanced_test_indices(y, n_test, len(classes))
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


def _balanced_test_indices(y: np.ndarray, n_test: int, n_classes: int) -> np.ndarray:
    """Sorted indices of `n_test` test images taken class by class in turn (each class's first images first), so
    train and test stay balanced: class counts differ by at most one. Deterministic: no seed."""
    n = len(y)
    order = np.argsort(y, kind="stable")
    pos_in_class = np.empty(n, dtype=np.int64)
    counts = np.bincount(y, minlength=n_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos_in_class[order] = np.arange(n) - np.repeat(starts, counts)
    # interleave classes: rank by (position within class, class) and take the first n_test as test
    rank = np.lexsort((y, pos_in_class))
    return np.sort(rank[:n_test])


# ---------------------------------------------------------------------------------------------
# File datasets (bnviz.engine.downloads reads and fetches the files)
# ---------------------------------------------------------------------------------------------


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Make sure every file of a downloadable dataset is in data_dir/<name>/ with the right
    SHA-256, downloading missing or wrong ones. Returns that directory."""
    key = _canonical_name(name)
    if key not in DOWNLOADABLE:
        raise ConfigError(f"dataset {name!r} is built in and needs no download: downloadable are "
                          f"{', '.join(DOWNLOADABLE)}")
    return fetch_files(key, data_dir)


def _load_files(name: str, data_dir: str | os.PathLike | None, download: bool) -> Dataset:
    x_train, y_train, x_test, y_test = read_dataset_files(name, data_dir, download, len(_CLASSES[name]))
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
    """Load a dataset by name (see config.BUILTIN_DATASETS).

    seed          - the train/test split of ``digits`` and the images of ``shapes``; the file
                    datasets keep their official split and ignore it.
    data_dir      - root of the file datasets (default ``downloads.default_data_dir()``); files live in
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
            raise ConfigError(f"Batch size {batch_size} is larger than the {n} training images of {dataset.name!r}: "
                              f"choose a batch size of at most {n} (batch_size)")
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
