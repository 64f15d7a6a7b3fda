"""Vocal separation, the first step of the official audio path (docs/CHECKPOINT.md §1.3).

The official inference computes wav2vec2 features on the *vocal stem* of the 16 kHz input, separated by
audio-separator's MDX-Net model ``Kim_Vocal_2.onnx`` (shipped in the checkpoint under ``misc/vocal_separator``);
emotions are detected on the original mix, and the original mix is what the video carries. The bundled tiny
model does not separate. audio-separator is imported only when separation runs
(``pip install -r requirements-official.txt``).
"""

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.errors import SetupError

OFFICIAL_SEPARATOR_MODEL = "misc/vocal_separator/Kim_Vocal_2.onnx"


class VocalSeparator:
    """Waveform (16 kHz mono) -> its vocal stem (16 kHz mono), with audio-separator and an MDX-Net onnx model."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise SetupError(
                f"The vocal separation model {self.model_file} is missing. It ships with the official checkpoint "
                f"({OFFICIAL_SEPARATOR_MODEL}); download memoavatar/memo on a machine with internet."
            )
        try:
            from audio_separator.separator import Separator
        except ImportError:
            raise SetupError(
                "Vocal separation needs the package audio-separator: `pip install -r requirements-official.txt`."
            ) from None
        self._separator_class = Separator

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "input-16k.wav"
            sf.write(source, np.asarray(waveform, dtype=np.float32), SAMPLE_RATE)
            separator = self._separator_class(
                output_dir=tmp, output_single_stem="vocals", model_file_dir=str(self.model_file.parent)
            )
            separator.load_model(model_filename=self.model_file.name)
            stems = separator.separate(str(source))
            vocals = Path(stems[0]) if Path(stems[0]).is_absolute() else Path(tmp) / stems[0]
            separated = load_audio(vocals)  # back to 16 kHz mono, as the official ffmpeg resample
        return separated[: len(waveform)]
