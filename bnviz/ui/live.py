"""Start/stop controls and the live fragment that polls the training thread twice a second.

The worker thread never calls Streamlit: the fragment asks the session's Lab for a snapshot and draws it.
Any error while drawing becomes a plain message, never a traceback.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable

import streamlit as st

from .. import figures
from ..engine.config import RunConfig
from ..engine.jobs import LIMITER, Lab, available_cores, registry_for
from ..engine.runfile import pack_runs
from ..errors import BnvizError
from . import plot
from .controls import LR_CHOICES, _sci
from .page import presenting, show
from .run_banner import remember_origin, stale_banner

log = logging.getLogger("bnviz.ui.live")

POLL_SECONDS = 0.5  # the charts refresh at 2 Hz while a run trains (slower when runs outnumber cores: poll_seconds)
LIVE_POINTS = 200  # heatmap columns per cell on live pages: light enough to resend (and redraw) twice a second
ACTIVE = ("running", "paused")
START_HINT = "press **▶ Start**"


def run_buttons(lab: Lab, make_configs: Callable[[], list[RunConfig]], labels: list[str], key: str) -> None:
    """Start / Pause-Resume / Stop (Cancel while queued) / Reset, and the learning rate that can change while
    training runs. A run other sessions watch too (an identical Start is shared) cannot be paused or changed."""
    cols = st.columns([1.2, 1, 1, 1])
    if cols[0].button("▶ Start", type="primary", key=f"{key}_start", width="stretch",
                      help="Train from scratch with the settings shown (stops any run of yours first)"):
        start(lab, make_configs(), labels, origin=key)
    job = lab.job  # read after Start: the other buttons and the charts below already show the new run
    status = "queued" if lab.queued else job.status if job else "idle"
    shared = lab.watchers > 1
    if status == "paused":
        if cols[1].button("Resume", key=f"{key}_resume", width="stretch"):
            lab.resume()
            st.rerun()
    elif cols[1].button("Pause", key=f"{key}_pause", disabled=status != "running" or shared, width="stretch"):
        control(lab.pause)
        st.rerun()
    if status == "queued":
        if cols[2].button("Cancel", key=f"{key}_stop", width="stretch", help="Leave the queue"):
            lab.stop()
            st.rerun()
    elif cols[2].button("Stop", key=f"{key}_stop", disabled=status not in ACTIVE, width="stretch",
                        help="Stop the run (a run others watch too goes on for them)" if shared else None):
        lab.stop()
        st.rerun()
    if cols[3].button("Reset", key=f"{key}_reset", disabled=job is None and lab.loaded is None, width="stretch",
                      help="Forget the current run and clear the charts"):
        lab.reset()
        st.rerun()
    if status in ACTIVE:
        if shared:
            st.caption(f"{lab.watchers} sessions watch this run (the same settings and seed give the same run, so "
                       "it is trained once): pausing and changing the learning rate are off, so no one changes "
                       "another's run. Stop leaves it; change any setting and press Start for a run of your own.")
        elif presenting():  # folded: the charts start on the projector's first screen
            with st.expander("Change the learning rate now"):
                live_lr(lab, key)
        else:
            live_lr(lab, key)


def control(action: Callable[[], None]) -> None:
    """Run a control; a refusal (a run others watch) becomes the flash message."""
    try:
        action()
    except BnvizError as exc:
        st.session_state["bnviz_flash"] = str(exc)


def client_address() -> str | None:
    """The browser's address (for the per-client cap), or None where Streamlit does not know it (tests)."""
    try:
        return st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context: no cap
        return None


def start(lab: Lab, configs: list[RunConfig], labels: list[str], origin: str) -> None:
    """Start a job (origin: the key of the page's buttons, named by the stale-charts banner of other pages). No
    rerun: everything drawn after the button in this same run already shows the new job (the first chart comes one
    script run sooner); a refusal (bad settings, a cap) is shown by the status line, a queued run by its place."""
    lab.client = client_address()
    clicked = time.monotonic()
    try:
        lab.start(configs, labels)
    except BnvizError as exc:
        st.session_state["bnviz_flash"] = str(exc)
    else:
        remember_origin(origin)
        st.session_state["bnviz_started_at"] = clicked  # for the "first chart" line in the server's log


def log_first_chart(lab: Lab) -> None:
    """Once per Start: the server's part of the time from the click to the first chart with data (from the script
    run that handles the click: starting or joining the run, the queue, building the figures), as a line in the
    server's log with the run's key; the browser's part (sending the click, drawing) is not in it.
    scripts/load_test.py --class reports these lines."""
    started = st.session_state.pop("bnviz_started_at", None)
    if started is not None:
        key = lab.entry.key if lab.entry is not None and lab.entry.key else "private"
        log.info("first chart sent %.2f s after Start (run %s)", time.monotonic() - started, key[:8])


def show_flash() -> None:
    message = st.session_state.pop("bnviz_flash", None)
    if message:
        st.error(message)


def live_lr(lab: Lab, key: str) -> None:
    """Change the learning rate of every run while training (off when the runs' rates differ on purpose)."""
    job = lab.job
    rates = {run.lr for run in job.runs}
    if len(rates) > 1 and len({run.cfg.lr for run in job.runs}) > 1:
        st.caption("The two runs use different learning rates on purpose, so live changes are off.")
        return
    current = job.runs[0].lr
    choice = st.select_slider("Change the learning rate now", LR_CHOICES,
                              value=min(LR_CHOICES, key=lambda c: abs(c - current)), format_func=_sci,
                              key=f"{key}_live_lr_{id(job)}")  # a new job starts from its own setting
    if choice != current:
        control(lambda: lab.set_lr(choice))


def queue_line(lab: Lab) -> None:
    """Where this session's run waits, and for about how long."""
    place = lab.place()
    if place is None:
        return
    st.info(f"**Waiting for a free slot:** your run is number {place.position} of {place.length} in the queue "
            f"(first come, first served); estimated wait about {_wait(place.wait_s)}, from the cost estimate of the "
            "runs ahead. It starts by itself; **Cancel** leaves the queue.", icon=":material/hourglass_top:")


def _wait(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds)):,} s"
    return f"{seconds / 60:,.0f} min"


def status_line(lab: Lab, start_hint: str = START_HINT, snap=None) -> None:
    """The run's state in one line (or what to do when there is none); snap: a snapshot already taken."""
    show_flash()
    if lab.queued:
        queue_line(lab)
        return
    snap = snap if snap is not None else lab.snapshot()
    if snap is None:
        if lab.loaded is not None:
            st.info(f"Showing a saved run ({lab.loaded.source}). To train a new one, {start_hint}.")
        else:
            st.info(f"No run yet: {start_hint}.")
        return
    text = snap.message
    if snap.status == "error":
        st.error(f"The run stopped with an error: {snap.error}. Try other settings; nothing else is affected.")
    elif any(r.status == "diverged" for r in snap.runs):
        st.warning(text)
    else:
        st.markdown(spoken_status(text, snap.status), unsafe_allow_html=True)


SPOKEN_SECONDS = 10.0  # a screen reader hears the live status when it changes state, else at most this often


def spoken_status(text: str, status: str, now: float | None = None) -> str:
    """The status line as an aria-live="polite" region: shown as it is (twice a second), while the words a screen
    reader announces change only with the run's state or every SPOKEN_SECONDS (every step would be a flood)."""
    now = time.monotonic() if now is None else now
    last = st.session_state.get("bnviz_spoken_status")
    if last is None or last[2] != status or now - last[0] >= SPOKEN_SECONDS:
        last = st.session_state["bnviz_spoken_status"] = (now, text, status)
    return (f'<div role="status" aria-live="polite" aria-atomic="true" class="bnviz-status">'
            f'<span aria-hidden="true"><strong>Status:</strong> {html.escape(text)}</span>'
            f'<span class="bnviz-sr">Status: {html.escape(last[1])}</span></div>')


VIEWERS_PER_CORE = 2  # sessions refreshing at full speed per core, on top of the training (see poll_seconds)


def poll_seconds(limiter=LIMITER) -> float:
    """How often live charts refresh: twice a second while this server has a core for every training run and for
    every VIEWERS_PER_CORE sessions watching one, and proportionally less often when more train or watch (8 runs on
    2 cores: every 2 s; a class of 24 watching one shared run: every 3 s). Every refresh builds and sends all of a
    page's figures in the process that trains: a class of 20 refreshing twice a second would leave the runs, and
    the server's answers, starved of CPU."""
    load = max(limiter.in_use, registry_for(limiter).watching() / VIEWERS_PER_CORE)
    return POLL_SECONDS * max(1.0, load / available_cores())


def live_view(lab: Lab, draw: Callable[..., None], key: str, start_hint: str = START_HINT,
              preview: tuple[str, str] | None = None,
              settings: tuple[list[RunConfig], Callable[[list[RunConfig]], None]] | None = None,
              frame: Callable[[list[str]], object] | None = None) -> None:
    """Draw `draw(labels, histories)` now and, while a run trains, again every `poll_seconds()`.

    start_hint: what the idle status line tells the user to do (the page's own start button); preview: the title
    and text of an empty chart frame shown while there is nothing to draw, saying what will appear there;
    settings: the page's current configs and how to put a run's configs back into its widgets (for the banner
    that says when the charts no longer show what the settings say).

    frame: the part of the charts' area that stays the same while a run trains (captions, headings, the columns the
    charts sit in), drawn by `frame(labels)`, which returns where `draw` puts its charts (its columns, say). With a
    frame, draw is called as `draw(labels, histories, place)` and calls `place()` where the frame belongs; place
    returns what frame returned. Streamlit sends, and the browser renders, every element of a fragment again on
    each of its reruns, changed or not; so whenever there are runs to draw, the frame is drawn once per full script
    run, outside the fragment and below it, and place() only returns it: a refresh twice a second re-sends only the
    status line and the charts (Streamlit 1.67 puts a fragment's writes into a container outside it in a wrapper
    that each refresh overwrites in place). Without runs (the preview; a queued run) place() draws the frame
    inside the fragment, where it is."""
    if settings is not None:
        stale_banner(lab, settings[0], settings[1], key, start_hint)
    polling = lab.running
    queued = lab.queued
    interval = poll_seconds() if polling else None
    framed: tuple[list[str], object] | None = None
    head = None
    if frame is not None:
        head = st.container()  # the fragment goes here, above the frame drawn next (always: its place stays put)
        labels, histories = lab.histories()
        if histories:
            framed = (list(labels), frame(list(labels)))

    @st.fragment(run_every=interval)
    def body() -> None:
        snap = lab.snapshot()  # one consistent copy per refresh, for the status line and the charts
        status_line(lab, start_hint, snap)
        if interval and interval > POLL_SECONDS:
            st.caption(f"Charts refresh every {interval:.1f} s: {LIMITER.in_use} runs train and "
                       f"{registry_for(LIMITER).watching()} sessions watch on this server's {available_cores()} "
                       "cores.")
        labels, histories = lab.histories(snap)
        if snap is not None and snap.status in ("finished", "stopped", "diverged") and histories:
            sentence = figures.run_result(list(zip(labels, histories, strict=True)))
            if sentence:
                st.success(f"**Result:** {sentence}", icon=":material/flag:")
        if histories:
            try:
                with figures.plain_figures(), plot.live_texts(polling):  # plain: a third of the cost, same JSON
                    if frame is None:
                        draw(labels, histories)
                    else:
                        draw(labels, histories, _placer(frame, framed, labels))
                log_first_chart(lab)
            except Exception as exc:  # noqa: BLE001 - a chart problem must not become a traceback on screen
                st.warning(f"A chart could not be drawn ({type(exc).__name__}: {exc}).")
        elif preview is not None:
            show(figures.preview(*preview), f"{key}_preview")
        if polling and (not lab.running or queued != lab.queued):
            st.rerun()  # training ended or left the queue: one full rerun refreshes polling and the buttons
        elif polling and abs(poll_seconds() - interval) >= POLL_SECONDS / 2:
            st.rerun()  # the server got busier or quieter: a full rerun sets the new refresh interval

    if head is None:
        body()
    else:
        with head:
            body()


def _placer(frame: Callable[[list[str]], object], framed: tuple[list[str], object] | None,
            labels: list[str]) -> Callable[[], object]:
    """live_view's `place` for one refresh: what the frame drawn outside the fragment returned, when it was drawn for
    these runs, else the frame drawn here and now (inside the fragment). Runs that differ from the frame's (a new
    job without a full script run) get a full rerun, which draws the frame for them."""
    if framed is not None and framed[0] != list(labels):
        st.rerun()
    if framed is not None:
        return lambda: framed[1]
    return lambda: frame(list(labels))


def download_button(lab: Lab, key: str) -> None:
    labels, histories = lab.histories()
    if not histories or lab.running:
        return
    st.download_button("Download this run (zip: JSON, CSV, NPZ)", lambda: pack_runs(labels, histories),
                       file_name="bnviz-run.zip", mime="application/zip", key=f"{key}_download", on_click="ignore")
