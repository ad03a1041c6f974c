"""Tiled inference for frames too large for one pass: overlapping tiles, feathered blend.

Shared by model plugins (AdaIN, StyA2K, cin26 ...) so large frames (4K) run in bounded memory
without visible seams. Works on torch tensors (N, C, H, W); `fn` maps a tile to an output tile
of the same spatial size times `scale` (e.g. 1 for style transfer).
"""

from __future__ import annotations

from collections.abc import Callable


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, like):
    """1-D blend weights: zero margin then a linear ramp over the overlap, except at the image border."""
    import torch

    w = torch.ones(length, dtype=like.dtype, device=like.device)
    margin = overlap // 4  # tile-edge pixels see padding instead of neighbours: weight 0
    ramp = torch.zeros(overlap, dtype=like.dtype, device=like.device)
    ramp[margin:] = torch.linspace(0.0, 1.0, overlap - margin + 2, dtype=like.dtype, device=like.device)[1:-1]
    if overlap and not at_start:
        w[:overlap] = ramp
    if overlap and not at_end:
        w[-overlap:] = ramp.flip(0)
    return w


def tiled_apply(fn: Callable, image, tile: int = 512, overlap: int = 64, scale: int = 1):
    """Apply `fn` tile by tile and blend the overlaps; exact `fn(image)` when it fits in one tile."""
    import torch

    _, _, height, width = image.shape
    if height <= tile and width <= tile:
        return fn(image)
    step = max(1, tile - overlap)
    out = weight = None
    for y in _starts(height, tile, step):
        for x in _starts(width, tile, step):
            piece = fn(image[:, :, y : y + tile, x : x + tile])
            if out is None:
                out = torch.zeros(piece.shape[0], piece.shape[1], height * scale, width * scale,
                                  dtype=piece.dtype, device=piece.device)
                weight = torch.zeros(1, 1, height * scale, width * scale, dtype=piece.dtype, device=piece.device)
            th, tw = piece.shape[2], piece.shape[3]
            wy = _ramp(th, overlap * scale, y == 0, y + tile >= height, piece)
            wx = _ramp(tw, overlap * scale, x == 0, x + tile >= width, piece)
            w = (wy[:, None] * wx[None, :])[None, None]
            ys, xs = y * scale, x * scale
            out[:, :, ys : ys + th, xs : xs + tw] += piece * w
            weight[:, :, ys : ys + th, xs : xs + tw] += w
    return out / weight.clamp_min(1e-8)
