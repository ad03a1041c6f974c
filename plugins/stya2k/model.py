"""StyA2K networks with the authors' key names (LearningHx/StyA2K `models/networks.py`).

`A2K` is one all-to-key attention layer (keys `q`, `k`, `v`, `q2`, `k2`, `v2`, `fusion1`,
`fusion2`, `sim_alpha`, `sim_beta`); `Transform` holds the relu4_1/relu5_1 layers and the
merge conv; `Decoder` takes the merged features plus the relu3_1 A2K output. The encoder is
the AdaIN `vgg_normalised.pth` read at relu3_1, relu4_1 and relu5_1. No file I/O here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylefarm.plugins._vgg import ConvStack, VGGEncoder, decoder_layers
from stylefarm.plugins.stya2k import ops

HEADS = 8


class A2K(nn.Module):
    """All-to-key attention on one feature level; `region` is the official per-layer size."""

    def __init__(self, channels: int, region: int):
        super().__init__()
        self.region = region
        for name in ("q", "k", "v", "q2", "k2", "v2", "fusion1", "fusion2"):
            setattr(self, name, nn.Conv2d(channels, channels, 1))
        self.sim_alpha = nn.Parameter(torch.ones(1))
        self.sim_beta = nn.Parameter(torch.zeros(1))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
        regions, grid, valid = ops.to_regions(x, self.region)
        b, c, n, r = regions.shape
        return regions.view(b, HEADS, c // HEADS, n, r), grid, valid

    def style_keys(self, style: torch.Tensor) -> ops.StyleKeys:
        """Keys/values of a style feature map: depends on the style only, so cache it."""
        norm = ops.mean_variance_norm(style)
        k1, _, valid = self._heads(self.k(norm))
        v1 = self._heads(self.v(style))[0]
        k_agg, v_agg = ops.aggregate(k1, v1, valid, self.sim_alpha, self.sim_beta)
        k2, v2 = self._heads(self.k2(norm))[0], self._heads(self.v2(style))[0]
        return ops.StyleKeys(k_agg, v_agg, k2, v2, valid)

    def forward(self, content: torch.Tensor, keys: ops.StyleKeys, alpha: float = 1.0,
                budget: int = ops.CHUNK_ELEMENTS) -> torch.Tensor:
        """content + alpha * (fused distributed + progressive attention); alpha=1 is official."""
        b, c, h, w = content.shape
        norm = ops.mean_variance_norm(content)
        q1, grid, _ = self._heads(self.q(norm))
        q2 = self._heads(self.q2(norm))[0]
        da, pa = ops.all_to_key(q1, q2, keys, budget)
        del q1, q2
        n, r = da.shape[-2:]
        da = ops.from_regions(da.reshape(b, c, n, r), self.region, grid, h, w)
        pa = ops.from_regions(pa.reshape(b, c, n, r), self.region, grid, h, w)
        out = self.fusion1(da) + self.fusion2(pa)
        return content + alpha * out


class Transform(nn.Module):
    """A2K on relu4_1 (region 8) and relu5_1 (region 4), merged at relu4_1 resolution."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.attn_adain_4_1 = A2K(channels, region=8)
        self.attn_adain_5_1 = A2K(channels, region=4)
        self.merge_conv_pad = nn.ReflectionPad2d(1)
        self.merge_conv = nn.Conv2d(channels, channels, 3)

    def forward(self, c4: torch.Tensor, k4: ops.StyleKeys, c5: torch.Tensor, k5: ops.StyleKeys,
                alpha: float = 1.0, budget: int = ops.CHUNK_ELEMENTS) -> torch.Tensor:
        a5 = self.attn_adain_5_1(c5, k5, alpha, budget)
        a4 = self.attn_adain_4_1(c4, k4, alpha, budget)
        # ceil-mode pooling can make relu5_1 more than half of relu4_1: crop after upsampling
        up = F.interpolate(a5, scale_factor=2.0, mode="nearest")[:, :, : c4.shape[2], : c4.shape[3]]
        return self.merge_conv(self.merge_conv_pad(a4 + up))


class Decoder(nn.Module):
    """Official decoder with the relu3_1 skip connection (`skip_connection_3=True`)."""

    def __init__(self):
        super().__init__()
        self.decoder_layer_1 = ConvStack(*decoder_layers([256, "U"], 512, relu_last=True))
        self.decoder_layer_2 = ConvStack(
            *decoder_layers([256, 256, 256, 128, "U", 128, 64, "U", 64, 3], 512))

    def forward(self, cs: torch.Tensor, skip3: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.decoder_layer_1(cs)[:, :, : skip3.shape[2], : skip3.shape[3]]
        return self.decoder_layer_2(torch.cat((x, skip3), dim=1))[:, :, : size[0], : size[1]]


class StyA2K(nn.Module):
    """Encoder + relu3_1 A2K + Transform + Decoder; style keys are computed separately."""

    def __init__(self):
        super().__init__()
        self.encoder = VGGEncoder(("relu3_1", "relu4_1", "relu5_1"))
        self.A2K = A2K(256, region=8)
        self.transform = Transform(512)
        self.decoder = Decoder()

    def style_keys(self, style: torch.Tensor) -> list[ops.StyleKeys]:
        s3, s4, s5 = self.encoder(style)
        return [self.A2K.style_keys(s3), self.transform.attn_adain_4_1.style_keys(s4),
                self.transform.attn_adain_5_1.style_keys(s5)]

    def forward(self, content: torch.Tensor, keys: list[ops.StyleKeys], alpha: float = 1.0,
                budget: int = ops.CHUNK_ELEMENTS) -> torch.Tensor:
        c3, c4, c5 = self.encoder(content)
        skip3 = self.A2K(c3, keys[0], alpha, budget)
        del c3
        cs = self.transform(c4, keys[1], c5, keys[2], alpha, budget)
        return self.decoder(cs, skip3, content.shape[-2:])
