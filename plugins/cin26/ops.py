"""Pure maths for the pretrained stylize steps: style weights, colour, strength, masks.

numpy in, numpy out (H, W, 3 float32 in [0, 1]); shared by `cin26` and `magenta_arbitrary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUM_STYLES = 26  # styles in multistyle26.onnx (its norm.gamma rows)

# BT.601 full-range luma, the YCbCr that image libraries use for "keep the colours"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def style_vector(indices: Sequence[int], blend: Sequence[float] | None, num_styles: int) -> np.ndarray:
    """One weight per built-in style, summing to 1 (what the network's CIN layers mix)."""
    weights = np.zeros(num_styles, dtype=np.float32)
    blend = [1.0] * len(indices) if blend is None else blend
    for index, weight in zip(indices, blend, strict=True):
        weights[index] += weight
    total = float(weights.sum())
    if total <= 0:
        raise ValueError("style weights must have a positive sum")
    return weights / total


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    y = rgb @ _LUMA
    cb = (rgb[..., 2] - y) * 0.564 + 0.5
    cr = (rgb[..., 0] - y) * 0.713 + 0.5
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 0.5, ycc[..., 2] - 0.5
    r = y + 1.402 * cr
    b = y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(np.float32)


def keep_color(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Brightness from the stylized image, chroma from the content (colour-preserving transfer)."""
    ycc = rgb_to_ycbcr(content)
    ycc[..., 0] = rgb_to_ycbcr(stylized)[..., 0]
    return ycbcr_to_rgb(ycc)


def mix(stylized: np.ndarray, content: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 1 = all style, 0 = the content unchanged."""
    if strength >= 1.0:
        return stylized
    return (content + strength * (stylized - content)).astype(np.float32)


def composite_regions(content: np.ndarray, layers: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel mix of stylized layers by masks (H, W); uncovered pixels keep the content.

    Overlapping masks are normalised so their weights never exceed 1 at a pixel (the shared
    `plugins/_controls.composite`).
    """
    from stylefarm.plugins._controls import composite

    return composite(list(layers), list(masks), background=content)
