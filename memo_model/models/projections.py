"""Image and audio projections (paper appendix D: "two projection modules convert the audio embedding and image
embedding into the dimensions required by our attention module").

- ``ImageProjection``: a face-identity embedding (official: 512-d raw ArcFace from insightface) -> a few face
  tokens for the image cross-attention of both UNets (official: 4 tokens of 768).
- ``AudioProjection``: per video frame, a window of audio features (official: 5 frames x 12 wav2vec2 layers x 768)
  -> audio tokens for the emotion-aware audio module (official: 32 tokens of 768).

Both keep the official constructor argument names (they are read from ``config.json``) and parameter names.
Legend: b batch, f frames, w window, l feature layers, c feature channels, m tokens.
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn


class ImageProjection(ModelMixin, ConfigMixin):
    """Linear(embedding -> tokens x width), reshape, LayerNorm."""

    @register_to_config
    def __init__(
        self, cross_attention_dim: int = 768, clip_embeddings_dim: int = 512, clip_extra_context_tokens: int = 4
    ):
        super().__init__()
        self.proj = nn.Linear(clip_embeddings_dim, clip_extra_context_tokens * cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, face_embedding: torch.Tensor) -> torch.Tensor:
        """face_embedding: (b, clip_embeddings_dim) -> face tokens (b, m, cross_attention_dim)."""
        tokens = rearrange(self.proj(face_embedding), "b (m c) -> b m c", m=self.config.clip_extra_context_tokens)
        return self.norm(tokens)


class AudioProjection(ModelMixin, ConfigMixin):
    """Flatten each frame's (window, layers, channels) features, 3-layer ReLU MLP, reshape to tokens, LayerNorm."""

    @register_to_config
    def __init__(
        self,
        seq_len: int = 5,
        blocks: int = 12,
        channels: int = 768,
        intermediate_dim: int = 512,
        output_dim: int = 768,
        context_tokens: int = 32,
    ):
        super().__init__()
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        """audio_features: (b, f, w, l, c) -> audio tokens (b, f, m, output_dim)."""
        num_frames = audio_features.shape[1]
        x = rearrange(audio_features, "b f w l c -> (b f) (w l c)")  # window-major, then layer, then channel
        x = torch.relu(self.proj1(x))
        x = torch.relu(self.proj2(x))
        tokens = rearrange(self.proj3(x), "n (m c) -> n m c", m=self.config.context_tokens)
        return rearrange(self.norm(tokens), "(b f) m c -> b f m c", f=num_frames)
