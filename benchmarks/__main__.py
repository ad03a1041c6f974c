"""Run the benchmark suite: `python -m benchmarks [--case P1 --case P3] [--size tiny] [--repeat 3]`.

`python -m benchmarks --gpu [gpu.py options]` runs the GPU benchmark instead (benchmarks/gpu.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .cases import CASES
from .harness import run_cases, save


def main() -> None:
    if "--gpu" in sys.argv[1:]:  # every other argument belongs to benchmarks/gpu.py
        from .gpu import main as gpu_main

        return gpu_main([a for a in sys.argv[1:] if a != "--gpu"])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--gpu", action="store_true", help="run benchmarks/gpu.py (see its --help)")
    parser.add_argument("--case", action="append", help="case name (repeatable); default: all")
    parser.add_argument("--size", action="append", help="tiny | small | large (repeatable); default: per case")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and size (median reported)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cases = [c for c in CASES if not args.case or c.name in args.case]
    results = run_cases(cases, args.size, args.repeat)
    print(f"saved {save(results, cases)}")


if __name__ == "__main__":
    main()
