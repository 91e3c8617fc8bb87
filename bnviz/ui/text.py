"""User-provided text (file names, class names, zip member names) shown as itself, never as Markdown or HTML."""

from __future__ import annotations

import html
import re

# the characters Markdown, Streamlit's extensions (":emoji:", ":red[...]", "$math$") or HTML read as markup within
# one line: emphasis, code, links and images (they need "["), HTML tags, tables, strikethrough, maths, headings, and a
# colon followed by a non-space (":name:" shortcodes, "http://" autolinks). Ordinary punctuation stays readable.
MARKUP = re.compile(r"([\\`*_\[\]<>|~$#]|:(?=\S))")


def plain(text: object) -> str:
    """`text` for st.markdown/st.success/st.error: each markup character backslash-escaped, line breaks as spaces."""
    return MARKUP.sub(r"\\\1", " ".join(str(text).split("\n")))


def plotly_text(text: object) -> str:
    """`text` for Plotly labels, titles and tick labels, which read a few HTML tags: '<', '>' and '&' as entities."""
    return html.escape(str(text), quote=False)
