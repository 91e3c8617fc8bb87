"""'Use your own images': upload a labelled image set, see what was read, and train on it on every live page.

The parsed set lives in the session's Lab (the newest two only); the Dataset select boxes list it as
`upload:<hash>` with its file name. A file that cannot be used shows one error line and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st

from ..engine.jobs import Lab
from ..engine.sandbox import parse_upload  # in a separate, limited process
from ..engine.user_images import AUTO_SIZE_CAP, MAX_CLASSES, MAX_FILE_BYTES, MAX_IMAGES
from ..errors import BnvizError, UserDataError
from .page import show
from .state import get_lab
from .text import plain, plotly_text

SIZE_CHOICES = ("auto", 8, 16, 24, 28, 32, 48, 64)
PENDING = "userdata_pending"  # {select-box key: upload reference} chosen by the next run
LAST = "userdata_last"  # ((file id, size), error or None) of the newest file handled: no re-reading on reruns
HELP = f"""
- **.zip**: one folder per class (`cats/1.png`, `dogs/2.jpg`), PNG or JPEG
- **.npz**: `x` (N, H, W) or (N, H, W, 3), `y` whole-number labels, optional `classes` names
- **.csv**: a `label` column and one column per pixel of a square grayscale image

Up to {MAX_IMAGES:,} images, {MAX_CLASSES} classes, {MAX_FILE_BYTES // 2**20} MB. All images get one size; damaged
ones are skipped and counted; 20 % of each class is kept for testing.
"""
EXAMPLES_PER_CLASS = 6
SIDEBAR_PLOT_PX = 190  # the example grid's drawn width in the sidebar, to give the figure a matching height


def dataset_choices(key: str, builtin: tuple[str, ...]) -> tuple[tuple[str, ...], Callable[[str], str]]:
    """Options and labels for the Dataset select box `key`: the built-in sets and this session's uploads. Applies a
    selection made by an upload, and falls back to the first built-in set when the selected upload is gone."""
    uploads = get_lab().uploads
    options = (*builtin, *uploads)
    pending = st.session_state.get(PENDING, {})
    if key in pending:
        st.session_state[key] = pending.pop(key)
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    labels = {ref: f"yours: {images.name}" for ref, images in uploads.items()}
    return options, lambda name: labels.get(name, name)


def handle_upload(lab: Lab, name: str, data: bytes, size: int | None) -> str:
    """Parse an uploaded file into the lab; return its reference. UserDataError with a one-line message if the file
    cannot be used, and then the lab is unchanged."""
    try:
        images = parse_upload(name, data, size)
    except BnvizError:
        raise
    except MemoryError:
        raise UserDataError(f"{name} needs more memory than this server has: send fewer or smaller images") from None
    except Exception as exc:  # noqa: BLE001 - an unforeseen problem in a file still becomes one line, not a traceback
        raise UserDataError(f"{name} could not be read ({type(exc).__name__}: {exc})") from None
    return lab.add_upload(images)


def upload_panel(select_keys: tuple[str, ...], container=None) -> None:
    """The 'Use your own images' expander. A new upload becomes the selection of the select boxes `select_keys`."""
    lab = get_lab()
    c = container or st.sidebar
    with c.expander("Use your own images", expanded=bool(lab.uploads)):
        st.caption(HELP)
        size = st.selectbox("Image size", SIZE_CHOICES, key="userdata_size", persist_state="session",
                            format_func=lambda s: f"auto (at most {AUTO_SIZE_CAP})" if s == "auto" else f"{s}x{s}",
                            help=f"Every image is resized to this square size (stretched if not square). auto: "
                                 f"the most common size, at most {AUTO_SIZE_CAP}. Larger is slower: 64x64 trains "
                                 "about 16 times slower than 16x16.")
        upload = st.file_uploader("Your images", type=["zip", "npz", "csv"], key="userdata_file",
                                  max_upload_size=MAX_FILE_BYTES // 2**20)
        if upload is not None:
            _read(lab, upload, None if size == "auto" else int(size), select_keys)
        _summary(lab)


def _read(lab: Lab, upload, size: int | None, select_keys: tuple[str, ...]) -> None:
    handled = (upload.file_id, size)
    last = st.session_state.get(LAST)
    if last is not None and last[0] == handled:  # already read: show its error again, if any
        if last[1]:
            st.error(plain(last[1]))
        return
    try:
        with st.spinner(f"Reading {upload.name}..."):
            ref = handle_upload(lab, upload.name, upload.getvalue(), size)
    except BnvizError as exc:
        message = f"This file cannot be used: {exc}"
        st.session_state[LAST] = (handled, message)
        st.error(plain(message))
        return
    st.session_state[LAST] = (handled, None)
    st.session_state[PENDING] = {key: ref for key in select_keys}
    st.rerun()  # the select boxes were drawn already: draw them again with the new set selected


def _summary(lab: Lab) -> None:
    if not lab.uploads:
        return
    images = list(lab.uploads.values())[-1]
    st.success(f"**{plain(images.name)}**: {plain(images.summary())}")
    st.caption(f"Training uses {images.train_size():,} of them: choose a batch size of at most that. "
               "It is now in the Dataset list (Model and data).")
    show(_examples_figure(images), f"userdata_examples_{images.ref}")


def _examples_figure(images) -> go.Figure:
    grid = images.example_grid(per_class=EXAMPLES_PER_CLASS)
    rows = min(len(images.classes), 10)
    row_height = grid.shape[0] / rows
    fig = go.Figure(go.Image(z=grid, hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    names = [plotly_text(c) for c in images.classes[:rows]]  # class names are the user's: never Plotly HTML
    fig.update_yaxes(tickvals=[(i + 0.5) * row_height for i in range(rows)], ticktext=names,
                     showgrid=False, zeroline=False, ticks="", automargin=True, tickfont=dict(size=13))
    more = f" (first {rows} of {len(images.classes)} classes)" if len(images.classes) > rows else ""
    fig.update_layout(title=dict(text=f"Examples per class{more}", font=dict(size=14)),
                      height=50 + int(grid.shape[0] * SIDEBAR_PLOT_PX / grid.shape[1]),
                      margin=dict(l=0, r=0, t=40, b=10))
    return fig
