"""Reference net + diffusion net + projections at tiny size: shapes, determinism, guidance flags, batching."""

import pytest
import torch

from memo_model.models.presets import build_components
from tests.conftest import run_clip, tiny_inputs, wake_zero_init


def test_shapes(tiny):
    inputs = tiny_inputs(tiny, batch=2, frames=4, past=3, size=8)
    face = tiny["image_proj"](inputs["face_embedding"])
    assert face.shape == (2, 2, 32)
    audio = tiny["audio_proj"](inputs["audio_features"])
    assert audio.shape == (2, 4, 4, 32)
    reference = tiny["reference_net"](inputs["reference_latents"], face)
    assert reference.num_past_frames == 3 and len(reference.layers) == tiny["diffusion_net"].num_layer_positions
    assert reference.layers[0].shape == (2, 4, 32, 8, 8)  # (b, 1 + p, c, h, w)
    memory = tiny["diffusion_net"].write_memory(reference)
    velocity = tiny["diffusion_net"](inputs["sample"], 999.0, reference, face, audio, inputs["emotion"], memory)
    assert velocity.shape == (2, 4, 4, 8, 8)
    probabilities = tiny["audio_emotion_classifier"](torch.randn(3, 16))
    assert probabilities.shape == (3, 9)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(3))


def test_odd_latent_size_forwards_upsample_size(tiny):
    inputs = tiny_inputs(tiny, batch=1, frames=2, past=2, size=6)
    inputs["sample"] = torch.randn(1, 4, 2, 7, 5)
    inputs["reference_latents"] = torch.randn(1, 4, 3, 7, 5)
    assert run_clip(tiny, inputs).shape == (1, 4, 2, 7, 5)


def test_seeded_determinism():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        components = {name: model.eval() for name, model in build_components("tiny").items()}
        outputs.append(run_clip(components, tiny_inputs(components, seed=5)))
    assert torch.equal(outputs[0], outputs[1])


def test_batched_samples_equal_separate_runs(tiny):
    """Guidance batches mix conditions; every sample must see only its own reference, face, audio and emotion."""
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=2)
    flags = torch.tensor([True, False])
    with torch.no_grad():
        batched = run_clip(tiny, inputs, use_reference=flags)
        for i in range(2):
            single = {k: v[i : i + 1] for k, v in inputs.items()}
            alone = run_clip(tiny, single, use_reference=flags[i : i + 1])
            torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-4, atol=1e-5)


def test_reference_net_sees_each_frame_on_its_own(tiny):
    """The pipeline computes the portrait's features once per video and joins them to the past frames' (or repeats
    them while the past frames are the portrait): both must equal one run over the whole stack."""
    inputs = tiny_inputs(tiny, batch=2, past=3)
    net, face = tiny["reference_net"], tiny["image_proj"](inputs["face_embedding"])
    stack = inputs["reference_latents"]
    with torch.no_grad():
        whole = net(stack, face)
        joined = net(stack[:, :, :1], face).followed_by(net(stack[:, :, 1:], face))
        portrait_only = net(stack[:, :, :1].expand(-1, -1, 4, -1, -1), face)
        repeated = net(stack[:, :, :1], face).repeat_frames(4)
    for expected, got in ((whole, joined), (portrait_only, repeated)):
        assert len(got.layers) == len(expected.layers)
        for a, b in zip(expected.layers, got.layers, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_dropping_the_reference_ignores_the_reference_image(tiny):
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=1)
    net, face = tiny["diffusion_net"], tiny["image_proj"](inputs["face_embedding"])
    audio = tiny["audio_proj"](inputs["audio_features"])
    with torch.no_grad():
        reference = tiny["reference_net"](inputs["reference_latents"], face)
        memory = net.write_memory(reference)
        other_image = inputs["reference_latents"].clone()
        other_image[:, :, 0] = torch.randn_like(other_image[:, :, 0])  # same past frames, another reference image
        other = tiny["reference_net"](other_image, face)

        def velocity(features, keep):
            return net(inputs["sample"], 500.0, features, face, audio, inputs["emotion"], memory, torch.tensor([keep]))

        torch.testing.assert_close(velocity(reference, False), velocity(other, False), rtol=0, atol=1e-6)
        assert (velocity(reference, True) - velocity(other, True)).abs().max() > 1e-4


def test_emotion_changes_the_output(tiny):
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=1)
    with torch.no_grad():
        happy = run_clip(tiny, {**inputs, "emotion": torch.tensor([3])})
        none = run_clip(tiny, {**inputs, "emotion": torch.tensor([9])})
    assert (happy - none).abs().max() > 1e-5


def test_new_modules_start_as_identity(tiny):
    """Zero-initialised temporal and audio modules: a fresh net ignores memory, audio and emotion."""
    inputs = tiny_inputs(tiny, batch=1)
    with torch.no_grad():
        base = run_clip(tiny, inputs)
        changed = {
            **inputs,
            "audio_features": torch.randn_like(inputs["audio_features"]),
            "emotion": torch.tensor([6]),
        }
        changed["reference_latents"] = inputs["reference_latents"].clone()
        changed["reference_latents"][:, :, 1:] = torch.randn_like(changed["reference_latents"][:, :, 1:])
        torch.testing.assert_close(run_clip(tiny, changed), base, rtol=0, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=1, frames=2, past=2)

    def grads():
        tiny["diffusion_net"].zero_grad()
        run_clip(tiny, inputs).square().mean().backward()
        return {n: p.grad.clone() for n, p in tiny["diffusion_net"].named_parameters() if p.grad is not None}

    plain = grads()
    tiny["diffusion_net"].enable_gradient_checkpointing()
    tiny["reference_net"].enable_gradient_checkpointing()
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) > 100
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6)


def test_past_frames_get_no_gradient(tiny):
    """The official memory path runs under no_grad: temporal to_k/to_v learn from current frames only."""
    inputs = tiny_inputs(tiny, batch=1, frames=2, past=2)
    latents = inputs["reference_latents"].requires_grad_(True)
    face = tiny["image_proj"](inputs["face_embedding"])
    reference = tiny["reference_net"](latents, face)
    memory = tiny["diffusion_net"].write_memory(reference)
    assert all(s.kv.grad_fn is None for states in memory.layers if states for s in states)


@pytest.mark.parametrize("bad", ["layers", "batch"])
def test_mismatched_inputs_are_refused(tiny, bad):
    inputs = tiny_inputs(tiny, batch=2)
    face = tiny["image_proj"](inputs["face_embedding"])
    reference = tiny["reference_net"](inputs["reference_latents"], face)
    audio = tiny["audio_proj"](inputs["audio_features"])
    net = tiny["diffusion_net"]
    if bad == "layers":
        reference = type(reference)(reference.layers[:-1])
        with pytest.raises(ValueError, match="layers"):
            net(inputs["sample"], 1.0, reference, face, audio, inputs["emotion"], net.write_memory(reference))
    else:
        with pytest.raises(ValueError, match="batch size"):
            net(
                inputs["sample"],
                1.0,
                reference,
                face,
                audio,
                inputs["emotion"],
                memory=net.write_memory(reference.select([0])),
            )


def test_memo_tiny_v2_preset_takes_8_channel_latents_and_the_official_temporal_norm():
    torch.manual_seed(0)
    networks = {name: net.eval() for name, net in build_components("memo-tiny-v2").items()}
    assert networks["diffusion_net"].config.temporal_norm_num_groups == 32
    inputs = tiny_inputs(networks, batch=1, frames=2, past=2, size=16)
    assert run_clip(networks, inputs).shape == (1, 8, 2, 16, 16)
