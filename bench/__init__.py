"""Benchmarks: run each as `python -m bench.bench_NAME` from the checkout; each exits non-zero on a missed goal."""
