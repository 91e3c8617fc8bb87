"""A small class against a real `streamlit run app.py`, without a browser: sessions of scripts/protocol_sessions.py
(the client `scripts/load_test.py --class --protocol` uses) open one shared link and a link with another seed, press
Start and follow the live refreshes. Checks what a class relies on, through Streamlit's own websocket protocol: the
identical sessions get their charts from one training run, the other seed gets its own, and each sees its run's
Steps. It also keeps the load test's client working when Streamlit changes its protocol."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import browser_support as bs  # noqa: E402
from protocol_sessions import ProtocolClass, ProtocolSession  # noqa: E402

STEPS = 400


@pytest.fixture(scope="module")
def server():
    with bs.StreamlitServer() as running:
        yield running


def test_identical_sessions_share_one_run_and_another_seed_gets_its_own(server):
    sessions = [ProtocolSession("train", f"steps={STEPS}&seed={seed}", STEPS) for seed in (7, 7, 7, 8)]
    group = ProtocolClass(sessions, server.url)
    t0 = time.monotonic()
    group.start(t0)

    def log_lines(pattern: str) -> list[str]:
        return re.findall(pattern, Path(server.log.name).read_text(errors="replace"))

    sent_pattern = r"first chart sent [\d.]+ s after Start \(run (\w+)\)"
    try:
        bs.poll(lambda: all(s.first_chart == s.first_chart or s.problem for s in sessions), 120,
                what="every session's first chart")
        # the server logs a chart just after sending it: a session closed at once can end that script run first
        bs.poll(lambda: len(log_lines(sent_pattern)) >= len(sessions), 30, what="the server's first-chart lines")
    finally:
        group.stop()
    seen = [(s.query, s.clicked, s.first_chart, s.problem) for s in sessions]
    assert [s.problem for s in sessions] == [""] * 4, seen
    assert all(s.clicked < s.first_chart for s in sessions), seen
    log = Path(server.log.name).read_text(errors="replace")
    started = log_lines(r"shared run (\w+) started")
    sent = log_lines(sent_pattern)
    assert len(started) == 2 and len(set(started)) == 2, log[-3000:]  # seed 7 once, seed 8 once
    assert sorted(sent.count(key) for key in started) == [1, 3], log[-3000:]  # three watched the seed-7 run
