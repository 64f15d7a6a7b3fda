"""Emotion-aware audio module: Emo-AdaNorm, the "no emotion" row, identity at init, the audio stream."""

import pytest
import torch
import torch.nn.functional as F

from memo_model.audio.emotion import EMOTION_LABELS, NO_EMOTION
from memo_model.models.audio_module import EmoAdaNorm, EmotionAwareAudioModule
from memo_model.models.diffusion_net import NUM_EMOTIONS as NET_EMOTIONS
from memo_model.models.emotion_classifier import NUM_EMOTIONS as CLASSIFIER_EMOTIONS


def test_model_defaults_agree_with_the_label_set():
    assert NET_EMOTIONS == CLASSIFIER_EMOTIONS == len(EMOTION_LABELS) == NO_EMOTION


def test_emo_adanorm_is_shift_then_scale():
    norm = EmoAdaNorm(4, num_emotions=9, dropout_prob=0.05).eval()
    shift, scale = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, -0.5, 1.0, 0.0])
    with torch.no_grad():
        norm.adaLN_modulation[1].weight.zero_()
        norm.adaLN_modulation[1].bias.copy_(torch.cat([shift, scale]))
    x = torch.randn(6, 5, 4)  # 2 samples x 3 frames
    out = norm(x, torch.tensor([0, 3]))
    torch.testing.assert_close(out, F.layer_norm(x, (4,)) * (1 + scale) + shift)


def test_no_emotion_row_is_the_extra_last_row():
    norm = EmoAdaNorm(4, num_emotions=9, dropout_prob=0.05).eval()
    assert norm.class_embedder.embedding_table.num_embeddings == 10
    x = torch.randn(2, 5, 4)
    none = norm(x, torch.tensor([NO_EMOTION]))
    table = norm.class_embedder.embedding_table.weight
    shift, scale = norm.adaLN_modulation(table[NO_EMOTION]).chunk(2)
    torch.testing.assert_close(none, F.layer_norm(x, (4,)) * (1 + scale) + shift)
    assert not torch.allclose(none, norm(x, torch.tensor([3])))


def test_emotion_dropout_in_training_uses_the_no_emotion_row():
    norm = EmoAdaNorm(4, num_emotions=9, dropout_prob=1.0)
    x = torch.randn(2, 5, 4)
    expected = norm.eval()(x, torch.tensor([NO_EMOTION]))
    torch.testing.assert_close(norm.train()(x, torch.tensor([2])), expected)
    assert not torch.allclose(norm.eval()(x, torch.tensor([2])), expected)


def test_each_sample_gets_its_own_emotion():
    norm = EmoAdaNorm(4, num_emotions=9, dropout_prob=0.05).eval()
    x = torch.randn(6, 5, 4)  # 2 samples x 3 frames
    both = norm(x, torch.tensor([1, 7]))
    torch.testing.assert_close(both[:3], norm(x[:3], torch.tensor([1])))
    torch.testing.assert_close(both[3:], norm(x[3:], torch.tensor([7])))


@pytest.mark.parametrize("is_final", [False, True])
def test_audio_module_identity_at_init_and_audio_stream(is_final):
    torch.manual_seed(0)
    module = EmotionAwareAudioModule(
        channels=16,
        inner_channels=8,
        audio_dim=12,
        heads=2,
        num_emotions=9,
        emotion_dropout=0.05,
        groups=4,
        is_final=is_final,
    ).eval()
    x, audio = torch.randn(6, 16, 3, 3), torch.randn(6, 4, 12)
    out, audio_out = module(x, audio, torch.tensor([0, 5]))
    assert torch.equal(out, x)  # zero-initialised proj_out: a new module is the identity on video
    if is_final:
        assert audio_out is None
        assert not hasattr(module.transformer_blocks[0], "audio_ff")
    else:
        _, block_audio = module.transformer_blocks[0](
            module.proj_in(module.norm(x)).flatten(2).transpose(1, 2), audio, torch.tensor([0, 5])
        )
        torch.testing.assert_close(audio_out, block_audio + audio)  # the official double residual
