"""A server shutdown stops every run: `streamlit run app.py` with a run training, then SIGTERM to the server.

The server must exit by itself within a few seconds, and its log must say that the run ended as "stopped": a daemon
thread killed mid-step would log nothing. (On SIGTERM Streamlit closes every session, so the session's on_release
stops the run; the atexit hook `bnviz.engine.trainer.stop_all` is the backstop, tested in tests/test_lab.py.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import browser_support as bs
import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not bs.chromium_available(),
                       reason=f"{bs.CHROMIUM} is not installed (apt-get install chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

EXIT_S = 15  # "a few seconds"; generous for a loaded 2-core machine (measured about 4 s)


def start_long_run(page, url: str) -> None:
    page.goto(f"{url}/train")
    bs.wait_for_title(page, "Train & watch", 90)
    steps = page.locator('[data-testid="stSidebar"] input[aria-label="Steps"]')
    steps.fill("20000")
    steps.press("Enter")
    bs.poll(lambda: steps.input_value() == "20000", 30, what="Steps set")
    bs.wait_until_idle(page, 30)
    page.get_by_role("button", name="▶ Start").click()


def test_sigterm_stops_the_runs_and_the_server_exits():
    server = bs.StreamlitServer().start(timeout=90)
    try:
        with sync_api.sync_playwright() as p:
            browser = bs.launch_chromium(p)
            try:
                start_long_run(bs.new_page(browser), server.url)
                started = bs.poll(lambda: re.search(r"(job-\d+) started", server.log_tail(20_000)), 60,
                                  what="a job started")
                name = started.group(1)
                bs.poll(lambda: "running" in (bs.status_text(browser.contexts[0].pages[0]) or ""), 60,
                        what="the run is training")
                os.kill(server.proc.pid, signal.SIGTERM)  # the server only, as a service manager would
                try:
                    code = server.proc.wait(EXIT_S)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"the server did not exit within {EXIT_S} s of SIGTERM:\n{server.log_tail()}")
            finally:
                browser.close()
        log = server.log_tail(20_000)
        assert code == 0, log
        assert f"{name} ended: stopped" in log, log
    finally:
        server.stop()
