"""The pieces every training loop shares (memo_model/training/loop.py): the warm-up + cosine schedule, log.csv,
when to checkpoint, resuming a single-model run, the report."""

import csv
import json

import pytest
import torch

from memo_model.training.checkpoints import save_checkpoint
from memo_model.training.loop import (
    CsvLog,
    checkpoint_due,
    cosine_share,
    resume_step,
    set_learning_rate,
    write_report,
)


def test_cosine_without_warm_up_falls_from_one_to_zero():
    shares = [cosine_share(step, 100) for step in range(101)]
    assert shares[0] == 1.0 and shares[50] == pytest.approx(0.5) and shares[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(shares, shares[1:], strict=False))
    assert cosine_share(150, 100) == shares[100]  # past the end it stays at the end


def test_warm_up_multiplies_the_cosine_and_the_decay_ends_at_its_final_share():
    steps, warmup, final = 1000, 100, 0.05
    assert cosine_share(0, steps, warmup, final) == pytest.approx(1 / warmup)  # the first update: 1 / warmup
    for step in (9, 49, 98):
        cosine = cosine_share(step, steps, final_share=final)
        assert cosine_share(step, steps, warmup, final) == pytest.approx((step + 1) / warmup * cosine)
    shares = [cosine_share(step, steps, warmup, final) for step in range(steps + 1)]
    assert max(shares) == shares[warmup - 1]  # the peak is where the warm-up ends
    assert shares[steps] == pytest.approx(final) and cosine_share(2 * steps, steps, warmup, final) == shares[steps]
    assert shares[steps // 2] == pytest.approx((1 + final) / 2)


def test_set_learning_rate_sets_every_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [a]}, {"params": [b], "lr": 5.0}], lr=1.0)
    set_learning_rate(optimizer, 0.25)
    assert [group["lr"] for group in optimizer.param_groups] == [0.25, 0.25]


def read_rows(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_csv_log_starts_anew_or_appends(tmp_path):
    path = tmp_path / "log.csv"
    log = CsvLog(path, ("step", "loss"), append=False)
    assert read_rows(path) == [["step", "loss"]]  # the header is on disk before the first row
    log.write([1, 0.5])
    assert read_rows(path) == [["step", "loss"], ["1", "0.5"]]  # each row is on disk at once

    CsvLog(path, ("step", "loss"), append=True).write([2, 0.25])  # a resumed run: no second header
    assert read_rows(path) == [["step", "loss"], ["1", "0.5"], ["2", "0.25"]]

    CsvLog(path, ("step", "loss"), append=False).write([1, 0.75])  # a fresh run in the same folder
    assert read_rows(path) == [["step", "loss"], ["1", "0.75"]]
    CsvLog(tmp_path / "new.csv", ("step",), append=True)  # appending to nothing starts with the header
    assert read_rows(tmp_path / "new.csv") == [["step"]]


def test_checkpoints_are_due_every_n_steps_and_at_the_last():
    assert [step for step in range(1, 11) if checkpoint_due(step, 10, 4)] == [4, 8, 10]


def test_resume_restores_model_optimiser_and_step(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "checkpoint", model, optimizer, step=7)

    restored = torch.nn.Linear(3, 2)
    restored_optimizer = torch.optim.AdamW(restored.parameters(), lr=1e-2)
    assert resume_step(tmp_path / "checkpoint", restored, restored_optimizer) == 7
    for name, value in model.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], value, rtol=0, atol=0)
    moments = restored_optimizer.state_dict()["state"][0]
    torch.testing.assert_close(moments["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"], rtol=0, atol=0)


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path):
    model = torch.nn.Linear(1, 1)
    with pytest.raises(FileNotFoundError, match="run once without --resume"):
        resume_step(tmp_path / "checkpoint", model, torch.optim.AdamW(model.parameters()))


def test_report_is_indented_json_with_a_final_newline(tmp_path):
    write_report(tmp_path, {"steps": 3, "held_out": {"psnr": 24.0}})
    text = (tmp_path / "report.json").read_text()
    assert text.endswith("}\n") and json.loads(text) == {"steps": 3, "held_out": {"psnr": 24.0}}
    assert text == json.dumps({"steps": 3, "held_out": {"psnr": 24.0}}, indent=2) + "\n"
