"""Classical steps: cheap, deterministic, no weights. Useful on their own and in chains."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from stylefarm.images import read_image, resize
from stylefarm.item import Batch
from stylefarm.step import InputImage, Step, StepOptions
from stylefarm.video import yuv


class ResizeOptions(StepOptions):
    width: PositiveInt | None = Field(None, description="target width (height follows the aspect if not given)")
    height: PositiveInt | None = Field(None, description="target height (width follows the aspect if not given)")
    scale: float | None = Field(None, gt=0, description="scale factor, e.g. 0.5")
    max_side: PositiveInt | None = Field(None, description="shrink so the longer side is at most this")
    multiple_of: PositiveInt = Field(1, description="round the size down to a multiple (e.g. 8 for networks)")
    in_decoder: bool = Field(True, description="first step on yuv420p video, shrinking: the decoder resizes "
                             "(ffmpeg's area filter, within 1 level of OpenCV's; identical at 1/2), so "
                             "full-size frames never cross the pipe; false = always OpenCV")

    @model_validator(mode="after")
    def _one_rule(self) -> ResizeOptions:
        rules = [self.width or self.height, self.scale, self.max_side]
        if sum(r is not None for r in rules) != 1:
            raise ValueError("give one of width/height, scale or max_side")
        return self


def target_size(w: int, h: int, o: ResizeOptions) -> tuple[int, int]:
    if o.scale is not None:
        tw, th = w * o.scale, h * o.scale
    elif o.max_side is not None:
        factor = min(1.0, o.max_side / max(w, h))
        tw, th = w * factor, h * factor
    else:
        tw = o.width or w * o.height / h
        th = o.height or h * o.width / w
    m = o.multiple_of
    return max(m, int(round(tw)) // m * m), max(m, int(round(th)) // m * m)


class ResizeStep(Step):
    """Resize by size, scale or longest side (area filter when shrinking)."""

    name = "resize"
    kind = "util"
    uses_device = False
    Options = ResizeOptions
    # OpenCV resizes 8-bit frames as they are, and the decoder's yuv420p planes each on its own
    # grid (I/O-bound jobs: no colour conversion at all, see stylefarm.video.yuv)
    pixel_types = ("uint8", "float32", "yuv420p")

    @classmethod
    def decoder_size(cls, options: ResizeOptions, width: int, height: int) -> tuple[int, int] | None:
        """A shrink to an even size is what ffmpeg's area scale does to each plane (measured: the
        same pixels at 1/2, others within 1 level), so the decoder may do it."""
        tw, th = target_size(width, height, options)
        if options.in_decoder and tw < width and th < height and tw % 2 == 0 and th % 2 == 0:
            return tw, th
        return None

    def process(self, batch: Batch) -> Batch:
        out = []
        for item in batch:
            if item.layout == yuv.LAYOUT:
                out.append(item.with_image(self._yuv(item.image, item.meta)))
                continue
            h, w = item.image.shape[:2]
            tw, th = target_size(w, h, self.options)
            out.append(item.with_image(resize(item.image, tw, th)))
        return out

    def _yuv(self, frame: np.ndarray, meta: dict) -> np.ndarray:
        """4:2:0 needs an even size: an odd target is resized in RGB (8-bit) instead, converted
        with the source's matrix and range (the sink encodes it back with the same)."""
        tw, th = target_size(*yuv.frame_size(frame), self.options)
        if tw % 2 or th % 2:
            return resize(yuv.to_rgb(frame, **yuv.source_matrix(meta)), tw, th)
        return yuv.resize(frame, tw, th)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def match_stats(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel mean/std matching (Reinhard et al. 2001) of `image` to `reference`."""
    mean_i, std_i = image.reshape(-1, 3).mean(0), image.reshape(-1, 3).std(0) + 1e-6
    mean_r, std_r = reference.reshape(-1, 3).mean(0), reference.reshape(-1, 3).std(0)
    return (image - mean_i) / std_i * std_r + mean_r


class ColorTransferOptions(StepOptions):
    reference: InputImage = Field(description="image whose colours are transferred (read once in setup)")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="0 = unchanged, 1 = full transfer")
    space: Literal["lab", "rgb"] = Field("lab", description="colour space where statistics are matched")


class ColorTransferStep(Step):
    """Give images the colour statistics of a reference image (Reinhard transfer)."""

    name = "color_transfer"
    kind = "util"
    uses_device = False
    Options = ColorTransferOptions

    def setup(self, device: str) -> None:
        super().setup(device)
        rgb, _, _ = read_image(self.options.reference)
        self.reference = rgb_to_lab(rgb) if self.options.space == "lab" else rgb

    def process(self, batch: Batch) -> Batch:
        out = []
        for item in batch:
            if self.options.space == "lab":
                moved = lab_to_rgb(match_stats(rgb_to_lab(item.image), self.reference))
            else:
                moved = np.clip(match_stats(item.image, self.reference), 0.0, 1.0)
            s = self.options.strength
            out.append(item.with_image(s * moved + (1.0 - s) * item.image))
        return out


class BlendOptions(StepOptions):
    amount: float = Field(0.5, ge=0.0, le=1.0, description="weight of the processed image (1 = only it)")
    mode: Literal["normal", "multiply", "screen", "overlay"] = "normal"


def blend_modes(base: np.ndarray, top: np.ndarray, mode: str) -> np.ndarray:
    if mode == "multiply":
        return base * top
    if mode == "screen":
        return 1.0 - (1.0 - base) * (1.0 - top)
    if mode == "overlay":
        return np.where(base < 0.5, 2 * base * top, 1.0 - 2 * (1.0 - base) * (1.0 - top))
    return top


class BlendStep(Step):
    """Blend the current image with the original input (e.g. soften a stylization)."""

    name = "blend"
    kind = "util"
    uses_device = False
    Options = BlendOptions

    def process(self, batch: Batch) -> Batch:
        out = []
        for item in batch:
            base = item.original if item.original is not None else item.image
            h, w = item.image.shape[:2]
            base = resize(base, w, h)
            mixed = blend_modes(base, item.image, self.options.mode)
            a = self.options.amount
            out.append(item.with_image(np.clip(a * mixed + (1.0 - a) * base, 0.0, 1.0)))
        return out
