"""What a run writes: the person's own audio (rate, channels, AAC) and, with paste-back, the animated crop blended
into the whole portrait as the main video, the crop alone beside it — through the library and the CLI, on the tiny
random model."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from memo_model.__main__ import build_parser, main
from memo_model.errors import InputError
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.request import GenerationRequest
from memo_model.vision.face import prepare_portrait
from memo_model.vision.paste_back import output_size
from memo_model.vision.video_io import probe_media
from tests.pipelines.conftest import FIXTURES, speech_like

ROOT = Path(__file__).resolve().parents[2]
MODEL_SIDE = 16  # memo_model.testing.TINY_RESOLUTION
CD_RATE = 44_100
WIDE = (259, 201)  # a portrait wider than tall, odd sides: the crop is a smaller square inside it


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    """1 s of speech-like stereo at 44.1 kHz (the right channel a little quieter)."""
    path = tmp_path_factory.mktemp("stereo") / "stereo.wav"
    left = speech_like(1.0, sample_rate=CD_RATE)
    sf.write(path, np.stack([left, 0.5 * left], axis=1), CD_RATE)
    return path


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wide") / "wide.png"
    Image.open(FIXTURES / "astronaut_256.jpg").convert("RGB").resize(WIDE).save(path)
    return path


def run(pipeline, image, audio, tmp_path, **settings):
    request = GenerationRequest(image=image, audio=audio, output=tmp_path / "out.mp4", steps=1, **settings)
    return request, pipeline(request)


def assert_original_audio(path: Path) -> dict:
    info = probe_media(path)
    assert info["playable"] and info["has_audio"], info
    assert (info["audio_codec"], info["audio_sample_rate"], info["audio_channels"]) == ("aac", CD_RATE, 2), info
    assert info["audio_duration"] == pytest.approx(info["video_frames"] / 30, abs=0.03)  # cut to the frames
    return info


def test_paste_back_writes_the_whole_portrait_and_the_crop_with_the_original_audio(pipeline, wide, stereo, tmp_path):
    request, result = run(pipeline, wide, stereo, tmp_path, emotions=EmotionOverrides("happy"))
    expected = output_size(WIDE)  # even sides, within a pixel of the picture's
    assert expected[0] % 2 == expected[1] % 2 == 0 and abs(expected[0] - WIDE[0]) <= 1 >= abs(expected[1] - WIDE[1])
    assert result.video_path == tmp_path / "out.mp4" and result.crop_video_path == tmp_path / "out-crop.mp4"
    assert result.resolution == expected == pipeline.output_resolution(request)  # known before the run

    main_video, crop = assert_original_audio(result.video_path), assert_original_audio(result.crop_video_path)
    assert (main_video["width"], main_video["height"]) == expected
    assert (crop["width"], crop["height"]) == (MODEL_SIDE, MODEL_SIDE)
    assert main_video["video_frames"] == crop["video_frames"] == result.num_frames == 30

    sidecar = json.loads(result.settings_path.read_text())
    assert sidecar["paste_back"] is True and sidecar["resolution"] == MODEL_SIDE
    assert sidecar["video"] == str(result.video_path) and sidecar["video_resolution"] == list(expected)
    assert sidecar["crop_video"] == str(result.crop_video_path)
    assert sidecar["crop_video_resolution"] == [MODEL_SIDE, MODEL_SIDE]
    assert sidecar["request"]["paste_back"] is None  # as asked: automatic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-crop.mp4", "out.json", "out.mp4"]


def test_a_preview_carries_the_original_audio_cut_to_its_clips(pipeline, media, tmp_path):
    audio = tmp_path / "long.wav"
    sf.write(audio, np.stack([speech_like(2.0, sample_rate=CD_RATE)] * 2, axis=1), CD_RATE)
    _, result = run(pipeline, media / "portrait.png", audio, tmp_path, preview_seconds=0.5, paste_back=False)
    info = assert_original_audio(result.video_path)
    assert info["video_frames"] == 16 and info["audio_duration"] == pytest.approx(16 / 30, abs=0.03)


def test_without_paste_back_one_video_at_the_model_resolution(pipeline, wide, stereo, tmp_path):
    request, result = run(pipeline, wide, stereo, tmp_path, paste_back=False)
    assert result.crop_video_path is None and result.resolution == (MODEL_SIDE, MODEL_SIDE)
    assert pipeline.output_resolution(request) == result.resolution
    info = assert_original_audio(result.video_path)
    assert (info["width"], info["height"]) == (MODEL_SIDE, MODEL_SIDE)
    sidecar = json.loads(result.settings_path.read_text())
    assert sidecar["paste_back"] is False and sidecar["crop_video"] is None
    assert sidecar["video_resolution"] == [MODEL_SIDE, MODEL_SIDE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.mp4"]


def test_automatic_paste_back_is_off_when_the_model_sees_the_whole_picture(pipeline, wide, stereo, tmp_path):
    """Without the face crop the model's square is the whole picture (the official input): nothing to paste back."""
    request, result = run(pipeline, wide, stereo, tmp_path, crop_to_face=False)
    assert result.crop_video_path is None and result.resolution == (MODEL_SIDE, MODEL_SIDE)
    portrait = prepare_portrait(wide, MODEL_SIDE, crop_to_face=False)
    assert pipeline.output_resolution(request) == pipeline.output_resolution(request, portrait) == result.resolution
    assert not (tmp_path / "out-crop.mp4").exists()
    # Asked for, paste-back undoes the stretch: the generated square back at the picture's own shape
    assert pipeline.output_resolution(request.replace(paste_back=True)) == output_size(WIDE)


def test_a_cancel_keeps_both_partial_videos_with_their_audio(pipeline, media, tmp_path):
    audio = tmp_path / "speech.wav"
    sf.write(audio, np.stack([speech_like(2.0, sample_rate=CD_RATE)] * 2, axis=1), CD_RATE)
    stop = threading.Event()

    def after_first_clip(progress):
        if progress.frames is not None:
            stop.set()

    request = GenerationRequest(image=media / "portrait.png", audio=audio, output=tmp_path / "out.mp4", steps=1)
    result = pipeline(request, callback=after_first_clip, cancel=stop)
    assert result.cancelled and result.num_frames == 16
    assert result.video_path == tmp_path / "out-partial.mp4"
    assert result.crop_video_path == tmp_path / "out-crop-partial.mp4"
    for video in (result.video_path, result.crop_video_path):
        assert assert_original_audio(video)["video_frames"] == 16
    sidecar = json.loads((tmp_path / "out-partial.json").read_text())
    assert sidecar["cancelled"] is True and sidecar["crop_video"] == str(result.crop_video_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["out-crop-partial.mp4", "out-partial.json", "out-partial.mp4", "speech.wav"], left


def test_a_name_whose_crop_video_exists_is_not_reused(pipeline, media, tmp_path):
    (tmp_path / "out-crop.mp4").write_bytes(b"an earlier crop video")
    _, result = run(pipeline, media / "portrait.png", media / "speech_0.5s.wav", tmp_path, paste_back=True)
    assert result.video_path.name == "out-1.mp4" and result.crop_video_path.name == "out-1-crop.mp4"
    assert (tmp_path / "out-crop.mp4").read_bytes() == b"an earlier crop video"


def test_audio_only_our_decoder_reads_falls_back_to_what_the_model_heard(pipeline, media, tmp_path):
    """A MATLAB 5 file: libsndfile reads it, ffmpeg does not — the video keeps the 16 kHz mono waveform."""
    audio = tmp_path / "speech.mat"
    sf.write(audio, speech_like(0.5), 16_000, format="MAT5")
    _, result = run(pipeline, media / "portrait.png", audio, tmp_path, paste_back=False)
    info = probe_media(result.video_path)
    assert (info["audio_sample_rate"], info["audio_channels"]) == (16_000, 1) and info["video_frames"] == 15
    assert any("16 kHz mono" in warning and "speech.mat" in warning for warning in result.warnings)


def test_cli_keeps_the_audio_and_prints_both_videos_with_their_resolution(weights, media, stereo, tmp_path):
    out = tmp_path / "talk.mp4"
    command = [
        sys.executable, "-m", "memo_model", "generate", "--image", str(media / "portrait.png"), "--audio",
        str(stereo), "--output", str(out), "--weights", str(weights), "--steps", "1", "--paste-back",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    portrait_size = Image.open(media / "portrait.png").size
    assert f"{out}  ({portrait_size[0]}×{portrait_size[1]}, the whole portrait; 30 frames" in done.stdout
    assert f"{tmp_path / 'talk-crop.mp4'}  ({MODEL_SIDE}×{MODEL_SIDE}, the crop alone)" in done.stdout
    info = assert_original_audio(out)
    assert (info["width"], info["height"]) == portrait_size
    assert_original_audio(tmp_path / "talk-crop.mp4")


def test_cli_no_paste_back_writes_the_crop_alone(weights, media, stereo, tmp_path, capsys):
    out = tmp_path / "talk.mp4"
    code = main([
        "generate", "--image", str(media / "portrait.png"), "--audio", str(stereo), "--output", str(out),
        "--weights", str(weights), "--steps", "1", "--no-paste-back",
    ])  # fmt: skip
    assert code == 0
    assert f"{out}  ({MODEL_SIDE}×{MODEL_SIDE}, the crop;" in capsys.readouterr().out
    info = assert_original_audio(out)
    assert (info["width"], info["height"]) == (MODEL_SIDE, MODEL_SIDE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.json", "talk.mp4"]


def test_the_cli_default_is_automatic():
    args = ["generate", "--image", "a.png", "--audio", "b.wav"]
    assert build_parser().parse_args(args).paste_back is None
    assert build_parser().parse_args([*args, "--paste-back"]).paste_back is True
    assert build_parser().parse_args([*args, "--no-paste-back"]).paste_back is False


@pytest.mark.parametrize("choice", [None, True, False])
def test_paste_back_round_trips_through_json(choice):
    original = GenerationRequest(image="portrait.png", audio="speech.wav", paste_back=choice)
    saved = json.loads(json.dumps(original.to_dict()))
    assert saved["paste_back"] is choice
    assert GenerationRequest.from_dict(saved) == original


def test_a_paste_back_that_is_not_true_or_false_is_refused():
    with pytest.raises(InputError, match=r'"paste_back" must be true or false, or null; got \'yes\''):
        GenerationRequest.from_dict({"image": "a.png", "audio": "b.wav", "paste_back": "yes"})
    problems = GenerationRequest(image="a", audio="b", paste_back=1).problems(check_files=False)
    assert problems == ['"paste_back" must be true or false, or null; got 1.']
