"""stylefarm benchmarks: `python -m benchmarks --help`. Ratios in one run, never wall-clock asserts."""
