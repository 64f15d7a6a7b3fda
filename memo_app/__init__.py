"""MEMO Studio, the Gradio app over ``memo_model`` (layout in ``ui.py``, handlers in ``service.py``).

Not built yet: ``build_demo`` is ``None`` until the app lands (see README status).
"""

build_demo = None
