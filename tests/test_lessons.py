"""The "Beyond the basics" lessons: their experiments on short settings, checked against independent counts and
computations, and their page rendered with AppTest (buttons clicked, results shown, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from bnviz.science import background
from bnviz.science.bn_backprop import bias_experiment
from bnviz.science.depth_gradients import depth_experiment, depth_findings
from bnviz.science.inference_folding import fold_findings, fold_lesson
from bnviz.science.result_cache import remember

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "inference.py")


@pytest.fixture(scope="module")
def folded():
    return fold_lesson(steps=30, seed=0)


def test_folding_a_trained_cnn_keeps_its_predictions(folded):
    width, depth = 16, 3  # the default CNN
    assert folded.folded_layers == depth
    # per block BN's gamma and beta (2 x width) go, the conv gains a bias (width): width fewer parameters per block
    assert folded.parameters - folded.parameters_folded == depth * width
    assert folded.max_logit_difference <= 1e-4 and folded.predictions_agree == 1.0
    assert folded.accuracy == folded.accuracy_folded
    assert folded.ms_unfolded > 0 and folded.ms_folded > 0


def test_fold_findings_quote_the_run(folded):
    text = " ".join(fold_findings(folded))
    assert f"{folded.parameters:,} parameters became {folded.parameters_folded:,}" in text
    assert f"{folded.max_logit_difference:.1e}" in text and f"{folded.accuracy:.1%}" in text


def test_depth_findings_quote_the_frame():
    frame = pd.DataFrame({"depth": [2, 40, 2, 40], "model": ["no BN", "no BN", "BN", "BN"],
                          "ratio": [1.0, 0.5, 1.2, 3000.0]})
    assert depth_findings(frame) == [
        "no BN: the first layer's gradient is 1x the last layer's at depth 2, and 0.5x at depth 40.",
        "BN: the first layer's gradient is 1.2x the last layer's at depth 2, and 3e+03x at depth 40."]


def test_page_renders_and_shows_both_lessons(folded):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error
    remember(fold_lesson, folded, steps=300, seed=0)  # the page's settings, answered by the short run
    at.button(key="fold_run").click().run()
    at.button(key="depth_run").click().run()  # trains in the background: wait for it, then look again
    assert all(run.wait(120) for run in background.runs())
    at.run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert "Folded 3 batch-norm layers" in shown
    result = depth_experiment(init="he")
    assert depth_findings(result.summary)[1] in shown


def test_backprop_page_renders_and_shows_its_lessons():
    page = str(Path(__file__).resolve().parents[1] / "pages" / "backprop.py")
    at = AppTest.from_file(page, default_timeout=120).run()
    assert not at.exception and not at.error
    remember(bias_experiment, bias_experiment(steps=60), steps=600)  # the page's settings, a short run's answer
    at.button(key="bias_run").click().run()
    at.radio(key="jacobian_channel").set_value("channel 2").run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert "no gradient through mean and variance: bias gradient" in shown


def test_running_statistics_helpers_against_direct_computation():
    import numpy as np
    import torch

    from bnviz.science.running_statistics import centered_mean, channel_correlation, ema

    values = np.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_allclose(ema(values, 0.5), [0.5, 1.25, 2.625, 5.3125])  # r = r/2 + v/2 from 0
    np.testing.assert_allclose(centered_mean(values, 1), [1.5, 7 / 3, 14 / 3, 6.0])
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4, 4)
    flat = x.permute(1, 0, 2, 3).reshape(3, -1).numpy()
    np.testing.assert_allclose(channel_correlation(x), np.corrcoef(flat), atol=1e-12)
    scaled = x * torch.tensor([2.0, 0.5, 3.0]).reshape(1, 3, 1, 1) + 7  # per-channel affine: same correlations
    np.testing.assert_allclose(channel_correlation(scaled), channel_correlation(x), atol=1e-6)


def test_statistics_page_shows_the_run():
    from bnviz.science.running_statistics import running_stats_findings, running_stats_lesson

    short = running_stats_lesson(steps=80, batch_size=8)
    assert 0 <= short.acc_train_mode_one <= 1 and len(short.batch_means) == 80
    page = str(Path(__file__).resolve().parents[1] / "pages" / "statistics.py")
    at = AppTest.from_file(page, default_timeout=120).run()
    remember(running_stats_lesson, short, steps=400, batch_size=8)
    at.button(key="stats_run").click().run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert running_stats_findings(short)[0] in shown
