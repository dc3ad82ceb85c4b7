"""Benchmarks: ``python -m benchmarks [SUITE ...]`` prints a table of ratios to baselines.

Each suite is a module ``benchmarks/<suite>.py`` with
``run(settings: Settings, quick: bool) -> list[Measurement]``; every measurement names the
baseline it was compared with, measured in the same run.
"""
