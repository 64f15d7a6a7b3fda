"""Component weights in the official ``memoavatar/memo`` layout: read, check and write them.

The official layout is one diffusers model folder per component::

    reference_net/ diffusion_net/ image_proj/ audio_proj/           config.json + diffusion_pytorch_model.safetensors
    misc/audio_emotion_classifier/                                  (same; optional)

Our classes keep the official parameter names and ``config.json`` argument names, so no key map is needed: a
folder written by the official code or by ``save_pretrained`` loads as is. Loading is strict: any missing,
unexpected or mis-shaped tensor is reported by name. Only safetensors files are read.

This is what training and the weight tools need; it imports only the networks (``memo_model.models``).
``loading.py`` builds a whole pipeline on top of it.
"""

import inspect
import json
import logging
from pathlib import Path

import torch
from diffusers.models.modeling_utils import ModelMixin
from safetensors.torch import load_file

from memo_model.models.presets import COMPONENT_CLASSES

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
MANIFEST_NAME = "memo_studio.json"  # our addition to the official layout: how to build the non-UNet parts (loading.py)
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
