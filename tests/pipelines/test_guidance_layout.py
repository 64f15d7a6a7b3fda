"""The guidance batch's two layouts: "per-sample" (ours) and "official" (the official inference's tiled rows)."""

import numpy as np
import pytest
import torch
from einops import rearrange

from memo_model.models.reference_net import ReferenceFeatures
from memo_model.pipelines.guidance import official_reference_rows, official_stack_passes, pass_references
from memo_model.pipelines.request import GenerationRequest
from tests.conftest import tiny_inputs


def test_official_rows_are_torch_repeat_of_the_batch():
    """The official code tiles b per-sample tensors with ``.repeat(n, 1, 1)``: row r holds sample r mod b."""
    per_sample = torch.arange(2)[:, None, None].float()
    tiled = per_sample.repeat(16, 1, 1)[:, 0, 0].long()  # what the official spatial attention sees per row
    assert torch.equal(official_reference_rows(2, 16), tiled)
    stacked = per_sample.repeat(34 // 2, 1, 1)[:, 0, 0].long().view(2, 17)  # face tokens over 2 stacks of 17
    assert torch.equal(official_stack_passes(2, 17), stacked)
    assert official_stack_passes(2, 17)[:, 0].tolist() == [0, 1]  # each pass's reference image keeps its own face
    assert official_stack_passes(2, 17)[0, :4].tolist() == [0, 1, 0, 1]  # its past frames alternate


def test_pass_references_gathers_each_frame_from_its_face_condition():
    conditions = ReferenceFeatures((torch.stack([torch.zeros(17, 1, 2, 2), torch.ones(17, 1, 2, 2)]),))
    condition_index = torch.tensor([0, 1])
    per_sample = pass_references(conditions, condition_index, "per-sample")
    assert per_sample.layers[0][:, :, 0, 0, 0].tolist() == [[0.0] * 17, [1.0] * 17]
    official = pass_references(conditions, condition_index, "official").layers[0][:, :, 0, 0, 0]
    assert official[0].tolist() == [float(i % 2) for i in range(17)]
    assert official[1].tolist() == [float((17 + i) % 2) for i in range(17)]
    with pytest.raises(ValueError, match="per-sample, official"):
        pass_references(conditions, condition_index, "tiled")


@torch.no_grad()
def test_diffusion_net_reads_the_reference_image_of_the_given_rows(tiny):
    """Module level: ``reference_rows`` picks whose reference image each frame row attends to."""
    inputs = tiny_inputs(tiny, batch=2, frames=4)
    face = tiny["image_proj"](inputs["face_embedding"])
    reference = tiny["reference_net"](inputs["reference_latents"], face)
    audio = tiny["audio_proj"](inputs["audio_features"])
    net = tiny["diffusion_net"]
    memory = net.write_memory(reference)

    def run(features, rows=None):
        args = (inputs["sample"], 500.0, features, face, audio, inputs["emotion"])
        return net(*args, memory=memory, reference_rows=rows)

    own_rows = torch.arange(8) // 4  # (b f) rows, b-major: each row its own sample
    torch.testing.assert_close(run(reference, own_rows), run(reference), rtol=0, atol=0)
    # every row on sample 0's reference image = sample 1's reference frame replaced by sample 0's
    swapped = ReferenceFeatures(tuple(torch.cat([x[:, :1][[0, 0]], x[:, 1:]], dim=1) for x in reference.layers))
    torch.testing.assert_close(run(reference, torch.zeros(8, dtype=torch.long)), run(swapped), rtol=0, atol=0)
    official = run(reference, official_reference_rows(2, 4))
    assert not torch.allclose(official, run(reference))  # tiled rows mix the two samples' reference images


def clip_inputs(pipeline, num_clips=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = pipeline.model_info.resolution
    audio_cfg = pipeline.audio_proj.config
    return {
        "reference_image": torch.rand(1, 3, size, size, generator=generator) * 2 - 1,
        "face_embedding": torch.randn(1, pipeline.image_proj.config.clip_embeddings_dim, generator=generator),
        "audio": torch.randn(
            num_clips, 16, audio_cfg.seq_len, audio_cfg.blocks, audio_cfg.channels, generator=generator
        ),
        "emotions": [3, 5][:num_clips],
    }


def run(pipeline, inputs, **options):
    return list(pipeline.run_clips(**inputs, **options))


def test_layouts_agree_with_one_pass_and_differ_with_two(pipeline):
    inputs = clip_inputs(pipeline)
    options = {"steps": 2, "generator": None}
    one_pass = {"guidance": (1.0, 1.0, 1.0)}  # coefficients (0, 0, 0, 1): the full pass alone
    ours = run(pipeline, inputs, guidance_layout="per-sample", **one_pass, **options)
    official = run(pipeline, inputs, guidance_layout="official", **one_pass, **options)
    for a, b in zip(ours, official, strict=True):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-5, atol=1e-5)  # same maths, other memory order
    two_passes = {"guidance": (3.5, 3.5, 3.5)}
    ours = run(pipeline, inputs, guidance_layout="per-sample", **two_passes, **options)
    official = run(pipeline, inputs, guidance_layout="official", **two_passes, **options)
    assert not torch.allclose(ours[0].latents, official[0].latents)


def test_request_takes_the_layout_and_refuses_others(media, pipeline, tmp_path):
    base = GenerationRequest(image=media / "portrait.png", audio=media / "speech_0.5s.wav", steps=1)
    assert "guidance_layout must be one of per-sample, official" in base.replace(guidance_layout="x").problems()[0]
    result = pipeline(base.replace(guidance_layout="official", output=tmp_path / "official.mp4"))
    assert result.num_frames > 0
    import json

    assert json.loads(result.settings_path.read_text())["request"]["guidance_layout"] == "official"


@torch.no_grad()
def test_run_clips_is_what_a_request_runs(media, pipeline, tmp_path):
    """``__call__`` on a file request is the tensor-level loop fed with the request's tensors: same frames."""
    request = GenerationRequest(
        image=media / "portrait.png", audio=media / "speech_1s.wav", steps=2, seed=7, output=tmp_path / "v.mp4"
    )
    streamed = []
    result = pipeline(request, callback=lambda p: p.frames is not None and streamed.append(p.frames))

    from memo_model.audio.io import load_audio
    from memo_model.pipelines.emotions import plan_emotions
    from memo_model.vision.face import prepare_portrait
    from memo_model.vision.video_io import frames_to_uint8

    portrait = prepare_portrait(request.image, pipeline.model_info.resolution, request.crop_scale, True)
    embedding, _ = pipeline.identity_embedding(portrait)
    waveform = load_audio(request.audio)
    emotions = plan_emotions(waveform, pipeline.emotion_detector, request, 16).used
    image = rearrange(torch.from_numpy(np.asarray(portrait.image, np.float32) / 127.5 - 1), "H W c -> 1 c H W")
    clips = pipeline.run_clips(
        image,
        embedding,
        pipeline.audio_features.iter_clips(waveform, request.fps),
        emotions,
        guidance=request.guidance_scales(pipeline.model_info.default_guidance),
        steps=2,
        generator=torch.Generator().manual_seed(7),
        num_frames=result.num_frames,
    )
    frames = np.concatenate([frames_to_uint8(rearrange(c.frames, "f c H W -> f H W c").numpy()) for c in clips])
    assert len(frames) == result.num_frames
    np.testing.assert_array_equal(frames, np.concatenate(streamed))


@torch.no_grad()
def test_run_clips_takes_noise_timesteps_and_audio_tokens(pipeline):
    inputs = clip_inputs(pipeline, num_clips=1)
    c, s = pipeline.vae.config.latent_channels, pipeline.model_info.resolution // pipeline.latent_factor
    noise = torch.randn(1, c, 16, s, s, generator=torch.Generator().manual_seed(1))
    with_noise = run(pipeline, inputs, noise=noise, timesteps=[1000.0, 500.0])
    again = run(pipeline, inputs, noise=noise, timesteps=[1000.0, 500.0], generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(with_noise[0].latents, again[0].latents, rtol=0, atol=0)  # noise given: no draw
    other_schedule = run(pipeline, inputs, noise=noise, timesteps=[1000.0, 250.0])
    assert not torch.allclose(with_noise[0].latents, other_schedule[0].latents)
    with pipeline.autocast():  # the precision the pipeline projects its audio in
        tokens = pipeline.audio_proj(inputs["audio"]).float()
    schedule = {"noise": noise, "timesteps": [1000.0, 500.0]}
    from_tokens = run(pipeline, {**inputs, "audio": tokens}, audio_is_tokens=True, **schedule)
    torch.testing.assert_close(from_tokens[0].latents, with_noise[0].latents)
    with pytest.raises(ValueError, match="noise has 1 clips"):
        run(pipeline, clip_inputs(pipeline, num_clips=2), noise=noise)
