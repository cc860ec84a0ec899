"""Benchmarks: `make bench` (see run.py). Not tests: they print numbers and assert nothing."""
