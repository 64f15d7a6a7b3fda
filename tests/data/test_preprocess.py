"""Data pipeline for real videos (paper appendix F): each step on synthetic-world videos, then the whole run.

Inputs are synthetic talking faces written as ordinary mp4 files (H.264 + AAC), so every step runs on real decoded
video: a cut between two identities, a plain-colour video, a blurred one, one dubbed with another sample's audio.
"""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from memo_model.audio.emotion import LOG_MEL_STATISTICS_DIM, ClassifierHeadDetector, log_mel_statistics
from memo_model.audio.features import MelFeatures
from memo_model.data.preprocess import (
    Clip,
    DatasetWriter,
    FaceCrop,
    HistogramCutDetector,
    LipSyncFilter,
    PreprocessConfig,
    Preprocessor,
    QualityFilter,
    ReviewFilter,
    SyncNetScorer,
    apply_review,
    build_steps,
    merge_shards,
    read_decisions,
    shard,
    split_scenes,
)
from memo_model.data.preprocess.faces import touches_border
from memo_model.data.preprocess.lipsync import sync_confidence
from memo_model.data.synthetic import make_sample
from memo_model.data.synthetic.dataset_writer import read_metadata, read_video, write_video
from memo_model.errors import InputError, SetupError
from memo_model.models.emotion_classifier import AudioEmotionClassifier

FRAMES = 90  # 3 s at 30 fps
SIZE = 128
RESOLUTION = 96
SYNTHETIC_KEYS = {
    "id",
    "video",
    "audio",
    "labels",
    "reference",
    "num_frames",
    "fps",
    "sample_rate",
    "size",
    "identity_seed",
    "seed",
    "reference_emotion",
    "emotions",
}
CONFIG = PreprocessConfig(resolution=RESOLUTION, min_clip_seconds=1.0)


def save_video(folder: Path, name: str, frames: np.ndarray, audio: np.ndarray) -> Path:
    wav = folder / f"{name}.wav"
    sf.write(wav, audio, 16_000)
    write_video(folder / f"{name}.mp4", frames, wav)
    wav.unlink()
    return folder / f"{name}.mp4"


@pytest.fixture(scope="module")
def samples():
    # Identities 0 and 2: faces the default detector finds in every frame.
    return make_sample(0, 1, FRAMES, size=SIZE), make_sample(2, 2, FRAMES, size=SIZE)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, samples) -> Path:
    a, b = samples
    folder = tmp_path_factory.mktemp("raw")
    save_video(folder, "two_scenes", np.concatenate([a.frames, b.frames]), np.concatenate([a.audio, b.audio]))
    save_video(folder, "blank", np.full((FRAMES, SIZE, SIZE, 3), 120, np.uint8), a.audio)
    save_video(folder, "blurred", np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in a.frames]), a.audio)
    save_video(folder, "dubbed", a.frames, b.audio)
    return folder


def clip_of(frames: np.ndarray, audio: np.ndarray) -> Clip:
    return Clip("c", "test", 0, len(frames), 30, frames, audio)


# --- 1. scenes ------------------------------------------------------------------------------------------------


def test_cut_between_two_identities_is_found(videos):
    cuts, total = HistogramCutDetector().find_cuts(videos / "two_scenes.mp4", 30)
    assert total == 2 * FRAMES
    assert cuts == [FRAMES]
    assert HistogramCutDetector().find_cuts(videos / "dubbed.mp4", 30)[0] == []  # talking is not a cut


def test_scenes_are_split_under_30_seconds():
    spans = split_scenes([300, 310], num_frames=30 * 100, fps=30)  # a 10 s scene, a 0.3 s flash, a 89.7 s scene
    assert spans[0] == (0, 300)
    assert all(end - start < 30 * 30 for start, end in spans)
    assert spans[1][0] == 310 and spans[-1][1] == 3000  # the flash is dropped, the long scene covered whole
    assert all(a[1] == b[0] for a, b in zip(spans[1:-1], spans[2:], strict=True))


# --- 2. faces -------------------------------------------------------------------------------------------------


def test_face_crop_is_square_at_training_resolution(samples):
    clip = FaceCrop(RESOLUTION)(clip_of(samples[0].frames, samples[0].audio))
    assert clip is not None and clip.frames.shape == (FRAMES, RESOLUTION, RESOLUTION, 3)
    assert clip.scores["face_share"] == 1.0
    assert clip.scores["crop_side"] == pytest.approx(1.1 * clip.scores["face_side"], abs=1)  # paper's ×1.1
    assert clip.face_boxes.shape == (FRAMES, 4) and clip.first_frame.shape == (SIZE, SIZE, 3)


def test_no_face_several_faces_and_cut_faces_are_rejected(samples):
    blank = clip_of(np.full((30, SIZE, SIZE, 3), 120, np.uint8), samples[0].audio)
    assert FaceCrop(RESOLUTION)(blank) is None
    assert blank.rejection.step == "faces" and "no face" in blank.rejection.reason

    pair = np.concatenate([samples[0].frames[:30], samples[1].frames[:30]], axis=2)  # two people side by side
    several = clip_of(pair, samples[0].audio)
    assert FaceCrop(RESOLUTION)(several) is None and "several faces" in several.rejection.reason

    shifted = np.zeros_like(samples[0].frames[:30])
    shifted[:, :, : SIZE - 30] = samples[0].frames[:30, :, 30:]  # the face runs off the left edge
    partial = clip_of(shifted, samples[0].audio)
    assert FaceCrop(RESOLUTION)(partial) is None
    # A frontal Haar cascade rarely finds a half face at all; a head detector reports a box at the edge.
    assert partial.rejection.reason.startswith(("the face touches the frame's edge", "no face"))
    assert touches_border((0, 10, 50, 60), 128, 128) and not touches_border((10, 10, 60, 60), 128, 128)


# --- 3. quality, 4. lip-sync ------------------------------------------------------------------------------------


def test_blurred_clip_fails_the_quality_filter(samples):
    sharp = FaceCrop(RESOLUTION)(clip_of(samples[0].frames, samples[0].audio))
    assert QualityFilter(RESOLUTION)(sharp) is sharp
    blurred_frames = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in samples[0].frames])
    blurred = FaceCrop(RESOLUTION)(clip_of(blurred_frames, samples[0].audio))
    assert QualityFilter(RESOLUTION)(blurred) is None and "blurred" in blurred.rejection.reason
    too_small = FaceCrop(512)(clip_of(samples[0].frames, samples[0].audio))  # a 96 px crop for 512 px training
    assert QualityFilter(512)(too_small) is None and "low resolution" in too_small.rejection.reason


def test_audio_of_another_sample_fails_the_lip_sync_filter(samples):
    a, b = samples
    matched = FaceCrop(RESOLUTION)(clip_of(a.frames, a.audio))
    assert LipSyncFilter()(matched) is matched
    assert matched.scores["lip_sync_offset"] == 0
    dubbed = FaceCrop(RESOLUTION)(clip_of(a.frames, b.audio))
    assert LipSyncFilter()(dubbed) is None and dubbed.rejection.step == "lip_sync"
    assert dubbed.scores["lip_sync_confidence"] < matched.scores["lip_sync_confidence"]


def test_syncnet_needs_its_weights(tmp_path):
    with pytest.raises(SetupError, match="No SyncNet weights"):
        SyncNetScorer(tmp_path / "syncnet_v2.model")


def test_sync_confidence_finds_the_shift_of_embeddings():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((60, 8))
    video = np.roll(audio, 3, axis=0)  # video[t] = audio[t - 3]: the video lags 3 frames
    score = sync_confidence(video, audio)
    assert score.offset == 3 and score.confidence > 1.0


# --- 5. review --------------------------------------------------------------------------------------------------


def test_review_list_round_trip(tmp_path):
    from memo_model.data.preprocess.review import write_review_list

    rows = [
        {
            "id": f"c{i}",
            "video": f"videos/c{i}.mp4",
            "fps": 30,
            "num_frames": 90,
            "scores": {"lip_sync_confidence": 1.0 - i / 10},
        }
        for i in range(3)
    ]
    path = write_review_list(tmp_path / "review.csv", rows)
    with open(path, newline="") as file:
        lines = list(csv.DictReader(file))
    assert [line["id"] for line in lines] == ["c2", "c1", "c0"]  # least sure lip-sync first
    assert read_decisions(path) == {"c0": True, "c1": True, "c2": True}
    lines[0]["keep"] = "no"
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=lines[0].keys())
        writer.writeheader()
        writer.writerows(lines)
    decisions = read_decisions(path)
    assert decisions == {"c0": True, "c1": True, "c2": False}
    assert ReviewFilter(decisions)(Clip("c2", "s", 0, 1, 30, np.zeros((1, 2, 2, 3), np.uint8), np.zeros(1))) is None
    write_review_list(path, rows, previous=path)  # rewriting keeps the decision
    assert read_decisions(path)["c2"] is False
    lines[1]["keep"] = "maybe"
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=lines[0].keys())
        writer.writeheader()
        writer.writerows(lines)
    with pytest.raises(InputError, match="keep='maybe'"):
        read_decisions(path)


# --- 6. writing, 7. shards ---------------------------------------------------------------------------------------


def tiny_emotion_detector() -> ClassifierHeadDetector:
    torch.manual_seed(0)
    classifier = AudioEmotionClassifier(
        num_classifier_layers=2, num_classifier_channels=8, input_dim=LOG_MEL_STATISTICS_DIM
    )
    return ClassifierHeadDetector(log_mel_statistics, classifier)


def test_pipeline_writes_the_synthetic_format(videos, tmp_path):
    out = tmp_path / "dataset"
    writer = DatasetWriter(out, emotion_detector=tiny_emotion_detector(), feature_extractor=MelFeatures(n_mels=8))
    summary = Preprocessor(out, build_steps(CONFIG), writer, config=CONFIG).run(videos)
    assert summary == {"videos": 4, "skipped": 0, "clips_written": 2, "clips_rejected": 3}
    merge_shards(out)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(SYNTHETIC_KEYS <= row.keys() for row in rows)
    row = rows[0]
    assert row["identity_seed"] is None and row["fps"] == 30 and row["size"] == RESOLUTION
    assert row["source"] == {"path": "two_scenes.mp4", "start_frame": 0, "end_frame": FRAMES}
    assert read_video(out / row["video"]).shape == (FRAMES, RESOLUTION, RESOLUTION, 3)
    audio, rate = sf.read(out / row["audio"])
    assert rate == 16_000 and audio.ndim == 1 and len(audio) == FRAMES * 16_000 // 30
    assert np.load(out / row["face_embedding"]).shape == (16,)  # ThumbnailEmbedder(size=4)
    assert np.load(out / row["audio_features"]).shape == (FRAMES, 1, 8)  # per frame (f, L, C), not windowed
    labels = json.loads((out / row["labels"]).read_text())
    assert len(labels["emotion"]) == FRAMES and labels["segments"][-1]["end_frame"] == FRAMES
    assert list(read_metadata(out))[0]["video"].startswith(str(out))  # the synthetic reader accepts the rows
    rejected = {r["source"]: r["step"] for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert rejected == {"blank.mp4": "faces", "blurred.mp4": "quality", "dubbed.mp4": "lip_sync"}

    # The review list covers every clip; a "no" leaves metadata.jsonl and survives a later merge.
    decisions = read_decisions(out / "review.csv")
    assert set(decisions) == {r["id"] for r in rows}
    text = (out / "review.csv").read_text().replace(f"{rows[1]['id']},", "X,", 1)
    lines = list(csv.DictReader(text.splitlines()))
    for line in lines:
        line["id"] = rows[1]["id"] if line["id"] == "X" else line["id"]
        line["keep"] = "0" if line["id"] == rows[1]["id"] else ""
    with open(out / "review.csv", "w", newline="") as file:
        writer_csv = csv.DictWriter(file, fieldnames=lines[0].keys())
        writer_csv.writeheader()
        writer_csv.writerows(lines)
    assert apply_review(out, out / "review.csv") == (1, 1)
    assert merge_shards(out)["clips"] == 1


def test_shards_are_disjoint_and_merge_concatenates(videos, tmp_path):
    names = [f"v{i}" for i in range(7)]
    parts = [shard(names, rank, 3) for rank in range(3)]
    assert sorted(sum(parts, [])) == names and sum(map(len, parts)) == len(names)
    with pytest.raises(InputError):
        shard(names, 3, 3)

    out = tmp_path / "sharded"
    steps = build_steps(CONFIG)
    for rank in range(2):
        Preprocessor(out, steps, config=CONFIG, rank=rank).run(videos, world_size=2)
    done = [
        {json.loads(line)["source"] for line in (out / f"done.rank{rank}.jsonl").read_text().splitlines()}
        for rank in range(2)
    ]
    assert not done[0] & done[1] and done[0] | done[1] == {p.name for p in videos.glob("*.mp4")}
    ids = [json.loads(line)["id"] for rank in range(2) for line in (out / f"metadata.rank{rank}.jsonl").open()]
    assert merge_shards(out)["clips"] == len(ids) == 2
    assert [json.loads(line)["id"] for line in (out / "metadata.jsonl").open()] == ids


def test_resume_skips_done_videos_and_redoes_an_interrupted_one(videos, tmp_path):
    out = tmp_path / "resumed"
    steps = build_steps(CONFIG)
    first = Preprocessor(out, steps, config=CONFIG).run(videos)
    assert first["skipped"] == 0
    again = Preprocessor(out, steps, config=CONFIG).run(videos)
    assert again == {"videos": 4, "skipped": 4, "clips_written": 0, "clips_rejected": 0}

    # Interrupted while writing two_scenes: its rows are there, its "done" line is not.
    done = out / "done.rank0.jsonl"
    done.write_text("".join(line + "\n" for line in done.read_text().splitlines() if "two_scenes" not in line))
    resumed = Preprocessor(out, steps, config=CONFIG).run(videos)
    assert resumed["skipped"] == 3 and resumed["clips_written"] == 2
    ids = [json.loads(line)["id"] for line in (out / "metadata.rank0.jsonl").open()]
    assert len(ids) == len(set(ids)) == 2  # no duplicates
