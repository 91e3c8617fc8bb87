"""Class folders from a zip file or a directory, read in memory: safe member listing, then PNG/JPEG decoding.

A zip is checked before anything is read (declared sizes, member count, absolute or '..' names, symbolic links,
passwords); a folder is walked without following links. Images are decoded in two passes (headers first: they
decide the auto size and bound the decoding work) and become one square size.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserDataError
from . import files, user_images
from .npz_reader import DAMAGE
from .user_images import UserImages, check_classes, check_values, make_user_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Entry:
    """One zip member or file under a folder: its path parts, and how to read its bytes when needed."""

    parts: tuple[str, ...]
    is_dir: bool
    size: int
    read: Callable[[], bytes]


def open_zip(name: str, data: bytes) -> zipfile.ZipFile:
    """The zip in `data`, once its declared sizes, member count, names, links and encryption pass the checks."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except DAMAGE:  # not a zip, or a damaged central directory (an unknown version: NotImplementedError, ...)
        raise UserDataError(f"{name} is not a readable zip file") from None
    infos = zf.infolist()
    limit = user_images.MAX_UNPACKED_BYTES
    if sum(i.file_size for i in infos) > limit:  # zipfile never reads more than the declared size
        raise UserDataError(f"{name} unpacks to more than {limit / 1e6:,.0f} MB: send fewer or smaller images")
    if len(infos) > 2 * user_images.MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(infos):,} files; the limit is {user_images.MAX_IMAGES:,} images")
    for info in infos:
        member = info.filename
        if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member) or \
                ".." in re.split(r"[/\\]", member):
            raise UserDataError(f"{name} contains an unsafe file name {member!r} (absolute or with '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserDataError(f"{name} contains a symbolic link {member!r}: zip the images themselves")
        if info.flag_bits & 0x1:
            raise UserDataError(f"{name} is password-protected: zip the images without a password")
    return zf


def zip_entries(zf: zipfile.ZipFile) -> list[Entry]:
    """Every member of a checked zip (see open_zip), read lazily."""
    return [Entry(tuple(p for p in re.split(r"[/\\]", info.filename) if p), info.is_dir(), info.file_size,
                  lambda info=info: zf.read(info)) for info in zf.infolist()]


def directory_entries(root: Path) -> list[Entry]:
    """Every file and folder under `root`, read lazily; refused past MAX_UNPACKED_BYTES or twice MAX_IMAGES."""
    entries, total = [], 0
    for folder, dirs, names in os.walk(root):  # does not follow symbolic links to folders
        rel = Path(folder).relative_to(root).parts
        entries += [Entry((*rel, d), True, 0, bytes) for d in dirs]
        for f in names:
            path = Path(folder) / f
            try:
                size = files.regular_size(path, user_images.MAX_FILE_BYTES, UserDataError)
            except UserDataError as exc:
                if path.exists():  # a FIFO, a device or a link to one (even .DS_Store): never opened
                    raise UserDataError(f"{root}: {'/'.join((*rel, f))} was refused: {exc}") from None
                entries.append(Entry((*rel, f), False, 0, bytes))  # a broken link: an image counted as skipped
                continue
            entries.append(Entry((*rel, f), False, size, lambda path=path: files.read_regular(
                path, user_images.MAX_FILE_BYTES, UserDataError)))
            total += size
            if total > user_images.MAX_UNPACKED_BYTES or len(entries) > 2 * user_images.MAX_IMAGES:
                raise UserDataError(f"{root} holds more than {user_images.MAX_UNPACKED_BYTES / 1e6:,.0f} MB or "
                                    f"{user_images.MAX_IMAGES:,} images: use a smaller folder")
    return entries


def entries_hash(entries: list[Entry]) -> str:
    """SHA-256 over the files' relative paths and contents, in sorted order: a folder's fingerprint."""
    h = hashlib.sha256()
    for e in sorted((e for e in entries if not e.is_dir), key=lambda e: e.parts):
        h.update("/".join(e.parts).encode() + b"\0" + str(e.size).encode() + b"\0")
        h.update(e.read())
    return h.hexdigest()


def _junk(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1] in ("Thumbs.db", "desktop.ini")


def images_from_entries(name: str, digest: str, entries: list[Entry], size: int | None) -> UserImages:
    """The image set in class folders (optionally inside one top folder); `size` None picks the auto size."""
    entries = [e for e in entries if e.parts and not _junk(e.parts)]
    images = [e for e in entries if not e.is_dir and e.parts[-1].lower().endswith(IMAGE_SUFFIXES)]
    ignored = sum(1 for e in entries if not e.is_dir) - len(images)
    if len(images) > user_images.MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(images):,} images; the limit is {user_images.MAX_IMAGES:,}")
    tops = {e.parts[0] for e in images}
    wrapped = len(tops) == 1 and all(len(e.parts) == 3 for e in images)
    depth = 1 if wrapped else 0  # the parts before the class folder
    for e in images:
        if len(e.parts) < depth + 2:
            raise UserDataError(f"{name}: '{'/'.join(e.parts)}' is not inside a class folder; put the images in "
                                "one folder per class (cats/1.png, dogs/1.png, ...)")
        if len(e.parts) > depth + 2:
            raise UserDataError(f"{name}: '{'/'.join(e.parts)}' is too deep; use one folder per class with the "
                                "images directly inside (cats/1.png, dogs/1.png, ...)")
    inside = [e for e in entries if e.parts[:depth] == tuple(tops)[:depth] and len(e.parts) > depth]
    folders = {e.parts[depth] for e in inside if e.is_dir or len(e.parts) > depth + 1}
    classes = tuple(sorted(folders, key=_natural))
    check_classes(name, classes)
    labels = np.array([classes.index(e.parts[depth]) for e in images], dtype=np.int64)
    pixels, kept, failures = _decode_all(name, images, size)
    notes = [] if not ignored else [f"{ignored:,} file(s) that are not PNG or JPEG were ignored."]
    return make_user_images(name, digest, pixels, labels[kept], classes, len(images), failures, notes)


def _natural(text: str) -> tuple:
    """Sort key: "2" before "10"."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


def _decode_all(name: str, entries: list[Entry], size: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two passes: read every header (sizes decide the auto size and the decoding budget), then decode.
    Returns RGB uint8 (n, S, S, 3), the indices of the images kept, and one reason per skipped image."""
    from PIL import Image

    readable, sides, failures, total = [], [], [], 0
    for i, e in enumerate(entries):
        where = "/".join(e.parts)
        try:
            blob = e.read()
            with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as im:
                w, h = im.size
        except NotImplementedError:  # e.g. Deflate64, written by some Windows zip tools
            raise UserDataError(f"{name} uses a compression method that cannot be read; zip it again with "
                                "ordinary (deflate) compression") from None
        except (UserDataError, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - Pillow, zlib, lzma and bz2 raise many types (SyntaxError for a broken
            # PNG, LZMAError for a damaged member, ...): any of them means this one image is skipped and counted
            failures.append(f"{where} is not a readable PNG or JPEG")
            continue
        if w * h > user_images.MAX_IMAGE_PIXELS:
            failures.append(f"{where} is {w}x{h}; the limit is {user_images.MAX_IMAGE_PIXELS:,} pixels per image")
            continue
        total += w * h
        if total > user_images.MAX_SOURCE_PIXELS:
            raise UserDataError(f"{name}: the images add up to more than "
                                f"{user_images.MAX_SOURCE_PIXELS / 1e6:,.0f} million pixels; shrink them or send fewer")
        readable.append(i)
        sides.append(max(w, h))
    target = size or _auto_size(sides)
    check_values(name, len(readable), 1, target)
    kept, pixels = [], []
    for i in readable:  # read again rather than hold every file's bytes at once
        try:
            pixels.append(_decode(entries[i].read(), target))
            kept.append(i)
        except (UserDataError, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - as in the first pass: any decoding failure skips this image only
            failures.append(f"{'/'.join(entries[i].parts)} is damaged (cannot be decoded)")
    stack = np.stack(pixels) if pixels else np.zeros((0, target, target, 3), np.uint8)
    return stack, np.array(kept, dtype=np.int64), failures


def _decode(blob: bytes, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as im:
        im.draft(im.mode, (size, size))  # JPEG: decode at a reduced scale, much faster for photos
        im = _eight_bit(ImageOps.exif_transpose(im)).convert("RGBA")  # phone photos: upright as taken
        flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
        flat.alpha_composite(im)  # transparent pixels over white
        rgb = flat.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    return np.asarray(rgb, dtype=np.uint8)


def _eight_bit(im):
    """16-bit grayscale (PNG modes "I;16" and "I") scaled to 0..255: Pillow's own conversion clips at 255."""
    from PIL import Image

    if not im.mode.startswith("I"):
        return im
    values = np.asarray(im).astype(np.float64)
    return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")


def _auto_size(sides: list[int]) -> int:
    if not sides:
        return user_images.AUTO_SIZE_CAP
    common = collections.Counter(sides).most_common(1)[0][0]
    return int(min(max(common, user_images.SIZE_RANGE[0]), user_images.AUTO_SIZE_CAP))
