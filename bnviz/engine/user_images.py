"""A user's image set as read from their files (`UserImages`), its stratified split, and the limits and checks every
upload format shares (bnviz.engine.uploads reads the formats).

The limits are read at call time as attributes of this module (tests lower them with monkeypatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UserDataError
from .config import UPLOAD_PREFIX
from .data import Dataset
from .limits import (  # noqa: F401 - the limits every format shares, read as attributes of this module
    AUTO_SIZE_CAP,
    MAX_CLASS_NAME,
    MAX_CLASSES,
    MAX_CSV_COLUMNS,
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGES,
    MAX_LABEL,
    MAX_SOURCE_PIXELS,
    MAX_UNPACKED_BYTES,
    MAX_VALUES,
    SIZE_RANGE,
)


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
        return {name: int(n) for name, n in zip(self.classes, per_class, strict=True)}

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


def check_classes(name: str, classes: tuple[str, ...]) -> None:
    """At least two classes, at most MAX_CLASSES."""
    if not classes:
        raise UserDataError(f"{name}: no classes found; put the images in one folder per class "
                            "(cats/1.png, dogs/1.png, ...)")
    if len(classes) == 1:
        raise UserDataError(f"{name}: only one class ({classes[0]!r}); a classifier needs at least two")
    if len(classes) > MAX_CLASSES:
        raise UserDataError(f"{name}: {len(classes):,} classes; the limit is {MAX_CLASSES}")
    long = [c for c in classes if len(c) > MAX_CLASS_NAME]
    if long:
        raise UserDataError(f"{name}: a class name has {len(long[0]):,} characters; the limit is {MAX_CLASS_NAME}")
    seen = set()
    for c in classes:
        if c in seen:
            raise UserDataError(f"{name}: the class name {c!r} appears twice; every class needs its own name")
        seen.add(c)


def check_values(name: str, n: int, channels: int, size: int) -> None:
    """The pixel values of `n` images after resizing fit MAX_VALUES."""
    values = n * channels * size * size
    if values > MAX_VALUES:
        raise UserDataError(f"{name}: {n:,} images of {channels}x{size}x{size} are {values:,} pixel values; the "
                            f"limit is {MAX_VALUES:,}: choose a smaller image size or send fewer images")


def make_user_images(name: str, digest: str, rgb: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                     found: int, failures: list[str], notes: list[str]) -> UserImages:
    """The image set every format ends in: colour decision, per-class checks, summary notes. `rgb` is (N, S, S, 3)
    uint8; `found` counts the images tried, `failures` says why each skipped one could not be read."""
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        why = " readable" if failures else ""
        raise UserDataError(f"{name}: class {empty[0]!r} has no{why} images; add some or remove the class")
    gray = bool(np.all(rgb[..., :1] == rgb[..., 1:]))
    images = np.ascontiguousarray((rgb[..., :1] if gray else rgb).transpose(0, 3, 1, 2))  # (N, C, S, S)
    check_values(name, len(images), images.shape[1], images.shape[-1])
    if failures:
        notes = [f"{len(failures):,} of {found:,} images could not be read and were skipped "
                 f"(e.g. {failures[0]}).", *notes]
    if counts.max() < 2:
        raise UserDataError(f"{name}: every class has a single image, which leaves nothing to test on; add a "
                            "second image to at least one class")
    single = [c for c, n in zip(classes, counts, strict=True) if n == 1]
    if single:
        notes.append(f"Class {single[0]!r} has a single image: it is used for training only.")
    return UserImages(name, digest, images, labels, classes, skipped=len(failures), notes=notes)
