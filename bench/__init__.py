"""unmask benchmarks: each module has ``run(tiny: bool = False) -> dict`` returning its figures.

``python -m bench`` (``make bench``) runs them all, prints a table and writes bench/results.json.
Ratios measured inside one run are what we report; absolute times on a shared 2-core machine are noisy.
"""
