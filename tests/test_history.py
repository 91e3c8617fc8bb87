"""bnviz.engine.history: bounded decimating store, safe save/load (never unpickles), tidy CSV exports."""

from __future__ import annotations

import io
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnviz.engine.history import ACT_STATS, FORMAT_VERSION, GRAD_STATS, SCALARS, History, Layout, capacity_for

UNPICKLED: list[str] = []  # a payload that reaches this list proves that something was unpickled


def _record_unpickling(tag):
    UNPICKLED.append(tag)
    return tag


class Payload:
    def __reduce__(self):
        return (_record_unpickling, ("unpickled!",))


def layout() -> Layout:
    return Layout(layers=["block1", "block2"], probes=[(0, "pre"), (0, "norm"), (0, "act"), (1, "pre"), (1, "act")],
                  act_kinds=["", "", "relu", "", "tanh"], weights=["block1.weight", "block2.weight", "head.weight"],
                  norm_layers=[(0, "batch", 3)], bins=8)


def random_row(h: History, rng: np.random.Generator, step: int) -> dict:
    row = h.new_row()
    for value in row.values():
        if value.dtype.kind == "f":
            value[...] = rng.normal(size=value.shape)
            value[rng.random(value.shape) < 0.05] = np.nan  # NaN must survive save/load
    row["step"] = np.int64(step)
    row["scalars"][SCALARS.index("loss")] = step  # ties the row's contents to its step
    return row


def filled(capacity=8, records=21, every=5, seed=0) -> History:
    h = History(layout(), capacity=capacity)
    rng = np.random.default_rng(seed)
    h.hist_edges[:] = np.sort(rng.normal(size=h.hist_edges.shape), axis=1)
    for i in range(records):
        h.append(random_row(h, rng, i * every))
    h.meta = {"config": {"lr": 0.1, "norm": "batch"}, "summary": {"status": "finished", "final_test_acc": 0.93}}
    return h


# ---- decimation ------------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(capacity=st.sampled_from([4, 6, 8, 10, 16]), records=st.integers(1, 150), every=st.integers(1, 7))
def test_decimation_keeps_step_0_the_latest_and_an_even_stride(capacity, records, every):
    h = History(layout(), capacity=capacity)
    size = h.nbytes()
    for i in range(records):
        row = h.new_row()
        row["step"] = np.int64(i * every)
        row["scalars"][0] = i
        h.append(row)
        assert h.nbytes() == size  # fixed memory, also after it fills
        assert 1 <= len(h) <= capacity
        steps, rec = h.steps, h.column("record")
        assert steps[0] == 0 and steps[-1] == i * every  # step 0 and the latest are always there
        np.testing.assert_array_equal(h.scalar("loss"), rec)  # each row kept its own contents
        np.testing.assert_array_equal(steps, rec * every)
        body = rec[:-1] if rec[-1] % h.stride else rec  # a latest record off the grid is a provisional last row
        np.testing.assert_array_equal(body, np.arange(len(body)) * h.stride)  # evenly strided from 0
        assert np.all(np.diff(rec) > 0)
        if i + 1 > capacity:  # once decimating, at least half the rows stay in use
            assert len(h) >= capacity // 2
    # the stride is the smallest power of two that fits all kept records
    assert h.stride == 1 or (records - 1) // (h.stride // 2) + 1 > capacity - 1


def test_memory_stays_flat_for_a_long_run():
    h = History(layout(), capacity=16)
    size = h.nbytes()
    row = h.new_row()
    for i in range(5000):
        row["step"] = np.int64(i)
        h.append(row)
    assert h.nbytes() == size and len(h) <= 16 and h.steps[0] == 0 and h.steps[-1] == 4999


def test_capacity_rules():
    assert capacity_for(layout()) % 2 == 0 and 256 <= capacity_for(layout()) <= 4096
    for bad in (3, 2, 7):
        with pytest.raises(ValueError, match="capacity"):
            History(layout(), capacity=bad)


@pytest.mark.parametrize("how", ["copy", "snapshot"])
def test_copy_is_independent_and_safe_while_appending(how):
    h = filled(capacity=8, records=5)
    snap = getattr(h, how)()
    before = {k: v.copy() for k, v in snap.data.items()}
    rng = np.random.default_rng(1)
    for i in range(40):  # decimates the original several times
        h.append(random_row(h, rng, 100 + i))
    for k, v in snap.data.items():
        np.testing.assert_array_equal(v, before[k])
    assert len(snap) == 5 and snap.meta == h.meta and snap.meta is not h.meta

    stop = threading.Event()
    errors = []

    def writer():
        r = np.random.default_rng(2)
        i = 1000
        while not stop.is_set():
            h.append(random_row(h, r, i))
            i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            c = getattr(h, how)()
            n = len(c)
            if not all(len(v) == n for v in c.data.values()) or not np.all(np.diff(c.steps) > 0):
                errors.append(c.steps)
            np.testing.assert_array_equal(c.scalar("loss"), c.steps)
    finally:
        stop.set()
        thread.join(5)
    assert not errors


def test_snapshots_keep_what_they_saw_while_the_history_appends_and_decimates():
    """Every snapshot taken along a run that decimates many times still holds exactly the rows it was taken with,
    shares them with the live history while they are final (no copy), and cannot be written to."""
    h = History(layout(), capacity=8)
    rng = np.random.default_rng(3)
    taken, shared = [], 0
    for i in range(120):
        h.append(random_row(h, rng, i))
        snap = h.snapshot()
        taken.append((snap, {k: v.copy() for k, v in h.data.items()}, len(h)))
        shared += np.shares_memory(snap.data["act_hist"], h.data["act_hist"])
        assert not h._last_is_provisional or not np.shares_memory(snap.data["act_hist"], h.data["act_hist"])
        with pytest.raises(ValueError, match="read-only"):
            snap.data["act_stats"][0] = 0.0
    for snap, data, n in taken:
        assert len(snap) == n
        for k, v in snap.data.items():
            np.testing.assert_array_equal(v, data[k][:n], err_msg=k)
    assert shared >= 10  # the cheap path is taken: before the first decimation, and on every final last row


def test_a_snapshot_copies_a_long_runs_rows_without_holding_the_append_lock(monkeypatch):
    """With a provisional last row, the rows before it are copied after the lock is released: the training thread
    can append meanwhile (here: during the copy, from another thread), and the snapshot still holds only its rows."""
    import bnviz.engine.history as history_module

    h = History(layout(), capacity=8)
    rng = np.random.default_rng(5)
    i = 0
    while i < 9 or not h._last_is_provisional:  # decimated, and the last row is provisional
        h.append(random_row(h, rng, i))
        i += 1
    before = {k: v[: len(h)].copy() for k, v in h.data.items()}
    appended = []
    original = history_module._with_last_row

    def append_meanwhile(final, last):
        if not appended:
            writer = threading.Thread(target=lambda: appended.append(h.append(random_row(h, rng, i))))
            writer.start()
            writer.join(10)
            assert appended, "the append waited for the snapshot's copy"
        return original(final, last)

    monkeypatch.setattr(history_module, "_with_last_row", append_meanwhile)
    snap = h.snapshot()
    assert appended and h.records == i + 1
    assert len(snap) == len(before["step"]) and snap.records == i
    for k, v in snap.data.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# ---- save / load -----------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(capacity=st.sampled_from([4, 6, 8, 16]), chunks=st.lists(st.integers(1, 9), min_size=1, max_size=12),
       missing=st.sampled_from(["", "ics", "scalars"]))
def test_extend_stores_what_appending_the_rows_one_by_one_stores(capacity, chunks, missing):
    """A recorder hands a chunk of rows over at once; the history must be the same as after appending them in
    order, whether they fit (slice assignment) or the history decimates in between; a column a chunk does not
    give is unknown (NaN) either way."""
    rng = np.random.default_rng(len(chunks))
    one_by_one, at_once = History(layout(), capacity=capacity), History(layout(), capacity=capacity)
    step = 0
    for count in chunks:
        rows = [random_row(one_by_one, rng, step + i) for i in range(count)]
        step += count
        for row in rows:
            row.pop(missing, None)
            one_by_one.append(row)
        at_once.extend({name: np.stack([row[name] for row in rows]) for name in rows[0]}, count)
    assert_same(one_by_one, at_once)


def assert_same(a: History, b: History):
    assert a.layout == b.layout
    assert (len(a), a.stride, a.records, a._last_is_provisional) == (len(b), b.stride, b.records,
                                                                     b._last_is_provisional)
    assert a.data.keys() == b.data.keys()
    for name in a.data:
        np.testing.assert_array_equal(a.column(name), b.column(name), err_msg=name)
        assert a.column(name).dtype == b.column(name).dtype
    np.testing.assert_array_equal(a.hist_edges, b.hist_edges)
    np.testing.assert_array_equal(a.grad_edges, b.grad_edges)
    assert a.meta == b.meta


@pytest.mark.parametrize("records", [0, 1, 7, 8, 9, 23])
def test_save_load_round_trip(tmp_path, records):
    h = filled(capacity=8, records=records)
    out = h.save(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "histograms.npz", "layers.csv", "run.json",
                                                     "scalars.csv"]
    loaded = History.load(out)
    assert_same(h, loaded)
    # both go on identically: same decimation, same rows
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    for i in range(records, records + 13):
        h.append(random_row(h, rng_a, 5 * i))
        loaded.append(random_row(loaded, rng_b, 5 * i))
    assert_same(h, loaded)


def test_saved_meta_is_plain_json(tmp_path):
    h = filled(records=3)
    h.meta["summary"]["nan"] = float("nan")
    h.meta["numpy"] = {"value": np.float32(0.5), "count": np.int64(3)}
    h.save(tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["format"] == "bnviz-history" and info["version"] == FORMAT_VERSION
    assert info["meta"]["summary"]["nan"] is None and info["meta"]["numpy"] == {"value": 0.5, "count": 3}


@pytest.fixture
def saved(tmp_path) -> Path:
    return filled(capacity=8, records=11).save(tmp_path / "run")


def _copy(saved: Path, tmp_path: Path, name="bad") -> Path:
    target = tmp_path / name
    shutil.copytree(saved, target)
    return target


def test_load_rejects_missing_files(saved, tmp_path):
    with pytest.raises(ValueError, match="run.json"):
        History.load(tmp_path / "nowhere")
    for name in ("run.json", "arrays.npz", "histograms.npz"):
        bad = _copy(saved, tmp_path, name)
        (bad / name).unlink()
        with pytest.raises(ValueError, match=name.split(".")[0]):
            History.load(bad)


def test_load_rejects_truncated_and_corrupted_npz(saved, tmp_path):
    for name in ("arrays.npz", "histograms.npz"):
        raw = (saved / name).read_bytes()
        for cut in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
            bad = _copy(saved, tmp_path, f"{name}-{cut}")
            (bad / name).write_bytes(raw[:cut])
            with pytest.raises(ValueError, match=name):
                History.load(bad)
        bad = _copy(saved, tmp_path, f"{name}-text")
        (bad / name).write_text("this is not a zip file")
        with pytest.raises(ValueError, match=name):
            History.load(bad)


def test_load_of_a_corrupted_npz_raises_value_error_or_loads(saved, tmp_path):
    """Flip one byte at many places: loading either works (a byte the reader ignores) or raises ValueError."""
    original = History.load(saved)
    for name in ("arrays.npz", "histograms.npz"):
        raw = (saved / name).read_bytes()
        bad = _copy(saved, tmp_path, f"flip-{name}")
        for pos in range(0, len(raw), max(1, len(raw) // 60)):
            flipped = bytearray(raw)
            flipped[pos] ^= 0xFF
            (bad / name).write_bytes(bytes(flipped))
            try:
                loaded = History.load(bad)
            except ValueError:
                continue
            assert len(loaded) == len(original)


@pytest.mark.parametrize(("bit", "reason"), [(0x01, "encrypted"), (0x20, "patched data"), (0x40, "strong encryption")])
def test_load_rejects_npz_members_zipfile_cannot_read(saved, tmp_path, bit, reason):
    """zipfile raises RuntimeError / NotImplementedError for these flags: load must say ValueError."""
    bad = _copy(saved, tmp_path)
    raw = bytearray((bad / "arrays.npz").read_bytes())
    central = raw.index(b"PK\x01\x02")  # first central directory entry; its flag bits are at offset 8
    raw[central + 8] |= bit
    (bad / "arrays.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="arrays.npz"):
        History.load(bad)


def test_load_rejects_an_npz_member_claiming_an_absurd_shape(saved, tmp_path):
    """A 100-byte .npy header can claim petabytes: refused with ValueError, not MemoryError."""
    bad = _copy(saved, tmp_path)
    with np.load(bad / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**15,)}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"\0" * 64)
    with zipfile.ZipFile(bad / "arrays.npz", "w") as z:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.save(buf, v)
            z.writestr(f"{k}.npy", buf.getvalue())
        z.writestr("huge.npy", member.getvalue())
    with pytest.raises(ValueError, match="arrays.npz"):
        History.load(bad)


def test_load_refuses_pickled_object_arrays_without_unpickling(saved, tmp_path):
    UNPICKLED.clear()
    for name, key in (("arrays.npz", "scalars"), ("arrays.npz", "extra"), ("histograms.npz", "act_edges")):
        bad = _copy(saved, tmp_path, f"pickle-{name}-{key}")
        with np.load(bad / name) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[key] = np.array([Payload(), Payload()], dtype=object)
        np.savez(bad / name, **arrays)  # allow_pickle defaults to True when saving
        with pytest.raises(ValueError, match="refused"):
            History.load(bad)
    assert UNPICKLED == []
    # the payload is live: loading it with pickle allowed would run it (so the check above can fail)
    with np.load(tmp_path / "pickle-arrays.npz-scalars" / "arrays.npz", allow_pickle=True) as npz:
        npz["scalars"]
    assert UNPICKLED == ["unpickled!", "unpickled!"]
    UNPICKLED.clear()


@pytest.mark.parametrize(("file", "key", "value", "words"), [
    ("arrays.npz", "scalars", np.zeros((11, 3)), "scalars should have shape"),
    ("arrays.npz", "act_stats", np.zeros((10, 5, len(ACT_STATS)), np.float32), "act_stats"),
    ("arrays.npz", "channels", None, "channels"),  # missing
    ("arrays.npz", "step", np.array(["a"] * 11), "step"),  # not numbers
    ("histograms.npz", "act_hist", np.zeros((11, 5, 9), np.float32), "act_hist"),
    ("histograms.npz", "grad_hist", None, "grad_hist"),
    ("histograms.npz", "act_edges", np.zeros((5, 8), np.float32), "edges"),
    ("histograms.npz", "act_edges", None, "edges"),
])
def test_load_rejects_wrong_shapes(saved, tmp_path, file, key, value, words):
    bad = _copy(saved, tmp_path)
    with np.load(bad / file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if value is None:
        del arrays[key]
    else:
        arrays[key] = value
    np.savez_compressed(bad / file, **arrays)
    with pytest.raises(ValueError, match=words):
        History.load(bad)


def _info(saved: Path) -> dict:
    return json.loads((saved / "run.json").read_text())


@pytest.mark.parametrize(("change", "words"), [
    (lambda i: {**i, "format": "something-else"}, "not a bnviz run"),
    (lambda i: {k: v for k, v in i.items() if k != "format"}, "not a bnviz run"),
    (lambda i: {**i, "version": 2}, "version 2"),
    (lambda i: {**i, "version": "1"}, "version '1'"),
    (lambda i: {**i, "version": None}, "version None"),
    (lambda i: [i], "not a bnviz run"),
    (lambda i: "run", "not a bnviz run"),
    (lambda i: {**i, "layout": "garbage"}, "malformed"),
    (lambda i: {**i, "layout": {**i["layout"], "probes": [[7, "pre"]] * 5}}, "malformed"),
    (lambda i: {**i, "layout": {**i["layout"], "probes": [1, 2, 3, 4, 5]}}, "malformed"),
    (lambda i: {**i, "layout": {k: v for k, v in i["layout"].items() if k != "weights"}}, "malformed"),
    (lambda i: {**i, "layout": {**i["layout"], "act_kinds": ["relu"]}}, "malformed"),
    (lambda i: {**i, "layout": {**i["layout"], "bins": 10**9}}, "malformed"),
    (lambda i: {**i, "n": "many"}, "malformed"),
    (lambda i: {**i, "n": -3}, "malformed|damaged"),
    (lambda i: {k: v for k, v in i.items() if k != "n"}, "malformed"),
    (lambda i: {**i, "n": 12}, "damaged"),
    (lambda i: {**i, "stride": {"a": 1}}, "malformed"),
    (lambda i: {**i, "records": [1]}, "malformed"),
    (lambda i: {**i, "capacity": 10**15}, "malformed"),  # must be refused before allocating petabytes
    (lambda i: {**i, "capacity": 10**400}, "malformed"),
    (lambda i: {**i, "layout": {**i["layout"], "bins": 4096, "probes": [[0, "pre"]] * 90_000,
                                "act_kinds": [""] * 90_000}}, "malformed"),  # gigabytes per row
], ids=range(22))
def test_load_rejects_bad_run_json(saved, tmp_path, change, words):
    bad = _copy(saved, tmp_path)
    (bad / "run.json").write_text(json.dumps(change(_info(saved))))
    with pytest.raises(ValueError, match=words):
        History.load(bad)


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe\x00garbage", b"null", b"[" * 100_000, b"NaN"])
def test_load_rejects_garbage_run_json(saved, tmp_path, content):
    bad = _copy(saved, tmp_path)
    (bad / "run.json").write_bytes(content)
    with pytest.raises(ValueError, match="not a bnviz run"):
        History.load(bad)


# ---- tidy exports ----------------------------------------------------------------------------------------------
def test_csv_exports_have_the_cli_columns(saved):
    h = History.load(saved)
    scalars = pd.read_csv(saved / "scalars.csv")
    assert {"step", "loss", "lr", "test_acc"} <= set(scalars.columns)
    assert list(scalars["step"]) == list(h.steps)
    np.testing.assert_allclose(scalars["loss"], h.scalar("loss"))
    np.testing.assert_allclose(scalars["lr"], h.scalar("lr"), equal_nan=True, rtol=1e-12)

    layers = pd.read_csv(saved / "layers.csv")
    assert {"step", "layer", "stage", "mean", "std", "p15", "p50", "p85"} <= set(layers.columns)
    assert len(layers) == len(h) * len(h.layout.probes)
    assert set(layers["stage"]) == {"pre", "norm", "act"}
    assert sorted(set(layers["layer"])) == [1, 2]  # 1-based
    assert set(layers["layer_name"]) == {"block1", "block2"}
    for k, (layer, stage) in enumerate(h.layout.probes):
        part = layers[(layers["layer"] == layer + 1) & (layers["stage"] == stage)]
        assert list(part["step"]) == list(h.steps)
        for stat in ("mean", "std", "p15", "p50", "p85"):
            np.testing.assert_allclose(part[stat], h.act(stat)[:, k], rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(part["grad_norm"], h.column("grad_stats")[:, k, GRAD_STATS.index("grad_norm")],
                                   rtol=1e-6, equal_nan=True)


def test_frames():
    h = filled(records=4)
    w = h.weights_frame()
    assert len(w) == 4 * 3 and list(w["weight"][:3]) == h.layout.weights
    c = h.channels_frame()
    assert len(c) == 4 * 3 and list(c["channel"][:3]) == [0, 1, 2] and set(c["layer"]) == {1}
    np.testing.assert_array_equal(c["gamma"].to_numpy().reshape(4, 3), h.column("channels")[:, :, 0])
