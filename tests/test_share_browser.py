"""End to end: a shared link opened in a new browser session shows its settings and trains with them.

Uses the fixtures and helpers of tests/test_browser.py (its own server for this module). Run:
python -m pytest tests/test_share_browser.py -q
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import browser_support as bs
import pytest
from test_browser import (  # noqa: F401 - fixtures
    assert_no_errors,
    context,
    open_page,
    press_stop_and_check,
    primed,
    server,
    wait_for_first_data,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not bs.chromium_available(),
                       reason=f"{bs.CHROMIUM} is not installed (apt-get install chromium)"),
]

LINK = {"act": "tanh", "bs": "32", "lr": "0.2", "steps": "200", "seed": "7", "twin": "off", "stage": "norm",
        "detail": "drift"}


def test_links_opened_at_once_on_a_fresh_server_each_show_their_settings(browser, server):  # noqa: F811
    """A class opens the teacher's links at the same moment on a server that just started: every session must
    come up with its own link's settings (the first visits all start in Streamlit's legacy pages/ mode).

    Must be the first visit to the module's server (it is the first test of this file)."""
    if server.visits:
        pytest.skip("needs a server that no session has visited yet")
    seeds = ["11", "12", "13"]
    contexts = [browser.new_context(viewport=bs.VIEWPORT) for _ in seeds]
    try:
        pages = [ctx.new_page() for ctx in contexts]
        server.visits += len(pages)
        for page, seed in zip(pages, seeds, strict=True):  # no waiting in between: the requests overlap
            page.goto(f"{server.url}/train?seed={seed}&steps=300", wait_until="commit", timeout=120_000)
        for page, seed in zip(pages, seeds, strict=True):
            bs.wait_for_title(page, "Train & watch", 120)
            seed_box = page.locator('[data-testid="stSidebar"]').get_by_label("Seed", exact=True)
            bs.poll(lambda box=seed_box, want=seed: box.count() and box.input_value() == want, 60,
                    what=f"the Seed box of the session opened with seed={seed}")
            assert page.locator('[data-testid="stSidebarNav"]').get_by_text("Compare two runs").count()
    finally:
        for ctx in contexts:
            ctx.close()


def test_a_shared_link_opens_its_settings_and_trains_them(context, primed):  # noqa: F811 - fixtures
    tampered = {**LINK, "norm": "<b>x</b>", "foo": "1"}
    page = open_page(context, primed, "train?" + urlencode(tampered), "Train & watch")
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_label("Seed", exact=True).input_value() == "7"
    assert sidebar.get_by_label("Steps", exact=True).input_value().replace(",", "") == "200"
    thumbs = sidebar.locator('[data-testid="stSliderThumbValue"]').all_inner_texts()
    assert "0.2" in thumbs and "32" in thumbs, thumbs
    assert sidebar.get_by_role("radio", name="tanh").is_checked()
    main = bs.main_area(page)  # the view choices of the link
    assert main.get_by_role("radio", name="norm: normalized").is_checked()
    assert main.get_by_role("radio", name="drift of every block").is_checked()
    [note] = bs.warning_texts(page)
    assert "norm=<b>x</b>" in note and "foo" in note  # shown as text, never as HTML
    bs.poll(lambda: parse_qs(urlparse(page.url).query) == parse_qs(urlencode(LINK)), 15,
            what="the address bar to hold the link without the values it could not use")
    link = sidebar.locator('[data-testid="stCode"]').first.inner_text()
    assert parse_qs(urlparse(link.strip()).query) == parse_qs(urlencode(LINK)), link

    bs.main_area(page).get_by_role("button", name="▶ Start").click()
    wait_for_first_data(page)
    status = bs.parse_status(bs.status_text(page))
    assert status and status["steps"] == 200, bs.status_text(page)
    assert_no_errors(page, "/train opened from a link")
    bs.screenshot(page, "train-from-a-link")
    press_stop_and_check(page)
