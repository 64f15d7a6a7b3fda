"""Memory-guided temporal module: Eq. 2-4 as the official checkpoint computes them."""

import pytest
import torch

from memo_model.models.memory_temporal import (
    MEMORY_DECAY,
    MemoryLinearAttention,
    MemoryTemporalModule,
    TemporalMemory,
    sinusoidal_positions,
)
from tests.conftest import run_clip, tiny_inputs, wake_zero_init

DIM, HEADS, HEAD_DIM = 16, 2, 8


def attention(seed=0):
    torch.manual_seed(seed)
    return MemoryLinearAttention(DIM, HEADS, HEAD_DIM, max_frames=32)


def feature_maps(attn, tokens):
    """ϕ(k) (softmax over frames) and v, per head: (b, n, hd, frames, d)."""
    k = attn._heads(attn.to_k(tokens)).softmax(dim=-2)
    v = attn._heads(attn.to_v(tokens))
    return k, v


def test_clip_by_clip_writes_equal_closed_form_over_whole_history():
    attn, gamma, past = attention(), MEMORY_DECAY, 4
    chunks = [torch.randn(1, 3, past, DIM) for _ in range(5)]  # 5 clips of 4 past frames at 3 pixels
    state = None
    for chunk in chunks:
        state = attn.write(chunk, state, gamma)

    expected_kv = torch.zeros_like(state.kv)
    expected_k = torch.zeros_like(state.k)
    for c, chunk in enumerate(chunks):
        k, v = feature_maps(attn, chunk)  # softmax within each written clip, as the official code
        for j in range(past):
            age = past * (len(chunks) - 1 - c)  # frames written after this clip
            w = gamma ** (past - 1 - j)
            expected_kv += gamma**age * w * w * torch.einsum("bnhd,bnhe->bnhde", k[..., j, :], v[..., j, :])
            expected_k += gamma**age * w * k[..., j, :]
    torch.testing.assert_close(state.kv, expected_kv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state.k, expected_k, rtol=1e-5, atol=1e-6)


def test_read_is_equation_2_with_decayed_memory():
    attn, gamma = attention(), MEMORY_DECAY
    past, current = torch.randn(1, 2, 4, DIM), torch.randn(1, 2, 6, DIM)
    state = attn.write(past, None, gamma)
    out = attn(current, state)

    x = attn.pos_encoder(current)  # positions on current frames only
    q = attn._heads(attn.to_q(x)).softmax(dim=-1) * attn.scale
    k, v = feature_maps(attn, x)
    manual = torch.zeros(1, 2, HEADS, 6, HEAD_DIM)
    for i in range(6):
        kv = gamma * state.kv + sum(torch.einsum("bnhd,bnhe->bnhde", k[..., n, :], v[..., n, :]) for n in range(6))
        z = gamma * state.k + k.sum(dim=-2)
        numerator = torch.einsum("bnhd,bnhde->bnhe", q[..., i, :], kv)
        manual[..., i, :] = numerator / torch.einsum("bnhd,bnhd->bnh", q[..., i, :], z).clamp(min=1e-10)[..., None]
    manual = attn.to_out[0](manual.permute(0, 1, 3, 2, 4).reshape(1, 2, 6, HEADS * HEAD_DIM))
    torch.testing.assert_close(out, manual, rtol=1e-5, atol=1e-6)


def test_positional_encoding_touches_current_frames_only():
    attn = attention()
    past, current = torch.randn(1, 2, 4, DIM), torch.randn(1, 2, 4, DIM)
    state = attn.write(past, None, MEMORY_DECAY)
    before = attn(current, state)
    with torch.no_grad():
        attn.pos_encoder.pe.mul_(3.0)
    assert torch.equal(attn.write(past, None, MEMORY_DECAY).kv, state.kv)
    assert not torch.allclose(attn(current, state), before)


def test_sinusoidal_table_matches_transformer_definition():
    pe = sinusoidal_positions(8, 32)
    assert pe.shape == (1, 32, 8)
    assert torch.allclose(pe[0, 5, 0], torch.sin(torch.tensor(5.0)))
    assert torch.allclose(pe[0, 5, 1], torch.cos(torch.tensor(5.0)))
    assert torch.allclose(pe[0, 5, 2], torch.sin(torch.tensor(5.0) * 10000 ** (-2 / 8)))


def test_memory_size_is_constant_in_history_length():
    module = MemoryTemporalModule(DIM, num_attention_heads=HEADS, groups=4)
    past = torch.randn(1, 4, DIM, 3, 3)
    memory = module.write(past, None, MEMORY_DECAY)
    one_clip = sum(s.kv.numel() + s.k.numel() for s in memory)
    for _ in range(20):
        memory = module.write(past, memory, MEMORY_DECAY)
    assert sum(s.kv.numel() + s.k.numel() for s in memory) == one_clip


def test_module_is_identity_at_init_and_has_no_grad_through_memory():
    module = MemoryTemporalModule(DIM, num_attention_heads=HEADS, groups=4)
    x = torch.randn(2 * 4, DIM, 3, 3)
    past = torch.randn(2, 5, DIM, 3, 3, requires_grad=True)
    memory = module.write(past, None, MEMORY_DECAY)
    assert torch.equal(module(x, 4, memory), x)  # zero-initialised proj_out
    assert all(not s.kv.requires_grad for s in memory)


def test_diffusion_net_memory_none_resets_and_carried_memory_matters(tiny):
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=1)
    net = tiny["diffusion_net"]
    with torch.no_grad():
        face = tiny["image_proj"](inputs["face_embedding"])
        reference = tiny["reference_net"](inputs["reference_latents"], face)
        fresh = net.write_memory(reference)
        carried = net.write_memory(reference, net.write_memory(reference, fresh))
        assert isinstance(fresh, TemporalMemory) and carried.past_frames == 3 * reference.num_past_frames
        assert carried.num_bytes() == fresh.num_bytes()

        default = run_clip(tiny, inputs)  # memory=None: a new video
        explicit = run_clip(tiny, inputs, memory=fresh)
        longer = run_clip(tiny, inputs, memory=carried)
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    assert (longer - default).abs().max() > 1e-4


def test_memory_keeps_the_decay_it_was_written_with(tiny):
    """γ is chosen when a memory starts; carried writes and every read use that γ, whatever the model's default."""
    wake_zero_init(tiny["diffusion_net"])
    inputs = tiny_inputs(tiny, batch=2)
    net = tiny["diffusion_net"]
    with torch.no_grad():
        face = tiny["image_proj"](inputs["face_embedding"])
        reference = tiny["reference_net"](inputs["reference_latents"], face)
        assert net.write_memory(reference).decay == net.config.memory_decay == MEMORY_DECAY
        slow = net.write_memory(reference, decay=0.5)
        carried = net.write_memory(reference, slow)
        assert slow.decay == carried.decay == carried.select([1]).decay == 0.5
        assert all(state.decay == 0.5 for states in carried.layers if states for state in states)
        assert net.write_memory(reference, slow, decay=0.5).decay == 0.5
        with pytest.raises(ValueError, match="written with decay 0.5"):
            net.write_memory(reference, slow, decay=MEMORY_DECAY)

        read_with_its_own = run_clip(tiny, inputs, memory=carried)
        net.register_to_config(memory_decay=0.5)  # the same γ, now as the model's default
        default_everywhere = run_clip(tiny, inputs, memory=net.write_memory(reference, net.write_memory(reference)))
    torch.testing.assert_close(read_with_its_own, default_everywhere, rtol=0, atol=0)


def test_diffusion_net_needs_a_written_memory(tiny):
    inputs = tiny_inputs(tiny, batch=1)
    face = tiny["image_proj"](inputs["face_embedding"])
    reference = tiny["reference_net"](inputs["reference_latents"], face)
    audio = tiny["audio_proj"](inputs["audio_features"])
    with pytest.raises(ValueError, match="write_memory"):
        tiny["diffusion_net"](inputs["sample"], 500.0, reference, face, audio, inputs["emotion"])


def test_memory_select_picks_samples(tiny):
    inputs = tiny_inputs(tiny, batch=2)
    with torch.no_grad():
        face = tiny["image_proj"](inputs["face_embedding"])
        memory = tiny["diffusion_net"].write_memory(tiny["reference_net"](inputs["reference_latents"], face))
    picked = memory.select([1, 1, 0])
    assert picked.batch_size == 3
    first = next(s for s in memory.layers if s is not None)[0]
    assert torch.equal(next(s for s in picked.layers if s is not None)[0].kv[2], first.kv[0])


def test_selecting_every_sample_in_order_shares_instead_of_copying(tiny):
    inputs = tiny_inputs(tiny, batch=2)
    with torch.no_grad():
        face = tiny["image_proj"](inputs["face_embedding"])
        reference = tiny["reference_net"](inputs["reference_latents"], face)
        memory = tiny["diffusion_net"].write_memory(reference)
    assert memory.select([0, 1]) is memory and reference.select(torch.tensor([0, 1])) is reference
    swapped = memory.select([1, 0])  # any other order is a real selection
    first = next(s for s in memory.layers if s is not None)[0]
    assert torch.equal(next(s for s in swapped.layers if s is not None)[0].kv[0], first.kv[1])
    assert torch.equal(reference.select([1, 0]).layers[0][0], reference.layers[0][1])
