"""A PNG plot of per-frame scores (PIL only: no plotting library is a dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

COLOURS = {"e_warp": (200, 40, 40), "frame_diff": (40, 90, 200), "content_loss": (30, 150, 60),
           "style_loss": (150, 60, 170)}


def plot_per_frame(results: dict[str, dict[str, Any]], path: Path, width: int = 720, row: int = 150) -> Path:
    """One panel per metric; one line per evaluated run (label -> result of `evaluate`)."""
    metrics = [m for m in COLOURS if any(r["per_frame"] and any(f.get(m) is not None for f in r["per_frame"])
                                         for r in results.values())]
    image = Image.new("RGB", (width, 20 + row * max(1, len(metrics))), "white")
    draw = ImageDraw.Draw(image)
    shades = [1.0, 0.55, 0.3, 0.75]
    left, right = 60, width - 10
    if not metrics:  # one frame and no losses: nothing varies over time
        draw.text((left, 40), "no per-frame scores (a single frame, no VGG losses)", fill=(90, 90, 90))
    for panel, metric in enumerate(metrics):
        top = 20 + panel * row
        bottom = top + row - 30
        series = {label: [(f["index"], f[metric]) for f in r["per_frame"] if f.get(metric) is not None]
                  for label, r in results.items()}
        values = [v for pts in series.values() for _, v in pts]
        frames = max((i for pts in series.values() for i, _ in pts), default=1) or 1
        high = max(values, default=1.0) or 1.0
        draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
        draw.text((4, top), metric, fill=COLOURS[metric])
        draw.text((4, top + 12), f"{high:.3g}", fill=(90, 90, 90))
        draw.text((4, bottom - 10), "0", fill=(90, 90, 90))
        for n, (label, pts) in enumerate(series.items()):
            shade = shades[n % len(shades)]
            colour = tuple(int(255 - (255 - c) * shade) for c in COLOURS[metric])
            xy = [(left + (right - left) * i / frames, bottom - (bottom - top) * v / high) for i, v in pts]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            draw.text((right - 200, top + 4 + 12 * n), label[:32], fill=colour)
    draw.text((left, 4), "per-frame scores (x: frame)", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
