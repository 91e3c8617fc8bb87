"""Draw Plotly figures that update in place (Plotly.react) instead of being rebuilt on every refresh.

Why: `st.plotly_chart` gives each chart an element id that includes a hash of the figure, and its frontend reads
the figure only when the element mounts. So every new figure (a live chart twice a second) unmounts the old chart
and mounts a new one: a full `Plotly.newPlot`, a blank chart in between, and on a busy two-core laptop a chart
that can be replaced again before it was ever drawn. This small `st.components.v2` component keeps one element per
key and hands each new figure to `Plotly.react`, which redraws in place (less work than a new plot, and no blank
frames).

Plotly.js is the official *cartesian* bundle of the same plotly.js version as the installed plotly package
(npm's plotly.js-cartesian-dist-min, MIT licence, in the app's `static/` folder, which Streamlit serves at
`app/static/`: `server.enableStaticServing` in .streamlit/config.toml); nothing is fetched from the network. It holds
every trace type bnviz's live charts use (scatter, bar, heatmap; tests/test_plot.py checks) and is a third of the
full bundle, so the browser evaluates it in about half the time (README's measured section has the numbers), time
a page would otherwise wait before its first chart. Every page starts loading it with its first element
(`preload`), so it is evaluated while the page is read, not after Start. If the bundle is missing or its version
differs from plotly's (an upgraded plotly), `draw` falls back to `st.plotly_chart`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import plotly.offline
import streamlit as st
from plotly.io.json import to_json_plotly

from .. import figures

APP_DIR = Path(__file__).resolve().parents[2]
BUNDLE = APP_DIR / "static" / "plotly-cartesian.min.js"
BUNDLE_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
                           "image", "pie", "scatter", "scatterternary", "violin"})  # what its README lists
SERVED_URL = "app/static/plotly-cartesian.min.js"  # relative to the page's base URL (works under baseUrlPath too)
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

# Loads plotly.js once per browser tab (a page switch does not reload the page): the preload script and the component
# share the promise on `window`.
LOADER_JS = """
function plotlyReady(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__bnvizPlotly) {
    window.__bnvizPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(src, document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { window.__bnvizPlotly = null; reject(new Error("plotly.js did not load")); };
      document.head.appendChild(script);
    });
  }
  return window.__bnvizPlotly;
}
"""

# Defines window.__bnvizRender, which draws a chart component (the preload script runs it: see JS and preload).
RENDER_JS = """
// A chart scrolled out of view keeps only its newest figure and draws it when it comes back into view: a live page
// refreshes every chart twice a second, and on a two-core laptop the browser's redraws take CPU from the training.
function watchVisibility(el, drawLatest) {
  if (el.__bnvizObserver || !window.IntersectionObserver) return;
  el.__bnvizVisible = true;
  el.__bnvizObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      el.__bnvizVisible = entry.isIntersecting;
      if (entry.isIntersecting && el.__bnvizPending) drawLatest();
    }
  }, {rootMargin: "100px"});
  el.__bnvizObserver.observe(el);
}

// Text wider than its chart (a half-width column, a phone) is wrapped at words where it is drawn: the title (the
// top margin, height and legend move down by the added lines, as bnviz.figures.fit_width does on the server for a
// planned width) and annotations (a note under the x axis gets the bottom margin its added lines need). How many
// characters fit is measured from the drawn text after a draw; when something did not fit, the chart is drawn once
// more with it wrapped, and the measure is kept per chart width for the next refreshes.
function wrapWords(text, chars) {
  const lines = [];
  let current = '';
  for (const word of text.replace(/<br>/g, ' ').split(' ')) {
    if (current && (current + ' ' + word).length > chars) { lines.push(current); current = word; }
    else current = current ? current + ' ' + word : word;
  }
  return lines.concat([current]);
}

// A subplot title's share of the plot's width (bnviz.figures.style.subplots names it), or null for other text.
function subplotShare(note) {
  const match = /^subplot title ([0-9.]+)$/.exec(note.name || '');
  return match ? Number(match[1]) : null;
}

function longestLine(text) { return Math.max(...text.split('<br>').map(line => line.length)); }

// Columns of subplots drawn `gap` (a share of the plot's width) further apart than the figure planned: on a narrow
// chart the planned gap can be narrower than a right-hand subplot's y-axis labels. Each column shrinks by the same
// share and moves right by `gap` per column to its left; a note centred over a column (its title) moves with it.
function widenGaps(out, gap) {
  if (!gap) return out;  // nearly always: only a narrow chart's measure sets it
  const keys = Object.keys(out).filter((k) => /^xaxis[0-9]*$/.test(k) && out[k] && out[k].domain);
  const starts = [...new Set(keys.map((k) => out[k].domain[0]))].sort((a, b) => a - b);
  if (starts.length < 2) return out;
  const scale = 1 - (starts.length - 1) * gap;
  const column = (x) => starts.filter((s) => s <= x + 1e-9).length - 1;
  const move = (x, k) => x * scale + k * gap;
  const centres = new Set(keys.map((k) => (out[k].domain[0] + out[k].domain[1]) / 2).map((x) => x.toFixed(6)));
  for (const key of keys) {
    const [a, b] = out[key].domain;
    out[key] = Object.assign({}, out[key], {domain: [move(a, column(a)), move(b, column(a))]});
  }
  out.annotations = (out.annotations || []).map((note) => {
    if (note.xref !== 'paper' || note.xanchor !== 'center' || !centres.has(Number(note.x).toFixed(6))) return note;
    const share = subplotShare(note);
    return Object.assign({}, note, {x: move(note.x, column(note.x))},
                         share === null ? {} : {name: `subplot title ${(share * scale).toFixed(4)}`});
  });
  return out;
}

// Step labels that did not fit (turned on their side, or into a neighbouring column's): every `thin`-th of each x
// axis's tickvals (bnviz.figures.raster.step_axis gives a grid column's), the first always kept; an x axis without
// tickvals whose labels were turned gets at most nticks[key] ticks.
function thinTicks(out, thin, nticks) {
  for (const key of Object.keys(out).filter((k) => /^xaxis[0-9]*$/.test(k))) {
    const ticks = out[key] && out[key].tickvals;
    if (thin > 1 && ticks && ticks.length > 2) {
      out[key] = Object.assign({}, out[key], {tickvals: ticks.filter((_, i) => i % thin === 0)});
    }
  }
  for (const [key, cap] of Object.entries(nticks || {})) {  // axes plotly ticks itself (measureFit): fewer ticks
    out[key] = Object.assign({}, out[key], {nticks: Math.min(cap, (out[key] && out[key].nticks) || cap)});
  }
  return out;
}

function fitLayout(layout, fit) {
  const out = thinTicks(Object.assign({}, layout), fit.thin, fit.nticks);
  const height0 = layout.height || 460;
  let top = 0, bottom = 0, subplotTop = 0;
  const title = layout.title || {};
  let titleLines = 1;
  if (fit.title && title.text && longestLine(title.text) > fit.title) {
    const lines = wrapWords(title.text, fit.title);
    titleLines = lines.length;
    top = (lines.length - title.text.split('<br>').length) * Math.round(((title.font && title.font.size) || 22) * 1.3);
    out.title = Object.assign({}, title, {text: lines.join('<br>')});
  }
  out.annotations = (layout.annotations || []).map((note, i) => {
    const drop = (fit.drops || {})[i];  // a note under the x axis that touched its labels (measureFit): lower
    if (drop) {
      note = Object.assign({}, note, {yshift: (note.yshift || 0) - drop});
      bottom += drop;
    }
    const chars = fit.notes[i];
    if (!chars || !note.text || longestLine(note.text) <= chars) return note;
    const lines = wrapWords(note.text, chars);
    const added = Math.max(0, lines.length - note.text.split('<br>').length);
    const linePx = Math.round(((note.font && note.font.size) || 16) * 1.35);
    if (note.yref === 'paper' && note.y < 0 && note.yanchor === 'top') bottom += added * linePx;
    if (subplotShare(note) !== null) subplotTop = Math.max(subplotTop, added * linePx);  // grows up: more margin
    return Object.assign({}, note, {text: lines.join('<br>')});
  });
  const titleTop = top;
  top += subplotTop + (fit.legend || 0);
  if (!top && !bottom) return widenGaps(out, fit.gap);
  const height = height0 + top + bottom;
  const margin = layout.margin || {};
  out.height = height;
  out.margin = Object.assign({}, margin, {t: (margin.t || 0) + top, b: (margin.b || 0) + bottom});
  if (out.title && out.title.y != null) {  // the title stays 14 px from the top, as bnviz.figures.finish sets it
    out.title = Object.assign({}, out.title, {y: 1 - 14 / height});
    if (titleTop) out.title.pad = {t: Math.round(((title.font && title.font.size) || 22) * 0.7) * (titleLines - 1)};
  }
  if (layout.legend && layout.legend.y != null && layout.legend.yref === 'container') {
    const fromTop = (1 - layout.legend.y) * height0 + titleTop;
    out.legend = Object.assign({}, layout.legend, {y: 1 - fromTop / height});
  }
  return widenGaps(out, fit.gap);
}

// How far (px) a y-axis label may reach into the plot area of the subplot to its left: that area's right end is
// its x axis's range padding, and a rotated axis title's box includes its line spacing. At 1280 px the loss and
// accuracy chart's right-hand y title reaches 9 px in, its glyphs about 4, over nothing drawn; on a phone its tick
// labels reached 13-22 px in, over the lines. tests/browser_support.py checks with the same tolerance.
const LABEL_REACH_PX = 10;

// After a draw: tighten `fit` wherever drawn text is wider than the chart; true if something changed.
function measureFit(el, layout, fit) {
  const svg = el.querySelector('.main-svg');
  if (!svg) return false;
  const room = svg.getBoundingClientRect();
  let changed = false;
  const tighten = (text, box, current, roomPx) => {
    if (!text || box.width <= roomPx) return current;
    const shown = current ? Math.min(current, longestLine(text)) : longestLine(text);
    changed = true;
    return Math.max(10, Math.floor(shown * roomPx / box.width) - 1);
  };
  const drawn = el.querySelector('text.gtitle');
  if (drawn && layout.title && layout.title.text) {
    fit.title = tighten(layout.title.text, drawn.getBoundingClientRect(), fit.title, room.width - 16);
  }
  for (const g of el.querySelectorAll('g.annotation[data-index]')) {
    const i = Number(g.getAttribute('data-index'));
    const note = (layout.annotations || [])[i];
    const text = g.querySelector('.annotation-text');
    if (!note || !text || note.xref !== 'paper') continue;
    const box = text.getBoundingClientRect();
    // room: from the text's left end to the chart's right edge (left-anchored), or twice the distance from its
    // centre to the nearer edge (centred)
    const centre = (box.left + box.right) / 2;
    let roomPx = note.xanchor === 'left' ? room.right - box.left - 8
                                         : 2 * Math.min(centre - room.left, room.right - centre) - 16;
    const share = subplotShare(((el.layout || layout).annotations || [])[i] || note);  // as drawn (widenGaps)
    const plotWidth = el._fullLayout && el._fullLayout._size ? el._fullLayout._size.w : room.width;
    if (share !== null) roomPx = Math.min(roomPx, share * plotWidth + 12);  // its column, and a little of the gap
    fit.notes[i] = tighten(note.text, box, fit.notes[i], roomPx);
  }
  // a note under the x axis (bnviz.figures.finish places it a little under the axis title, for the plot height it
  // plans) that comes within 4 px of an x axis's tick labels or title as drawn (larger text in presenter mode, a
  // shorter plot): lowered by that much, and the bottom margin grows with it
  const xLabels = Array.from(el.querySelectorAll('g.xtick text, g[class*="xtitle"] text'))
    .map((t) => t.getBoundingClientRect()).filter((r) => r.width > 0);
  for (const g of el.querySelectorAll('g.annotation[data-index]')) {
    const i = Number(g.getAttribute('data-index'));
    const note = (layout.annotations || [])[i];
    const text = g.querySelector('.annotation-text');
    if (!note || !text || note.yref !== 'paper' || !(note.y < 0) || note.yanchor !== 'top') continue;
    const box = text.getBoundingClientRect();
    const reach = Math.max(0, ...xLabels.filter((r) => r.right > box.left && r.left < box.right && r.top < box.top)
      .map((r) => r.bottom + 4 - box.top));
    if (reach > 0.5) {
      fit.drops = Object.assign({}, fit.drops, {[i]: ((fit.drops || {})[i] || 0) + Math.ceil(reach)});
      changed = true;
    }
  }
  // a legend that wraps into more rows than bnviz.figures.finish planned for (a narrow chart) pushes the plot down
  const legend = el.querySelector('g.legend');
  if (legend && layout.legend && layout.legend.yref === 'container' && el._fullLayout && el._fullLayout._size) {
    let limit = room.top + el._fullLayout._size.t;  // the plot area's top, or a subplot title's if higher
    for (const g of el.querySelectorAll('g.annotation[data-index]')) {
      const note = (layout.annotations || [])[Number(g.getAttribute('data-index'))];
      const text = g.querySelector('.annotation-text');
      if (note && text && subplotShare(note) !== null) limit = Math.min(limit, text.getBoundingClientRect().top);
    }
    const overlap = legend.getBoundingClientRect().bottom + 4 - limit;
    if (overlap > 1) {
      // plotly may already have pushed the plot below the top margin asked for (its own room for the legend, which
      // does not count the subplot titles): the margin grows from where the plot is drawn, or it would not move
      const asked = ((el.layout || {}).margin || {}).t;
      const pushed = asked == null ? 0 : Math.max(0, el._fullLayout._size.t - asked);
      fit.legend = (fit.legend || 0) + Math.ceil(overlap + pushed);
      changed = true;
    }
  }
  // a subplot's y-axis labels (tick labels, title) that reach into the plot area of a subplot to their left (a
  // narrow chart): the columns move apart by that much (widenGaps); labels that fit leave the layout as planned
  const full = el._fullLayout;
  if (full && full._size && full._subplots) {
    let reach = 0;
    for (const id of full._subplots.yaxis || []) {
      const ya = full[id.replace('y', 'yaxis')];
      const xa = ya && full[String(ya.anchor).replace('x', 'xaxis')];
      if (!xa || ya.overlaying) continue;
      const labels = Array.from(el.querySelectorAll(`g.${id}tick text, g.g-${id}title text`))
        .map((t) => t.getBoundingClientRect()).filter((r) => r.width > 0);
      if (!labels.length) continue;
      const left = Math.min(...labels.map((r) => r.left)) - room.left;
      for (const other of full._subplots.xaxis || []) {
        const xb = full[other.replace('x', 'xaxis')];
        const yb = xb && full[String(xb.anchor).replace('y', 'yaxis')];
        if (!yb || xb === xa || xb._offset + xb._length > xa._offset) continue;  // only a subplot to the left
        if (yb._offset >= ya._offset + ya._length || ya._offset >= yb._offset + yb._length) continue;  // other row
        const into = xb._offset + xb._length - left;
        if (into > LABEL_REACH_PX) reach = Math.max(reach, into + 6);  // and 6 px of gap: the labels clear it
      }
    }
    if (reach) { fit.gap = (fit.gap || 0) + reach / full._size.w; changed = true; }
  }
  // x tick labels set by the figure (tickvals) that plotly turned on their side, or that come within 4 px of another
  // x axis's (a grid's columns on a narrow chart): half as many (thinTicks), while more than one would be left
  if (full && full._subplots) {
    const boxes = [];
    let crowded = false, most = 0;
    for (const id of full._subplots.xaxis || []) {
      const planned = layout[id.replace('x', 'xaxis')];
      if (!planned || !planned.tickvals) continue;
      most = Math.max(most, planned.tickvals.length);
      for (const t of el.querySelectorAll(`g.${id}tick text`)) {
        const r = t.getBoundingClientRect();
        if (!r.width) continue;
        if (/rotate\\(/.test(t.getAttribute('transform') || '')) crowded = true;
        boxes.push({id, r});
      }
    }
    for (let i = 0; i < boxes.length && !crowded; i++) {
      for (let j = i + 1; j < boxes.length && !crowded; j++) {
        const a = boxes[i].r, b = boxes[j].r;
        crowded = boxes[i].id !== boxes[j].id && Math.min(a.right, b.right) - Math.max(a.left, b.left) > -4 &&
                  Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0;
      }
    }
    const thin = fit.thin || 1;
    if (crowded && Math.ceil(most / (2 * thin)) >= 2) { fit.thin = 2 * thin; changed = true; }
    // a linear x axis that plotly ticks by itself, whose labels it turned on their side (the loss chart's steps on a
    // phone): at most half as many ticks (fit.nticks, per axis), while two or more would be left
    for (const id of full._subplots.xaxis || []) {
      const key = id.replace('x', 'xaxis');
      if ((layout[key] || {}).tickvals || !full[key] || full[key].type !== 'linear') continue;
      const labels = Array.from(el.querySelectorAll(`g.${id}tick text`)).filter((t) => t.textContent);
      const cap = Math.floor(labels.length / 2);
      if (cap >= 2 && labels.some((t) => /rotate\\(/.test(t.getAttribute('transform') || ''))) {
        fit.nticks = Object.assign({}, fit.nticks, {[key]: cap});
        changed = true;
      }
    }
  }
  return changed;
}

// The chart in words (a figcaption, visually hidden: screen readers read it as the figure's name) and its numbers as
// tables under "Show data", built only while that is open. Both come from bnviz.figures.summary on the server.
function tableHtml(table, label) {
  const esc = (t) => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
  const head = table.columns.map((c) => `<th scope="col">${esc(c)}</th>`).join("");
  const cell = (c, i) => i ? `<td>${esc(c)}</td>` : `<th scope="row">${esc(c)}</th>`;
  const rows = table.rows.map((r) => "<tr>" + r.map(cell).join("") + "</tr>").join("");
  return `<div class="bnviz-table" tabindex="0" role="region" aria-label="${esc(label + ": " + table.caption)}">` +
         `<table><caption>${esc(table.caption)}</caption><thead><tr>${head}</tr></thead><tbody>${rows}</tbody>` +
         `</table></div>`;
}

// What `draw` sends, in bytes: the rest of the data as JSON, a newline, then the figure's JSON (bnviz.ui.plot.pack).
function unpack(data) {
  if (!ArrayBuffer.isView(data)) return data;
  const text = new TextDecoder().decode(data);
  const cut = text.indexOf("\\n");
  return Object.assign(JSON.parse(text.slice(0, cut)), {spec: text.slice(cut + 1)});
}

function showTexts(root, texts) {
  const chart = root.querySelector(".bnviz-chart");
  const caption = root.querySelector(".bnviz-summary");
  const details = root.querySelector(".bnviz-data");
  const box = root.querySelector(".bnviz-tables");
  if (!chart || !texts) return;
  root.__bnvizTexts = texts;
  if (caption.textContent !== texts.summary) caption.textContent = texts.summary;
  details.hidden = !texts.tables.length;
  const fill = () => {
    const latest = root.__bnvizTexts;
    if (!details.open || box.__bnvizShown === latest) return;
    box.__bnvizShown = latest;
    box.innerHTML = latest.tables.map((t) => tableHtml(t, latest.title)).join("");
  };
  if (!details.__bnvizWatched) { details.__bnvizWatched = true; details.addEventListener("toggle", fill); }
  fill();
}

// Plotly's first draw of a kind of figure runs much of plotly.js for the first time (the browser compiles it then):
// Home's grid drew in about three times the time of a second figure of its shape. So once per tab, when the browser
// is idle and no chart with data has been drawn yet (the page's own charts warm plotly up as well), a figure of that
// shape (bnviz.figures.distribution_grid_warm_up) is drawn where nothing shows it and removed: off screen, hidden,
// aria-hidden, fixed (it takes no space in the page), without the class that marks the page's charts. Within
// PRESS_MS of a click or key press, or while a script run is under way, it waits: a button pressed before plotly.js
// had loaded may bring a chart, which would then wait for the warm-up (measured: the first chart came later).
// window.__bnvizWarm: "pending", then "drawn" or "skipped" (a chart with data drew first).
const WARM_UP_WAITS = 50, PRESS_MS = 3000;  // at most 50 waits of 100 ms
function warmUp(src, figure, config) {
  if (window.__bnvizWarm) return;
  window.__bnvizWarm = "pending";
  let pressed = -Infinity;
  const press = () => { pressed = performance.now(); };
  document.addEventListener("pointerdown", press, true);
  document.addEventListener("keydown", press, true);
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 200));
  const busy = () => performance.now() - pressed < PRESS_MS ||
                     document.querySelector('[data-testid="stStatusWidget"]');
  const attempt = (Plotly, waits) => idle(() => {
    if (window.__bnvizWarm !== "pending") return;
    if (busy() && waits < WARM_UP_WAITS) { setTimeout(() => attempt(Plotly, waits + 1), 100); return; }
    document.removeEventListener("pointerdown", press, true);
    document.removeEventListener("keydown", press, true);
    window.__bnvizWarm = "drawn";
    if (figure.layout.template === TEMPLATE_REF) figure.layout.template = window.__bnvizTemplate;
    const box = document.createElement("div");
    box.setAttribute("aria-hidden", "true");
    box.style.cssText = "position: fixed; left: -10000px; top: 0; width: 700px; visibility: hidden; " +
                        "pointer-events: none;";
    document.body.appendChild(box);
    const gone = () => { Plotly.purge(box); box.remove(); };
    try {
      const drawn = Plotly.newPlot(box, figure.data, figure.layout, config);
      box.classList.remove("js-plotly-plot");
      Promise.resolve(drawn).then(gone, gone);
    } catch (err) { gone(); }
  }, {timeout: 3000});
  plotlyReady(src).then((Plotly) => attempt(Plotly, 0)).catch(() => {});
}

window.__bnvizRender = function ({ parentElement, data }) {
  data = unpack(data);
  showTexts(parentElement, data.texts);
  const el = parentElement.querySelector(".bnviz-plot");
  // the same figure again (a paused run, a rerun of the page): it is drawn, or will be, already
  if (el.__bnvizSpec === data.spec) return;
  el.__bnvizSpec = data.spec;
  const figure = JSON.parse(data.spec);
  // the shared template is sent once per page (preload), not with every figure twice a second
  if (figure.layout && figure.layout.template === TEMPLATE_REF) figure.layout.template = window.__bnvizTemplate;
  // newest figure wins: a slow draw must not overwrite a newer one that arrived meanwhile
  el.__bnvizLatest = {figure: figure, config: data.config};
  const drawLatest = () => {
    const latest = el.__bnvizLatest;
    el.__bnvizPending = false;
    return plotlyReady(data.src).then((Plotly) => {
      if (el.__bnvizLatest !== latest) return;
      const layout = latest.figure.layout;
      el.__bnvizFits = el.__bnvizFits || {};
      const width = el.clientWidth;
      const fit = el.__bnvizFits[width] = el.__bnvizFits[width] || {title: 0, notes: {}};
      // measured after each draw: wrapping one text can make another collide (a taller subplot title, the legend)
      // Measuring forces the browser to lay the page out again, twice a second per live chart: skipped when the
      // texts and the plot's width are those measured last time at this width and nothing had to move then.
      if (latest.figure.data && latest.figure.data.length && window.__bnvizWarm === "pending") {
        window.__bnvizWarm = "skipped";  // plotly warms up on this chart
      }
      const drawFitted = (round) => Plotly.react(el, latest.figure.data, fitLayout(layout, fit), latest.config)
        .then(() => {
          if (el.__bnvizLatest !== latest) return;
          const size = el._fullLayout && el._fullLayout._size;
          const ticks = Object.keys(layout).filter((k) => /^xaxis[0-9]*$/.test(k)).map((k) => layout[k].tickvals);
          const texts = JSON.stringify([(layout.title || {}).text, (layout.annotations || []).map((a) => a.text),
            latest.figure.data.map((t) => t.name), size ? Math.round(size.w) : 0, ticks]);
          if (round === 0 && fit.settled === texts) return;
          if (round < 3 && measureFit(el, layout, fit)) return drawFitted(round + 1);
          fit.settled = round < 3 ? texts : null;
        });
      return drawFitted(0);
    }).catch((err) => { el.textContent = "This chart could not be drawn: " + err.message; });
  };
  watchVisibility(el, drawLatest);
  if (el.__bnvizDrawn && el.__bnvizVisible === false) {  // drawn once (so it has its height), now out of view
    el.__bnvizPending = true;
    return;
  }
  el.__bnvizDrawn = true;
  drawLatest();
};
""".replace("TEMPLATE_REF", '"bnviz"')


TEMPLATE_REF = "bnviz"  # a figure's layout.template when it is bnviz's template, which the page holds (preload)
# The component's own code: it hands each figure to the page-wide window.__bnvizRender (RENDER_JS, defined by
# `preload`, the first element of every page). Streamlit sends a component's code and HTML with every update of it
# (twice a second per live chart), so they stay a few hundred bytes; the preload script is sent once per page.
JS = """
export default function (component) {
  if (window.__bnvizRender) return window.__bnvizRender(component);
  let tries = 0;  // the page's preload script has not run yet: wait for it (a few frames at most)
  const wait = setInterval(() => {
    if (window.__bnvizRender) { clearInterval(wait); window.__bnvizRender(component); }
    else if (++tries > 1500) {
      clearInterval(wait);
      component.parentElement.textContent = "This chart could not be drawn: the page's chart code did not load.";
    }
  }, 20);
}
"""

# A chart is a <figure>: the plot, its summary in words as the figcaption (visually hidden, read by screen readers as
# the figure's name), and "Show data" (its numbers as tables; hidden while the chart has no data).
SR_ONLY_CSS = ("position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; "
               "clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; border: 0;")
TEXT_CSS = f"""
.bnviz-sr {{ {SR_ONLY_CSS} }}
.bnviz-chart {{ margin: 0; }}
.bnviz-data > summary {{ cursor: pointer; font-size: 0.95rem; color: #31333F; padding: 2px 0; width: fit-content; }}
.bnviz-data > summary:focus-visible {{ outline: 2px solid #0072B2; outline-offset: 2px; }}
.bnviz-tables {{ display: flex; flex-wrap: wrap; gap: 4px 24px; align-items: flex-start; }}
.bnviz-table {{ max-height: 340px; overflow: auto; margin: 4px 0 8px; }}
.bnviz-table:focus-visible {{ outline: 2px solid #0072B2; }}
.bnviz-table table {{ border-collapse: collapse; font-size: 0.9rem; min-width: 20em; }}
.bnviz-table caption {{ text-align: left; font-weight: 600; padding: 2px 0; color: #31333F; }}
.bnviz-table th, .bnviz-table td {{ border: 1px solid #d0d0d0; padding: 2px 8px; text-align: right;
  color: #222; }}
.bnviz-table thead th {{ background: #f0f2f6; position: sticky; top: 0; }}
"""
HTML = ("<figure class='bnviz-chart'><div class='bnviz-plot'></div>"
        "<figcaption class='bnviz-summary bnviz-sr'></figcaption>"
        "<details class='bnviz-data' hidden><summary>Show data</summary><div class='bnviz-tables'></div></details>"
        "</figure>")
TEXT_SECONDS = 3.0  # while a run trains, a chart's summary and tables are recomputed at most this often
_TEXTS_KEY = "bnviz_chart_texts"  # session state: per chart key, (time, texts) of its last summary
_LIVE = threading.local()


@contextlib.contextmanager
def live_texts(on: bool = True):
    """Inside this block (a live page's refresh while a run trains), a chart's summary and data tables are reused
    for TEXT_SECONDS before they are computed again: screen readers are not flooded twice a second, and the process
    that trains does not rebuild them on every refresh."""
    before = getattr(_LIVE, "on", False)
    _LIVE.on = on
    try:
        yield
    finally:
        _LIVE.on = before


def chart_texts(fig, key: str | None = None, now: float | None = None) -> dict:
    """The figure's summary and data tables (bnviz.figures.summary), as sent to the browser: {"title", "summary",
    "tables": [{"caption", "columns", "rows"}]}. Within `live_texts()` those of `key` are reused for TEXT_SECONDS."""
    now = time.monotonic() if now is None else now
    cache = st.session_state.setdefault(_TEXTS_KEY, {}) if key is not None else {}
    if key is not None and getattr(_LIVE, "on", False) and key in cache and now - cache[key][0] < TEXT_SECONDS:
        return cache[key][1]
    try:
        summary = figures.describe(fig)
        tables = [{"caption": t.caption, "columns": t.columns, "rows": t.as_text_rows()}
                  for t in figures.data_tables(fig)]
    except Exception:  # noqa: BLE001 - words about a chart must never cost the chart itself
        summary, tables = f"{figures.chart_title(fig)}. (No summary in words for this chart.)", []
    texts = {"title": figures.chart_title(fig), "summary": summary, "tables": tables}
    if key is not None:
        cache[key] = (now, texts)
    return texts


def bundle_version(path: Path = BUNDLE) -> str | None:
    """The plotly.js version a bundle's header names ("4.1.1"), or None if it is missing or has no header."""
    try:
        with path.open("rb") as f:
            head = f.read(300).decode("ascii", "replace")
    except OSError:
        return None
    match = re.search(r"plotly\.js\b[^\n]*? v(\d+\.\d+\.\d+)", head)
    return match.group(1) if match else None


@st.cache_resource(show_spinner=False)
def _component():
    """The component, registered once per server, or None when the bundle does not match the installed plotly."""
    if bundle_version() != plotly.offline.get_plotlyjs_version():
        return None
    return st.components.v2.component("bnviz_plot", html=HTML, js=JS,
                                      isolate_styles=False)  # plotly.js styles live in the page's <head>


def _live_component():
    """The component when this server can serve the bundle (static serving on), else None: use st.plotly_chart."""
    return _component() if st.get_option("server.enableStaticServing") else None


def fits_titles() -> bool:
    """True when charts are drawn by the component, which wraps a title at the chart's drawn width (JS)."""
    return _live_component() is not None


PRELOAD_MARK = "bnviz-preload"
PRELOAD_CSS = f'[data-testid="stElementContainer"]:has(.{PRELOAD_MARK}) {{ display: none; }}'  # a script: no gap


def preload() -> None:
    """Start loading plotly.js with the page's first element, before any chart is drawn: evaluating the bundle
    holds the browser's main thread for a while, and done after the click on Start it delays both the click and the
    first chart (scripts/measure_live.py measures it). A component's own script would come too late (components load
    their code after mounting). The same script defines what every chart component draws with (RENDER_JS, the
    shared template, the charts' text styles), sent once per page instead of with every chart's every update."""
    if _live_component() is None:
        return
    st.html(_preload_html(), unsafe_allow_javascript=True)


@functools.cache
def _preload_html() -> str:
    template = _inline_safe(to_json_plotly(figures.style._template_dict()))  # a JS object literal
    return (f'<span class="{PRELOAD_MARK}"></span><style>{PRELOAD_CSS}{TEXT_CSS}</style>'
            f'<script>{LOADER_JS}plotlyReady({SERVED_URL!r});\n{_inline_safe(RENDER_JS)}\n'
            f'window.__bnvizTemplate = {template};\n'
            f'warmUp({SERVED_URL!r}, {_warm_up_json()}, {json.dumps(CONFIG)});</script>')


def _warm_up_json() -> str:
    """The figure RENDER_JS's warmUp draws unseen once per tab, as a JS object literal (its template named)."""
    with figures.plain_figures():
        fig = figures.distribution_grid_warm_up()
    return _inline_safe(pio.to_json(compact(fig), validate=False))


def _inline_safe(js: str) -> str:
    """`js` for a <script> in st.html: Streamlit's sanitizer (DOMPurify) drops a script whose text holds "<" before a
    letter or "/" (as in "<br>" or "</td>"), so each such "<" becomes "\\x3c", the same character in the string,
    template and regex literals where RENDER_JS has them (tests/test_plot.py checks there are no others)."""
    return re.sub(r"<(?=[/\w])", r"\\x3c", js)


def compact(fig: dict) -> dict:
    """What is sent of a plain figure: a shallow copy whose float64 typed arrays are float32 where that keeps
    every value (finite stays finite, non-zero stays non-zero: ~7 significant digits, far below what a chart or its
    hover text shows), and whose layout names bnviz's template instead of holding it (the page has it: `preload`).
    About half the bytes of a live chart's lines."""
    layout = fig.get("layout", {})
    if layout.get("template") is figures.style._template_dict():
        layout = {**layout, "template": TEMPLATE_REF}
    return {**fig, "data": [_compact_values(trace) for trace in fig.get("data", [])], "layout": layout}


def _compact_values(values: dict, depth: int = 0) -> dict:
    out = dict(values)
    for name, value in values.items():
        if isinstance(value, dict):
            if value.get("dtype") == "f8" and isinstance(value.get("bdata"), str):
                out[name] = _as_float32(value)
            elif depth < 2:
                out[name] = _compact_values(value, depth + 1)
    return out


def _as_float32(spec: dict) -> dict:
    wide = np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<f8")
    narrow = wide.astype("<f4")
    with np.errstate(invalid="ignore"):
        if not (np.array_equal(np.isfinite(wide), np.isfinite(narrow)) and np.array_equal(wide == 0, narrow == 0)):
            return spec  # beyond float32's range: sent as it is
    return {**spec, "dtype": "f4", "bdata": base64.b64encode(narrow.tobytes()).decode("ascii")}


def texts_below(texts: dict) -> None:
    """Under a chart drawn by st.plotly_chart: its summary for screen readers, and "Show data"."""
    st.html(f"<style>{TEXT_CSS}</style><p class='bnviz-sr bnviz-summary'>{html.escape(texts['summary'])}</p>")
    if texts["tables"]:
        with st.expander("Show data"):
            for table in texts["tables"]:
                st.markdown(f"**{table['caption']}**")
                columns = list(dict.fromkeys(table["columns"]))
                st.dataframe({c: [r[table["columns"].index(c)] for r in table["rows"]] for c in columns},
                             hide_index=True)


def draw(fig, key: str, container=None) -> None:
    """Draw `fig` under `key`, with its summary in words and its numbers ("Show data"); the same key next time
    updates this chart in place."""
    component = _live_component()
    texts = chart_texts(fig, key)
    if component is None:
        with container or st.container():
            st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})
            texts_below(texts)
        return
    sent = compact(fig) if isinstance(fig, dict) else fig
    rest = {"src": SERVED_URL, "config": CONFIG}
    if not _texts_were_sent(key, texts):
        rest["texts"] = texts  # else the chart keeps those it has (reused for TEXT_SECONDS: see chart_texts)
    data = pack(pio.to_json(sent, validate=False), rest)
    if container is None:
        component(data=data, key=key, width="stretch")
    else:
        with container:
            component(data=data, key=key, width="stretch")


def pack(spec: str, rest: dict) -> bytes:
    """A chart component's data as bytes: `rest` as JSON, a newline, the figure's JSON (`unpack` in RENDER_JS and
    `unpack` here read it). Why not a dict with the figure as a string in it: Streamlit encodes a dict as JSON twice
    (once with sorted keys, for the element's identity), each time escaping every quote of the figure's JSON, which
    took ~1 ms of the server per live grid refresh in the process that trains; bytes it sends as they are, and only
    hashes them. Neither JSON holds a raw newline (json escapes them in strings)."""
    return (json.dumps(rest) + "\n" + spec).encode("utf-8")


def unpack(data: bytes) -> dict:
    """`pack`'s dict back, the figure's JSON as "spec" (a string), as the browser reads it."""
    text = data.decode("utf-8")
    cut = text.index("\n")
    return {**json.loads(text[:cut]), "spec": text[cut + 1:]}


_SENT_KEY = "bnviz_chart_texts_sent"  # session state: per chart key, the texts last sent to it


def _texts_were_sent(key: str, texts: dict) -> bool:
    """True when a live fragment's refresh would send `key` the very texts it sent last time (reused by
    chart_texts): the mounted chart still shows them. A full script run always sends them (a new page, a remount)."""
    sent = st.session_state.setdefault(_SENT_KEY, {})
    again = sent.get(key) is texts and _fragment_rerun()
    sent[key] = texts
    return again


def _fragment_rerun() -> bool:
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return bool(ctx is not None and ctx.fragment_ids_this_run)
    except Exception:  # noqa: BLE001 - a Streamlit without it: send everything
        return False
