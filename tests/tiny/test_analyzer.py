"""The face analyzer's trainer (memo_model/tiny/analyzer.py): a tiny run saves a loadable analyzer and its report.
The shipped analyzer's held-out accuracy is tested with the network, in tests/data/test_synthetic_analyzer.py."""

import json

from memo_model.data.synthetic.analyzer import load_analyzer
from memo_model.tiny.analyzer import train_analyzer


def test_train_analyzer_runs_and_saves(tmp_path):
    report = train_analyzer(tmp_path, steps=2, batch_size=2, num_identities=3, log_every=1, evaluate=False)
    assert report["steps"] == 2 and report["frames_seen"] == 4
    assert json.loads((tmp_path / "report.json").read_text()) == report
    analyzer = load_analyzer(tmp_path)
    assert analyzer.config.embedding_dim > 0
