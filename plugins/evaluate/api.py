"""`evaluate(output, source)`: the Python API behind `stylefarm eval`.

    from stylefarm.plugins.evaluate.api import evaluate
    result = evaluate("out/clip_styled.mp4", "media/clip.mp4", style="style.jpg")
    result["e_warp"], result["shots"], result["per_frame"]
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np

from stylefarm.errors import InputError

from .frames import iter_frames
from .metrics import mean, pair_scores, shots, ssim


def evaluate(output: str | Path, source: str | Path, style: str | Path | None = None, *,
             max_frames: int | None = None, **options: Any) -> dict[str, Any]:
    """Scores of a stylized video (file, sequence, folder or glob) against its input frames."""
    result = evaluate_frames(iter_frames(output, max_frames), iter_frames(source, max_frames),
                             _read(style) if style else None, **options)
    result.update({"output": str(output), "source": str(source), "style": str(style) if style else None})
    return result


def _read(path: str | Path) -> np.ndarray:
    from stylefarm.images import read_image

    return read_image(path)[0]


def evaluate_frames(outputs: Iterable[np.ndarray], inputs: Iterable[np.ndarray], style: np.ndarray | None = None,
                    *, perceptual: bool = True, vgg: str | None = None, loss_size: int = 256,
                    flow_max_side: int | None = None) -> dict[str, Any]:
    """E_warp per pair/shot/video (Lai et al.), flow-free frame difference, SSIM vs the input,
    VGG content loss vs the input and style loss vs `style`. Frames stream: two in memory."""
    losses = None
    if perceptual:
        from .perceptual import Perceptual

        losses = Perceptual(vgg, loss_size)
        if style is not None:
            losses.set_style(style)
    rows: list[dict[str, Any]] = []
    pairs = []
    prev: tuple[np.ndarray, np.ndarray] | None = None
    ended = object()
    unpaired = None
    for t, (out, inp) in enumerate(zip_longest(outputs, inputs, fillvalue=ended)):
        if out is ended or inp is ended:  # one ran out: the pairing by position is in doubt
            unpaired = f"the {'source' if out is ended else 'output'} has more than {t} frames"
            break
        row: dict[str, Any] = {"index": t, "ssim": ssim(_fit(out, inp), inp)}
        if losses is not None:
            row["content_loss"], row["style_loss"] = losses.losses(out, inp)
        if prev is not None:
            score = pair_scores([prev[0], out], [prev[1], inp], flow_max_side)[0]
            score.index = t
            pairs.append(score)
            row.update(e_warp=score.e_warp, frame_diff=score.frame_diff, input_diff=score.input_diff,
                       occluded=round(score.occluded, 5), cut=score.cut)
        rows.append(row)
        prev = (out, inp)
    if not rows:
        raise InputError("no frames to evaluate (empty output or source)")
    return {**_summary(rows, pairs, losses, flow_max_side), "unpaired": unpaired}


def _fit(out: np.ndarray, inp: np.ndarray) -> np.ndarray:
    from .metrics import match_size

    return match_size(out, inp)


def _summary(rows: list[dict[str, Any]], pairs: list, losses: Any, flow_max_side: int | None) -> dict[str, Any]:
    shot_rows = []
    for first, last in shots(pairs, len(rows)):
        inside = [p.e_warp for p in pairs if first < p.index <= last]
        shot_rows.append({"first": first, "last": last, "frames": last - first + 1, "e_warp": mean(inside)})
    return {
        "frames": len(rows),
        "pairs": len(pairs),
        "e_warp": mean([p.e_warp for p in pairs]),
        "frame_diff": mean([p.frame_diff for p in pairs]),
        "input_frame_diff": mean([p.input_diff for p in pairs]),
        "ssim": mean([r["ssim"] for r in rows]),
        "content_loss": mean([r.get("content_loss") for r in rows]),
        "style_loss": mean([r.get("style_loss") for r in rows]),
        "shots": shot_rows,
        "per_frame": rows,
        "vgg": losses.label if losses is not None else None,
        "flow": {"method": "opencv DIS (medium), input frames", "max_side": flow_max_side},
        "protocol": "E_warp: Lai et al. 2018 (warp O_t onto t-1 by input flow, MSE over non-occluded "
                    "pixels, mean per pair, pairs across cuts left out)",
    }
