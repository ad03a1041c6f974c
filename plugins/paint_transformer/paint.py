"""Coarse-to-fine painting of a whole image with a stroke predictor (pure tensors, no files).

Levels 0..K paint on grids of 1, 2, 4, ... 2^K patches of a square, zero-padded canvas,
each level predicting strokes from (target, canvas so far). An optional last pass on a
grid shifted by half a patch paints over the seams. With default options this is the
official `inference.main` logic, so official weights give the official painting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from .ops import crop_center, footprint_colors, num_levels, sample_colors, to_patches
from .render import render_grid, stroke_alpha

PATCH = 32
FrameHook = Callable[[int, torch.Tensor], None]  # (level, canvas [1,3,h,w] of the image area)


@dataclass(frozen=True)
class PaintSettings:
    """How to paint; the defaults reproduce the official script."""

    levels: int | None = None  # None: the official K from the image size
    detail: int = 0  # paint at 2^detail x the size (one more level each), then scale back: finer strokes
    border: bool = True  # the final half-patch shifted pass
    border_all_strokes: bool = True  # official: the shifted pass ignores the on/off decisions
    serial: bool = False  # stroke-by-stroke rendering: less memory, same pixels
    patch_batch: int = 0  # patches per network call (0: all at once)
    jitter: int = 0  # random shift (pixels) of the patch grid; 0 = official fixed grid
    seed: int | None = 0  # jitter seed: fixed -> the same grid on every video frame
    color: str = "center"  # stroke colour: "center" sample (official) or "mean" under the stroke
    pad: str = "zeros"  # how a non-square image is padded: "zeros" (official) or "replicate" (no dark rims)


@dataclass
class StrokeMemory:
    """Strokes of earlier video frames, per pass, reused for patches that did not change.

    Each pass keeps the target patches its strokes were predicted from. A patch whose mean
    absolute change from that reference is at most `threshold` keeps its strokes (no network
    call, no flicker); the others are predicted again and become the new reference. Comparing
    with the reference, not the previous frame, stops slow drift from going unnoticed.
    """

    threshold: float
    passes: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    reused: int = 0
    predicted: int = 0

    def predict(self, key: int, net, target: torch.Tensor, canvas: torch.Tensor, cfg: PaintSettings,
                brushes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prev = self.passes.get(key)
        if prev is None or prev[0].shape != target.shape:
            strokes, logit = predict(net, target, canvas, cfg.patch_batch, cfg.color, brushes)
            self.predicted += target.shape[0]
            self.passes[key] = (target.clone(), strokes, logit)
            return strokes, logit
        ref, strokes, logit = (t.clone() for t in prev)
        changed = ((target - ref).abs().mean(dim=(1, 2, 3)) > self.threshold).nonzero().squeeze(1)
        if changed.numel():
            strokes[changed], logit[changed] = predict(net, target[changed], canvas[changed], cfg.patch_batch,
                                                       cfg.color, brushes)
            ref[changed] = target[changed]
        self.predicted += changed.numel()
        self.reused += target.shape[0] - changed.numel()
        self.passes[key] = (ref, strokes, logit)
        return strokes, logit


@dataclass
class Painting:
    """The result: image [1,3,h,w] and, per pass, strokes [n,9] (pass, x, y, w, h, angle_deg, r, g, b)
    in pixels of the input image."""

    image: torch.Tensor
    strokes: list[torch.Tensor] = field(default_factory=list)


def predict(net, target: torch.Tensor, canvas: torch.Tensor, patch_batch: int = 0, color: str = "center",
            brushes: torch.Tensor | None = None):
    """Strokes [n,S,8] (shape + colour taken from the target) and logits [n,S] for patches."""
    step = patch_batch if patch_batch > 0 else max(target.shape[0], 1)
    shapes, logits = [], []
    for i in range(0, target.shape[0], step):
        s, d = net(target[i : i + step], canvas[i : i + step])
        shapes.append(s)
        logits.append(d)
    shape, logit = torch.cat(shapes), torch.cat(logits)
    rgb = sample_colors(target, shape[..., :2])
    if color == "mean" and brushes is not None:
        n, s = shape.shape[:2]
        flat = torch.cat([shape, torch.ones_like(rgb)], dim=-1).reshape(n * s, 8)
        alpha = stroke_alpha(flat, target.shape[-2], target.shape[-1], brushes)
        rgb = footprint_colors(target, alpha.view(n, s, 1, *alpha.shape[-2:]), rgb)
    return torch.cat([shape, rgb], dim=-1), logit.squeeze(-1)


def to_window_units(strokes: torch.Tensor) -> torch.Tensor:
    """Patch-relative strokes -> units of the double-size window the grid renderer uses."""
    out = strokes.clone()
    out[..., :2] = out[..., :2] / 2 + 0.25
    out[..., 2:4] = out[..., 2:4] / 2
    return out


def stroke_table(param: torch.Tensor, on: torch.Tensor, canvas_hw, origin, tag: int) -> torch.Tensor:
    """Active strokes of a [1,h,w,S,8] grid as rows in image pixels (see `Painting`)."""
    _, gh, gw, s, _ = param.shape
    py, px = 2 * canvas_hw[0] / gh, 2 * canvas_hw[1] / gw
    iy = torch.arange(gh, dtype=param.dtype, device=param.device).view(1, gh, 1, 1)
    ix = torch.arange(gw, dtype=param.dtype, device=param.device).view(1, 1, gw, 1)
    y = iy * py / 2 - py / 4 + param[..., 1] * py - origin[0]
    x = ix * px / 2 - px / 4 + param[..., 0] * px - origin[1]
    rows = torch.stack([torch.full_like(x, tag), x, y, param[..., 2] * px, param[..., 3] * py,
                        param[..., 4] * 180.0, *param[..., 5:8].unbind(-1)], dim=-1)
    return rows[on.bool()].reshape(-1, 9)


def _placement(h: int, w: int, cfg: PaintSettings) -> tuple[int, int, int]:
    """(square size, top, left) of the image inside the padded canvas, jittered if asked.

    The canvas is always big enough for the image (official K); `levels` above K paints
    finer strokes on a bigger canvas, below K stops early (coarser strokes).
    """
    k = num_levels(h + 2 * cfg.jitter, w + 2 * cfg.jitter, PATCH)
    size = PATCH * 2 ** max(k, cfg.levels if cfg.levels is not None else k)
    top, left = (size - h) // 2, (size - w) // 2
    if cfg.jitter:
        gen = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
        dy, dx = (torch.randint(-cfg.jitter, cfg.jitter + 1, (2,), generator=gen)).tolist()
        top, left = min(max(top + dy, 0), size - h), min(max(left + dx, 0), size - w)
    return size, top, left


def paint(net, brushes: torch.Tensor, image: torch.Tensor, cfg: PaintSettings = PaintSettings(),
          on_frame: FrameHook | None = None, want_strokes: bool = False,
          memory: StrokeMemory | None = None) -> Painting:
    """Paint image [1,3,h,w] in [0,1] with `net`'s strokes drawn with `brushes` [2,1,bh,bw].
    With `memory` (video), strokes of unchanged patches are taken from earlier frames."""
    if cfg.detail:
        return _paint_finer(net, brushes, image, cfg, on_frame, want_strokes, memory)
    h, w = image.shape[-2:]
    size, top, left = _placement(h, w, cfg)
    mode = "replicate" if cfg.pad == "replicate" else "constant"
    target = F.pad(image, [left, size - w - left, top, size - h - top], mode=mode)
    canvas = torch.zeros_like(target)
    result = Painting(image=image)
    n_levels = (cfg.levels if cfg.levels is not None else num_levels(size, size, PATCH)) + 1
    keeps = iter(seen_patches(size, n_levels, cfg.border, (top, left, h, w)))
    for level in range(n_levels):
        canvas = _paint_level(net, brushes, target, canvas, level, cfg, result if want_strokes else None,
                              (top, left, h, w), on_frame, memory, next(keeps))
    if cfg.border:
        canvas = _paint_border(net, brushes, target, canvas, n_levels - 1, cfg,
                               result if want_strokes else None, (top, left, h, w), on_frame, memory, next(keeps))
    result.image = canvas[..., top : top + h, left : left + w]
    return result


def _paint_finer(net, brushes, image, cfg, on_frame, want_strokes, memory) -> Painting:
    """`detail`: paint the image enlarged 2^detail times (so K grows by `detail` and the
    finest strokes shrink as much relative to the image), then scale the result back."""
    h, w = image.shape[-2:]
    scale = 2**cfg.detail
    big = F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False)
    hook = None if on_frame is None else (lambda level, canvas: on_frame(level, F.interpolate(canvas, (h, w),
                                                                                             mode="area")))
    result = paint(net, brushes, big, replace(cfg, detail=0), hook, want_strokes, memory)
    result.image = F.interpolate(result.image, (h, w), mode="area")
    for table in result.strokes:
        table[:, 1:5] /= scale  # x, y, w, h back to input pixels
    return result


SKIP_UNSEEN = True
"""Patches whose strokes cannot reach the image are neither predicted nor drawn (`seen_patches`)."""


def seen_patches(size: int, n_levels: int, border: bool, box) -> list[torch.Tensor | None]:
    """Per pass (levels, then the border pass), which patches can change the image: a bool mask
    in `to_patches` order, or None for all of them.

    The canvas is a square of `size` and the image only the box (top, left, h, w) in it: a wide
    video frame covers a fifth of its canvas. A patch's strokes stay inside its window (the
    cell widened by half a cell on each side), and its prediction reads only its own cell of
    the target and of the canvas so far. So, from the last pass back: a pass must draw the
    windows that reach the region still needed, and the canvas before it must be right over
    that region and the cells of those windows. The image area comes out bit for bit the same.
    """
    top, left, h, w = box
    c_last = size // 2 ** (n_levels - 1)
    passes = [(0, size // 2**level, 2**level) for level in range(n_levels)]
    if border:  # the shifted grid: one more cell, starting half a cell before the canvas
        passes.append((-c_last // 2, c_last, 2 ** (n_levels - 1) + 1))
    spans = {"y": (top, top + h), "x": (left, left + w)}
    kept: list[dict[str, list[bool]]] = []
    for origin, cell, count in reversed(passes):
        row: dict[str, list[bool]] = {}
        for axis, (lo, hi) in spans.items():
            row[axis] = [origin + j * cell - cell // 2 < hi and origin + (j + 1) * cell + cell // 2 > lo
                         for j in range(count)]
            first, last = row[axis].index(True), count - 1 - row[axis][::-1].index(True)
            spans[axis] = (min(lo, origin + first * cell), max(hi, origin + (last + 1) * cell))
        kept.append(row)
    masks: list[torch.Tensor | None] = []
    for row in reversed(kept):
        mask = torch.tensor(row["y"])[:, None] & torch.tensor(row["x"])[None, :]
        masks.append(None if not SKIP_UNSEEN or bool(mask.all()) else mask.flatten())
    return masks


def _frame_hook(on_frame, level: int, pad: int, box):
    """Adapt a renderer hook (padded canvas) to `on_frame(level, image-area canvas)`."""
    if on_frame is None:
        return None
    top, left, h, w = box
    return lambda padded: on_frame(level, padded[..., pad + top : pad + top + h, pad + left : pad + left + w])


def _predict(net, img, cur, cfg, brushes, memory, key, keep=None):
    """Strokes for the patches of one pass, through the video memory when there is one; with
    `keep`, only for those patches (the others get zero logits: off under either rule)."""
    target, canvas = to_patches(img, PATCH), to_patches(cur, PATCH)
    idx = None if keep is None else keep.nonzero().squeeze(1).to(target.device)  # untested on CUDA
    if idx is not None:
        target, canvas = target[idx], canvas[idx]
    if memory is None:
        strokes, logit = predict(net, target, canvas, cfg.patch_batch, cfg.color, brushes)
    else:
        strokes, logit = memory.predict(key, net, target, canvas, cfg, brushes)
    if idx is None:
        return strokes, logit
    all_strokes, all_logits = strokes.new_zeros(keep.numel(), *strokes.shape[1:]), logit.new_zeros(keep.numel(),
                                                                                                   *logit.shape[1:])
    all_strokes[idx], all_logits[idx] = strokes, logit
    return all_strokes, all_logits


def _paint_level(net, brushes, target, canvas, level, cfg, result, box, on_frame, memory=None, keep=None):
    """One coarse-to-fine level: 2^level x 2^level patches predicted at 32 px each."""
    size = PATCH * 2**level
    n = 2**level
    img = F.interpolate(target, (size, size))
    cur = F.interpolate(canvas, (size, size))
    strokes, logit = _predict(net, img, cur, cfg, brushes, memory, level, keep)
    param = to_window_units(strokes).view(1, n, n, -1, 8)
    on = (logit > 0).view(1, n, n, -1)
    if result is not None:
        result.strokes.append(stroke_table(param, on, canvas.shape[-2:], box[:2], level))
    pad = (2 * canvas.shape[-1] // n) // 4  # render_grid pads by a quarter window (window = 2 cells)
    return render_grid(param, on, brushes, canvas, cfg.serial, _frame_hook(on_frame, level, pad, box))


def _paint_border(net, brushes, target, canvas, level, cfg, result, box, on_frame, memory=None, keep=None):
    """The official final pass on the last level's grid shifted by half a patch (covers seams)."""
    size, n, tag = canvas.shape[-1], 2**level, level + 1
    half = PATCH // 2
    border = size // (2 * n)  # half a patch at full resolution
    img = F.pad(F.interpolate(target, (n * PATCH, n * PATCH)), [half] * 4)
    cur = F.pad(F.interpolate(canvas, (n * PATCH, n * PATCH)), [half] * 4)
    strokes, logit = _predict(net, img, cur, cfg, brushes, memory, -1, keep)
    param = to_window_units(strokes).view(1, n + 1, n + 1, -1, 8)
    # Official quirk kept for parity: the border pass casts raw logits to bool (all but
    # logit == 0 are on); `border_all_strokes=False` uses the predicted decisions instead.
    on = (logit != 0) if cfg.border_all_strokes else (logit > 0)
    on = on.view(1, n + 1, n + 1, -1)
    grown = F.pad(canvas, [border] * 4)
    box_b = (box[0] + border, box[1] + border, box[2], box[3])
    if result is not None:
        result.strokes.append(stroke_table(param, on, grown.shape[-2:], box_b[:2], tag))
    pad = (2 * grown.shape[-1] // (n + 1)) // 4
    out = render_grid(param, on, brushes, grown, cfg.serial, _frame_hook(on_frame, tag, pad, box_b))
    return out[..., border:-border, border:-border]


__all__ = ["PaintSettings", "Painting", "StrokeMemory", "paint", "predict", "crop_center"]
