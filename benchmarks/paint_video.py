"""Paint Transformer on video: time per frame and flicker, repainting every frame vs `stroke_reuse`.

The clip is a locked-off shot made from a real photo: a static background, a small object
(a crop of another photo) moving across it, and sensor noise (sigma 0.01) on every frame.
Flicker = mean absolute change between consecutive paintings over the background pixels the
object never touched (there the input changes only by noise, so an ideal painter is still).

    .venv/bin/python -m benchmarks.paint_video [--frames 24] [--size 384]

Writes benchmarks/results/paint_video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))


def make_clip(frames: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames HxWx3 float32 and the mask of pixels the moving object never covers."""
    from stylefarm.images import read_image, resize

    photos = sorted((SHARED / "media" / "images" / "content").glob("*.jpg")) or sorted(
        (REPO / "workflows" / "media").glob("*.jpg"))
    background = resize(read_image(photos[0])[0], size, size * 3 // 4)
    obj = resize(read_image(photos[-1])[0], size // 8, size // 8)
    h, w = background.shape[:2]
    oh, ow = obj.shape[:2]
    rng = np.random.default_rng(seed)
    still = np.ones((h, w), bool)
    clip = []
    for i in range(frames):
        frame = background.copy()
        x = int((w - ow) * i / max(frames - 1, 1))
        y = h // 2 - oh // 2
        frame[y : y + oh, x : x + ow] = obj
        still[y : y + oh, x : x + ow] = False
        clip.append(np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1).astype(np.float32))
    return clip, still


def paint_clip(clip: list[np.ndarray], reuse: float) -> tuple[list[np.ndarray], list[float], list[float]]:
    from stylefarm.item import Item
    from stylefarm.plugins.paint_transformer.step import PaintTransformerOptions, PaintTransformerStep

    step = PaintTransformerStep(PaintTransformerOptions(stroke_reuse=reuse, color="mean", pad="replicate"))
    step.setup("cpu")
    outs, seconds, reused = [], [], []
    for i, frame in enumerate(clip):
        start = time.perf_counter()
        out = step.process([Item("clip", i, frame=i, image=frame)])[0]
        seconds.append(time.perf_counter() - start)
        outs.append(out.image)
        reused.append(out.meta.get("strokes_reused", 0.0))
    return outs, seconds, reused


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", type=float, default=0.02)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip, still = make_clip(args.frames, args.size)
    rows = {}
    for name, reuse in (("repaint", 0.0), ("stroke_reuse", args.reuse)):
        outs, seconds, reused = paint_clip(clip, reuse)
        flicker = [float(np.abs(b - a)[still].mean()) for a, b in zip(outs, outs[1:])]
        rows[name] = {"stroke_reuse": reuse, "seconds_per_frame_median": round(float(np.median(seconds[1:])), 3),
                      "first_frame_s": round(seconds[0], 3), "background_flicker": round(float(np.mean(flicker)), 5),
                      "reused_fraction_mean": round(float(np.mean(reused[1:])), 4)}
        print(name, rows[name], flush=True)
    input_flicker = float(np.mean([np.abs(b - a)[still].mean() for a, b in zip(clip, clip[1:])]))
    result = {"benchmark": "paint_video", "frames": args.frames, "size": list(clip[0].shape[:2]),
              "threads": args.threads, "machine": platform.machine(), "torch": torch.__version__,
              "load_avg": os.getloadavg(), "input_background_change": round(input_flicker, 5), "runs": rows,
              "speedup": round(rows["repaint"]["seconds_per_frame_median"]
                               / rows["stroke_reuse"]["seconds_per_frame_median"], 3),
              "flicker_ratio": round(rows["stroke_reuse"]["background_flicker"]
                                     / max(rows["repaint"]["background_flicker"], 1e-9), 4)}
    out = REPO / "benchmarks" / "results" / "paint_video.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("input_background_change", "speedup", "flicker_ratio")}))


if __name__ == "__main__":
    main()
