"""The StyleNAT generator (Walton et al. 2022) with the official module names, so released
checkpoints load by their own keys (`state_dicts.g_ema`; legacy `g_ema` after `loading.py`
renames its split-head rpb0/rpb1).

Mapping network -> learned 4x4 constant -> per-resolution stages of two style-modulated
attention blocks (full MHSA with relative position bias at 4x4, Hydra neighbourhood attention
from 8x8: head groups with their own kernel, dilation and bias) -> bilinear upsample with
LayerNorm + Linear and a learned-scale sinusoidal grid -> ToRGB skips with the blur upsampler.
Output is in ImageNet-normalised space (see `ops.unnormalize`). No file I/O here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import GeneratorConfig
from .ops import blur_upsample, na2d, sinusoidal_grid


class EqualLinear(nn.Module):
    """StyleGAN2's equalised linear layer; with `activation` the fused leaky ReLU (x sqrt 2)."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_dim), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            out = F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul
            return F.leaky_relu(out, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm over the tokens of each channel, then gamma * x + beta from w."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.style = EqualLinear(style_dim, 2 * channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # x [B, N, C]
        gamma, beta = self.style(w).unsqueeze(1).chunk(2, dim=-1)
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
        return gamma * ((x - mean) * torch.rsqrt(var + 1e-5)) + beta


class Mlp(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _split_qkv(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, H, W, 3C] laid out [q | k | v], heads contiguous -> three [B, heads, H, W, head_dim]."""
    b, h, w, c3 = qkv.shape
    q, k, v = qkv.view(b, h, w, 3, heads, c3 // (3 * heads)).permute(3, 0, 4, 1, 2, 5)
    return q, k, v


class MHSARPB(nn.Module):
    """Full self-attention over a small square map with a relative position bias (the 4x4 stage)."""

    def __init__(self, dim: int, size: int, heads: int, qkv_bias: bool, qk_scale: float | None):
        super().__init__()
        self.heads, self.size = heads, size
        self.scale = qk_scale or (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rpb = nn.Parameter(torch.zeros(heads, 2 * size - 1, 2 * size - 1))
        self.register_buffer("relative_position_index", _relative_index(size))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, W, C]
        b, h, w, c = x.shape
        q, k, v = (t.reshape(b, self.heads, h * w, -1) for t in _split_qkv(self.qkv(x), self.heads))
        n = self.size * self.size
        bias = self.rpb.permute(1, 2, 0).flatten(0, 1)[self.relative_position_index.view(-1)]
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.view(n, n, -1).permute(2, 0, 1)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


def _relative_index(size: int) -> torch.Tensor:
    """Index into the flattened [(2s-1)^2] bias table of (key - query) per query/key pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, None, :] - coords[:, :, None]).permute(1, 2, 0) + size - 1  # key minus query
    return rel[..., 0] * (2 * size - 1) + rel[..., 1]


class HydraNeighborhoodAttention(nn.Module):
    """Heads split into groups, each with its own kernel, dilation and bias (`rpb.<g>`)."""

    def __init__(self, dim: int, groups: list[tuple[int, int, int]], qkv_bias: bool, qk_scale: float | None):
        super().__init__()
        self.groups = groups
        self.heads = sum(h for _, _, h in groups)
        self.scale = qk_scale or (dim // self.heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rpb = nn.ParameterList([nn.Parameter(torch.zeros(h, 2 * k - 1, 2 * k - 1)) for k, _, h in groups])
        self.proj = nn.Linear(dim, dim)
        self.backend = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, W, C]
        b, h, w, c = x.shape
        q, k, v = _split_qkv(self.qkv(x), self.heads)
        q = q * self.scale
        outs, first = [], 0
        for (kernel, dilation, heads), rpb in zip(self.groups, self.rpb):
            part = slice(first, first + heads)
            outs.append(na2d(q[:, part], k[:, part], v[:, part], kernel, dilation, rpb, self.backend))
            first += heads
        out = torch.cat(outs, dim=1).permute(0, 2, 3, 1, 4).reshape(b, h, w, c)
        return self.proj(out)


class NATBlock(nn.Module):
    """x + Attn(AdaIN(x, w)); x + MLP(AdaIN(x, w))."""

    def __init__(self, cfg: GeneratorConfig, stage: int):
        super().__init__()
        dim = cfg.channels(stage)
        self.norm1 = AdaptiveInstanceNorm(dim, cfg.style_dim)
        if stage == 0:
            self.attn = MHSARPB(dim, 4, cfg.heads(0), cfg.qkv_bias, cfg.qk_scale)
        else:
            self.attn = HydraNeighborhoodAttention(dim, cfg.groups(stage), cfg.qkv_bias, cfg.qk_scale)
        self.norm2 = AdaptiveInstanceNorm(dim, cfg.style_dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # x [B, N, C]
        b, n, c = x.shape
        side = math.isqrt(n)
        x = x + self.attn(self.norm1(x, w).view(b, side, side, c)).view(b, n, c)
        return x + self.mlp(self.norm2(x, w))


class SinusoidalPositionalEmbedding(nn.Module):
    """Holds the official (unused-valued) `_float_tensor` buffer so checkpoints load strictly."""

    def __init__(self):
        super().__init__()
        self.register_buffer("_float_tensor", torch.zeros(1))


class BilinearUpsample(nn.Module):
    """x2 bilinear, LayerNorm, Linear to the next width, plus alpha * sinusoidal grid."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.reduction = nn.Linear(dim, out_dim, bias=False)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.sin_pos_embed = SinusoidalPositionalEmbedding()
        self.out_dim = out_dim
        self._grid: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, C] -> [B, 4N, out_dim]
        b, n, c = x.shape
        side = math.isqrt(n)
        x = x.transpose(1, 2).reshape(b, c, side, side)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.reduction(self.norm(x.flatten(2).transpose(1, 2)))
        return x + self.alpha * self.grid(2 * side, x)

    def grid(self, side: int, like: torch.Tensor) -> torch.Tensor:
        """[side * side, out_dim] positional tokens, cached per size/device/dtype (pure function)."""
        key = (side, like.device, like.dtype)
        if key not in self._grid:
            pe = sinusoidal_grid(self.out_dim, side, side, like.device)
            self._grid[key] = pe.flatten(1).t().contiguous().to(like.dtype)
        return self._grid[key]


class StyleBasicLayer(nn.Module):
    def __init__(self, cfg: GeneratorConfig, stage: int):
        super().__init__()
        self.blocks = nn.ModuleList([NATBlock(cfg, stage) for _ in range(2)])
        last = stage == cfg.stages - 1
        self.upsample = None if last else BilinearUpsample(cfg.channels(stage), cfg.channels(stage + 1))

    def forward(self, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        x = self.blocks[1](self.blocks[0](x, w1), w2)
        return x if self.upsample is None else self.upsample(x)


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", torch.outer(k, k) / 64 * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur_upsample(x, self.kernel)


class ToRGB(nn.Module):
    def __init__(self, channels: int, upsample: bool):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = nn.Conv2d(channels, 3, kernel_size=1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x) + self.bias
        if skip is None:
            return out
        return out + (self.upsample(skip) if hasattr(self, "upsample") else skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))


class Generator(nn.Module):
    """z [B, style_dim] -> (image [B, 3, size, size] ImageNet-normalised, per-layer latent)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(cfg.style_dim, cfg.style_dim, cfg.lr_mlp, True)
                                                  for _ in range(cfg.n_mlp)])
        self.input = ConstantInput(cfg.channels(0))
        self.layers = nn.ModuleList([StyleBasicLayer(cfg, s) for s in range(cfg.stages)])
        last = cfg.stages - 1
        self.to_rgbs = nn.ModuleList([ToRGB(cfg.channels(s if s == last else s + 1), s != last)
                                      for s in range(cfg.stages)])
        self.n_latent = cfg.n_latent

    def set_backend(self, backend: str) -> None:
        """Neighbourhood attention backend: auto (NATTEN when installed), torch or natten."""
        for module in self.modules():
            if isinstance(module, HydraNeighborhoodAttention):
                module.backend = backend

    def mapping_network(self, z: torch.Tensor) -> torch.Tensor:
        """w for every layer: [B, n_latent, style_dim]."""
        return self.style(z).unsqueeze(1).repeat(1, self.n_latent, 1)

    def synthesis_network(self, latent: torch.Tensor) -> torch.Tensor:
        """Block j of stage i uses latent[:, 2i + j]: pass different ws per layer for style mixing."""
        x = self.input.input.repeat(latent.shape[0], 1, 1, 1)
        x = x.flatten(2).transpose(1, 2)
        skip = None
        for i, (layer, to_rgb) in enumerate(zip(self.layers, self.to_rgbs)):
            x = layer(x, latent[:, 2 * i], latent[:, 2 * i + 1])
            b, n, c = x.shape
            side = math.isqrt(n)
            skip = to_rgb(x.transpose(1, 2).reshape(b, c, side, side), skip)
        return skip

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.mapping_network(z)
        return self.synthesis_network(latent), latent
