"""Benchmarks: `python -m bench.speed` (CPU, against the original recipe) and
`python bench/gpu_check.py` (the CUDA path, no Prefect or DVC needed)."""
