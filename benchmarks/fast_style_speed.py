"""fast_style speed: the step's frames/s vs the bare network on the same tensors (goal >= 0.95x).

    .venv/bin/python benchmarks/fast_style_speed.py [--size 512x384] [--frames 8] [--rounds 5] [--threads 1]

Both sides use the same random Johnson (and cin26-layout) net, same thread count, same device;
rounds alternate step / bare, and time is this process's CPU time (one thread), so other jobs on a
shared machine barely count (`--wall` for wall-clock; use it on a GPU). The step's extra work is
numpy <-> torch conversion, padding to a multiple of 4, clipping and the Item wrapper.
Writes benchmarks/results/fast_style_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from stylefarm.item import Item
from stylefarm.plugins.fast_style.step import FastStyleOptions, FastStyleStep

RESULTS = Path(__file__).resolve().parent / "results"
CLOCK = time.process_time  # CPU seconds: with one thread, other users of a shared machine do not count


def frames(n: int, w: int, h: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((h, w, 3), dtype=np.float32) for _ in range(n)]


def time_step(step: FastStyleStep, images: list[np.ndarray]) -> float:
    """Seconds for the step to process the frames one item per batch (a video's usual batch_size 1)."""
    items = [Item("bench", i, image=im) for i, im in enumerate(images)]
    start = CLOCK()
    for item in items:
        step.process([item])
    return CLOCK() - start


def time_bare(net: torch.nn.Module, style: torch.Tensor, images: list[np.ndarray]) -> float:
    """The minimum: tensors ready in NCHW, the net's forward under inference_mode, nothing else."""
    tensors = [torch.from_numpy(im.transpose(2, 0, 1).copy())[None] for im in images]
    start = CLOCK()
    with torch.inference_mode():
        for x in tensors:
            net(x, style)
    return CLOCK() - start


def measure(layout: str, size: tuple[int, int], n: int, rounds: int) -> dict:
    step = FastStyleStep(FastStyleOptions(random_weights=True, net=layout))
    step.setup("cpu")
    images = frames(n, *size)
    time_step(step, images[:1])  # warm-up
    time_bare(step.net, step.styles[0], images[:1])
    step_s, bare_s = [], []
    for r in range(rounds):  # alternate the order too: load on a shared machine drifts within a round
        if r % 2:
            bare_s.append(time_bare(step.net, step.styles[0], images))
        step_s.append(time_step(step, images))
        if not r % 2:
            bare_s.append(time_bare(step.net, step.styles[0], images))
    ratios = [b / s for s, b in zip(step_s, bare_s, strict=True)]
    return {"layout": layout, "size": f"{size[0]}x{size[1]}", "frames": n,
            "step_fps": n / statistics.median(step_s), "bare_fps": n / statistics.median(bare_s),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "goal": 0.95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x384")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layouts", default="johnson,cin26")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    rows = []
    for layout in args.layouts.split(","):
        row = measure(layout, (w, h), args.frames, args.rounds)
        print(f"{layout:8s} {row['size']}: step {row['step_fps']:.2f} fps, bare {row['bare_fps']:.2f} fps, "
              f"ratio {row['ratio_median']:.3f} (min {row['ratio_min']:.3f}, goal >= 0.95)", flush=True)
        rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "fast_style_speed.json"
    out.write_text(json.dumps({"benchmark": "fast_style_speed", "machine": platform.node(), "threads": args.threads,
                               "clock": "wall" if args.wall else "process CPU time",
                               "torch": torch.__version__, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
