"""Parity with the official MEMO code: our networks on the tiny official-layout checkpoint in ``../shared/parity``
give the tensors the official code recorded on it (that folder's README describes each call and the tolerances).

The checkpoint is deliberately off the published configuration (8 GroupNorm groups, non-square latents, perturbed
norms), so it exposes what the published weights cannot: e.g. the temporal modules' fixed 32 groups.
``MEMO_PARITY_DIR`` points elsewhere; a clone without the folder skips these tests with a message.
"""

import os
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors.torch import load_file

from memo_model.models.reference_net import ReferenceFeatures
from memo_model.weights import load_components

PARITY = Path(os.environ.get("MEMO_PARITY_DIR", Path(__file__).resolve().parents[3] / "shared" / "parity"))
FLOAT32 = {"atol": 1e-4, "rtol": 1e-4}
AGAINST_FLOAT16 = {"atol": 1e-4, "rtol": 1e-3}  # R1.* were stored rounded to float16

pytestmark = pytest.mark.skipif(
    not (PARITY / "fixtures").is_dir(),
    reason=f"the official-code parity oracle {PARITY} is absent (CI provides ../shared/parity beside the clone)",
)


def official_reference_names(reference_net) -> list[str]:
    """The official reference dict's entries in our layer-position order: down blocks' layers, mid, up blocks'.

    Attention layers are ``{part}.{block}.{layer}.0`` (the transformer's norm1 output), plain layers
    ``{part}.{block}.{layer}`` (the resnet output)."""
    names = []
    for part, blocks in (("down", reference_net.down_blocks), ("up", reference_net.up_blocks)):
        if part == "up":
            names.append("mid.0.0.0")
        for i, block in enumerate(blocks):
            suffix = ".0" if hasattr(block, "attentions") else ""
            names += [f"{part}.{i}.{j}{suffix}" for j in range(len(block.resnets))]
    return names


def to_features(recorded: dict[str, torch.Tensor], names: list[str], prefix: str, num_frames: int, width: int):
    """Official reference outputs -> ``ReferenceFeatures`` (b, f, c, h, w), upcast to float32."""
    levels = 1 + max(int(name.split(".")[1]) for name in names)
    layers = []
    for name in names:
        part, block = name.split(".")[:2]
        level = {"down": int(block), "mid": levels - 1, "up": levels - 1 - int(block)}[part]
        tensor = recorded[f"{prefix}.{name}"].float()
        if tensor.dim() == 3:  # ((b f), h·w, c) transformer tokens
            tensor = rearrange(tensor, "(b f) (h w) c -> b f c h w", f=num_frames, w=width // 2**level)
        else:  # ((b f), c, h, w) resnet output
            tensor = rearrange(tensor, "(b f) c h w -> b f c h w", f=num_frames)
        layers.append(tensor)
    return ReferenceFeatures(tuple(layers))


@pytest.fixture(scope="module")
def oracle():
    fixtures = PARITY / "fixtures"
    recorded = {}
    for name in ("inputs", "small_models_outputs", "reference_net_outputs", "diffusion_net_outputs"):
        recorded.update(load_file(fixtures / f"{name}.safetensors"))
    recorded["memory"] = load_file(fixtures / "diffusion_net_memory.safetensors")
    return recorded


@pytest.fixture(scope="module")
def official():
    """The tiny checkpoint, loaded strictly (every tensor present, nothing extra, every shape right)."""
    return load_components(PARITY)


def test_the_parity_checkpoint_loads_strictly(official):
    assert set(official) == {"reference_net", "diffusion_net", "image_proj", "audio_proj", "audio_emotion_classifier"}
    net = official["diffusion_net"]
    assert net.config.norm_num_groups == 8  # the UNet's own norms
    temporal = [m for name, m in net.named_modules() if name.endswith("temporal_transformer.norm")]
    assert temporal and all(norm.num_groups == 32 and norm.eps == 1e-6 for norm in temporal)  # official, fixed


@torch.no_grad()
def test_small_models_match(official, oracle):
    face = oracle["face_emb"]
    torch.testing.assert_close(official["image_proj"](face), oracle["image_proj.face_tokens"], **FLOAT32)
    uncond = official["image_proj"](torch.zeros_like(face))
    torch.testing.assert_close(uncond, oracle["image_proj.uncond_face_tokens"], **FLOAT32)
    for call in ("a", "b"):
        tokens = official["audio_proj"](oracle[f"audio_emb_{call}"])
        torch.testing.assert_close(tokens, oracle[f"audio_proj.tokens_{call}"], **FLOAT32)
    probabilities = official["audio_emotion_classifier"](oracle["emotion2vec_feat"])  # softmax in forward, as official
    torch.testing.assert_close(probabilities, oracle["classifier.probs"], **FLOAT32)


@torch.no_grad()
def test_reference_net_features_match(official, oracle):
    net = official["reference_net"]
    latents = rearrange(oracle["ref_latents_A"], "f c h w -> 1 c f h w")
    features = net(latents, oracle["image_proj.face_tokens"], oracle["timestep_ref"])
    names = official_reference_names(net)
    recorded = to_features(oracle, names, "R1", latents.shape[2], latents.shape[-1])
    assert len(features.layers) == len(recorded.layers) == 21
    for name, ours, theirs in zip(names, features.layers, recorded.layers, strict=True):
        torch.testing.assert_close(ours, theirs, **AGAINST_FLOAT16, msg=lambda m, n=name: f"R1.{n}: {m}")
    deeper = to_features(oracle, names[4:15], "R1_fp32", latents.shape[2], latents.shape[-1])
    for name, ours, theirs in zip(names[4:15], features.layers[4:15], deeper.layers, strict=True):
        torch.testing.assert_close(ours, theirs, **FLOAT32, msg=lambda m, n=name: f"R1_fp32.{n}: {m}")


def memory_snapshot(net, memory) -> dict[str, torch.Tensor]:
    """Our memory in the official layout: KV (b·h·w·heads, d, d), Z (b·h·w·heads, 1, d), named by module path."""
    positions = {id(module): position for position, module in net._motion_modules_by_position().items()}
    snapshot = {}
    for path, module in net.named_modules():
        if id(module) not in positions:
            continue
        for j, state in enumerate(memory.layers[positions[id(module)]]):
            name = f"{path}.temporal_transformer.transformer_blocks.0.attention_blocks.{j}"
            snapshot[f"{name}.KV"] = rearrange(state.kv, "b n hd d e -> (b n hd) d e")
            snapshot[f"{name}.Z"] = rearrange(state.k, "b n hd d -> (b n hd) 1 d")
    return snapshot


@torch.no_grad()
def test_diffusion_net_calls_and_memory_match(official, oracle):
    """(a) a new video: write the reference stack's past frames, denoise; (b) the next clip: write R2 onto the
    carried memory, denoise; (c) the same call again without writing: the memory is only read."""
    net = official["diffusion_net"]
    names = official_reference_names(official["reference_net"])
    r1 = to_features(oracle, names, "R1", 17, 16)
    r2 = ReferenceFeatures(tuple(layer[:, [0, *range(16, 0, -1)]] for layer in r1.layers))
    face = oracle["image_proj.face_tokens"]

    def denoise(call, reference, memory):
        return net(
            oracle[f"latents_{call}"],
            oracle[f"timestep_{call}"],
            reference,
            face,
            oracle[f"audio_proj.tokens_{call}"],
            oracle[f"emotion_{call}"].long(),
            memory=memory,
        )

    memory = net.write_memory(r1)
    torch.testing.assert_close(denoise("a", r1, memory), oracle["dn.a"], **FLOAT32)
    after_a = memory_snapshot(net, memory)

    memory = net.write_memory(r2, memory)
    torch.testing.assert_close(denoise("b", r2, memory), oracle["dn.b"], **FLOAT32)
    after_b = memory_snapshot(net, memory)
    torch.testing.assert_close(denoise("b", r2, memory), oracle["dn.c"], **FLOAT32)

    recorded = oracle["memory"]
    for label, ours in (("mem_after_a", after_a), ("mem_after_b", after_b)):
        keys = [k.split(".", 1)[1] for k in recorded if k.startswith(label + ".")]
        assert len(keys) == 44  # 11 temporal modules of the deeper levels x 2 attention blocks x (KV, Z)
        for key in keys:
            expected = recorded[f"{label}.{key}"]
            torch.testing.assert_close(ours[key], expected, **FLOAT32, msg=lambda m, k=key: f"{k}: {m}")
