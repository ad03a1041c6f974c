"""StyleNAT speed on CPU: (1) pure-torch neighbourhood attention vs full attention, time and peak
memory at 32..256 px feature maps (linear vs quadratic, charted); (2) generator images/s at 256 px
through the pipeline (a `generate: stylenat` workflow, local executor) vs a bare model loop.

    .venv/bin/python benchmarks/stylenat_speed.py            # ~15-25 min on 2 busy cores
    .venv/bin/python benchmarks/stylenat_speed.py --quick    # smaller maps, 2 images

RANDOM WEIGHTS (the ffhq256 config: same shapes and compute as the release, 48.9 M parameters):
speed does not depend on the weight values. Attention: 1 batch, 2 heads of 32 channels (the
256 px stage of FFHQ-256 has 4 heads of 32 in two groups of 2), kernel 7, dilation 1; full
attention = softmax(q k^T + 0) v with the (HW x HW) matrix materialised, skipped where that
matrix alone would exceed --full-limit GiB. Peak memory: max RSS of a fresh subprocess per
point minus its RSS after building the inputs. Every ratio is measured in the same run.
The pipeline side includes building the model on the worker (setup), as a real run does.
Writes benchmarks/results/stylenat_speed.json and stylenat_attention.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS", REPO / "benchmarks" / "results"))
HEADS, DIM, KERNEL = 2, 32, 7


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def attention_point(method: str, side: int) -> dict[str, float]:
    """Time and peak memory of one attention call (run in a fresh process by `attention_curve`)."""
    import torch

    from stylefarm.plugins.stylenat.ops import na2d_torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, side, side, DIM, generator=gen) for _ in range(3))
    rpb = torch.randn(HEADS, 2 * KERNEL - 1, 2 * KERNEL - 1, generator=gen)

    def full() -> torch.Tensor:
        qf, kf, vf = (t.reshape(1, HEADS, side * side, DIM) for t in (q, k, v))
        return ((qf @ kf.transpose(-1, -2)).softmax(-1) @ vf).view_as(q)

    call = full if method == "full" else (lambda: na2d_torch(q, k, v, KERNEL, 1, rpb))
    base = _rss_mib()
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": _rss_mib() - base}


def attention_curve(sides: list[int], full_limit_gib: float) -> list[dict]:
    rows = []
    for side in sides:
        for method in ("na", "full"):
            matrix_gib = HEADS * (side * side) ** 2 * 4 / 2**30
            if method == "full" and matrix_gib > full_limit_gib:
                rows.append({"side": side, "method": method, "skipped": f"matrix alone {matrix_gib:.1f} GiB"})
                print(f"attention {side:4d}px {method:4s}  skipped ({matrix_gib:.1f} GiB matrix)", flush=True)
                continue
            code = (f"import json,sys; sys.path.insert(0,{str(REPO)!r}); from benchmarks.stylenat_speed import "
                    f"attention_point as p; print(json.dumps(p({method!r}, {side})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            row = {"side": side, "method": method, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"attention {side:4d}px {method:4s}  {row['seconds']:8.3f} s  {row['peak_mib']:8.1f} MiB", flush=True)
    return rows


def generator_speed(images: int, batch: int, repeat: int) -> dict:
    """images/s of the bare model loop and of the pipeline, same model, threads and batch size."""
    import torch

    from stylefarm.plugins.stylenat.ops import seed_latents, unnormalize
    from stylefarm.plugins.stylenat.step import StyleNATGenerator, StyleNATOptions

    step = StyleNATGenerator(StyleNATOptions(config="ffhq256", random_weights=True, na_backend="torch"))
    step.setup("cpu")
    model = step.model

    def bare() -> None:
        with torch.inference_mode():
            for first in range(0, images, batch):
                z = torch.cat([seed_latents(s, 1, 512) for s in range(first, min(images, first + batch))])
                out = unnormalize(model(z)[0]).clamp(0, 1).permute(0, 2, 3, 1).numpy()
                assert out.shape[1] == 256

    bare()  # warm-up: allocator, thread pool and the positional-grid caches are not what we measure
    bare_runs, pipe_runs = [], []
    for _ in range(repeat):  # interleaved, so drifting machine load hits both sides alike
        bare_runs.append(_timed(bare))
        pipe_runs.append(_timed(lambda: _pipeline(images, batch)))
    bare_s, pipe_s = statistics.median(bare_runs), statistics.median(pipe_runs)
    return {"images": images, "batch": batch, "repeat": repeat, "bare_s": bare_runs, "pipeline_s": pipe_runs,
            "bare_images_per_s": images / bare_s, "pipeline_images_per_s": images / pipe_s, "ratio": bare_s / pipe_s}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pipeline(images: int, batch: int) -> None:
    """The same images through `stylefarm run` machinery: source -> generator step -> PNG sink."""
    import warnings

    import yaml

    from stylefarm.plan import build_plan
    from stylefarm.runner import Run
    from stylefarm.workflow import read_yaml_file

    with tempfile.TemporaryDirectory() as tmp:
        data = {"version": 1, "inputs": [{"generate": "stylenat", "config": "ffhq256", "random_weights": True,
                                          "count": images, "na_backend": "torch"}],
                "output": {"dir": "out"}, "execution": {"device": "cpu", "batch_size": batch, "threads": 1}}
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Run(build_plan(read_yaml_file(path), Path(tmp)), progress=False).execute()


def chart(rows: list[dict], path: Path) -> None:
    """Log-log lines: seconds (left panel) and peak MiB (right panel) vs feature-map side."""
    import cv2
    import numpy as np

    img = np.full((420, 1000, 3), 255, np.uint8)
    for panel, key in enumerate(("seconds", "peak_mib")):
        _panel(img, [r for r in rows if r.get(key, 0) > 0], key, 70 + panel * 500)
    cv2.putText(img, "green: pure-torch neighbourhood attention (k7)   red: full attention", (70, 410),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def _panel(img, points: list[dict], key: str, x0: int, y0: int = 40, w: int = 400, h: int = 320) -> None:
    import math

    import cv2

    if not points:
        return
    lo, hi = math.log10(min(r[key] for r in points)), math.log10(max(r[key] for r in points))
    sides = sorted({r["side"] for r in points})
    span = max(1.0, math.log2(sides[-1] / sides[0]))

    def at(side: int, value: float) -> tuple[int, int]:
        x = x0 + int(w * math.log2(side / sides[0]) / span)
        return x, y0 + h - int(h * (math.log10(value) - lo) / max(hi - lo, 1e-9))

    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
    cv2.putText(img, f"{key} (log) vs map side (px)", (x0, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    for side in sides:
        cv2.putText(img, str(side), (at(side, 10 ** lo)[0] - 10, y0 + h + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1)
    for value in (10 ** lo, 10 ** hi):
        cv2.putText(img, f"{value:.3g}", (x0 - 65, at(sides[0], value)[1] + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1)
    for method, color in (("na", (60, 140, 40)), ("full", (40, 40, 200))):
        pts = [at(r["side"], r[key]) for r in points if r["method"] == method]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, color, 2)
        for p in pts:
            cv2.circle(img, p, 4, color, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="maps up to 128 px, 2 images")
    parser.add_argument("--full-limit", type=float, default=4.0, help="GiB cap on the full attention matrix")
    args = parser.parse_args()
    sides = [32, 64, 128] if args.quick else [32, 64, 128, 256]
    rows = attention_curve(sides, args.full_limit)
    import torch

    torch.set_num_threads(1)
    gen = generator_speed(images=2 if args.quick else 4, batch=2, repeat=1 if args.quick else 3)
    print(f"generator 256px: bare {gen['bare_images_per_s']:.4f} img/s, pipeline {gen['pipeline_images_per_s']:.4f} "
          f"img/s, ratio {gen['ratio']:.3f} (goal >= 0.95)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": {"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
                        "threads": 1, "load_avg": os.getloadavg()},
            "attention": {"heads": HEADS, "head_dim": DIM, "kernel": KERNEL, "rows": rows},
            "generator_256": {**gen, "goal": 0.95, "paper_gpu_images_per_s": 32.56}}
    (RESULTS / "stylenat_speed.json").write_text(json.dumps(data, indent=2))
    chart(rows, RESULTS / "stylenat_attention.png")


if __name__ == "__main__":
    main()
