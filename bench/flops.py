"""FLOPs and peak memory per generated frame at 512², 20 steps: our pipeline (A) against the official inference (B).

Counted, not timed. The networks are built on PyTorch's ``meta`` device (shapes only: no weights, no arithmetic),
and every distinct call a 16-frame clip makes is run once under ``torch.utils.flop_counter.FlopCounterMode`` and
``LiveBytes``, a dispatch mode that tracks the bytes of the tensors a call allocates and that are still alive.
Each pipeline's FLOPs are then the calls times how often its clip loop makes them:

(A) ours, ``MemoPipeline.run_clips`` with the official settings (one scale 3.5 = 2 passes, 16 past frames):
    reference net on the 16 past frames once per clip for each of the 2 face conditions (the portrait's own
    features once per video; clip 0 runs none), the memory write once per clip, 19 denoiser calls at batch 2 (the
    last step, σ 0.001 → 0, reuses the previous velocity: ``speed.skips_denoiser``), VAE decode of the 16 frames
    and encode of the 16 new past frames in batches of 8 (the portrait encoded once; the last clip decodes only the
    frames kept and encodes nothing), the audio projection per clip, the image projection twice per video.
(B) the official inference script (docs/CHECKPOINT.md §1.5-1.6): reference net every clip on 2 × 17 frames
    ([reference, 16 past frames] for each pass), 20 denoiser calls at batch 2 whose spatial attention computes
    the reference attention for all 32 rows and then self-attention again for the 16 unconditional rows
    (``uc_mask``, §2.3.1), the memory written once per clip (clip 0: at every step, §2.3.2), VAE decode of the 16
    frames one at a time, VAE encode of the 17-frame reference stack one frame at a time, the audio projection
    per clip, the image projection twice per clip.

What is counted: FlopCounterMode counts matrix products (linear layers, convolutions, bmm/einsum, attention), 2
FLOPs per multiply-add; elementwise work (norms, softmax outside attention, activations, the scheduler step and
the guidance combination) is not counted. Attention is counted as one fused kernel (flash / memory-efficient, as
xformers in the official run): 4·n·m·d per head, no n × m score matrix in memory. wav2vec2, emotion2vec and the
face analysis run once per video outside the clip loop and are left out.

Memory, per component call, bf16 (the official weight dtype): weights + the inputs it reads (unique storages)
+ the most bytes of tensors it allocates alive at one time (``LiveBytes``: every op's outputs are registered by
storage and dropped when the storage is freed; so it is what a caching allocator would need without
fragmentation or workspace).

    python -m bench.flops                                # official networks, 512², 20 steps: bench/results/flops.json
    python -m bench.flops --preset tiny --resolution 16  # the tiny test preset
"""

import argparse
import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench.results_file import record_run
from memo_model.models.blocks import SpatialTransformerBlock
from memo_model.models.diffusion_net import DiffusionNet
from memo_model.models.memory_temporal import TemporalMemory
from memo_model.models.presets import build_component
from memo_model.models.reference_net import ReferenceFeatures, ReferenceNet
from memo_model.pipelines.guidance import official_reference_rows
from memo_model.pipelines.pipeline_memo import DECODE_BATCH
from memo_model.pipelines.request import CLIP_FRAMES, OFFICIAL_STEPS
from memo_model.pipelines.speed import SpeedOptions, denoiser_calls

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "flops.json"
FPS = 30
META = torch.device("meta")
DTYPE = torch.bfloat16  # the official inference's weight dtype (docs/CHECKPOINT.md §1.8)
PASSES = 2  # the official single guidance scale: unconditional + full, batched

# stabilityai/sd-vae-ft-mse is SD's VAE; the tiny one only keeps the test fast.
VAE_CONFIGS: dict[str, dict] = {
    "official": {
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
    },
    "tiny": {
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 16,
    },
}

COMPONENTS = (
    "reference net",
    "memory write",
    "denoiser",
    "VAE decode",
    "VAE encode",
    "audio projection",
    "image projection",
)


@dataclass(frozen=True)
class Gpu:
    """A GPU's dense bf16 tensor throughput and the official README's speed on it."""

    name: str
    flops: float  # dense bf16 tensor FLOP/s
    note: str
    official_seconds_per_frame: float  # the official README's figure (512², 20 steps)


GPUS = (
    Gpu("H100", 989e12, "H100 SXM, bf16 dense tensor cores", 1.0),
    Gpu("RTX 4090", 165.2e12, "bf16 dense, fp32 accumulate (Ada whitepaper; fp16 with fp16 accumulate: 330)", 2.0),
)
UTILISATION = 0.4
TARGET = 0.6  # issue 22: A <= 0.6 B


# --- counting one call ---------------------------------------------------------------------------------------


def storage_key(tensor: torch.Tensor) -> int:
    """An id of the storage behind ``tensor`` (views share it)."""
    return StorageWeakRef(tensor.untyped_storage()).cdata


def tensors_of(*objects: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside tensors, dataclasses (ReferenceFeatures, TemporalMemory, ...), tuples, lists and dicts."""
    for obj in objects:
        if isinstance(obj, torch.Tensor):
            yield obj
        elif is_dataclass(obj) and not isinstance(obj, type):
            yield from tensors_of(*(getattr(obj, f.name) for f in fields(obj)))
        elif isinstance(obj, list | tuple):
            yield from tensors_of(*obj)
        elif isinstance(obj, dict):
            yield from tensors_of(*obj.values())


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (an expanded view counts once, at its storage's size)."""
    sizes = {storage_key(t): t.untyped_storage().nbytes() for t in tensors}
    return sum(sizes.values())


class LiveBytes(TorchDispatchMode):
    """The most bytes of tensor storages allocated under this mode alive at one time (``peak``).

    Every op's output storages are registered and dropped once freed (checked before each op). Storages that exist
    already (``external``: weights, inputs) are never counted, nor are outputs that are views of them.
    """

    def __init__(self, external: Iterable[torch.Tensor] = ()):
        super().__init__()
        self.external = {storage_key(t) for t in external}
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._drop_freed()
        out = func(*args, **(kwargs or {}))
        for tensor in pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._register(tensor)
        self.peak = max(self.peak, self.current)
        return out

    def _register(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        reference = StorageWeakRef(storage)
        if reference.cdata in self.external or reference.cdata in self.live:
            return
        self.live[reference.cdata] = (reference, storage.nbytes())
        self.current += storage.nbytes()

    def _drop_freed(self) -> None:
        for key in [key for key, (reference, _) in self.live.items() if reference.expired()]:
            self.current -= self.live.pop(key)[1]


def fused_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """``F.scaled_dot_product_attention`` as one memory-efficient kernel (the official run uses xformers).

    On meta, SDPA would take its math path and materialise the n × m scores; the fused op has the same FLOPs in
    FlopCounterMode's registry and the memory of a GPU kernel."""
    out = torch.ops.aten._scaled_dot_product_efficient_attention(
        query, key, value, attn_mask, False, dropout_p, is_causal, scale=scale
    )
    return out[0]


@dataclass(frozen=True)
class Call:
    """One call of the clip loop, counted on meta."""

    flops: int
    weight_bytes: int  # parameters and buffers of the module the call needs resident
    input_bytes: int  # tensors it reads that exist before it (unique storages, weights excluded)
    activation_bytes: int  # the most bytes of tensors it allocates alive at one time (its output included)
    frames: int = 1  # frames it processes, for calls counted per frame (the VAE)
    parts: dict[str, int] = field(default_factory=dict)  # FLOPs by kind of module (the denoiser)

    @property
    def peak_bytes(self) -> int:
        """Weights + inputs + activations: what the call needs resident at its peak."""
        return self.weight_bytes + self.input_bytes + self.activation_bytes

    def flops_for(self, frames: int) -> int:
        """FLOPs of ``frames`` frames at this call's cost per frame (the VAE's FLOPs are linear in the batch)."""
        return self.flops * frames // self.frames


def measure(
    module: nn.Module, function: Callable[[], Any], inputs: Iterable[Any], frames: int = 1
) -> tuple[Call, Any]:
    """Run ``function`` (a call of ``module``) on meta under the counters; returns (``Call``, its output)."""
    weights = [*module.parameters(), *module.buffers()]
    inputs = list(tensors_of(*inputs))
    tracker = LiveBytes(external=[*weights, *inputs])
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), mock.patch.object(F, "scaled_dot_product_attention", fused_attention), counter, tracker:
        output = function()
    call = Call(
        flops=counter.get_total_flops(),
        weight_bytes=tensor_bytes(weights),
        input_bytes=tensor_bytes(inputs),
        activation_bytes=tracker.peak,
        frames=frames,
        parts=denoiser_parts(counter.get_flop_counts()) if isinstance(module, DiffusionNet) else {},
    )
    return call, output


DENOISER_PARTS = (
    ("reference/self attention (attn1)", r"\.attentions\.\d+\.transformer_blocks\.0\.attn1$"),
    ("face cross-attention (attn2)", r"\.attentions\.\d+\.transformer_blocks\.0\.attn2$"),
    ("spatial transformers, rest", r"\.attentions\.\d+$"),
    ("audio modules", r"\.audio_modules\.\d+$"),
    ("temporal modules", r"\.motion_modules\.\d+$"),
    ("resnets", r"\.resnets\.\d+$"),
)


def denoiser_parts(counts: dict[str, dict[Any, int]]) -> dict[str, int]:
    """FLOPs by kind of module from FlopCounterMode's per-module counts (a module's count includes its children)."""
    totals = {name: sum(ops.values()) for name, ops in counts.items()}
    parts = {
        part: sum(flops for name, flops in totals.items() if re.search(pattern, name))
        for part, pattern in DENOISER_PARTS
    }
    parts["spatial transformers, rest"] -= parts["reference/self attention (attn1)"]
    parts["spatial transformers, rest"] -= parts["face cross-attention (attn2)"]
    parts["other (conv in/out, down/upsamplers, time embedding)"] = totals.get("Global", 0) - sum(parts.values())
    return parts


# --- the networks and one clip's inputs on meta ----------------------------------------------------------------


COMPONENT_NAMES = ("reference_net", "diffusion_net", "image_proj", "audio_proj")


@dataclass
class Networks:
    """The five networks of one clip loop."""

    vae: AutoencoderKL
    reference_net: ReferenceNet
    diffusion_net: DiffusionNet
    image_proj: nn.Module
    audio_proj: nn.Module

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def to_dtype(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast every parameter and buffer (plain ``nn.Module.to``: ModelMixin's ``to`` warns about modules to keep in
    fp32, and these have none)."""
    return nn.Module.to(module, dtype=dtype).eval()


def build_networks(preset: str = "official", dtype: torch.dtype = DTYPE) -> Networks:
    """The five networks of ``preset`` on meta (no memory), the VAE SD's (``official``) or a small one (``tiny``)."""
    with META:
        vae = AutoencoderKL(**VAE_CONFIGS["official" if preset == "official" else "tiny"])
    parts = {name: build_component(preset, name, device=META) for name in COMPONENT_NAMES}
    return Networks(**{name: to_dtype(module, dtype) for name, module in {"vae": vae, **parts}.items()})


def weight_bytes(networks: Networks) -> int:
    """Bytes of every network's parameters and buffers: all of them resident at once."""
    modules = (networks.vae, networks.reference_net, networks.diffusion_net, networks.image_proj, networks.audio_proj)
    return tensor_bytes(t for module in modules for t in (*module.parameters(), *module.buffers()))


@dataclass(frozen=True)
class ClipInputs:
    """Meta tensors of one clip's calls for ``passes`` guidance passes (0 unconditional, 1 full when 2)."""

    passes: int
    faces: torch.Tensor  # (passes, m, c)
    stacks: ReferenceFeatures  # (passes, 1 + p, ...): features of [reference, past frames]
    memory: TemporalMemory  # (passes): the memory carried from earlier clips
    audio_tokens: torch.Tensor  # (passes, f, m, c)
    sample: torch.Tensor  # (passes, c, f, h, w): one latent expanded over the passes
    emotion: torch.Tensor  # (passes,)


def empty(*shape: int, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """A meta tensor: a shape and a dtype, no memory."""
    return torch.empty(shape, device=META, dtype=dtype)


def latents(networks: Networks, resolution: int, frames: int, batch: int = 1) -> torch.Tensor:
    """(batch, c, frames, h, w) meta latents of ``resolution`` pixels."""
    size = resolution // networks.latent_factor
    return empty(batch, networks.vae.config.latent_channels, frames, size, size)


@torch.no_grad()
def clip_inputs(
    networks: Networks, resolution: int, past_frames: int = CLIP_FRAMES, passes: int = PASSES
) -> ClipInputs:
    """Inputs of the memory write and the denoiser, computed on meta (not counted)."""
    image, audio = networks.image_proj.config, networks.audio_proj.config
    faces = networks.image_proj(empty(1, image.clip_embeddings_dim)).expand(passes, -1, -1)
    stacks = networks.reference_net(latents(networks, resolution, 1 + past_frames, passes), faces)
    features = empty(1, CLIP_FRAMES, audio.seq_len, audio.blocks, audio.channels)
    return ClipInputs(
        passes=passes,
        faces=faces,
        stacks=stacks,
        memory=networks.diffusion_net.write_memory(stacks),
        audio_tokens=networks.audio_proj(features).expand(passes, -1, -1, -1),
        sample=latents(networks, resolution, CLIP_FRAMES).expand(passes, -1, -1, -1, -1),
        emotion=torch.zeros(passes, dtype=torch.long, device=META),
    )


# --- the calls -------------------------------------------------------------------------------------------------


def official_reference_attention(self, norm_x, reference, use_reference):
    """The official ``TemporalBasicTransformerBlock`` attn1: every row attends to [own tokens; reference], then the
    ``uc_mask`` rows (unconditional pass) are computed again from their own tokens alone (docs/CHECKPOINT.md
    §2.3.1). Ours computes each row once (``SpatialTransformerBlock.reference_attention``)."""
    out = self.attn1(norm_x, encoder_hidden_states=torch.cat([norm_x, reference], dim=1))
    if use_reference is not None and not bool(use_reference.all()):
        drop = ~use_reference
        out[drop] = self.attn1(norm_x[drop])
    return out


def count_denoiser(networks: Networks, inputs: ClipInputs, use_reference: list[bool], official: bool) -> Call:
    """One denoiser call on the clip's passes; ``official``: the official attention (``uc_mask``) and row tiling."""
    net = networks.diffusion_net
    use = torch.tensor(use_reference)  # CPU masks index meta tensors; meta masks would need nonzero()
    rows = official_reference_rows(inputs.passes, CLIP_FRAMES) if official else None
    patch = (
        mock.patch.object(SpatialTransformerBlock, "reference_attention", official_reference_attention)
        if official
        else contextlib.nullcontext()
    )
    args = (inputs.sample, inputs.stacks, inputs.faces, inputs.audio_tokens, inputs.emotion, inputs.memory)
    with patch:
        call, _ = measure(
            net,
            lambda: net(
                inputs.sample,
                torch.tensor(500.0),
                inputs.stacks,
                inputs.faces,
                inputs.audio_tokens,
                inputs.emotion,
                memory=inputs.memory,
                use_reference=use,
                reference_rows=rows,
            ),
            args,
        )
    return call


def count_official_memory_write(networks: Networks, inputs: ClipInputs) -> Call:
    """The official memory write: each temporal layer's processor replaces its own state as soon as it has written
    it (docs/CHECKPOINT.md §2.3.2), so beside the old memory only one layer's new state is alive at a time. Ours
    (``DiffusionNet.write_memory``) returns a whole new memory while the caller still holds the old one. Same FLOPs.
    """
    net = networks.diffusion_net
    decay = inputs.memory.decay  # a carried memory keeps the γ it was written with
    layers = [
        measure(
            net,
            lambda k=k, module=module: module.write(inputs.stacks.past_frames(k), inputs.memory.layers[k], decay),
            [inputs.stacks, inputs.memory],
        )[0]
        for k, module in net._motion_modules_by_position().items()
    ]
    return Call(
        flops=sum(layer.flops for layer in layers),
        weight_bytes=layers[0].weight_bytes,
        input_bytes=layers[0].input_bytes,
        activation_bytes=max(layer.activation_bytes for layer in layers),
    )


def count_vae(networks: Networks, resolution: int, frames: int, decode: bool) -> Call:
    """VAE decode of ``frames`` latents or encode of ``frames`` frames (posterior mean) in one call."""
    vae = networks.vae
    if decode:
        z = latents(networks, resolution, 1, frames)[:, :, 0]
        return measure(vae, lambda: vae.decode(z).sample, [z], frames)[0]
    pixels = empty(frames, 3, resolution, resolution)
    return measure(vae, lambda: vae.encode(pixels).latent_dist.mean, [pixels], frames)[0]


def count_calls(networks: Networks, resolution: int, past_frames: int = CLIP_FRAMES) -> dict[str, Call]:
    """Every distinct call of both clip loops at ``resolution``, with the official 2 guidance passes."""
    ref, net = networks.reference_net, networks.diffusion_net
    inputs = clip_inputs(networks, resolution, past_frames)
    image, audio = networks.image_proj.config, networks.audio_proj.config
    embedding = empty(1, image.clip_embeddings_dim)
    features = empty(1, CLIP_FRAMES, audio.seq_len, audio.blocks, audio.channels)
    calls = {
        "image_proj": measure(networks.image_proj, lambda: networks.image_proj(embedding), [embedding])[0],
        "audio_proj": measure(networks.audio_proj, lambda: networks.audio_proj(features), [features])[0],
    }
    for name, frames in (("reference_net_portrait", 1), ("reference_net_past", past_frames)):
        stack = latents(networks, resolution, frames, PASSES)
        calls[name] = measure(ref, lambda stack=stack: ref(stack, inputs.faces), [stack, inputs.faces])[0]
    stack = latents(networks, resolution, 1 + past_frames, PASSES)
    calls["reference_net_official"] = measure(ref, lambda: ref(stack, inputs.faces), [stack, inputs.faces])[0]
    calls["memory_write"] = measure(
        net, lambda: net.write_memory(inputs.stacks, inputs.memory), [inputs.stacks, inputs.memory]
    )[0]
    calls["memory_write_official"] = count_official_memory_write(networks, inputs)
    use_reference = [False, True]  # pass 0 unconditional: no reference image
    calls["denoiser_ours"] = count_denoiser(networks, inputs, use_reference, official=False)
    calls["denoiser_official"] = count_denoiser(networks, inputs, use_reference, official=True)
    calls["vae_decode_ours"] = count_vae(networks, resolution, DECODE_BATCH, decode=True)
    calls["vae_decode_official"] = count_vae(networks, resolution, 1, decode=True)
    calls["vae_encode_ours"] = count_vae(networks, resolution, DECODE_BATCH, decode=False)
    calls["vae_encode_official"] = count_vae(networks, resolution, 1, decode=False)
    return calls


# --- the two clip loops --------------------------------------------------------------------------------------


def ours_clip(calls: dict[str, Call], steps: int, past_frames: int = CLIP_FRAMES) -> dict[str, int]:
    """FLOPs of one steady-state clip of ours (a clip t > 0 that is not the last), by component."""
    return {
        "reference net": calls["reference_net_past"].flops,
        "memory write": calls["memory_write"].flops,
        "denoiser": denoiser_calls(steps, SpeedOptions()) * calls["denoiser_ours"].flops,
        "VAE decode": calls["vae_decode_ours"].flops_for(CLIP_FRAMES),
        "VAE encode": calls["vae_encode_ours"].flops_for(past_frames),
        "audio projection": calls["audio_proj"].flops,
        "image projection": 0,
    }


def official_clip(calls: dict[str, Call], steps: int, past_frames: int = CLIP_FRAMES) -> dict[str, int]:
    """FLOPs of one steady-state clip (t > 0) of the official inference, by component."""
    return {
        "reference net": calls["reference_net_official"].flops,
        "memory write": calls["memory_write_official"].flops,
        "denoiser": steps * calls["denoiser_official"].flops,
        "VAE decode": calls["vae_decode_official"].flops_for(CLIP_FRAMES),
        "VAE encode": calls["vae_encode_official"].flops_for(1 + past_frames),
        "audio projection": calls["audio_proj"].flops,
        "image projection": 2 * calls["image_proj"].flops,
    }


def num_clips(frames: int) -> int:
    """Clips of 16 frames a video of ``frames`` frames needs (both loops pad the last one)."""
    return math.ceil(frames / CLIP_FRAMES)


def ours_video(calls: dict[str, Call], steps: int, frames: int, past_frames: int = CLIP_FRAMES) -> dict[str, int]:
    """FLOPs of a whole video of ``frames`` frames of ours: the portrait once, clip 0 without the reference net, the
    last clip decoding only the frames kept and encoding nothing."""
    clips = num_clips(frames)
    return {
        "reference net": calls["reference_net_portrait"].flops + (clips - 1) * calls["reference_net_past"].flops,
        "memory write": clips * calls["memory_write"].flops,
        "denoiser": clips * denoiser_calls(steps, SpeedOptions()) * calls["denoiser_ours"].flops,
        "VAE decode": calls["vae_decode_ours"].flops_for(frames),
        "VAE encode": calls["vae_encode_ours"].flops_for(1 + (clips - 1) * past_frames),
        "audio projection": clips * calls["audio_proj"].flops,
        "image projection": 2 * calls["image_proj"].flops,
    }


def official_video(calls: dict[str, Call], steps: int, frames: int, past_frames: int = CLIP_FRAMES) -> dict[str, int]:
    """FLOPs of a whole video of the official inference: whole clips (the audio is padded), clip 0 writing its
    memory at every step (``is_new_audio``), every clip re-encoding its 17-frame stack."""
    clips = num_clips(frames)
    return {
        "reference net": clips * calls["reference_net_official"].flops,
        "memory write": (clips + steps - 1) * calls["memory_write_official"].flops,
        "denoiser": clips * steps * calls["denoiser_official"].flops,
        "VAE decode": calls["vae_decode_official"].flops_for(clips * CLIP_FRAMES),
        "VAE encode": calls["vae_encode_official"].flops_for(clips * (1 + past_frames)),
        "audio projection": clips * calls["audio_proj"].flops,
        "image projection": 2 * clips * calls["image_proj"].flops,
    }


def per_frame(flops: dict[str, int], frames: int) -> dict[str, float]:
    """FLOPs per generated frame by component, plus ``total``."""
    result = {name: value / frames for name, value in flops.items()}
    result["total"] = sum(flops.values()) / frames
    return result


def component_calls(official: bool) -> dict[str, str]:
    """The call each component makes in ours or the official loop (for its memory)."""
    side = "official" if official else "ours"
    return {
        "reference net": "reference_net_official" if official else "reference_net_past",
        "memory write": "memory_write_official" if official else "memory_write",
        "denoiser": f"denoiser_{side}",
        "VAE decode": f"vae_decode_{side}",
        "VAE encode": f"vae_encode_{side}",
        "audio projection": "audio_proj",
        "image projection": "image_proj",
    }


def component_memory(calls: dict[str, Call], official: bool) -> dict[str, int]:
    """Peak bytes of each component's call (its weights + inputs + activations), for ours or the official loop."""
    return {component: calls[name].peak_bytes for component, name in component_calls(official).items()}


def loop_peak(calls: dict[str, Call], official: bool, all_weights: int) -> int:
    """The clip loop's peak with every network resident: all weights + the largest call's inputs + activations."""
    names = component_calls(official).values()
    return all_weights + max(calls[name].input_bytes + calls[name].activation_bytes for name in names)


def denoiser_calls_for_target(calls: dict[str, Call], steps: int, frames: int, target: float = TARGET) -> int:
    """The most denoiser calls per clip (2 passes) with which ours stays within ``target`` × the official FLOPs,
    everything else as counted."""
    ours = ours_video(calls, steps, frames)
    budget = target * sum(official_video(calls, steps, frames).values()) - sum(ours.values()) + ours["denoiser"]
    return math.floor(budget / (num_clips(frames) * calls["denoiser_ours"].flops))


def gpu_seconds(flops_per_frame: float, gpu: Gpu, utilisation: float = UTILISATION) -> float:
    """Seconds per frame on ``gpu`` at ``utilisation`` of its dense bf16 peak."""
    return flops_per_frame / (gpu.flops * utilisation)


# --- the report ----------------------------------------------------------------------------------------------


def analyse(
    calls: dict[str, Call], steps: int, frames: int, all_weights: int, utilisation: float = UTILISATION
) -> dict:
    """Per-frame FLOPs of both loops (steady state and over a ``frames``-frame video), memory and GPU seconds."""
    ours = per_frame(ours_video(calls, steps, frames), frames)
    official = per_frame(official_video(calls, steps, frames), frames)
    ours_steady = per_frame(ours_clip(calls, steps), CLIP_FRAMES)
    official_steady = per_frame(official_clip(calls, steps), CLIP_FRAMES)
    return {
        "per_frame_video": {"ours": ours, "official": official},
        "per_frame_steady": {"ours": ours_steady, "official": official_steady},
        "ratio_video": ours["total"] / official["total"],
        "ratio_steady": ours_steady["total"] / official_steady["total"],
        "target_ratio": TARGET,
        "denoiser_calls_per_clip_for_target": denoiser_calls_for_target(calls, steps, frames),
        "peak_bytes": {"ours": component_memory(calls, False), "official": component_memory(calls, True)},
        "all_weight_bytes": all_weights,
        "loop_peak_bytes": {
            "ours": loop_peak(calls, False, all_weights),
            "official": loop_peak(calls, True, all_weights),
        },
        "gpu_seconds_per_frame": {
            gpu.name: {
                "flops_per_second": gpu.flops,
                "note": gpu.note,
                "utilisation": utilisation,
                "ours": gpu_seconds(ours["total"], gpu, utilisation),
                "official": gpu_seconds(official["total"], gpu, utilisation),
                "official_readme": gpu.official_seconds_per_frame,
                "utilisation_implied_by_readme": official["total"] / (gpu.flops * gpu.official_seconds_per_frame),
            }
            for gpu in GPUS
        },
        "denoiser_parts_per_call": {
            "ours": calls["denoiser_ours"].parts,
            "official": calls["denoiser_official"].parts,
        },
    }


def tflop(value: float) -> str:
    """TFLOP to 3 decimals; below a GFLOP (the projections) in GFLOP, so the small parts still show."""
    if value == 0 or value >= 1e9:
        return f"{value / 1e12:.3f}"
    return f"{value / 1e9:.2g} GFLOP"


def gigabytes(value: float) -> str:
    """Bytes as GB (10^9) to 2 decimals."""
    return f"{value / 1e9:.2f}"


def format_table(result: dict, frames: int) -> str:
    """The per-frame table as Markdown: video-amortised and steady state, the ratio, each component's peak memory."""
    video, steady, memory = result["per_frame_video"], result["per_frame_steady"], result["peak_bytes"]
    lines = [
        f"| Component | A ours, {frames}-frame video | B official, same video | A/B | A steady state | B steady state "
        "| peak memory A (GB) | peak memory B (GB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in (*COMPONENTS, "total"):
        a, b = video["ours"][name], video["official"][name]
        ratio = f"{a / b:.3f}" if b else "—"
        mem = (gigabytes(memory["ours"][name]), gigabytes(memory["official"][name])) if name != "total" else ("", "")
        label = "**total**" if name == "total" else name
        lines.append(
            f"| {label} | {tflop(a)} | {tflop(b)} | {ratio} | {tflop(steady['ours'][name])} "
            f"| {tflop(steady['official'][name])} | {mem[0]} | {mem[1]} |"
        )
    return "\n".join(lines)


def format_gpus(result: dict) -> str:
    """Seconds per frame on each GPU at the stated utilisation, next to the official README's figures."""
    lines = [
        "| GPU (peak used) | A s/frame | B s/frame | official README | utilisation the README implies for B |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in result["gpu_seconds_per_frame"].items():
        lines.append(
            f"| {name} ({row['flops_per_second'] / 1e12:.0f} TFLOP/s × {row['utilisation']:.0%}) | {row['ours']:.3f} "
            f"| {row['official']:.3f} | ~{row['official_readme']:g} | {row['utilisation_implied_by_readme']:.1%} |"
        )
    return "\n".join(lines)


def format_parts(result: dict) -> str:
    """One denoiser call's FLOPs by kind of module, ours and official."""
    parts = result["denoiser_parts_per_call"]
    total = {side: sum(values.values()) for side, values in parts.items()}
    lines = [
        "| Denoiser call (batch 2, 16 frames) | A TFLOP | share | B TFLOP | share |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in parts["ours"]:
        a, b = parts["ours"][name], parts["official"][name]
        lines.append(f"| {name} | {tflop(a)} | {a / total['ours']:.1%} | {tflop(b)} | {b / total['official']:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("official", "tiny"), default="official")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=OFFICIAL_STEPS)
    parser.add_argument(
        "--video-seconds", type=float, default=10.0, help="video length the per-video parts amortise over"
    )
    parser.add_argument("--utilisation", type=float, default=UTILISATION, help="of the GPUs' dense bf16 peak")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # meta tensors compute nothing; keep the shared CPU free

    started = time.perf_counter()
    networks = build_networks(args.preset)
    calls = count_calls(networks, args.resolution)
    frames = round(args.video_seconds * FPS)
    result = analyse(calls, args.steps, frames, weight_bytes(networks), args.utilisation)
    elapsed = time.perf_counter() - started

    entry = {
        "preset": args.preset,
        "resolution": args.resolution,
        "steps": args.steps,
        "guidance_passes": PASSES,
        "past_frames": CLIP_FRAMES,
        "video_frames": frames,
        "video_clips": num_clips(frames),
        "dtype": str(DTYPE),
        **result,
        "calls": {
            name: {
                "flops": call.flops,
                "frames": call.frames,
                "weight_bytes": call.weight_bytes,
                "input_bytes": call.input_bytes,
                "activation_bytes": call.activation_bytes,
                "peak_bytes": call.peak_bytes,
            }
            for name, call in calls.items()
        },
        "method": (
            "torch.utils.flop_counter.FlopCounterMode on meta tensors (matmul-type ops, 2 FLOPs per MAC; attention "
            "as one fused kernel); memory: weights + inputs + the peak of live bytes allocated during the call "
            "(LiveBytes dispatch mode), bf16"
        ),
        "left_out": "wav2vec2, emotion2vec, face analysis and vocal separation (once per video, outside the clip "
        "loop); elementwise ops (norms, softmax outside attention, scheduler step, guidance combination)",
        "seconds_to_count": round(elapsed, 1),
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    record_run(args.json, "flops", entry, key=lambda run: (run["preset"], run["resolution"], run["steps"]))

    print(
        f"TFLOP per generated frame, {args.preset} networks at {args.resolution}², {args.steps} steps, "
        f"{PASSES} guidance passes; video = {frames} frames ({num_clips(frames)} clips); counted in {elapsed:.0f} s"
    )
    print(format_table(result, frames))
    print(f"\nA/B: {result['ratio_video']:.3f} over the video, {result['ratio_steady']:.3f} in the steady state")
    print(
        f"Target A <= {TARGET} B: ours would need <= {result['denoiser_calls_per_clip_for_target']} denoiser calls "
        f"per clip (now {denoiser_calls(args.steps, SpeedOptions())})"
    )
    peaks = result["loop_peak_bytes"]
    print(
        f"Whole loop, every network resident ({gigabytes(result['all_weight_bytes'])} GB of weights): "
        f"A {gigabytes(peaks['ours'])} GB, B {gigabytes(peaks['official'])} GB\n"
    )
    print(format_gpus(result), end="\n\n")
    print(format_parts(result))


if __name__ == "__main__":
    main()
