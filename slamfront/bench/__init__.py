"""Benchmarks: repeated runs after warm-up, reported as medians and p90 with the machine."""
