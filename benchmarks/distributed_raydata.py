"""Ray Data `map_batches` (actor pool) vs our Ray Core actor pool on the same chain and items.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/distributed_raydata.py [--items 64]

Decides the Ray executor's design (see pipeline/executors/ray_executor.py). Both use 2 actors,
1 torch thread each, batch 4, ordered output. JSON -> benchmarks/results/distributed_raydata.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from distributed_steps import ConvOptions, ConvStack  # noqa: E402

from stylefarm.executors.base import ChainRunner, StepCall  # noqa: E402
from stylefarm.executors.ray_executor import RayExecutor  # noqa: E402
from stylefarm.item import Item  # noqa: E402
from stylefarm.workflow import ExecutionSpec  # noqa: E402

CHAIN = [StepCall("bench_conv", ConvStack, ConvOptions())]


def images(n: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((size, size, 3), dtype=np.float32) for _ in range(n)]


class ChainUDF:
    """Ray Data callable class: the same ChainRunner, set up once per actor."""

    def __init__(self):
        self.runner = ChainRunner(CHAIN, "cpu", 1)
        self.runner.setup()

    def __call__(self, batch: dict) -> dict:
        items = [Item("bench", int(i), image=np.array(img)) for i, img in zip(batch["index"], batch["image"])]
        out = self.runner.run_batch(items)
        return {"index": batch["index"], "image": np.stack([r.image for r, _ in out])}


def run_ray_data(imgs: list[np.ndarray]) -> float:
    import ray.data
    from ray.data import ActorPoolStrategy

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    start = time.perf_counter()
    ds = ray.data.from_items([{"index": i, "image": img} for i, img in enumerate(imgs)])
    ds = ds.map_batches(ChainUDF, batch_size=4, compute=ActorPoolStrategy(size=2), num_cpus=1)
    order = [row["index"] for row in ds.iter_rows()]
    assert order == list(range(len(imgs)))
    return time.perf_counter() - start


def run_core(imgs: list[np.ndarray]) -> float:
    executor = RayExecutor(ExecutionSpec(backend="ray", actors=2, batch_size=4, threads=1, device="cpu"))
    start = time.perf_counter()
    order = [o.item.index for o in executor.map(CHAIN, (Item("bench", i, image=im) for i, im in enumerate(imgs)))]
    assert order == list(range(len(imgs)))
    executor.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    imgs = images(args.items, args.size)
    result = {"args": vars(args), "core_actors_s": [], "ray_data_s": []}
    for _ in range(args.repeat):
        result["core_actors_s"].append(round(run_core(imgs), 3))
        result["ray_data_s"].append(round(run_ray_data(imgs), 3))
    ray.shutdown()
    out = HERE / "results" / "distributed_raydata.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
