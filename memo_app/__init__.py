"""MEMO Studio, the Gradio app over ``memo_model``.

``settings.py`` (how the app runs) → ``service.py`` (the shared pipeline, its lock, cancel events and caches) → one
file of handlers per panel of the page (``model_panel.py``, ``portrait_panel.py``, ``speech_panel.py``,
``emotion_panel.py``, ``runs.py``, ``history.py``) → ``ui.py`` (layout and events). ``form.py`` is the run form (the
run settings, once, as ``RunForm`` ↔ ``GenerationRequest``); ``display.py`` how things are shown; ``timeline.py``
draws the emotion timeline; ``make_examples.py`` renders the bundled examples.
"""

from memo_app.service import StudioService
from memo_app.settings import AppSettings
from memo_app.ui import build_demo, launch

__all__ = ["AppSettings", "StudioService", "build_demo", "launch"]
