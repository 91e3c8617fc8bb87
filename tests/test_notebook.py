"""The example notebook runs from top to bottom (executed with nbclient in a temporary folder: the committed
notebook, which has no outputs, is never written back)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "watch_bn.ipynb"


def test_watch_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"
    # the kernel runs in tmp_path and must import this checkout's bnviz
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "final test accuracy" in text and "saved to" in text
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    figures = [out for cell in nb.cells for out in cell.get("outputs", [])
               if "application/vnd.plotly.v1+json" in out.get("data", {}) or "text/html" in out.get("data", {})]
    assert len(figures) >= 8


@pytest.fixture(autouse=True)
def _no_plotly_browser(monkeypatch):
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)
