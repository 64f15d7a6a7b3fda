"""Memory-guided temporal module (paper §4.1, Eq. 2-4, appendix D; Fig. 2).

Temporal attention runs along the frame axis at every latent pixel. It is *linear* attention with softmax
feature maps (ϕ(q) = softmax over the head dim, ϕ(k) = softmax over frames), so the whole motion history can be
summarised in two constant-size matrices per pixel and head:

    M_KV = Σ_past w_j ϕ(k_j) v_jᵀ        M_K = Σ_past w_j ϕ(k_j)                         (Eq. 3, 4)
    out_i = ϕ(q_i)ᵀ (γ M_KV + Σ_cur ϕ(k_n) v_nᵀ) / ϕ(q_i)ᵀ (γ M_K + Σ_cur ϕ(k_n))     (Eq. 2)

The memory is written once per clip from the past frames' reference-net features (``write``), decaying older
content by γ per frame, and read at every denoising step (``forward``). It is an explicit value,
``TemporalMemory``, passed in and returned like ``past_key_values``; ``None`` means a new video. γ is chosen when
a memory is started and travels inside it: every later write and read of that memory uses the same γ.

Facts of the official checkpoint this file reproduces (docs/CHECKPOINT.md §2.3.2):
- within one write of p past frames, frame j (0 = oldest) is weighted by γ^(p-1-j); the official code multiplies
  *both* keys and values by that weight, so M_KV terms carry γ^(2(p-1-j)) while M_K terms carry γ^(p-1-j);
  the checkpoint was trained that way, so we keep it;
- a write on top of an existing memory decays it by γ^p first; reading decays it by one more γ;
- the sinusoidal positional encoding is added to the current clip's tokens only, never to past frames;
- the past-frame path (GroupNorm, proj_in, LayerNorms, keys, values) runs without gradients.

Legend: b batch, f current frames, p past frames, n = h·w pixels, hd heads, d head dim, c channels.
"""

import math
from dataclasses import dataclass

import torch
from diffusers.models.attention import FeedForward
from einops import rearrange
from torch import nn

from memo_model.models.blocks import GROUP_NORM_EPS_TRANSFORMER, zero_module

MEMORY_DECAY = 0.9  # γ, paper appendix D
DENOMINATOR_EPS = 1e-10  # official clamp of ϕ(q)ᵀ M_K


@dataclass(frozen=True)
class MemoryState:
    """One attention layer's memory: ``kv`` = M_KV (b, n, hd, d, d), ``k`` = M_K (b, n, hd, d) and ``decay`` = the γ
    they were written with, which every read applies once more."""

    kv: torch.Tensor
    k: torch.Tensor
    decay: float

    def select(self, index: torch.Tensor) -> "MemoryState":
        return MemoryState(self.kv[index], self.k[index], self.decay)


@dataclass(frozen=True)
class TemporalMemory:
    """The motion memory of a whole diffusion net.

    ``layers[i]`` belongs to the i-th layer position of the UNet (the same index as the reference features),
    one ``MemoryState`` per attention block of that position's temporal module, or ``None`` where the
    position has no temporal module. ``past_frames`` counts the frames written so far. Its size does not
    depend on how many frames were written.
    """

    layers: tuple[tuple[MemoryState, ...] | None, ...]
    past_frames: int

    @property
    def batch_size(self) -> int:
        return self._first_state().kv.shape[0]

    @property
    def decay(self) -> float:
        """γ, fixed when the memory was started (all its states share it)."""
        return self._first_state().decay

    def _first_state(self) -> MemoryState:
        return next(states for states in self.layers if states is not None)[0]

    def select(self, index: torch.Tensor | list[int]) -> "TemporalMemory":
        """The memory of some samples of the batch (guidance passes share memories this way).

        Selecting every sample in order returns this memory itself: indexing would copy it, and with the official
        networks at 512² the memory is gigabytes per sample.
        """
        index = torch.as_tensor(index, dtype=torch.long)
        if torch.equal(index.cpu(), torch.arange(self.batch_size)):
            return self
        layers = tuple(
            None if states is None else tuple(state.select(index.to(state.kv.device)) for state in states)
            for states in self.layers
        )
        return TemporalMemory(layers, self.past_frames)

    def num_bytes(self) -> int:
        return sum(
            state.kv.numel() * state.kv.element_size() + state.k.numel() * state.k.element_size()
            for states in self.layers
            if states is not None
            for state in states
        )


def sinusoidal_positions(channels: int, max_len: int) -> torch.Tensor:
    """Transformer positional encoding (1, max_len, channels): sin on even channels, cos on odd ones."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(1, max_len, channels)
    table[0, :, 0::2] = torch.sin(position * frequency)
    table[0, :, 1::2] = torch.cos(position * frequency)
    return table


class PositionalEncoding(nn.Module):
    """Adds ``pe[:, :f]`` to frame sequences; ``pe`` is a persistent buffer (it is in the official checkpoint)."""

    def __init__(self, channels: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(channels, max_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., f, c)."""
        num_frames = x.shape[-2]
        if num_frames > self.pe.shape[1]:
            raise ValueError(
                f"A clip has {num_frames} frames; the temporal module supports at most {self.pe.shape[1]}."
            )
        return x + self.pe[0, :num_frames].to(x.dtype)


class MemoryLinearAttention(nn.Module):
    """Memory-guided linear attention along frames (Eq. 2) and its causal memory update (Eq. 3, 4)."""

    def __init__(self, dim: int, heads: int, head_dim: int, max_frames: int, positional_encoding: bool = True):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.scale = head_dim**-0.5  # cancels in the ratio of Eq. 2 except through the clamp; kept for parity
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(dim, max_frames) if positional_encoding else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "b n f (hd d) -> b n hd f d", hd=self.heads)

    @torch.no_grad()
    def write(self, past: torch.Tensor, memory: MemoryState | None, decay: float) -> MemoryState:
        """Add p past frames to the memory with γ = ``decay``. past: (b, n, p, c), already LayerNorm'd.

        ``DiffusionNet.write_memory`` passes a carried memory's own γ; only a new memory gets a chosen one.
        """
        num_past = past.shape[2]
        key = self._heads(self.to_k(past)).softmax(dim=-2)  # ϕ(k) over frames: (b, n, hd, p, d)
        value = self._heads(self.to_v(past))
        weight = decay ** torch.arange(num_past - 1, -1, -1, device=past.device, dtype=past.dtype)  # oldest: γ^(p-1)
        # Σ_j w_j² ϕ(k_j)ᵀ v_j as one batched matmul (a three-operand einsum here was 40x slower on CPU)
        new_kv = (key * (weight * weight)[:, None]).transpose(-1, -2) @ value  # (b, n, hd, d, d)
        new_k = (key * weight[:, None]).sum(dim=-2)
        if memory is None:
            return MemoryState(new_kv, new_k, decay)
        carry = decay**num_past
        return MemoryState(memory.kv * carry + new_kv, memory.k * carry + new_k, decay)

    def forward(self, x: torch.Tensor, memory: MemoryState) -> torch.Tensor:
        """x: (b, n, f, c), LayerNorm'd current-clip tokens -> (b, n, f, c); reads ``memory`` with its own γ."""
        if self.pos_encoder is not None:
            x = self.pos_encoder(x)
        query = self._heads(self.to_q(x)).softmax(dim=-1) * self.scale  # ϕ(q) over the head dim
        key = self._heads(self.to_k(x)).softmax(dim=-2)  # ϕ(k) over frames
        value = self._heads(self.to_v(x))
        kv = memory.decay * memory.kv + torch.einsum("bnhfd,bnhfe->bnhde", key, value)  # (b, n, hd, d, d)
        k = memory.decay * memory.k + key.sum(dim=-2)  # (b, n, hd, d)
        numerator = torch.einsum("bnhfd,bnhde->bnhfe", query, kv)
        denominator = torch.einsum("bnhfd,bnhd->bnhf", query, k).clamp(min=DENOMINATOR_EPS)
        out = rearrange(numerator / denominator.unsqueeze(-1), "b n hd f d -> b n f (hd d)")
        return self.to_out[1](self.to_out[0](out))


class TemporalTransformerBlock(nn.Module):
    """Pre-LN residual attention blocks (official: two), then a GEGLU feed-forward (AnimateDiff layout)."""

    def __init__(self, dim: int, heads: int, head_dim: int, num_attention_blocks: int, max_frames: int, pe: bool):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [MemoryLinearAttention(dim, heads, head_dim, max_frames, pe) for _ in range(num_attention_blocks)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    @torch.no_grad()
    def write(self, past: torch.Tensor, memory: tuple[MemoryState, ...] | None, decay: float):
        """past: (b, n, p, c). Past tokens are normalised by each block's LayerNorm but never updated."""
        return tuple(
            attention.write(norm(past), None if memory is None else memory[j], decay)
            for j, (attention, norm) in enumerate(zip(self.attention_blocks, self.norms, strict=True))
        )

    def forward(self, x: torch.Tensor, memory: tuple[MemoryState, ...]) -> torch.Tensor:
        for attention, norm, state in zip(self.attention_blocks, self.norms, memory, strict=True):
            x = attention(norm(x), state) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm -> Linear proj_in on per-pixel tokens -> block -> Linear proj_out (zero-init) -> residual."""

    def __init__(
        self,
        channels: int,
        heads: int,
        head_dim: int,
        num_attention_blocks: int,
        max_frames: int,
        positional_encoding: bool,
        groups: int,
    ):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=GROUP_NORM_EPS_TRANSFORMER, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(inner, heads, head_dim, num_attention_blocks, max_frames, positional_encoding)]
        )
        self.proj_out = zero_module(nn.Linear(inner, channels))

    def _tokens(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """((b f), c, h, w) -> (b, n, f, inner)."""
        x = rearrange(self.norm(x), "(b f) c h w -> b (h w) f c", f=num_frames)
        return self.proj_in(x)

    @torch.no_grad()
    def write(self, past_frames: torch.Tensor, memory: tuple[MemoryState, ...] | None, decay: float):
        """past_frames: (b, p, c, h, w) reference-net features of the past frames."""
        num_past = past_frames.shape[1]
        past = self._tokens(rearrange(past_frames, "b p c h w -> (b p) c h w"), num_past)
        return self.transformer_blocks[0].write(past, memory, decay)

    def forward(self, x: torch.Tensor, num_frames: int, memory: tuple[MemoryState, ...]):
        """x: ((b f), c, h, w) -> same shape."""
        height, width = x.shape[-2:]
        h = self._tokens(x, num_frames)
        h = self.transformer_blocks[0](h, memory)
        h = rearrange(self.proj_out(h), "b (h w) f c -> (b f) c h w", h=height, w=width).contiguous()
        return h + x  # contiguous as the official code (see blocks.py)


class MemoryTemporalModule(nn.Module):
    """The memory-guided temporal module inserted after each UNet layer (official ``motion_modules.{l}``)."""

    def __init__(
        self,
        channels: int,
        num_attention_heads: int = 8,
        num_attention_blocks: int = 2,
        temporal_position_encoding: bool = True,
        temporal_position_encoding_max_len: int = 32,
        temporal_attention_dim_div: int = 1,
        groups: int = 32,
    ):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels,
            heads=num_attention_heads,
            head_dim=channels // num_attention_heads // temporal_attention_dim_div,
            num_attention_blocks=num_attention_blocks,
            max_frames=temporal_position_encoding_max_len,
            positional_encoding=temporal_position_encoding,
            groups=groups,
        )

    @torch.no_grad()
    def write(self, past_frames: torch.Tensor, memory: tuple[MemoryState, ...] | None, decay: float):
        return self.temporal_transformer.write(past_frames, memory, decay)

    def forward(self, x: torch.Tensor, num_frames: int, memory: tuple[MemoryState, ...]):
        return self.temporal_transformer(x, num_frames, memory)
