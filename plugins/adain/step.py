"""The `adain` step: options, one-time setup (weights, style statistics), batched process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from stylefarm.item import Batch, Item
from stylefarm.plugins._compile import COMPILE_HELP, CompileOption, expect
from stylefarm.plugins._precision import PRECISION_HELP, Precision
from stylefarm.step import InputImage, InputPath, OneOrList, Step, StepOptions

if TYPE_CHECKING:
    import torch

ROLES = {"vgg": "adain/vgg", "decoder": "adain/decoder"}


class AdaINOptions(StepOptions):
    style: OneOrList[InputImage] = Field(description="style image path, or a list of paths (interpolation / masks)")
    style_weights: list[float] | None = Field(
        None, description="interpolation weights, one per style (normalised by their sum)")
    alpha: float = Field(1.0, ge=0.0, le=1.0, description="1 = full style, 0 = content reconstruction")
    preserve_color: bool = Field(False, description="keep the content's colours")
    color_method: Literal["coral", "luminance"] = Field(
        "coral", description="coral: recolour the style image to the content (official); "
        "luminance: keep the content's chroma, take only luminance from the result")
    mask: OneOrList[InputImage] | None = Field(
        None, description="spatial control: one mask image per style (white = this style)")
    content_size: int = Field(512, ge=0, description="short side of the content before stylizing; 0 = keep")
    style_size: int = Field(512, ge=0, description="short side of the style image(s); 0 = keep")
    crop: bool = Field(False, description="centre-crop content and style to squares of *_size")
    weights: InputPath | dict[str, InputPath] | None = Field(
        None, description="one file with {vgg, decoder} dicts, or a mapping role -> path")
    tile: int = Field(
        0, ge=0, description="0 = one pass (official); N = encode/decode the content in N x N px tiles "
        "(multiple of 8) to bound memory on large frames; AdaIN statistics stay global")
    tile_overlap: int = Field(128, ge=0, description="overlap of neighbouring tiles in px (multiple of 8), "
                              "blended with a feathered ramp")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    compile: CompileOption = Field("auto", description="compiled encoder + decoder: on CPU no faster than eager "
                                   "since the conv rewrites (docs/speed.md), so `auto` only loads cached packages; "
                                   "ignored with tile. " + COMPILE_HELP)
    random_weights: bool = Field(False, description="TEST ONLY: random networks, output is noise")


    @model_validator(mode="after")
    def _consistent(self) -> AdaINOptions:
        n = len(self.style)
        if n == 0:
            raise ValueError("style: give at least one style image")
        if self.style_weights is not None:
            if len(self.style_weights) != n:
                raise ValueError(f"style_weights: {len(self.style_weights)} weights for {n} styles")
            if min(self.style_weights) < 0 or sum(self.style_weights) <= 0:
                raise ValueError("style_weights: must be >= 0 with a positive sum")
        if self.mask is not None:
            if len(self.mask) != n:
                raise ValueError(f"mask: {len(self.mask)} masks for {n} styles (one per style)")
            if self.style_weights is not None:
                raise ValueError("mask and style_weights exclude each other")
        if self.tile and (self.tile % 8 or self.tile_overlap % 8 or self.tile_overlap >= self.tile):
            raise ValueError(f"tile: {self.tile} / tile_overlap: {self.tile_overlap} must be multiples of 8 "
                             "(the encoder's stride) with tile_overlap < tile")
        if self.preserve_color and self.color_method == "coral" and (n > 1 or self.mask):
            raise ValueError("preserve_color with color_method coral needs one style; "
                             "use color_method: luminance with several styles")
        return self


class AdaINStep(Step):
    """Arbitrary style transfer with adaptive instance normalization (Huang & Belongie 2017)."""

    name = "adain"
    kind = "stylize"
    Options = AdaINOptions

    @classmethod
    def weights_needed(cls, options) -> list[str]:
        from stylefarm.weights import role_names

        return [] if options.random_weights else role_names(options.weights, ROLES)

    def setup(self, device: str) -> None:
        from stylefarm.plugins._compile import maybe_compile
        from stylefarm.plugins._precision import Placement
        from stylefarm.plugins.adain import model
        from stylefarm.plugins.adain.ops import normalize_weights

        super().setup(device)
        opts: AdaINOptions = self.options
        self.encoder, self.decoder = model.encoder(), model.Decoder()
        self._load_weights()
        # channels-last: 1.25x per frame on CPU (oneDNN skips its NCHW reorders), the usual win on CUDA
        self.place = Placement(device, opts.precision, channels_last=True)
        self.place.modules(self.encoder, self.decoder)
        self.dtype = self.place.dtype
        mode = False if opts.tile else opts.compile  # tiles vary in size: one compile each would not pay
        self.run_encoder = maybe_compile(model.Relu41(self.encoder), mode, "adain_encoder", speedup=1.0)
        self.run_decoder = maybe_compile(self.decoder, mode, "adain_decoder", speedup=1.0)
        self.compile_info = {part: getattr(fn, "info", None) for part, fn in
                             (("encoder", self.run_encoder), ("decoder", self.run_decoder))} if mode else None
        self.styles = [self._read(path, opts.style_size) for path in opts.style]
        self.weights = normalize_weights(opts.style_weights, len(self.styles))
        self.masks = [_read_mask(p) for p in opts.mask] if opts.mask else None
        self.style_stats = None if self._recolours_style() else [self._style_stats(s) for s in self.styles]

    def _load_weights(self) -> None:
        from stylefarm.plugins._vgg import randomize_convs
        from stylefarm.weights import announce_random_weights, load_into, role_states

        if self.options.random_weights:
            announce_random_weights(self.name)
            randomize_convs([self.encoder, self.decoder])
            return
        states = role_states(self.options.weights, ROLES)
        self.encoder.load_official(*states["vgg"])
        load_into(self.decoder, *states["decoder"])

    def _recolours_style(self) -> bool:
        return self.options.preserve_color and self.options.color_method == "coral"

    def _read(self, path: str, size: int) -> np.ndarray:
        from stylefarm.images import read_image
        from stylefarm.plugins.adain.ops import official_resize

        return official_resize(read_image(path)[0], size, self.options.crop)

    def _style_stats(self, style: np.ndarray):
        """relu4_1 mean/std of one style image: all AdaIN needs from a style."""
        from stylefarm.plugins._precision import inference
        from stylefarm.plugins.adain.ops import calc_mean_std, to_tensor

        with inference(self.place):
            feat = self.encoder(self.place.tensor_in(to_tensor(style)))[0]
            return calc_mean_std(feat.float())

    def process(self, batch: Batch) -> Batch:
        from stylefarm.plugins import _vgg
        from stylefarm.plugins.adain.ops import official_resize

        opts: AdaINOptions = self.options
        for forward in (self.run_encoder, self.run_decoder):
            expect(forward, batch)  # frames still to come: what `compile: auto` weighs
        contents = [official_resize(it.load().image, opts.content_size, opts.crop) for it in batch]
        results: list[np.ndarray | None] = [None] * len(batch)
        cpu_pixels = _vgg.VGG_PIXELS_PER_PASS
        for idx in self.place.passes([c.shape for c in contents], cpu_pixels):  # same size; CPU: cache-sized
            for i, out in zip(idx, self.stylize([contents[i] for i in idx])):
                results[i] = out
        return [self._finish(it, c, out) for it, c, out in zip(batch, contents, results)]

    def _finish(self, item: Item, content: np.ndarray, out: np.ndarray) -> Item:
        from stylefarm.plugins.adain.ops import keep_luminance_only

        if self.options.preserve_color and self.options.color_method == "luminance":
            out = keep_luminance_only(out, content)
        new = item.with_image(out)
        new.meta = {**item.meta, "adain": {"styles": list(self.options.style),
                                           "random_weights": self.options.random_weights}}
        return new

    def stylize(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize same-size HxWx3 images in one batch; output keeps their size."""
        from stylefarm.plugins._precision import inference
        from stylefarm.plugins.adain.ops import blend

        h, w = images[0].shape[:2]
        x = self.place.images_in(images)  # one NHWC stack: already channels-last
        with inference(self.place):
            feat = self._encode(x).float()  # AdaIN statistics in float32 whatever the precision
            target = blend(self._target(feat, images), feat, self.options.alpha)
            out = self._decode(target.to(self.dtype))[:, :, :h, :w]  # decoder pads to 8 px
        return self.place.images_out(out)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """relu4_1 features of the whole frame, encoded tile by tile when `tile` asks for it.

        Tiles are cut on the 8 px grid of relu4_1: the image is packed 8x8 px per feature
        cell (pixel_unshuffle), so `tiled_apply` blends feature tiles at scale 1. The
        stitched map then gets global AdaIN statistics, exactly as in one pass.
        """
        import torch
        import torch.nn.functional as F

        from stylefarm.tiling import tiled_apply

        tile, overlap = self.options.tile, self.options.tile_overlap
        if not tile or max(x.shape[-2:]) <= tile:
            return self.run_encoder(x)
        # Pad to the 8 px grid with a validity channel, so a border tile can drop the padding
        # and pool its partial cells (ceil mode) exactly as the one-pass encoder does.
        valid = torch.ones_like(x[:, :1])
        padded = F.pad(torch.cat([x, valid], 1), (0, -x.shape[-1] % 8, 0, -x.shape[-2] % 8))
        return tiled_apply(self._encode_packed, F.pixel_unshuffle(padded, 8), tile // 8, overlap // 8)

    def _encode_packed(self, packed: torch.Tensor) -> torch.Tensor:
        """Encode one packed tile (image + validity channel), cropped to its valid pixels."""
        import torch.nn.functional as F

        tile = F.pixel_shuffle(packed, 8)
        rows = int(tile[0, 3, :, 0].float().sum().item())
        cols = int(tile[0, 3, 0, :].float().sum().item())
        return self.encoder(tile[:, :3, :rows, :cols])[0]

    def _decode(self, target: torch.Tensor) -> torch.Tensor:
        """Decoder output, tile by tile on the feature map when `tile` asks for it."""
        from stylefarm.tiling import tiled_apply

        tile, overlap = self.options.tile // 8, self.options.tile_overlap // 8
        if not tile or max(target.shape[-2:]) <= tile:
            return self.run_decoder(target)
        return tiled_apply(self.decoder, target, tile, overlap, scale=8)

    def _target(self, feat, images: list[np.ndarray]):
        """AdaIN features: mixed styles, masked styles, or per-image recoloured style."""
        import torch

        from stylefarm.plugins.adain.ops import coral, masked_adain, mix_styles, to_tensor

        if self.style_stats is None:  # coral colour preservation: style depends on content
            rows = []
            for i, image in enumerate(images):
                style = coral(to_tensor(self.styles[0])[0], to_tensor(image)[0])
                stats = self._style_stats(style.permute(1, 2, 0).numpy())
                rows.append(mix_styles(feat[i:i + 1], [stats], [1.0]))
            return torch.cat(rows)
        if self.masks is not None:
            masks = torch.from_numpy(np.stack([_fit_mask(m, feat.shape[-2:]) for m in self.masks]))
            return masked_adain(feat, self.style_stats, masks.to(feat.device))
        return mix_styles(feat, self.style_stats, self.weights)


def _read_mask(path: str) -> np.ndarray:
    from stylefarm.images import read_image

    return read_image(path)[0].mean(axis=2)


def _fit_mask(mask: np.ndarray, size) -> np.ndarray:
    """Mask resized (nearest) to the feature grid, as booleans."""
    import cv2

    h, w = int(size[0]), int(size[1])
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0.5
