"""Loading a MEMO pipeline: a weights folder (``weights.py``) + its manifest -> a ready ``MemoPipeline``.

A folder in the official layout, the bundled MEMO-Tiny or a hub id; our folders carry a ``memo_studio.json``
manifest that says how to build the parts outside the official checkpoint (VAE, audio features, identity, emotion
detection), and a folder without one (the official checkpoint) gets the official choices.
"""

import json
from pathlib import Path

import torch

from memo_model.errors import SetupError
from memo_model.weights import MANIFEST_NAME, CheckpointError, load_components

OFFICIAL_REPO = "memoavatar/memo"
OFFICIAL_VAE = "stabilityai/sd-vae-ft-mse"
OFFICIAL_EMOTION2VEC = "iic/emotion2vec_plus_large"
BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "memo-tiny"

# What a folder without a manifest (the official checkpoint) is built with; paths may be overridden by arguments.
OFFICIAL_MANIFEST = {
    "name": "MEMO (official)",
    "resolution": 512,
    "fps": 30,
    "vae": OFFICIAL_VAE,
    "audio_features": {"kind": "wav2vec2", "model": "facebook/wav2vec2-base-960h"},
    "identity": {"kind": "insightface", "folder": "misc/face_analysis"},
    "emotion": {"kind": "emotion2vec", "model": OFFICIAL_EMOTION2VEC},
    "vocal_separation": {"model": "misc/vocal_separator/Kim_Vocal_2.onnx"},
}


def resolve_weights(weights: str | Path | None) -> tuple[Path, str]:
    """A local folder, the bundled model (``None``) or a hub id -> (local folder, source description)."""
    if weights is None:
        if not (BUNDLED_WEIGHTS / MANIFEST_NAME).is_file():
            raise SetupError(
                "The bundled MEMO-Tiny model is not in this checkout yet (assets/memo-tiny/). Pass --weights with a "
                f"folder in the official layout, or the hub id {OFFICIAL_REPO} on a machine with internet."
            )
        return BUNDLED_WEIGHTS, "bundled"
    path = Path(weights).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SetupError(f"--weights must be a folder; {path} is a file.")
        return path, str(path)
    if str(weights).count("/") != 1 or str(weights).startswith((".", "/", "~")):
        raise SetupError(f"Weights folder {weights} does not exist (and it is not a hub id like {OFFICIAL_REPO}).")
    return download_snapshot(str(weights)), str(weights)


def download_snapshot(repo_id: str) -> Path:
    """Fetch a hub repository with huggingface_hub (cached copies first); offline -> a message that says what to do."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    try:
        return Path(snapshot_download(repo_id, etag_timeout=10))
    except Exception as error:  # noqa: BLE001 - every failure means the same thing to the user
        raise SetupError(
            f"Could not download {repo_id} from the Hugging Face Hub ({type(error).__name__}). This machine may be "
            f"offline. On a machine with internet run `hf download {repo_id} --local-dir WEIGHTS`, "
            "copy WEIGHTS here and pass its path instead of the hub id."
        ) from None


def read_manifest(folder: Path) -> dict:
    """Our manifest when the folder has one, else the official defaults."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return json.loads(json.dumps(OFFICIAL_MANIFEST))
    return json.loads(path.read_text())


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(device: torch.device, dtype: torch.dtype | None = None) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU (half precision is 100x slower there)."""
    if dtype is not None:
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def _local_or_hub(value: str | Path, base: Path) -> Path:
    """A path relative to the weights folder, an absolute path, or a hub id (downloaded)."""
    for candidate in (base / str(value), Path(str(value)).expanduser()):
        if candidate.exists():
            return candidate
    return download_snapshot(str(value))


def build_audio_features(spec: dict, base: Path, wav2vec2: str | Path | None, device: torch.device):
    from memo_model.audio.features import MelFeatures, Wav2Vec2Features

    params = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "mel":
        return MelFeatures(**params)
    if spec["kind"] == "wav2vec2":
        source = wav2vec2 or params.pop("model")
        path = Path(str(source)).expanduser()
        local = base / str(source) if (base / str(source)).exists() else path
        return Wav2Vec2Features(local if local.exists() else str(source), device=device)
    raise CheckpointError(f"Unknown audio feature kind {spec['kind']!r} in {MANIFEST_NAME}.")


def build_identity_embedder(spec: dict, base: Path, face_analysis: str | Path | None):
    from memo_model.vision.face import InsightFaceEmbedder, ThumbnailEmbedder

    if spec["kind"] == "thumbnail":
        return ThumbnailEmbedder(size=spec["size"])
    if spec["kind"] == "insightface":
        return InsightFaceEmbedder(face_analysis or base / spec["folder"])
    raise CheckpointError(f"Unknown identity kind {spec['kind']!r} in {MANIFEST_NAME}.")


def build_emotion_detector(spec: dict | None, base: Path, classifier, emotion2vec: str | Path | None, device):
    from functools import partial

    from memo_model.audio.emotion import ClassifierHeadDetector, Emotion2VecDetector, log_mel_statistics

    if spec is None or classifier is None:
        return None
    if spec["kind"] == "classifier_head":
        return ClassifierHeadDetector(partial(log_mel_statistics, n_mels=spec["n_mels"]), classifier)
    if spec["kind"] == "emotion2vec":
        folder = emotion2vec or spec["model"]
        return Emotion2VecDetector(folder, classifier, device=str(device))
    raise CheckpointError(f"Unknown emotion detector kind {spec['kind']!r} in {MANIFEST_NAME}.")


def load_pipeline(
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    vae: str | Path | None = None,
    wav2vec2: str | Path | None = None,
    emotion2vec: str | Path | None = None,
    face_analysis: str | Path | None = None,
    options=None,
):
    """A ready ``MemoPipeline``.

    ``weights``: ``None`` = the bundled MEMO-Tiny; a folder in the official layout (ours carry a
    ``memo_studio.json`` that says how to build the VAE, audio features, identity and emotion parts; the official
    checkpoint has none and gets the official choices); or a hub id such as ``memoavatar/memo``, downloaded with
    huggingface_hub. ``vae`` / ``wav2vec2`` / ``emotion2vec`` / ``face_analysis`` override where those parts come
    from (the official checkpoint needs them: its VAE and wav2vec2 live in their own hub repositories).
    ``options``: a ``SpeedOptions`` (pipelines/speed.py: CPU offload, torch.compile, channels-last, ...).
    """
    from diffusers import AutoencoderKL

    from memo_model.pipelines.pipeline_memo import MemoPipeline, ModelInfo
    from memo_model.pipelines.request import OFFICIAL_GUIDANCE, OFFICIAL_STEPS, PREVIEW_STEPS

    folder, source = resolve_weights(weights)
    manifest = read_manifest(folder)
    device = choose_device(device)
    dtype = choose_dtype(device, dtype)
    offload = options is not None and options.cpu_offload  # then the large parts wait in CPU memory
    components = load_components(folder, dtype=dtype, device="cpu" if offload else device)
    vae_model = AutoencoderKL.from_pretrained(_local_or_hub(vae or manifest["vae"], folder), torch_dtype=dtype)
    classifier = components.get("audio_emotion_classifier")  # runs on the CPU in fp32, like the official one
    notes = [manifest.get("notes", "")]
    try:
        detector = build_emotion_detector(
            manifest.get("emotion"),
            folder,
            None if classifier is None else classifier.float().cpu(),
            emotion2vec,
            device,
        )
    except SetupError as error:  # generation still works with emotions chosen by hand
        detector = None
        notes.append(f"Emotion detection is unavailable: {error}")
    separator = None
    if manifest.get("vocal_separation"):
        from memo_model.audio.separation import VocalSeparator

        try:
            separator = VocalSeparator(folder / manifest["vocal_separation"]["model"])
        except SetupError as error:  # the features then come from the full mix, unlike the official code
            notes.append(f"Vocal separation is off (audio features use the full mix): {error}")
    pipeline = MemoPipeline(
        vae=vae_model,
        reference_net=components["reference_net"],
        diffusion_net=components["diffusion_net"],
        image_proj=components["image_proj"],
        audio_proj=components["audio_proj"],
        audio_features=build_audio_features(manifest["audio_features"], folder, wav2vec2, device),
        identity_embedder=build_identity_embedder(manifest["identity"], folder, face_analysis),
        emotion_detector=detector,
        vocal_separator=separator,
        model_info=ModelInfo(
            name=manifest["name"],
            source=source,
            resolution=manifest["resolution"],
            fps=manifest.get("fps", 30),
            notes=" ".join(note for note in notes if note),
            default_guidance=float(manifest.get("default_guidance", OFFICIAL_GUIDANCE)),
            default_steps=int(manifest.get("default_steps", OFFICIAL_STEPS)),
            preview_steps=int(manifest.get("preview_steps", PREVIEW_STEPS)),
        ),
        device=device,
        dtype=dtype,
        options=options,
    )
    return pipeline
