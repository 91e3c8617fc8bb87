"""Save & open runs: download what you trained; open a downloaded run again to look at it."""

import streamlit as st

from bnviz import figures
from bnviz.engine.jobs import LoadedRuns
from bnviz.engine.runfile import MAX_ZIP_BYTES
from bnviz.engine.sandbox import unpack_runs  # in a separate, limited process
from bnviz.errors import BnvizError
from bnviz.ui.live import download_button
from bnviz.ui.page import page_header, show
from bnviz.ui.state import get_lab
from bnviz.ui.text import plain

page_header("Save & open runs", """
A run file is a zip of plain JSON, CSV and NPZ files (no pickle): every recorded statistic of every step, the
settings and the final numbers. Open it here to look at it again on any page, or read it with pandas and numpy.
""")

lab = get_lab()
st.header("Download")
if lab.running:
    st.info("Training is still running: stop it or let it finish, then download.")
elif not lab.histories()[1]:
    st.info("Nothing trained yet in this session.")
download_button(lab, key="runs")

st.header("Open a run file")
upload = st.file_uploader("A bnviz-run.zip downloaded from this app, or a zipped run folder (from "
                          "`python -m bnviz run` or a notebook's `w.save(...)`)", type=["zip"], key="runs_upload",
                          max_upload_size=MAX_ZIP_BYTES // (1024 * 1024))
if upload is not None and st.session_state.get("runs_opened") != upload.file_id:
    st.session_state["runs_opened"] = upload.file_id  # read once: a refused file is not read again on every rerun
    try:
        labels, histories = unpack_runs(upload.getvalue())
    except BnvizError as exc:  # the runs opened before stay as they were
        st.session_state["runs_error"] = f"This file cannot be opened: {exc}"
    else:
        st.session_state.pop("runs_error", None)
        lab.load(LoadedRuns(labels, histories, source=upload.name))
        st.success(f"Opened {plain(upload.name)}: {len(histories)} run(s). Every page now shows it.")
if upload is not None and st.session_state.get("runs_error"):
    st.error(plain(st.session_state["runs_error"]))

labels, histories = lab.histories()
if histories:
    show(figures.loss_accuracy(list(zip(labels, histories, strict=True))), "runs_loss")
    st.page_link("pages/train.py", label="See it on Train & watch", icon=":material/play_circle:")
