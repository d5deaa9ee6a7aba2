"""Benchmarks: each prints its figures as JSON with ``--json``."""
