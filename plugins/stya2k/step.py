"""The `stya2k` step: options, one-time setup (weights, style keys), chunked process."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from stylefarm.item import Batch, Item
from stylefarm.plugins._precision import PRECISION_HELP, Precision
from stylefarm.step import InputImage, InputPath, Step, StepOptions

ROLES = {"vgg": "adain/vgg", "A2K": "stya2k/A2K", "transform": "stya2k/transform",
         "decoder": "stya2k/decoder"}


class StyA2KOptions(StepOptions):
    style: InputImage = Field(description="style image path")
    alpha: float = Field(1.0, ge=0.0, le=1.0,
                         description="scales the attention residual of every A2K layer (1 = official)")
    preserve_color: bool = Field(False, description="keep the content's colours")
    color_method: Literal["coral", "luminance"] = Field(
        "coral", description="coral: recolour the style image to the content; luminance: keep content chroma")
    content_size: int = Field(512, ge=0, description="content size before stylizing; 0 = keep the input size")
    style_size: int = Field(512, ge=0, description="style size; 0 = keep")
    keep_aspect: bool = Field(
        False, description="false: squash to size x size (official load_size); true: short side = size")
    weights: InputPath | dict[str, InputPath] | None = Field(
        None, description="one file with {vgg, A2K, transform, decoder} dicts, or a mapping role -> path")
    attention_mb: int = Field(64, ge=1, description="memory per attention chunk (content regions are chunked)")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    random_weights: bool = Field(False, description="TEST ONLY: random networks, output is noise")

    @field_validator("weights")
    @classmethod
    def _roles(cls, value):
        if isinstance(value, dict) and set(value) - set(ROLES):
            raise ValueError(f"weights: unknown role(s) {sorted(set(value) - set(ROLES))}; "
                             f"expected {', '.join(ROLES)}")
        return value


def fit_size(image: np.ndarray, size: int, keep_aspect: bool) -> np.ndarray:
    """The official test resize (bicubic to size x size), or short side to size; 0 = keep."""
    from stylefarm.plugins._images import pil_resize

    h, w = image.shape[:2]
    if not size:
        return image
    if not keep_aspect:
        return pil_resize(image, size, size, "bicubic")
    scale = size / min(h, w)
    return pil_resize(image, max(1, round(w * scale)), max(1, round(h * scale)), "bicubic")


class StyA2KStep(Step):
    """All-to-key attention style transfer (Zhu et al., ICCV 2023), any size and aspect."""

    name = "stya2k"
    kind = "stylize"
    Options = StyA2KOptions

    @classmethod
    def weights_needed(cls, options) -> list[str]:
        from stylefarm.weights import role_names

        return [] if options.random_weights else role_names(options.weights, ROLES)

    def setup(self, device: str) -> None:
        from stylefarm.images import read_image
        from stylefarm.plugins._precision import Placement
        from stylefarm.plugins.stya2k.model import StyA2K

        super().setup(device)
        opts: StyA2KOptions = self.options
        self.model = StyA2K().eval()
        self._load_weights()
        self.place = Placement(device, opts.precision, channels_last=False)  # attention: no layout gain measured
        self.place.modules(self.model)
        self.dtype = self.place.dtype
        self.style = fit_size(read_image(opts.style)[0], opts.style_size, opts.keep_aspect)
        self.keys = None if self._recolours_style() else self._style_keys(self.style)

    def _load_weights(self) -> None:
        from stylefarm.plugins._vgg import randomize_convs
        from stylefarm.weights import announce_random_weights, load_into, role_states

        if self.options.random_weights:
            announce_random_weights(self.name)
            randomize_convs([self.model])
            return
        states = role_states(self.options.weights, ROLES)
        self.model.encoder.load_official(*states["vgg"])
        for role, module in (("A2K", self.model.A2K), ("transform", self.model.transform),
                             ("decoder", self.model.decoder)):
            load_into(module, *states[role])

    def _recolours_style(self) -> bool:
        return self.options.preserve_color and self.options.color_method == "coral"

    def _style_keys(self, style: np.ndarray):
        from stylefarm.plugins._images import to_tensor
        from stylefarm.plugins._precision import inference

        with inference(self.place):
            return self.model.style_keys(self.place.tensor_in(to_tensor(style)))

    def process(self, batch: Batch) -> Batch:
        opts: StyA2KOptions = self.options
        contents = [fit_size(it.load().image, opts.content_size, opts.keep_aspect) for it in batch]
        results: list[np.ndarray | None] = [None] * len(batch)
        from stylefarm.plugins._vgg import VGG_PIXELS_PER_PASS

        # same-size items run together; on CPU one frame a pass from 256 x 256 (512 px: 1.72 vs 2.40 s a frame)
        for idx in self.place.passes([c.shape for c in contents], VGG_PIXELS_PER_PASS):
            for i, out in zip(idx, self.stylize([contents[i] for i in idx])):
                results[i] = out
        return [self._finish(it, c, out) for it, c, out in zip(batch, contents, results)]

    def stylize(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize same-size HxWx3 images; the output keeps their size."""
        from stylefarm.plugins._images import coral, to_tensor
        from stylefarm.plugins._precision import inference
        from stylefarm.plugins.stya2k.ops import expand_keys

        if self.keys is None:  # coral: the style is recoloured per content image
            outs = []
            for image in images:
                style = coral(to_tensor(self.style)[0], to_tensor(image)[0]).permute(1, 2, 0).numpy()
                self.keys = self._style_keys(style)
                outs += self.stylize([image])
            self.keys = None
            return outs
        x = self.place.images_in(images)
        keys = [expand_keys(k, len(images)) for k in self.keys]
        budget = self.options.attention_mb * (1 << 20) // 4
        with inference(self.place):
            out = self.model(x, keys, self.options.alpha, budget)
        return self.place.images_out(out)

    def _finish(self, item: Item, content: np.ndarray, out: np.ndarray) -> Item:
        from stylefarm.plugins._controls import recombine_luminance as keep_luminance_only

        if self.options.preserve_color and self.options.color_method == "luminance":
            out = keep_luminance_only(out, content)
        new = item.with_image(out)
        new.meta = {**item.meta, "stya2k": {"style": self.options.style,
                                            "random_weights": self.options.random_weights}}
        return new
