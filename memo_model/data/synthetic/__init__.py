"""The synthetic talking-face world (DESIGN.md §5): where MEMO-Tiny is trained and measured.

identity.py (people from seeds) → expression.py (emotion → face parameters) → renderer.py (frames) ←
speech.py (emotional speech + mouth tracks) ← sample.py (segments + speech → frames, audio, labels) →
dataset_writer.py (on-disk format) ; analyzer.py (the measuring network, trained by memo_model/tiny/analyzer.py) ;
contact_sheet.py (looking at it) ; cli.py (``python -m memo_model synth ...``).
"""

from memo_model.data.synthetic.identity import HELD_OUT_SEED_START, Identity, sample_identity
from memo_model.data.synthetic.renderer import FaceRenderer, FaceState, render_frame
from memo_model.data.synthetic.sample import Sample, Segment, make_sample
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE, synthesize_speech

__all__ = [
    "FPS",
    "HELD_OUT_SEED_START",
    "SAMPLE_RATE",
    "FaceRenderer",
    "FaceState",
    "Identity",
    "Sample",
    "Segment",
    "make_sample",
    "render_frame",
    "sample_identity",
    "synthesize_speech",
]
