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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_app import labs  # noqa: F401 - the app-test fixture
from test_history import filled
from test_userdata import class_files, npz_of, zip_of

from bnviz.engine import npz_reader
from bnviz.engine.history import History
from bnviz.engine.runfile import unpack_runs
from bnviz.engine.uploads import parse_upload
from bnviz.errors import BnvizError, RunFileError, UserDataError

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


# ---- row 6: one damaged image among good ones is skipped and counted ---------------------------------------------


def zip_with(files: dict[str, bytes], method: dict[str, int]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data, compress_type=method.get(name, zipfile.ZIP_DEFLATED))
    return buffer.getvalue()


def corrupt_member(data: bytes, member: str) -> bytes:
    """`data` with the middle byte of `member`'s compressed bytes flipped."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_row6_a_broken_png_and_a_damaged_lzma_member_are_skipped_and_counted():
    files = class_files(4)
    broken = bytearray(files["red/1.png"])
    broken[36] = 0  # inside the IHDR chunk: Pillow raises SyntaxError ("broken PNG file")
    files["red/1.png"] = bytes(broken)
    files["green/2.png"] = png16(np.arange(64 * 64).reshape(64, 64))
    data = corrupt_member(zip_with(files, {"green/2.png": zipfile.ZIP_LZMA}), "green/2.png")
    images = parse_upload("mixed.zip", data, size=8)
    assert images.skipped == 2 and len(images.labels) == 10
    assert "2 of 12 images could not be read and were skipped" in images.summary()


# ---- row 7: run zips zipfile cannot read ------------------------------------------------------------------------


def patched(data: bytes, method: int | None = None, flag: int = 0) -> bytes:
    """Every local and central header of a zip with its method replaced and `flag` set."""
    out = bytearray(data)
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = out.find(signature)
        while at >= 0:
            out[at + flag_at] |= flag
            if method is not None:
                out[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


@pytest.mark.parametrize("kind", ["deflate64", "password", "bzip2", "lzma"])
def test_row7_run_zips_of_unreadable_methods_are_a_run_file_error(run_folder, kind):
    files = {f"run/{p.name}": p.read_bytes() for p in run_folder.iterdir()}
    if kind in ("bzip2", "lzma"):
        method = zipfile.ZIP_BZIP2 if kind == "bzip2" else zipfile.ZIP_LZMA
        data = corrupt_member(zip_with(files, dict.fromkeys(files, method)), "run/run.json")
    else:
        data = patched(zip_with(files, {}), method=9 if kind == "deflate64" else None,
                       flag=1 if kind == "password" else 0)
    with pytest.raises(RunFileError) as info:
        unpack_runs(data)
    words = "password" if kind == "password" else "damaged or uses a compression"
    assert words in str(info.value) and "\n" not in str(info.value), str(info.value)


# ---- row 8: the report never writes outside the run folder ------------------------------------------------------


def test_row8_report_refuses_a_symlinked_report_folder_and_sanitises_stage_names(run_folder, tmp_path):
    from bnviz.figures.report import write_report

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_folder / "report").symlink_to(elsewhere)
    with pytest.raises(RunFileError, match="symbolic link"):
        write_report(run_folder)
    assert not any(elsewhere.iterdir())
    (run_folder / "report").unlink()
    info = json.loads((run_folder / "run.json").read_text())
    info["layout"]["probes"][0][1] = "x/../../../escaped"
    (run_folder / "run.json").write_text(json.dumps(info))
    before = set(tmp_path.rglob("*"))
    write_report(run_folder)
    written = set(tmp_path.rglob("*")) - before
    report = run_folder / "report"
    assert written and all(p == report or report in p.parents for p in written), written
    assert any("x_escaped" in p.name for p in written)


# ---- row 9: FIFOs, devices and links to them are refused where files are read ------------------------------------


def test_row9_special_files_are_refused(run_folder, tmp_path):
    import os

    from bnviz.engine.uploads import read_user_data

    folder = tmp_path / "images"
    for name, blob in class_files(3).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(blob)
    (folder / "red" / ".DS_Store").symlink_to("/dev/zero")
    with pytest.raises(UserDataError, match="not a regular file"):
        read_user_data(folder)
    (folder / "red" / ".DS_Store").unlink()
    os.mkfifo(folder / "red" / "3.png")
    with pytest.raises(UserDataError, match="not a regular file"):
        read_user_data(folder)
    with pytest.raises(UserDataError, match="not a regular file"):
        read_user_data(folder / "red" / "3.png")
    (run_folder / "arrays.npz").unlink()
    (run_folder / "arrays.npz").symlink_to("/dev/zero")
    with pytest.raises(RunFileError, match="arrays.npz is not a regular file"):
        History.load(run_folder)
    (run_folder / "run.json").unlink()
    os.mkfifo(run_folder / "run.json")
    with pytest.raises(RunFileError, match="run.json is not a regular file"):
        History.load(run_folder)


# ---- row 10: --out is checked before training ---------------------------------------------------------------------


@pytest.mark.parametrize("setup, extra, words", [
    ("file", [], "is a file, not a folder"),
    ("run", [], "already holds a run: name a new folder, or add --force"),
    ("link", [], "is a symbolic link"),
])
def test_row10_out_is_checked_before_training(tmp_path, capsys, monkeypatch, setup, extra, words):
    import bnviz.engine.trainer as trainer
    from bnviz.cli import main

    def no_training(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(trainer, "Job", no_training)
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("precious")
    elif setup == "run":
        out.mkdir()
        (out / "run.json").write_text("{}")
    else:
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    assert main(["run", "--steps", "5", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err, err


def test_row10_an_unwritable_out_is_one_line_before_training(tmp_path, capsys):
    from bnviz.cli import main

    (tmp_path / "plain").write_text("x")
    assert main(["run", "--steps", "100000", "--out", str(tmp_path / "plain" / "sub"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot create --out" in err and "\n" not in err, err


def test_row10_force_replaces_a_run_folder(tmp_path, capsys):
    from bnviz.cli import main

    out = tmp_path / "out"
    assert main(["run", "--steps", "3", "--width", "4", "--depth", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["run", "--steps", "3", "--width", "4", "--depth", "1", "--out", str(out), "--quiet"]) == 2
    assert main(["run", "--steps", "4", "--width", "4", "--depth", "1", "--out", str(out), "--quiet",
                 "--force"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


# ---- the pages: a refused file is one message, and what was open stays open --------------------------------------


def test_runs_page_keeps_the_opened_runs_when_a_bad_file_follows(labs, tmp_path):  # noqa: F811
    from test_app import open_page

    run = filled(capacity=8, records=11).save(tmp_path / "run")
    at = open_page("runs")
    at.file_uploader(key="runs_upload").set_value(("good.zip", zipped_folder(run), "application/zip")).run()
    assert not at.exception and not at.error and len(labs[-1].histories()[1]) == 1
    bad = patched(zipped_folder(run), method=9)  # Deflate64: NotImplementedError inside zipfile
    at.file_uploader(key="runs_upload").set_value(("bad.zip", bad, "application/zip")).run()
    assert not at.exception
    assert len(at.error) == 1 and "This file cannot be opened: the run file is damaged" in at.error[0].value
    at.run()  # a rerun shows the message again without reading the file again
    assert not at.exception and len(at.error) == 1
    assert len(labs[-1].histories()[1]) == 1  # the run opened before is still there


# ---- the parsing process ------------------------------------------------------------------------------------------


def test_the_parsing_process_gives_the_same_result_as_parsing_here(run_folder):
    from bnviz.engine import sandbox

    data = zip_of(class_files(5))
    here, there = parse_upload("c.zip", data), sandbox.parse_upload("c.zip", data)
    assert np.array_equal(here.images, there.images) and np.array_equal(here.labels, there.labels)
    assert (here.classes, here.sha256, here.notes, here.ref) == (there.classes, there.sha256, there.notes, there.ref)
    labels, histories = sandbox.unpack_runs(zipped_folder(run_folder))
    original = History.load(run_folder)
    assert labels == ["run"] and histories[0].meta == original.meta
    for name, values in original.data.items():
        np.testing.assert_array_equal(histories[0].column(name), values[:original.n])
    with pytest.raises(RunFileError, match="unexpected array 'extra'"):  # errors keep their type and message
        sandbox.unpack_runs(zipped_folder(run_folder, {"arrays.npz": npz_of(extra=np.zeros(3))}))


def test_the_parsing_process_does_not_run_the_servers_main_script(tmp_path, monkeypatch):
    """Under `streamlit run`, `__main__` is the app's script (Streamlit installs each script run as `__main__`), and
    multiprocessing would import it in every new process: the app's top level, before the parser's limits."""
    import sys
    import types

    from bnviz.engine import sandbox

    marker, script = tmp_path / "ran", tmp_path / "app_script.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert sandbox.parse_upload("c.zip", zip_of(class_files(2))).classes
    assert not marker.exists()


def test_a_file_over_the_memory_limit_costs_only_the_parsing_process(monkeypatch):
    from bnviz.engine import limits, sandbox

    monkeypatch.setattr(limits, "PARSE_MEMORY_BYTES", 64 * MB)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((2000, 64, 64, 3)), y=np.arange(2000) % 2)  # 196 MB once read
    data = buffer.getvalue()
    peak, error = peak_bytes(lambda: sandbox.parse_upload("heavy.npz", data))
    assert isinstance(error, UserDataError) and "needs more than 64 MB of memory" in str(error), error
    assert peak < 2 * len(data) + 16 * MB, peak  # the server holds the file's bytes, never its arrays


def test_a_file_over_the_time_limit_is_stopped(monkeypatch):
    from bnviz.engine import limits, sandbox

    sandbox.parse_upload("warm.zip", zip_of(class_files(2)))  # the forkserver is running
    monkeypatch.setattr(limits, "PARSE_SECONDS", 0.001)
    with pytest.raises(UserDataError, match="took longer than 0 s"):
        sandbox.parse_upload("slow.zip", zip_of(class_files(30)))


FUZZ_BASE = {"upload": zip_of(class_files(2)), "npz": npz_of(x=np.zeros((4, 4, 4)), y=np.array([0, 1, 0, 1])),
             "csv": b"label,a,b,c,d\n0,1,2,3,4\n1,5,6,7,8\n0,0,0,0,0\n1,9,9,9,9\n"}
FUZZ_NAMES = {"upload": "f.zip", "npz": "f.npz", "csv": "f.csv"}
EDIT = st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 10 ** 6), st.integers(1, 255))
BYTE_EDITS = st.lists(EDIT, min_size=1, max_size=4)


def _edited(data: bytes, edits) -> bytes:
    """The bytes after bit flips, truncations and inserted runs of one byte value (what a damaged copy looks like)."""
    out = bytearray(data)
    for kind, at, value in edits:
        at %= max(len(out), 1)
        if kind == "flip" and out:
            out[at] ^= value
        elif kind == "cut":
            del out[at:]
        else:
            out[at:at] = bytes([value]) * value
    return bytes(out)


def _ends_in_a_result_or_a_one_line_bnviz_error(call) -> None:
    """A damaged file may make the parser slow; the time limit (a one-line BnvizError too) is lowered to 5 s here so
    that one example cannot take the 60 s of a server's limit."""
    from unittest import mock

    from bnviz.engine import limits

    try:
        with mock.patch.object(limits, "PARSE_SECONDS", 5.0):
            call()
    except BnvizError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(FUZZ_BASE)), edits=BYTE_EDITS)
def test_fuzzed_uploads_through_the_parsing_process_end_in_a_result_or_a_bnviz_error(kind, edits):
    from bnviz.engine import sandbox

    data = _edited(FUZZ_BASE[kind], edits)
    _ends_in_a_result_or_a_one_line_bnviz_error(lambda: sandbox.parse_upload(FUZZ_NAMES[kind], data))


@pytest.fixture(scope="module")
def zipped_run(tmp_path_factory):
    from bnviz.engine.config import RunConfig
    from bnviz.engine.trainer import train

    folder = train(RunConfig(steps=4, eval_every=4, width=4, depth=1)).history.save(tmp_path_factory.mktemp("fz") / "r")
    return zipped_folder(folder)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=BYTE_EDITS)
def test_fuzzed_run_zips_through_the_parsing_process_end_in_runs_or_a_bnviz_error(zipped_run, edits):
    from bnviz.engine import sandbox

    data = _edited(zipped_run, edits)
    _ends_in_a_result_or_a_one_line_bnviz_error(lambda: sandbox.unpack_runs(data))


# ---- user-provided names are plain text -------------------------------------------------------------------------


def test_markdown_and_html_in_names_are_escaped():
    from bnviz.ui.text import plain, plotly_text

    name = "[click](http://x.example) ![img](http://x.example/a.png) <b>:red[hi]</b> *x*"
    escaped = plain(name)
    for mark in "[]<>*":
        assert all(escaped[i - 1] == "\\" for i, c in enumerate(escaped) if c == mark), (mark, escaped)
    assert escaped.replace("\\", "") == name  # nothing lost but the escapes
    assert "http\\://" in escaped and ":red" not in escaped.replace("\\:red", "")  # autolinks, shortcodes
    assert plotly_text("<a href='x'>cat</a> & dog") == "&lt;a href='x'&gt;cat&lt;/a&gt; &amp; dog"


def test_layer_names_with_html_are_refused_in_run_files(run_folder):
    info = json.loads((run_folder / "run.json").read_text())
    info["layout"]["layers"][0] = "<a href='http://x.example'>block1</a>"
    (run_folder / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFileError, match="none of < > &"):
        History.load(run_folder)


def test_upload_panel_shows_a_markdown_file_name_as_text(labs):  # noqa: F811
    from test_app import open_page

    at = open_page("train")
    name = "[x](http://evil.example)*b*.zip"
    at.file_uploader(key="userdata_file").set_value((name, zip_of(class_files(3)), "application/zip")).run()
    assert not at.exception
    success = next(s.value for s in at.success if "images in 3 classes" in s.value)
    assert success.startswith(r"**\[x\](http\://evil.example)\*b\*.zip**: 9 images"), success
