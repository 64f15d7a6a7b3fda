"""One synthetic sample: identity + emotion segments + speech -> frames, audio and per-frame labels.

The order of generation mirrors cause and effect in a real recording: emotion segments set the prosody of
the speech; the speech sets mouth opening/shape and how much the head moves; the emotion labels set the
facial expression, blended smoothly (``TRANSITION_FRAMES``) around each segment change; blinks are random.
Everything is a pure function of (identity_seed, sample seed), so a sample can be re-rendered exactly.

A *decoupled* sample (``make_sample(..., decoupled=True)``) speaks its own, independent segment plan (other
boundaries, other emotions) while the face keeps the labelled one: the expression cannot be heard in the
prosody, only read from the labels. Real recordings cannot supply such takes; a model trained only on coupled
takes learns to take its expression from the speech and ignore the labels (docs/TRAINING.md).
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from memo_model.audio.emotion import EMOTION_LABELS, SELECTABLE_EMOTIONS
from memo_model.data.synthetic.expression import one_hot_expression
from memo_model.data.synthetic.identity import Identity, sample_identity
from memo_model.data.synthetic.renderer import DEFAULT_SIZE, FaceRenderer, FaceState
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE, Speech, sample_voice, synthesize_speech

TRANSITION_FRAMES = 6  # expression blend centred on a segment change (0.2 s at 30 fps)
SEGMENT_SECONDS = (1.0, 4.0)  # issue 4: emotion segments last 1-4 s
BLINK_FRAMES = 5
BLINK_INTERVAL_SECONDS = (1.5, 5.0)
# Head motion amplitudes at full speech energy (yaw in [-1, 1] units, roll in degrees, shifts in face units).
HEAD_AMPLITUDE = {"yaw": 0.6, "roll": 4.0, "tx": 0.02, "ty": 0.015}
HEAD_IDLE_SHARE = 0.35  # fraction of the head motion that remains during silence


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) spoken and shown with one emotion (an index into EMOTION_LABELS)."""

    emotion: int
    start: int
    end: int

    def to_json(self) -> dict:
        return {
            "emotion": self.emotion,
            "label": EMOTION_LABELS[self.emotion],
            "start_frame": self.start,
            "end_frame": self.end,
        }


@dataclass
class Sample:
    """A rendered sample. frames (f, s, s, 3) uint8; audio (n,) float32 at 16 kHz; reference (s, s, 3)."""

    identity: Identity
    segments: list[Segment]
    frames: np.ndarray | None
    audio: np.ndarray
    labels: dict
    reference: np.ndarray | None
    reference_emotion: int


def plan_segments(num_frames: int, rng: np.random.Generator, emotions: list[int] | None = None) -> list[Segment]:
    """Consecutive segments of 1-4 s covering ``num_frames``; neighbours always differ in emotion."""
    segments: list[Segment] = []
    start = 0
    while start < num_frames:
        shortest, longest = (int(s * FPS) for s in SEGMENT_SECONDS)
        remaining = num_frames - start
        if remaining <= longest:
            length = remaining
        else:  # never leave a remainder shorter than the shortest segment
            length = int(rng.integers(shortest, min(longest, remaining - shortest) + 1))
        if emotions is not None:
            emotion = emotions[len(segments) % len(emotions)]
        else:
            choices = [e for e in range(len(SELECTABLE_EMOTIONS)) if not segments or e != segments[-1].emotion]
            emotion = int(rng.choice(choices))
        segments.append(Segment(emotion, start, start + length))
        start += length
    return segments


def expression_track(segments: list[Segment], num_frames: int) -> np.ndarray:
    """Per-frame weights over SELECTABLE_EMOTIONS, (f, 8); a linear blend centred on each change."""
    hard = np.stack([one_hot_expression(s.emotion) for s in segments for _ in range(s.end - s.start)])
    kernel = np.ones(TRANSITION_FRAMES) / TRANSITION_FRAMES
    padded = np.pad(
        hard, ((TRANSITION_FRAMES // 2, TRANSITION_FRAMES - 1 - TRANSITION_FRAMES // 2), (0, 0)), mode="edge"
    )
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(hard.shape[1])], 1)[:num_frames]


def blink_track(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame eyelid closure (f,) in [0, 1]: short closures at random 1.5-5 s intervals."""
    blink = np.zeros(num_frames, dtype=np.float32)
    profile = np.sin(np.linspace(0, np.pi, BLINK_FRAMES + 2)[1:-1])
    position = int(rng.uniform(0.2, BLINK_INTERVAL_SECONDS[1]) * FPS)
    while position < num_frames:
        end = min(position + BLINK_FRAMES, num_frames)
        blink[position:end] = profile[: end - position]
        position += int(rng.uniform(*BLINK_INTERVAL_SECONDS) * FPS)
    return blink


def head_motion(energy: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Smooth random head pose whose amplitude follows the speech energy. Each track has shape (f,)."""
    # Speech energy, smoothed over ~0.3 s: heads move with phrases, not with single syllables.
    activity = lfilter([0.1], [1, -0.9], energy)
    activity = activity / (activity.max() + 1e-8)
    gain = HEAD_IDLE_SHARE + (1 - HEAD_IDLE_SHARE) * activity
    pose = {}
    for name, amplitude in HEAD_AMPLITUDE.items():
        wander = lfilter([0.05], [1, -0.95], rng.normal(0, 1, energy.shape[0] + FPS))[FPS:]  # ~1 s correlation
        wander = wander / (np.abs(wander).max() + 1e-8)
        pose[name] = (amplitude * gain * wander).astype(np.float32)
    return pose


def pick_reference_emotion(segments: list[Segment], rng: np.random.Generator) -> int:
    """An emotion for the reference image that differs from the video's emotions where possible."""
    used = {s.emotion for s in segments}
    unused = [e for e in range(len(SELECTABLE_EMOTIONS)) if e not in used]
    pool = unused or [e for e in range(len(SELECTABLE_EMOTIONS)) if e != segments[0].emotion]
    return int(rng.choice(pool))


def render_reference(identity: Identity, emotion: int, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The identity with ``emotion``, mouth closed, eyes open, frontal pose. (size, size, 3) uint8."""
    return FaceRenderer(identity, size)(FaceState(expression=one_hot_expression(emotion)))


def face_states(speech: Speech, segments: list[Segment], rng: np.random.Generator) -> tuple[list[FaceState], dict]:
    """Per-frame FaceStates and the matching JSON-ready label tracks."""
    num_frames = speech.mouth_open.shape[0]
    expression = expression_track(segments, num_frames)
    blink = blink_track(num_frames, rng)
    pose = head_motion(speech.energy, rng)
    states = [
        FaceState(
            mouth_open=float(speech.mouth_open[i]),
            mouth_shape=float(speech.mouth_shape[i]),
            blink=float(blink[i]),
            yaw=float(pose["yaw"][i]),
            roll=float(pose["roll"][i]),
            tx=float(pose["tx"][i]),
            ty=float(pose["ty"][i]),
            expression=expression[i],
        )
        for i in range(num_frames)
    ]
    emotion = np.concatenate([np.full(s.end - s.start, s.emotion) for s in segments])
    labels = {
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "num_frames": num_frames,
        "emotion": emotion.tolist(),
        "mouth_open": np.round(speech.mouth_open, 4).tolist(),
        "mouth_shape": np.round(speech.mouth_shape, 4).tolist(),
        "blink": np.round(blink, 4).tolist(),
        "head_pose": {name: np.round(track, 4).tolist() for name, track in pose.items()},
        "segments": [s.to_json() for s in segments],
    }
    return states, labels


def random_state(rng: np.random.Generator) -> FaceState:
    """One frame state, independent of any video, covering everything a talking video can show (expression blends
    included): the frames the face analyzer and MEMO-Tiny's VAE train on."""
    expression = one_hot_expression(int(rng.integers(len(SELECTABLE_EMOTIONS))))
    if rng.random() < 0.2:  # mid-transition frames
        other = one_hot_expression(int(rng.integers(len(SELECTABLE_EMOTIONS))))
        mix = rng.uniform(0, 1)
        expression = (1 - mix) * expression + mix * other
    return FaceState(
        mouth_open=0.0 if rng.random() < 0.25 else float(rng.uniform(0, 1)),
        mouth_shape=float(rng.uniform(-1, 1)),
        blink=float(rng.uniform(0, 1)) if rng.random() < 0.15 else 0.0,
        yaw=float(rng.uniform(-1, 1) * HEAD_AMPLITUDE["yaw"]),
        roll=float(rng.uniform(-1, 1) * HEAD_AMPLITUDE["roll"]),
        tx=float(rng.uniform(-1, 1) * HEAD_AMPLITUDE["tx"]),
        ty=float(rng.uniform(-1, 1) * HEAD_AMPLITUDE["ty"]),
        expression=expression,
    )


def make_sample(
    identity_seed: int,
    seed: int,
    num_frames: int,
    size: int = DEFAULT_SIZE,
    emotions: list[int] | None = None,
    background: str = "none",
    render: bool = True,
    decoupled: bool = False,
) -> Sample:
    """Build one sample. ``emotions`` forces the face's segment emotions (cycled); ``render=False`` skips frames;
    ``decoupled`` gives the speech its own segment plan (module docstring), recorded as ``speech_segments``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}.")
    rng = np.random.default_rng([identity_seed, seed, 0x5A])
    identity = sample_identity(identity_seed)
    segments = plan_segments(num_frames, rng, emotions)
    # A generator of its own, so coupled samples stay exactly what they were before decoupling existed.
    spoken = plan_segments(num_frames, np.random.default_rng([identity_seed, seed, 0x5B])) if decoupled else segments
    speech = synthesize_speech(
        [(s.emotion, s.end - s.start) for s in spoken],
        sample_voice(identity_seed),
        seed=seed * 7919 + identity_seed,
        background=background,
    )
    states, labels = face_states(speech, segments, rng)
    reference_emotion = pick_reference_emotion(segments, rng)
    labels["reference_emotion"] = reference_emotion
    if decoupled:
        labels["speech_segments"] = [s.to_json() for s in spoken]
    frames = reference = None
    if render:
        renderer = FaceRenderer(identity, size)
        frames = renderer.render_video(states)
        reference = renderer(FaceState(expression=one_hot_expression(reference_emotion)))
    return Sample(identity, segments, frames, speech.audio, labels, reference, reference_emotion)
