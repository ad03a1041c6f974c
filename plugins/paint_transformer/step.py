"""The `paint_transformer` step: repaint each image as brush strokes, coarse to fine."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator

from stylefarm.item import Batch, Item
from stylefarm.plugins._precision import PRECISION_HELP, Precision
from stylefarm.step import Step, StepOptions

if TYPE_CHECKING:
    from .paint import StrokeMemory

log = logging.getLogger(__name__)

MODEL = "paint_transformer/model"  # named here, not in `loading` (torch): `weights_needed` stays light
OFFICIAL_BRUSHES = ("paint_transformer/brush_vertical", "paint_transformer/brush_horizontal")
BRUSHES_OPTION = ("in the step's options, with the other brush: "
                  "`brushes: [/path/to/brush_large_vertical.png, /path/to/brush_large_horizontal.png]`")

RANDOM_WARNING = (
    "PAINT_TRANSFORMER IS USING RANDOM WEIGHTS (weights: random): the painting is meaningless; "
    "this mode exists for tests only"
)


class PaintTransformerOptions(StepOptions):
    """Options named after the official `inference.py` where one exists."""

    weights: str | dict[str, str] | None = Field(
        None, description="path, registered weights name (e.g. paint_transformer/official), "
        "{model: path}, or 'random' (tests only); default: the shipped stylefarm weights")
    brushes: Literal["auto", "shipped", "official"] | list[str] = Field(
        "auto", description="'shipped' procedural brushes, 'official' brush PNGs from the weights cache, "
        "or [vertical.png, horizontal.png]; 'auto' = official brushes with official weights when cached")
    levels: Literal["auto"] | int = Field(
        "auto", description="coarse-to-fine levels K; auto = official rule; fewer = bigger strokes only")
    detail: int = Field(0, ge=0, le=2, description="paint the image 2^detail x enlarged, then scale back: "
                        "one more level of strokes half the size each (~6x the time); 1 paints closer to the input")
    border: bool = Field(True, description="final pass on a half-patch shifted grid (official)")
    border_all_strokes: bool = Field(True, description="official: the shifted pass ignores stroke decisions")
    serial: bool = Field(False, description="no effect (strokes always render one index at a time now: "
                           "little memory, same pixels); kept so older workflows still validate")
    patch_batch: int = Field(0, ge=0, description="patches per network call (0 = all)")
    jitter: int = Field(0, ge=0, le=64, description="random shift of the patch grid in pixels (0 = official)")
    seed: int | None = Field(0, description="jitter seed; fixed = same grid on every frame (no flicker)")
    precision: Precision = Field("float32", description=PRECISION_HELP + "; the renderer stays float32")
    color: Literal["center", "mean"] = Field(
        "center", description="stroke colour: sampled at the centre (official) or averaged under the stroke")
    pad: Literal["zeros", "replicate"] = Field(
        "zeros", description="padding of non-square images: zeros (official) or replicate (no dark strokes at edges)")
    stroke_reuse: float = Field(0.0, ge=0.0, le=1.0, description="video: keep earlier frames' strokes for "
                                "patches whose mean change is at most this (e.g. 0.02); 0 = repaint every frame")
    strokes_json: bool = Field(False, description="attach the stroke list as item.meta['strokes']")
    animate: bool = Field(False, description="attach painting-process frames as item.meta['paint_frames']")
    animate_frames: int = Field(8, ge=1, le=64, description="frames kept per level when animating")

    @field_validator("levels")
    @classmethod
    def _levels_range(cls, v):
        if v != "auto" and not 0 <= v <= 8:
            raise ValueError("levels must be 'auto' or an integer in 0..8")
        return v



class PaintTransformerStep(Step):
    """Paint Transformer (Liu et al. 2021): predicts brush strokes per patch and renders them."""

    name = "paint_transformer"
    kind = "paint"
    Options = PaintTransformerOptions
    MEMORIES = 2  # video sources whose strokes are kept (interleaved inputs); bounded memory

    @classmethod
    def is_temporal(cls, options: PaintTransformerOptions) -> bool:
        """Stroke reuse carries state from frame to frame of one source."""
        return options.stroke_reuse > 0

    @classmethod
    def weights_needed(cls, options: PaintTransformerOptions) -> list[str]:
        """The model (`loading.load_painter`: a registered name, else the shipped one unless a path or
        `random`) and, for `brushes: official`, the brush PNGs (`auto` falls back on the shipped ones)."""
        from stylefarm.weights import Needed, registry

        value = options.weights.get("model") if isinstance(options.weights, dict) else options.weights
        by_path = value == "random" or (value and value not in registry())  # `random` or a file's path
        model = [] if by_path else [value or MODEL]
        brushes = [Needed(name, BRUSHES_OPTION) for name in OFFICIAL_BRUSHES] if options.brushes == "official" else []
        return model + brushes

    def setup(self, device: str) -> None:
        import torch

        from stylefarm.plugins._precision import FloatIO, Placement

        from .loading import load_brushes, load_painter

        self.device = device
        opts = self.options
        self.net, official = load_painter(opts.weights)
        if self.net is None:
            log.warning(RANDOM_WARNING)
        self.net = self.net.to(device).eval() if self.net is not None else _random_net(torch).to(device)
        self.brushes = load_brushes(opts.brushes, official).to(device)
        self.place = Placement(device, opts.precision, channels_last=False)  # stroke predictor only
        self.place.modules(self.net)
        self.predictor = FloatIO(self.net, self.place)  # strokes come back float32 for the renderer
        self.memories: OrderedDict[tuple, StrokeMemory] = OrderedDict()

    def process(self, batch: Batch) -> Batch:
        return [self._paint_item(item) for item in batch]

    def _paint_item(self, item: Item) -> Item:
        import torch

        from .paint import PaintSettings, paint

        opts = self.options
        cfg = PaintSettings(levels=None if opts.levels == "auto" else opts.levels, detail=opts.detail,
                            border=opts.border,
                            border_all_strokes=opts.border_all_strokes, serial=opts.serial,
                            patch_batch=opts.patch_batch, jitter=opts.jitter, seed=opts.seed, pad=opts.pad,
                            color=opts.color)
        img = torch.tensor(item.load().image).permute(2, 0, 1)[None].to(self.device)  # inputs are read-only
        frames = FrameRecorder(opts.animate_frames) if opts.animate else None
        memory = self._memory(item.source, img.shape) if opts.stroke_reuse > 0 else None
        before = (memory.reused, memory.predicted) if memory else (0, 0)
        with torch.inference_mode():
            result = paint(self.predictor, self.brushes, img.float(), cfg, frames, want_strokes=opts.strokes_json,
                           memory=memory)
        out = item.with_image(result.image[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        out.meta = dict(item.meta)
        if memory is not None:
            reused, predicted = memory.reused - before[0], memory.predicted - before[1]
            out.meta["strokes_reused"] = round(reused / max(reused + predicted, 1), 4)
        if opts.strokes_json:
            out.meta["strokes"] = strokes_as_records(result.strokes)
        if frames is not None:
            out.meta["paint_frames"] = frames.frames + [to_uint8(out.image)]
        return out


    def _memory(self, source: str, shape) -> StrokeMemory:
        """The stroke memory of one source and frame size; the oldest is dropped past MEMORIES."""
        from .paint import StrokeMemory

        key = (source, tuple(shape))
        if key not in self.memories:
            self.memories[key] = StrokeMemory(self.options.stroke_reuse)
            while len(self.memories) > self.MEMORIES:
                self.memories.popitem(last=False)
        self.memories.move_to_end(key)
        return self.memories[key]


class FrameRecorder:
    """Keeps at most `per_level` evenly spaced uint8 frames of each level (bounded memory)."""

    def __init__(self, per_level: int):
        self.per_level = per_level
        self.frames: list[np.ndarray] = []
        self._calls: dict[int, int] = {}

    def __call__(self, level: int, canvas) -> None:
        n = self._calls.get(level, 0)
        self._calls[level] = n + 1
        # calls per level are 8 (level 0) or 32; keep every k-th so a level gives <= per_level frames
        every = max(1, (8 if level == 0 else 32) // self.per_level)
        if (n + 1) % every == 0:
            self.frames.append(to_uint8(canvas[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()))


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def strokes_as_records(tables) -> list[dict]:
    """JSON-ready strokes: pass, centre x/y and box w/h in input pixels, angle in degrees, rgb."""
    keys = ("pass", "x", "y", "w", "h", "angle", "r", "g", "b")
    records = []
    for table in tables:
        for row in table.cpu().tolist():
            rec = {k: round(v, 3) for k, v in zip(keys, row)}
            rec["pass"] = int(row[0])
            records.append(rec)
    return records


def _random_net(torch):
    from .model import Painter, PainterConfig

    torch.manual_seed(0)
    return Painter(PainterConfig(param_act="sigmoid")).eval()
