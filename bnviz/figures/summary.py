"""Every figure in words and as a table, read from its own data: for screen readers, and for anyone who wants numbers.

`describe(fig)` says what a figure shows in one short paragraph ("Training loss and test accuracy. cross-entropy loss
over training step 0 to 1,152: no BN 2.30 to 0.91, BN 2.31 to 0.04. ..."), `data_tables(fig)` gives its numbers as
small tables (the "Show data" under each chart). Both read any bnviz figure generically, a `go.Figure` or a plain dict
(numpy arrays, lists or plotly's typed-array dicts), so every builder gets them without code of its own: line and bar
traces are grouped by the axis they are drawn on, each series is told by its first and last value (a line) or its
bars; heatmaps by their value range; the density colour maps (drawn as images) are named, their numbers being in the
percentile lines drawn over them. A figure without data (a message, a preview) is told by its title and message.
A builder whose figure the generic words describe poorly puts its own, computed from its data, in
`layout.meta["summary"]` (the normalization pictures: which samples and channels share one mean).
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass

import numpy as np

from .style import Figure, even_rows

MAX_SERIES = 6  # series named per axis in a summary; more are counted ("and 4 more")
MAX_PARTS = 6  # panels (pairs of axes) told in a summary; the data tables hold them all
MAX_BARS = 8  # bars named one by one; more are told by their range
TABLE_ROWS = 40  # rows per data table: evenly spaced, first and last kept
TABLE_COLUMNS = 12  # heatmap columns per data table

_TAG = re.compile(r"<[^>]+>")


def clean(text) -> str:
    """Plotly text as plain words: <br> and tags out, entities decoded, spaces collapsed."""
    if not text:
        return ""
    text = str(text).replace("<br>", " ").replace("<br />", " ")
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def _array(value) -> np.ndarray | None:
    """A trace's data array from any form plotly takes: numpy, list, or a typed-array dict {dtype, bdata, shape}."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "bdata" not in value:
            return None
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value.get("dtype", "f8")))
        shape = value.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")] if isinstance(shape, str) else list(shape)
            out = out.reshape(dims)
        return out
    if isinstance(value, (str, bytes)):
        return None
    out = np.asarray(value)
    if out.dtype == object:
        try:
            out = out.astype(np.float64)
        except (TypeError, ValueError):
            out = out.astype(str)
    return out


def _numeric(values: np.ndarray | None) -> np.ndarray | None:
    if values is None or values.dtype.kind not in "biuf":
        return None
    return values.astype(np.float64)


def _as_dict(fig: Figure) -> dict:
    return fig if isinstance(fig, dict) else fig.to_plotly_json()


def _axis(layout: dict, ref: str | None, letter: str) -> dict:
    """The layout entry of a trace's axis ("x2" -> layout["xaxis2"])."""
    ref = ref or letter
    return layout.get(f"{letter}axis{ref[1:]}") or {}


def _axis_title(axis: dict) -> str:
    title = axis.get("title")
    return clean(title.get("text") if isinstance(title, dict) else title)


def number(value: float, percent: bool = False) -> str:
    """A value as a reader says it: 3 significant digits, thousands separated, percentages as such."""
    if value is None or not math.isfinite(value):
        return "no value"
    if percent:
        return f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 0.01:
        return f"{value:#.3g}".rstrip(".")
    return f"{value:.2e}"


def position(value: float) -> str:
    """An x value (a step, a bin's position): whole numbers as such, others like `number`."""
    if value is not None and math.isfinite(value) and float(value).is_integer():
        return f"{value:,.0f}"
    return number(value)


@dataclass
class Series:
    """One drawn series of a trace: its name, kind and finite data."""

    name: str
    kind: str  # "line", "bar" or "heatmap"
    x: np.ndarray | None
    y: np.ndarray | None
    z: np.ndarray | None = None
    x_labels: np.ndarray | None = None  # category names of a bar chart (strings)


def _segments(x: np.ndarray | None, y: np.ndarray) -> list[tuple[np.ndarray | None, np.ndarray]]:
    """A trace that joins several curves with NaN gaps (bnviz does, to keep traces few) split back into curves:
    a new curve starts where x goes back."""
    xs = _numeric(x) if x is not None and len(x) == len(y) else None
    if xs is None or len(xs) < 2:
        return [(x, y)]
    finite = np.flatnonzero(np.isfinite(xs))
    starts = [0] + [int(i) for i in finite[1:][np.diff(xs[finite]) < 0]]
    bounds = starts + [len(xs)]
    return [(x[a:b], y[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@dataclass
class Part:
    """What one pair of axes of a figure shows."""

    label: str  # the y axis title, or the x axis title for horizontal bars
    x_title: str
    percent: bool
    series: list[Series]


def _subplot_title(layout: dict, xaxis: dict, yaxis: dict) -> str:
    """The subplot title over a pair of axes (bnviz.figures.style.subplots names them "subplot title ..."): the one
    whose x lies in the x axis's domain, nearest above the y axis's domain (a grid's column title for every row)."""
    (x0, x1), top = xaxis.get("domain") or (0, 1), (yaxis.get("domain") or (0, 1))[1]
    best, gap = "", math.inf
    for note in layout.get("annotations") or []:
        named = str(note.get("name") or "").startswith("subplot title")
        if not named and (note.get("xref") != "paper" or note.get("yref") != "paper"
                          or len(clean(note.get("text"))) > 60):
            continue
        x, y = note.get("x"), note.get("y")
        if x is None or y is None or not x0 - 1e-6 <= x <= x1 + 1e-6 or y < top - 1e-6:
            continue
        if y - top < gap:
            best, gap = clean(note.get("text")), y - top
    return best


def _parts(fig: dict) -> list[Part]:
    layout = fig.get("layout") or {}
    parts: dict[tuple[str, str], Part] = {}
    subtitles: dict[tuple[str, str], str] = {}
    rows: dict[tuple[str, str], tuple] = {}  # each pair of axes' row (its y domain): a grid names a row once
    for trace in fig.get("data") or []:
        kind = trace.get("type") or "scatter"
        if trace.get("visible") in (False, "legendonly"):
            continue
        xref, yref = trace.get("xaxis") or "x", trace.get("yaxis") or "y"
        xaxis, yaxis = _axis(layout, xref, "x"), _axis(layout, yref, "y")
        key = (xref, yref)
        if key not in parts:
            parts[key] = Part(_axis_title(yaxis), _axis_title(xaxis), "%" in str(yaxis.get("tickformat") or ""), [])
            subtitles[key] = _subplot_title(layout, xaxis, yaxis)
            rows[key] = tuple(yaxis.get("domain") or (0, 1))
        part = parts[key]
        name = clean(trace.get("name")) or clean(trace.get("legendgroup"))
        x, y, z = _array(trace.get("x")), _array(trace.get("y")), _array(trace.get("z"))
        if kind == "heatmap" and z is not None:
            zn = _numeric(z)
            if zn is not None and np.isfinite(zn).any():
                part.series.append(Series(name, "heatmap", x, y, zn))
            continue
        if kind == "bar":
            if trace.get("orientation") == "h":
                x, y = y, x
                part.label = part.label or _axis_title(xaxis)
            yn = _numeric(y)
            if yn is not None and np.isfinite(yn).any():
                labels = x.astype(str) if x is not None and _numeric(x) is None else None
                part.series.append(Series(name, "bar", _numeric(x), yn, x_labels=labels))
            continue
        yn = _numeric(y)
        if yn is None or not np.isfinite(yn).any():
            continue
        if x is None:
            x = np.arange(len(yn), dtype=np.float64)
        for sx, sy in _segments(x, yn):
            if np.isfinite(sy).any():
                part.series.append(Series(name, "line", _numeric(sx) if sx is not None else None, sy,
                                          x_labels=sx.astype(str) if sx is not None and _numeric(sx) is None
                                          else None))
    shared = [t for t in subtitles.values() if t]
    x_title = next((p.x_title for p in parts.values() if p.x_title), "")
    row_titles = {rows[k]: p.label for k, p in parts.items() if p.label}
    for key, part in parts.items():
        part.label = part.label or row_titles.get(rows[key], "")
        title = subtitles[key]
        if title:  # a grid's column title is shared by its rows: keep each row's y axis title too
            part.label = f"{title}, {part.label}" if shared.count(title) > 1 and part.label else title
        part.x_title = part.x_title or x_title
    return [p for p in parts.values() if p.series]


def chart_title(fig: Figure) -> str:
    """The figure's title as plain text ("Chart" if it has none)."""
    return _title(_as_dict(fig))


def _title(fig: dict) -> str:
    title = (fig.get("layout") or {}).get("title")
    return clean(title.get("text") if isinstance(title, dict) else title) or "Chart"


def _messages(fig: dict) -> list[str]:
    """Annotations that are not subplot titles (messages of an empty chart, notes under the axis)."""
    notes = (fig.get("layout") or {}).get("annotations") or []
    return [clean(a.get("text")) for a in notes if not str(a.get("name") or "").startswith("subplot title")
            and clean(a.get("text"))]


def _merge_curves(series: list[Series]) -> list:
    """Series in order, the curves of one name that follow each other as one list (a trace joined with gaps)."""
    out: list = []
    for s in series:
        last = out[-1] if out else None
        previous = last[-1] if isinstance(last, list) else last
        if previous is not None and s.kind == previous.kind == "line" and s.name and s.name == previous.name:
            out[-1] = (last if isinstance(last, list) else [last]) + [s]
        else:
            out.append(s)
    return out


def _line_words(s: Series, percent: bool, ranges: bool = True) -> str:
    finite = np.flatnonzero(np.isfinite(s.y))
    first, last = s.y[finite[0]], s.y[finite[-1]]
    name = f"{s.name} " if s.name else ""
    if len(finite) == 1:
        return f"{name}{number(last, percent)}"
    words = f"{name}{number(first, percent)} to {number(last, percent)}"
    low, high = np.nanmin(s.y), np.nanmax(s.y)
    margin = 0.05 * (high - low)
    if ranges and (low < min(first, last) - margin or high > max(first, last) + margin):
        words += f" (range {number(low, percent)} to {number(high, percent)})"
    return words


def _bar_words(s: Series, percent: bool) -> str:
    keep = np.flatnonzero(np.isfinite(s.y))
    names = s.x_labels if s.x_labels is not None else (
        np.array([position(v) for v in s.x]) if s.x is not None else np.arange(len(s.y)).astype(str))
    prefix = f"{s.name}: " if s.name else ""
    if len(keep) <= MAX_BARS:
        return prefix + ", ".join(f"{clean(names[i])} {number(s.y[i], percent)}" for i in keep)
    hi, lo = keep[np.argmax(s.y[keep])], keep[np.argmin(s.y[keep])]
    at = "at " if s.x_labels is None else ""
    return (f"{prefix}{len(keep)} bars from {number(s.y[lo], percent)} ({at}{clean(names[lo])}) "
            f"to {number(s.y[hi], percent)} ({at}{clean(names[hi])})")


def _heatmap_words(s: Series) -> str:
    z = s.z
    rows, cols = (z.shape + (1,))[:2] if z.ndim else (1, 1)
    name = f"{s.name}: " if s.name else ""
    return (f"{name}a grid of {rows} by {cols} cells with values from {number(np.nanmin(z))} "
            f"to {number(np.nanmax(z))}")


def _x_span(part: Part) -> str:
    xs = [s.x for s in part.series if s.kind == "line" and s.x is not None and s.x.size]
    if not xs:
        return ""
    lo = min(np.nanmin(x) for x in xs)
    hi = max(np.nanmax(x) for x in xs)
    if part.x_title:
        return f" over {part.x_title} {position(lo)} to {position(hi)}"
    return f" from x = {position(lo)} to {position(hi)}"


def describe(fig: Figure) -> str:
    """The figure in words, from its data: its title, then per pair of axes what each series does."""
    fig = _as_dict(fig)
    meta = (fig.get("layout") or {}).get("meta")
    if isinstance(meta, dict) and meta.get("summary"):  # a builder's own words, where generic ones would be poor
        return clean(meta["summary"])
    title = _title(fig)
    parts = _parts(fig)
    images = (fig.get("layout") or {}).get("images") or []
    sentences = [title.rstrip(".") + "."]
    if not parts and not images:
        messages = _messages(fig)
        text = " ".join(messages) if messages else "No data yet"
        sentences.append(text if text[-1:] in ".!?" else text + ".")
        return " ".join(sentences)
    if images:
        sentences.append(f"{len(images)} colour map{'s' if len(images) > 1 else ''} of how values are distributed "
                         "at each step (brighter: more values)" + (", with these lines drawn over:" if parts else "."))
    for part in parts[:MAX_PARTS]:
        kinds = {s.kind for s in part.series}
        head = part.label or ("values" if "line" in kinds else "")
        words = []
        series = _merge_curves(part.series)
        for s in series[:MAX_SERIES]:
            if isinstance(s, list):  # several curves of one trace (joined with gaps): first to last of each
                words.append(f"{s[0].name} " + ", ".join(_line_words(Series("", "line", c.x, c.y), part.percent,
                                                                      ranges=False) for c in s))
            elif s.kind == "line":
                words.append(_line_words(s, part.percent))
            elif s.kind == "bar":
                words.append(_bar_words(s, part.percent))
            else:
                words.append(_heatmap_words(s))
        more = len(series) - MAX_SERIES
        if more > 0:
            words.append(f"and {more} more")
        span = _x_span(part) if "line" in kinds else ""
        prefix = f"{head}{span}".strip()
        sentences.append((f"{prefix}: " if prefix else "") + "; ".join(words) + ".")
    if len(parts) > MAX_PARTS:
        sentences.append(f"And {len(parts) - MAX_PARTS} more panels (see the data).")
    return " ".join(sentences)


@dataclass
class Table:
    """One data table: what it shows, its column names and rows of numbers (None: no value)."""

    caption: str
    columns: list[str]
    rows: list[list]
    percent: bool = False  # the values are shares, shown as percentages

    def as_text_rows(self) -> list[list[str]]:
        """The rows as a reader sees them: the first column as positions (steps), the values like the axis."""
        def cell(value, first: bool) -> str:
            if isinstance(value, str):
                return value
            if value is None:
                return ""
            return position(value) if first else number(value, self.percent)
        return [[cell(value, i == 0) for i, value in enumerate(row)] for row in self.rows]


def _thin(n: int, limit: int = TABLE_ROWS) -> np.ndarray:
    return even_rows(n, limit)


def data_tables(fig: Figure, max_rows: int = TABLE_ROWS) -> list[Table]:
    """The figure's numbers: per pair of axes, one table with the x values as rows and a column per series (at most
    `max_rows` evenly spaced rows, the first and last always kept); heatmaps as a grid of their values."""
    fig = _as_dict(fig)
    tables: list[Table] = []
    for part in _parts(fig):
        lines = [s for s in part.series if s.kind in ("line", "bar")]
        if lines:
            names, by_x, order = [], {}, []
            for s in lines:
                base = s.name or part.label or "value"
                name = base
                k = 2
                while name in names:
                    name, k = f"{base} ({k})", k + 1
                names.append(name)
                labels = s.x_labels if s.x_labels is not None else s.x
                if labels is None:
                    labels = np.arange(len(s.y))
                # as Python numbers first: a loop over numpy scalars costs several times more (a live chart's
                # tables are rebuilt every few seconds in the process that trains)
                labels = labels.tolist() if isinstance(labels, np.ndarray) else labels
                values = np.asarray(s.y, dtype=np.float64).tolist()
                for x, y in zip(labels, values, strict=False):
                    key = x if isinstance(x, str) else float(x)
                    if not isinstance(key, str) and not math.isfinite(key):
                        continue  # the gap between two joined curves
                    if key not in by_x:
                        by_x[key] = {}
                        order.append(key)
                    by_x[key][name] = y if math.isfinite(y) else None
            if all(isinstance(k, float) for k in order):
                order.sort()
            keep = _thin(len(order), max_rows)
            rows = [[k if isinstance(k, str) else k] + [by_x[k].get(n) for n in names]
                    for k in (order[i] for i in keep)]
            shown = f" ({len(keep)} of {len(order)} rows, evenly spaced)" if len(keep) < len(order) \
                else ""
            caption = (part.label or "values") + shown
            tables.append(Table(caption, [part.x_title or "x"] + names, rows, part.percent))
        for s in part.series:
            if s.kind != "heatmap":
                continue
            z = np.atleast_2d(s.z)
            ri, ci = _thin(z.shape[0], max_rows), _thin(z.shape[1], TABLE_COLUMNS)
            xs = s.x if s.x is not None and len(s.x) == z.shape[1] else np.arange(z.shape[1])
            ys = s.y if s.y is not None and len(s.y) == z.shape[0] else np.arange(z.shape[0])
            columns = [part.label or "row"] + [clean(xs[j]) if isinstance(xs[j], str) else position(float(xs[j]))
                                               for j in ci]
            rows = [[clean(ys[i]) if isinstance(ys[i], str) else float(ys[i])]
                    + [float(z[i, j]) if np.isfinite(z[i, j]) else None for j in ci] for i in ri]
            tables.append(Table(s.name or "grid of values", columns, rows))
    return tables
