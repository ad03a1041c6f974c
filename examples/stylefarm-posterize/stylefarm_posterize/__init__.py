"""Example stylefarm plugin: reduces each colour channel to a few levels (a poster look).

Copy this package to start your own plugin: rename it, change the entry point in
pyproject.toml, replace the Step. See docs/writing-plugins.md in stylefarm.
"""

import numpy as np
from pydantic import Field

from stylefarm import Step, StepOptions, hookimpl


class PosterizeOptions(StepOptions):
    levels: int = Field(4, ge=2, le=256, description="number of levels per channel")
    dither: bool = Field(False, description="ordered (Bayer) dithering before quantizing")


BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) / 16.0 - 0.5


class Posterize(Step):
    """Quantize colours to a few levels per channel, optionally dithered."""

    name = "posterize"
    kind = "stylize"
    Options = PosterizeOptions
    uses_device = False

    def process(self, batch):
        steps = self.options.levels - 1
        out = []
        for item in batch:
            image = item.image
            if self.options.dither:
                h, w = image.shape[:2]
                noise = np.tile(BAYER4, (h // 4 + 1, w // 4 + 1))[:h, :w, None]
                image = image + noise / steps
            out.append(item.with_image(np.round(np.clip(image, 0, 1) * steps) / steps))
        return out


@hookimpl
def stylefarm_register_steps():
    return [Posterize]
