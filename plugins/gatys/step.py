"""The `gatys` step: optimisation style transfer with spatial, colour and scale control.

Per item: resize the content, then for each pyramid level build the objective (content
features, style statistics of every style image or region, TV) and minimise it over the pixels,
starting from the upsampled result of the previous level. Colour and mask handling that is not
specific to optimisation comes from `plugins/_controls.py`; losses from `plugins/_lossnet.py`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from stylefarm.item import Batch, Item
from stylefarm.step import InputImage, InputPath, OneOrList, OutputDir, Step, StepOptions

if TYPE_CHECKING:
    import torch

log = logging.getLogger("stylefarm.gatys")


class GatysOptions(StepOptions):
    """Options follow `adain`'s names where they mean the same, neural-style's for the rest."""

    style: OneOrList[InputImage] = Field(description="style image path, or a list (blend, masks, regions)")
    style_weights: list[float] | None = Field(None, description="blend weights of the styles' statistics "
                                              "(normalised by their sum), as neural-style's -style_blend_weights")
    mask: OneOrList[InputImage] | None = Field(None, description="spatial control: one mask per style over the content "
                                         "(white = this style); guided Gram matrices per region")
    style_mask: OneOrList[InputImage] | None = Field(None, description="one mask per style image: take that style's "
                                               "statistics only from the white part")
    region_map: InputImage | None = Field(None, description="colour-coded region map over the content "
                                         "(alternative to mask); colours name styles through region_styles")
    region_styles: dict[str, int] | None = Field(None, description="region colour ('#rrggbb' or 'r,g,b') -> "
                                                 "index into style")
    region_tolerance: float = Field(0.1, gt=0, description="colour distance (0-1 RGB) still counted as a region")
    region_weights: list[float] | None = Field(None, description="style weight of each style's region (masks)")
    guide_mode: Literal["simple", "inside", "all"] = Field(
        "simple", description="guides at each layer: simple = downsampled; inside = cells whose receptive field "
        "is inside the region; all = cells whose receptive field touches it")
    guide_grow: int = Field(0, description="dilate (> 0) or erode (< 0) the masks by this many px first")
    content_mask: InputImage | None = Field(None, description="content loss only where this mask is white")
    preserve_color: bool = Field(False, description="keep the content's colours")
    color_method: Literal["luminance", "match"] = Field(
        "luminance", description="luminance: optimise luminance only (YIQ), recombine with the content's chroma; "
        "match: recolour the style images to the content's colour mean/covariance first")
    match_mode: Literal["pca", "chol", "sym"] = Field("pca", description="linear colour matching variant")
    content_size: int = Field(512, ge=0, description="short side of the content to stylize at; 0 = keep")
    style_size: int = Field(0, ge=0, description="short side of the style images; 0 = content short side x "
                            "style_scale")
    style_scale: float = Field(1.0, gt=0, description="style image size relative to the content (brush scale)")
    preset: Literal["neural_style", "gatys"] = Field(
        "neural_style", description="defaults of jcjohnson/neural-style or of Gatys' reference code "
        "(different Gram normalisation: weights are not portable)")
    network: Literal["vgg19", "vgg16", "inception"] = Field("vgg19", description="loss network")
    pooling: Literal["max", "avg"] = Field("max", description="VGG pooling, as neural-style's -pooling")
    preprocess: Literal["auto", "imagenet", "caffe"] = Field("auto", description="VGG input preprocessing; "
                                                             "auto = the weight file's own")
    content_layers: list[str] | None = Field(None, description="default relu4_2 (VGG-19)")
    style_layers: list[str] | None = Field(None, description="default relu1_1 .. relu5_1 (VGG-19)")
    content_layer_weights: list[float] | None = Field(None, description="one per content layer (default 1)")
    style_layer_weights: list[float] | None = Field(None, description="one per style layer, multiplies the "
                                                    "preset's (1 or 1e3/C^2)")
    content_weight: float | None = Field(None, ge=0, description="default: preset (5 / 1)")
    style_weight: float | None = Field(None, ge=0, description="default: preset (100 / 1)")
    tv_weight: float | None = Field(None, ge=0, description="default: preset (1e-3 / 0)")
    stat: Literal["gram", "mean_std"] = Field("gram", description="style statistic: Gram matrices, or channel "
                                              "mean/std (the 'Demystifying' view)")
    gram_norm: Literal["chw", "hw", "none"] | None = Field(None, description="default: preset (chw / hw)")
    iterations: int | None = Field(None, ge=0, description="default: preset (1000 / 500); no early stop")
    optimizer: Literal["lbfgs", "adam"] = Field("lbfgs", description="L-BFGS (default) or Adam")
    learning_rate: float | None = Field(None, gt=0, description="default 1 for lbfgs, 0.02 for adam "
                                        "(pixels in [0, 1])")
    init: Literal["content", "random", "image"] | None = Field(None, description="default: preset")
    init_image: InputImage | None = Field(None, description="start image for init: image")
    seed: int | None = Field(None, description="seed of the random init (None = random)")
    levels: list[int] | None = Field(None, description="coarse-to-fine pyramid: short side of each level, "
                                     "e.g. [512, 1024, 2048]; replaces content_size")
    level_iterations: list[int] | None = Field(None, description="iterations per level (default: iterations)")
    level_style_weights: list[float] | None = Field(None, description="style weight factor per level")
    level_tv_weights: list[float] | None = Field(None, description="TV weight factor per level")
    fine_style: InputImage | None = Field(None, description="scale control: fine-scale style (fine_layers) "
                                         "from this image, coarse scale from `style`")
    fine_layers: list[str] = Field(["relu1_1", "relu2_1"], description="layers taken from fine_style")
    print_iter: int = Field(0, ge=0, description="log the losses every N iterations (0 = never)")
    save_iter: int = Field(0, ge=0, description="write a preview frame every K iterations into preview_dir")
    preview_dir: OutputDir | None = Field(None, description="folder for save_iter previews")
    init_from_previous: bool = Field(False, description="video: start each frame from the previous frame's "
                                     "result (per source; makes the step temporal)")
    weights: InputPath | None = Field(None, description="loss network file (torchvision vgg19/vgg16, "
                                      "vgg_conv.pth, vgg_normalised.pth, predictor .onnx) or a weights name")
    random_weights: bool = Field(False, description="TEST ONLY: random loss network, output is not a stylization")

    @model_validator(mode="after")
    def _consistent(self) -> GatysOptions:
        from stylefarm.plugins.gatys.checks import check_options

        check_options(self)
        return self


class GatysStep(Step):
    """Optimisation style transfer (Gatys et al.) with masks, colour and scale control."""

    name = "gatys"
    kind = "stylize"
    Options = GatysOptions

    @classmethod
    def is_temporal(cls, options: GatysOptions) -> bool:
        return options.init_from_previous

    @classmethod
    def weights_needed(cls, options: GatysOptions) -> list[str]:
        """The VGG loss net's file, as `_lossnet.load_lossnet` picks it: a VGG-19 without its file
        takes AdaIN's vgg_normalised.pth when that is here; inception's trunk ships in its package."""
        from stylefarm.errors import WeightsError
        from stylefarm.plugins._lossnet_files import NORMALISED_VGG19
        from stylefarm.weights import DEFAULT_OPTION, Needed, registry, resolve

        if options.random_weights or options.weights or options.network == "inception":
            return []
        names = [f"lossnet/{options.network}"] + ([NORMALISED_VGG19] if options.network == "vgg19" else [])
        for name in (n for n in names if n in registry()):
            try:
                resolve(name)
                return [name]
            except WeightsError:
                continue
        return [Needed(names[0], f"{DEFAULT_OPTION}, or use `network: inception` (no weights file to add)")]

    def setup(self, device: str) -> None:
        from stylefarm.plugins._lossnet import load_lossnet
        from stylefarm.plugins.gatys.transfer import Settings

        super().setup(device)
        opts: GatysOptions = self.options
        self.settings = Settings.from_options(opts)
        self.net = load_lossnet(opts.network, opts.weights, self.settings.all_layers, opts.random_weights,
                                device, opts.preprocess, opts.pooling)
        self.images = _read_inputs(opts)
        if self.images["region_map"] is not None:
            from stylefarm.plugins.gatys.checks import check_region_map

            check_region_map(opts, self.images["region_map"])
        self._previous: dict[str, torch.Tensor] = {}
        self._cache: dict = {}

    def process(self, batch: Batch) -> Batch:
        return [self._one(item) for item in batch]

    def _one(self, item: Item) -> Item:
        from stylefarm.plugins.gatys.transfer import stylize

        opts: GatysOptions = self.options
        content = _fit_short(item.load().image, opts.content_size if not opts.levels else 0)
        previous = self._previous.get(item.source) if opts.init_from_previous else None
        out, tensor, info = stylize(self, content, previous, _preview_writer(opts, item))
        if opts.init_from_previous:
            self._previous[item.source] = tensor
        new = item.with_image(np.clip(out, 0.0, 1.0))
        new.meta = {**item.meta, "gatys": {**info, "styles": list(opts.style),
                                           "random_weights": opts.random_weights}}
        return new


def _read_inputs(opts: GatysOptions) -> dict:
    """Every image file the options name, read once in setup (float RGB)."""
    from stylefarm.images import read_image

    def read(path):
        return read_image(path)[0]

    return {
        "style": [read(p) for p in opts.style],
        "mask": [read(p) for p in opts.mask] if opts.mask else None,
        "style_mask": [read(p) for p in opts.style_mask] if opts.style_mask else None,
        "region_map": read(opts.region_map) if opts.region_map else None,
        "content_mask": read(opts.content_mask) if opts.content_mask else None,
        "init_image": read(opts.init_image) if opts.init_image else None,
        "fine_style": read(opts.fine_style) if opts.fine_style else None,
    }


def _fit_short(image: np.ndarray, side: int) -> np.ndarray:
    """Short side to `side` (0 = keep), keeping the aspect."""
    from stylefarm.images import resize

    h, w = image.shape[:2]
    if not side or min(h, w) == side:
        return np.ascontiguousarray(image, dtype=np.float32)
    scale = side / min(h, w)
    return resize(np.ascontiguousarray(image, dtype=np.float32), max(1, round(w * scale)), max(1, round(h * scale)))


def _preview_writer(opts: GatysOptions, item: Item):
    """A function writing a preview PNG (atomic) of the current image, or None when not asked."""
    if not opts.save_iter or not opts.preview_dir:
        return None
    from pathlib import Path

    from stylefarm.images import atomic_write_bytes, encode_image

    folder = Path(opts.preview_dir)

    def write(level: int, iteration: int, image: np.ndarray) -> None:
        name = f"{item.stem}.{item.index:05d}.level{level}.iter{iteration:05d}.png"
        atomic_write_bytes(folder / name, encode_image(".png", image, None, 8))

    return write
