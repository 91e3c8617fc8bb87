"""Reading a user's file from disk: only regular files, only up to a size limit.

A FIFO blocks forever and a device (`/dev/zero`) never ends, so every path bnviz reads (a dataset folder, a run
folder, a file named on the command line) goes through `read_regular`: the file is opened without blocking, its
kind and size are checked on the open file (no race with a rename), and only then is it read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import BnvizError


def read_regular(path: str | os.PathLike, max_bytes: int, error: type[BnvizError]) -> bytes:
    """The bytes of `path`, if it is a regular file (a link to one is fine) of at most `max_bytes`."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path.name} is missing") from None
    except OSError as exc:
        raise error(f"{path.name} cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        check_regular(path, info, max_bytes, error)
        data = f.read(info.st_size + 1)  # read(n) allocates n bytes up front: ask for what the file holds
    if len(data) > max_bytes:  # it grew since fstat
        raise error(f"{path.name} is larger than the limit of {max_bytes / 1e6:,.0f} MB")
    return data


def regular_size(path: str | os.PathLike, max_bytes: int, error: type[BnvizError]) -> int:
    """The size of `path` once it is known to be a regular file (following links) of at most `max_bytes`."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path.name} is missing") from None
    except OSError as exc:
        raise error(f"{path.name} cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    check_regular(path, info, max_bytes, error)
    return info.st_size


def check_regular(path: Path, info: os.stat_result, max_bytes: int, error: type[BnvizError]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path.name} is not a regular file (a FIFO, a device or a folder): refused")
    if info.st_size > max_bytes:
        raise error(f"{path.name} is {info.st_size / 1e6:,.0f} MB; the limit is {max_bytes / 1e6:,.0f} MB")
