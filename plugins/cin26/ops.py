"""Pure maths for the pretrained stylize steps: style weights, colour, strength, masks.

numpy in, numpy out (H, W, 3 float32 in [0, 1]). The YCbCr colour keeping both pretrained
steps use lives in `plugins/_controls.py` (plugins never import each other).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stylefarm.plugins._controls import keep_color, rgb_to_ycbcr, ycbcr_to_rgb  # noqa: F401 (shared, re-exported)

NUM_STYLES = 26  # styles in multistyle26.onnx (its norm.gamma rows)



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
