"""Evaluation beyond the host's: CAM localization (the benchmarks) and a checkpoint's masks."""
