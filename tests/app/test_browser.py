"""MEMO Studio in a real browser: Debian's chromium driven by playwright, against the launched app.

Upload a portrait and speech, analyze, change a segment's emotion, preview, and find a playable video element. The
screenshot is kept as a test artifact (``$MEMO_TEST_ARTIFACTS`` or pytest's temporary folder).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


def test_upload_analyze_override_preview_in_a_browser(app, media, page, tmp_path):
    url, _ = app
    page.goto(url)
    page.locator("#portrait input[type=file]").set_input_files(str(media["portrait"]))
    page.locator("#speech input[type=file]").set_input_files(str(media["short_speech"]))
    page.locator("#portrait-notes", has_text="One face found").wait_for()
    page.locator("#audio-info", has_text="Duration").wait_for()

    page.locator("#analyze").click()
    page.locator("#emotion-summary", has_text="segment").wait_for()
    page.locator("#timeline img").wait_for()

    page.locator("#set-segment").click()  # segment 1 -> "happy", the editor's default
    page.locator("#emotion-summary", has_text="Clips will use: happy").wait_for()
    assert page.locator("#segments").get_by_text("happy").count() >= 1

    page.locator("#preview").click()
    page.locator("#run-status", has_text="finished").wait_for()
    video = page.locator("#result video")
    video.wait_for()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result video');"
        " return v && v.readyState >= 1 && v.duration > 0; }",
        timeout=TIMEOUT_MS,
    )
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(1.0, abs=0.1)
    assert page.locator("#clips img").count() >= 1

    artifacts = Path(os.environ.get("MEMO_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "app_after_preview.png"), full_page=True)
