"""Diffusion net (paper §4, Fig. 1): the video denoiser.

An SD 1.5 UNet applied to every frame of a clip, where each layer runs, in order,

    resnet -> spatial transformer (reference attention + face cross-attention)
           -> emotion-aware audio module (``audio_module.py``)
           -> memory-guided temporal module (``memory_temporal.py``)

(plain lowest-resolution blocks have only resnet -> temporal module). It predicts the rectified-flow velocity.

Adapted from diffusers' UNet2DConditionModel layout: adds the audio and temporal modules, the reference
features and the explicit ``TemporalMemory``. State-dict names and shapes follow the official checkpoint
(docs/CHECKPOINT.md §2.2 and §3.3), and the constructor keeps the official ``config.json`` argument names.

Two calls per clip:
- ``write_memory(reference_features, memory)`` — once per clip: adds the past frames to the memory (``None`` starts
  a new video, with the configured γ ``memory_decay`` unless one is given). Returns the new ``TemporalMemory``.
- ``forward(...)`` — every denoising step: reads the memory with the γ it was written with, never changes it.

Legend: b batch, c channels, f frames of the clip, h w latent size, m tokens, p past frames.
"""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from memo_model.models.audio_module import EmotionAwareAudioModule
from memo_model.models.blocks import (
    CheckpointedBlock,
    Downsample,
    SpatialTransformer,
    Upsample,
    VideoResnetBlock,
    video_group_norm,
)
from memo_model.models.memory_temporal import MEMORY_DECAY, MemoryTemporalModule, TemporalMemory
from memo_model.models.reference_net import ReferenceFeatures

OFFICIAL_DOWN_BLOCKS_3D = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D")
OFFICIAL_UP_BLOCKS_3D = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D")
OFFICIAL_MOTION_MODULE_KWARGS = {
    "num_attention_heads": 8,
    "num_transformer_block": 1,
    "attention_block_types": ["Temporal_Self", "Temporal_Self"],
    "temporal_position_encoding": True,
    "temporal_position_encoding_max_len": 32,
    "temporal_attention_dim_div": 1,
}
NUM_EMOTIONS = 9  # len(memo_model.audio.emotion.EMOTION_LABELS); models do not import the audio package
# The official temporal modules normalise with 32 groups whatever the UNet's norm_num_groups says (their wrapper
# never passes it on; docs/CHECKPOINT.md). ``temporal_norm_num_groups`` is our own config key, absent from every
# official config, so a model built from one computes what the official code computes.
OFFICIAL_TEMPORAL_NORM_GROUPS = 32


@dataclass(frozen=True)
class LayerInputs:
    """What every layer of the UNet reads besides its hidden state (built once per forward)."""

    num_frames: int
    temb: torch.Tensor  # (b, c_t)
    face_tokens: torch.Tensor  # ((b f), m, c_face)
    reference: ReferenceFeatures
    use_reference: torch.Tensor | None  # ((b f),) bool; False = this row ignores the reference image
    reference_rows: torch.Tensor | None  # ((b f),) long: whose reference image each row sees; None = its own
    memory: TemporalMemory
    emotion: torch.Tensor  # (b,) int; NUM_EMOTIONS = no emotion


class DiffusionBlock(CheckpointedBlock):
    """The per-layer sequence shared by down, mid and up blocks: spatial -> audio -> temporal."""

    has_attention: bool
    has_motion: bool

    def layer_modules(self, x, audio_tokens, layer: int, position: int, inputs: LayerInputs):
        """Run layer ``layer`` of this block (UNet layer ``position``) after its resnet."""
        if self.has_attention:
            reference = inputs.reference.reference_tokens(position)  # (b, h·w, c)
            if inputs.reference_rows is None:
                reference = reference.repeat_interleave(inputs.num_frames, dim=0)
            else:
                reference = reference[inputs.reference_rows]
            x, _ = self.run(self.attentions[layer], x, inputs.face_tokens, reference, inputs.use_reference)
            x, audio_tokens = self.run(self.audio_modules[layer], x, audio_tokens, inputs.emotion)
        if self.has_motion:
            memory = inputs.memory.layers[position]
            x = self.run(self.motion_modules[layer], x, inputs.num_frames, memory)
        return x, audio_tokens

    def build_layer_modules(self, channels: int, inner_channels: list[int], audio_final: list[bool], settings: dict):
        """Spatial transformers, audio modules (inner width per layer) and temporal modules for each layer."""
        num_layers = len(inner_channels)
        if self.has_attention:
            self.attentions = nn.ModuleList(
                SpatialTransformer(channels, settings["heads"], settings["cross_attention_dim"], settings["groups"])
                for _ in range(num_layers)
            )
            self.audio_modules = nn.ModuleList(
                EmotionAwareAudioModule(
                    channels,
                    inner_channels[i],
                    settings["audio_dim"],
                    settings["heads"],
                    settings["num_emotions"],
                    settings["emotion_dropout"],
                    settings["groups"],
                    is_final=audio_final[i],
                )
                for i in range(num_layers)
            )
        if self.has_motion:
            self.motion_modules = nn.ModuleList(
                MemoryTemporalModule(channels, groups=settings["temporal_groups"], **settings["motion"])
                for _ in range(num_layers)
            )


class DiffusionDownBlock(DiffusionBlock):
    def __init__(
        self,
        in_channels,
        out_channels,
        num_layers,
        has_attention,
        has_motion,
        add_downsample,
        settings,
        first_position,
    ):
        super().__init__()
        self.has_attention, self.has_motion, self.first_position = has_attention, has_motion, first_position
        layer_in = [in_channels if i == 0 else out_channels for i in range(num_layers)]
        self.resnets = nn.ModuleList(
            VideoResnetBlock(
                layer_in[i],
                out_channels,
                settings["temb"],
                settings["groups"],
                settings["eps"],
                settings["per_frame_norm"],
            )
            for i in range(num_layers)
        )
        # The audio module's inner width is the layer's *input* width (official checkpoint fact).
        self.build_layer_modules(out_channels, layer_in, [False] * num_layers, settings)
        if add_downsample:
            self.downsamplers = nn.ModuleList([Downsample(out_channels, settings["padding"])])

    def forward(self, x, audio_tokens, inputs: LayerInputs):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = self.run(resnet, x, inputs.temb, inputs.num_frames)
            x, audio_tokens = self.layer_modules(x, audio_tokens, i, self.first_position + i, inputs)
            skips.append(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips, audio_tokens


class DiffusionMidBlock(DiffusionBlock):
    def __init__(self, channels, settings, position, output_scale_factor):
        super().__init__()
        self.has_attention, self.has_motion, self.position = True, True, position
        self.resnets = nn.ModuleList(
            VideoResnetBlock(
                channels,
                channels,
                settings["temb"],
                settings["groups"],
                settings["eps"],
                settings["per_frame_norm"],
                output_scale_factor=output_scale_factor,
            )
            for _ in range(2)
        )
        self.build_layer_modules(channels, [channels], [False], settings)

    def forward(self, x, audio_tokens, inputs: LayerInputs):
        x = self.run(self.resnets[0], x, inputs.temb, inputs.num_frames)
        x, audio_tokens = self.layer_modules(x, audio_tokens, 0, self.position, inputs)
        x = self.run(self.resnets[1], x, inputs.temb, inputs.num_frames)
        return x, audio_tokens


class DiffusionUpBlock(DiffusionBlock):
    def __init__(
        self,
        in_channels,
        prev_channels,
        out_channels,
        num_layers,
        has_attention,
        has_motion,
        add_upsample,
        is_final,
        settings,
        first_position,
    ):
        super().__init__()
        self.has_attention, self.has_motion, self.first_position = has_attention, has_motion, first_position
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            resnets.append(
                VideoResnetBlock(
                    resnet_in + skip_channels,
                    out_channels,
                    settings["temb"],
                    settings["groups"],
                    settings["eps"],
                    settings["per_frame_norm"],
                )
            )
        self.resnets = nn.ModuleList(resnets)
        # Up blocks size every audio module from the block's skip width ``in_channels`` (official checkpoint fact).
        audio_final = [is_final and i == num_layers - 1 for i in range(num_layers)]
        self.build_layer_modules(out_channels, [in_channels] * num_layers, audio_final, settings)
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample(out_channels)])

    def forward(self, x, skips, audio_tokens, inputs: LayerInputs, upsample_size=None):
        for i, resnet in enumerate(self.resnets):
            x = self.run(resnet, torch.cat([x, skips.pop()], dim=1), inputs.temb, inputs.num_frames)
            x, audio_tokens = self.layer_modules(x, audio_tokens, i, self.first_position + i, inputs)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x, upsample_size)
        return x, audio_tokens


class DiffusionNet(ModelMixin, ConfigMixin):
    """MEMO's denoising UNet (official ``UNet3DConditionModel`` of memo).

    SD's ``attention_head_dim`` is the number of heads (8 in SD 1.5 and MEMO). ``emo_drop_rate`` is the per-layer
    probability of dropping the emotion label in training (and, being > 0, adds the "no emotion" row).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        in_channels: int = 4,
        out_channels: int = 4,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = OFFICIAL_DOWN_BLOCKS_3D,
        mid_block_type: str = "UNetMidBlock3DCrossAttn",
        up_block_types: tuple[str, ...] = OFFICIAL_UP_BLOCKS_3D,
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
        use_inflated_groupnorm: bool = True,
        motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8),
        motion_module_kwargs: dict | None = None,
        audio_attention_dim: int = 768,
        emo_drop_rate: float = 0.05,
        num_emotions: int = NUM_EMOTIONS,
        memory_decay: float = MEMORY_DECAY,
        center_input_sample: bool = False,
        temporal_norm_num_groups: int = OFFICIAL_TEMPORAL_NORM_GROUPS,
    ):
        super().__init__()
        if act_fn != "silu" or use_linear_projection or mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ValueError(
                "DiffusionNet supports SD 1.5's layout only (silu, conv projections, cross-attn mid block)."
            )
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length.")
        motion = {**OFFICIAL_MOTION_MODULE_KWARGS, **(motion_module_kwargs or {})}
        if motion["num_transformer_block"] != 1 or any(t != "Temporal_Self" for t in motion["attention_block_types"]):
            raise ValueError("The temporal module supports one transformer block of 'Temporal_Self' attentions.")
        motion_channels = [c for i, c in enumerate(block_out_channels) if 2**i in motion_module_resolutions]
        if any(c % temporal_norm_num_groups for c in motion_channels):
            raise ValueError(
                f"The temporal modules normalise with {temporal_norm_num_groups} groups, which must divide their "
                f"channels {motion_channels}: use multiples of {temporal_norm_num_groups} in block_out_channels "
                "(the official code's 32 groups), or set temporal_norm_num_groups in the config."
            )
        temb_channels = block_out_channels[0] * 4
        settings = {
            "temb": temb_channels,
            "groups": norm_num_groups,
            "temporal_groups": temporal_norm_num_groups,
            "eps": norm_eps,
            "per_frame_norm": use_inflated_groupnorm,
            "padding": downsample_padding,
            "heads": attention_head_dim,
            "cross_attention_dim": cross_attention_dim,
            "audio_dim": audio_attention_dim,
            "num_emotions": num_emotions,
            "emotion_dropout": emo_drop_rate,
            "motion": {
                "num_attention_heads": motion["num_attention_heads"],
                "num_attention_blocks": len(motion["attention_block_types"]),
                "temporal_position_encoding": motion["temporal_position_encoding"],
                "temporal_position_encoding_max_len": motion["temporal_position_encoding_max_len"],
                "temporal_attention_dim_div": motion["temporal_attention_dim_div"],
            },
        }

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], temb_channels)

        num_blocks = len(block_out_channels)
        position = 0
        self.down_blocks = nn.ModuleList()
        out_ch = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            in_ch, out_ch = out_ch, block_out_channels[i]
            self.down_blocks.append(
                DiffusionDownBlock(
                    in_ch,
                    out_ch,
                    layers_per_block,
                    has_attention=block_type.startswith("CrossAttn"),
                    has_motion=2**i in motion_module_resolutions,
                    add_downsample=i < num_blocks - 1,
                    settings=settings,
                    first_position=position,
                )
            )
            position += layers_per_block
        self.mid_block = DiffusionMidBlock(block_out_channels[-1], settings, position, mid_block_scale_factor)
        position += 1
        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        out_ch = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            in_ch = reversed_channels[min(i + 1, num_blocks - 1)]
            self.up_blocks.append(
                DiffusionUpBlock(
                    in_ch,
                    prev_ch,
                    out_ch,
                    layers_per_block + 1,
                    has_attention=block_type.startswith("CrossAttn"),
                    has_motion=2 ** (num_blocks - 1 - i) in motion_module_resolutions,
                    add_upsample=i < num_blocks - 1,
                    is_final=i == num_blocks - 1,
                    settings=settings,
                    first_position=position,
                )
            )
            position += layers_per_block + 1
        self.num_layer_positions = position

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

    def _motion_modules_by_position(self) -> dict[int, MemoryTemporalModule]:
        modules = {}
        for block in self.down_blocks:
            if block.has_motion:
                modules.update({block.first_position + i: m for i, m in enumerate(block.motion_modules)})
        modules[self.mid_block.position] = self.mid_block.motion_modules[0]
        for block in self.up_blocks:
            if block.has_motion:
                modules.update({block.first_position + i: m for i, m in enumerate(block.motion_modules)})
        return modules

    @torch.no_grad()
    def write_memory(
        self, reference: ReferenceFeatures, memory: TemporalMemory | None = None, decay: float | None = None
    ) -> TemporalMemory:
        """Write the past frames of ``reference`` into the memory (Eq. 3, 4); ``None`` starts a new video.

        Called once per clip. In training (the official recipe) every sample starts from ``None`` with its real
        past frames; at inference the memory is carried across all clips of a video. ``decay`` is γ for a new
        memory (``None`` = the configured ``memory_decay``); a carried memory keeps the γ it was written with.
        """
        if reference.layers[0].shape[1] < 2:
            raise ValueError("The reference stack has no past frames; put [reference, past frames...] in it.")
        if len(reference.layers) != self.num_layer_positions:
            raise ValueError(f"Expected features for {self.num_layer_positions} layers, got {len(reference.layers)}.")
        if memory is None:
            decay = self.config.memory_decay if decay is None else decay
        elif decay is None or decay == memory.decay:
            decay = memory.decay
        else:
            raise ValueError(
                f"This memory was written with decay {memory.decay}; it cannot continue with {decay}. "
                "Leave decay unset to carry it, or start a new video with memory=None."
            )
        modules = self._motion_modules_by_position()
        layers = tuple(
            modules[k].write(reference.past_frames(k), None if memory is None else memory.layers[k], decay)
            if k in modules
            else None
            for k in range(self.num_layer_positions)
        )
        previous = 0 if memory is None else memory.past_frames
        return TemporalMemory(layers, previous + reference.num_past_frames)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: float | torch.Tensor,
        reference: ReferenceFeatures,
        face_tokens: torch.Tensor,
        audio_tokens: torch.Tensor,
        emotion: torch.Tensor,
        memory: TemporalMemory | None = None,
        use_reference: torch.Tensor | None = None,
        reference_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the velocity for one clip.

        sample: (b, c, f, h, w) noisy latents; timestep: scalar or (b,), in [0, 1000];
        reference: features of [reference image, past frames] per sample; face_tokens: (b, m, c_face);
        audio_tokens: (b, f, m_audio, c_audio); emotion: (b,) int, ``num_emotions`` = no emotion;
        memory: from ``write_memory`` (required), read here with its own γ and never changed;
        use_reference: (b,) bool, False drops the reference image from spatial attention (guidance);
        reference_rows: ((b f),) long, the sample whose reference image each frame row attends to; ``None`` = its
        own sample's. The official inference tiles them instead (row r sees sample r mod b: ``official_rows``).
        Returns the velocity (b, c_out, f, h, w).
        """
        batch, _, num_frames, height, width = sample.shape
        if memory is None:
            raise ValueError(
                "No memory given: write one first with memory = net.write_memory(reference) (a new video) and pass it."
            )
        for name, value in (("reference", reference), ("memory", memory)):
            if value.batch_size != batch:
                raise ValueError(f"{name} has batch size {value.batch_size} but the sample has {batch}.")
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32)
        # the embedding's own dtype: ModelMixin.dtype walks every module (4.6 ms a call on MEMO-Tiny)
        temb_dtype = self.time_embedding.linear_1.weight.dtype
        temb = self.time_embedding(self.time_proj(timestep.expand(batch)).to(temb_dtype))  # (b, 4·c0)
        inputs = LayerInputs(
            num_frames=num_frames,
            temb=temb,
            face_tokens=face_tokens.repeat_interleave(num_frames, dim=0),
            reference=reference,
            use_reference=None if use_reference is None else use_reference.repeat_interleave(num_frames, dim=0),
            reference_rows=reference_rows,
            memory=memory,
            emotion=emotion,
        )
        audio = rearrange(audio_tokens, "b f m c -> (b f) m c")

        num_upsamplers = len(self.up_blocks) - 1
        forward_upsample_size = height % 2**num_upsamplers != 0 or width % 2**num_upsamplers != 0

        x = self.conv_in(rearrange(sample, "b c f h w -> (b f) c h w"))
        skips: list[torch.Tensor] = [x]
        for block in self.down_blocks:
            x, block_skips, audio = block(x, audio, inputs)
            skips.extend(block_skips)
        x, audio = self.mid_block(x, audio, inputs)
        for i, block in enumerate(self.up_blocks):
            block_skips = skips[-len(block.resnets) :]
            del skips[-len(block.resnets) :]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            x, audio = block(x, block_skips, audio, inputs, upsample_size)

        x = self.conv_act(video_group_norm(self.conv_norm_out, x, num_frames, self.config.use_inflated_groupnorm))
        x = self.conv_out(x)
        return rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)
