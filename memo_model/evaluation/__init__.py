"""Evaluation on the synthetic world: pure metrics (metrics.py) and analyzer-based video scoring (scoring.py)."""
