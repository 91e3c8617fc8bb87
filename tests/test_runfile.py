"""Run files: pack_runs/unpack_runs round trip, and every malformed or hostile file refused with a ValueError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import bnviz.engine.runfile as runfile
from bnviz.engine.config import RunConfig
from bnviz.engine.runfile import MANIFEST, pack_runs, unpack_runs
from bnviz.engine.trainer import Job

UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    UNPICKLED.append("unpickled")
    return "boom"


class Bomb:
    """Unpickling this calls _mark_unpickled: a stand-in for code run by a malicious pickle."""

    def __reduce__(self):
        return _mark_unpickled, ()


@pytest.fixture(scope="module")
def histories(engine_digits):
    job = Job([RunConfig(width=4, depth=2, steps=12, eval_every=5),
               RunConfig(width=4, depth=2, steps=12, eval_every=5, norm="none")],
              datasets={("digits", 0, 0.5): engine_digits}).run_to_end()
    return [run.history for run in job.runs]


@pytest.fixture(scope="module")
def packed(histories):
    return pack_runs(["BN", "no BN"], histories)


def rebuild(data: bytes, drop=(), add=None) -> bytes:
    """The same zip without the members in `drop` and with the members in `add` (name -> bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename not in drop and info.filename not in (add or {}):
                dst.writestr(info, src.read(info))
        for name, content in (add or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


def manifest(runs, labels=None) -> bytes:
    return json.dumps({"format": "bnviz-runs", "version": 1, "runs": runs,
                       "labels": labels if labels is not None else ["x"] * len(runs)}).encode()


def refused(data: bytes, words: str = "") -> str:
    with pytest.raises(ValueError) as info:
        unpack_runs(data)
    assert words in str(info.value)
    return str(info.value)


def test_round_trip_keeps_labels_and_every_array(packed, histories):
    labels, loaded = unpack_runs(packed)
    assert labels == ["BN", "no BN"]
    for before, after in zip(histories, loaded, strict=True):
        assert len(after) == len(before) == 12
        assert after.layout == before.layout
        assert set(after.data) == set(before.data)
        for name, array in before.data.items():
            np.testing.assert_array_equal(after.data[name][:len(after)], array[:len(before)], err_msg=name)
        np.testing.assert_array_equal(after.hist_edges, before.hist_edges)
        assert after.meta["config"] == before.meta["config"]
        assert after.meta["summary"]["status"] == "finished"


def test_the_zip_holds_only_plain_files(packed):
    with zipfile.ZipFile(io.BytesIO(packed)) as zf:
        names = zf.namelist()
        info = json.loads(zf.read(MANIFEST))
    assert MANIFEST in names and info["labels"] == ["BN", "no BN"]
    for name in names:
        if name != MANIFEST:
            folder, file = name.split("/")
            assert folder in info["runs"] and file in runfile.ALLOWED_FILES


def test_refuses_bytes_that_are_not_a_zip():
    refused(b"PK\x03\x04 definitely not a zip", "not a zip")
    refused(b"", "not a zip")


def test_refuses_a_truncated_zip(packed):
    refused(packed[: len(packed) // 2])
    refused(packed[:-30])


def test_refuses_a_zip_without_the_manifest(packed):
    refused(rebuild(packed, drop={MANIFEST}), MANIFEST)


def test_refuses_a_plain_zip():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("notes.txt", "hello")
    refused(out.getvalue(), MANIFEST)


@pytest.mark.parametrize("runs", [["../x"], ["1_BN/../../x"], ["/etc"], ["a\\..\\b"], [""], [7]])
def test_refuses_path_traversal_in_the_manifest(packed, runs):
    refused(rebuild(packed, add={MANIFEST: manifest(runs)}), "unexpected run names")


def test_refuses_a_bad_label(packed):
    refused(rebuild(packed, add={MANIFEST: manifest(["1_BN", "2_no_BN"], ["ok", "<script>"])}),
            "unexpected run names")


@pytest.mark.parametrize("runs", [[], ["a", "b", "c", "d", "e"]])
def test_refuses_no_runs_or_too_many(packed, runs):
    refused(rebuild(packed, add={MANIFEST: manifest(runs)}), "no runs, or too many")


@pytest.mark.parametrize("name", ["1_BN/evil.py", "1_BN/../../evil", "1_BN/sub/run.json", "1_BN/"])
def test_refuses_unexpected_member_names(packed, name):
    refused(rebuild(packed, add={name: b"x"}), "unexpected file")


def test_refuses_an_oversized_payload(packed, monkeypatch):
    monkeypatch.setattr(runfile, "MAX_ZIP_BYTES", len(packed) - 1)
    refused(packed, "the limit is")


def test_refuses_a_payload_too_large_once_unpacked(packed, monkeypatch):
    monkeypatch.setattr(runfile, "MAX_UNPACKED_BYTES", 1000)
    refused(packed, "too large once unpacked")


def test_refuses_a_pickled_object_array_without_unpickling_it(packed):
    buffer = io.BytesIO()
    np.savez(buffer, loss=np.array([Bomb(), Bomb()], dtype=object))
    UNPICKLED.clear()
    message = refused(rebuild(packed, add={"1_BN/arrays.npz": buffer.getvalue()}), "arrays.npz")
    assert "refused" in message
    assert UNPICKLED == []
    np.load(io.BytesIO(buffer.getvalue()), allow_pickle=True)["loss"]  # the bomb is real: loading it with pickle
    assert UNPICKLED == ["unpickled", "unpickled"]  # would have run its code


def test_refuses_a_damaged_npz_member(packed):
    refused(rebuild(packed, add={"1_BN/histograms.npz": b"PK\x03\x04 not really"}), "histograms.npz")


def test_refuses_a_missing_member(packed):
    refused(rebuild(packed, drop={"2_no_BN/arrays.npz"}), "arrays.npz is missing")


# ---- bugs found while writing these tests: malformed files that escape as other exceptions ----------------------
@pytest.mark.parametrize("runs", [["."], [".."], ["1_BN", "1_BN"]])
def test_refuses_dot_and_duplicate_run_names(packed, runs):
    refused(rebuild(packed, add={MANIFEST: manifest(runs)}))


def test_refuses_a_deeply_nested_manifest(packed):
    refused(rebuild(packed, add={MANIFEST: b"[" * 100_000}))


def _corrupt_member(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    damaged[start + 2:start + 22] = b"\xff" * 20  # inside the member's compressed data; the directory is intact
    return bytes(damaged)


@pytest.mark.parametrize("member", [MANIFEST, "1_BN/arrays.npz"])
def test_refuses_a_damaged_member(packed, member):
    refused(_corrupt_member(packed, member))


@pytest.mark.parametrize("name", ["../evil", "stray.txt"])
def test_refuses_members_outside_the_run_folders(packed, name):
    refused(rebuild(packed, add={name: b"x"}))


def zipped_folder(history, tmp_path, prefix: str, extra: dict | None = None) -> bytes:
    """A run folder written by History.save, zipped with its files under `prefix` ("" = at the top)."""
    directory = history.save(tmp_path / "saved")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.iterdir()):
            zf.write(path, prefix + path.name)
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize("prefix", ["", "my run/"])
def test_opens_a_zipped_run_folder(histories, tmp_path, prefix):
    labels, loaded = unpack_runs(zipped_folder(histories[0], tmp_path, prefix))
    assert labels == [prefix.rstrip("/") or "run"] and len(loaded) == 1
    for name in ("act_stats", "channels", "scalars"):
        np.testing.assert_array_equal(loaded[0].column(name), histories[0].column(name))


def test_opens_a_zipped_watched_run(tmp_path):
    import torch

    from bnviz import watch
    from bnviz.engine.example_models import mlp

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))  # mlp(): 64 inputs, 10 classes
    with watch(model) as w:
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss=loss.item())
    labels, loaded = unpack_runs(zipped_folder(w.history, tmp_path, "mlp/"))
    assert labels == ["mlp"] and list(loaded[0].steps) == [0, 1, 2]
    assert loaded[0].layout.layers == w.history.layout.layers


@pytest.mark.parametrize("extra,words", [({"notes.txt": b"hi"}, "unexpected file"),
                                         ({"other/run.json": b"{}"}, "not one zipped run folder"),
                                         ({"my run/../x": b"1"}, "unexpected file")])
def test_refuses_a_zipped_folder_with_stray_or_second_runs(histories, tmp_path, extra, words):
    refused(zipped_folder(histories[0], tmp_path, "my run/", extra), words)


def test_refuses_a_zipped_folder_with_an_unsafe_name(histories, tmp_path):
    refused(zipped_folder(histories[0], tmp_path, "../up/"), "unexpected run names")


def test_refuses_a_run_that_would_take_more_memory_than_any_recording(packed):
    """run.json may claim a capacity far beyond its rows: a few KB of upload must not reserve gigabytes."""
    with zipfile.ZipFile(io.BytesIO(packed)) as zf:
        info = json.loads(zf.read("1_BN/run.json"))
    rows = runfile.MAX_RUN_MEMORY // 1000  # more rows than MAX_RUN_MEMORY allows for any layout (rows >= 1 KB)
    tampered = rebuild(packed, add={"1_BN/run.json": json.dumps({**info, "capacity": rows}).encode()})
    refused(tampered, "malformed")
    unpack_runs(rebuild(packed, add={"1_BN/run.json": json.dumps({**info, "capacity": 4096}).encode()}))  # the
    # capacity a recording of this size really has still opens


def test_refuses_a_zipped_run_folder_that_would_take_more_memory_than_any_recording(histories, tmp_path):
    data = zipped_folder(histories[0], tmp_path, "my run/")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = json.loads(zf.read("my run/run.json"))
    rows = runfile.MAX_RUN_MEMORY // 1000
    refused(rebuild(data, add={"my run/run.json": json.dumps({**info, "capacity": rows}).encode()}), "malformed")
