"""Pure maths for fast_style: which style rows a request means, and strength (masks, colour: `_controls`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stylefarm.errors import StylefarmError


def style_index(value: int | str, names: Sequence[str]) -> int:
    """A style row from its index or its name; one line listing the valid ones otherwise."""
    text = str(value).strip()
    if text in names:
        return list(names).index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
        return int(text)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise StylefarmError(f"unknown style {value!r}: this net holds {len(names)} style(s): "
                         f"index 0..{len(names) - 1} or a name ({shown})")


def style_vector(indices: Sequence[int], weights: Sequence[float] | None, num_styles: int) -> np.ndarray:
    """One weight per style row, summing to 1: what the conditional IN layers mix (one-hot for one style)."""
    out = np.zeros(num_styles, dtype=np.float32)
    weights = [1.0] * len(indices) if weights is None else weights
    for index, weight in zip(indices, weights, strict=True):
        out[index] += weight
    total = float(out.sum())
    if total <= 0:
        raise StylefarmError("style_weights must have a positive sum")
    return out / total


def mix(stylized: np.ndarray, content: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 1 = all style, 0 = the content unchanged."""
    if strength >= 1.0:
        return stylized
    return (content + strength * (stylized - content)).astype(np.float32)
