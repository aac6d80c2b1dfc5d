"""Benchmarks: ``make bench`` runs bench/run.py. See docs/benchmarks.md."""
