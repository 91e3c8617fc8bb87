"""Standalone HTML files of every chart of a saved run (for slides and sharing), next to the run's data."""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..engine.history import History
from ..errors import RunFileError
from .captions import CAPTIONS
from .catalog import figure_catalog


def write_report(directory: str | Path) -> Path:
    """Write DIR/report/<chart>.html (sharing one plotly.min.js, so it works offline) and an index; return it.
    Nothing is written outside DIR/report: a report folder or file that is a symbolic link is refused, and names
    that come from run.json (layers, stages) become file names only as letters, digits, '_' and '-'."""
    history = History.load(directory)
    out = Path(directory) / "report"
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunFileError(f"{out} is a symbolic link or not a folder: remove it, the report is written there")
    out.mkdir(exist_ok=True)
    for fixed in ("index.html", "plotly.min.js"):  # plotly writes its script through a dangling link otherwise
        _writable(out / fixed)
    items = []
    for name, fig in figure_catalog(history).items():
        file = _file_name(name)
        _writable(out / file)
        fig.write_html(out / file, include_plotlyjs="directory", full_html=True)
        caption = html.escape(CAPTIONS.get(name, ""))
        items.append(f'<li><a href="{html.escape(file)}">{html.escape(name.replace("_", " "))}</a> {caption}</li>')
    summary = history.meta.get("summary", {})
    config = history.meta.get("config", {})
    watched = history.meta.get("watch")
    dataset = history.meta.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("file"), str):  # your own images: name the file
        config = {**config, "dataset": f"{dataset['file']} (your images)"}
    about = _describe(config, summary) if not watched else \
        f"{watched.get('model', '?')} watched with bnviz.watch, {summary.get('steps', '?')} steps"
    index = out / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>bnviz report</title>"
        "<body style='font:18px sans-serif;max-width:60em;margin:2em auto'>"
        f"<h1>bnviz run report</h1><p>{html.escape(about)}</p><ul>{''.join(items)}</ul>"
    )
    return index


def _file_name(name: str) -> str:
    """A chart's file name: only letters, digits, '_' and '-' (a stage "x/../../escaped" stays in the folder)."""
    return (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "chart")[:120] + ".html"


def _writable(path: Path) -> None:
    if path.is_symlink():
        raise RunFileError(f"{path} is a symbolic link: remove it, the report writes its own file there")


def _describe(config: dict, summary: dict) -> str:
    parts = [f"{config.get('model', '?')} on {config.get('dataset', '?')}", f"norm {config.get('norm', '?')}",
             f"lr {config.get('lr', '?')}", f"batch {config.get('batch_size', '?')}",
             f"status {summary.get('status', '?')} after {summary.get('steps', '?')} steps"]
    if summary.get("final_test_acc") is not None:
        parts.append(f"test accuracy {summary['final_test_acc']:.3f}")
    return ", ".join(parts)
