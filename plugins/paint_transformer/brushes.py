"""Brush images. The shipped pair is drawn procedurally here (no third-party artwork).

A brush is a greyscale image: 0 is outside the stroke, values near 1 are paint. The
renderer stretches it over the stroke's box, so only its silhouette and texture matter.
"""

from __future__ import annotations

import numpy as np
import torch

BRUSH_SIZE = 256


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(np.pad(x, k, mode="wrap"), np.ones(2 * k + 1) / (2 * k + 1), mode="same")[k:-k]


def draw_vertical_brush(size: int = BRUSH_SIZE, seed: int = 7) -> np.ndarray:
    """A rounded flat-brush dab, bristles running top to bottom, ragged bristle ends."""
    rng = np.random.default_rng(seed)
    u = (np.arange(size) + 0.5) / size * 2 - 1  # across the bristles
    ends = 0.82 + 0.08 * _smooth(rng.standard_normal(size), 3)  # ragged top/bottom per column
    v, uu = np.meshgrid(u, u, indexing="ij")
    half_width = 0.78
    inside = (np.abs(uu) / half_width) ** 4 + (np.abs(v) / ends[None, :]) ** 4 <= 1
    streaks = _smooth(rng.standard_normal(size), 2)
    streaks = (streaks - streaks.min()) / (np.ptp(streaks) + 1e-9)
    grain = _smooth(rng.standard_normal(size), 8)
    value = 0.84 + 0.1 * streaks[None, :] + 0.02 * grain[:, None] - 0.04 * np.abs(v) ** 3
    return np.where(inside, np.clip(value, 0.05, 1.0), 0.0).astype(np.float32)


def procedural_brushes(size: int = BRUSH_SIZE) -> torch.Tensor:
    """[2,1,S,S]: index 0 vertical (used when h > w), 1 horizontal, as the renderer expects."""
    vertical = draw_vertical_brush(size)
    horizontal = draw_vertical_brush(size, seed=11).T.copy()
    return torch.from_numpy(np.stack([vertical, horizontal])[:, None])
