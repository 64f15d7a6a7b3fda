"""The app as a person uses it, timed: a real browser against `python app.py` on the bundled MEMO-Tiny.

Uploads an example portrait and speech, analyzes the audio, takes the "before" screenshot, runs a preview, then a
full generation of a 10 s speech (two bundled examples joined), and takes the "after" screenshot. Wall times are
measured from the click to the finished status line, i.e. what the user waits.

    python -m bench.app_session [--images DIR]      # bench/results/app_session.json (and two screenshots in DIR)

Needs Debian's chromium (/usr/bin/chromium) and playwright (requirements-dev.txt).
"""

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = ROOT / "assets" / "examples"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 20 * 60 * 1000


def ten_second_speech(folder: Path) -> Path:
    first, rate = sf.read(EXAMPLES / "speech_1_happy_then_sad.wav", dtype="float32")
    second, _ = sf.read(EXAMPLES / "speech_3_surprised_then_neutral.wav", dtype="float32")
    path = folder / "speech_10s.wav"
    sf.write(path, np.concatenate([first, second])[: 10 * rate], rate)
    return path


def timed_run(page, button: str, finished_text: str | re.Pattern) -> float:
    """Click and wait for the status line "<kind> finished in ..."; seconds from the click."""
    started = time.perf_counter()
    page.locator(button).click()
    page.locator("#run-status", has_text=finished_text).wait_for(timeout=TIMEOUT_MS)
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "app_session.json"))
    parser.add_argument(
        "--images", default=None, help="folder for its two screenshots (docs/images/ holds the browser test's)"
    )
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from memo_app.service import StudioService
    from memo_app.settings import AppSettings
    from memo_app.ui import build_demo, launch

    images = Path(args.images) if args.images else None
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        os.environ.setdefault("MEMO_OUTPUT_DIR", str(folder / "outputs"))
        settings = AppSettings.from_env()
        started = time.perf_counter()
        service = StudioService(settings)
        demo = build_demo(service)
        launch(demo, service, server_port=args.port, prevent_thread_lock=True)
        startup = round(time.perf_counter() - started, 1)
        url = f"http://127.0.0.1:{args.port}"
        speech = ten_second_speech(folder)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.locator("#portrait input[type=file]").set_input_files(str(EXAMPLES / "synthetic_person_1.png"))
            page.locator("#speech input[type=file]").set_input_files(str(speech))
            page.locator("#portrait-notes", has_text="face").wait_for()
            page.locator("#audio-info", has_text="Duration").wait_for()
            tick = time.perf_counter()
            page.locator("#analyze").click()
            page.locator("#timeline img").wait_for()
            analyze = round(time.perf_counter() - tick, 1)
            page.wait_for_timeout(500)
            if images:
                page.screenshot(path=str(images / "app_session_before.png"), full_page=True)

            preview = timed_run(page, "#preview", re.compile(r"Preview \(.*\) finished"))
            page.wait_for_timeout(500)
            generate = timed_run(page, "#generate", "Generation finished")
            page.wait_for_function(
                "() => { const v = document.querySelector('#result video'); return v && v.duration > 0; }"
            )
            video_seconds = page.locator("#result video").evaluate("v => v.duration")
            page.wait_for_timeout(1000)
            if images:
                page.screenshot(path=str(images / "app_session_after.png"), full_page=True)
            browser.close()
        demo.close()

    result = {
        "benchmark": "app_session",
        "model": "bundled MEMO-Tiny",
        "app_start_seconds": startup,
        "analyze_seconds": analyze,
        "preview_seconds": preview,
        "generate_10s_seconds": generate,
        "generated_video_seconds": round(video_seconds, 2),
        "settings": (
            "app defaults (preview: the first 3 s in whole clips, 3.2 s, at the model's preview steps, 1 for "
            "MEMO-Tiny; generate and guidance: the model's defaults, 10 steps and 1.5 for MEMO-Tiny)"
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
