"""What the host checks around every step call, so a plugin's mistake fails loudly and alone.

- Items handed to a step are read-only: an in-place edit raises inside the offending step
  instead of silently corrupting another branch (`input: original`, saved stages, the sheet).
- Every result must be float32 (H, W, 3), finite, in [0, 1]; anything else fails that item
  with a message naming the step and what was wrong, and the rest of the run goes on.
"""

from __future__ import annotations

import numpy as np

from .item import Item

TOLERANCE = 1e-4
"""Values this close outside [0, 1] are float rounding (e.g. 1.00000012 after a colour matrix):
clipped, not failed."""


def freeze(item: Item) -> Item:
    """Mark the item's arrays read-only (views and copies a step makes stay writable)."""
    for array in (item.image, item.alpha, item.original):
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return item


def output_problem(result: object, uint8_ok: bool = False) -> str | None:
    """Why a step's result breaks the image contract, or None when it is fine (`uint8_ok`: the
    step declared `pixel_types` with "uint8", so an 8-bit (H, W, 3) result is fine too)."""
    if not isinstance(result, Item):
        return f"returned {type(result).__name__} instead of an Item (use item.with_image(array))"
    image = result.image
    if not isinstance(image, np.ndarray):
        return f"returned an item whose image is {type(image).__name__}, expected a numpy array"
    if result.layout != "rgb":  # only steps that declared the decoder's format get (and return) it
        from .video.yuv import LAYOUT, frame_problem

        why = frame_problem(image) if result.layout == LAYOUT else f"unknown layout {result.layout!r}"
        if why is None and not uint8_ok:
            why = "a yuv420p frame but does not declare 8-bit pixel_types"
        return f"returned {why}" if why else None
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (channels-first? expected H, W, 3)" if image.ndim == 3 and image.shape[0] == 3 else ""
        return f"returned an image of shape {tuple(image.shape)}, expected (H, W, 3){hint}"
    if image.dtype == np.uint8 and uint8_ok:
        return None
    if image.dtype != np.float32:
        return f"returned a {image.dtype} image, expected float32 in [0, 1]"
    if not np.isfinite(image).all():
        return f"returned an image with {int((~np.isfinite(image)).sum())} NaN/inf values"
    low, high = float(image.min()), float(image.max())
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        hint = " (0-255 values? divide by 255)" if high > 1.5 else ""
        if high > 1.5 and uint8_ok:  # the usual cause: arithmetic on the 8-bit frame it was handed
            hint = (" (the step declares 'uint8' in pixel_types, so it may be handed 8-bit frames (0-255): "
                    "return uint8, or take floats with stylefarm.item.as_float(item.image))")
        return f"returned values in [{low:.4g}, {high:.4g}], expected [0, 1]{hint}"
    if low < 0 or high > 1:
        result.image = np.clip(image, 0, 1)
    return None
