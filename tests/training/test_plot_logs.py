"""Loss-curve plotting: resumed logs keep the last value of a repeated step; the PNG is written."""

from PIL import Image

from memo_model.training.plot_logs import moving_average, plot_runs, read_log


def _log(folder, rows):
    folder.mkdir()
    lines = ["step,loss,raw_loss_mean,spikes_dropped,elapsed_s"] + [f"{s},{v},{v},0,1.0" for s, v in rows]
    (folder / "log.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_resumed_log_keeps_the_rerun_values(tmp_path):
    run = _log(tmp_path / "stage1", [(10, 0.5), (20, 0.4), (30, 0.3), (20, 0.35), (30, 0.25), (40, 0.2)])
    steps, losses = read_log(run / "log.csv")
    assert steps.tolist() == [10, 20, 30, 40] and losses.tolist() == [0.5, 0.35, 0.25, 0.2]
    assert moving_average(losses, 2).tolist() == [0.5, 0.425, 0.3, 0.225]


def test_plot_writes_one_panel_per_run(tmp_path):
    runs = [_log(tmp_path / name, [(i, 1.0 / i) for i in range(1, 50)]) for name in ("a", "b")]
    path = plot_runs(runs, tmp_path / "loss.png")
    width, height = Image.open(path).size
    assert width > 1.8 * height  # two panels side by side
