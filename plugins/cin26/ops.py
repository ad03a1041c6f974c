"""Pure maths for the pretrained stylize steps: style weights, colour, strength, masks.

numpy in, numpy out (H, W, 3 float32 in [0, 1]). The YCbCr colour keeping both pretrained
steps use lives in `plugins/_controls.py` (plugins never import each other).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stylefarm.plugins._controls import (  # noqa: F401 (shared, re-exported)
    keep_color,
    mix,
    rgb_to_ycbcr,
    style_vector,
    ycbcr_to_rgb,
)

NUM_STYLES = 26  # styles in multistyle26.onnx (its norm.gamma rows)



def composite_regions(content: np.ndarray, layers: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel mix of stylized layers by masks (H, W); uncovered pixels keep the content.

    Overlapping masks are normalised so their weights never exceed 1 at a pixel (the shared
    `plugins/_controls.composite`).
    """
    from stylefarm.plugins._controls import composite

    return composite(list(layers), list(masks), background=content)
