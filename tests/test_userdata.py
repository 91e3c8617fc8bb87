"""Your own images: every format, every refusal, the split, and a run that learns from an upload.

Every image set is drawn here with numpy and PIL (a few 8x8 or 10x10 images per class); nothing is downloaded.
"""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image
from test_app import labs, open_page  # noqa: F401 - the app-test fixture and helper, reused
from test_fuzz import damaged_central_directory

from bnviz.cli import main
from bnviz.engine import user_images
from bnviz.engine.config import RunConfig
from bnviz.engine.jobs import JobLimiter, Lab
from bnviz.engine.trainer import Job
from bnviz.engine.uploads import parse_upload, read_user_data
from bnviz.engine.user_images import stratified_split
from bnviz.errors import UserDataError

COLOURS = {"blue": (20, 40, 230), "green": (30, 200, 40), "red": (220, 30, 30)}


def png(colour=(128, 128, 128), size=(8, 8), mode="RGB", noise=0, kind="PNG") -> bytes:
    """A solid image (with a little noise from `noise` as its seed) as PNG (or JPEG) bytes."""
    rng = np.random.default_rng(noise)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-10, 11, (size[1], size[0], 3)), 0, 255)
    img = Image.fromarray(pixels.astype(np.uint8), "RGB").convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=kind)
    return buffer.getvalue()


def class_files(per_class=8, size=(8, 8), prefix="") -> dict[str, bytes]:
    """{"<prefix>red/0.png": bytes, ...} for three solid colours."""
    return {f"{prefix}{name}/{i}.png": png(colour, size, noise=i)
            for name, colour in COLOURS.items() for i in range(per_class)}


def zip_of(files: dict[str, bytes]) -> bytes:
    """The same files give the same bytes (fixed timestamps), so the same upload reference."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def npz_of(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def refused(name: str, data: bytes, *words: str, size=None) -> str:
    with pytest.raises(UserDataError) as info:
        parse_upload(name, data, size)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


# ---- formats --------------------------------------------------------------------------------------------------


def test_zip_of_class_folders():
    images = parse_upload("colours.zip", zip_of(class_files()))
    assert images.classes == ("blue", "green", "red")
    assert images.counts() == {"blue": 8, "green": 8, "red": 8}
    assert images.images.shape == (24, 3, 8, 8) and images.images.dtype == np.uint8
    assert images.ref.startswith("upload:") and len(images.ref) == len("upload:") + 12
    red = images.images[images.labels == 2]
    assert red[:, 0].mean() > 200 and red[:, 2].mean() < 50  # channels are R, G, B
    assert "24 images in 3 classes" in images.summary() and "8x8 RGB" in images.summary()


def test_zip_with_one_top_folder_and_junk_files():
    files = class_files(prefix="colours/")
    files["colours/README.txt"] = b"my images"
    files["__MACOSX/colours/red/._0.png"] = b"junk"
    files["colours/red/.DS_Store"] = b"junk"
    images = parse_upload("colours.zip", zip_of(files))
    assert images.classes == ("blue", "green", "red") and len(images.labels) == 24
    assert "1 file(s) that are not PNG or JPEG were ignored" in images.summary()


def test_directory_and_its_hash(tmp_path):
    for name, data in class_files().items():
        (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / name).write_bytes(data)
    a = read_user_data(tmp_path / "set")
    assert a.name == "set" and a.classes == ("blue", "green", "red") and a.images.shape == (24, 3, 8, 8)
    assert read_user_data(tmp_path / "set").sha256 == a.sha256
    (tmp_path / "set" / "red" / "0.png").write_bytes(png((0, 0, 0)))
    assert read_user_data(tmp_path / "set").sha256 != a.sha256


def test_npz_with_class_names_and_channels_first():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 3, 10, 10), dtype=np.uint8)  # (N, C, H, W) is accepted too
    y = np.repeat([0, 1, 2], 4)
    images = parse_upload("a.npz", npz_of(x=x, y=y, classes=np.array(["cat", "dog", "eel"])))
    assert images.classes == ("cat", "dog", "eel") and images.images.shape == (12, 3, 10, 10)
    assert np.array_equal(images.images, x)


def test_npz_floats_and_unnamed_labels():
    x = np.linspace(0, 1, 6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8)
    images = parse_upload("f.npz", npz_of(x=x, y=np.array([3, 3, 7, 7, 9, 9])))
    assert images.classes == ("3", "7", "9") and list(images.labels) == [0, 0, 1, 1, 2, 2]
    assert images.channels == 1 and images.images.max() == 255 and images.images.min() == 0
    scaled = parse_upload("g.npz", npz_of(x=x * 10 - 5, y=np.array([0, 0, 1, 1, 2, 2])))
    assert "rescaled" in scaled.summary() and scaled.images.max() == 255


def test_csv_grayscale_square():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (9, 16))
    rows = ["label," + ",".join(f"p{i}" for i in range(16))]
    rows += [f"{i % 3}," + ",".join(map(str, row)) for i, row in enumerate(pixels)]
    images = parse_upload("p.csv", "\n".join(rows).encode())
    assert images.images.shape == (9, 1, 4, 4) and images.classes == ("0", "1", "2")
    assert np.array_equal(images.images[:, 0].reshape(9, 16), pixels)


def test_mixed_sizes_are_resized_and_mixed_modes_become_rgb():
    files = class_files(per_class=3, size=(10, 10))
    files["red/big.png"] = png(COLOURS["red"], size=(20, 14))
    files["blue/gray.png"] = png(size=(10, 10), mode="L")
    files["green/photo.JPG"] = png(COLOURS["green"], size=(30, 30), kind="JPEG")
    images = parse_upload("m.zip", zip_of(files))
    assert images.images.shape == (12, 3, 10, 10)  # auto: the most common size
    assert images.images[images.labels == 1, 1].mean() > 150  # the JPEG is green too
    assert parse_upload("m.zip", zip_of(files), size=16).images.shape == (12, 3, 16, 16)
    gray = {k: png(c, mode="L", noise=i) for i, (k, c) in
            enumerate((f"{n}/{i}.png", c) for n, c in COLOURS.items() for i in range(2))}
    assert parse_upload("g.zip", zip_of(gray)).channels == 1


def test_corrupt_images_are_skipped_and_counted():
    files = class_files()
    files["red/broken.png"] = png()[:40]  # a truncated PNG
    files["green/nonsense.jpg"] = b"not an image at all"
    images = parse_upload("c.zip", zip_of(files))
    assert images.skipped == 2 and len(images.labels) == 24
    assert "2 of 26 images could not be read and were skipped" in images.summary()


# ---- refusals ---------------------------------------------------------------------------------------------------


def test_no_classes_one_class_empty_class():
    refused("flat.zip", zip_of({f"{i}.png": png() for i in range(4)}), "not inside a class folder")
    refused("empty.zip", zip_of({"notes.txt": b"hi"}), "no classes")
    refused("one.zip", zip_of({f"cats/{i}.png": png() for i in range(4)}), "only one class", "'cats'")
    files = class_files()
    files["dogs/readme.txt"] = b"no images yet"
    refused("e.zip", zip_of(files), "class 'dogs' has no images")
    files = class_files()
    files["dogs/0.png"] = b"broken"
    refused("e.zip", zip_of(files), "class 'dogs' has no readable images")


def test_too_many_images_classes_and_bytes(monkeypatch):
    monkeypatch.setattr(user_images, "MAX_IMAGES", 20)
    refused("many.zip", zip_of(class_files()), "24 images", "limit is 20")
    refused("many.npz", npz_of(x=np.zeros((24, 8, 8), np.uint8), y=np.arange(24) % 3), "limit is 20")
    monkeypatch.setattr(user_images, "MAX_CLASSES", 2)
    refused("k.npz", npz_of(x=np.zeros((6, 8, 8), np.uint8), y=np.arange(6) % 3), "3 classes", "limit is 2")
    monkeypatch.setattr(user_images, "MAX_FILE_BYTES", 1000)
    refused("big.zip", zip_of(class_files()), "MB; the limit is")


def test_zip_bomb_and_pixel_limits(monkeypatch):
    bomb = zip_of({"a/x.png": png(), "b/zeros.png": bytes(50_000_000)})  # 50 MB of zeros compress to ~50 kB
    monkeypatch.setattr(user_images, "MAX_UNPACKED_BYTES", 10_000_000)
    refused("bomb.zip", bomb, "unpacks to more than")
    monkeypatch.setattr(user_images, "MAX_IMAGE_PIXELS", 80)
    files = class_files()
    files["red/huge.png"] = png(size=(10, 10))
    assert parse_upload("h.zip", zip_of(files)).skipped == 1  # 100 pixels > 80: skipped, not decoded
    monkeypatch.setattr(user_images, "MAX_VALUES", 1000)
    refused("v.zip", zip_of(class_files()), "pixel values", "smaller image size")


def test_unsafe_members_are_refused():
    for member in ("../evil.png", "/etc/evil.png", "a/../../evil.png", "C:/evil.png"):
        data = zip_of({**class_files(per_class=2), member: png()})
        refused("t.zip", data, "unsafe file name")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in class_files(per_class=2).items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("red/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    refused("l.zip", buffer.getvalue(), "symbolic link")


def test_pickled_npz_is_refused_without_unpickling(monkeypatch):
    import pickle

    def trap(*args, **kwargs):
        raise AssertionError("something was unpickled")

    data = npz_of(x=np.array([np.zeros((8, 8))] * 4 + [None], dtype=object), y=np.arange(5) % 2)
    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "load", trap)
    refused("p.npz", data, "Python objects", "never loaded")


@pytest.mark.parametrize("arrays, words", [
    ({"x": np.zeros((4, 8, 8))}, ["no array 'y'"]),
    ({"x": np.zeros((4, 8, 8)), "y": np.array(["a", "b", "a", "b"])}, ["labels", "whole numbers"]),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0.5, 1, 0, 1])}, ["whole numbers"]),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 1, 0])}, ["one label per image"]),
    ({"x": np.full((4, 8, 8), np.nan), "y": np.array([0, 1, 0, 1])}, ["NaN"]),
    ({"x": np.zeros((4, 8, 8, 4)), "y": np.array([0, 1, 0, 1])}, ["(N, H, W, 3)"]),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 1, 0, 5]), "classes": np.array(["a", "b"])}, ["label 5"]),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 0, 0, 0]), "classes": np.array(["a", "b"])}, ["class 'b'"]),
])
def test_bad_npz(arrays, words):
    refused("bad.npz", npz_of(**arrays), *words)


@pytest.mark.parametrize("text, words", [
    ("p0,p1,p2,p3\n1,2,3,4\n", ["no 'label' column"]),
    ("label,p0,p1,p2,p3\ncat,1,2,3,4\ndog,1,2,3,4\n", ["label column holds text", "'cat'"]),
    ("label,p0,p1,p2,p3\n0,1,2,x,4\n1,1,2,3,4\n", ["column 'p2' holds text", "'x'", "row 1"]),
    ("label,p0,p1,p2,p3\n0,1,2,,4\n1,1,2,3,4\n", ["NaN"]),
    ("label,p0,p1,p2\n0,1,2,3\n1,1,2,3\n", ["3 pixel columns", "square"]),
    ("label,p0,p1,p2,p3\n0,1,2,3,4\n0,1,2,3,4\n", ["only one class"]),
])
def test_bad_csv(text, words):
    refused("bad.csv", text.encode(), *words)


def test_not_a_zip_and_unknown_kind():
    refused("x.zip", b"hello", "not a readable zip")
    refused("x.npz", b"hello", "not a readable zip")
    refused("x.gif", b"GIF89a", ".zip of class folders")
    for how in ("version", "utf8 name"):  # zipfile.ZipFile itself raises NotImplementedError / UnicodeDecodeError
        refused("x.zip", damaged_central_directory(zip_of(class_files()), how), "not a readable zip")
    refused("x.zip", zip_of(class_files()), "image size 100", size=100)


# ---- split ------------------------------------------------------------------------------------------------------


def test_split_is_stratified_and_deterministic_in_the_seed():
    labels = np.repeat([0, 1, 2], [10, 5, 2])
    train, test = stratified_split(labels, seed=3)
    assert sorted(np.concatenate([train, test])) == list(range(17))
    assert np.bincount(labels[test], minlength=3).tolist() == [2, 1, 1]  # 20 %, at least one per class
    again = stratified_split(labels, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, stratified_split(labels, seed=4)[1])
    train, test = stratified_split(np.array([0, 0, 1]), seed=0)
    assert list(np.sort(test)) == [0] or list(np.sort(test)) == [1]  # the single image of class 1 trains


def test_example_grid_has_one_row_per_class():
    images = parse_upload("colours.zip", zip_of(class_files()))
    grid = images.example_grid(per_class=4, tile=16)
    assert grid.shape == (3 * 18, 4 * 18, 3) and grid.dtype == np.uint8
    assert grid[0, 0, 2] > 200 and grid[2 * 18, 0, 0] > 200  # blue first row, red last row


def test_to_dataset_is_float_in_unit_range_with_a_source():
    ds = parse_upload("colours.zip", zip_of(class_files())).to_dataset(seed=0)
    assert ds.x_train.dtype.is_floating_point and 0 <= float(ds.x_train.min()) <= float(ds.x_train.max()) <= 1
    assert len(ds.y_train) == 18 and len(ds.y_test) == 6 and ds.classes == ("blue", "green", "red")
    assert ds.source["file"] == "colours.zip" and len(ds.source["sha256"]) == 64


# ---- training, the lab and the command line ---------------------------------------------------------------------


def test_a_run_on_uploaded_images_learns_and_says_what_it_trained_on(engine_one_torch_thread):
    images = parse_upload("colours.zip", zip_of(class_files(per_class=10)))
    lab = Lab(limiter=JobLimiter(1))
    ref = lab.add_upload(images)
    cfg = RunConfig(dataset=ref, steps=100, batch_size=8, width=8, depth=2, eval_every=50, lr=0.05, samples=64)
    lab.start([cfg])
    lab.job.join(60)
    run = lab.job.runs[0]
    assert run.status == "finished" and run.final_test_acc > 0.9  # chance is 1/3
    meta = run.history.meta["dataset"]
    assert meta["file"] == "colours.zip" and meta["ref"] == ref and meta["classes"] == ["blue", "green", "red"]
    lab.reset()


def test_lab_keeps_the_newest_two_uploads_and_explains_a_missing_one():
    lab = Lab(limiter=JobLimiter(1))
    refs = [lab.add_upload(parse_upload(f"{i}.zip", zip_of(class_files(per_class=2 + i)))) for i in range(3)]
    assert list(lab.uploads) == refs[1:]
    with pytest.raises(UserDataError, match="not available.*upload it again"):
        lab.start([RunConfig(dataset=refs[0], batch_size=2)])
    with pytest.raises(ValueError, match="12 hex"):
        RunConfig(dataset="upload:xyz").validate()


def test_job_on_a_path_and_cli(tmp_path, capsys):
    (tmp_path / "c.zip").write_bytes(zip_of(class_files()))
    job = Job(RunConfig(dataset=str(tmp_path / "c.zip"), steps=2, batch_size=4, eval_every=1, samples=16))
    assert job.runs[0].dataset.classes == ("blue", "green", "red")
    folder = tmp_path / "imgs"
    for name, data in class_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    out = tmp_path / "run"
    small = ["--steps", "5", "--batch-size", "4", "--width", "4", "--depth", "1", "--eval-every", "5", "--quiet"]
    assert main(["run", "--dataset", str(folder), *small, "--out", str(out)]) == 0
    assert '"file": "imgs"' in (out / "run.json").read_text()
    assert main(["report", str(out)]) == 0  # the report names the images' folder, not a path or a hash
    assert "on imgs (your images)" in (out / "report" / "index.html").read_text()
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    assert main(["run", "--dataset", str(tmp_path / "bad.npz"), *small, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m bnviz: bad.npz is not a readable") and "\n" not in err
    assert not (tmp_path / "x").exists()


# ---- the app ----------------------------------------------------------------------------------------------------


def test_app_upload_becomes_the_selected_dataset_and_a_bad_file_changes_nothing(labs):  # noqa: F811
    at = open_page("train")
    data = zip_of(class_files())
    at.file_uploader(key="userdata_file").set_value(("colours.zip", data, "application/zip")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ref = parse_upload("colours.zip", data).ref
    select = at.selectbox(key="cfg_dataset")
    assert select.value == ref and select.options[-1] == "yours: colours.zip"
    assert any("24 images in 3 classes" in s.value for s in at.success)
    at.file_uploader(key="userdata_file").set_value(("broken.zip", b"not a zip", "application/zip")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This file cannot be used: broken.zip is not a readable zip file"]
    assert at.selectbox(key="cfg_dataset").value == ref  # the previous upload is still selected
    at.number_input(key="cfg_steps").set_value(20)
    at.select_slider(key="cfg_batch_size").set_value(8)
    at.toggle(key="twin_on").set_value(False)
    at.button(key="train_start").click().run()
    lab = labs[-1]
    lab.job.join(60)
    assert lab.job.status == "finished" and lab.job.runs[0].dataset.name == "colours.zip"


def test_app_preset_keeps_an_uploaded_dataset_selected(labs):  # noqa: F811
    at = open_page("train")
    data = zip_of(class_files())
    at.file_uploader(key="userdata_file").set_value(("colours.zip", data, "application/zip")).run()
    ref = parse_upload("colours.zip", data).ref
    at.selectbox(key="cfg_preset").set_value("Bad initialization").run()
    assert not at.exception and at.selectbox(key="cfg_dataset").value == ref  # the preset runs on your images
    assert at.select_slider(key="cfg_init_scale").value == 0.01  # and still sets its own settings


def test_app_compare_page_offers_the_upload_to_both_runs(labs):  # noqa: F811
    at = open_page("compare")
    data = zip_of(class_files())
    at.file_uploader(key="userdata_file").set_value(("colours.zip", data, "application/zip")).run()
    assert not at.exception and not at.error
    ref = parse_upload("colours.zip", data).ref
    assert at.selectbox(key="cmpA_dataset").value == ref and at.selectbox(key="cmpB_dataset").value == ref


def test_app_batch_size_is_bounded_by_the_uploaded_training_images(labs):  # noqa: F811
    """Issue 18, item 7: after an upload of 24 images (18 for training), batch 64 is neither kept nor offered."""
    at = open_page("train")
    assert at.select_slider(key="cfg_batch_size").value > 18  # the default is larger than the upload's training set
    data = zip_of(class_files())
    at.file_uploader(key="userdata_file").set_value(("colours.zip", data, "application/zip")).run()
    slider = at.select_slider(key="cfg_batch_size")
    assert not at.exception and slider.value == 16 and max(slider.options, key=int) == "16"
    assert any("at most 16 (lowered from" in c.value and "leave 18 for training" in c.value for c in at.caption)
    at.number_input(key="cfg_steps").set_value(10)
    at.toggle(key="twin_on").set_value(False)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error  # Start works at once, no "larger than the training images"
    labs[-1].job.join(60)
    at.selectbox(key="cfg_dataset").set_value("digits").run()
    assert "256" in at.select_slider(key="cfg_batch_size").options  # the built-in set offers every size again
