"""Standalone HTML files of every chart of a saved run (for slides and sharing), next to the run's data."""

from __future__ import annotations

import html
from pathlib import Path

from ..engine.history import History
from .captions import CAPTIONS
from .catalog import figure_catalog


def write_report(directory: str | Path) -> Path:
    """Write DIR/report/<chart>.html (sharing one plotly.min.js, so it works offline) and an index; return it."""
    history = History.load(directory)
    out = Path(directory) / "report"
    out.mkdir(exist_ok=True)
    items = []
    for name, fig in figure_catalog(history).items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory", full_html=True)
        caption = html.escape(CAPTIONS.get(name, ""))
        items.append(f'<li><a href="{name}.html">{html.escape(name.replace("_", " "))}</a> {caption}</li>')
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


def _describe(config: dict, summary: dict) -> str:
    parts = [f"{config.get('model', '?')} on {config.get('dataset', '?')}", f"norm {config.get('norm', '?')}",
             f"lr {config.get('lr', '?')}", f"batch {config.get('batch_size', '?')}",
             f"status {summary.get('status', '?')} after {summary.get('steps', '?')} steps"]
    if summary.get("final_test_acc") is not None:
        parts.append(f"test accuracy {summary['final_test_acc']:.3f}")
    return ", ".join(parts)
