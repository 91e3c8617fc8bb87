"""Tests for bnviz.engine.data and bnviz.engine.downloads. No test touches the network: urlopen is replaced in
every test, and the file datasets are exercised with tiny IDX / CIFAR files generated here."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import math
import pathlib
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from bnviz.engine import data, downloads
from bnviz.engine.config import BUILTIN_DATASETS
from bnviz.engine.data import BatchStream, Dataset, load_dataset
from bnviz.errors import BnvizError, DatasetUnavailable

# Class counts of scikit-learn's bundled digits (1,797 images), from its documentation/data file.
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
# First row of the first bundled digit (a "0"), raw 0..16 values.
DIGITS_FIRST_ROW = [0, 0, 5, 13, 9, 1, 0, 0]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Any unexpected download attempt fails loudly; the default data dir is a temp dir."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "default-data"))


# ------------------------------------------------------------------------------------------------
# helpers that build tiny files with known contents
# ------------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """Independent IDX writer (unsigned bytes): 0x0000 08 <ndim> + big-endian dims + data."""
    assert arr.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def make_idx_files(folder: pathlib.Path, n_train: int = 5, n_test: int = 3, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(arr), mtime=0))
    return arrays


def cifar_record(label: int, r: int, g: int, b: int) -> bytes:
    """One CIFAR binary record: label byte, then the 1024 R, 1024 G and 1024 B bytes."""
    return bytes([label]) + bytes([r]) * 1024 + bytes([g]) * 1024 + bytes([b]) * 1024


def make_cifar_archive(path: pathlib.Path, *, drop: str | None = None) -> tuple[list, list]:
    """data_batch_k holds two records (label k-1, k), test_batch three; colours encode position."""
    path.parent.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, payload: bytes) -> None:
            if name.rsplit("/", 1)[-1] == drop:
                return
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

        add("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n")
        for k in range(1, 6):
            recs = [(k - 1, 10 * k, 10 * k + 1, 10 * k + 2), (k, 10 * k + 3, 10 * k + 4, 10 * k + 5)]
            train += recs
            add(f"cifar-10-batches-bin/data_batch_{k}.bin", b"".join(cifar_record(*rec) for rec in recs))
        recs = [(9, 200, 100, 50), (0, 1, 2, 3), (5, 255, 0, 128)]
        test += recs
        add("cifar-10-batches-bin/test_batch.bin", b"".join(cifar_record(*rec) for rec in recs))
    path.write_bytes(buf.getvalue())
    return train, test


def sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trust(monkeypatch, name: str, folder: pathlib.Path) -> None:
    """Point the module's hash table at the hashes of the generated files."""
    monkeypatch.setitem(downloads.SHA256, name, {f: sha(folder / f) for f in downloads.FILES[name]})


class FakeURL:
    """Stands in for urllib.request.urlopen: serves payloads by file name, records calls."""

    def __init__(self, payloads):
        self.payloads = payloads  # file name -> bytes, or a list consumed per call, or an Exception
        self.calls: list[str] = []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        item = self.payloads[url.rsplit("/", 1)[-1]]
        if isinstance(item, list):
            item = item.pop(0)
        if isinstance(item, BaseException):
            raise item
        return io.BytesIO(item)


def leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------------------------------
# names and arguments
# ------------------------------------------------------------------------------------------------


def test_dataset_name_tables():
    assert BUILTIN_DATASETS == ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")
    assert downloads.DOWNLOADABLE == ("mnist", "fashion-mnist", "cifar10")
    assert set(downloads.FILES) == set(downloads.SHA256) == set(downloads.MIRRORS) == set(downloads.DOWNLOADABLE)


@pytest.mark.parametrize("bad", ["nope", "", "mnist2", None, 3])
def test_unknown_name_raises_value_error_listing_names(bad):
    with pytest.raises(ValueError) as exc:
        load_dataset(bad)
    msg = str(exc.value)
    assert repr(bad) in msg
    for name in BUILTIN_DATASETS:
        assert name in msg


def test_download_dataset_rejects_builtin_and_unknown():
    with pytest.raises(ValueError, match="digits"):
        data.download_dataset("digits")
    with pytest.raises(ValueError, match="'imagenet'.*mnist"):
        data.download_dataset("imagenet")


@pytest.mark.parametrize("kwargs", [
    {"seed": -1}, {"seed": 1.5}, {"seed": True}, {"test_fraction": 0.0}, {"test_fraction": 1.0},
    {"difficulty": -0.01}, {"difficulty": 1.01}, {"difficulty": float("nan")},
])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        load_dataset("shapes", **kwargs)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "x"))
    assert downloads.default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("BNVIZ_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert downloads.default_data_dir() == tmp_path / "home" / ".cache" / "bnviz"


# ------------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------------


def test_digits_shapes_dtypes_ranges():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.input_shape == (1, 8, 8) and (ds.channels, ds.height, ds.width) == (1, 8, 8)
    assert ds.n_classes == 10 and ds.classes == tuple("0123456789")
    x = torch.cat([ds.x_train, ds.x_test])
    assert x.min() == 0.0 and x.max() == 1.0
    assert torch.equal(x * 16, (x * 16).round())  # raw pixels are integers 0..16
    y = torch.cat([ds.y_train, ds.y_test])
    assert torch.bincount(y).tolist() == DIGITS_CLASS_COUNTS


def test_digits_split_is_stratified():
    ds = load_dataset("digits", seed=3, test_fraction=0.25)
    test_counts = torch.bincount(ds.y_test, minlength=10).tolist()
    for got, total in zip(test_counts, DIGITS_CLASS_COUNTS, strict=True):
        assert abs(got - 0.25 * total) <= 1
    assert len(ds.y_test) == math.ceil(0.25 * 1797)


def test_digits_contains_known_first_image():
    ds = load_dataset("digits")
    x = torch.cat([ds.x_train, ds.x_test])[:, 0]
    y = torch.cat([ds.y_train, ds.y_test])
    row = torch.tensor(DIGITS_FIRST_ROW, dtype=torch.float32) / 16
    hits = (x[:, 0, :] == row).all(dim=1).nonzero()[:, 0]
    assert len(hits) >= 1 and 0 in y[hits].tolist()


def test_digits_deterministic_per_seed():
    a, b, c = load_dataset("digits", seed=7), load_dataset("digits", seed=7), load_dataset("digits", seed=8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    # the split is a partition: same multiset of images either way
    assert torch.equal(torch.cat([a.x_train, a.x_test]).sum(0), torch.cat([c.x_train, c.x_test]).sum(0))


def test_digits_tensors_are_not_shared_with_cache():
    a = load_dataset("digits", seed=0)
    a.x_train.fill_(5.0)
    b = load_dataset("digits", seed=0)
    assert b.x_train.max() == 1.0


# ------------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------------


@functools.cache
def shapes(difficulty: float = 0.5) -> Dataset:
    """Seed-0 shapes shared by the read-only tests below (generation is ~0.1 s each)."""
    return load_dataset("shapes", seed=0, difficulty=difficulty)


def test_shapes_default_layout_balance_range():
    ds = shapes()
    assert ds.x_train.shape == (2000, 3, 16, 16) and ds.x_test.shape == (500, 3, 16, 16)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.n_classes >= 4 and ds.classes[:4] == ("circle", "square", "triangle", "cross")
    assert torch.bincount(ds.y_train).tolist() == [500] * 4
    assert torch.bincount(ds.y_test).tolist() == [125] * 4
    for x in (ds.x_train, ds.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0 and torch.isfinite(x).all()


def test_shapes_deterministic_per_seed_and_difficulty():
    a = shapes()
    b = load_dataset("shapes", seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, load_dataset("shapes", seed=1).x_train)
    assert not torch.equal(a.x_train, shapes(1.0).x_train)


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_shapes_difficulty_bounds_are_allowed(difficulty):
    ds = shapes(difficulty)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_shapes_noise_grows_with_difficulty():
    def roughness(d):
        x = shapes(d).x_train
        return (x[..., 1:] - x[..., :-1]).abs().median().item()

    easy, mid, hard = roughness(0.0), roughness(0.5), roughness(1.0)
    assert easy < 0.05 < mid < hard


def test_shapes_test_fraction():
    ds = load_dataset("shapes", test_fraction=0.5)
    assert len(ds.y_train) == len(ds.y_test) == 1250


@pytest.mark.parametrize("label, area", [
    (0, math.pi * 6**2),                     # circle, radius 6
    (1, (2 * 0.8 * 6) ** 2),                 # square, half-side 0.8 r
    (2, 0.5 * (2 * 6) * (1.7 * 6)),          # triangle, base 2r, height 1.7r
    (3, 2 * (12 * 3.6) - 3.6**2),            # cross, arms 2r long and 0.6r wide
])
def test_shape_mask_areas_match_geometry(label, area):
    m = data._shape_masks(np.array([label]), np.array([8.0]), np.array([8.0]), np.array([6.0]), supersample=4)
    assert m.shape == (1, 16, 16) and m.min() >= 0 and m.max() <= 1
    assert m.sum() == pytest.approx(area, rel=0.04)


def test_triangle_points_up_and_cross_is_hollow_at_corners():
    tri, cross = data._shape_masks(np.array([2, 3]), np.array([8.0, 8.0]), np.array([8.0, 8.0]), np.array([6.0, 6.0]))
    assert tri[:8].sum() < 0.5 * tri[8:].sum()
    assert cross[8, 8] == 1 and cross[3, 3] == 0 and cross[8, 3] == 1


def _foreground_colour(x: np.ndarray) -> np.ndarray:
    """Mean colour of the 12 pixels farthest from the (median border) background, (N, 3)."""
    border = np.concatenate([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], axis=2)
    bg = np.median(border, axis=2)[:, :, None, None]
    dist = np.linalg.norm(x - bg, axis=1).reshape(len(x), -1)
    top = np.argsort(dist, axis=1)[:, -12:]
    flat = x.reshape(len(x), 3, -1)
    return np.take_along_axis(flat, top[:, None, :], axis=2).mean(axis=2)


@pytest.mark.parametrize("difficulty, lo, hi", [(0.0, 0.95, 1.0), (1.0, 0.0, 0.45)])
def test_shapes_colour_overlap_grows_with_difficulty(difficulty, lo, hi):
    """Colour alone (nearest class-mean foreground colour) identifies the class when easy and is
    near chance (1/4) when hard."""
    ds = shapes(difficulty)
    c = _foreground_colour(ds.x_train.numpy())
    c = c / np.maximum(c.max(axis=1, keepdims=True), 1e-6)  # brightness-invariant
    y = ds.y_train.numpy()
    means = np.stack([c[:1000][y[:1000] == k].mean(axis=0) for k in range(4)])
    pred = np.argmin(((c[1000:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert lo <= (pred == y[1000:]).mean() <= hi


def test_shapes_images_match_their_labels():
    """At difficulty 0, segment each image and measure how much of its bounding box the shape
    fills: square ~1, circle ~pi/4 = 0.785, triangle and cross ~1/2."""
    ds = shapes(0.0)
    x = ds.x_train[:400].numpy()
    y = ds.y_train[:400].numpy()
    border = np.concatenate([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], axis=2)
    bg = np.median(border, axis=2)[:, :, None, None]
    dist = np.linalg.norm(x - bg, axis=1)
    mask = dist > 0.5 * dist.max(axis=(1, 2), keepdims=True)
    fill = np.empty(len(x))
    for i, m in enumerate(mask):
        rows, cols = np.where(m)
        fill[i] = m.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    means = [fill[y == k].mean() for k in range(4)]
    circle, square, triangle, cross = means
    # (pixelation and anti-aliased edges pull the square below 1); shuffled labels would give ~0.67 each
    assert square > 0.84 and square > circle + 0.05
    assert 0.72 < circle < 0.84
    assert triangle < 0.6 and cross < 0.6


# ------------------------------------------------------------------------------------------------
# BatchStream
# ------------------------------------------------------------------------------------------------


def tiny_dataset(n: int) -> Dataset:
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    y = torch.arange(n, dtype=torch.int64) % 3
    return Dataset("tiny", x, y, x[:2].clone(), y[:2].clone(), ("a", "b", "c"))


def ids(batch) -> list[int]:
    return batch[0].flatten().long().tolist()


def test_batchstream_deterministic_and_seed_dependent():
    ds = load_dataset("digits")
    a, b, c = BatchStream(ds, 32, seed=1), BatchStream(ds, 32, seed=1), BatchStream(ds, 32, seed=2)
    for _ in range(50):
        xa, ya = a.next()
        xb, yb = b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(BatchStream(ds, 32, 1).next()[0], c.next()[0])


def test_batchstream_exact_size_and_one_pass_per_epoch():
    ds = tiny_dataset(12)
    stream = BatchStream(ds, 4, seed=3)
    for _epoch in range(3):
        seen = []
        for _ in range(3):
            x, y = stream.next()
            assert x.shape == (4, 1, 1, 1) and y.shape == (4,)
            assert torch.equal(y, x.flatten().long() % 3)  # labels stay with their images
            seen += ids((x, y))
        assert sorted(seen) == list(range(12))


def test_batchstream_follows_numpy_generator_and_drops_tail():
    ds = tiny_dataset(10)
    stream = BatchStream(ds, 4, seed=9)
    rng = np.random.default_rng(9)
    for _ in range(3):  # three epochs of two batches; the last two images of each epoch are dropped
        order = rng.permutation(10).tolist()
        assert ids(stream.next()) == order[0:4]
        assert ids(stream.next()) == order[4:8]
    assert stream.epoch == 3 and stream.steps_per_epoch == 2


def test_batchstream_rejects_bad_batch_sizes():
    ds = tiny_dataset(10)
    assert len(BatchStream(ds, 10, 0).next()[0]) == 10
    for bad in (11, 0, -1):
        with pytest.raises(ValueError):
            BatchStream(ds, bad, 0)


# ------------------------------------------------------------------------------------------------
# IDX parsing and the mnist / fashion-mnist loaders
# ------------------------------------------------------------------------------------------------


def test_parse_idx_known_contents(tmp_path):
    arr = (np.arange(2 * 3 * 4) * 7 % 256).astype(np.uint8).reshape(2, 3, 4)
    blob = idx_bytes(arr)
    assert blob[:4] == b"\x00\x00\x08\x03"
    assert np.array_equal(downloads.parse_idx(blob), arr)
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(blob))
    assert np.array_equal(downloads.read_idx_gz(path, ndim=3), arr)
    big = np.frombuffer(b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">ii", -5, 70000), dtype=np.uint8)
    assert downloads.parse_idx(big.tobytes()).tolist() == [-5, 70000]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x01\x00" + b[2:], "magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "magic"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b[:10], "truncated"),
])
def test_parse_idx_rejects_bad_data(mutate, message):
    blob = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=message):
        downloads.parse_idx(mutate(blob))
    with pytest.raises(ValueError, match="dimensions"):
        downloads.parse_idx(blob, ndim=1)


def test_read_idx_gz_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))[:-20])
    with pytest.raises(ValueError, match="t.gz"):
        downloads.read_idx_gz(path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_idx_dataset_from_verified_files(monkeypatch, tmp_path, name):
    arrays = make_idx_files(tmp_path / name)
    trust(monkeypatch, name, tmp_path / name)
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.name == name and ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].astype(np.float32) / 255)
    assert torch.equal(ds.x_train[:, 0], expected)
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte.gz"].tolist()
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert ds.y_train.dtype == torch.int64 and ds.x_test.max() <= 1.0
    if name == "fashion-mnist":
        assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_idx_dataset_with_inconsistent_counts_is_unavailable(monkeypatch, tmp_path):
    folder = tmp_path / "mnist"
    make_idx_files(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, dtype=np.uint8))))
    trust(monkeypatch, "mnist", folder)
    with pytest.raises(DatasetUnavailable, match="5 images but 4 labels"):
        load_dataset("mnist", data_dir=tmp_path)


# ------------------------------------------------------------------------------------------------
# CIFAR-10 binary
# ------------------------------------------------------------------------------------------------


def test_parse_cifar_records_channel_order():
    rec = bytes([7]) + bytes(range(256)) * 12  # 3072 pixel bytes
    x, y = downloads.parse_cifar_records(rec)
    assert y.tolist() == [7] and x.shape == (1, 3, 32, 32)
    flat = np.frombuffer(rec[1:], dtype=np.uint8)
    assert np.array_equal(x[0, 0].ravel(), flat[:1024])       # red plane first, row-major
    assert np.array_equal(x[0, 2].ravel(), flat[2048:])       # blue plane last
    assert x[0, 0, 1, 0] == 32 and x[0, 1, 0, 5] == 5
    with pytest.raises(ValueError, match="records"):
        downloads.parse_cifar_records(rec[:-1])
    with pytest.raises(ValueError, match="label"):
        downloads.parse_cifar_records(bytes([10]) + rec[1:])


def test_load_cifar10_from_binary_archive(monkeypatch, tmp_path):
    train, test = make_cifar_archive(tmp_path / "cifar10" / "cifar-10-binary.tar.gz")
    trust(monkeypatch, "cifar10", tmp_path / "cifar10")
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.input_shape == (3, 32, 32) and ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [rec[0] for rec in train]
    assert ds.y_test.tolist() == [rec[0] for rec in test] == [9, 0, 5]
    for i, (_, r, g, b) in enumerate(train):
        means = ds.x_train[i].mean(dim=(1, 2)) * 255
        assert torch.allclose(means, torch.tensor([r, g, b], dtype=torch.float32), atol=1e-3)
    assert ds.x_test[2, 0].max() == 1.0 and ds.x_test[2, 1].max() == 0.0
    # returned tensors are private copies: scribbling on them does not reach the in-process cache
    ds.y_train.fill_(0)
    ds.x_train.fill_(2.0)
    again = load_dataset("cifar10", data_dir=tmp_path)
    assert again.y_train.tolist() == [rec[0] for rec in train] and again.x_train.max() <= 1.0


def test_cifar_archive_missing_batch_or_truncated(monkeypatch, tmp_path):
    folder = tmp_path / "cifar10"
    make_cifar_archive(folder / "cifar-10-binary.tar.gz", drop="data_batch_3.bin")
    trust(monkeypatch, "cifar10", folder)
    with pytest.raises(DatasetUnavailable, match="data_batch_3.bin"):
        load_dataset("cifar10", data_dir=tmp_path)
    archive = folder / "cifar-10-binary.tar.gz"
    make_cifar_archive(archive)
    archive.write_bytes(archive.read_bytes()[:-100])
    trust(monkeypatch, "cifar10", folder)  # hash "matches", contents still unreadable
    with pytest.raises(DatasetUnavailable, match="unreadable") as exc:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "\n" not in str(exc.value)


def test_no_pickle_anywhere():
    source = pathlib.Path(downloads.__file__).read_text() + pathlib.Path(data.__file__).read_text()
    assert "import pickle" not in source and "allow_pickle" not in source and "cifar-10-python" not in source


# ------------------------------------------------------------------------------------------------
# missing files, hash checks, downloads
# ------------------------------------------------------------------------------------------------


def test_known_hash_table():
    for name, files in downloads.FILES.items():
        for f in files:
            h = downloads.SHA256[name][f]
            assert len(h) == 64 and int(h, 16) >= 0
    # pinned values (see the comment above SHA256 in bnviz/engine/downloads.py for their provenance)
    assert downloads.SHA256["mnist"]["train-images-idx3-ubyte.gz"].startswith("440fcabf73cc546f")
    assert downloads.SHA256["fashion-mnist"]["t10k-labels-idx1-ubyte.gz"].startswith("67da17c76eaffca5")
    assert downloads.SHA256["cifar10"]["cifar-10-binary.tar.gz"].startswith("c4a38c50a1bc5f3a")


@pytest.mark.parametrize("name", downloads.DOWNLOADABLE)
def test_missing_files_raise_one_line_with_directory(tmp_path, name):
    with pytest.raises(DatasetUnavailable) as exc:
        load_dataset(name, data_dir=tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(tmp_path / name) in msg
    assert f"python -m bnviz download {name}" in msg
    for f in downloads.FILES[name]:
        assert f in msg
    assert isinstance(exc.value, BnvizError)  # a ValueError: the CLI and the pages show its message


def test_missing_files_use_default_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "envdir"))
    folder = tmp_path / "envdir" / "mnist"
    make_idx_files(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailable, match="missing t10k-labels-idx1-ubyte.gz in") as exc:
        load_dataset("mnist")
    assert str(folder) in str(exc.value) and "train-images" not in str(exc.value)


def test_hash_mismatch_is_refused_without_deleting(monkeypatch, tmp_path):
    folder = tmp_path / "mnist"
    make_idx_files(folder)
    trust(monkeypatch, "mnist", folder)
    bad = folder / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.full(5, 3, dtype=np.uint8))))  # valid IDX, wrong bytes
    with pytest.raises(DatasetUnavailable, match="SHA-256 mismatch for train-labels-idx1-ubyte.gz") as exc:
        load_dataset("mnist", data_dir=tmp_path)
    assert "\n" not in str(exc.value) and str(folder) in str(exc.value)
    assert bad.exists()


def _good_payloads(tmp_path, monkeypatch) -> dict:
    src = tmp_path / "source"
    make_idx_files(src)
    trust(monkeypatch, "mnist", src)
    return {f: (src / f).read_bytes() for f in downloads.FILES["mnist"]}


def test_good_download_lands_verified_files(monkeypatch, tmp_path):
    payloads = _good_payloads(tmp_path, monkeypatch)
    fake = FakeURL(dict(payloads))
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    folder = data.download_dataset("mnist", tmp_path / "dl")
    assert folder == tmp_path / "dl" / "mnist"
    assert leftovers(folder) == sorted(downloads.FILES["mnist"])  # no .part files left
    for f, payload in payloads.items():
        assert (folder / f).read_bytes() == payload
    assert fake.calls == [downloads.MIRRORS["mnist"][0] + f for f in downloads.FILES["mnist"]]
    # a second call finds everything verified and downloads nothing
    data.download_dataset("mnist", tmp_path / "dl")
    assert len(fake.calls) == 4
    assert load_dataset("mnist", data_dir=tmp_path / "dl").x_train.shape == (5, 1, 28, 28)


def test_load_dataset_download_true_fetches(monkeypatch, tmp_path):
    payloads = _good_payloads(tmp_path, monkeypatch)
    monkeypatch.setattr(urllib.request, "urlopen", FakeURL(payloads))
    ds = load_dataset("mnist", data_dir=tmp_path / "dl", download=True)
    assert ds.x_test.shape == (3, 1, 28, 28)


def test_truncated_download_is_deleted_and_never_used(monkeypatch, tmp_path):
    payloads = _good_payloads(tmp_path, monkeypatch)
    cut = dict(payloads)
    n_mirrors = len(downloads.MIRRORS["mnist"])
    cut["train-images-idx3-ubyte.gz"] = [payloads["train-images-idx3-ubyte.gz"][:100]] * n_mirrors
    monkeypatch.setattr(urllib.request, "urlopen", FakeURL(cut))
    with pytest.raises(DatasetUnavailable, match="SHA-256") as exc:
        load_dataset("mnist", data_dir=tmp_path / "dl", download=True)
    assert "\n" not in str(exc.value) and "train-images-idx3-ubyte.gz" in str(exc.value)
    folder = tmp_path / "dl" / "mnist"
    assert "train-images-idx3-ubyte.gz" not in leftovers(folder)
    assert not [f for f in leftovers(folder) if f.endswith(".part")]
    # and without download the cut file is not picked up either
    with pytest.raises(DatasetUnavailable, match="missing train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path / "dl")


def test_bad_mirror_falls_back_to_next(monkeypatch, tmp_path):
    payloads = _good_payloads(tmp_path, monkeypatch)
    flaky = dict(payloads)
    flaky["t10k-images-idx3-ubyte.gz"] = [b"<html>not found</html>", payloads["t10k-images-idx3-ubyte.gz"]]
    fake = FakeURL(flaky)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    folder = data.download_dataset("mnist", tmp_path / "dl")
    assert (folder / "t10k-images-idx3-ubyte.gz").read_bytes() == payloads["t10k-images-idx3-ubyte.gz"]
    assert downloads.MIRRORS["mnist"][1] + "t10k-images-idx3-ubyte.gz" in fake.calls
    assert leftovers(folder) == sorted(downloads.FILES["mnist"])


def test_existing_wrong_file_is_replaced_on_download(monkeypatch, tmp_path):
    payloads = _good_payloads(tmp_path, monkeypatch)
    folder = tmp_path / "dl" / "mnist"
    folder.mkdir(parents=True)
    for f, payload in payloads.items():
        (folder / f).write_bytes(payload)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    fake = FakeURL(payloads)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    data.download_dataset("mnist", tmp_path / "dl")
    assert [u.rsplit("/", 1)[-1] for u in fake.calls] == ["t10k-labels-idx1-ubyte.gz"]
    assert (folder / "t10k-labels-idx1-ubyte.gz").read_bytes() == payloads["t10k-labels-idx1-ubyte.gz"]


def test_offline_download_raises_dataset_unavailable(monkeypatch, tmp_path):
    _good_payloads(tmp_path, monkeypatch)
    offline = urllib.error.URLError(OSError("Temporary failure in name resolution"))
    fake = FakeURL({f: offline for f in downloads.FILES["mnist"]})
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(DatasetUnavailable) as exc:
        data.download_dataset("mnist", tmp_path / "dl")
    msg = str(exc.value)
    assert "offline" in msg and "\n" not in msg and str(tmp_path / "dl" / "mnist") in msg
    assert len(fake.calls) == len(downloads.MIRRORS["mnist"])  # each mirror tried once, then give up
    assert leftovers(tmp_path / "dl" / "mnist") == []


def test_http_error_is_reported_without_offline_hint(monkeypatch, tmp_path):
    _good_payloads(tmp_path, monkeypatch)
    gone = urllib.error.HTTPError("http://x", 404, "Not Found", {}, None)
    monkeypatch.setattr(urllib.request, "urlopen", FakeURL({f: gone for f in downloads.FILES["mnist"]}))
    with pytest.raises(DatasetUnavailable, match="HTTP Error 404") as exc:
        data.download_dataset("mnist", tmp_path / "dl")
    assert "offline" not in str(exc.value)
    assert leftovers(tmp_path / "dl" / "mnist") == []


def test_connection_cut_mid_stream_leaves_nothing(monkeypatch, tmp_path):
    _good_payloads(tmp_path, monkeypatch)

    class Dying(io.BytesIO):
        def read(self, *args):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Dying(b"x" * 100))
    with pytest.raises(DatasetUnavailable, match="connection reset"):
        data.download_dataset("mnist", tmp_path / "dl")
    assert leftovers(tmp_path / "dl" / "mnist") == []


def test_download_cut_off_halfway_is_never_used_and_a_later_one_is_checked(monkeypatch, tmp_path):
    """Half the file is written to disk, then the connection drops: nothing is kept, the next load says the file is
    missing, and a complete download later is accepted because its SHA-256 matches."""
    payloads = _good_payloads(tmp_path, monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    folder = tmp_path / "dl" / "mnist"
    written = []

    class HalfThenReset(io.BytesIO):
        def read(self, *args):
            if written:
                raise ConnectionResetError("connection reset by peer")
            written.append(len(self.getvalue()) // 2)
            return self.getvalue()[:written[0]]

    cut = {f: payload for f, payload in payloads.items() if f != name}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: (
        HalfThenReset(payloads[name]) if url.endswith(name) else io.BytesIO(cut[url.rsplit("/", 1)[-1]])))
    with pytest.raises(DatasetUnavailable, match="connection reset"):
        load_dataset("mnist", data_dir=tmp_path / "dl", download=True)
    assert written and name not in leftovers(folder) and not [f for f in leftovers(folder) if f.endswith(".part")]
    with pytest.raises(DatasetUnavailable, match=f"missing {name}"):
        load_dataset("mnist", data_dir=tmp_path / "dl")
    monkeypatch.setattr(urllib.request, "urlopen", FakeURL(payloads))
    assert load_dataset("mnist", data_dir=tmp_path / "dl", download=True).x_train.shape == (5, 1, 28, 28)


def test_file_without_known_hash_is_refused(monkeypatch, tmp_path):
    make_idx_files(tmp_path / "mnist")
    monkeypatch.setitem(downloads.SHA256, "mnist", {})
    with pytest.raises(DatasetUnavailable, match="no SHA-256"):
        load_dataset("mnist", data_dir=tmp_path)


def test_dataset_repr_and_validation():
    ds = load_dataset("digits")
    assert "digits" in repr(ds) and len(repr(ds)) < 200
    with pytest.raises(ValueError):
        Dataset("bad", ds.x_train.double(), ds.y_train, ds.x_test, ds.y_test, ds.classes)
    with pytest.raises(ValueError):
        Dataset("bad", ds.x_train, ds.y_train[:-1], ds.x_test, ds.y_test, ds.classes)
