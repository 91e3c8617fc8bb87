"""Page tests with Streamlit's AppTest: every page renders, and the live-lab flows work as a user drives them.

How a test reaches the session's Lab: `bnviz.ui.state._session_lab` (a session-scoped `st.cache_resource`) calls
`Lab()` by its global name in `bnviz.ui.state`. The `labs` fixture replaces that name with a factory that builds a
real Lab on a private `JobLimiter` and records it. So the real per-session cache stays in the path (the same Lab
across reruns and page switches, which the tests check) and the tests never depend on or hold the server-wide
LIMITER. AppTest gives every instance the same session id ("test session id"), so the session cache would hand one
Lab to every test of the process: the fixture clears the resource caches before and after each test, which is also
what Streamlit does when a session disconnects (it fires `on_release`, which stops the Lab's job).
`run_every` never fires under AppTest: the tests poll the Lab's job (bounded) and then call `at.run()` again, as
the browser's timer would.

Backends: every test that trains (starts, watches, pauses, resumes, stops, changes the learning rate of, or queues a
run) takes the `backend` fixture and runs once on each job backend: "threads" (trainer.Job in this process) and
"ray" (ray_backend.RayJob: an actor of a local Ray instance started once per test process; marked `ray`, skipped
without ray). It sets BNVIZ_BACKEND, which the session's Lab reads when it is created, and `labs` then checks that
every job the test built is of that backend and that it started at least one (a Ray job: its actor was created),
so a ray variant cannot pass on work done in this process. Each test has its own limiter, so its own run registry
and finished-run cache: no run trained by one variant is served to the other. Pages that only render, and tests
that train only to have a run to draw (THREADS_ONLY), run once, on threads.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import bnviz.engine.jobs as jobs
import bnviz.ui.state as state
from bnviz.engine.config import RunConfig
from bnviz.engine.data import load_dataset
from bnviz.engine.jobs import JobLimiter, Lab, LoadedRuns
from bnviz.engine.ray_backend import RayJob
from bnviz.engine.trainer import Job, train
from bnviz.science.presets import PRESETS
from bnviz.ui.choices import eval_every_for, nearest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["home", "train", "compare", "gradients", "inside-bn", "runs"]
WIDGET_FIELDS = ("dataset", "model", "depth", "width", "activation", "norm", "placement", "eps", "bn_momentum",
                 "groups", "batch_size", "lr", "optimizer", "init", "init_scale", "steps", "seed")
TIMEOUT = 60
JOIN = 60  # s a short run may take to finish (a Ray job starts its actor first: a new process, 2-5 s)
JOB_CLASS = {"threads": Job, "ray": RayJob}


pytestmark = pytest.mark.usefixtures("no_training_thread_left")  # conftest: every test stops what it started


@pytest.fixture(autouse=True)
def threads_unless_asked(monkeypatch):
    """The default backend, whatever the environment says; the `backend` fixture overrides it."""
    monkeypatch.setenv("BNVIZ_BACKEND", "threads")


@pytest.fixture(params=["threads", pytest.param("ray", marks=pytest.mark.ray)])
def backend(request, monkeypatch, threads_unless_asked) -> str:
    """The job backend the test trains on: BNVIZ_BACKEND, read by each Lab the test creates (jobs.backend_name)."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")  # conftest: one local Ray instance per process; skips without ray
    monkeypatch.setenv("BNVIZ_BACKEND", request.param)
    return request.param


# Tests that train only to have a run to draw, or that check a page's words about it: once, on threads. The controls
# of a run (start, stop, pause, resume, a live learning-rate change, the queue, a shared run, an error, a closed
# session, a twin) run on both; a finished run draws the same from either backend (the same numbers:
# test_ray_backend.py), and each Ray job costs about 4 s of actor start-up here.
THREADS_ONLY = pytest.mark.parametrize("backend", ["threads"], indirect=True)


@pytest.fixture
def labs(request, monkeypatch):
    """Every Lab the app creates during the test (normally one per AppTest session). With `backend`: afterwards,
    every job built was of that backend and at least one started (so the variant trained where it says)."""
    name = request.getfixturevalue("backend") if "backend" in request.fixturenames else None  # set up first
    made: list[Lab] = []
    built: list = []
    limiter = JobLimiter(4)
    real = state.Lab
    real_make_job = jobs.make_job

    def factory() -> Lab:
        lab = real(limiter=limiter)
        made.append(lab)
        return lab

    def make_job(*args, **kwargs):
        built.append(real_make_job(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(state, "Lab", factory)
    monkeypatch.setattr(jobs, "make_job", make_job)
    st.cache_resource.clear()
    yield made
    st.cache_resource.clear()  # fires on_release: the session's Lab is reset
    for lab in made:
        lab.reset()
    if name is not None:
        assert all(lab.backend == name for lab in made), [lab.backend for lab in made]
        assert built and all(type(job) is JOB_CLASS[name] for job in built), (name, built)
        assert any(started(job) for job in built), "no job of the test started"
        assert not any(job.alive for job in built), "a job is still training after the test"


def started(job) -> bool:
    """The job began training: a thread job's worker ran, a Ray job's actor was created."""
    return job._actor is not None if isinstance(job, RayJob) else job._thread is not None


def on_backend(job, backend: str):
    """`job`, after checking it is a live job of `backend` (not a cached FinishedJob, not the other backend)."""
    assert type(job) is JOB_CLASS[backend], (backend, job)
    assert started(job) or job.status == "ready"  # a queued job starts later
    return job


def open_page(name: str) -> AppTest:
    """The app as a browser opens it (app.py with st.navigation), switched to one page and run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if name != "home":
        at.switch_page(f"pages/{name}.py")
        at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def status_text(at: AppTest) -> str:
    """The status line as shown (bnviz.ui.live.spoken_status: its visible part, without the words spoken later)."""
    shown = [re.sub(r"<[^>]+>", "", m.value.split('<span class="bnviz-sr">')[0]) for m in at.markdown
             if 'class="bnviz-status"' in m.value]
    return " ".join([m.value for m in at.markdown if m.value.startswith("**Status:**")] + shown)


def wait_until(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def small_sidebar(at: AppTest, steps: int, twin: bool) -> None:
    at.number_input(key="cfg_steps").set_value(steps)
    at.select_slider(key="cfg_width").set_value(4)
    at.slider(key="cfg_depth").set_value(2)
    at.toggle(key="twin_on").set_value(twin)
    at.run()
    assert_clean(at)


def click(at: AppTest, key: str) -> None:
    at.button(key=key).click()
    at.run()
    assert_clean(at)


# ---- every page renders -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAGES)
def test_page_renders_standalone(name, labs):
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)
    at.run()
    assert_clean(at)
    assert at.title, "every page has a title"


def test_every_page_renders_in_navigation(labs):
    at = open_page("home")
    for name in PAGES[1:]:
        at.switch_page(f"pages/{name}.py")
        at.run()
        assert_clean(at)
        # the only warning allowed: another page's settings differ from the run on screen (the stale-charts banner)
        warnings = [w.value for w in at.warning if not w.value.startswith("These charts show the run started on")]
        assert not warnings, (name, warnings)
    assert len(labs) == 1  # one Lab for the whole session, whatever the page


# ---- controls -> config -> Start -> finished ---------------------------------------------------------------------
def test_controls_set_the_config_and_start_runs_to_the_end(labs, backend):
    at = open_page("train")
    at.number_input(key="cfg_steps").set_value(20)
    at.selectbox(key="cfg_norm").set_value("layer")
    small_sidebar(at, steps=20, twin=False)
    click(at, "train_start")
    lab = labs[0]
    job = on_backend(lab.job, backend)
    assert job is not None and len(job.runs) == 1 and lab.labels == ["A"]
    cfg = job.runs[0].cfg
    assert (cfg.steps, cfg.norm, cfg.width, cfg.depth) == (20, "layer", 4, 2)
    assert job.join(JOIN) and job.status == "finished"
    at.run()
    assert_clean(at)
    assert "step 20 of 20" in status_text(at) and "finished" in status_text(at)
    assert at.get("download_button"), "a finished run can be downloaded"
    assert at.button(key="train_stop").disabled  # nothing left to stop


@THREADS_ONLY
def test_the_server_logs_its_part_of_click_to_first_chart_once_per_start(labs, backend, caplog):
    """The line scripts/load_test.py --class reads: once per Start, when the first chart with data is drawn."""
    caplog.set_level("INFO", logger="bnviz")
    at = open_page("train")
    small_sidebar(at, steps=20, twin=False)
    click(at, "train_start")
    assert on_backend(labs[0].job, backend).join(JOIN)
    at.run()  # a later run draws charts again: no second line
    lines = [r.getMessage() for r in caplog.records if "first chart sent" in r.getMessage()]
    assert len(lines) == 1 and re.fullmatch(r"first chart sent \d+\.\d\d s after Start \(run \w{8}\)", lines[0]), lines


def test_stop_stops_a_running_job(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    assert job.status == "running"
    click(at, "train_stop")
    assert job.status == "stopped" and not job.alive
    assert "stopped" in status_text(at)


def test_pause_and_resume(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    click(at, "train_pause")
    assert job.status == "paused"
    step = job.snapshot().step  # fresh from the job (a Ray job's `step` is that of its latest snapshot)
    time.sleep(0.3)
    assert job.snapshot().step <= step + 1  # at most the step in flight when pause was pressed
    click(at, "train_resume")
    assert job.status == "running"
    wait_until(lambda: job.snapshot().step > step + 1, timeout=JOIN)
    at.run()
    assert_clean(at)
    assert "running" in status_text(at)
    click(at, "train_stop")
    assert job.status == "stopped" and "stopped" in status_text(at)


@THREADS_ONLY
def test_a_running_job_survives_a_page_switch(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    at.switch_page("pages/gradients.py")
    at.run()
    assert_clean(at)
    assert len(labs) == 1 and labs[0].job is job and job.status == "running" and job.alive
    assert not at.button(key="grad_stop").disabled  # the other page controls the same job
    click(at, "grad_stop")
    assert job.status == "stopped"


@THREADS_ONLY
def test_reset_clears(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=10, twin=False)
    click(at, "train_start")
    lab = labs[0]
    assert on_backend(lab.job, backend).join(JOIN)
    at.run()
    click(at, "train_reset")
    assert lab.job is None and lab.labels == [] and lab.histories() == ([], [])
    assert any("No run yet" in i.value for i in at.info)
    assert not at.get("download_button")
    assert at.button(key="train_reset").disabled


def test_twin_toggle_trains_two_labelled_runs(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20, twin=True)  # the twin differs in normalization by default: batch vs none
    click(at, "train_start")
    lab = labs[0]
    assert lab.labels == ["BN", "no BN"]
    assert [r.cfg.norm for r in on_backend(lab.job, backend).runs] == ["batch", "none"]
    assert lab.job.join(JOIN) and lab.job.status == "finished"
    at.run()
    assert_clean(at)
    assert any(m.value == "**Run BN**" for m in at.markdown) and any(m.value == "**Run no BN**" for m in at.markdown)


def test_the_twin_and_compare_pages_say_what_the_two_runs_share(labs):
    at = open_page("train")
    small_sidebar(at, steps=10, twin=True)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "same batches in the same order" in captions
    at.selectbox(key="twin_field").set_value("batch_size")
    at.run()
    at.selectbox(key="twin_value_batch_size").set_value(16)
    at.run()
    assert_clean(at)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "different batches: with batch sizes 64 and 16" in captions and "same batches" not in captions
    at = open_page("compare")
    at.select_slider(key="cmpB_batch_size").set_value(32)
    at.run()
    assert_clean(at)
    assert any("different batches: with batch sizes 64 and 32" in c.value for c in at.caption)


@THREADS_ONLY
def test_twin_off_trains_one_run(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=10, twin=False)
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    assert len(job.runs) == 1
    assert job.join(JOIN) and [len(r.history.steps) > 0 for r in job.snapshot().runs] == [True]


def test_each_preset_fills_the_widgets(labs):
    at = open_page("train")
    for name, preset in PRESETS.items():
        at.selectbox(key="cfg_preset").set_value(name)
        at.run()
        assert_clean(at)
        a, b = preset.configs()
        for field in WIDGET_FIELDS:
            assert at.session_state[f"cfg_{field}"] == nearest(field, getattr(a, field)), (name, field)
        assert at.toggle(key="twin_on").value is True, name
        field = at.selectbox(key="twin_field").value
        assert getattr(a, field) != getattr(b, field), name
        assert at.selectbox(key=f"twin_value_{field}").value == nearest(field, getattr(b, field)), name
        assert any(preset.look_for in c.value for c in at.caption), name


def test_sigmoid_preset_sets_model_and_activation(labs):
    at = open_page("train")
    at.selectbox(key="cfg_preset").set_value("Sigmoid network (Ioffe & Szegedy, Figure 1)")
    at.run()
    assert_clean(at)
    assert at.radio(key="cfg_model").value == "mlp"
    assert at.radio(key="cfg_activation").value == "sigmoid"
    assert at.radio(key="cfg_init").value == "default"


@THREADS_ONLY
def test_sigmoid_preset_trains_the_preset_config(labs, backend):
    at = open_page("train")
    at.selectbox(key="cfg_preset").set_value("Sigmoid network (Ioffe & Szegedy, Figure 1)")
    at.run()
    at.number_input(key="cfg_steps").set_value(10)  # keeps the test short; the preset's other settings stay
    at.run()
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    labs[0].reset()
    expected = PRESETS["Sigmoid network (Ioffe & Szegedy, Figure 1)"].configs()
    # Everything the preset sets is trained as set; only what this test or the server changes differs: the steps
    # (10 here), eval_every (derived from the steps by the widgets' rule) and torch threads (the server's share).
    trained = [run.cfg for run in job.runs]
    assert len(trained) == len(expected) == 2
    assert trained == [cfg.replace(steps=10, eval_every=eval_every_for(10), threads=run.threads)
                       for cfg, run in zip(expected, trained, strict=True)]


def test_start_again_uses_the_configured_learning_rate(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    first = on_backend(labs[0].job, backend)
    at.select_slider(key=f"train_live_lr_{id(first)}").set_value(0.01)
    at.run()
    assert_clean(at)
    # the run trains on at the new rate (its history records it; a Ray job's actor flushes every 0.25 s)
    wait_until(lambda: first.snapshot().runs[0].history.scalar("lr")[-1] == 0.01, timeout=JOIN)
    click(at, "train_start")  # a new job with the sidebar's lr (0.05)
    job = on_backend(labs[0].job, backend)
    assert job is not first and first.status == "stopped"
    wait_until(lambda: job.snapshot().step >= 3, timeout=JOIN)
    assert job.runs[0].lr == job.runs[0].cfg.lr == 0.05
    assert set(job.snapshot().runs[0].history.scalar("lr")) == {0.05}


def test_a_busy_server_queues_the_run_and_shows_its_place(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=10, twin=False)
    limiter = labs[0].limiter
    limiter.capacity = 1
    other = Lab(limiter=limiter)
    labs.append(other)  # stopped by the fixture
    assert other.start([RunConfig(width=4, depth=2, steps=20_000)]) is None
    on_backend(other.job, backend)
    click(at, "train_start")
    lab = labs[0]
    assert lab.queued and not started(on_backend(lab.job, backend))  # a queued Ray job has no actor yet
    waiting = [i.value for i in at.info if "Waiting for a free slot" in i.value]
    assert waiting and "number 1 of 1" in waiting[0] and "estimated wait" in waiting[0]
    assert at.button(key="train_stop").label == "Cancel" and at.button(key="train_pause").disabled
    click(at, "train_stop")  # Cancel leaves the queue
    assert not lab.queued and lab.job is None and limiter.in_use == 1
    click(at, "train_start")
    assert lab.queued
    other.stop()  # the slot frees: the queued run starts by itself
    assert not lab.queued and started(on_backend(lab.job, backend))
    assert lab.job.join(JOIN) and lab.job.status == "finished"
    at.run()
    assert_clean(at)
    assert "finished" in status_text(at)


def test_identical_starts_share_one_run_and_shared_controls_are_off(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    lab = labs[0]
    on_backend(lab.job, backend)
    viewer = Lab(limiter=lab.limiter)
    labs.append(viewer)
    viewer.start([run.cfg for run in lab.job.runs])  # another session, the same settings: it joins
    assert viewer.job is lab.job and lab.watchers == 2 and lab.limiter.in_use == 1
    at.run()
    assert_clean(at)
    assert at.button(key="train_pause").disabled
    assert any("2 sessions watch this run" in c.value for c in at.caption)
    assert not [s for s in at.select_slider if s.key and s.key.startswith("train_live_lr")]
    viewer.stop()  # the viewer leaves: the run goes on for this session, the viewer keeps what it saw
    assert lab.job.status == "running" and viewer.job.status == "stopped" and viewer.histories()[1]
    at.run()
    assert not at.button(key="train_pause").disabled  # alone again: the controls are back
    click(at, "train_stop")
    assert lab.job.status == "stopped"


def test_an_error_inside_a_run_is_a_message_not_a_traceback(labs, backend):
    """A run that fails mid-way (one training label beyond the 10 classes, sent to the job as this session's data:
    on Ray it crosses to the actor, where no patch of this process could reach) shows a message, not a traceback."""
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    digits = load_dataset("digits", 0)
    labels = digits.y_train.clone()
    labels[2] = 99  # first drawn at step 4 of seed 0's batches: the steps before it are recorded
    bad = dataclasses.replace(digits, y_train=labels)
    labs[0]._user_datasets = lambda configs: {("digits", 0, 0.5): bad}
    at.button(key="train_start").click()
    at.run()  # the run may have failed already by the end of this rerun: not click(), which asserts no error
    job = on_backend(labs[0].job, backend)
    assert job.join(JOIN) and job.status == "error"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("The run stopped with an error: IndexError: Target 99 is out of bounds"), errors
    assert errors[0].endswith("Try other settings; nothing else is affected."), errors
    assert job.snapshot().runs[0].history.steps.size > 0  # the steps before the failure ...
    assert charts_drawn(at)  # ... are still drawn


# ---- the other pages -----------------------------------------------------------------------------------------------
def start_small_compare() -> AppTest:
    """The Compare page (BN against none by default) with both runs small (20 steps, width 4, depth 2), started."""
    at = open_page("compare")
    assert at.selectbox(key="cmpA_norm").value == "batch" and at.selectbox(key="cmpB_norm").value == "none"
    for side in ("cmpA", "cmpB"):
        at.number_input(key=f"{side}_steps").set_value(20)
        at.select_slider(key=f"{side}_width").set_value(4)
        at.slider(key=f"{side}_depth").set_value(2)
    at.run()
    click(at, "compare_start")
    return at


@THREADS_ONLY
def test_compare_starts_batch_norm_against_none(labs, backend):
    at = start_small_compare()
    lab = labs[0]
    assert lab.labels == ["BN", "no BN"]  # named by what differs, as on Train & watch
    assert [r.cfg.norm for r in on_backend(lab.job, backend).runs] == ["batch", "none"]
    assert [r.cfg.steps for r in lab.job.runs] == [20, 20]
    assert lab.job.join(JOIN) and lab.job.status == "finished"
    at.run()
    assert_clean(at)
    assert "finished" in status_text(at)
    table = at.dataframe[0].value
    assert list(table["run"]) == ["BN", "no BN"] and list(table["norm"]) == ["batch", "none"]


@THREADS_ONLY
def test_home_demo_starts_the_default_preset(labs, backend):
    at = open_page("home")
    click(at, "home_demo")
    lab = labs[0]
    on_backend(lab.job, backend)
    assert lab.running and lab.labels == ["no BN", "BN"]
    assert [r.cfg.norm for r in lab.job.runs] == ["none", "batch"]
    lab.reset()


def test_runs_page_shows_loaded_runs(labs):
    history = train(RunConfig(width=4, depth=2, steps=10)).history
    at = open_page("runs")
    assert any("Nothing trained yet" in i.value for i in at.info)
    labs[0].load(LoadedRuns(["BN"], [history], source="bnviz-run.zip"))
    at.run()
    assert_clean(at)
    assert not at.info  # no "nothing trained" note
    assert charts_drawn(at) and at.get("download_button")
    at.switch_page("pages/train.py")
    at.run()
    assert_clean(at)
    assert any("Showing a saved run (bnviz-run.zip)" in i.value for i in at.info)
    assert any(m.value == "**Run BN**" for m in at.markdown)


def test_session_end_stops_the_job(labs, backend):
    at = open_page("train")
    small_sidebar(at, steps=20_000, twin=False)
    click(at, "train_start")
    lab, job = labs[0], on_backend(labs[0].job, backend)
    assert job.alive and lab.limiter.in_use == 1
    st.cache_resource.clear()  # what Streamlit does when the browser session goes away: on_release runs
    assert not job.alive and lab.job is None and lab.limiter.in_use == 0


@THREADS_ONLY
@pytest.mark.parametrize("norm, twin", [("batch", True), ("none", False)])
def test_every_page_draws_a_finished_run(labs, backend, norm, twin):
    """With data to draw, no page shows an exception, an error or a chart warning."""
    at = open_page("train")
    at.selectbox(key="cfg_norm").set_value(norm)
    small_sidebar(at, steps=20, twin=twin)
    click(at, "train_start")
    job = on_backend(labs[0].job, backend)
    assert job.join(JOIN) and job.status == "finished"
    for name in PAGES:
        at.switch_page(f"pages/{name}.py")
        at.run()
        assert_clean(at)
        # the only warning allowed: another page's settings differ from the run on screen (the stale-charts banner)
        warnings = [w.value for w in at.warning if not w.value.startswith("These charts show the run started on")]
        assert not warnings, (name, warnings)
        if name != "runs":
            assert "finished" in status_text(at), name
        assert charts_drawn(at), name


def charts_drawn(at) -> list:
    """The page's charts: bnviz's live chart component (bnviz/ui/plot.py), or st.plotly_chart when it is off."""
    return at.get("plotly_chart") + at.get("bidi_component")


# ---- the stale-charts banner and the result in words ---------------------------------------------------------------
def _banners(at) -> list[str]:
    return [w.value for w in at.warning if w.value.startswith("These charts show")]


@THREADS_ONLY
def test_changed_settings_are_flagged_and_can_be_put_back(labs, backend):
    at = open_page("train")
    at.selectbox(key="cfg_norm").set_value("batch")
    small_sidebar(at, steps=20, twin=True)
    click(at, "train_start")
    assert on_backend(labs[0].job, backend).join(JOIN)
    at.run()
    assert not _banners(at)
    assert any(s.value.startswith("**Result:** BN reached") for s in at.success)  # the run's result in words
    at.radio(key="cfg_activation").set_value("tanh")
    at.number_input(key="cfg_steps").set_value(40)
    at.run()
    (banner,) = _banners(at)
    assert "the run you started (BN and no BN)" in banner
    assert "BN: activation relu → tanh, steps 20 → 40" in banner
    click(at, "train_restore")
    assert at.radio(key="cfg_activation").value == "relu" and at.number_input(key="cfg_steps").value == 20
    assert not _banners(at)


@THREADS_ONLY
def test_a_compare_run_is_named_on_train_and_watch(labs, backend):
    at = start_small_compare()
    assert on_backend(labs[0].job, backend).join(JOIN)
    at.switch_page("pages/train.py")
    at.run()
    assert_clean(at)
    (banner,) = _banners(at)
    assert banner.startswith("These charts show the run started on Compare two runs (BN and no BN)")
