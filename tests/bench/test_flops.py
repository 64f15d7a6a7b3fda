"""bench.flops on the tiny preset at 16 px: the counts behave as the two clip loops do (meta tensors, seconds)."""

import pytest
import torch

from bench import flops
from memo_model.pipelines.pipeline_memo import DECODE_BATCH

RESOLUTION = 16  # tiny VAE factor 2: 8 x 8 latents
PAST = 16
STEPS = 20
FRAMES = 300  # 10 s at 30 fps: 19 clips, the last one keeping 12 frames


@pytest.fixture(scope="module")
def networks() -> flops.Networks:
    return flops.build_networks("tiny")


@pytest.fixture(scope="module")
def calls(networks) -> dict[str, flops.Call]:
    return flops.count_calls(networks, RESOLUTION, PAST)


def test_every_call_counts_flops_and_memory(calls):
    for name, call in calls.items():
        assert call.flops > 0, name
        assert call.weight_bytes > 0 and call.activation_bytes > 0, name
        assert call.peak_bytes == call.weight_bytes + call.input_bytes + call.activation_bytes
    # the denoiser and the memory write read the memory of 2 passes, which is far larger than the latents
    assert calls["denoiser_ours"].input_bytes > 10 * calls["vae_decode_ours"].input_bytes


@pytest.fixture(scope="module")
def all_reference(networks) -> flops.Call:
    """Our denoiser on 2 passes that both see the reference image (no unconditional row)."""
    return flops.count_denoiser(networks, flops.clip_inputs(networks, RESOLUTION, PAST), [True, True], False)


def test_denoiser_scales_with_passes(networks, all_reference):
    one = flops.count_denoiser(networks, flops.clip_inputs(networks, RESOLUTION, PAST, passes=1), [True], False)
    assert all_reference.flops == 2 * one.flops
    assert all_reference.input_bytes > one.input_bytes


def test_denoiser_scales_with_steps(calls):
    ours = {steps: flops.ours_clip(calls, steps)["denoiser"] for steps in (1, 10, 20)}
    official = {steps: flops.official_clip(calls, steps)["denoiser"] for steps in (1, 10, 20)}
    # ours: the last step (σ 0.001 -> 0) reuses the previous velocity, except in a 1-step schedule
    assert ours == {1: calls["denoiser_ours"].flops, 10: 9 * ours[1], 20: 19 * ours[1]}
    assert official == {1: calls["denoiser_official"].flops, 10: 10 * official[1], 20: 20 * official[1]}


def test_official_uc_mask_adds_the_reference_attention_of_the_unconditional_rows(calls, all_reference):
    """Official attn1: all 32 rows with the reference, then the 16 unconditional rows again alone. Ours runs each
    row once, so the official call costs exactly one half of an all-reference batch's attn1 more."""
    extra = calls["denoiser_official"].flops - calls["denoiser_ours"].flops
    assert extra > 0
    assert extra * 2 == all_reference.parts["reference/self attention (attn1)"]
    # the rest of the call is the same network
    for part in ("face cross-attention (attn2)", "audio modules", "temporal modules", "resnets"):
        assert (
            calls["denoiser_official"].parts[part] == calls["denoiser_ours"].parts[part] == all_reference.parts[part]
        )


def test_per_frame_costs_are_linear_where_the_loops_count_them_per_frame(calls):
    assert calls["vae_decode_ours"].flops == DECODE_BATCH * calls["vae_decode_official"].flops
    assert calls["vae_encode_ours"].flops == DECODE_BATCH * calls["vae_encode_official"].flops
    # the reference net sees each frame alone: every frame of a stack costs the same (1, 16 and 17 frames here),
    # so computing the portrait's features once per video saves exactly its frames
    one, sixteen = calls["reference_net_portrait"].flops, calls["reference_net_past"].flops
    per_frame = calls["reference_net_official"].flops - sixteen
    assert per_frame > 0
    assert sixteen - one == 15 * per_frame


def test_official_exceeds_ours_by_exactly_the_parts_that_differ(calls):
    ours, official = flops.ours_clip(calls, STEPS, PAST), flops.official_clip(calls, STEPS, PAST)
    for shared in ("memory write", "VAE decode", "audio projection"):
        assert ours[shared] == official[shared], shared
    assert calls["memory_write"].flops == calls["memory_write_official"].flops
    per_frame_encode = calls["vae_encode_official"].flops
    expected = (
        calls["reference_net_official"].flops
        - calls["reference_net_past"].flops  # 2 x 17 frames, not 2 x 16
        + STEPS * calls["denoiser_official"].flops
        - (STEPS - 1) * calls["denoiser_ours"].flops
        + (1 + PAST) * per_frame_encode
        - PAST * per_frame_encode  # the reference re-encoded every clip
        + 2 * calls["image_proj"].flops  # face tokens every clip
    )
    assert sum(official.values()) - sum(ours.values()) == expected


def test_video_amortises_the_once_per_video_parts(calls):
    clips = flops.num_clips(FRAMES)
    ours, official = flops.ours_video(calls, STEPS, FRAMES), flops.official_video(calls, STEPS, FRAMES)
    steady = flops.ours_clip(calls, STEPS)
    assert clips == 19
    assert ours["reference net"] == calls["reference_net_portrait"].flops + (clips - 1) * steady["reference net"]
    assert ours["VAE decode"] == FRAMES * calls["vae_decode_official"].flops  # the last clip decodes 12 frames
    assert official["VAE decode"] == clips * 16 * calls["vae_decode_official"].flops  # the official decodes 304
    # official clip 0 writes its memory at every step
    assert official["memory write"] == (clips + STEPS - 1) * calls["memory_write"].flops


def test_per_frame_numbers_are_positive_and_sum_to_the_total(calls):
    result = flops.analyse(calls, STEPS, FRAMES, all_weights=1)
    for side in ("ours", "official"):
        frame = result["per_frame_video"][side]
        assert all(frame[name] > 0 for name in flops.COMPONENTS)
        assert sum(frame[name] for name in flops.COMPONENTS) == pytest.approx(frame["total"], rel=1e-12)
        assert frame["denoiser"] == max(frame[name] for name in flops.COMPONENTS)
    assert 0 < result["ratio_video"] < 1 and 0 < result["ratio_steady"] < 1
    steady = result["per_frame_steady"]
    assert steady["ours"]["total"] * 16 == pytest.approx(sum(flops.ours_clip(calls, STEPS).values()))
    for row in result["gpu_seconds_per_frame"].values():
        assert row["official"] > row["ours"] > 0
    # batch 8 needs more activation memory than one frame at a time
    assert result["peak_bytes"]["ours"]["VAE decode"] > result["peak_bytes"]["official"]["VAE decode"]


def test_live_bytes_tracks_allocations_and_frees():
    external = torch.empty(1000, device="meta")  # exists before: never counted, nor its views
    with flops.LiveBytes(external=[external]) as tracker:
        view = external.view(10, 100)
        a = torch.empty(100, device="meta")  # 400 bytes
        b = a + 1  # 800 alive
        del a
        c = b * 2  # a freed: 800 alive again
        d = c.view(4, 25)  # a view: no new bytes
        del b, c
        e = torch.empty(50, device="meta", dtype=torch.bfloat16)  # d's 400 + 100
    assert tracker.peak == 800
    assert tracker.current == 500
    del view, d, e
