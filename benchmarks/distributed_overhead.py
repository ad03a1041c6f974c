"""Throughput of the local, Ray and Dask executors on the same CPU-bound torch chain.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/distributed_overhead.py [--items 64] [--size 128]

Each torch worker uses 1 thread. Figures: wall seconds of `map()` over all items (actor/worker
start included) and steady items/s (from the first to the last outcome). Goals (issue 5):
2 actors >= 1.8x one actor; Ray with one actor >= 0.9x local. JSON -> benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from distributed_steps import ConvOptions, ConvStack  # noqa: E402

from stylefarm.executors import make_executor  # noqa: E402
from stylefarm.executors.base import StepCall  # noqa: E402
from stylefarm.item import Item  # noqa: E402
from stylefarm.workflow import ExecutionSpec  # noqa: E402


def items(n: int, size: int):
    rng = np.random.default_rng(0)
    for i in range(n):
        yield Item("bench", i, frame=i, image=rng.random((size, size, 3), dtype=np.float32))


def measure(backend: str, actors: int, n: int, size: int, device: str) -> dict:
    spec = ExecutionSpec(backend=backend, actors=actors, batch_size=4, threads=1, device=device,
                         gpus_per_actor=1 if device == "cuda" and backend != "local" else 0)
    chain = [StepCall("bench_conv", ConvStack, ConvOptions())]
    executor = make_executor(spec)
    start = time.perf_counter()
    first = None
    count = 0
    for outcome in executor.map(chain, items(n, size)):
        first = first or time.perf_counter()
        count += outcome.error is None
    end = time.perf_counter()
    executor.close()
    steady = (count - 1) / (end - first) if count > 1 and end > first else None
    return {"backend": backend, "actors": actors, "items": count, "wall_s": round(end - start, 3),
            "items_per_s_wall": round(count / (end - start), 3), "items_per_s_steady": steady and round(steady, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - t0
    runs = [measure(b, a, args.items, args.size, args.device)
            for b, a in [("local", 1), ("ray", 1), ("ray", 2), ("dask", 1), ("dask", 2)]]
    ray.shutdown()
    by = {(r["backend"], r["actors"]): r for r in runs}
    ratios = {
        "ray_2_vs_1_steady": by["ray", 2]["items_per_s_steady"] / by["ray", 1]["items_per_s_steady"],
        "dask_2_vs_1_steady": by["dask", 2]["items_per_s_steady"] / by["dask", 1]["items_per_s_steady"],
        "ray_1_vs_local_steady": by["ray", 1]["items_per_s_steady"] / by["local", 1]["items_per_s_steady"],
        "ray_1_vs_local_wall": by["ray", 1]["items_per_s_wall"] / by["local", 1]["items_per_s_wall"],
        "dask_1_vs_local_steady": by["dask", 1]["items_per_s_steady"] / by["local", 1]["items_per_s_steady"],
    }
    result = {"args": vars(args), "cpus": os.cpu_count(), "python": platform.python_version(),
              "ray_init_s": round(ray_init, 2), "runs": runs, "ratios": {k: round(v, 3) for k, v in ratios.items()}}
    out = HERE / "results" / f"distributed_overhead_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
