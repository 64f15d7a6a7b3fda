"""MEMO Studio entry point: `python app.py` (also the Hugging Face Space's app_file)."""

import sys

from memo_app import build_demo

if __name__ == "__main__":
    if build_demo is None:
        sys.exit("MEMO Studio's web app is not built yet; see the status section of README.md.")
    build_demo().queue().launch()
