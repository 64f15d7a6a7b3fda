"""Benchmarks and probes, run from the repository root as ``python -m bench.<name>`` (``python -m bench.flops``).

Each times or probes the library's own steps (``MemoPipeline.prepare_clip``, ``denoise_clip``, ...), never copies
of them, and writes its results as JSON under ``bench/results/`` (``results_file.py``). docs/PERFORMANCE.md reads
them.
"""
