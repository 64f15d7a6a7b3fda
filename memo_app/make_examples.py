"""Render the app's examples into ``assets/examples/`` with the synthetic talking-face world.

    python -m memo_app.make_examples            # rewrites the synthetic_* files; deterministic

Four held-out synthetic people (never seen in training), each a 256 px portrait with a neutral face, and four
speech clips whose emotion changes inside the clip, so the timeline has something to show. The real photo
(``astronaut.jpg``, NASA, public domain) is copied from ``tests/fixtures``; ``README.md`` there says where
everything comes from.
"""

import argparse
import shutil
from pathlib import Path

import soundfile as sf
from PIL import Image

from memo_app.settings import EXAMPLES_DIR, REPO_ROOT
from memo_model.audio.emotion import EMOTION_LABELS
from memo_model.data.synthetic import HELD_OUT_SEED_START, SAMPLE_RATE, make_sample, sample_identity
from memo_model.data.synthetic.sample import render_reference

PORTRAIT_SIZE = 256
FPS = 30
# (held-out identity, name, emotions spoken in order, seconds): one example per person. The identities span light
# to dark skin among those OpenCV's Haar detector finds: it misses 7 of the first 16 held-out faces, mostly dark
# ones, and boxes a background patch on one (identity 12): a limit of the detector, reported to its owner. An
# example should not open with a wrong box or a "no face" warning.
EXAMPLES = (
    (1, "happy_then_sad", ("happy", "sad"), 5.0),
    (18, "angry", ("angry",), 4.0),
    (16, "surprised_then_neutral", ("surprised", "neutral"), 5.0),
    (4, "fearful_then_happy", ("fearful", "happy"), 6.0),
)
ASTRONAUT = REPO_ROOT / "tests" / "fixtures" / "astronaut_256.jpg"


def make_examples(folder: Path = EXAMPLES_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (identity, name, emotions, seconds) in enumerate(EXAMPLES, start=1):
        identity_seed = HELD_OUT_SEED_START + identity
        indices = [EMOTION_LABELS.index(label) for label in emotions]
        sample = make_sample(identity_seed, seed=number, num_frames=int(seconds * FPS), emotions=indices, render=False)
        portrait = render_reference(sample_identity(identity_seed), EMOTION_LABELS.index("neutral"), PORTRAIT_SIZE)
        image_path = folder / f"synthetic_person_{number}.png"
        Image.fromarray(portrait).save(image_path, optimize=True)
        audio_path = folder / f"speech_{number}_{name}.wav"
        sf.write(audio_path, sample.audio, SAMPLE_RATE, subtype="PCM_16")
        written += [image_path, audio_path]
    astronaut = folder / "astronaut.jpg"
    shutil.copyfile(ASTRONAUT, astronaut)
    return [*written, astronaut]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    for path in make_examples(parser.parse_args().out):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
