"""MEMO Studio entry point: `python app.py` locally, and the Hugging Face Space's app_file.

Environment: MEMO_WEIGHTS (a weights folder or hub id; default the bundled MEMO-Tiny), MEMO_OUTPUT_DIR,
MEMO_MAX_AUDIO_SECONDS, MEMO_DEVICE. See docs/APP.md.
"""

from memo_app import AppSettings, StudioService, build_demo, launch

settings = AppSettings.from_env()
service = StudioService(settings)
demo = build_demo(service)

if __name__ == "__main__":
    launch(demo, service)
