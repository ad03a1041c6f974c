"""The before/after picture of docs/temporal.md, from shipped demo media only.

A synthetic pan + zoom over workflows/media/astronaut.jpg, stylized by cin26 per frame (left)
and with `temporal: flow_blend` (right). Top: the frame. Bottom: the warping error of that frame
against the next one (|O_t - warp(O_t+1)|, x4; grey = occluded, not counted), i.e. the flicker.

    .venv/bin/python -m benchmarks.temporal_figure      # writes docs/temporal_before_after.jpg
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.temporal_eval import filtered, load_photo, make_step, pan_zoom, stylize
from stylefarm.flow import flow_pair, warp
from stylefarm.temporal import TemporalOptions

OUT = Path(__file__).resolve().parent.parent / "docs" / "temporal_before_after.jpg"


def error_map(outputs: list[np.ndarray], frames: list[np.ndarray], t: int) -> tuple[np.ndarray, float]:
    pair = flow_pair(frames[t], frames[t + 1], None, None)
    warped = warp(outputs[t + 1], pair.full(pair.fw))
    diff = np.abs(warped - outputs[t]).mean(axis=-1)
    keep = ~pair.occluded_prev
    e_warp = float((((warped - outputs[t]) ** 2).mean(axis=-1))[keep].mean())
    shown = np.repeat(np.clip(diff * 4, 0, 1)[..., None], 3, axis=-1)
    shown[~keep] = 0.5
    return shown, e_warp


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = (np.clip(image, 0, 1) * 255).astype(np.uint8).copy()
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    frames, _ = pan_zoom(load_photo("astronaut.jpg"), 10, (256, 192))
    per_frame, _ = stylize(make_step("cin26", style=[7], max_size=0), frames)
    blended = filtered(frames, per_frame, TemporalOptions())
    t = 7
    tiles = []
    for name, outs in (("per-frame", per_frame), ("flow_blend", blended)):
        shown, e = error_map(outs, frames, t)
        tiles.append(np.vstack([label(outs[t], name), label(shown, f"warp error x4, E_warp {e:.4f}")]))
    picture = np.hstack([tiles[0], np.full((tiles[0].shape[0], 4, 3), 255, np.uint8), tiles[1]])
    cv2.imwrite(str(OUT), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(OUT, OUT.stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
