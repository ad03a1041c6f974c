"""CUT / FastCUT / QS-Attn networks with the official module layout (so checkpoint keys match).

Generator: the ResNet generator of Park et al. (ECCV 2020) - reflect-padded 7x7 stem, two
anti-aliased down-samplings (conv stride 1, norm, ReLU, blur-pool), `n_blocks` residual blocks,
two anti-aliased up-samplings (blur-unpool, conv), 7x7 head and tanh. The index of every module
inside `self.model` is the official one: `nce_layers` (0,4,8,12,16) and state_dict keys
(`model.7.filt`, `model.12.conv_block.1.weight` ...) depend on it.
Discriminator: the 70x70 PatchGAN (`basic`, n_layers 3) with anti-aliased strides.
Projection: `PatchSampleF` (netF) MLP heads `mlp_{i}` per NCE layer, built eagerly here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylefarm.plugins._norms import InstanceNorm

from .ops import qs_sample, random_patch_ids

_BINOMIAL = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}


def binomial_filter(size: int) -> torch.Tensor:
    """The fixed 2-D blur kernel of the anti-aliased layers, summing to 1."""
    a = torch.tensor(_BINOMIAL[size], dtype=torch.float64)
    filt = a[:, None] * a[None, :]
    return (filt / filt.sum()).float()


class Downsample(nn.Module):
    """Blur-pool: reflect pad 1, depthwise [1,2,1]^2/16 filter with stride 2 (`filt` is a buffer)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """Blur-unpool: replicate pad 1, depthwise transposed conv with [1,3,3,1]^2/64*4, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        out = F.conv_transpose2d(padded, self.filt, stride=2, padding=2, groups=x.shape[1])
        return out[:, :, 1:-1, 1:-1]  # official: [1:, 1:] then, for the even filter, [:-1, :-1]


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Official `get_norm_layer`: instance = no affine, no running stats; batch = affine + stats.

    The instance norm is `nn.InstanceNorm2d(affine=False)`'s maths, computed in the input's memory
    layout (`_norms.InstanceNorm`), so a channels-last generator stays channels-last; no state,
    so the checkpoint keys are the official ones."""
    if norm == "instance":
        return InstanceNorm()
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    return nn.Identity()


class ResnetBlock(nn.Module):
    """x + [pad, conv3, norm, ReLU, pad, conv3, norm](x), reflect padding."""

    def __init__(self, dim: int, norm: str, use_bias: bool):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(norm, dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(norm, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _down(cin: int, cout: int, norm: str, bias: bool, antialias: bool) -> list[nn.Module]:
    if not antialias:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=bias), norm_layer(norm, cout), nn.ReLU(True)]
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=bias), norm_layer(norm, cout), nn.ReLU(True), Downsample(cout)]


def _up(cin: int, cout: int, norm: str, bias: bool, antialias: bool) -> list[nn.Module]:
    if not antialias:
        return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, cout), nn.ReLU(True)]
    return [Upsample(cin), nn.Conv2d(cin, cout, 3, padding=1, bias=bias), norm_layer(norm, cout), nn.ReLU(True)]


class ResnetGenerator(nn.Module):
    """The released CUT / FastCUT / QS-Attn generator (`resnet_9blocks`, ngf 64, instance norm)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", no_antialias: bool = False,
                 no_antialias_up: bool = False, input_nc: int = 3, output_nc: int = 3):
        super().__init__()
        bias = norm == "instance"  # official: convs before a no-affine instance norm carry a bias
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        layers += _down(ngf, ngf * 2, norm, bias, not no_antialias)
        layers += _down(ngf * 2, ngf * 4, norm, bias, not no_antialias)
        layers += [ResnetBlock(ngf * 4, norm, bias) for _ in range(n_blocks)]
        layers += _up(ngf * 4, ngf * 2, norm, bias, not no_antialias_up)
        layers += _up(ngf * 2, ngf, norm, bias, not no_antialias_up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.config = {"ngf": ngf, "n_blocks": n_blocks, "norm": norm, "no_antialias": no_antialias,
                       "no_antialias_up": no_antialias_up}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] image (H, W multiples of 4) -> tanh output in [-1, 1]."""
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of the modules at `layers` (official `encode_only=True`), stopping after the last."""
        feats, last = [], max(layers)
        for index, layer in enumerate(self.model):
            x = layer(x)
            if index in layers:
                feats.append(x)
            if index == last:
                break
        return feats


class NLayerDiscriminator(nn.Module):
    """PatchGAN (`netD basic` = 3 layers), anti-aliased: conv stride 1 + blur-pool instead of stride 2."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: str = "instance", no_antialias: bool = False,
                 input_nc: int = 3):
        super().__init__()
        bias = norm == "instance"
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2 if no_antialias else 1, padding=1),
                                nn.LeakyReLU(0.2, True)]
        seq += [] if no_antialias else [Downsample(ndf)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            conv = nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if no_antialias else 1, padding=1, bias=bias)
            seq += [conv, norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
            seq += [] if no_antialias else [Downsample(ndf * mult)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1, bias=bias), norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Official `Normalize(2)`: divide by the L2 norm over dim 1 plus 1e-7."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-7)


class PatchSampleF(nn.Module):
    """netF: sample patches of each NCE layer and project them with a 2-layer MLP (`mlp_{i}`).

    `qs_mode` None = CUT (random positions everywhere). With QS-Attn ('global', 'local',
    'local_global') the last `qs_layers` layers use query-selected attention: the source pass
    returns the selection (ids and attention rows), the translated pass reuses it. No extra
    parameters: the MLPs are the same as CUT's, so netF files have the same keys.
    """

    def __init__(self, channels: list[int], nc: int = 256, qs_mode: str | None = None, qs_layers: int = 2):
        super().__init__()
        for i, c in enumerate(channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))
        self.qs_mode, self.first_qs = qs_mode, len(channels) - qs_layers if qs_mode else len(channels)

    def forward(self, feats: list[torch.Tensor], num_patches: int, selection: list | None = None):
        """(L2-normalised projections [B*num_patches, nc] per layer, selection to reuse for the other pass)."""
        out, chosen = [], []
        for i, feat in enumerate(feats):
            given = selection[i] if selection is not None else None
            if i < self.first_qs:
                ids = given if given is not None else random_patch_ids(feat, num_patches)
                flat = feat.permute(0, 2, 3, 1).flatten(1, 2)
                sample, used = flat[:, ids, :].flatten(0, 1), ids
            else:
                sample, used = qs_sample(feat, num_patches, self.qs_mode, given)
            out.append(l2_normalize(getattr(self, f"mlp_{i}")(sample)))
            chosen.append(used)
        return out, chosen


GENERATOR_FLAGS = ("ngf", "n_blocks", "norm", "no_antialias", "no_antialias_up")


def generator_shapes(**config) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape of a generator config, built on the meta device (no memory)."""
    with torch.device("meta"):
        net = ResnetGenerator(**config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def fitting_config(state: dict[str, torch.Tensor]) -> dict | None:
    """The generator flags whose keys and shapes equal `state`'s, or None when none does."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if "model.1.weight" not in shapes:
        return None
    ngf = shapes["model.1.weight"][0]
    n_blocks = len({k.split(".")[1] for k in shapes if ".conv_block." in k})
    for norm in ("instance", "batch", "none"):
        for no_aa in (False, True):
            for no_aa_up in (False, True):
                config = {"ngf": ngf, "n_blocks": n_blocks, "norm": norm, "no_antialias": no_aa,
                          "no_antialias_up": no_aa_up}
                if generator_shapes(**config) == shapes:
                    return config
    return None


def mismatch_summary(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], limit: int = 3) -> str:
    """Missing / unexpected keys and differing shapes between a checkpoint and a config (first few each)."""
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {list(got[k])} vs {list(v)}" for k, v in expected.items() if k in got and got[k] != v]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{label}: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def strip_wrappers(state: dict) -> dict:
    """Accept a bare official state_dict, one under 'state_dict', or keys prefixed by DataParallel."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
