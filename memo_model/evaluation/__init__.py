"""Evaluation on the synthetic world: pure metrics (metrics.py), analyzer-based video scoring (scoring.py), the
paper §5 evaluation and Table 2 memory ablation of a model (evaluate.py), its JSON / markdown report (report.py)
and the ``python -m memo_model evaluate`` command (cli.py)."""
