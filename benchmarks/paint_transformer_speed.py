"""Paint Transformer speed: the step's painting vs a bare loop of network + renderer,
and optionally vs the official `inference.main` run in the same process.

    .venv/bin/python benchmarks/paint_transformer_speed.py
    .venv/bin/python benchmarks/paint_transformer_speed.py [--size 640 --height 360] \
        --official scratch/official/inference --fixture ../shared/reference/painttransformer/fixture.pt

The official comparison needs an official-size network: it uses the fixture's (random)
official-size state_dict and the official brushes for both sides, so both paint the same
picture (also checked). Writes benchmarks/results/paint_transformer_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylefarm.plugins.paint_transformer.loading import load_painter, read_brush, shipped_brushes
from stylefarm.plugins.paint_transformer.model import build_painter
from stylefarm.plugins.paint_transformer.ops import sample_colors, to_patches
from stylefarm.plugins.paint_transformer.paint import PaintSettings, paint, to_window_units
from stylefarm.plugins.paint_transformer.render import render_grid

REPO = Path(__file__).resolve().parent.parent


def test_image(width: int, height: int | None = None) -> torch.Tensor:
    """A smooth synthetic picture (no test media needed)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height or width), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([x, y, 0.5 + 0.4 * torch.sin(9 * x * y)])[None]


def bare_loop(net, brushes, img: torch.Tensor) -> torch.Tensor:
    """The minimum work, as the official script does it: the picture centred on a black square of
    32 * 2^K px, then for each level cut patches, run the net, render; no options, no hooks."""
    h, w = img.shape[-2:]
    size = 32 * 2 ** max(int(np.ceil(np.log2(max(h, w) / 32))), 0)
    top, left = (size - h) // 2, (size - w) // 2
    img = F.pad(img, [left, size - w - left, top, size - h - top])
    return _bare_square(net, brushes, img)[..., top:top + h, left:left + w]


def _bare_square(net, brushes, img: torch.Tensor) -> torch.Tensor:
    size = img.shape[-1]
    canvas = torch.zeros_like(img)
    n_levels = int(np.log2(size // 32)) + 1
    for level in range(n_levels):
        n = 2**level
        t, c = F.interpolate(img, (32 * n, 32 * n)), F.interpolate(canvas, (32 * n, 32 * n))
        tp, cp = to_patches(t, 32), to_patches(c, 32)
        shape, logit = net(tp, cp)
        strokes = to_window_units(torch.cat([shape, sample_colors(tp, shape[..., :2])], -1))
        canvas = render_grid(strokes.view(1, n, n, -1, 8), (logit > 0).view(1, n, n, -1), brushes, canvas)
    n, b = size // 32, size // (2 * (size // 32))
    tp, cp = (to_patches(F.pad(x, [16] * 4), 32) for x in (img, canvas))
    shape, logit = net(tp, cp)
    strokes = to_window_units(torch.cat([shape, sample_colors(tp, shape[..., :2])], -1))
    out = render_grid(strokes.view(1, n + 1, n + 1, -1, 8), (logit != 0).view(1, n + 1, n + 1, -1), brushes,
                      F.pad(canvas, [b] * 4))
    return out[..., b:-b, b:-b]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.inference_mode():
            out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def official_runner(official_dir: Path, img: torch.Tensor, state: dict, workdir: Path):
    """A callable running the official `inference.main` on `img` with `state`; returns its painting."""
    sys.path.insert(0, str(official_dir))
    inference = importlib.import_module("inference")
    captured = {}
    inference.save_img = lambda t, path: captured.__setitem__("img", t.clone())
    model_path, img_path = workdir / "model.pth", workdir / "input.png"
    torch.save(state, model_path)
    arr = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(img_path)

    def run():
        with contextlib.chdir(official_dir):
            inference.main(str(img_path), str(model_path), str(workdir / "out"), need_animation=False)
        return captured["img"][None]

    return run, torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="width in px")
    ap.add_argument("--height", type=int, help="height in px (default: square); the official pads "
                                               "to a square of 32 * 2^K px, the step paints only what shows")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0 = torch default")
    ap.add_argument("--official", type=Path, help="directory of the official inference/ (scratch checkout)")
    ap.add_argument("--fixture", type=Path, help="fixture.pt with an official-size state_dict")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "paint_transformer_speed.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net, _ = load_painter(None)
    brushes, img = shipped_brushes(), test_image(args.size, args.height)
    t_step, a = timed(lambda: paint(net, brushes, img, PaintSettings()).image, args.repeats)
    t_bare, b = timed(lambda: bare_loop(net, brushes, img), args.repeats)
    result = {"benchmark": "paint_transformer_speed", "size": args.size, "height": args.height or args.size,
              "threads": torch.get_num_threads(),
              "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "shipped": {"paint_s": round(t_step, 3), "bare_loop_s": round(t_bare, 3),
                          "speed_vs_bare": round(t_bare / t_step, 3),
                          "max_abs_diff": float((a - b).abs().max())}}
    if args.official and args.fixture:
        result["official"] = compare_official(args, img)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def compare_official(args, img: torch.Tensor) -> dict:
    """Same official-size weights and official brushes on both sides; times and difference."""
    state = torch.load(args.fixture, map_location="cpu", weights_only=True)["state_dict"]
    net = build_painter(state)
    brush_dir = args.official / "brush"
    brushes = torch.cat([read_brush(brush_dir / f"brush_large_{k}.png") for k in ("vertical", "horizontal")])
    with tempfile.TemporaryDirectory() as tmp:
        run, quantised = official_runner(args.official, img, state, Path(tmp))
        t_off, ref = timed(run, args.repeats)
    t_ours, ours = timed(lambda: paint(net, brushes, quantised, PaintSettings()).image, args.repeats)
    diff = (ours - ref).abs()
    return {"official_s": round(t_off, 3), "ours_s": round(t_ours, 3), "speed_vs_official": round(t_off / t_ours, 3),
            "max_abs_diff": float(diff.max()), "frac_pixels_diff_gt_1e-4": float((diff > 1e-4).float().mean())}


if __name__ == "__main__":
    main()
