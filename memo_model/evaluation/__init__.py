"""Evaluation on the synthetic world: the paper §5 measures and the Table 2 memory ablation of a model.

evaluate.py (the driver: plan the videos, generate each once, hand them to the parts, assemble the result),
parts.py (one per measure), scoring.py (reading frames with the face analyzer), report.py (evaluation.json and
evaluation.md) and cli.py (``python -m memo_model evaluate``). The pure metrics live in ``memo_model/metrics.py``.
"""
