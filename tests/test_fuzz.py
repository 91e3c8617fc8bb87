"""Hypothesis fuzz of what a user can hand the app: config dicts (URLs, JSON) and uploaded run files.

A config is valid (and round-trips) or raises ValueError/TypeError with a message. A run file opens (and its charts
draw) or raises ValueError: never another exception, and never unpickles anything: a pickled object that would
create a marker file when loaded is planted in NPZ members, and the marker must never appear.
The hand-written cases live in test_config.py, test_runfile.py and test_history.py; this file throws random ones.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnviz import figures
from bnviz.engine.config import RunConfig
from bnviz.engine.runfile import MANIFEST, pack_runs, unpack_runs
from bnviz.engine.trainer import Job

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = sorted(RunConfig().to_dict())
MEMBERS = ("run.json", "arrays.npz", "histograms.npz")


# ---- config -------------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
config_keys = st.sampled_from(FIELDS) | st.text(max_size=6) | st.integers(-3, 3) | st.none()


@FAST
@given(st.dictionaries(config_keys, json_values, max_size=8) | json_values)
def test_from_dict_gives_a_valid_config_or_a_clear_error(data):
    try:
        cfg = RunConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), "an error without a message"
        assert "not supported between instances" not in str(exc), str(exc)  # Python's words, not ours
        return
    assert cfg.validate() is cfg
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ---- run files: helpers -------------------------------------------------------------------------------------------
MARKER_DIR = Path(__file__).resolve().parent / ".fuzz-marker"  # outside tmp_path: hypothesis reuses no fixtures
MARKER = MARKER_DIR / "unpickled"


class Bomb:
    """Unpickling this creates MARKER: code run by a malicious pickle, observable from outside."""

    def __reduce__(self):
        return open, (str(MARKER), "w")


@pytest.fixture(scope="module", autouse=True)
def marker_watch():
    MARKER_DIR.mkdir(exist_ok=True)
    MARKER.unlink(missing_ok=True)
    yield
    appeared = MARKER.exists()
    MARKER.unlink(missing_ok=True)
    MARKER_DIR.rmdir()
    assert not appeared, "a pickled object was unpickled while opening a run file"


@functools.lru_cache(maxsize=1)
def valid_file() -> bytes:
    job = Job([RunConfig(width=4, depth=2, steps=8, eval_every=4),
               RunConfig(width=4, depth=2, steps=8, eval_every=4, norm="none")]).run_to_end()
    return pack_runs(["BN", "no BN"], [run.history for run in job.runs])


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return out.getvalue()


def opens_or_refuses(data: bytes) -> None:
    """The only two allowed outcomes: ValueError with a message, or runs that every page can draw."""
    try:
        labels, histories = unpack_runs(data)
    except ValueError as exc:
        assert str(exc).strip()
        return
    assert 1 <= len(histories) == len(labels) <= 4
    runs = list(zip(labels, histories, strict=True))
    figures.loss_accuracy(runs)
    figures.distribution_grid(runs, max_points=50)


def test_the_valid_file_opens():
    labels, histories = unpack_runs(valid_file())
    assert labels == ["BN", "no BN"] and [len(h) for h in histories] == [8, 8]


# ---- run files: random and damaged bytes -----------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=2000) | st.binary(max_size=500).map(lambda b: b"PK\x03\x04" + b))
def test_random_bytes_are_refused(data):
    with pytest.raises(ValueError):
        unpack_runs(data)


@FAST
@given(st.data())
def test_a_truncated_file_is_refused(data):
    raw = valid_file()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ValueError):
        unpack_runs(raw[:cut])


@SLOW
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
def test_bit_flips_open_or_are_refused(flips):
    raw = bytearray(valid_file())
    for position, mask in flips:
        raw[position % len(raw)] ^= mask
    opens_or_refuses(bytes(raw))


@SLOW
@given(st.data())
def test_huge_declared_sizes_are_refused_or_harmless(data):
    """Patch a central-directory entry's declared compressed or uncompressed size (up to 4 GB)."""
    raw = bytearray(valid_file())
    entries = [i for i in range(len(raw) - 4) if raw[i:i + 4] == b"PK\x01\x02"]
    entry = data.draw(st.sampled_from(entries))
    offset = data.draw(st.sampled_from([20, 24]))  # compressed size, uncompressed size
    raw[entry + offset:entry + offset + 4] = struct.pack("<I", data.draw(st.integers(0, 2**32 - 1)))
    opens_or_refuses(bytes(raw))


# ---- run files: tampered members ----------------------------------------------------------------------------------
@SLOW
@given(json_values, st.sampled_from([MANIFEST, "1_BN/run.json"]))
def test_a_member_replaced_by_random_json_is_refused_or_harmless(value, name):
    files = members(valid_file())
    files[name] = json.dumps(value).encode()
    opens_or_refuses(zipped(files))


def _paths(obj, prefix=()) -> list[tuple]:
    """Every key path of a JSON object, nested ones included."""
    out = []
    for key, value in obj.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


@SLOW
@given(st.data(), json_values)
def test_run_json_with_a_tampered_field_is_refused_or_harmless(data, value):
    """Set one field (possibly nested) of a real run.json to a random JSON value."""
    files = members(valid_file())
    info = json.loads(files["2_no_BN/run.json"])
    *parents, key = data.draw(st.sampled_from(_paths(info)))
    node = info
    for parent in parents:
        node = node[parent]
    node[key] = value
    files["2_no_BN/run.json"] = json.dumps(info).encode()
    opens_or_refuses(zipped(files))


arrays = st.one_of(
    st.builds(lambda shape, dtype: np.zeros(shape, dtype),
              st.lists(st.integers(0, 5), max_size=3).map(tuple),
              st.sampled_from(["f4", "f8", "i8", "u1", "b", "c8", "U3", "S2", "M8[s]"])),
    st.lists(st.floats(), max_size=5).map(np.array),
    st.just(np.array([Bomb(), Bomb()], dtype=object)),
    st.just(np.array([[Bomb()]], dtype=object)),
)


@SLOW
@given(st.sampled_from(["arrays.npz", "histograms.npz"]), st.dictionaries(
    st.sampled_from(["step", "scalars", "act_stats", "act_hist", "grad_hist", "act_edges", "extra"]), arrays,
    min_size=1, max_size=3))
def test_npz_members_with_random_or_pickled_arrays_are_refused_or_harmless(name, replaced):
    files = members(valid_file())
    with np.load(io.BytesIO(files[f"1_BN/{name}"])) as npz:
        content = {k: npz[k] for k in npz.files}
    content.update(replaced)
    buffer = io.BytesIO()
    np.savez(buffer, **content)  # saving object arrays pickles them: the bomb is in the file
    files[f"1_BN/{name}"] = buffer.getvalue()
    opens_or_refuses(zipped(files))
    assert not MARKER.exists(), "unpickled"


@pytest.mark.parametrize("key", ["config", "summary"])
@pytest.mark.parametrize("value", [True, [1], "batch", None])
def test_meta_config_or_summary_that_is_not_a_mapping_is_dropped(key, value):
    """Found by the fuzz above: meta.config = true made the distribution charts raise AttributeError."""
    files = members(valid_file())
    info = json.loads(files["1_BN/run.json"])
    info["meta"][key] = value
    files["1_BN/run.json"] = json.dumps(info).encode()
    labels, histories = unpack_runs(zipped(files))
    assert key not in histories[0].meta and key in histories[1].meta
    opens_or_refuses(zipped(files))


def damaged_central_directory(raw: bytes, how: str) -> bytes:
    """`raw` (a zip) with its first central-directory entry made unreadable for zipfile.ZipFile itself: an
    unsupported "version needed to extract" (NotImplementedError), or a UTF-8-flagged name that is not UTF-8
    (UnicodeDecodeError). Both raise from the constructor, before any member is read."""
    out = bytearray(raw)
    at = out.index(b"PK\x01\x02")  # the central directory's first entry: sig, versions, flags, ..., name at +46
    if how == "version":
        out[at + 6] = 84  # version 8.4 (the falsifying example hypothesis found)
    else:
        out[at + 9] |= 0x08  # general purpose flag bit 11 (0x0800, high byte of the little-endian flags): UTF-8 name
        out[at + 46] = 0xFF  # ... and its first byte is not
    return bytes(out)


@pytest.mark.parametrize("how", ["version", "utf8 name"])
def test_a_damaged_central_directory_is_refused_with_a_message(how):
    with pytest.raises(ValueError, match="not a bnviz run file"):
        unpack_runs(damaged_central_directory(valid_file(), how))
