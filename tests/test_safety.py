"""Issue 13: one student's crafted file costs them a one-line message, never the server's memory or time.

Every file is built here, small. Rows refer to the issue's table. Memory is measured with tracemalloc (numpy reports
its buffers to it): the peak while a hostile file is refused must stay far below what the file declares.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_history import filled
from test_userdata import class_files, npz_of, zip_of

from bnviz.engine import npz_reader
from bnviz.engine.history import History
from bnviz.engine.runfile import unpack_runs
from bnviz.engine.uploads import parse_upload
from bnviz.errors import RunFileError, UserDataError

MB = 1024 * 1024


def peak_bytes(action) -> tuple[int, Exception | None]:
    """The peak of Python and numpy allocations while `action()` runs, and what it raised."""
    tracemalloc.start()
    error = None
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - returned to the test, which checks its type and message
        error = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, error


def zipped_folder(folder: Path, replace: dict[str, bytes] | None = None) -> bytes:
    """A run folder zipped as it is (the format `unpack_runs` opens without a manifest)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            data = (replace or {}).get(path.name, path.read_bytes())
            zf.writestr(f"run/{path.name}", data)
    return buffer.getvalue()


def npz_with_huge_member(original: bytes, member: str, shape: tuple[int, ...]) -> bytes:
    """`original` (an NPZ) plus one member whose .npy header declares `shape` float64 and whose data is zeros,
    streamed in so the test never holds it: highly compressed, a few hundred KB for hundreds of MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open(member + ".npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array_header_1_0(stream, {"descr": "<f8", "fortran_order": False, "shape": shape})
            chunk, left = bytes(MB), int(np.prod(shape)) * 8
            while left:
                stream.write(chunk[:min(left, MB)])
                left -= min(left, MB)
    return out.getvalue()


@pytest.fixture
def run_folder(tmp_path) -> Path:
    return filled(capacity=8, records=11).save(tmp_path / "run")


# ---- row 1: an extra, highly compressed array in arrays.npz -----------------------------------------------------


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("member", ["extra", "scalars"])
def test_row1_a_declared_huge_array_is_refused_from_its_header(run_folder, member):
    arrays = npz_with_huge_member((run_folder / "arrays.npz").read_bytes(), member, (2 ** 25,))  # 256 MiB
    if member == "scalars":  # a second member of the same name
        with zipfile.ZipFile(io.BytesIO(arrays)) as zf:
            assert zf.namelist().count("scalars.npy") == 2
    data = zipped_folder(run_folder, {"arrays.npz": arrays})
    assert len(data) < 2 * MB
    peak, error = peak_bytes(lambda: unpack_runs(data))
    assert isinstance(error, RunFileError), error
    words = "unexpected array 'extra'" if member == "extra" else "twice"
    assert words in str(error) and "\n" not in str(error)
    assert peak < 16 * MB, peak  # the 256 MiB array is never read


def test_row1_an_allowed_array_of_the_wrong_shape_is_refused_before_reading(run_folder, tmp_path):
    n = json.loads((run_folder / "run.json").read_text())["n"]
    with np.load(run_folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k != "scalars"}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    (run_folder / "arrays.npz").write_bytes(npz_with_huge_member(buffer.getvalue(), "scalars", (2 ** 24, 5)))
    peak, error = peak_bytes(lambda: History.load(run_folder))
    assert isinstance(error, RunFileError) and f"scalars should have shape ({n}, 5)" in str(error), error
    assert peak < 16 * MB, peak


def test_the_npz_budget_is_checked_on_declared_sizes():
    data = npz_of(x=np.zeros((100, 100)), y=np.zeros(100))
    seen = []
    with pytest.raises(UserDataError, match="declares arrays of 0 MB; the limit is 0 MB"):
        npz_reader.read_npz(data, "f.npz", seen.append, 1000, UserDataError)
    assert {k: h.shape for k, h in seen[0].items()} == {"x": (100, 100), "y": (100,)}
    arrays = npz_reader.read_npz(data, "f.npz", lambda headers: None, 10 ** 6, UserDataError)
    assert arrays["x"].shape == (100, 100) and arrays["x"].dtype == np.float64


# ---- row 11: metadata of the wrong types or nested too deep -------------------------------------------------------


@pytest.mark.parametrize("meta, words", [
    ({"config": {"norm": {"a": 1}}}, "config.norm is dict, not str"),
    ({"config": {"lr": "fast"}}, "config.lr is str"),
    ({"summary": {"final_test_acc": "high"}}, "summary.final_test_acc is str"),
    ({"watch": {"act_input": "pre"}}, "watch.act_input is str, not list"),
])
def test_row11_metadata_of_the_wrong_type_is_refused(run_folder, meta, words):
    info = json.loads((run_folder / "run.json").read_text())
    info["meta"] = meta
    (run_folder / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFileError, match=words):
        History.load(run_folder)


def test_row11_watch_that_is_not_a_mapping_is_dropped_and_deep_nesting_refused(run_folder):
    info = json.loads((run_folder / "run.json").read_text())
    info["meta"] = {"watch": ["not", "a", "mapping"], "config": {"norm": "batch"}}
    (run_folder / "run.json").write_text(json.dumps(info))
    assert History.load(run_folder).meta == {"config": {"norm": "batch"}}
    deep: object = 1
    for _ in range(900):
        deep = [deep]
    info["meta"] = {"notes": deep}
    (run_folder / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFileError, match="nested more than 32 levels"):
        History.load(run_folder)


# ---- rows 2 and 4: a CSV header of 400,000 commas; a class name of megabytes ---------------------------------------


def test_row2_a_wide_csv_header_is_refused_before_parsing():
    data = ("label," + ",".join(["p"] * 400_000) + "\n0," + ",".join(["1"] * 400_000) + "\n").encode()
    peak, error = peak_bytes(lambda: parse_upload("wide.csv", data))
    assert isinstance(error, UserDataError) and "more than 4,097 columns" in str(error), error
    assert peak < 4 * len(data), peak  # nothing but the header line is looked at


@pytest.mark.parametrize("classes, words", [
    (np.array(["a" * 5_000_000, "b"]), "class names of up to 5,000,000 characters; the limit is 64"),
    (np.array(["a" * 65, "b"]), "class names of up to 65 characters"),
    (np.array(["cat", "cat"]), "'cat' appears twice"),
    (np.array([f"c{i}" for i in range(101)]), "at most 100 names"),
])
def test_row4_class_names_long_duplicated_or_too_many_are_refused(classes, words):
    data = npz_of(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]), classes=classes)
    peak, error = peak_bytes(lambda: parse_upload("names.npz", data))
    assert isinstance(error, UserDataError) and words in str(error), error
    if len(classes[0]) > 1000:
        assert peak < 2 * len(data), peak  # the 20 MB array of names is never read


def test_row4_folder_names_longer_than_64_characters_are_refused():
    files = {f"{'x' * 70}/{i}.png": blob for i, blob in enumerate(class_files(2).values())}
    files.update({f"b/{i}.png": blob for i, blob in enumerate(class_files(2).values())})
    with pytest.raises(UserDataError, match="a class name has 70 characters; the limit is 64"):
        parse_upload("long.zip", zip_of(files))


# ---- row 12: the smaller ones ------------------------------------------------------------------------------------


def png16(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_row12_16_bit_pngs_are_scaled_not_clipped():
    levels = {"dark": 4096, "light": 60000}
    files = {f"{name}/{i}.png": png16(np.full((8, 8), level)) for name, level in levels.items() for i in range(3)}
    images = parse_upload("deep.zip", zip_of(files), size=8)
    by_class = {name: images.images[images.labels == images.classes.index(name)] for name in levels}
    assert images.channels == 1
    for name, level in levels.items():  # 16-bit v is 8-bit round(v / 257), independent of Pillow
        assert np.all(by_class[name] == round(level / 257)), (name, np.unique(by_class[name]))


@pytest.mark.parametrize("side", [1, 2])
def test_row12_auto_size_is_at_least_4_for_arrays(side):
    images = parse_upload("tiny.npz", npz_of(x=np.arange(4 * side * side).reshape(4, side, side) % 2,
                                             y=np.array([0, 1, 0, 1])))
    assert images.size == 4


def test_row12_extreme_finite_pixels_are_rescaled_without_overflow():
    x = np.zeros((4, 4, 4))
    x[0, 0, 0], x[1, 0, 0] = -1e308, 1e308
    images = parse_upload("huge.npz", npz_of(x=x, y=np.array([0, 1, 0, 1])))
    expected = np.round((x / 2 + 0.5e308) / 1e308 * 255)  # numpy reference: the same map in halves
    assert np.array_equal(images.images[:, 0], expected.astype(np.uint8))


@pytest.mark.parametrize("name, data, words", [
    ("inf.npz", npz_of(x=np.full((4, 4, 4), np.inf), y=np.array([0, 1, 0, 1])), "infinite"),
    ("big.npz", npz_of(x=np.zeros((4, 4, 4)), y=np.array([0, 1e300, 0, 1e300])), "label 1e+300 is too large"),
    ("empty.npz", npz_of(x=np.zeros((0, 4, 4)), y=np.zeros(0)), "no images"),
    ("empty.csv", b"", "is empty"),
    ("header.csv", b"label,p1,p2,p3,p4\n", "a header but no rows"),
    ("semi.csv", b"label;p1;p2;p3;p4\n0;1;2;3;4\n", "it seems to use ';'"),
    ("tab.csv", b"label\tp1\tp2\tp3\tp4\n0\t1\t2\t3\t4\n", "tabs between values"),
    ("single.npz", npz_of(x=np.zeros((2, 4, 4)), y=np.array([0, 1])), "every class has a single image"),
])
def test_row12_small_mistakes_get_plain_messages(name, data, words):
    with pytest.raises(UserDataError) as info:
        parse_upload(name, data)
    assert words in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_row12_full_width_digits_are_refused_in_links():
    from bnviz.ui.link_params import _number, _whole

    assert _whole("123", 1, 1000) == 123 and _number("1.5") == 1.5
    for parse in (lambda t: _whole(t, 1, 1000), _number):
        with pytest.raises(ValueError):
            parse("１２３")
