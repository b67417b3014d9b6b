"""Benchmarks of the contact retention pipeline: `python -m benchmarks.run --contacts N`."""
