"""MEMO Studio in a real browser: Debian's chromium driven by playwright, against the launched app.

The test goes through every part of the page a person uses and asserts what the page shows: the run buttons off
until a portrait and speech are chosen; the one time line refreshed when a slider's number box is typed into; the
output size; analyze; a segment's emotion from the list; the A/B preview; clear; generate (the time left, then the
time taken; the result at its own aspect; a lone clip as a small tile); the settings file downloaded (file names
only); cancel; the history; and the same page at 420 px, where the emotion controls, the timeline and the result
stay on screen. Screenshots (desktop and 420 px) are kept as test artifacts (``$MEMO_TEST_ARTIFACTS`` or pytest's
temporary folder).

The same steps, with the bundled MEMO-Tiny, the real photo and real speech, take the screenshots of docs/APP.md:

    python tests/app/test_browser.py --docs docs/images
"""

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
DESKTOP, NARROW = 1280, 420  # page widths, px
DOC_IMAGE_BYTES = 300_000  # docs/images stay small
REAL_SPEECH = "media_assets/audio/cate_blanch.mp3"  # a real recording of speech, shipped with Gradio

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)


# --- driving the page ---------------------------------------------------------------------------------------------


def open_page(playwright, timeout_ms: int = TIMEOUT_MS):
    """(browser, page) at desktop width."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": DESKTOP, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(timeout_ms)
    return browser, page


def upload(page, portrait: Path, speech: Path) -> None:
    page.locator("#portrait input[type=file]").set_input_files(str(portrait))
    page.locator("#speech input[type=file]").set_input_files(str(speech))
    page.locator("#portrait-notes", has_text="the model sees").wait_for()
    page.locator("#audio-info", has_text="Duration").wait_for()


def choose(page, dropdown: str, option: str) -> None:
    """Pick ``option`` from a Gradio dropdown's list (they cannot be typed into)."""
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def type_number(page, slider: str, value: int) -> None:
    """Type ``value`` into a slider's number box, as a person does."""
    box = page.locator(f"{slider} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def text(page, markdown: str) -> str:
    """What a Markdown widget says (without Gradio's invisible "processing" tracker)."""
    return page.locator(f"{markdown} [data-testid=markdown]").inner_text()


def enabled(page, button: str) -> bool:
    return page.locator(button).is_enabled()


def wait_enabled(page, button: str, state: bool = True) -> None:
    page.wait_for_function(
        "([id, state]) => document.querySelector(id).disabled !== state", arg=[button, state], timeout=TIMEOUT_MS
    )


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


def shown_size(page, selector: str) -> dict:
    """The element's size on screen and, for a video, its own size: {width, height, natural: [w, h], right}."""
    return page.locator(selector).first.evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return {width: r.width, height: r.height, right: r.right,"
        " natural: e.videoWidth ? [e.videoWidth, e.videoHeight] : null}; }"
    )


def analyze_and_choose(page, emotion: str) -> str:
    """Analyze the speech and choose ``emotion`` for its first segment; returns the detected emotion."""
    page.locator("#analyze").click()
    page.locator("#timeline img").wait_for()
    page.wait_for_function("() => document.querySelector('#segment-picker input').value.startsWith('1 ·')")
    detected = page.locator("#segments [role=gridcell]").all_inner_texts()[2].strip()
    choose(page, "#segment-emotion", emotion)
    page.locator("#emotion-summary", has_text=f"Clips will use: {emotion}").wait_for()
    return detected


def generate(page, finished: str = "finished") -> None:
    page.locator("#generate").click()
    page.locator("#run-status", has_text=finished).wait_for()
    wait_enabled(page, "#generate")


PAGE_BOX = "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"


def screenshot_between(page, path: Path, top: str, bottom: str, whole_width: bool = True, margin: int = 12) -> Path:
    """The page from the top of ``top`` to the bottom of ``bottom`` (selectors): over the whole page width, or
    from the left of ``top`` (its column) to the right edge."""
    page.mouse.move(0, 0)  # no button drawn as hovered
    scroll = page.evaluate("() => window.scrollY")
    left, top_y = page.locator(top).first.evaluate(PAGE_BOX)[:2]
    bottom_y = page.locator(bottom).first.evaluate(PAGE_BOX)[3]
    x = 0 if whole_width else max(left - margin, 0)
    width = page.evaluate("() => document.documentElement.clientWidth") - x
    clip = {"x": x, "y": max(top_y + scroll - margin, 0), "width": width, "height": bottom_y - top_y + 2 * margin}
    page.screenshot(path=str(path), full_page=True, clip=clip)
    return path


def side_by_side(path: Path, parts: list[Path], gap: int = 16) -> Path:
    """One picture of ``parts`` next to each other, top-aligned, on white; the parts are removed."""
    from PIL import Image

    images = [Image.open(part).convert("RGB") for part in parts]
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    joined = Image.new("RGB", (width, max(image.height for image in images)), "white")
    x = 0
    for image, part in zip(images, parts, strict=True):
        joined.paste(image, (x, 0))
        x += image.width + gap
        part.unlink()
    joined.save(path)
    return path


def small_png(path: Path, limit: int = DOC_IMAGE_BYTES) -> Path:
    """Keep a screenshot under ``limit`` bytes: 256 colours, then halved until it fits."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    while True:
        image.quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size <= limit:
            return path
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)


# --- the test -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser, page = open_page(playwright)
        yield page
        browser.close()


def test_every_part_of_the_page_in_a_browser(app, media, page, tmp_path):
    url, service = app
    artifacts = Path(os.environ.get("MEMO_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.goto(url)
    page.get_by_text("Use via API").wait_for()  # the footer's API link is on the page
    assert not enabled(page, "#generate") and not enabled(page, "#preview") and not enabled(page, "#cancel")

    # 1. Inputs: the run buttons come on, the time and the output size are said before any run
    upload(page, media["real_photo"], media["short_speech"])
    wait_enabled(page, "#generate")
    assert enabled(page, "#preview") and not enabled(page, "#cancel")
    page.locator("#output-size", has_text="Output: 256×256 (whole portrait").wait_for()
    type_number(page, "#steps", 3)  # typed into the number box: the estimate follows
    page.locator("#run-time", has_text="× 3 steps").wait_for()
    type_number(page, "#steps", 1)
    page.locator("#run-time", has_text="× 1 step,").wait_for()
    assert len(re.findall(r"\d s\b", text(page, "#run-time"))) == 1  # one time on screen, not two

    # 2. Emotions: analyze, a segment's emotion from the list, the A/B preview, clear
    assert not enabled(page, "#ab-preview")
    detected = analyze_and_choose(page, "sad")
    page.locator("#emotion-precedence", has_text="Your segments (sad").wait_for()
    wait_enabled(page, "#ab-preview")
    page.locator("#ab-preview").click()
    page.locator("#ab-status", has_text="B · your emotions: Preview").wait_for()
    page.locator("#ab-status", has_text="finished").wait_for()
    for side in ("#ab-detected", "#ab-yours"):
        assert playable_seconds(page, side) == pytest.approx(1.0, abs=0.1)
    wait_enabled(page, "#ab-preview")
    page.locator("#clear-overrides").click()
    page.locator("#emotion-summary", has_text=f"Clips will use: {detected}").wait_for()
    page.locator("#emotion-precedence", has_text="No overrides").wait_for()
    wait_enabled(page, "#ab-preview", False)
    page.locator("#segments [role=gridcell]").nth(3).click()  # a click on a row picks its segment
    page.wait_for_function("() => document.querySelector('#segment-emotion input').value === 'use detected'")
    choose(page, "#segment-emotion", "happy")
    page.locator("#emotion-summary", has_text="Clips will use: happy").wait_for()

    # 3. Generate: the status and the time line under the buttons, the result at its own aspect, small clip tiles
    page.locator("#generate").click()
    page.locator("#run-time", has_text="left").or_(page.locator("#run-time", has_text="Took")).wait_for()
    page.locator("#run-status", has_text="finished").wait_for()
    page.locator("#run-time", has_text="Took").wait_for()
    assert "left" not in text(page, "#run-time")
    page.locator("#output-size", has_text="Output: 256×256 (whole portrait; the 16×16 crop").wait_for()
    assert playable_seconds(page, "#result") == pytest.approx(1.0, abs=0.1)
    video = shown_size(page, "#result video")
    assert video["natural"] == [256, 256] and video["width"] == pytest.approx(video["height"], abs=2)  # not stretched
    assert page.locator("#clips img").count() == 2  # 1 s at 30 fps: 2 clips
    assert shown_size(page, "#clips img")["width"] <= 160  # tiles, not one clip over the whole width
    page.wait_for_function("() => document.querySelector('#crop-video a')?.href.endsWith('_seed42-crop.mp4')")
    wait_enabled(page, "#generate")
    assert not enabled(page, "#cancel")
    page.screenshot(path=str(artifacts / "app_desktop.png"), full_page=True)

    # 4. The settings file, downloaded: file names only
    with page.expect_download() as download:
        page.locator("#run-settings a").first.click()
    saved = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == "astronaut_happy_seed42.json"
    assert str(service.settings.output_dir) not in saved and '"/' not in saved
    assert json.loads(saved)["request"]["image"] == "astronaut.jpg"

    # 5. Cancel: usable only while a run goes on; the finished clips stay a partial video
    type_number(page, "#steps", 100)
    page.locator("#run-time", has_text="× 100 steps").wait_for()
    page.locator("#generate").click()
    wait_enabled(page, "#cancel")
    assert not enabled(page, "#generate") and not enabled(page, "#preview")
    page.locator("#run-status", has_text="Generation: clip").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#clips img').length >= 1")  # one clip of two is kept
    page.locator("#cancel").click()
    page.locator("#run-status", has_text="Cancelled").wait_for()
    page.locator("#run-time", has_text="Stopped after").wait_for()
    wait_enabled(page, "#generate")
    assert not enabled(page, "#cancel")
    assert "0.0-0.0" not in text(page, "#run-status")

    # 6. History: every result of the tab, newest first; a click offers that run's files
    page.wait_for_function("() => document.querySelectorAll('#history img').length >= 2")
    page.locator("#history button").last.click()  # the oldest: the one generated in full
    page.locator("#history-details", has_text="seed 42 · 1 step").wait_for()
    names = page.locator("#history-files td.filename").evaluate_all("cells => cells.map(c => c.ariaLabel)")
    assert names == [f"astronaut_happy_seed42{end}" for end in (".mp4", "-crop.mp4", ".json")]

    # 7. A phone: the emotion controls, the timeline and the result stay on the screen and usable
    page.set_viewport_size({"width": NARROW, "height": 900})
    for part in ("#timeline img", "#segment-picker", "#segment-emotion", "#clear-overrides", "#result video",
                 "#generate", "#cancel", "#history"):  # fmt: skip
        page.locator(part).first.scroll_into_view_if_needed()
        size = shown_size(page, part)
        assert 0 < size["width"] and size["right"] <= NARROW, (part, size)
    choose(page, "#segment-emotion", "angry")  # still works at 420 px
    page.locator("#emotion-summary", has_text="Clips will use: angry").wait_for()
    page.screenshot(path=str(artifacts / "app_420.png"), full_page=True)


# --- the screenshots of docs/APP.md -------------------------------------------------------------------------------


def take_doc_screenshots(folder: Path) -> list[Path]:
    """The page as a person sees it, with the bundled MEMO-Tiny, a real photo and real speech: before a run and
    after one at desktop width, and the run's panel at 420 px; PNGs under ``DOC_IMAGE_BYTES`` each."""
    import gradio
    from playwright.sync_api import sync_playwright

    from memo_app import AppSettings, StudioService, build_demo, launch

    settings = AppSettings.from_env(output_dir=Path(tempfile.mkdtemp(prefix="memo-screenshots-")))
    service = StudioService(settings)
    demo = build_demo(service)
    _, url, _ = launch(demo, service, prevent_thread_lock=True, quiet=True)
    speech = Path(gradio.__file__).parent / REAL_SPEECH
    folder.mkdir(parents=True, exist_ok=True)
    shots = []
    try:
        with sync_playwright() as playwright:
            browser, page = open_page(playwright, timeout_ms=20 * 60 * 1000)
            page.goto(url)
            upload(page, ROOT / "assets" / "examples" / "astronaut.jpg", speech)
            page.locator("#run-time", has_text="about").wait_for()
            analyze_and_choose(page, "happy")
            page.locator("#run-time", has_text="about").wait_for()
            shots.append(screenshot_between(page, folder / "app_before.png", "h1", "#ab-status"))
            generate(page)
            page.wait_for_function("() => document.querySelectorAll('#history img').length >= 1")
            playable_seconds(page, "#result")
            after = screenshot_between(page, folder / "app_after.png", "#run-heading", "#history-files", False)
            shots.append(after)
            page.set_viewport_size({"width": NARROW, "height": 900})
            page.wait_for_timeout(500)
            emotions = screenshot_between(page, folder / "narrow_emotions.png", "#emotions-heading", "#ab-status")
            run = screenshot_between(page, folder / "narrow_run.png", "#run-heading", "#run-settings")
            shots.append(side_by_side(folder / "app_narrow.png", [emotions, run]))
            browser.close()
    finally:
        demo.close()
    return [small_png(path) for path in shots]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, required=True, help="folder for app_before/after/narrow.png")
    sys.path.insert(0, str(ROOT))
    for path in take_doc_screenshots(parser.parse_args().docs):
        print(path, path.stat().st_size, "bytes")
