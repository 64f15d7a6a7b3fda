"""Loading MEMO weights: a folder in the official ``memoavatar/memo`` layout -> our components.

The official layout is one diffusers model folder per component::

    reference_net/ diffusion_net/ image_proj/ audio_proj/           config.json + diffusion_pytorch_model.safetensors
    misc/audio_emotion_classifier/                                  (same; optional)

Our classes keep the official parameter names and ``config.json`` argument names, so no key map is needed: a
folder written by the official code or by ``save_pretrained`` loads as is. Loading is strict: any missing,
unexpected or mis-shaped tensor is reported by name. Only safetensors files are read.
"""

import inspect
import json
import logging
from pathlib import Path

import torch
from diffusers.models.modeling_utils import ModelMixin
from safetensors.torch import load_file

from memo_model.errors import SetupError
from memo_model.models.presets import COMPONENT_CLASSES

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
REQUIRED_COMPONENTS = ("reference_net", "diffusion_net", "image_proj", "audio_proj")
OPTIONAL_COMPONENTS = ("misc/audio_emotion_classifier",)

# Official config keys that our constructors do not take because only one value is supported; any other value
# would silently change the network, so it is refused.
_FIXED_CONFIG_VALUES = {
    "dual_cross_attention": (False, None),
    "only_cross_attention": (False, None),
    "upcast_attention": (False, None),
    "class_embed_type": (None,),
    "num_class_embeds": (None,),
    "addition_embed_type": (None,),
    "resnet_time_scale_shift": ("default", None),
    "unet_use_cross_frame_attention": (False, None),
    "unet_use_temporal_attention": (False, None),
    "conv_in_kernel": (3, None),
    "conv_out_kernel": (3, None),
    "dropout": (0.0, 0, None),
}

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A weights folder that does not match the architecture; the message lists what is wrong."""


def component_key(subfolder: str) -> str:
    """``misc/audio_emotion_classifier`` -> ``audio_emotion_classifier``."""
    return subfolder.rsplit("/", 1)[-1]


def _read_config(folder: Path, cls: type[ModelMixin]) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no config.json; is it a component folder of the official layout?")
    config = json.loads(config_path.read_text())
    for key, allowed in _FIXED_CONFIG_VALUES.items():
        if key in config and config[key] not in allowed:
            raise CheckpointError(f"{config_path} sets {key}={config[key]!r}, which MEMO's architecture does not use.")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    ignored = sorted(k for k in config if k not in accepted and not k.startswith("_"))
    if ignored:
        logger.debug("%s: ignoring config keys %s", config_path, ", ".join(ignored))
    return {k: v for k, v in config.items() if k in accepted}  # diffusers would warn about every extra key


def check_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Raise ``CheckpointError`` naming every missing, unexpected and mis-shaped tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"The weights in {where} do not match {type(model).__name__}:"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            shown = "\n    ".join(items[:20]) + (f"\n    ... and {len(items) - 20} more" if len(items) > 20 else "")
            lines.append(f"  {len(items)} {title}:\n    {shown}")
    raise CheckpointError("\n".join(lines))


def load_component(
    folder: str | Path, subfolder: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> ModelMixin:
    """Load one component (e.g. ``"diffusion_net"``) from a folder in the official layout, strictly."""
    if subfolder not in COMPONENT_CLASSES:
        raise ValueError(f"Unknown component {subfolder!r}; choose one of {sorted(COMPONENT_CLASSES)}.")
    cls = COMPONENT_CLASSES[subfolder]
    path = Path(folder) / subfolder
    config = _read_config(path, cls)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        others = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
        hint = f" Found {', '.join(others)}: only safetensors are loaded (convert them first)." if others else ""
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}.{hint}")
    with torch.device("meta"):
        model = cls.from_config(config)
    state_dict = load_file(weights, device=str(device))
    check_state_dict(model, state_dict, str(weights))
    state_dict = {
        name: tensor.to(dtype) if tensor.is_floating_point() else tensor for name, tensor in state_dict.items()
    }
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval()


def load_components(
    folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> dict[str, ModelMixin]:
    """Load every component of a folder in the official layout.

    Returns ``{"reference_net", "diffusion_net", "image_proj", "audio_proj"}`` models, plus
    ``"audio_emotion_classifier"`` when ``misc/audio_emotion_classifier`` is present.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Weights folder {folder} does not exist.")
    absent = [name for name in REQUIRED_COMPONENTS if not (folder / name).is_dir()]
    if absent:
        raise CheckpointError(
            f"{folder} is not a MEMO weights folder: it lacks {', '.join(name + '/' for name in absent)} "
            f"(the official memoavatar/memo layout has {', '.join(name + '/' for name in REQUIRED_COMPONENTS)})."
        )
    subfolders = list(REQUIRED_COMPONENTS) + [name for name in OPTIONAL_COMPONENTS if (folder / name).is_dir()]
    return {component_key(name): load_component(folder, name, dtype, device) for name in subfolders}


def save_components(components: dict[str, ModelMixin], folder: str | Path) -> None:
    """Write components in the official layout (``audio_emotion_classifier`` goes under ``misc/``)."""
    folder = Path(folder)
    for key, model in components.items():
        subfolder = next((name for name in COMPONENT_CLASSES if component_key(name) == key), None)
        if subfolder is None:
            raise ValueError(f"Unknown component {key!r}.")
        model.save_pretrained(folder / subfolder, safe_serialization=True)


def export_weights(
    source: str | Path, target: str | Path, dtype: torch.dtype = torch.float16, networks_only: bool = True
) -> list[str]:
    """Write the networks of ``source`` into ``target`` (official layout) in ``dtype``, plus its manifest.

    How MEMO-Tiny is bundled: the trained networks in fp16 (half the size; the pipeline loads them back in its own
    dtype) next to the VAE and emotion head already in ``target``. ``networks_only`` leaves
    ``misc/audio_emotion_classifier`` alone (trained separately, kept in fp32). Returns the components written.
    """
    source, target = Path(source), Path(target)
    components = load_components(source)
    if networks_only:
        components.pop("audio_emotion_classifier", None)
    save_components({name: model.to(dtype) for name, model in components.items()}, target)
    if (source / MANIFEST_NAME).is_file():
        manifest = json.loads((source / MANIFEST_NAME).read_text())
        (target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return sorted(components)


# --- whole pipelines ----------------------------------------------------------------------------------------

MANIFEST_NAME = "memo_studio.json"  # our addition to the official layout: how to build the non-UNet parts
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
