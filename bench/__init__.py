"""Benchmarks measured where the caller is: `python -m bench` (see the README)."""
