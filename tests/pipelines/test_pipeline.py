"""MemoPipeline end to end on a tiny random model in the official layout (real classes, no mocks)."""

import gc
import json
import threading
import weakref

import numpy as np
import pytest

from memo_model.errors import InputError
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.request import GenerationRequest
from memo_model.vision.video_io import probe_media


def request(media, tmp_path, seconds=1.0, **settings):
    settings.setdefault("steps", 2)
    return GenerationRequest(
        image=media / "portrait.png", audio=media / f"speech_{seconds:g}s.wav", output=tmp_path / "out.mp4", **settings
    )


def collect_frames(progress_list):
    return np.concatenate([p.frames for p in progress_list if p.frames is not None])


def test_two_clips_to_mp4_with_audio(pipeline, media, tmp_path):
    seen = []
    result = pipeline(request(media, tmp_path, seconds=1.0), callback=seen.append)
    info = probe_media(result.video_path)
    assert info["playable"] and info["has_video"] and info["has_audio"]
    assert info["video_frames"] == 30 == result.num_frames  # 1 s at 30 fps: 2 clips of 16, trimmed to the audio
    assert info["duration"] == pytest.approx(1.0, abs=0.05)
    assert info["audio_duration"] == pytest.approx(1.0, abs=0.05)
    assert [p.clip for p in seen if p.frames is not None] == [0, 1]  # clips handed out as they finish
    assert seen[-1].eta == 0 and all(p.eta >= 0 for p in seen)

    sidecar = json.loads(result.settings_path.read_text())
    assert sidecar["seed"] == 42 and sidecar["request"]["steps"] == 2
    assert [p["pass"] for p in sidecar["guidance_passes"]] == ["unconditional", "full"]  # equal scales: 2 passes
    assert len(sidecar["emotions"]["used_per_clip"]) == 2
    assert set(sidecar["timings_seconds"]) >= {"prepare", "generate", "total"}


def test_the_vae_sees_only_frames_the_video_keeps(pipeline, media, tmp_path, monkeypatch):
    """1 s = 30 frames in 2 clips: the last clip decodes only its 14 kept frames, and nothing is re-encoded after
    it (no clip follows); the portrait and clip 0's 16 past frames are encoded."""
    decoded, encoded = [], []
    decode, encode = pipeline.vae.decode, pipeline.vae.encode
    monkeypatch.setattr(pipeline.vae, "decode", lambda z, *a, **k: decoded.append(len(z)) or decode(z, *a, **k))
    monkeypatch.setattr(pipeline.vae, "encode", lambda x, *a, **k: encoded.append(len(x)) or encode(x, *a, **k))
    result = pipeline(request(media, tmp_path, seconds=1.0, steps=1))
    assert result.num_frames == 30 and sum(decoded) == 30
    assert sum(encoded) == 1 + 16


def test_seeded_runs_are_identical_and_seeds_differ(pipeline, media, tmp_path):
    runs = []
    for i, seed in enumerate((7, 7, 8)):
        seen = []
        pipeline(request(media, tmp_path / str(i), seconds=0.5, seed=seed, steps=1), callback=seen.append)
        runs.append(collect_frames(seen))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_emotion_override_reaches_the_model(pipeline, media, tmp_path):
    frames, used = {}, {}
    for label in ("happy", "sad"):
        seen = []
        result = pipeline(
            request(media, tmp_path / label, seconds=0.5, emotions=EmotionOverrides(label), steps=1),
            callback=seen.append,
        )
        frames[label] = collect_frames(seen)
        used[label] = json.loads(result.settings_path.read_text())["emotions"]["used_per_clip"]
    assert used == {"happy": ["happy"], "sad": ["sad"]}
    assert not np.array_equal(frames["happy"], frames["sad"])


def test_segment_override_applies_per_clip(pipeline, media, tmp_path):
    overrides = EmotionOverrides("angry", ((0.6, 1.0, "happy"),))
    result = pipeline(request(media, tmp_path, seconds=1.0, emotions=overrides, steps=1))
    assert result.clip_emotions.to_dict()["used_per_clip"] == ["angry", "happy"]


def test_cancel_leaves_a_playable_partial_video(pipeline, media, tmp_path):
    stop = threading.Event()

    def after_first_clip(progress):
        if progress.frames is not None:
            stop.set()

    result = pipeline(request(media, tmp_path, seconds=2.0, steps=1), callback=after_first_clip, cancel=stop)
    assert result.cancelled and result.num_frames == 16
    info = probe_media(result.video_path)
    assert info["playable"] and info["video_frames"] == 16 and info["has_audio"]
    assert json.loads(result.settings_path.read_text())["cancelled"] is True


def test_preview_uses_first_seconds_and_fewer_steps(pipeline, media, tmp_path):
    """0.5 s = 15 frames at 30 fps, rounded up to one whole clip of 16 frames."""
    result = pipeline(request(media, tmp_path, seconds=2.0, steps=20, preview_seconds=0.5, preview_steps=1))
    assert result.num_frames == 16
    assert json.loads(result.settings_path.read_text())["steps"] == 1


def test_finished_clips_are_not_kept(pipeline, media, tmp_path):
    """Constant memory in video length: nothing holds on to a clip once it is written."""
    refs = []

    def remember(progress):
        if progress.frames is not None:
            refs.append(weakref.ref(progress.frames))

    pipeline(request(media, tmp_path, seconds=1.0, steps=1), callback=remember)
    gc.collect()
    assert len(refs) == 2 and all(ref() is None for ref in refs)


def test_existing_output_is_never_overwritten(pipeline, media, tmp_path):
    (tmp_path / "out.mp4").write_bytes(b"the user's earlier video")
    result = pipeline(request(media, tmp_path, seconds=0.5, steps=1))
    assert result.video_path.name == "out-1.mp4"
    assert (tmp_path / "out.mp4").read_bytes() == b"the user's earlier video"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, "Denoising steps must be between 1 and 100"),
        ({"reference_guidance": 11.0}, "Reference guidance must be between 0 and 10"),
        ({"emotions": ("grumpy",)}, "Unknown emotion 'grumpy'"),
        ({"emotions": (None, ((2.0, 1.0, "sad"),))}, "0 <= start < end"),
        ({"past_frames": 0}, "Past frames must be between 1 and 48"),
        ({"fps": 7}, "Frames per second must be between 10 and 60"),
    ],
)
def test_out_of_range_settings_are_refused_before_any_work(pipeline, media, tmp_path, settings, message):
    with pytest.raises(InputError, match=message):  # the emotions are checked when built, the rest by the pipeline
        if "emotions" in settings:
            settings = {**settings, "emotions": EmotionOverrides(*settings["emotions"])}
        pipeline(request(media, tmp_path, seconds=0.5, **settings))
    assert not any(tmp_path.iterdir())


def test_bad_files_are_refused_with_a_clear_message(pipeline, media, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(InputError, match="(?i)image"):
        pipeline(GenerationRequest(image=text, audio=media / "speech_1s.wav", output=tmp_path / "a.mp4"))
    with pytest.raises(InputError, match="(?i)audio"):
        pipeline(GenerationRequest(image=media / "portrait.png", audio=text, output=tmp_path / "b.mp4"))
    silent = tmp_path / "silent.wav"
    import soundfile as sf

    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="(?i)silent"):
        pipeline(GenerationRequest(image=media / "portrait.png", audio=silent, output=tmp_path / "c.mp4"))
    with pytest.raises(InputError, match="(?i)does not exist"):
        pipeline(GenerationRequest(image=tmp_path / "missing.png", audio=silent, output=tmp_path / "d.mp4"))
    assert not list(tmp_path.glob("*.mp4"))


def test_too_long_audio_is_refused(pipeline, media, tmp_path):
    with pytest.raises(InputError, match="(?i)long|trim"):
        pipeline(request(media, tmp_path, seconds=2.0, max_audio_seconds=1.0))


def test_request_round_trips_through_json(media, tmp_path):
    original = request(media, tmp_path, emotions=EmotionOverrides("happy", ((0.0, 1.0, "sad"),)))
    restored = GenerationRequest.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored.to_dict() == original.to_dict()
    with pytest.raises(InputError, match="Unknown setting"):
        GenerationRequest.from_dict({**original.to_dict(), "stepz": 3})


def test_memory_modes_differ_after_the_first_clip_only(pipeline, media, tmp_path):
    """The ablation modes share clip 0 (the portrait is the only past) and diverge from clip 1 on."""
    frames = {}
    for mode in ("full", "recent", "reference"):
        seen = []
        pipeline(request(media, tmp_path / mode, seconds=1.0, steps=1, memory_mode=mode), callback=seen.append)
        frames[mode] = collect_frames(seen)
    assert np.array_equal(frames["full"][:16], frames["recent"][:16])
    assert np.array_equal(frames["full"][:16], frames["reference"][:16])
    assert not np.array_equal(frames["full"][16:], frames["reference"][16:])
    with pytest.raises(InputError, match="memory_mode"):
        request(media, tmp_path, memory_mode="none").validate()
