"""Reading an NPZ file without trusting it: every member's `.npy` header first, then only the data it declares.

`np.load` reads whatever an NPZ holds, so a small file can ask for gigabytes (one extra, highly compressed array).
Here the header of every member (shape, dtype) is read from the member's stream and handed to the caller's check
(an allow-list of names with their shapes and dtypes) and to the memory budget before a single value is read.
Object arrays are refused (nothing is unpickled); any damage (truncated data, unknown or unsupported compression,
a password flag) raises the caller's error type with a one-line message.
"""

from __future__ import annotations

import io
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from ..errors import BnvizError

MAX_MEMBERS = 32  # an NPZ of bnviz holds at most 8 arrays; more is not a file we wrote or asked for
MAX_HEADER_BYTES = 10_000  # numpy's own default limit for a .npy header
# what reading a damaged or crafted member can raise: zipfile, zlib, bz2 (OSError), lzma, numpy's format checks,
# Deflate64 or another unknown method (NotImplementedError), a password flag (RuntimeError)
DAMAGE = (OSError, EOFError, ValueError, KeyError, struct.error, zipfile.BadZipFile, zlib.error, lzma.LZMAError,
          NotImplementedError, RuntimeError, UnicodeDecodeError)


@dataclass(frozen=True)
class Header:
    """What a member's `.npy` header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= int(dim)
        return count * self.dtype.itemsize


def read_npz(source: bytes | str | os.PathLike, name: str, check: Callable[[dict[str, Header]], None],
             max_bytes: int, error: type[BnvizError]) -> dict[str, np.ndarray]:
    """The arrays of an NPZ file (bytes or a path), read only after `check(headers)` accepted every member's
    declared name, shape and dtype (it raises `error` otherwise) and their total size fits `max_bytes`."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            infos = _members(zf, name, error)
            headers = {key: _header(zf, info, name, error) for key, info in infos.items()}
            check(headers)
            total = sum(h.nbytes for h in headers.values())
            if total > max_bytes:
                raise error(f"{name} declares arrays of {total / 1e6:,.0f} MB; the limit is "
                            f"{max_bytes / 1e6:,.0f} MB")
            return {key: _array(zf, info) for key, info in infos.items()}
    except BnvizError:
        raise
    except DAMAGE as exc:
        raise error(f"{name} is damaged or not an NPZ file ({exc.__class__.__name__})") from None


def _members(zf: zipfile.ZipFile, name: str, error: type[BnvizError]) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise error(f"{name} holds {len(infos):,} arrays; the limit is {MAX_MEMBERS}")
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy") or info.flag_bits & 0x1:
            raise error(f"{name} holds {info.filename!r}, which is not a plain .npy array")
        key = info.filename[:-len(".npy")]
        if key in members:
            raise error(f"{name} holds the array {key!r} twice")
        members[key] = info
    return members


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, error: type[BnvizError]) -> Header:
    with zf.open(info) as stream:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_BYTES)
        else:
            raise error(f"{name}: {info.filename} uses .npy format {version}, which is not read")
    if dtype.hasobject:
        raise error(f"{name} was refused: it holds Python objects (pickled arrays) in {info.filename!r}, which "
                    "are never loaded; save plain numeric arrays and a string array of names")
    return Header(tuple(int(d) for d in shape), dtype)


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as stream:
        return npy_format.read_array(stream, allow_pickle=False, max_header_size=MAX_HEADER_BYTES)


def expect(headers: dict[str, Header], name: str, shapes: dict[str, tuple | None], kinds: dict[str, str],
           required: tuple[str, ...], error: type[BnvizError]) -> None:
    """The common check: only the names in `shapes`, each `required` one present, each of the declared shape
    (None: any) and of a dtype kind in `kinds[member]` ("fiub", "US", ...)."""
    for key, header in headers.items():
        if key not in shapes:
            raise error(f"{name} holds an unexpected array {key!r}; it may hold only {', '.join(shapes)}")
        want = shapes[key]
        if want is not None and header.shape != tuple(want):
            raise error(f"{name}: {key} should have shape {tuple(want)}, found {header.shape}")
        if header.dtype.kind not in kinds[key]:
            raise error(f"{name}: the array {key!r} is of type {header.dtype}, which is not allowed here")
    missing = [key for key in required if key not in headers]
    if missing:
        raise error(f"{name} has no array {missing[0]!r}")
