"""The package's public API (STYLE.md layout) is importable from the top level, lazily."""

import subprocess
import sys


def test_public_names():
    import memo_model
    from memo_model.loading import load_pipeline
    from memo_model.pipelines.emotions import EmotionOverrides
    from memo_model.pipelines.pipeline_memo import MemoPipeline
    from memo_model.pipelines.request import GenerationRequest

    assert memo_model.load_pipeline is load_pipeline
    assert memo_model.MemoPipeline is MemoPipeline
    assert memo_model.GenerationRequest is GenerationRequest
    assert memo_model.EmotionOverrides is EmotionOverrides
    assert memo_model.EMOTION_LABELS[3] == "happy"


def test_import_is_cheap():
    code = "import sys, memo_model; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
