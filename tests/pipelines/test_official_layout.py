"""The official path: a checkpoint folder with no manifest, VAE and wav2vec2 from their own folders."""

import json
import shutil

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from memo_model.errors import SetupError
from memo_model.loading import load_pipeline
from memo_model.models.presets import COMPONENT_CLASSES, preset_config
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.request import GenerationRequest
from memo_model.testing import TINY_RESOLUTION, tiny_vae
from memo_model.vision.face import InsightFaceEmbedder
from memo_model.vision.video_io import probe_media
from memo_model.weights import MANIFEST_NAME, load_components, save_components

W2V_LAYERS, W2V_WIDTH = 2, 32


@pytest.fixture(scope="module")
def official_like(tmp_path_factory):
    """Tiny random weights laid out like memoavatar/memo (no manifest), plus a tiny VAE and wav2vec2."""
    root = tmp_path_factory.mktemp("official")
    torch.manual_seed(0)
    overrides = {
        "audio_proj": {"blocks": W2V_LAYERS, "channels": W2V_WIDTH},
        "image_proj": {"clip_embeddings_dim": 512},
    }
    components = {
        name.rsplit("/", 1)[-1]: cls(**{**preset_config("tiny", name), **overrides.get(name, {})})
        for name, cls in COMPONENT_CLASSES.items()
    }
    save_components(components, root / "memo")
    tiny_vae().save_pretrained(root / "sd-vae-ft-mse")
    config = Wav2Vec2Config(
        hidden_size=W2V_WIDTH, num_hidden_layers=W2V_LAYERS, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, feat_extract_norm="group", do_stable_layer_norm=False,
    )  # fmt: skip
    Wav2Vec2Model(config).save_pretrained(root / "wav2vec2-base-960h")
    return root


def test_official_folder_gets_the_official_parts(official_like):
    assert not (official_like / "memo" / MANIFEST_NAME).exists()
    pipeline = load_pipeline(
        official_like / "memo", device="cpu", vae=official_like / "sd-vae-ft-mse",
        wav2vec2=official_like / "wav2vec2-base-960h", emotion2vec=official_like / "missing-emotion2vec",
    )  # fmt: skip
    assert pipeline.model_info.resolution == 512 and pipeline.model_info.name == "MEMO (official)"
    assert isinstance(pipeline.identity_embedder, InsightFaceEmbedder)
    assert pipeline.identity_embedder.face_analysis_dir == official_like / "memo" / "misc" / "face_analysis"
    assert pipeline.emotion_detector is None and "emotion2vec" in pipeline.model_info.notes
    assert pipeline.audio_features.num_layers == W2V_LAYERS


def test_official_path_needs_insightface_and_says_so(official_like, media, tmp_path):
    pipeline = load_pipeline(
        official_like / "memo", device="cpu", vae=official_like / "sd-vae-ft-mse",
        wav2vec2=official_like / "wav2vec2-base-960h",
    )  # fmt: skip
    request = GenerationRequest(
        image=media / "portrait.png", audio=media / "speech_0.5s.wav", output=tmp_path / "x.mp4",
        resolution=TINY_RESOLUTION, steps=1, emotions=EmotionOverrides("neutral"),
    )  # fmt: skip
    with pytest.raises(SetupError, match="insightface"):
        pipeline(request)


def test_wav2vec2_path_runs_end_to_end_with_an_identity_embedder(official_like, media, tmp_path):
    """The official audio path through the whole loop (identity from a stand-in embedder of the right size)."""
    from memo_model.vision.face import IdentityEmbedding

    class ConstantIdentity:  # a real embedder needs insightface's model files, which cannot be downloaded here
        embedding_size = 512
        reads_full_image = True

        def __call__(self, image):
            return IdentityEmbedding(torch.linspace(-1, 1, 512).numpy(), None)

    pipeline = load_pipeline(
        official_like / "memo", device="cpu", vae=official_like / "sd-vae-ft-mse",
        wav2vec2=official_like / "wav2vec2-base-960h",
    )  # fmt: skip
    pipeline.identity_embedder = ConstantIdentity()
    result = pipeline(GenerationRequest(
        image=media / "portrait.png", audio=media / "speech_0.5s.wav", output=tmp_path / "x.mp4",
        resolution=TINY_RESOLUTION, steps=1, emotions=EmotionOverrides("sad"),
    ))  # fmt: skip
    assert probe_media(result.video_path)["video_frames"] == 15
    settings = json.loads(result.settings_path.read_text())
    assert settings["model"]["name"] == "MEMO (official)" and settings["emotions"]["used_per_clip"] == ["sad"]


def test_components_of_the_official_folder_load_strictly(official_like, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(official_like / "memo", folder)
    assert set(load_components(folder)) == {
        "reference_net", "diffusion_net", "image_proj", "audio_proj", "audio_emotion_classifier"
    }  # fmt: skip


def test_vocal_separation_explains_what_is_missing(official_like, tmp_path):
    from memo_model.audio.separation import VocalSeparator

    with pytest.raises(SetupError, match="Kim_Vocal_2.onnx"):
        VocalSeparator(tmp_path / "misc" / "vocal_separator" / "Kim_Vocal_2.onnx")
    model = tmp_path / "Kim_Vocal_2.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(SetupError, match="audio-separator"):  # the package is an official-path extra
        VocalSeparator(model)
    pipeline = load_pipeline(
        official_like / "memo", device="cpu", vae=official_like / "sd-vae-ft-mse",
        wav2vec2=official_like / "wav2vec2-base-960h",
    )  # fmt: skip
    assert pipeline.vocal_separator is None and "Vocal separation is off" in pipeline.model_info.notes
