"""Three-scale guidance: the plan, the combination, and its equivalence with the official single scale."""

import pytest
import torch

from memo_model.pipelines.guidance import PASSES, combine, guidance_plan


def test_equal_scales_need_two_passes_and_equal_official_cfg():
    plan = guidance_plan(3.5, 3.5, 3.5)
    assert [p.name for p, _ in plan] == ["unconditional", "full"]
    uncond, cond = torch.randn(2, 3, 4)
    guided = combine(torch.stack([uncond, cond]), [c for _, c in plan])
    torch.testing.assert_close(guided, uncond + 3.5 * (cond - uncond))


@pytest.mark.parametrize("scales", [(2.0, 3.0, 1.5), (1.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
def test_skipping_zero_passes_equals_computing_them(scales):
    predictions = torch.randn(4, 5)  # one per nested condition
    plan = guidance_plan(*scales)
    full = (1 - scales[0], scales[0] - scales[1], scales[1] - scales[2], scales[2])
    expected = combine(predictions, list(full))
    kept = torch.stack([predictions[PASSES.index(p)] for p, _ in plan])
    torch.testing.assert_close(combine(kept, [c for _, c in plan]), expected)
    assert abs(sum(c for _, c in plan) - 1.0) < 1e-9  # a prediction with every condition equal is unchanged


def test_nested_formula():
    e0, e_ref, e_audio, e_full = torch.randn(4, 7)
    s_ref, s_audio, s_emo = 2.0, 3.0, 1.5
    plan = guidance_plan(s_ref, s_audio, s_emo)
    guided = combine(torch.stack([e0, e_ref, e_audio, e_full]), [c for _, c in plan])
    expected = e0 + s_ref * (e_ref - e0) + s_audio * (e_audio - e_ref) + s_emo * (e_full - e_audio)
    torch.testing.assert_close(guided, expected)
