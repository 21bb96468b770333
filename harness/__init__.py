"""Drives the real bot server with simulated calls: the terminal call and the benchmarks."""
