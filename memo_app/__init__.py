"""MEMO Studio, the Gradio app over ``memo_model``.

``settings.py`` (how the app runs) → ``service.py`` (handlers, no tensor work) → ``ui.py`` (layout and events);
``timeline.py`` draws the emotion timeline; ``make_examples.py`` renders the bundled examples.
"""

from memo_app.service import StudioService
from memo_app.settings import AppSettings
from memo_app.ui import build_demo, launch

__all__ = ["AppSettings", "StudioService", "build_demo", "launch"]
