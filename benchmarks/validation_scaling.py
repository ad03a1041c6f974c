"""Workflow validation time and peak memory vs number of inputs (issue: it must grow linearly).

    python benchmarks/validation_scaling.py [--counts 10000 100000 1000000]

Each count runs `stylefarm validate` as its own process (whole-process time and peak RSS, as a
user sees it) on a workflow of N `generate:` inputs, and writes results/validation_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(n: int, folder: Path) -> dict:
    path = folder / f"inputs{n}.yaml"
    path.write_text("inputs:\n" + "".join(f"  - {{generate: noise, seed: {i}}}\n" for i in range(n)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "stylefarm"), "validate", str(path)], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"inputs": n, "seconds": round(seconds, 2), "cpu_s": round(after.ru_utime - before.ru_utime, 2),
            "peak_rss_mb": round(after.ru_maxrss / 1024), "us_per_input": round(seconds / n * 1e6, 1),
            "yaml_mb": round(path.stat().st_size / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in args.counts]
    for row in rows:
        print(row)
    out = HERE / "results" / "validation_scaling.json"
    out.write_text(json.dumps({"rows": rows, "note": "peak RSS is the largest child so far (monotone)"}, indent=2))


if __name__ == "__main__":
    main()
