"""Item: one image or video frame travelling through a workflow.

Layout (documented contract for plugins):
- `image`: numpy float32 array, shape (H, W, 3), RGB, values in [0, 1], C-contiguous.
  Steps return new arrays; they never need to keep alpha in sync (the sink does).
  8-bit video frames travel as uint8 (H, W, 3) until the first step that needs floats: the host
  converts them once, right before that step; steps that can work on uint8 declare it
  (`pixel_types`), and so do sinks (an identity or resize transcode never touches floats).
- `layout`: "rgb" (the above, what every step gets unless it says otherwise) or "yuv420p": the
  decoder's own 8-bit 4:2:0 planes as one (H * 3 / 2, W) uint8 array (`stylefarm.video.yuv`),
  used only when every step and sink of the workflow declares "yuv420p" in `pixel_types`.
- `alpha`: optional float32 (H, W) in [0, 1]; passed through untouched and resized to the
  final image size by the sink when a step changed the size.
- metadata (`source`, `index`, `frame`, `fps`, ...) identifies the item for naming outputs,
  resume and ordering. Arrays that arrive from Ray may be read-only: copy before editing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Item:
    """One unit of work: an image or a frame, plus what is needed to name and order it."""

    source: str  # path or id of the input it came from
    index: int  # position within its source (frame number for video, 0 for a still)
    frame: int | None = None  # frame number to show in names (e.g. 1001), None for stills
    image: np.ndarray | None = None
    alpha: np.ndarray | None = None
    fps: Fraction | None = None
    pts: float | None = None  # presentation time in seconds, video only
    size: tuple[int, int] | None = None  # original (width, height)
    bit_depth: int = 8  # bit depth of the source pixels, used by sinks for `bit_depth: auto`
    input_root: str | None = None  # directory the input was found under (keeps sub-folders)
    meta: dict[str, Any] = field(default_factory=dict)  # free-form, steps may add keys
    loader: Callable[[], Item] | None = field(default=None, repr=False, compare=False)
    original: np.ndarray | None = field(default=None, repr=False, compare=False)
    layout: str = "rgb"  # or "yuv420p" (see the module docstring)

    @property
    def key(self) -> str:
        """Stable identity used by the manifest (resume) and the report."""
        return f"{self.source}#{self.index}"

    @property
    def stem(self) -> str:
        return Path(self.source).stem

    def load(self) -> Item:
        """Decode the pixels if they are not loaded yet (sources defer decoding for resume)."""
        if self.image is None and self.loader is not None:
            loaded = self.loader()
            self.image, self.alpha = loaded.image, loaded.alpha
            self.bit_depth, self.size = loaded.bit_depth, loaded.size
        if self.image is None:
            raise ValueError(f"{self.key}: item has no pixels")
        self.loader = None
        if self.original is None:
            self.original = self.image
        return self

    def with_image(self, image: np.ndarray) -> Item:
        """A copy of this item carrying a new image (what a step returns): float32, or uint8 kept
        as uint8 for steps that declare `pixel_types = ("uint8", "float32")`."""
        from dataclasses import replace

        dtype = np.uint8 if image.dtype == np.uint8 else np.float32
        return replace(self, image=np.ascontiguousarray(image, dtype=dtype),
                       layout=self.layout if image.ndim == 2 else "rgb")


def as_float(image: np.ndarray) -> np.ndarray:
    """An image as float32 in [0, 1] (uint8 frames from the decoder are converted once, here)."""
    if image.dtype == np.uint8:
        out = image.astype(np.float32)
        out *= np.float32(1 / 255)
        return out
    return image


Batch = list[Item]
