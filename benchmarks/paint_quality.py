"""Paint Transformer quality figures: PSNR / SSIM of the painting vs the input, per level.

Baselines on the same 512 px images: mean-colour mosaics of 32 px and 16 px cells, and the
same network with untrained (random) weights. `shipped` uses the official defaults;
`shipped_color_mean` adds the opt-in `color: mean` (stroke colour averaged under the stroke);
`shipped_detail1` the opt-in `detail: 1` (painted at 2x, one more level of strokes half the size).
Goal: the shipped weights paint at least as faithfully as the 16 px mosaic.

    .venv/bin/python benchmarks/paint_quality.py                # ../shared/media images
    .venv/bin/python benchmarks/paint_quality.py --images a.jpg b.jpg --sheet scratch/sheet.jpg

Writes benchmarks/results/paint_quality.json. The contact sheet (input | painting | process)
is derived from the test photos, whose copyright is not cleared: it goes to scratch/ by
default, which git ignores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylefarm.plugins.paint_transformer.loading import load_painter, shipped_brushes
from stylefarm.plugins.paint_transformer.model import Painter
from stylefarm.plugins.paint_transformer.paint import PaintSettings, paint
from stylefarm.plugins.paint_transformer.train import init_weights

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a, b).item()
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM over RGB channels, 11x11 Gaussian window (sigma 1.5), data range 1."""
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    win = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 11, 11)

    def blur(x):
        return F.conv2d(x, win, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def mosaic(img: torch.Tensor, cell: int) -> torch.Tensor:
    """Per-cell mean colour (cells cut from the top-left, partial cells at the edges)."""
    h, w = img.shape[-2:]
    return F.interpolate(F.avg_pool2d(img, cell, ceil_mode=True), scale_factor=cell, mode="nearest")[..., :h, :w]


def load(path: Path, size: int) -> torch.Tensor:
    """RGB in [0,1], longer side resized to `size` (Lanczos)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = size / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]


def score(a, b) -> dict:
    return {"psnr": round(psnr(a, b), 3), "ssim": round(ssim(a, b), 4)}


def paint_levels(net, brushes, img, cfg: PaintSettings):
    """Final painting and the canvas after each pass (levels 0..K, then the border pass)."""
    after: dict[int, torch.Tensor] = {}
    process: list[torch.Tensor] = []

    def hook(level, canvas):
        after[level] = canvas.clone()
        process.append(canvas)

    with torch.inference_mode():
        out = paint(net, brushes, img, cfg, on_frame=hook).image
    return out, after, process[:: max(1, len(process) // 6)]


def evaluate(path: Path, nets: dict, brushes, size: int) -> tuple[dict, list]:
    img = load(path, size)
    row = {"image": path.name, "size": list(img.shape[-2:]), "mosaic32": score(mosaic(img, 32), img),
           "mosaic16": score(mosaic(img, 16), img)}
    sheet = [img]
    for name, (net, cfg) in nets.items():
        t = time.perf_counter()
        out, after, process = paint_levels(net, brushes, img, cfg)
        row[name] = {"final": score(out.clamp(0, 1), img), "seconds": round(time.perf_counter() - t, 2),
                     "per_pass": {str(k): score(v.clamp(0, 1), img) for k, v in sorted(after.items())}}
        if name == "shipped":
            sheet += [out] + process[-4:]
    return row, sheet


def summarize(rows: list[dict]) -> dict:
    keys = ["mosaic32", "mosaic16"] + [k for k in rows[0] if isinstance(rows[0][k], dict) and "final" in rows[0][k]]
    out = {}
    for k in keys:
        vals = [r[k]["final"] if "final" in r[k] else r[k] for r in rows]
        out[k] = {m: round(float(np.mean([v[m] for v in vals])), 4) for m in ("psnr", "ssim")}
    return out


def save_sheet(rows: list[list[torch.Tensor]], path: Path, cell: int = 192) -> None:
    """One row per image: input | painting | process frames."""
    tiles = []
    for row in rows:
        ims = [F.interpolate(t.clamp(0, 1), (cell, cell), mode="area") for t in row]
        tiles.append(torch.cat(ims + [torch.ones(1, 3, cell, cell)] * (6 - len(ims)), -1))
    grid = (torch.cat(tiles, -2)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", nargs="*", type=Path)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--weights", default=None, help="weights to evaluate (default: the shipped file)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "paint_quality.json")
    ap.add_argument("--sheet", type=Path, default=REPO / "scratch" / "paint_contact_sheet.jpg")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = args.images or sorted((SHARED / "media" / "images" / "paint").glob("*.jpg")) + sorted(
        (SHARED / "media" / "images" / "content").glob("*.jpg"))
    shipped, _ = load_painter(args.weights)
    torch.manual_seed(0)
    untrained = Painter(shipped.config)
    init_weights(untrained)
    nets = {"shipped": (shipped, PaintSettings()), "shipped_color_mean": (shipped, PaintSettings(color="mean")),
            "shipped_detail1": (shipped, PaintSettings(detail=1)),
            "shipped_detail1_color_mean": (shipped, PaintSettings(detail=1, color="mean")),
            "untrained": (untrained.eval(), PaintSettings())}
    brushes = shipped_brushes()
    rows, sheets = [], []
    for path in images:
        row, sheet = evaluate(path, nets, brushes, args.size)
        rows.append(row)
        sheets.append(sheet)
        print(json.dumps({k: row[k] for k in ("image", "mosaic16")} | {"shipped": row["shipped"]["final"]}))
    result = {"benchmark": "paint_quality", "size": args.size, "weights": args.weights or "paint_transformer/model",
              "machine": platform.machine(), "torch": torch.__version__, "mean": summarize(rows), "images": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    save_sheet(sheets[:6], args.sheet)
    print(json.dumps(result["mean"], indent=1))


if __name__ == "__main__":
    main()
