"""Audio emotion classifier head (paper appendix E.2).

An MLP over a clip-level audio emotion representation (official: the time-averaged 1024-d emotion2vec_plus_large
feature of a 3 s window) that outputs probabilities over ``EMOTION_LABELS``. The official head is 5 linear layers,
1024 -> 2048 -> 2048 -> 2048 -> 2048 -> 9, with ReLU between them and a softmax at the end; its parameters are
named ``layers.fc{i}`` and it is stored under ``misc/audio_emotion_classifier/``.

Legend: b batch (windows), c feature channels, k emotion classes.
"""

from collections import OrderedDict

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

EMOTION2VEC_DIM = 1024  # emotion2vec_plus_large feature width, the official input
NUM_EMOTIONS = 9  # len(memo_model.audio.emotion.EMOTION_LABELS); models do not import the audio package


class AudioEmotionClassifier(ModelMixin, ConfigMixin):
    """``num_classifier_layers`` linear layers with ReLU in between; ``forward`` returns class probabilities."""

    @register_to_config
    def __init__(
        self,
        num_classifier_layers: int = 5,
        num_classifier_channels: int = 2048,
        input_dim: int = EMOTION2VEC_DIM,
        num_emotions: int = NUM_EMOTIONS,
    ):
        super().__init__()
        widths = [input_dim] + [num_classifier_channels] * (num_classifier_layers - 1) + [num_emotions]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(num_classifier_layers):
            layers[f"fc{i + 1}"] = nn.Linear(widths[i], widths[i + 1])
            if i < num_classifier_layers - 1:
                layers[f"relu{i + 1}"] = nn.ReLU()
        self.layers = nn.Sequential(layers)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features: (b, input_dim) -> (b, num_emotions) unnormalised scores (what training uses)."""
        return self.layers(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (b, input_dim) -> probabilities (b, num_emotions)."""
        return self.logits(features).softmax(dim=-1)
