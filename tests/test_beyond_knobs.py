"""Lessons 4, 6 and 7 of "Beyond the basics": the weight-decay, ghost-batch, batch-renorm and dropout knobs through
config, optimizer, models, links, saved runs and the CLI; dropout against its formula and torch.nn.functional.dropout;
ghost BN against per-sub-batch F.batch_norm; scale invariance against torch.nn.functional; the lessons' experiments on
short settings and their pages rendered with AppTest."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest
from torch import nn

from bnviz.cli import main as cli_main
from bnviz.engine.batch_renorm import BatchRenorm, renorm_limits
from bnviz.engine.config import RunConfig
from bnviz.engine.data import BatchStream
from bnviz.engine.ghost_batch_norm import GhostBatchNorm1d, GhostBatchNorm2d, ghost_chunks
from bnviz.engine.history import History
from bnviz.engine.models import SeededDropout, build_model
from bnviz.engine.trainer import Run, train
from bnviz.errors import ConfigError
from bnviz.science.result_cache import remember
from bnviz.ui.link_params import LIVE, from_params, to_params

PAGES = Path(__file__).resolve().parents[1] / "pages"
DIGITS = (1, 8, 8)


# ---- the knobs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, words", [
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001"), ({"weight_decay": 2.0}, "weight_decay=2.0"),
    ({"weight_decay": math.nan}, "weight_decay=nan"), ({"ghost_batch": 3}, "divide the batch size"),
    ({"ghost_batch": 1}, "at least 2"), ({"ghost_batch": 4, "norm": "group"}, "norm='group'"),
    ({"ghost_batch": 4, "bn_impl": "scratch"}, "bn_impl='scratch'"),
    ({"norm": "batch-renorm", "batch_size": 1}, "batch_size=1"),
    ({"norm": "batch-renorm", "bn_impl": "scratch"}, "bn_impl='scratch'"),
    ({"dropout": -0.1}, "dropout=-0.1"), ({"dropout": 1.0}, "dropout=1.0 is not allowed: it must be >= 0.0 and < 1.0"),
    ({"dropout": math.inf}, "dropout=inf"), ({"dropout": "0.5"}, "dropout='0.5'"),
])
def test_bad_values_of_the_new_knobs_are_refused(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("'", "'")):
        RunConfig(**changes).validate()


def test_one_sgd_step_with_weight_decay_is_the_l2_update():
    cfg = RunConfig(model="mlp", depth=1, width=4, steps=2, weight_decay=0.01, lr=0.1, sgd_momentum=0.0,
                    record_every=0, norm="none")
    run = Run(cfg)
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    x, y = run.dataset.x_train[:8], run.dataset.y_train[:8]
    run.model.zero_grad()
    F.cross_entropy(run.model(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in run.model.named_parameters()}
    run.train_step(x, y)
    for name, p in run.model.named_parameters():  # w <- w - lr (g + wd w), written out
        expected = before[name] - 0.1 * (grads[name] + 0.01 * before[name])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_old_links_and_saved_runs_without_the_new_fields_open_the_same(tmp_path):
    exp, notes = from_params({}, LIVE)
    assert notes == [] and exp.configs[""].weight_decay == 0.0 and exp.configs[""].ghost_batch == 0
    assert exp.configs[""].dropout == 0.0
    cfg = exp.configs[""].replace(weight_decay=5e-4, batch_size=8, ghost_batch=4, dropout=0.3)
    params = to_params(type(exp)({"": cfg}, exp.twin), LIVE)
    assert params["wd"] == "0.0005" and params["ghost"] == "4" and params["drop"] == "0.3"
    back, notes = from_params(params, LIVE)
    assert notes == [] and back.configs[""] == cfg
    bad, notes = from_params({"ghost": "8", "bs": "60"}, LIVE)  # 8 does not divide 60: kept off, and said so
    assert bad.configs[""].ghost_batch == 0 and bad.configs[""].batch_size == 60 and "ghost=8" in notes[0]
    bad, notes = from_params({"drop": "0.99"}, LIVE)  # not a value the slider offers: off, and said so
    assert bad.configs[""].dropout == 0.0 and "drop=0.99" in notes[0]
    twin, notes = from_params({"twin": "drop:0.5"}, LIVE)
    assert notes == [] and twin.twin == ("dropout", 0.5)
    # a run saved before the fields existed
    run = train(RunConfig(steps=3, eval_every=1, samples=32, hist_bins=8))
    folder = run.history.save(tmp_path / "old")
    info = json.loads((folder / "run.json").read_text())
    for key in ("weight_decay", "ghost_batch", "dropout"):
        info["meta"]["config"].pop(key)
    (folder / "run.json").write_text(json.dumps(info))
    loaded = History.load(folder)
    cfg = RunConfig.from_dict(dict(loaded.meta["config"]))
    assert cfg.weight_decay == 0.0 and cfg.ghost_batch == 0 and cfg.dropout == 0.0


def test_cli_takes_the_new_flags_and_refuses_bad_values(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["run", "--steps", "4", "--eval-every", "2", "--weight-decay", "5e-4", "--norm", "batch-renorm",
                     "--batch-size", "8", "--samples", "32", "--out", str(out), "--quiet"])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["weight_decay"] == 5e-4 and saved["norm"] == "batch-renorm"
    code = cli_main(["run", "--ghost-batch", "4", "--batch-size", "8", "--steps", "2", "--eval-every", "1",
                     "--samples", "32", "--out", str(tmp_path / "ghost"), "--quiet"])
    assert code == 0 and json.loads((tmp_path / "ghost" / "config.json").read_text())["ghost_batch"] == 4
    code = cli_main(["run", "--dropout", "0.5", "--model", "mlp", "--steps", "2", "--eval-every", "1",
                     "--samples", "32", "--out", str(tmp_path / "drop"), "--quiet"])
    assert code == 0 and json.loads((tmp_path / "drop" / "config.json").read_text())["dropout"] == 0.5
    capsys.readouterr()
    code = cli_main(["run", "--weight-decay", "-1", "--out", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "weight_decay=-1.0 is not allowed" in err and "Traceback" not in err
    code = cli_main(["run", "--dropout", "1", "--out", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "dropout=1.0 is not allowed" in err and len(err.strip().splitlines()) == 1


# ---- dropout ------------------------------------------------------------------------------------------------------
def test_seeded_dropout_is_inverted_dropout_as_in_torch():
    p, x = 0.3, torch.rand(400_000, dtype=torch.float64) + 0.5
    layer = SeededDropout(p, torch.Generator().manual_seed(0))
    y = layer(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-15, atol=0)  # the formula: x m / (1 - p)
    assert abs(float(kept.double().mean()) - (1 - p)) < 0.003  # 5 standard deviations of the kept fraction
    torch.manual_seed(0)
    reference = F.dropout(x, p, training=True)  # torch's dropout: the same scaling, the same expectation
    torch.testing.assert_close(reference[reference != 0], x[reference != 0] / (1 - p), rtol=1e-15, atol=0)
    assert abs(float(y.mean() - reference.mean())) < 0.01 * float(x.mean())
    assert abs(float(y.mean() / x.mean()) - 1) < 0.005  # E[y] = x
    torch.testing.assert_close(layer.eval()(x), x)  # eval mode: the identity
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)  # the masks come from its generator
    torch.manual_seed(1)
    a = SeededDropout(0.5, g1)(torch.ones(100))
    torch.manual_seed(2)
    assert torch.equal(a, SeededDropout(0.5, g2)(torch.ones(100)))


@pytest.mark.usefixtures("engine_one_torch_thread")  # as a Job runs (cfg.threads = 1): the last bits depend on it
def test_dropout_off_trains_as_before_the_knob():
    """tests/data/dropout_off_reference.json: the losses (float.hex) of two short runs computed on main (587ca84),
    before the dropout knob existed, with this loop and one torch thread; dropout=0 must give the same numbers (and
    build no dropout module). On the machine that made the file they agree to the last bit; another CPU or BLAS
    may round differently, so the check allows float32 rounding (1e-5 relative) and one test image."""
    reference = json.loads((Path(__file__).parent / "data" / "dropout_off_reference.json").read_text())
    for item in reference.values():
        run = Run(RunConfig(**item["config"]))
        assert run.model.dropout is None and not any(isinstance(m, nn.Dropout) for m in run.model.modules())
        stream = BatchStream(run.dataset, run.cfg.batch_size, run.cfg.seed)
        losses = []
        while not run.done:
            losses.append(run.train_step(*stream.next()).hex())
        expected = [float.fromhex(v) for v in item["losses"]]
        np.testing.assert_allclose([float.fromhex(v) for v in losses], expected, rtol=1e-5)
        assert abs(run.final_test_acc - float.fromhex(item["final_test_acc"])) <= 1 / len(run.dataset.y_test) + 1e-12


def test_the_model_drops_every_block_output_in_training_only():
    p = 0.5
    net = build_model(RunConfig(model="mlp", depth=2, width=64, dropout=p), DIGITS, 10)
    plain = build_model(RunConfig(model="mlp", depth=2, width=64), DIGITS, 10)
    assert isinstance(net.dropout, SeededDropout) and net.dropout.p == p
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():  # eval mode: no dropout; the same network as without it (same seed, same init)
        torch.testing.assert_close(net.eval()(x), plain.eval()(x), rtol=0, atol=0)
    seen = {}
    for index, block in enumerate(net.blocks):  # what each block puts out, and what the next layer receives
        block.register_forward_hook(lambda m, i, out, k=index: seen.__setitem__(k, out.detach()))
    nexts = [net.blocks[1].layer, net.head]
    for index, layer in enumerate(nexts):
        layer.register_forward_pre_hook(lambda m, i, k=index: seen.__setitem__(f"in{k}", i[0].detach()))
    net.train()(x)
    for index in range(2):
        out, received = seen[index], seen[f"in{index}"]
        kept = received != 0
        torch.testing.assert_close(received[kept], out[kept] / (1 - p))  # kept values scaled by 1 / (1 - p)
        assert 0.4 < float((~kept[out > 0]).float().mean()) < 0.6  # about half the nonzero values are dropped


def test_runs_with_dropout_give_the_same_numbers_in_parallel_threads():
    cfg = RunConfig(model="mlp", dropout=0.5, steps=24, batch_size=16, eval_every=8, samples=32, hist_bins=8,
                    ics_every=8)
    runs = {}

    def train_in_thread(key):
        torch.manual_seed(key)  # the global generator differs between the threads, and is used meanwhile
        torch.rand(key + 1)
        runs[key] = train(cfg)

    threads = [threading.Thread(target=train_in_thread, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = runs[0].history, runs[1].history
    pd_equal = [a.scalars_frame().equals(b.scalars_frame()), a.layers_frame().equals(b.layers_frame()),
                a.channels_frame().equals(b.channels_frame())]
    assert all(pd_equal) and runs[0].final_test_acc == runs[1].final_test_acc
    without = train(cfg.replace(dropout=0.0)).history.scalars_frame()["loss"]
    assert not np.array_equal(without.to_numpy(), a.scalars_frame()["loss"].to_numpy())  # dropout does something
    no_ics = train(cfg.replace(ics_every=0)).history.scalars_frame()["loss"]  # the ICS passes reuse the step's masks
    np.testing.assert_array_equal(no_ics.to_numpy(), a.scalars_frame()["loss"].to_numpy())


# ---- ghost batch norm and batch renorm in the models --------------------------------------------------------------
@pytest.mark.parametrize("shape, cls", [((12, 3, 4, 4), GhostBatchNorm2d), ((13, 5), GhostBatchNorm1d)])
def test_ghost_batch_norm_is_batch_norm_per_sub_batch(shape, cls):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 1
    layer = cls(shape[1], ghost_batch=4, momentum=0.1).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2)
        layer.bias.uniform_(-1, 1)
    y = layer(x)
    sizes = [4, 4, 4] if shape[0] == 12 else [4, 4, 5]  # 13 = 4 + 4 + 4 + 1: the single sample joins the last one
    chunks = torch.split(x, sizes)
    expected = torch.cat([F.batch_norm(c, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)
                          for c in chunks])
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    assert [len(c) for c in ghost_chunks(x, 4)] == sizes
    # the running statistics: one update per step with the mean of the sub-batches' means and unbiased variances
    flat = [c.transpose(0, 1).reshape(shape[1], -1).numpy() for c in chunks]
    mean = np.mean([f.mean(axis=1) for f in flat], axis=0)
    var = np.mean([f.var(axis=1, ddof=1) for f in flat], axis=0)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-12)
    assert int(layer.num_batches_tracked) == 1
    layer.eval()  # eval mode: plain batch norm with the running statistics
    torch.testing.assert_close(layer(x), F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight,
                                                      layer.bias, False, 0.0, layer.eps))


def test_models_build_the_chosen_batch_norm_variant():
    ghost = build_model(RunConfig(batch_size=8, ghost_batch=2), DIGITS, 10)
    assert all(isinstance(b.norm, GhostBatchNorm2d) and b.norm.ghost_batch == 2 for b in ghost.blocks)
    renorm = build_model(RunConfig(model="mlp", norm="batch-renorm"), DIGITS, 10)
    assert all(isinstance(b.norm, BatchRenorm) and b.layer.bias is None for b in renorm.blocks)


def test_the_trainer_follows_the_papers_renorm_schedule_and_records_batch_renorm():
    cfg = RunConfig(norm="batch-renorm", steps=130, batch_size=4, eval_every=65, samples=32, hist_bins=8,
                    record_every=1)
    run = Run(cfg)
    seen = []
    layer = run.model.blocks[0].norm
    layer.register_forward_pre_hook(  # training steps only (train-mode evaluations run under no_grad)
        lambda m, i: seen.append((m.r_max, m.d_max)) if m.training and torch.is_grad_enabled() else None)
    x, y = run.dataset.x_train[:4], run.dataset.y_train[:4]
    while not run.done:
        run.train_step(x, y)
    # Ioffe (2017) on 130k steps: plain BN for 5k steps, r_max 3 after 40k, d_max 5 after 25k
    train_passes = seen
    assert len(train_passes) == 130
    assert train_passes[5] == (1.0, 0.0) and train_passes[40][0] == pytest.approx(3.0)
    assert train_passes[25][1] == pytest.approx(5.0) and train_passes[129] == (3.0, 5.0)
    assert train_passes[20] == pytest.approx(renorm_limits(20, 130))
    run.recorder.flush()
    channels = run.history.column("channels")
    assert np.isfinite(channels[:, :, 0]).all()  # gamma recorded every step
    assert np.isfinite(channels[:, :, 2]).all()  # the batch mean, measured from the layer's input


# ---- lesson 4: scale invariance and weight decay ------------------------------------------------------------------
def test_batch_norm_after_a_conv_is_scale_invariant_in_torch():
    torch.manual_seed(1)
    x = torch.randn(16, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(16, 5, 6, 6, dtype=torch.float64)

    def loss_at(weight):
        y = F.batch_norm(F.conv2d(x, weight, padding=1), None, None, training=True, eps=1e-12)  # torch refuses eps = 0
        return y, ((y - target) ** 2).mean()

    y1, l1 = loss_at(w)
    (g1,) = torch.autograd.grad(l1, w)
    w10 = (w.detach() * 10).requires_grad_()
    y10, l10 = loss_at(w10)
    (g10,) = torch.autograd.grad(l10, w10)
    torch.testing.assert_close(y10, y1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g10 * 10, g1, rtol=1e-8, atol=1e-12)  # the gradient scales as 1/a
    assert abs(float((g1 * w.detach()).sum())) < 1e-10 * float(g1.norm() * w.detach().norm())  # and is orthogonal to W


def test_the_scale_check_of_the_default_cnn():
    from bnviz.science.weight_decay import scale_findings, scale_invariance

    check = scale_invariance()
    rows = check.rows.set_index("scale")
    assert rows.train_diff[10.0] < 1e-5 and rows.train_diff[0.1] < 1e-3  # ε = 1e-5 breaks it a little at 0.1
    assert rows.eval_diff[10.0] > 1e-2  # eval mode: the running statistics belong to the old weights
    assert rows.grad_ratio[10.0] == pytest.approx(1.0, abs=1e-4) and abs(check.cosine) < 1e-5
    assert f"{rows.train_diff[10.0]:.1e}" in " ".join(scale_findings(check))


def test_weight_decay_lesson_reads_the_weight_norms_from_the_runs():
    from bnviz.science.weight_decay import LESSON_NET, weight_decay_findings, weight_decay_lesson

    result = weight_decay_lesson(weight_decay=0.05, steps=60)
    curves = result.curves
    cfg = RunConfig(**dict(LESSON_NET, steps=60, eval_every=60))
    net = build_model(cfg, DIGITS, 10)
    for block in (1, 2, 3):  # step 0: the initial weights, computed here from the model
        first = curves[(curves.block == block) & (curves.step == 0)]
        np.testing.assert_allclose(first.w_norm, float(net.blocks[block - 1].layer.weight.detach().norm()), rtol=1e-5)
    np.testing.assert_allclose(curves.effective_lr, 0.1 / curves.w_norm ** 2)
    last = curves[curves.step == curves.step.max()].groupby("run").w_norm.mean()
    assert last["weight decay 0.05"] < last["no weight decay"]
    text = weight_decay_findings(result)
    assert len(text) == 3 and text[0].startswith("No weight decay: ||W|| block 1:")
    remember(weight_decay_lesson, result, weight_decay=5e-3)  # the page's default, answered by this short run
    at = AppTest.from_file(str(PAGES / "scale.py"), default_timeout=120).run()
    at.button(key="wd_run").click().run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert text[0] in shown and "cos(W, ∂L/∂W)" in shown


# ---- lessons 6 and 7: small batches, dropout ----------------------------------------------------------------------
def test_small_batch_variants_and_their_settings():
    from bnviz.science.small_batches import BASE_LR, variant_config

    assert variant_config("ghost BN", 2) is None
    ghost = variant_config("ghost BN", 8, images=800)
    assert ghost.ghost_batch == 4 and ghost.steps == 100 and ghost.lr == BASE_LR
    assert variant_config("batch renorm", 2, images=800).steps == 400
    assert variant_config("batch renorm", 2).lr == pytest.approx(BASE_LR / 4)
    assert variant_config("GN", 4).norm == "group"


def test_dropout_shift_measures_the_variance_of_the_bn_inputs():
    from bnviz.science.dropout_shift import (
        PLACEMENTS,
        SeededDropout,
        bn_input_variances,
        dropout_findings,
        dropout_shift_lesson,
        with_dropout,
    )

    layer = SeededDropout(0.25, torch.Generator().manual_seed(0))
    x = torch.rand(200_000) + 1
    y = layer(x)
    kept = y != 0  # inverted dropout, as torch's: kept values divided by the keep probability 0.75
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs(float(kept.float().mean()) - 0.75) < 0.005
    torch.testing.assert_close(layer.eval()(x), x)
    cfg = RunConfig(model="mlp", depth=3, width=8)
    net = with_dropout(build_model(cfg, DIGITS, 10), "dropout before BN", 0.5)
    assert isinstance(net.blocks[1].layer[0], nn.Dropout) and not isinstance(net.blocks[0].layer, nn.Sequential)
    x = torch.randn(50, 1, 8, 8)
    captured = []
    net.blocks[2].norm.register_forward_pre_hook(lambda m, i: captured.append(i[0].detach().double().numpy()))
    variances = bn_input_variances(net, x)
    np.testing.assert_allclose(variances[2], captured[0].var(axis=0), rtol=1e-10)
    result = dropout_shift_lesson(steps=300)
    table = result.summary.set_index(["placement", "layer"])
    assert list(dict.fromkeys(result.summary.placement)) == list(PLACEMENTS)
    assert table["shift"]["dropout before BN", 3] < 0.9  # the variance shift behind dropout
    for placement in ("dropout after the last BN", "no dropout"):
        assert 0.85 < table["shift"][placement, 3] < 1.15
    assert f"{table['shift']['dropout before BN', 3]:.2f}" in " ".join(dropout_findings(result))


def test_remedies_page_shows_both_lessons():
    from bnviz.science.dropout_shift import dropout_findings, dropout_shift_lesson
    from bnviz.science.small_batches import IMAGES, small_batch_findings, small_batch_lesson

    short = small_batch_lesson(images=48)
    assert len(short.summary) == 11 and set(short.summary.status) == {"finished"}
    remember(small_batch_lesson, short, images=IMAGES)
    shift = dropout_shift_lesson(steps=60)
    remember(dropout_shift_lesson, shift, drop=0.5)
    at = AppTest.from_file(str(PAGES / "remedies.py"), default_timeout=120).run()
    at.button(key="smallbatch_run").click().run()
    at.button(key="dropout_run").click().run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert small_batch_findings(short)[0] in shown and dropout_findings(shift)[1] in shown
    assert "`/train?drop=0.5&twin=drop:0`" in shown  # the link test_share opens on Train & watch
