"""The `cut` translate step: CUT / FastCUT / QS-Attn generators (same network, same keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from stylefarm.item import Batch
from stylefarm.plugins._precision import PRECISION_HELP, Precision
from stylefarm.step import InputPath, Step, StepOptions

if TYPE_CHECKING:
    import torch

Preprocess = Literal["none", "resize_and_crop", "scale_width", "scale_width_and_crop"]


CPU_PIXELS_PER_PASS = 256 * 256
"""CPU pass size (`Placement.passes`): one frame a pass from 256 x 256 up. Generator per frame,
passes of 4 vs 1, same run: 256 px 0.499 vs 0.408 s, 512 px 2.318 vs 2.003 s, 128 px 0.107 vs
0.101 s (benchmarks/README.md, "Passes of one frame on CPU")."""


class CUTOptions(StepOptions):
    model: str = Field("cut/G", description="weights-manager name of the generator (e.g. cut/G, cut/demo, "
                       "or a model registered by `stylefarm train cut --register NAME` as cut/NAME)")
    weights: InputPath | dict[str, InputPath] | None = Field(
        None, description="latest_net_G.pth of CUT, FastCUT or QS-Attn: a path, or {G: path}; overrides `model`")
    ngf: int = Field(64, ge=1, description="official --ngf: filters of the first conv")
    n_blocks: int = Field(9, ge=0, description="ResNet blocks: 9 = resnet_9blocks (official), 6 = resnet_6blocks")
    norm: Literal["instance", "batch", "none"] = Field("instance", description="official --normG")
    no_antialias: bool = Field(False, description="official --no_antialias: strided convs instead of blur-pool")
    no_antialias_up: bool = Field(False, description="official --no_antialias_up: transposed convs")
    preprocess: Preprocess = Field(
        "none", description="official test --preprocess; none = keep the size (rounded to a multiple of 4)")
    load_size: int = Field(256, ge=4, description="official --load_size (resize / scale_width target)")
    crop_size: int = Field(256, ge=4, description="official --crop_size (centre crop; the official test crop is "
                           "random)")
    keep_size: bool = Field(False, description="pad to a multiple of 4 (reflect) and crop back instead of the "
                            "official bicubic rounding of the size; only with preprocess: none")
    tile: int = Field(0, ge=0, multiple_of=4, description="0 = whole frame (official); N = N x N px tiles for big "
                      "frames (instance norm then sees each tile's statistics)")
    tile_overlap: int = Field(64, ge=0, multiple_of=4, description="overlap of neighbouring tiles, feathered")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    random_weights: bool = Field(False, description="TEST ONLY: random generator, output is noise")

    @model_validator(mode="after")
    def _consistent(self) -> CUTOptions:
        if self.keep_size and self.preprocess != "none":
            raise ValueError("keep_size: only with preprocess: none (the other modes resize anyway)")
        if self.tile and self.tile_overlap >= self.tile:
            raise ValueError(f"tile_overlap: {self.tile_overlap} must be smaller than tile: {self.tile}")
        if isinstance(self.weights, dict) and set(self.weights) - {"G"}:
            raise ValueError(f"weights: unknown role(s) {sorted(set(self.weights) - {'G'})}; the only role is G")
        return self


class CUTStep(Step):
    """Unpaired image-to-image translation with a CUT / FastCUT / QS-Attn generator."""

    name = "cut"
    kind = "translate"
    Options = CUTOptions

    @classmethod
    def weights_needed(cls, options) -> list[str]:
        override = options.weights.get("G") if isinstance(options.weights, dict) else options.weights
        return [] if options.random_weights or override else [options.model]

    def setup(self, device: str) -> None:
        from stylefarm.plugins._precision import Placement
        from stylefarm.plugins.cut.model import GENERATOR_FLAGS, ResnetGenerator

        super().setup(device)
        opts: CUTOptions = self.options
        self.net = ResnetGenerator(**{k: getattr(opts, k) for k in GENERATOR_FLAGS})
        self._load()
        # reduced precision halves memory and time on GPUs (untested on CUDA: no GPU on the dev machines).
        # float32 on CPU runs channels-last (its norms stay in that layout: `_norms`): 1.15-1.3x per frame
        channels_last = device == "cpu" and opts.precision == "float32"
        self.place = Placement(device, opts.precision, channels_last=channels_last)
        self.place.modules(self.net)
        self.dtype = self.place.dtype

    def _load(self) -> None:
        from stylefarm.errors import WeightsError
        from stylefarm.plugins.cut.model import fitting_config, mismatch_summary, strip_wrappers
        from stylefarm.weights import announce_random_weights, load_weights

        opts: CUTOptions = self.options
        if opts.random_weights:
            announce_random_weights(self.name)
            _randomize(self.net)
            return
        override = opts.weights.get("G") if isinstance(opts.weights, dict) else opts.weights
        state, path = load_weights(opts.model, override)
        state = strip_wrappers(state)
        expected = {k: tuple(v.shape) for k, v in self.net.state_dict().items()}
        if {k: tuple(v.shape) for k, v in state.items()} != expected:
            fits = fitting_config(state)
            hint = (", ".join(f"{k}: {v}" for k, v in fits.items()) if fits else "no CUT generator config")
            raise WeightsError(f"weights {path} do not fit the cut generator ({_config_text(self.net.config)}): "
                               f"{mismatch_summary(state, expected)}; the checkpoint fits {hint}")
        self.net.load_state_dict(state, strict=True)

    def process(self, batch: Batch) -> Batch:
        inputs = [self._prepare(it.load()) for it in batch]
        results: list[np.ndarray | None] = [None] * len(batch)
        for idx in self.place.passes([x.shape for x in inputs], CPU_PIXELS_PER_PASS):  # same size; CPU: cache-sized
            for i, out in zip(idx, self.translate([inputs[i] for i in idx])):
                results[i] = out
        return [self._finish(it, out) for it, out in zip(batch, results)]

    def _prepare(self, item) -> np.ndarray:
        """The official test transform of one frame (or the frame itself in keep-size mode)."""
        from stylefarm.plugins.cut.ops import official_preprocess

        opts: CUTOptions = self.options
        if opts.keep_size:
            return item.image
        return official_preprocess(item.image, opts.preprocess, opts.load_size, opts.crop_size,
                                   eight_bit=item.bit_depth == 8)

    def _finish(self, item, out: np.ndarray):
        """Back to the input's size (bicubic) when the official transform resized it."""
        from stylefarm.plugins.cut.ops import pil_resize

        h, w = item.image.shape[:2]
        out = np.clip(pil_resize(out, w, h, eight_bit=False), 0.0, 1.0)
        new = item.with_image(out)
        new.meta = {**item.meta, "cut": {"model": self.options.weights or self.options.model,
                                         "random_weights": self.options.random_weights}}
        return new

    def translate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size HxWx3 [0, 1] images -> translated images of the same size, in one batch."""
        from stylefarm.plugins._precision import inference
        from stylefarm.plugins.cut.ops import to_images, to_input
        from stylefarm.tiling import tiled_apply

        x = self.place.tensor_in(to_input(images))
        with inference(self.place):
            if self.options.tile:
                y = tiled_apply(self._run, x, self.options.tile, self.options.tile_overlap)
            else:
                y = self._run(x)
        return to_images(y)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Generator on a [-1, 1] batch; sides not a multiple of 4 are padded and cropped back."""
        from stylefarm.plugins.cut.ops import pad_to_multiple

        padded, h, w = pad_to_multiple(x)
        return self.net(padded)[:, :, :h, :w]


def _config_text(config: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in config.items())


def _randomize(net) -> None:
    """Test-only weights: N(0, 0.02) convs as the official `--init_type normal` (not xavier, whose
    0.02 gain makes the output ~0), zero biases; fixed seed so test runs are reproducible."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.02)
                if mod.bias is not None:
                    mod.bias.zero_()
