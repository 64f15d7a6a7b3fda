"""Emotion-aware audio module (paper §4.2, Eq. 5-6; Fig. 3).

Per frame, the video tokens (h·w of them) and that frame's audio tokens (32 in the official model) pass through
two modality branches that meet in one *multi-modal attention* over the concatenated token sequence. Every
LayerNorm in front of an attention is an **Emo-AdaNorm**: ``(1 + α)·LN(x) + β`` with (β, α) regressed from an
emotion embedding. The embedding table has one extra "no emotion" row (index = number of classes) used for
emotion dropout in training and for classifier-free guidance at inference.

Facts of the official checkpoint this file reproduces (docs/CHECKPOINT.md §2.3.3 and §7):
- the module's inner width D comes from the UNet layer's *input* channels, its GroupNorm/projections from the
  layer's output channels Q (proj_in is a 1x1 conv Q -> D);
- the modulation chunks are ordered shift first, then scale;
- joint attention: video q/k/v without bias, audio q/k/v (``add_*_proj``) with bias, one softmax over both;
- the audio stream leaves a module as ``block_output + block_input`` although the block already added its own
  residuals (the residual counts twice); the checkpoint was trained with this, so it stays;
- the last module of the UNet has no audio output (no ``to_add_out``, ``audio_ff``, ``audio_norm3``).
New here: ``proj_out`` starts at zero, so a freshly added module is the identity on the video stream.

Legend: b batch, f frames, n video tokens per frame (h·w), m audio tokens per frame, D inner width, A audio width.
"""

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, JointAttnProcessor2_0
from einops import rearrange
from torch import nn

from memo_model.models.blocks import GROUP_NORM_EPS_TRANSFORMER, zero_module


class EmotionEmbedding(nn.Module):
    """Label embedding with a "no emotion" row; in training each label is dropped with ``dropout_prob``."""

    def __init__(self, num_emotions: int, dim: int, dropout_prob: float):
        super().__init__()
        self.num_emotions = num_emotions
        self.dropout_prob = dropout_prob
        # The official table only has the extra row when dropout is on (it is for the checkpoint: 9 + 1 rows).
        self.embedding_table = nn.Embedding(num_emotions + int(dropout_prob > 0), dim)

    def forward(self, emotion: torch.Tensor) -> torch.Tensor:
        """emotion: (b,) int in [0, num_emotions], num_emotions meaning "none" -> (b, dim)."""
        if self.training and self.dropout_prob > 0:
            dropped = torch.rand(emotion.shape, device=emotion.device) < self.dropout_prob
            emotion = torch.where(dropped, torch.full_like(emotion, self.num_emotions), emotion)
        return self.embedding_table(emotion)


class EmoAdaNorm(nn.Module):
    """Emo-AdaNorm(x) = (1 + α)·LN(x) + β, with (β, α) = Linear(SiLU(e_emotion)) — shift first, then scale."""

    def __init__(self, dim: int, num_emotions: int, dropout_prob: float, eps: float = 1e-5):
        super().__init__()
        self.class_embedder = EmotionEmbedding(num_emotions, dim, dropout_prob)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """x: ((b f), tokens, dim); emotion: (b,) -> same shape as x; one label per sample, shared by its frames."""
        shift, scale = self.adaLN_modulation(self.class_embedder(emotion)).chunk(2, dim=-1)  # (b, dim) each
        frames = x.shape[0] // emotion.shape[0]
        shift = shift.repeat_interleave(frames, dim=0).unsqueeze(1)
        scale = scale.repeat_interleave(frames, dim=0).unsqueeze(1)
        return self.norm(x) * (1 + scale) + shift


class JointAudioVideoBlock(nn.Module):
    """Two modality branches joined by multi-modal attention (official ``JointAudioTemporalBasicTransformerBlock``).

    video:  v += attn1(EmoAdaNorm(v));  audio: a += audio_attn1(EmoAdaNorm(a))
    joint:  (v', a') = attn2(EmoAdaNorm(v), EmoAdaNorm(a)) over [v; a];  v += v';  a += a'
    then:   v += ff(LN(v));  a += audio_ff(LN(a))
    """

    def __init__(
        self, dim: int, audio_dim: int, heads: int, num_emotions: int, emotion_dropout: float, is_final: bool = False
    ):
        super().__init__()
        self.is_final = is_final
        head_dim = dim // heads
        self.norm1 = EmoAdaNorm(dim, num_emotions, emotion_dropout)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=False)
        self.audio_norm1 = EmoAdaNorm(audio_dim, num_emotions, emotion_dropout)
        self.audio_attn1 = Attention(query_dim=audio_dim, heads=heads, dim_head=head_dim, bias=False)
        self.norm2 = EmoAdaNorm(dim, num_emotions, emotion_dropout)
        self.audio_norm2 = EmoAdaNorm(audio_dim, num_emotions, emotion_dropout)
        self.attn2 = Attention(
            query_dim=dim,
            cross_attention_dim=dim,
            added_kv_proj_dim=audio_dim,
            heads=heads,
            dim_head=head_dim,
            bias=False,
            out_dim=dim,
            out_context_dim=audio_dim,
            context_pre_only=is_final,  # the last block keeps no audio output projection
            processor=JointAttnProcessor2_0(),
        )
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        if not is_final:
            self.audio_norm3 = nn.LayerNorm(audio_dim)
            self.audio_ff = FeedForward(audio_dim, activation_fn="geglu")

    def forward(
        self, video: torch.Tensor, audio: torch.Tensor, emotion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """video: ((b f), n, D); audio: ((b f), m, A); emotion: (b,)."""
        norm_video = self.norm1(video, emotion)
        norm_audio = self.audio_norm1(audio, emotion)
        video = self.attn1(norm_video) + video
        audio = self.audio_attn1(norm_audio) + audio

        joint_video, joint_audio = self.attn2(self.norm2(video, emotion), self.audio_norm2(audio, emotion))
        video = joint_video + video
        video = self.ff(self.norm3(video)) + video
        if self.is_final:
            return video, None
        audio = joint_audio + audio
        audio = self.audio_ff(self.audio_norm3(audio)) + audio
        return video, audio


class EmotionAwareAudioModule(nn.Module):
    """GroupNorm -> 1x1 conv Q->D -> joint block -> 1x1 conv D->Q (zero-init) -> residual on the video stream."""

    def __init__(
        self,
        channels: int,
        inner_channels: int,
        audio_dim: int,
        heads: int,
        num_emotions: int,
        emotion_dropout: float,
        groups: int,
        is_final: bool = False,
    ):
        super().__init__()
        self.is_final = is_final
        self.norm = nn.GroupNorm(groups, channels, eps=GROUP_NORM_EPS_TRANSFORMER, affine=True)
        self.proj_in = nn.Conv2d(channels, inner_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [JointAudioVideoBlock(inner_channels, audio_dim, heads, num_emotions, emotion_dropout, is_final)]
        )
        self.proj_out = zero_module(nn.Conv2d(inner_channels, channels, kernel_size=1))

    def forward(
        self, x: torch.Tensor, audio_tokens: torch.Tensor, emotion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: ((b f), Q, h, w); audio_tokens: ((b f), m, A); emotion: (b,) -> (x, audio_tokens or None)."""
        height, width = x.shape[-2:]
        h = rearrange(self.proj_in(self.norm(x)), "n c h w -> n (h w) c")
        h, audio_out = self.transformer_blocks[0](h, audio_tokens, emotion)
        h = self.proj_out(rearrange(h, "n (h w) c -> n c h w", h=height, w=width).contiguous())  # see blocks.py
        if audio_out is not None:
            audio_out = audio_out + audio_tokens  # the official double residual (see module docstring)
        return h + x, audio_out
