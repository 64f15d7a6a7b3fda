"""MEMO Studio in a real browser: Debian's chromium driven by playwright, against the launched app.

Upload a portrait and speech, analyze, choose a segment's emotion from the list, read the precedence, run the A/B
preview, clear the overrides, preview, and find playable video elements. The screenshots (the page after the
preview, the Emotions panel at desktop width and at 420 px) are kept as test artifacts (``$MEMO_TEST_ARTIFACTS`` or
pytest's temporary folder).
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


SEGMENT_CELLS = "#segments [role=gridcell]"  # the table's cells, row after row


def first_row(page) -> list[str]:
    return [text.strip() for text in page.locator(SEGMENT_CELLS).all_inner_texts()[:5]]


def choose(page, dropdown: str, option: str) -> None:
    """Pick ``option`` from a Gradio dropdown's list (they cannot be typed into)."""
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def playable_seconds(page, component: str) -> float:
    """The duration of the video shown in ``component``, once the browser has loaded it."""
    page.locator(f"{component} video").wait_for()
    page.wait_for_function(
        "(id) => { const v = document.querySelector(id + ' video');"
        " return v && v.readyState >= 1 && v.duration > 0; }",
        arg=component,
        timeout=TIMEOUT_MS,
    )
    return page.locator(f"{component} video").evaluate("v => v.duration")


PAGE_BOX = "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"


def screenshot_emotion_panel(page, path: Path) -> None:
    """The Emotions panel, from its heading to the A/B videos, at the page's current width."""
    scroll = page.evaluate("() => window.scrollY")
    left, top, _, _ = page.get_by_text("3 · Emotion timeline").evaluate(PAGE_BOX)
    _, _, right, _ = page.locator("#timeline").evaluate(PAGE_BOX)
    _, _, _, bottom = page.locator("#ab-yours").evaluate(PAGE_BOX)
    margin = 12
    x, y = max(left - margin, 0), top + scroll - margin
    clip = {"x": x, "y": y, "width": right + margin - x, "height": bottom - top + 2 * margin}
    page.screenshot(path=str(path), full_page=True, clip=clip)


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

    artifacts = Path(os.environ.get("MEMO_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("() => document.querySelector('#segment-picker input').value.startsWith('1 ·')")
    detected = first_row(page)[2]
    assert page.locator("#ab-preview").is_disabled()  # nothing to compare yet
    page.locator("#ab-status", has_text="choose an emotion first").wait_for()

    choose(page, "#segment-emotion", "sad")  # segment 1, picked after the analysis, from the emotion list
    page.locator("#emotion-summary", has_text="Clips will use: sad").wait_for()
    page.locator("#emotion-precedence", has_text="Your segments (sad").wait_for()
    assert first_row(page)[4] == "sad"
    page.wait_for_function("() => document.querySelector('#segment-picker input').value.endsWith('→ sad')")

    page.locator("#ab-preview").click()  # the same first seconds: detected emotions and yours, side by side
    page.locator("#ab-status", has_text="B · your emotions: Preview").wait_for()
    page.locator("#ab-status", has_text="finished").wait_for()
    for side in ("#ab-detected", "#ab-yours"):
        assert playable_seconds(page, side) == pytest.approx(1.0, abs=0.1)
    screenshot_emotion_panel(page, artifacts / "emotion_panel_desktop.png")
    page.set_viewport_size({"width": 420, "height": 1000})
    screenshot_emotion_panel(page, artifacts / "emotion_panel_420.png")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.locator("#clear-overrides").click()
    page.locator("#emotion-summary", has_text=f"Clips will use: {detected}").wait_for()
    page.locator("#emotion-precedence", has_text="No overrides").wait_for()
    page.wait_for_function("() => document.querySelector('#ab-preview').disabled")

    page.locator(SEGMENT_CELLS).nth(3).click()  # a click on a row picks its segment
    page.wait_for_function("() => document.querySelector('#segment-emotion input').value === 'use detected'")
    choose(page, "#segment-emotion", "happy")
    page.locator("#emotion-summary", has_text="Clips will use: happy").wait_for()

    page.locator("#preview").click()
    page.locator("#run-status", has_text="finished").wait_for()
    assert playable_seconds(page, "#result") == pytest.approx(1.0, abs=0.1)
    assert page.locator("#clips img").count() >= 1

    page.screenshot(path=str(artifacts / "app_after_preview.png"), full_page=True)
