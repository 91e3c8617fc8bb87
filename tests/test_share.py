"""Shareable links: the pure encoding (bnviz.ui.link_params) and the pages opened from a link (AppTest).

A link must reproduce an experiment exactly: the config parsed from a link equals the config it was made from, and
the engine trains the same run from it. Tampered links never raise: every unusable value keeps its default and is
named in the note.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hs
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from bnviz.engine.config import ACTIVATIONS, EPS_CHOICES, INITS, MODELS, NORMS, OPTIMIZERS, PLACEMENTS, RunConfig
from bnviz.engine.trainer import train
from bnviz.science.presets import FORMER_NAMES, PRESETS
from bnviz.ui.choices import (
    BATCH_CHOICES,
    DEPTH_RANGE,
    GROUP_CHOICES,
    INIT_SCALE_CHOICES,
    LR_CHOICES,
    SEED_RANGE,
    STEPS_RANGE,
    TWIN_OPTIONS,
    WEIGHT_DECAY_CHOICES,
    WIDTH_CHOICES,
    ghost_choices,
    twin_changes,
)
from bnviz.ui.link_params import (
    COMPARE,
    GRADIENTS,
    INSIDE_BN,
    LINK_DATASETS,
    LIVE,
    MAX_NOTES,
    PAGE_LINKS,
    PLAIN,
    SETTINGS,
    TRAIN,
    Experiment,
    canonical,
    defaults_of,
    from_params,
    left_out,
    slug,
    to_params,
)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


# ---- the pure encoding --------------------------------------------------------------------------------------------
@hs.composite
def widget_configs(draw) -> RunConfig:
    """Any config the settings widgets can show."""
    values = dict(
        dataset=draw(hs.sampled_from(LINK_DATASETS)), model=draw(hs.sampled_from(MODELS)),
        depth=draw(hs.integers(*DEPTH_RANGE)), width=draw(hs.sampled_from(WIDTH_CHOICES)),
        activation=draw(hs.sampled_from(ACTIVATIONS)), norm=draw(hs.sampled_from(NORMS)),
        placement=draw(hs.sampled_from(PLACEMENTS)), eps=draw(hs.sampled_from(EPS_CHOICES)),
        bn_momentum=draw(hs.integers(0, 100)) / 100, groups=draw(hs.sampled_from(GROUP_CHOICES)),
        batch_size=draw(hs.sampled_from(BATCH_CHOICES)), lr=draw(hs.sampled_from(LR_CHOICES)),
        optimizer=draw(hs.sampled_from(OPTIMIZERS)), sgd_momentum=draw(hs.integers(0, 99)) / 100,
        init=draw(hs.sampled_from(INITS)), init_scale=draw(hs.sampled_from(INIT_SCALE_CHOICES)),
        steps=draw(hs.integers(*STEPS_RANGE)), seed=draw(hs.integers(*SEED_RANGE)),
        weight_decay=draw(hs.sampled_from(WEIGHT_DECAY_CHOICES)))
    if values["norm"] == "batch":
        values["ghost_batch"] = draw(hs.sampled_from(ghost_choices(values["batch_size"])))
    try:
        return canonical(RunConfig(**values).validate())
    except ValueError:
        assume(False)


twins = hs.none() | hs.sampled_from(list(TWIN_OPTIONS)).flatmap(
    lambda name: hs.tuples(hs.just(name), hs.sampled_from(TWIN_OPTIONS[name])))


def through_url(params: dict[str, str]) -> dict[str, list[str]]:
    """The parameters as a browser sends them back: encoded into a query string and parsed again."""
    return parse_qs(urlencode(params), keep_blank_values=True)


@settings(max_examples=200, deadline=None)
@given(cfg=widget_configs(), twin=twins, preset=hs.none() | hs.sampled_from(list(PRESETS)), present=hs.booleans())
def test_live_page_link_round_trips(cfg, twin, preset, present):
    exp = Experiment({"": cfg}, twin, preset, present)
    back, notes = from_params(through_url(to_params(exp, LIVE)), LIVE)
    assert notes == []
    assert back == exp


@settings(max_examples=100, deadline=None)
@given(a=widget_configs(), b=widget_configs())
def test_compare_page_link_round_trips(a, b):
    exp = Experiment({"a.": a, "b.": b})
    back, notes = from_params(through_url(to_params(exp, COMPARE)), COMPARE)
    assert (back, notes) == (exp, [])


def test_defaults_make_a_bare_link_and_a_bare_link_opens_the_defaults():
    for page in (LIVE, COMPARE, PLAIN):
        assert to_params(defaults_of(page), page) == {}
        assert from_params({}, page) == (defaults_of(page), [])


def test_a_link_names_only_what_differs_in_short_keys():
    cfg = canonical(RunConfig(norm="none", lr=0.5, batch_size=32, seed=7))
    exp = Experiment({"": cfg}, ("norm", "batch"), "A high learning rate (0.5), without and with BN", True)
    assert to_params(exp, LIVE) == {"norm": "none", "bs": "32", "lr": "0.5", "seed": "7",
                                    "preset": "a-high-learning-rate-0-5-without-and-with-bn", "present": "1"}
    assert to_params(Experiment({"": cfg}, None), LIVE)["twin"] == "off"
    assert to_params(Experiment({"": cfg}, ("lr", 5.0)), LIVE)["twin"] == "lr:5"


def test_numbers_may_be_written_any_way_that_names_a_widget_option():
    exp, notes = from_params({"lr": "5e-1", "eps": "0.00001", "bnmom": "0.350", "seed": "+7"}, LIVE)
    cfg = exp.configs[""]
    assert (cfg.lr, cfg.eps, cfg.bn_momentum, cfg.seed, notes) == (0.5, 1e-5, 0.35, 7, [])


def test_a_run_started_from_a_link_is_the_same_run(engine_one_torch_thread):
    cfg = canonical(RunConfig(norm="none", lr=0.1, batch_size=32, width=8, depth=2, steps=20, seed=3))
    query = urlencode(to_params(Experiment({"": cfg}, None), LIVE))
    opened, notes = from_params(parse_qs(query), LIVE)
    cfg_from_link = opened.configs[""]
    assert notes == [] and cfg_from_link.to_dict() == cfg.to_dict()
    first, second = train(cfg).history, train(cfg_from_link).history
    assert len(first) == 20
    np.testing.assert_array_equal(first.scalar("loss"), second.scalar("loss"))
    np.testing.assert_array_equal(first.scalar("test_acc"), second.scalar("test_acc"))


TAMPERED = [
    ({"lr": "banana"}, "lr", "`lr=banana`: not a number"),
    ({"depth": "99"}, "depth", "`depth=99`: a whole number from 1 to 6"),
    ({"norm": "<script>alert(1)</script>"}, "norm", "`norm=<script>alert(1)</script>`: use one of"),
    ({"steps": "1e3"}, "steps", "`steps=1e3`: a whole number"),
    ({"bnmom": "0.333"}, "bn_momentum", "in steps of 0.01"),
    ({"lr": "inf"}, "lr", "not a finite number"),
    ({"lr": "0.07"}, "lr", "use one of 0.0001"),
    ({"seed": ["1", "2"]}, "seed", "`seed` was given 2 times"),
    ({"lr": "9" * 100_000}, "lr", "`lr` is too long (100,000 characters)"),
    ({"groups": "16", "norm": "group", "width": "8"}, "groups", "`groups=16`: groups=16 is not allowed"),
    ({"norm": "instance", "model": "mlp"}, "norm", "`norm=instance`: norm='instance' is not allowed"),
]


@pytest.mark.parametrize(("params", "field", "note"), TAMPERED)
def test_a_tampered_value_keeps_its_default_and_is_named(params, field, note):
    exp, notes = from_params({**params, "act": "tanh"}, LIVE)
    cfg = exp.configs[""]
    assert getattr(cfg, field) == getattr(canonical(RunConfig()), field)
    assert cfg == cfg.replace()  # still valid
    assert any(note in text for text in notes), notes
    assert cfg.activation == "tanh"  # the good setting next to it is kept


def test_unknown_keys_twins_presets_and_flags_are_noted():
    exp, notes = from_params({"foo": "1", "a.lr": "0.5", "twin": "width:8", "preset": "nope", "present": "yes"},
                             LIVE)
    assert exp == defaults_of(LIVE)
    text = " ".join(notes)
    for part in ("`foo` is not a setting", "`a.lr` is not a setting", "`twin=width:8`", "`preset=nope`",
                 "`present=yes`"):
        assert part in text
    exp, notes = from_params({"twin": "bs:3"}, LIVE)
    assert exp.twin == ("batch_size", 2) and "`twin=bs:3`" in notes[0]


def test_notes_show_url_text_only_inside_code_spans_and_are_capped():
    _, notes = from_params({"norm": "`**x**`\n[a](javascript:1)"}, LIVE)
    assert notes[0].startswith("`norm=?**x**??[a](javascript:1)`")
    _, notes = from_params({f"k{i}": "1" for i in range(50)}, PLAIN)
    assert len(notes) == MAX_NOTES + 1 and notes[-1] == "and 42 more"


@settings(max_examples=150, deadline=None)
@given(hs.dictionaries(hs.sampled_from(["lr", "depth", "norm", "bs", "seed", "twin", "groups", "width", "model",
                                        "present", "preset", "a.lr", "b.steps"]) | hs.text(max_size=8),
                       hs.lists(hs.text(max_size=12) | hs.from_regex(r"-?[0-9.e+]{1,8}", fullmatch=True),
                                min_size=1, max_size=3), max_size=8),
       hs.sampled_from([LIVE, COMPARE, PLAIN]))
def test_any_query_opens_a_valid_experiment(params, page):
    exp, notes = from_params(params, page)
    for cfg in exp.configs.values():
        assert cfg.replace() == cfg  # validates
    assert len(notes) <= MAX_NOTES + 1


def test_an_uploaded_dataset_is_left_out_of_the_link_and_said_so():
    cfg = canonical(RunConfig(dataset="/tmp/my_images", lr=0.5))
    exp = Experiment({"": cfg}, None)
    assert "data" not in to_params(exp, LIVE) and to_params(exp, LIVE)["lr"] == "0.5"
    assert left_out(Experiment({"": canonical(RunConfig())})) == []
    assert left_out(exp) == ["your own dataset is not in the link: a link can only name digits or shapes, so whoever "
                             "opens it trains on digits"]


def test_preset_slugs_are_unique_and_url_safe():
    slugs = [slug(name) for name in PRESETS]
    assert len(set(slugs)) == len(slugs)
    assert all(s == urlencode({"": s})[1:] for s in slugs)


def test_a_link_to_a_renamed_preset_opens_the_preset_it_became():
    for old, new in FORMER_NAMES.items():
        assert old not in PRESETS and new in PRESETS
        exp, notes = from_params({"preset": slug(old)}, LIVE)
        assert exp.preset == new and notes == []
    opened = from_params({"preset": "tiny-batches-break-bn"}, LIVE)[0].preset
    assert opened == "Batches of 2: BN's train/eval gap, vs GN"


@settings(max_examples=100, deadline=None)
@given(page=hs.sampled_from([TRAIN, GRADIENTS, INSIDE_BN]), data=hs.data())
def test_view_choices_round_trip_and_only_differences_are_written(page, data):
    views = {view.widget: data.draw(hs.sampled_from(view.options)) for view in page.views}
    exp = Experiment({"": canonical(RunConfig())}, ("norm", "none"), views=views)
    params = to_params(exp, page)
    back, notes = from_params(through_url(params), page)
    assert not notes and back.views == views
    written = {view.key for view in page.views if views[view.widget] != view.default}
    assert set(params) == written  # the defaults stay out of the link
    assert from_params({}, page)[0].views == {view.widget: view.default for view in page.views}


def test_view_keys_are_not_setting_keys_and_name_existing_widget_options():
    setting_keys = {s.key for s in SETTINGS}
    for page in PAGE_LINKS.values():
        keys = [view.key for view in page.views]
        assert len(set(keys)) == len(keys) and not set(keys) & (setting_keys | {"twin", "preset", "present"})


@pytest.mark.parametrize(("params", "note"), [({"block": "9"}, "`block=9`"), ({"stage": "banana"}, "`stage=banana`"),
                                              ({"detail": ["drift", "saturation"]}, "`detail`")])
def test_a_bad_view_choice_keeps_its_default_and_is_named(params, note):
    exp, notes = from_params(params, TRAIN)
    assert exp.views == defaults_of(TRAIN).views and len(notes) == 1 and note in notes[0]


# ---- pages opened from a link (AppTest) ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run app.py (st.navigation) on every AppTest run, as a browser session does.

    AppTest resets `PagesManager.uses_pages_directory` before every run, and with a pages/ folder present every run
    after a page switch then executes the page file alone, without app.py (a real server does that once per
    process, and `bnviz.ui.page._leave_legacy_pages_mode` ends it). The link is read and written in app.py.
    """
    real_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def open_link(page: str, params: dict) -> AppTest:
    """A new session opening /<page>?<params>, as a browser does."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    if page != "home":
        at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_opens_train_with_its_settings_in_the_widgets():
    params = {"lr": "0.5", "bs": "32", "seed": "7", "norm": "none", "depth": "2", "twin": "lr:0.05",
              "preset": slug("A high learning rate (0.5), without and with BN")}
    at = open_link("train", params)
    expected, _ = from_params(params, LIVE)
    assert at.select_slider(key="cfg_lr").value == 0.5
    assert at.select_slider(key="cfg_batch_size").value == 32
    assert at.number_input(key="cfg_seed").value == 7
    assert at.selectbox(key="cfg_norm").value == "none"
    assert at.slider(key="cfg_depth").value == 2
    assert at.selectbox(key="twin_field").value == "lr" and at.selectbox(key="twin_value_lr").value == 0.05
    assert at.selectbox(key="cfg_preset").value == "A high learning rate (0.5), without and with BN"
    assert at.session_state["cfg_config"] == expected.configs[""]  # what Start would train
    assert not at.warning
    assert dict(at.query_params) == params  # the address bar keeps the link
    path, _, query = at.code[0].value.partition("?")  # the link to copy
    assert path.endswith("/train") and parse_qs(query) == through_url(params)


def test_a_link_sets_the_weight_decay_and_ghost_batch_widgets():
    params = {"wd": "0.0005", "bs": "8", "ghost": "4"}
    at = open_link("train", params)
    assert at.select_slider(key="cfg_weight_decay").value == 5e-4
    assert at.selectbox(key="cfg_ghost_batch").value == 4
    assert list(at.selectbox(key="cfg_ghost_batch").options) == ["off", "2", "4"]  # the sizes that divide 8
    cfg = at.session_state["cfg_config"]
    assert (cfg.weight_decay, cfg.ghost_batch, cfg.batch_size) == (5e-4, 4, 8) and not at.warning
    assert dict(at.query_params) == params
    # the default twin (no BN) cannot have ghost batches: they are turned off in it, and nothing else changes
    assert twin_changes(cfg, "norm", "none") == {"norm": "none", "ghost_batch": 0}
    assert twin_changes(cfg, "batch_size", 16) == {"batch_size": 16}  # 4 divides 16: kept
    assert twin_changes(cfg, "lr", 0.5) == {"lr": 0.5}


def test_bad_values_keep_their_defaults_with_one_note():
    at = open_link("train", {"lr": "banana", "depth": "99", "norm": "<script>", "foo": "1", "seed": "5"})
    assert at.select_slider(key="cfg_lr").value == 0.05 and at.slider(key="cfg_depth").value == 3
    assert at.selectbox(key="cfg_norm").value == "batch" and at.number_input(key="cfg_seed").value == 5
    [note] = at.warning
    for part in ("`lr=banana`", "`depth=99`", "`norm=<script>`", "`foo`"):
        assert part in note.value
    assert dict(at.query_params) == {"seed": "5"}  # the ignored values are gone from the address bar


def test_the_address_bar_follows_the_widgets():
    at = open_link("train", {})
    assert dict(at.query_params) == {}
    at.select_slider(key="cfg_lr").set_value(0.5).run()
    at.number_input(key="cfg_seed").set_value(11).run()
    assert dict(at.query_params) == {"lr": "0.5", "seed": "11"}
    at.toggle(key="twin_on").set_value(False).run()
    assert dict(at.query_params) == {"lr": "0.5", "seed": "11", "twin": "off"}


def test_a_compare_link_sets_both_runs():
    at = open_link("compare", {"a.lr": "0.5", "b.steps": "800", "b.norm": "layer"})
    assert at.select_slider(key="cmpA_lr").value == 0.5 and at.select_slider(key="cmpB_lr").value == 0.05
    assert at.number_input(key="cmpB_steps").value == 800 and at.selectbox(key="cmpB_norm").value == "layer"
    assert not at.warning


def test_presenter_mode_hides_the_advanced_controls_and_stays_on():
    normal = open_link("train", {})
    at = open_link("train", {"present": "1", "lr": "0.5", "bs": "32"})
    assert at.toggle(key="bnviz_present").value is True
    assert [w.key for w in at.sidebar.select_slider] == ["cfg_lr"]  # of the run's settings, only the lr
    assert len(normal.sidebar.select_slider) > 1 and not at.sidebar.number_input and not at.sidebar.slider
    assert normal.sidebar.number_input and normal.sidebar.slider
    assert at.selectbox(key="cfg_preset") is not None and at.button(key="train_start") is not None
    assert "twin_on" not in [t.key for t in at.toggle]
    assert at.session_state["cfg_config"].batch_size == 32  # hidden settings still make up the run
    at.switch_page("pages/gradients.py").run()
    assert at.toggle(key="bnviz_present").value is True and at.query_params["present"] == "1"
    at.toggle(key="bnviz_present").set_value(False).run()
    assert "present" not in at.query_params and len(at.sidebar.select_slider) > 1


def test_a_link_opens_a_page_with_its_view_choices_and_the_address_bar_follows_them():
    at = open_link("train", {"stage": "norm", "detail": "drift", "block": "2"})
    assert at.radio(key="train_stage").value == "norm" and at.radio(key="train_detail").value == "drift"
    assert at.slider(key="train_block").value == 2 and not at.warning
    at.radio(key="train_stage").set_value("act").run()
    assert dict(at.query_params) == {"stage": "act", "detail": "drift", "block": "2"}
    grad = open_link("gradients", {"block": "4", "depth": "4"})  # (AppTest opens a page before its first run only
    assert grad.slider(key="grad_block").value == 4  # where the file name is the URL path: not inside_bn / inside-bn)
    grad = open_link("gradients", {"block": "5"})  # the block slider ends at the model's depth (3 by default)
    assert grad.slider(key="grad_block").value == 3 and grad.slider(key="grad_block").max == 3
    grad = open_link("gradients", {"block": "banana"})
    assert grad.slider(key="grad_block").value == 1 and "`block=banana`" in grad.warning[0].value
