"""Benchmarks of swav_scaca against the host's swav (not tests: CI runs them only tiny)."""
