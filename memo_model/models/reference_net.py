"""Reference net (paper §4, Fig. 1; appendix D).

An SD 1.5 UNet without its output head that reads a stack of clean latents — the reference image followed by
the past frames — at timestep 0, once per clip, and returns per-layer features:

- for layers with a spatial transformer: the transformer block's ``norm1`` output (the LayerNorm'd input to its
  self-attention); the diffusion net attends to the reference image's features (spatial *reference attention*)
  and writes the past frames' features into its temporal memory;
- for layers without one (the plain lowest-resolution blocks): the resnet output, used for the memory only.

Face tokens enter through ordinary cross-attention (``attn2``). The last up block's last transformer only needs
``norm1``, so — like the official checkpoint — it has no attention, feed-forward or ``proj_out``, and there is no
``conv_norm_out`` / ``conv_out``. Parameter names are SD's (docs/CHECKPOINT.md §3.2).

Legend: b batch, f frames in the stack (1 reference + p past), c channels, h w latent size, m face tokens.
"""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from memo_model.models.blocks import CheckpointedBlock, Downsample, SpatialTransformer, Upsample, VideoResnetBlock

OFFICIAL_DOWN_BLOCKS_2D = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
OFFICIAL_UP_BLOCKS_2D = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")


@dataclass(frozen=True)
class ReferenceFeatures:
    """Reference-net features, one (b, f, c, h, w) tensor per UNet layer position.

    Positions are numbered down blocks' layers first, then the mid block, then the up blocks' layers — the
    order in which the diffusion net consumes them. Frame 0 is the reference image, frames 1.. the past frames.
    """

    layers: tuple[torch.Tensor, ...]

    @property
    def batch_size(self) -> int:
        return self.layers[0].shape[0]

    @property
    def num_past_frames(self) -> int:
        return self.layers[0].shape[1] - 1

    def reference_tokens(self, position: int) -> torch.Tensor:
        """The reference image's tokens at a layer: (b, h·w, c)."""
        return rearrange(self.layers[position][:, 0], "b c h w -> b (h w) c")

    def past_frames(self, position: int) -> torch.Tensor:
        """The past frames' features at a layer: (b, p, c, h, w)."""
        return self.layers[position][:, 1:]

    def repeat_frames(self, num_frames: int) -> "ReferenceFeatures":
        """Features of a one-frame stack as those of ``num_frames`` copies of that frame (views, no copy)."""
        if self.layers[0].shape[1] != 1:
            raise ValueError(f"Only one-frame features can be repeated; these have {self.layers[0].shape[1]}.")
        return ReferenceFeatures(tuple(layer.expand(-1, num_frames, -1, -1, -1) for layer in self.layers))

    def followed_by(self, other: "ReferenceFeatures") -> "ReferenceFeatures":
        """These frames' features, then ``other``'s, as if both stacks had run together."""
        return ReferenceFeatures(tuple(torch.cat(pair, dim=1) for pair in zip(self.layers, other.layers, strict=True)))

    def select(self, index: torch.Tensor | list[int]) -> "ReferenceFeatures":
        """The features of some samples of the batch; every sample in order is this object itself (no copy)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.layers[0].device)
        if torch.equal(index.cpu(), torch.arange(self.batch_size)):
            return self
        return ReferenceFeatures(tuple(layer[index] for layer in self.layers))


class ReferenceDownBlock(CheckpointedBlock):
    """resnet (-> spatial transformer) per layer, then an optional stride-2 downsampler."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int,
        has_attention: bool,
        add_downsample: bool,
        heads: int,
        cross_attention_dim: int,
        groups: int,
        eps: float,
        padding: int,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            VideoResnetBlock(in_channels if i == 0 else out_channels, out_channels, temb_channels, groups, eps)
            for i in range(num_layers)
        )
        if has_attention:
            self.attentions = nn.ModuleList(
                SpatialTransformer(out_channels, heads, cross_attention_dim, groups) for _ in range(num_layers)
            )
        self.has_attention = has_attention
        if add_downsample:
            self.downsamplers = nn.ModuleList([Downsample(out_channels, padding)])

    def forward(self, x, temb, face_tokens, num_frames):
        skips, features = [], []
        for i, resnet in enumerate(self.resnets):
            x = self.run(resnet, x, temb, num_frames)
            if self.has_attention:
                x, feature = self.run(self.attentions[i], x, face_tokens)
            else:
                feature = x
            features.append(feature)
            skips.append(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips, features


class ReferenceMidBlock(CheckpointedBlock):
    """resnet -> spatial transformer -> resnet."""

    def __init__(
        self,
        channels: int,
        temb_channels: int,
        heads: int,
        cross_attention_dim: int,
        groups: int,
        eps: float,
        output_scale_factor: float,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            VideoResnetBlock(channels, channels, temb_channels, groups, eps, output_scale_factor=output_scale_factor)
            for _ in range(2)
        )
        self.attentions = nn.ModuleList([SpatialTransformer(channels, heads, cross_attention_dim, groups)])

    def forward(self, x, temb, face_tokens, num_frames):
        x = self.run(self.resnets[0], x, temb, num_frames)
        x, feature = self.run(self.attentions[0], x, face_tokens)
        x = self.run(self.resnets[1], x, temb, num_frames)
        return x, [feature]


class ReferenceUpBlock(CheckpointedBlock):
    """concat skip -> resnet (-> spatial transformer) per layer, then an optional x2 upsampler.

    In the final block (``is_final``) the last transformer is features-only and nothing runs after it.
    """

    def __init__(
        self,
        in_channels: int,
        prev_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int,
        has_attention: bool,
        add_upsample: bool,
        is_final: bool,
        heads: int,
        cross_attention_dim: int,
        groups: int,
        eps: float,
    ):
        super().__init__()
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            resnets.append(VideoResnetBlock(resnet_in + skip_channels, out_channels, temb_channels, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        self.has_attention = has_attention
        if has_attention:
            self.attentions = nn.ModuleList(
                SpatialTransformer(
                    out_channels, heads, cross_attention_dim, groups, features_only=is_final and i == num_layers - 1
                )
                for i in range(num_layers)
            )
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample(out_channels)])

    def forward(self, x, skips, temb, face_tokens, num_frames, upsample_size=None):
        features = []
        for i, resnet in enumerate(self.resnets):
            x = self.run(resnet, torch.cat([x, skips.pop()], dim=1), temb, num_frames)
            if self.has_attention:
                x, feature = self.run(self.attentions[i], x, face_tokens)
            else:
                feature = x
            features.append(feature)
        if hasattr(self, "upsamplers") and x is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x, features


class ReferenceNet(ModelMixin, ConfigMixin):
    """SD 1.5 UNet trunk returning ``ReferenceFeatures`` (official ``UNet2DConditionModel`` of memo).

    Constructor arguments keep diffusers' UNet2DConditionModel names and the official values as defaults, so the
    official ``reference_net/config.json`` loads as is. SD's ``attention_head_dim`` is the number of heads.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        in_channels: int = 4,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = OFFICIAL_DOWN_BLOCKS_2D,
        mid_block_type: str = "UNetMidBlock2DCrossAttn",
        up_block_types: tuple[str, ...] = OFFICIAL_UP_BLOCKS_2D,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1.0,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        attention_head_dim: int = 8,
        use_linear_projection: bool = False,
        center_input_sample: bool = False,
    ):
        super().__init__()
        if act_fn != "silu" or use_linear_projection or mid_block_type != "UNetMidBlock2DCrossAttn":
            raise ValueError(
                "ReferenceNet supports SD 1.5's layout only (silu, conv projections, cross-attn mid block)."
            )
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length.")
        heads = attention_head_dim
        temb_channels = block_out_channels[0] * 4
        groups, eps = norm_num_groups, norm_eps

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], temb_channels)

        self.down_blocks = nn.ModuleList()
        out_channels = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            in_channels_i, out_channels = out_channels, block_out_channels[i]
            self.down_blocks.append(
                ReferenceDownBlock(
                    in_channels_i,
                    out_channels,
                    temb_channels,
                    layers_per_block,
                    has_attention=block_type.startswith("CrossAttn"),
                    add_downsample=i < len(block_out_channels) - 1,
                    heads=heads,
                    cross_attention_dim=cross_attention_dim,
                    groups=groups,
                    eps=eps,
                    padding=downsample_padding,
                )
            )
        self.mid_block = ReferenceMidBlock(
            block_out_channels[-1], temb_channels, heads, cross_attention_dim, groups, eps, mid_block_scale_factor
        )
        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        out_channels = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_channels, out_channels = out_channels, reversed_channels[i]
            in_channels_i = reversed_channels[min(i + 1, len(block_out_channels) - 1)]
            is_final = i == len(block_out_channels) - 1
            self.up_blocks.append(
                ReferenceUpBlock(
                    in_channels_i,
                    prev_channels,
                    out_channels,
                    temb_channels,
                    layers_per_block + 1,
                    has_attention=block_type.startswith("CrossAttn"),
                    add_upsample=not is_final,
                    is_final=is_final,
                    heads=heads,
                    cross_attention_dim=cross_attention_dim,
                    groups=groups,
                    eps=eps,
                )
            )

    def forward(
        self,
        latents: torch.Tensor,
        face_tokens: torch.Tensor,
        timestep: float | torch.Tensor = 0.0,
    ) -> ReferenceFeatures:
        """latents: (b, c, f, h, w) clean latents [reference, past frames...]; face_tokens: (b, m, c_face).

        Returns the features of every layer position. The official model runs at timestep 0.
        """
        batch, _, num_frames, height, width = latents.shape
        if self.config.center_input_sample:
            latents = 2 * latents - 1.0
        x = rearrange(latents, "b c f h w -> (b f) c h w")
        timestep = torch.as_tensor(timestep, device=latents.device, dtype=torch.float32)
        # the embedding's own dtype: ModelMixin.dtype walks every module (4.6 ms a call on MEMO-Tiny)
        temb_dtype = self.time_embedding.linear_1.weight.dtype
        temb = self.time_embedding(self.time_proj(timestep.expand(batch)).to(temb_dtype))  # (b, 4·c0)
        face_tokens = face_tokens.repeat_interleave(num_frames, dim=0)  # each frame sees its own sample's face

        num_upsamplers = len(self.up_blocks) - 1
        forward_upsample_size = height % 2**num_upsamplers != 0 or width % 2**num_upsamplers != 0

        x = self.conv_in(x)
        skips: list[torch.Tensor] = [x]
        features: list[torch.Tensor] = []
        for block in self.down_blocks:
            x, block_skips, block_features = block(x, temb, face_tokens, num_frames)
            skips.extend(block_skips)
            features.extend(block_features)
        x, mid_features = self.mid_block(x, temb, face_tokens, num_frames)
        features.extend(mid_features)
        for i, block in enumerate(self.up_blocks):
            block_skips = skips[-len(block.resnets) :]
            del skips[-len(block.resnets) :]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            x, block_features = block(x, block_skips, temb, face_tokens, num_frames, upsample_size)
            features.extend(block_features)
        return ReferenceFeatures(
            tuple(rearrange(feature, "(b f) c h w -> b f c h w", f=num_frames) for feature in features)
        )
