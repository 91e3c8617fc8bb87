"""The package's layers, checked from the code: imports point down only (DESIGN.md, README's Layout).

    errors  <  engine  <  science  <  figures  <  ui          (a layer imports only from layers to its left)
    entry points (bnviz/watching.py, cli.py, bench.py, bench_peers.py, __main__.py, __init__.py) may import any
    layer but ui

Only bnviz/ui/, pages/ and app.py import streamlit; nothing below figures imports plotly. Imports inside functions
count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("errors", "engine", "science", "figures", "ui")  # bottom to top
ENTRY_POINTS = ("__init__", "__main__", "watching", "cli", "bench", "bench_peers")  # bnviz/<name>.py
APP_FILES = ("bnviz/ui", "pages", "app.py")  # may import streamlit


def layer_of(module: str) -> str | None:
    """'bnviz.engine.trainer' -> 'engine'; 'bnviz.errors' -> 'errors'; an entry point -> 'entry'; else None."""
    parts = module.split(".")
    if parts[0] != "bnviz":
        return None
    if len(parts) == 1 or parts[1] in ENTRY_POINTS:
        return "entry"
    return parts[1] if parts[1] in LAYERS else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module `source` imports (relative imports resolved against `module`), inside functions too.
    `from pkg import name` counts as importing `pkg.name` (it may be a module) and `pkg`."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def violations(path_name: str, source: str, module: str, is_package: bool = False) -> list[str]:
    """What breaks the layering in one file (`path_name` relative to the repo root)."""
    problems = []
    imports = imported_modules(source, module, is_package)
    may_use_streamlit = any(path_name == p or path_name.startswith(p + "/") for p in APP_FILES)
    for name in sorted(imports):
        top = name.split(".")[0]
        if top == "streamlit" and not may_use_streamlit:
            problems.append(f"{path_name} imports streamlit (only bnviz/ui/, pages/ and app.py may)")
    own = layer_of(module)
    if own in ("errors", "engine", "science") and any(n.split(".")[0] == "plotly" for n in imports):
        problems.append(f"{path_name} imports plotly (nothing below bnviz/figures may)")
    if own is None:
        return problems
    allowed = set(LAYERS[: LAYERS.index(own)]) if own in LAYERS else set(LAYERS) - {"ui"}
    allowed.add(own)
    for name in sorted(imports):
        target = layer_of(name)
        if target is None or target in allowed or name == "bnviz":
            continue
        problems.append(f"{path_name} ({own}) imports {name} ({target})")
    return problems


def python_files() -> list[Path]:
    files = sorted((ROOT / "bnviz").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    return [f for f in files if "__pycache__" not in f.parts]


def test_every_import_points_down():
    problems = []
    for path in python_files():
        problems += violations(str(path.relative_to(ROOT)), path.read_text(), module_name(path),
                               path.name == "__init__.py")
    assert not problems, "\n".join(problems)


def test_every_module_is_in_a_layer():
    """A new file in bnviz/ goes into a layer's folder or is one of the named entry points."""
    stray = [str(p.relative_to(ROOT)) for p in (ROOT / "bnviz").rglob("*.py")
             if "__pycache__" not in p.parts and layer_of(module_name(p)) is None]
    assert not stray


@pytest.mark.parametrize(("path_name", "source", "module"), [
    ("bnviz/engine/trainer.py", "from ..figures import style\n", "bnviz.engine.trainer"),
    ("bnviz/engine/trainer.py", "def f():\n    from bnviz.science import presets\n", "bnviz.engine.trainer"),
    ("bnviz/science/presets.py", "from .. import figures\n", "bnviz.science.presets"),
    ("bnviz/figures/style.py", "from ..ui import page\n", "bnviz.figures.style"),
    ("bnviz/errors.py", "from .engine import config\n", "bnviz.errors"),
    ("bnviz/cli.py", "from .ui import controls\n", "bnviz.cli"),
    ("bnviz/figures/style.py", "import streamlit as st\n", "bnviz.figures.style"),
    ("bnviz/engine/stats.py", "import plotly.graph_objects as go\n", "bnviz.engine.stats"),
    ("bnviz/science/findings.py", "from plotly import io\n", "bnviz.science.findings"),
])
def test_an_upward_import_is_caught(path_name, source, module):
    assert violations(path_name, source, module)


@pytest.mark.parametrize(("path_name", "source", "module"), [
    ("bnviz/figures/style.py", "from ..engine.history import History\nfrom ..science import presets\n",
     "bnviz.figures.style"),
    ("bnviz/ui/live.py", "import streamlit as st\nfrom ..figures import style\n", "bnviz.ui.live"),
    ("bnviz/cli.py", "from .figures import report\nfrom .errors import BnvizError\n", "bnviz.cli"),
    ("pages/train.py", "import streamlit as st\nfrom bnviz.ui import live\n", "pages.train"),
])
def test_a_downward_import_is_allowed(path_name, source, module):
    assert violations(path_name, source, module) == []


def test_every_page_file_is_named_like_its_url_path():
    """A fresh server asked first for /bn-steps looks the page up by file name before app.py has run; a file named
    otherwise gives "Page not found" (seen in Chromium with pages/bn_steps.py)."""
    tree = ast.parse((ROOT / "app.py").read_text())
    pages = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page"]
    assert len(pages) >= 13
    for call in pages:
        stem = Path(call.args[0].value).stem
        url = next((k.value.value for k in call.keywords if k.arg == "url_path"), None)
        default = any(k.arg == "default" for k in call.keywords)
        assert url == stem or (default and url is None), (stem, url)
