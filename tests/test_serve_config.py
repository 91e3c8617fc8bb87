"""The settings a class server relies on: .streamlit/config.toml and scripts/serve_class.sh."""

from __future__ import annotations

import tomllib
from pathlib import Path

from streamlit import config as streamlit_config

from bnviz.engine.runfile import MAX_ZIP_BYTES

ROOT = Path(__file__).resolve().parents[1]


def config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_safe_defaults():
    cfg = config()
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["fileWatcherType"] == "none" and cfg["server"]["runOnSave"] is False
    assert cfg["server"]["enableXsrfProtection"] is True and cfg["server"]["enableCORS"] is True
    assert cfg["server"]["enableAgentApi"] is False
    # static serving is on for ./static, which holds nothing but the plotly.js bundle of bnviz/ui/plot.py
    assert cfg["server"]["enableStaticServing"] is True
    assert {p.name for p in (ROOT / "static").iterdir()} == {"plotly-cartesian.min.js", "plotly-LICENSE.txt"}
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["server"]["disconnectedSessionTTL"] <= 30  # a closed tab stops its run within seconds
    assert cfg["server"]["maxUploadSize"] * 1024 * 1024 == MAX_ZIP_BYTES  # the app's cap and bnviz's agree


def test_every_option_is_one_streamlit_knows():
    """A misspelt option is silently ignored by Streamlit: check each against its option table (what
    `streamlit config show` prints; a private name, so this test is the place that notices if it moves)."""
    known = set(streamlit_config._config_options_template)
    for section, options in config().items():
        for name in options:
            assert f"{section}.{name}" in known, f"{section}.{name} is not a Streamlit option"


def test_the_class_script_binds_every_address_and_keeps_the_config():
    script = (ROOT / "scripts" / "serve_class.sh").read_text()
    assert "--server.address" in script and "0.0.0.0" in script and "app.py" in script
    assert "enableXsrfProtection" not in script and "enableCORS" not in script  # protections left on


def test_no_forced_garbage_collection_after_every_script_run():
    """Streamlit's default runs gc.collect(2) after every script run, a live chart's refresh included: with torch
    loaded that is ~0.2 s holding the GIL twice a second, and the training thread in the same process starved
    (scripts/measure_live.py: 7.5 watched steps/s against 53 headless with it, 39 against 55 without)."""
    assert config()["runner"]["postScriptGC"] is False
