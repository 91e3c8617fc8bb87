"""The CLI contract: files written by `run`, exit codes, one-line errors, report and bench entry points."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnviz.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--steps", "12", "--eval-every", "5", "--width", "4", "--depth", "2", "--batch-size", "16", "--quiet"]


def test_run_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    for name in ("config.json", "summary.json", "scalars.csv", "layers.csv", "histograms.npz"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 12 and config["width"] == 4 and config["depth"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 12
    assert 0.0 <= summary["final_test_acc"] <= 1.0 and summary["steps_per_s"] > 0
    scalars = pd.read_csv(out / "scalars.csv")
    assert list(scalars["step"]) == list(range(12))
    assert {"step", "loss", "lr", "test_acc"} <= set(scalars.columns)
    assert scalars["test_acc"].notna().tolist() == [s % 5 == 0 or s == 11 for s in range(12)]
    layers = pd.read_csv(out / "layers.csv")
    assert {"step", "layer", "stage", "mean", "std", "p15", "p50", "p85"} <= set(layers.columns)
    assert set(layers["layer"]) == {1, 2} and set(layers["stage"]) == {"pre", "norm", "act"}
    assert len(layers) == 12 * 2 * 3
    with np.load(out / "histograms.npz", allow_pickle=False) as npz:
        assert npz["act_hist"].shape[:2] == (12, 6)
    assert "finished" in capsys.readouterr().out


def test_record_every_zero_records_nothing_but_still_reports(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--record-every", "0", "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "scalars.csv")) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("flags", [["--lr", "-1"], ["--norm", "sparkle"], ["--batch-size", "1"],
                                   ["--eps", "0"], ["--bogus", "3"], ["--steps", "ten"],
                                   ["--norm", "group", "--width", "6", "--groups", "4"]])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags):
    assert main(["run", *flags, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_missing_dataset_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BNVIZ_DATA_DIR", str(tmp_path / "data"))
    assert main(["run", "--dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "download mnist" in err


def test_divergence_is_a_result_not_an_error(tmp_path):
    out = tmp_path / "run"
    # no normalization, weights 10x PyTorch's default and lr 5: the activations overflow within a few steps
    flags = ["--norm", "none", "--model", "mlp", "--depth", "4", "--width", "16", "--init-scale", "10",
             "--lr", "5", "--steps", "200", "--quiet"]
    assert main(["run", *flags, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert 0 <= summary["diverged_at"] < 200
    scalars = pd.read_csv(out / "scalars.csv")
    assert scalars["step"].max() == summary["diverged_at"]


def test_report_writes_html(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    html_files = sorted(p.name for p in (out / "report").glob("*.html"))
    assert "index.html" in html_files and len(html_files) > 5
    assert (out / "report" / "plotly.min.js").is_file()  # offline: the bundle sits next to the pages


def test_report_of_a_non_run_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_module_entry_point_runs_in_a_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bnviz", "run", "--lr", "abc", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
