"""The VGG-19 "normalised" encoder and decoder layers shared by AdaIN and StyA2K, and the checkpoint formats.

Both models use the same file, `vgg_normalised.pth` of naoto0804/pytorch-AdaIN: an
`nn.Sequential` of 53 modules whose state_dict keys are the module indices (`0.weight`,
`2.weight`, ... `51.weight`). Module 0 is a 1x1 conv that maps RGB in [0, 1] to the
mean-subtracted 0-255 BGR that the Caffe VGG was trained on. We rebuild the same index
layout so the official file loads by its own keys, and keep only the modules a model needs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stylefarm.errors import WeightsError

# Conv widths per VGG block; "M" is a 2x2 max-pool (ceil_mode, as in the official file).
_PLAN: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                          512, 512, 512, 512, "M", 512, 512, 512, 512]

# Index of the module right after each ReLU we read, in the 53-module official layout.
TAPS = {"relu1_1": 4, "relu2_1": 11, "relu3_1": 18, "relu4_1": 31, "relu5_1": 44}

_CONV_INDICES = [2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
_TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layers(depth: int) -> list[nn.Module]:
    """The first `depth` modules of the official 53-module layout (same indices, same keys)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = 3
    for spec in _PLAN:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, int(spec), 3), nn.ReLU(inplace=True)]
        channels = int(spec)
    return layers[:depth]


# --- the same layers, run without their pad and upsample copies (see plugins/_convs.py) ------

VGG_PIXELS_PER_PASS = 256 * 256
"""CPU pass size for these VGG networks (`Placement.passes`): one frame a pass from 256 x 256 up.
AdaIN encoder + decoder per frame, passes of 1 vs 4 frames, same run: 256 px 0.152 vs 0.192 s,
512 px 0.720 vs 0.787 s (1024 px: 1 and 2 frames alike); at 64-128 px batching still pays.
StyA2K (its step uses the same bound) per frame: 512 px 1.72 vs 2.40 s, 256 px 0.374 vs 0.416 s."""


def _plain_3x3(pad: nn.Module | None = None, conv: nn.Module | None = None) -> bool:
    """A ReflectionPad2d(1) then a plain 3x3 conv: the pattern both `_convs` rewrites need."""
    return (isinstance(pad, nn.ReflectionPad2d) and tuple(pad.padding) == (1, 1, 1, 1)
            and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def _nearest_2x(up: nn.Module) -> bool:
    return (isinstance(up, nn.Upsample) and up.mode == "nearest" and up.size is None
            and up.scale_factor in (2, 2.0, (2.0, 2.0), (2, 2)))


def _relu(module: nn.Module | None) -> bool:
    return isinstance(module, nn.ReLU)


def run_layers(layers: nn.Sequential, x: torch.Tensor):
    """Yield (modules consumed so far, output) through `layers`: pad + conv and upsample + pad +
    conv run as `_convs.reflect_conv` / `upsample_reflect_conv` on maps big enough to gain, each
    with the ReLU after it folded in."""
    from stylefarm.plugins import _convs

    mods = [*layers, None]  # a look past the end
    i, end = 0, len(layers)
    while i < end:
        pixels = x.shape[-2] * x.shape[-1]
        if pixels >= _convs.FOLD_MIN_PIXELS and _nearest_2x(mods[i]) and _plain_3x3(*mods[i + 1:i + 3]):
            relu = _relu(mods[i + 3])
            x, i = _convs.upsample_reflect_conv(x, mods[i + 2].weight, mods[i + 2].bias, relu), i + 3 + relu
        elif pixels >= _convs.BORDER_FIX_MIN_PIXELS and _plain_3x3(*mods[i:i + 2]):
            relu = _relu(mods[i + 2])
            x, i = _convs.reflect_conv(x, mods[i + 1].weight, mods[i + 1].bias, relu), i + 2 + relu
        else:
            x, i = mods[i](x), i + 1
        yield i, x


class ConvStack(nn.Sequential):
    """An `nn.Sequential` (same modules, same keys) whose forward skips pad and upsample copies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, out in run_layers(self, x):
            x = out  # only the latest map stays alive
        return x


class VGGEncoder(nn.Module):
    """VGG-19 up to the deepest tap asked for; `forward` returns the tapped features."""

    def __init__(self, taps: tuple[str, ...] = ("relu4_1",)):
        super().__init__()
        self.taps = taps
        self.depth = max(TAPS[t] for t in taps)
        self.layers = ConvStack(*vgg_layers(self.depth))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        stops = {TAPS[t]: t for t in self.taps}
        out: dict[str, torch.Tensor] = {}
        for index, x in run_layers(self.layers, image):
            if index in stops:
                out[stops[index]] = x
        return [out[t] for t in self.taps]

    def load_official(self, state: dict[str, Any], path: str = "vgg") -> None:
        """Load any accepted encoder format (see `encoder_state`) into `self.layers`."""
        from stylefarm.weights import load_into

        load_into(self.layers, encoder_state(state, self.depth, path), path)


def _is_torchvision(state: dict[str, Any]) -> bool:
    first = state.get("features.0.weight", state.get("0.weight"))
    return first is not None and tuple(first.shape) == (64, 3, 3, 3)


def from_torchvision(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map a torchvision `vgg19` ImageNet state_dict to the official encoder keys.

    torchvision's VGG expects RGB in [0, 1] normalised by the ImageNet mean/std; we fold
    that normalisation into the leading 1x1 conv so the encoder takes plain [0, 1] RGB.
    The features differ from `vgg_normalised.pth` (different training), so decoders
    trained on the official file do not fit them: this is for new decoders and feature use.
    """
    prefix = "features." if "features.0.weight" in state else ""
    mapped: dict[str, torch.Tensor] = {}
    for tv, ours in zip(_TORCHVISION_CONVS, _CONV_INDICES):
        for kind in ("weight", "bias"):
            key = f"{prefix}{tv}.{kind}"
            if key in state:
                mapped[f"{ours}.{kind}"] = state[key]
    std = torch.tensor(_IMAGENET_STD)
    mapped["0.weight"] = torch.diag(1.0 / std).view(3, 3, 1, 1)
    mapped["0.bias"] = -torch.tensor(_IMAGENET_MEAN) / std
    return mapped


def encoder_state(state: dict[str, Any], depth: int, path: str = "vgg") -> dict[str, Any]:
    """Keys of an official (full or truncated) or torchvision VGG-19 file, cut to `depth`."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if _is_torchvision(state):
        state = from_torchvision(state)
    first = state.get("0.weight")
    if first is None or tuple(first.shape) != (3, 3, 1, 1):
        keys = ", ".join(list(state)[:3]) or "none"
        raise WeightsError(
            f"weights {path} are not a VGG-19 encoder (expected keys like '0.weight' [3,3,1,1] "
            f"of vgg_normalised.pth or torchvision 'features.0.weight'; got {keys})"
        )
    kept = {}
    for key, value in state.items():
        index = key.split(".", 1)[0]
        if index.isdigit() and int(index) < depth:
            kept[key] = value
    return kept


def decoder_layers(plan: list[int | str], in_channels: int, relu_last: bool = False) -> list[nn.Module]:
    """Reflection-padded 3x3 convs, each followed by ReLU except the last (unless asked)."""
    layers: list[nn.Module] = []
    channels = in_channels
    last_conv = max(i for i, spec in enumerate(plan) if spec != "U")
    for i, spec in enumerate(plan):
        if spec == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, int(spec), 3)]
        if i != last_conv or relu_last:
            layers.append(nn.ReLU(inplace=True))
        channels = int(spec)
    return layers


# --- weights plumbing shared by the model plugins (belongs in pipeline/weights.py) -------

def randomize_convs(modules: list[nn.Module], seed: int = 0) -> None:
    """Test-only weights: He-normal convs, biases U(-0.1, 0.1), seeded and deterministic.

    PyTorch's default init collapses deep VGG features to near-constants, which would make
    random-weight tests meaningless; this is the init the shared AdaIN fixture used.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in modules:
        for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
            fan_in = conv.weight[0].numel()
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if conv.bias is not None:
                    conv.bias.copy_(torch.rand(conv.bias.shape, generator=gen) * 0.2 - 0.1)
