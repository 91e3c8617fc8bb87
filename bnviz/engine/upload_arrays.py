"""NPZ and CSV files as an image set: arrays of pixels and labels checked, scaled to uint8 and resized.

NPZ: ``x`` (N, H, W) or (N, H, W, C) with C = 1 or 3 (channels first also accepted), ``y`` whole-number labels,
optional ``classes``; read with ``allow_pickle=False``. CSV: a ``label`` column and one column per pixel of a
square grayscale image.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import UserDataError
from . import npz_reader, user_images
from .upload_archives import open_zip
from .user_images import UserImages, check_classes, check_values, make_user_images

CONVERT_BLOCK = 256  # images scaled to uint8 at a time


def read_npz(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(x, y, classes or None) from an NPZ file's bytes; nothing is unpickled, and no data is read before every
    member's .npy header passed the checks (names x, y, classes; their shapes, types and sizes)."""
    with open_zip(name, data):  # the same size, name and link checks as an image zip
        pass
    arrays = npz_reader.read_npz(data, name, lambda headers: _check_npz_headers(name, headers),
                                 user_images.MAX_UNPACKED_BYTES, UserDataError)
    return arrays["x"], arrays["y"], arrays.get("classes")


def _check_npz_headers(name: str, headers: dict[str, npz_reader.Header]) -> None:
    """x, y and classes as declared: the allowed names and types, one label per image, the image and class limits."""
    missing = [k for k in ("x", "y") if k not in headers]
    if missing:
        raise UserDataError(f"{name} has no array {missing[0]!r}: save it with np.savez(path, x=images, y=labels)")
    npz_reader.expect(headers, name, {"x": None, "y": None, "classes": None},
                      {"x": "buif", "y": "buifUS", "classes": "US"}, ("x", "y"), UserDataError)
    x, y, classes = headers["x"], headers["y"], headers.get("classes")
    if x.shape and x.shape[0] > user_images.MAX_IMAGES:
        raise UserDataError(f"{name} holds {x.shape[0]:,} images; the limit is {user_images.MAX_IMAGES:,}")
    if y.shape != x.shape[:1]:
        raise UserDataError(f"{name}: images of shape {x.shape} but labels of shape {y.shape}; need one label "
                            "per image")
    if classes is not None:
        chars = classes.dtype.itemsize // (4 if classes.dtype.kind == "U" else 1)
        if len(classes.shape) != 1 or classes.shape[0] > user_images.MAX_CLASSES:
            raise UserDataError(f"{name}: 'classes' must be a 1-D array of at most {user_images.MAX_CLASSES} "
                                f"names, got shape {classes.shape}")
        if chars > user_images.MAX_CLASS_NAME:
            raise UserDataError(f"{name}: class names of up to {chars:,} characters; the limit is "
                                f"{user_images.MAX_CLASS_NAME}")


def read_csv(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, columns), labels) from a CSV file's bytes with a 'label' column."""
    import pandas as pd

    header = _csv_header(name, data)
    try:
        frame = pd.read_csv(io.BytesIO(data), nrows=user_images.MAX_IMAGES + 1)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserDataError(f"{name} is not a readable CSV file ({str(exc).splitlines()[0]})") from None
    if "label" not in frame.columns:
        separator = next((s for s in (";", "\t") if s in header), None)
        hint = f" (it seems to use {'tabs' if separator == chr(9) else repr(separator)} between values: save it " \
               "with commas)" if separator else ""
        raise UserDataError(f"{name} has no 'label' column: the first row must name the columns, one of them "
                            f"'label'{hint}")
    if frame.empty:
        raise UserDataError(f"{name} has a header but no rows: add one row per image")
    pixels = frame.drop(columns="label")
    text = [c for c in pixels.columns if not pd.api.types.is_numeric_dtype(pixels[c])]
    if text:
        row = int(pd.to_numeric(pixels[text[0]], errors="coerce").isna().to_numpy().argmax())
        raise UserDataError(f"{name}: column {text[0]!r} holds text ({pixels[text[0]].iloc[row]!r} in data row "
                            f"{row + 1}); every column but 'label' must be a pixel value")
    return pixels.to_numpy(), _csv_labels(name, frame["label"])


def _csv_header(name: str, data: bytes) -> str:
    """The first line, once it is known not to name more columns than the largest image has pixels (plus the
    label): checked before pandas parses anything, so a header of 400,000 commas costs nothing."""
    limit = user_images.MAX_CSV_COLUMNS
    first = data[: 64 * (limit + 1)].split(b"\n", 1)[0]
    if not data.strip():
        raise UserDataError(f"{name} is empty: the first row must name the columns, one of them 'label'")
    columns = max(first.count(sep) for sep in (b",", b";", b"\t")) + 1
    if columns > limit or (b"\n" not in data[: 64 * (limit + 1)] and len(data) > 64 * (limit + 1)):
        raise UserDataError(f"{name}: the first row names more than {limit:,} columns; the limit is one label and "
                            f"{limit - 1:,} pixels ({user_images.SIZE_RANGE[1]}x{user_images.SIZE_RANGE[1]})")
    return first.decode("utf-8", errors="replace")


def _csv_labels(name: str, column) -> np.ndarray:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column):
        raise UserDataError(f"{name}: the label column holds text (e.g. {column.dropna().iloc[0]!r}); use whole "
                            "numbers 0, 1, 2, ... (or an NPZ with a 'classes' array for names)")
    return column.to_numpy()


def images_from_arrays(name: str, digest: str, x: np.ndarray, y: np.ndarray, classes: np.ndarray | None,
                       size: int | None) -> UserImages:
    """The image set in arrays read by read_npz or read_csv; `size` None keeps the size, at most AUTO_SIZE_CAP."""
    x = _image_array(name, x)  # (N, H, W, C)
    labels, classes = _array_labels(name, y, classes, len(x))
    notes = []
    check_classes(name, classes)
    rgb, note = _to_uint8(x)
    if note:
        notes.append(note)
    source = max(x.shape[1], x.shape[2])
    target = size or min(max(source, user_images.SIZE_RANGE[0]), user_images.AUTO_SIZE_CAP)
    check_values(name, len(x), rgb.shape[-1], target)
    if (x.shape[1], x.shape[2]) != (target, target):
        notes.append(f"Resized from {x.shape[1]}x{x.shape[2]} to {target}x{target}.")
        rgb = _resize_all(rgb, target)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return make_user_images(name, digest, rgb, labels, classes, len(x), [], notes)


def _image_array(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "buif":
        raise UserDataError(f"{name}: the images are of type {x.dtype}; use numbers (uint8 0..255 or floats)")
    if x.size == 0:
        raise UserDataError(f"{name}: no images (the image array {x.shape} is empty)")
    if x.ndim == 2:  # a CSV: one row of pixels per image, square and grayscale
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1] or side == 0:
            raise UserDataError(f"{name}: {x.shape[1]} pixel columns is not a square image (28x28 needs 784); "
                                "CSV images must be square and grayscale")
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # channels first -> channels last
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise UserDataError(f"{name}: images of shape {x.shape} are not allowed; use (N, H, W) for grayscale or "
                            "(N, H, W, 3) for RGB")
    if len(x) == 0:
        raise UserDataError(f"{name}: no images")
    if len(x) > user_images.MAX_IMAGES:
        raise UserDataError(f"{name} holds {len(x):,} or more images; the limit is {user_images.MAX_IMAGES:,}")
    if x.shape[1] * x.shape[2] > user_images.MAX_IMAGE_PIXELS:
        raise UserDataError(f"{name}: images of {x.shape[1]}x{x.shape[2]} are too large; the limit is "
                            f"{user_images.MAX_IMAGE_PIXELS:,} pixels per image")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if x.dtype.kind == "f" else np.zeros(len(x), bool)
    if bad.any():
        raise UserDataError(f"{name}: image {int(bad.argmax()) + 1} has NaN, missing or infinite pixel values")
    return x


def _array_labels(name: str, y: np.ndarray, classes: np.ndarray | None, n: int) -> tuple[np.ndarray, tuple]:
    y = np.asarray(y)
    if y.dtype.kind not in "buif":
        raise UserDataError(f"{name}: the labels are of type {y.dtype}; use whole numbers 0, 1, 2, ... "
                            "(class names go in a separate 'classes' array)")
    if y.shape != (n,):
        raise UserDataError(f"{name}: {n:,} images but labels of shape {y.shape}; need one label per image")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UserDataError(f"{name}: the labels must be whole numbers, found {y[~(y == np.round(y))][:1]}")
    limit = user_images.MAX_LABEL
    if len(y) and (y.min() < -limit or y.max() > limit):
        raise UserDataError(f"{name}: label {y.max() if y.max() > limit else y.min():g} is too large; labels "
                            f"are whole numbers from {-limit:,} to {limit:,} (usually 0, 1, 2, ...)")
    y = y.astype(np.int64)
    if classes is None:
        values = np.unique(y)
        return np.searchsorted(values, y).astype(np.int64), tuple(str(v) for v in values)
    if classes.dtype.kind not in "US" or classes.ndim != 1:
        raise UserDataError(f"{name}: 'classes' must be a 1-D array of names, got {classes.dtype} {classes.shape}")
    names = tuple(str(c.decode(errors="replace") if isinstance(c, bytes) else c) for c in classes.tolist())
    if y.min() < 0 or y.max() >= len(names):
        raise UserDataError(f"{name}: label {int(y.max() if y.max() >= len(names) else y.min())} has no class "
                            f"name; labels must be 0..{len(names) - 1} for the {len(names)} names in 'classes'")
    return y, names


def _to_uint8(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8 pixels (see the module docstring of `uploads` for the rule), converted a block of images at a time:
    a float64 upload never needs full-size temporaries."""
    is_bool = x.dtype.kind == "b"
    x = x.view(np.uint8) if is_bool else x
    lo, hi = float(x.min()), float(x.max())
    if is_bool:
        scale, offset, note = 255.0, 0.0, None
    elif x.dtype.kind == "f" and lo >= 0 and hi <= 1:
        scale, offset, note = 255.0, 0.0, None
    elif lo >= 0 and hi <= 255:
        scale, offset, note = 1.0, 0.0, None
    else:  # halves first: the span of -1e308..1e308 would overflow
        half_span = hi / 2 - lo / 2 if hi > lo else 0.5
        scale, offset = 255.0 / 2 / half_span, lo
        note = f"Pixel values from {lo:g} to {hi:g} were rescaled to 0..255."
    out = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), CONVERT_BLOCK):
        block = x[start:start + CONVERT_BLOCK].astype(np.float64)
        out[start:start + CONVERT_BLOCK] = np.clip(np.round((block / 2 - offset / 2) * (2 * scale)), 0, 255)
    return out, note


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        mode_img = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        resized = np.asarray(mode_img.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized[..., None] if resized.ndim == 2 else resized
    return out
