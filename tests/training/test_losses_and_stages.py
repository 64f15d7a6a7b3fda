"""The flow objective and the stage table as pure functions."""

from pathlib import Path

import pytest
import torch

from memo_model.models.presets import build_components
from memo_model.training.losses import (
    add_noise,
    emphasis_weights,
    filter_spikes,
    flow_matching_loss,
    motion_map,
    motion_weights,
    reference_difference_map,
    sample_sigmas,
)
from memo_model.training.stages import STAGES, apply_stage


def test_logit_normal_sigmas_live_on_the_training_grid():
    sigmas = sample_sigmas(20000, torch.Generator().manual_seed(0))
    assert sigmas.min() >= 0.001 and sigmas.max() <= 1.0
    assert torch.allclose(sigmas * 1000, (sigmas * 1000).round())
    assert abs(sigmas.median().item() - 0.5) < 0.02  # logit-normal(0, 1) is centred on 0.5
    assert (sigmas < 0.1).float().mean() < 0.05  # and thin in the tails


def test_noising_is_the_straight_line_between_data_and_noise():
    x0, noise = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    sigmas = torch.tensor([0.0, 1.0])
    noisy = add_noise(x0, noise, sigmas)
    torch.testing.assert_close(noisy[0], x0[0])
    torch.testing.assert_close(noisy[1], noise[1])


def test_official_weighting_is_the_x0_error_and_paper_is_lambda_eps_error():
    x0, noise, v_hat = torch.randn(3, 4, 2, 3, 3), torch.randn(3, 4, 2, 3, 3), torch.randn(3, 4, 2, 3, 3)
    sigmas = torch.tensor([0.2, 0.5, 0.9])
    z_t = add_noise(x0, noise, sigmas)
    s = sigmas.view(-1, 1, 1, 1, 1)
    x0_hat = z_t - s * v_hat
    official = (x0_hat - x0).square().flatten(1).mean(1)
    torch.testing.assert_close(flow_matching_loss(v_hat, x0, noise, sigmas, "official"), official)
    eps_hat = z_t + (1 - s) * v_hat
    paper = ((eps_hat - noise).square().flatten(1).mean(1)) / (1 - sigmas) ** 2
    torch.testing.assert_close(flow_matching_loss(v_hat, x0, noise, sigmas, "paper"), paper)
    with pytest.raises(ValueError, match="weighting"):
        flow_matching_loss(v_hat, x0, noise, sigmas, "l1")


def test_motion_weights_favour_what_moves_and_keep_the_loss_scale():
    generator = torch.Generator().manual_seed(0)
    latents = 0.01 * torch.randn(2, 4, 8, 6, 6, generator=generator)
    latents[0, :, ::2, 1, 2] += 1.0  # sample 0: one pixel opens and closes like a mouth
    latents[1, :, :4, 4, 4] += 1.0  # sample 1: another pixel changes once
    weights = motion_weights(latents, 4.0)
    assert weights.shape == (2, 1, 1, 6, 6)
    torch.testing.assert_close(weights.mean(dim=(3, 4)).flatten(), torch.ones(2))  # mean 1: same loss scale
    assert weights[0, 0, 0, 1, 2] > 5 * weights[0, 0, 0].median()
    assert weights[1, 0, 0, 4, 4] > 5 * weights[1, 0, 0].median()
    assert torch.equal(motion_weights(latents, 0.0), torch.ones_like(weights))  # strength 0: the paper's loss

    x0, noise, sigmas = latents, torch.randn(latents.shape, generator=generator), torch.tensor([0.5, 0.5])
    exact = noise - x0
    torch.testing.assert_close(
        flow_matching_loss(exact + 0.1, x0, noise, sigmas, pixel_weights=torch.ones_like(weights)),
        flow_matching_loss(exact + 0.1, x0, noise, sigmas),
    )
    wrong_mouth = exact.clone()
    wrong_mouth[0, :, :, 1, 2] += 1.0  # an error where it moves counts more than the plain mean
    assert (
        flow_matching_loss(wrong_mouth, x0, noise, sigmas, pixel_weights=weights)[0]
        > 5 * flow_matching_loss(wrong_mouth, x0, noise, sigmas)[0]
    )


def test_reference_difference_weights_favour_the_held_expression_and_combine_with_motion():
    generator = torch.Generator().manual_seed(1)
    reference = 0.01 * torch.randn(2, 4, 6, 6, generator=generator)
    latents = reference[:, :, None].repeat(1, 1, 8, 1, 1) + 0.01 * torch.randn(2, 4, 8, 6, 6, generator=generator)
    latents[:, :, :, 0, 3] += 1.0  # an expression held over the whole clip: not in the motion map
    latents[0, :, ::2, 4, 2] += 1.0  # a mouth that opens and closes
    held = reference_difference_map(latents, reference)
    assert held.shape == (2, 1, 6, 6)
    torch.testing.assert_close(held.mean(dim=(2, 3)).flatten(), torch.ones(2))
    assert held[0, 0, 0, 3] > 5 * held[0, 0].median() and held[1, 0, 0, 3] > 5 * held[1, 0].median()
    moving = motion_map(latents)
    assert moving[0, 0, 0, 3] < moving[0, 0].median() * 2  # the motion map does not see the held expression

    both = emphasis_weights([(moving, 2.0), (held, 2.0)])
    assert both.shape == (2, 1, 1, 6, 6)
    torch.testing.assert_close(both.mean(dim=(3, 4)).flatten(), torch.ones(2))  # still mean 1
    assert both[0, 0, 0, 0, 3] > 5 and both[0, 0, 0, 4, 2] > 5  # expression and mouth both weigh many times the mean
    torch.testing.assert_close(emphasis_weights([(moving, 2.0)]), motion_weights(latents, 2.0))


def test_spike_filter_drops_samples_above_threshold():
    per_sample = torch.tensor([0.02, 0.5, 0.04], requires_grad=True)
    loss, dropped = filter_spikes(per_sample, 0.1)
    assert dropped == 1 and loss.item() == pytest.approx(0.03)
    loss.backward()
    assert per_sample.grad[1] == 0
    all_dropped, count = filter_spikes(torch.tensor([0.5, 0.7], requires_grad=True), 0.1)
    assert count == 2 and all_dropped.item() == 0 and all_dropped.requires_grad


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_trains_only_its_parameters(stage):
    components = {k: v for k, v in build_components("tiny").items() if k != "audio_emotion_classifier"}
    trainable = {id(p) for p in apply_stage(STAGES[stage], components)}
    for component, module in components.items():
        for name, parameter in module.named_parameters():
            new = "motion_modules" in name or "audio_modules" in name
            expected = {
                "stage1": component in ("reference_net", "image_proj") or (component == "diffusion_net" and not new),
                "stage2_warmup": component == "audio_proj" or (component == "diffusion_net" and new),
                "stage2": True,
            }[stage]
            assert (id(parameter) in trainable) == expected == parameter.requires_grad, (component, name)


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("memo_tiny_*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_load(path):
    from memo_model.config import load_yaml
    from memo_model.training.train import TrainConfig

    config = load_yaml(TrainConfig, path)
    v2 = path.name.startswith("memo_tiny_v2_")
    assert config.model.manifest["resolution"] == config.data.resolution == (128 if v2 else 64)
    assert config.model.init_from or config.model.preset == ("memo-tiny-v2" if v2 else "memo-tiny")
    assert ("memo-tiny-v2" in config.model.vae) == v2
