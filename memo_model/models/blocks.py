"""Building blocks shared by the reference net and the diffusion net.

Both networks are Stable Diffusion 1.5 UNets at heart (paper §4, appendix D); these blocks keep SD's module
names (`norm1`, `attn1`, `ff`, `proj_in`, ...) because the official checkpoint's state-dict keys are a contract.
The diffusion net works on videos folded into the batch: every 4-D tensor here is laid out ``(b f) c h w``.

Legend: b batch, f frames, c channels, h w latent height and width, n tokens.
"""

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn

GROUP_NORM_EPS_TRANSFORMER = 1e-6  # SD's Transformer2DModel GroupNorm eps (the resnets use the config's norm_eps)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter, so a residual branch starts as the identity."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class CheckpointedBlock(nn.Module):
    """A UNet block whose sub-modules can run under activation checkpointing.

    ``ModelMixin.enable_gradient_checkpointing()`` sets ``gradient_checkpointing`` and
    ``_gradient_checkpointing_func`` on every module that has the attribute.
    """

    def __init__(self):
        super().__init__()
        self.gradient_checkpointing = False

    def run(self, module: nn.Module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)


def video_group_norm(norm: nn.GroupNorm, x: torch.Tensor, num_frames: int, per_frame: bool) -> torch.Tensor:
    """GroupNorm on a ``(b f) c h w`` video, per frame or jointly over (c/g, f, h, w).

    The official config flag ``use_inflated_groupnorm`` picks between the two; they share weights and differ only
    in which values are pooled for the statistics.
    """
    if per_frame or num_frames == 1:
        return norm(x)
    x = rearrange(x, "(b f) c h w -> b c (f h) w", f=num_frames)
    x = norm(x)
    return rearrange(x, "b c (f h) w -> (b f) c h w", f=num_frames)


class VideoResnetBlock(nn.Module):
    """SD's ResnetBlock2D applied to every frame; the timestep embedding is shared by a sample's frames.

    Adapted from diffusers' ``ResnetBlock2D`` (same parameter names): adds the choice of frame-joint GroupNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        groups: int,
        eps: float,
        per_frame_norm: bool = True,
        output_scale_factor: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.per_frame_norm = per_frame_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x: ((b f), c_in, h, w); temb: (b, temb_channels) -> ((b f), c_out, h, w)."""
        h = self.nonlinearity(video_group_norm(self.norm1, x, num_frames, self.per_frame_norm))
        h = self.conv1(h)
        t = self.time_emb_proj(self.nonlinearity(temb))  # (b, c_out)
        h = h + t.repeat_interleave(num_frames, dim=0)[:, :, None, None]
        h = self.nonlinearity(video_group_norm(self.norm2, h, num_frames, self.per_frame_norm))
        h = self.conv2(self.dropout(h))
        shortcut = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (shortcut + h) / self.output_scale_factor


class SpatialTransformerBlock(nn.Module):
    """SD's BasicTransformerBlock with *reference attention* (paper §4, Fig. 1).

    Self-attention whose keys and values are the frame's own tokens concatenated with the reference image's
    tokens from the reference net (official: ``TemporalBasicTransformerBlock``), then cross-attention to the face
    tokens, then a GEGLU feed-forward; all pre-LayerNorm residual. Also returns ``norm1(x)``: the reference net
    hands exactly this LayerNorm'd self-attention input to the diffusion net.

    ``features_only`` builds just ``norm1``: the reference net's last block, whose output nobody reads.
    """

    def __init__(self, dim: int, heads: int, cross_attention_dim: int, features_only: bool = False):
        super().__init__()
        self.features_only = features_only
        self.norm1 = nn.LayerNorm(dim)
        if features_only:
            return
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(
            query_dim=dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=dim // heads, bias=False
        )
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def reference_attention(
        self, norm_x: torch.Tensor, reference: torch.Tensor | None, use_reference: torch.Tensor | None
    ) -> torch.Tensor:
        """Self-attention over [own tokens; reference tokens]; rows with ``use_reference`` False see only their own.

        norm_x: ((b f), n, c); reference: ((b f), n_ref, c) or None; use_reference: ((b f),) bool or None (= all).
        The official code marks unconditional rows with ``uc_mask`` and tiles the reference across the guidance
        batch in an interleaved order it was never trained on; here every row gets its own sample's reference.
        """
        if reference is None:
            return self.attn1(norm_x)
        if use_reference is None or bool(use_reference.all()):
            return self.attn1(norm_x, encoder_hidden_states=torch.cat([norm_x, reference], dim=1))
        out = norm_x.new_empty(norm_x.shape)
        keep, drop = use_reference, ~use_reference
        if bool(keep.any()):
            out[keep] = self.attn1(norm_x[keep], encoder_hidden_states=torch.cat([norm_x[keep], reference[keep]], 1))
        out[drop] = self.attn1(norm_x[drop])
        return out

    def forward(
        self,
        x: torch.Tensor,
        face_tokens: torch.Tensor,
        reference: torch.Tensor | None = None,
        use_reference: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """x: ((b f), n, c); face_tokens: ((b f), n_face, c_face) -> (x or None, norm1(x))."""
        norm_x = self.norm1(x)
        if self.features_only:
            return None, norm_x
        x = self.reference_attention(norm_x, reference, use_reference) + x
        x = self.attn2(self.norm2(x), encoder_hidden_states=face_tokens) + x
        x = self.ff(self.norm3(x)) + x
        return x, norm_x


class SpatialTransformer(nn.Module):
    """SD's Transformer2DModel with one block: GroupNorm -> 1x1 conv -> block -> 1x1 conv -> residual."""

    def __init__(self, channels: int, heads: int, cross_attention_dim: int, groups: int, features_only: bool = False):
        super().__init__()
        self.features_only = features_only
        self.norm = nn.GroupNorm(groups, channels, eps=GROUP_NORM_EPS_TRANSFORMER, affine=True)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [SpatialTransformerBlock(channels, heads, cross_attention_dim, features_only=features_only)]
        )
        if not features_only:
            self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(
        self,
        x: torch.Tensor,
        face_tokens: torch.Tensor,
        reference: torch.Tensor | None = None,
        use_reference: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """x: ((b f), c, h, w) -> (x or None, reference feature ((b f), c, h, w))."""
        height, width = x.shape[-2:]
        h = self.proj_in(self.norm(x))
        h = rearrange(h, "n c h w -> n (h w) c")
        h, feature = self.transformer_blocks[0](h, face_tokens, reference, use_reference)
        feature = rearrange(feature, "n (h w) c -> n c h w", h=height, w=width)
        if self.features_only:
            return None, feature
        # contiguous() as the official code: the next GroupNorm must not see a channels-last tensor (torch 2.13's
        # CPU GroupNorm backward crashes on one whose input needs no gradient).
        h = rearrange(h, "n (h w) c -> n c h w", h=height, w=width).contiguous()
        return self.proj_out(h) + x, feature


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (diffusers ``Downsample2D`` with ``use_conv=True``: key ``conv``)."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 (or to a given size) then a 3x3 convolution (diffusers ``Upsample2D``: key ``conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        dtype = x.dtype
        if dtype == torch.bfloat16:  # nearest upsampling has no bf16 kernel on some backends
            x = x.float()
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x.to(dtype))
