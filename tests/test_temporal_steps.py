"""A deterministic flickering per-frame step for the temporal tests (no tests here).

Importable by Ray/Dask workers (tests/ is on their PYTHONPATH): executors ship steps by reference.
Its result for a frame depends only on that frame and its index, like a per-frame stylization
whose texture changes from frame to frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from stylefarm.hookspecs import hookimpl
from stylefarm.item import Batch
from stylefarm.step import Step, StepOptions


def flicker(image: np.ndarray, index: int, amount: float = 0.12) -> np.ndarray:
    """Contrast change plus smooth noise seeded by the frame index."""
    rng = np.random.default_rng(1000 + index)
    noise = cv2.GaussianBlur(rng.normal(0, 1, image.shape).astype(np.float32), (0, 0), 2.0)
    return np.clip(0.85 * image + 0.075 + amount * noise, 0, 1).astype(np.float32)


class FlickerOptions(StepOptions):
    amount: float = Field(0.12, description="noise strength")


class Flicker(Step):
    name = "test_flicker"
    uses_device = False
    Options = FlickerOptions

    def process(self, batch: Batch) -> Batch:
        return [item.with_image(flicker(item.image, item.index, self.options.amount)) for item in batch]


@hookimpl
def stylefarm_register_steps():
    return [Flicker]
