"""All-to-key attention maths (Zhu et al., ICCV 2023) generalised to any feature size.

Features are cut into non-overlapping p x p regions (the official `block`/`unblock`).
Distributed attention: every content query attends to one aggregated key per style region.
Progressive attention: each content region picks its best-matching style region, then its
queries attend to that region's keys. The official code needs content and style of one
square size on the region grid; here maps are zero-padded to the grid and padded style
positions are masked out, so where the official code runs the result is the same.
Content regions are processed in chunks: memory grows linearly with content pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 24  # largest attention temporary per chunk (floats): 64 MiB


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (unbiased variance + eps), as the official helper."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    mean, std = calc_mean_std(feat)
    return (feat - mean) / std


def to_regions(x: torch.Tensor, p: int) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
    """(B, C, H, W) -> (B, C, n, p*p) regions in row-major order, the grid, and a validity
    mask (n, p*p) when zero padding to the grid was needed (None otherwise)."""
    b, c, h, w = x.shape
    ph, pw = -h % p, -w % p
    valid = None
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
        ones = torch.ones(1, 1, h, w, device=x.device, dtype=torch.bool)
        valid = F.pad(ones, (0, pw, 0, ph))[0, 0]
        valid = valid.view(x.shape[2] // p, p, x.shape[3] // p, p).permute(0, 2, 1, 3).reshape(-1, p * p)
    gh, gw = x.shape[2] // p, x.shape[3] // p
    regions = x.view(b, c, gh, p, gw, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, gh * gw, p * p)
    return regions, (gh, gw), valid


def from_regions(regions: torch.Tensor, p: int, grid: tuple[int, int], h: int, w: int) -> torch.Tensor:
    """Inverse of `to_regions`, cropped back to (h, w)."""
    b, c = regions.shape[:2]
    gh, gw = grid
    x = regions.view(b, c, gh, gw, p, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, gh * p, gw * p)
    return x[:, :, :h, :w]


@dataclass
class StyleKeys:
    """Everything one A2K layer needs from a style: computed once per style image."""

    k_agg: torch.Tensor  # (B, heads, c, n_s)  aggregated key per style region
    v_agg: torch.Tensor  # (B, heads, c, n_s)
    k: torch.Tensor  # (B, heads, c, n_s, r) keys per region (progressive attention)
    v: torch.Tensor  # (B, heads, c, n_s, r)
    valid: torch.Tensor | None  # (n_s, r) False on padding


def aggregate(k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
              sim_alpha: torch.Tensor, sim_beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distributed-attention keys/values: a similarity-weighted mean of each style region."""
    r = k.shape[-1]
    if valid is None:
        k_c, v_c, denom = k.mean(-1), v.mean(-1), r + 1
    else:  # padding is zero by construction; masking again keeps it out whatever it holds
        k, v = k * valid, v * valid
        count = valid.sum(-1).to(k.dtype)
        k_c, v_c, denom = k.sum(-1) / count, v.sum(-1) / count, count + 1
    sim = torch.sigmoid(sim_beta + sim_alpha * torch.einsum("bhcx,bhcxy->bhxy", k_c, k))
    if valid is not None:
        sim = sim * valid
    k_agg = (torch.einsum("bhxy,bhcxy->bhcx", sim, k) + k_c) / denom
    v_agg = (torch.einsum("bhxy,bhcxy->bhcx", sim, v) + v_c) / denom
    return k_agg, v_agg


def distributed(q: torch.Tensor, keys: StyleKeys) -> torch.Tensor:
    """q (B, h, c, x, y) attends to every style region's aggregated key -> (B, h, c, x, y)."""
    scores = torch.softmax(torch.einsum("bhcxy,bhcz->bhyxz", q, keys.k_agg), dim=-1)
    return torch.einsum("bhyxz,bhcz->bhcxy", scores, keys.v_agg)


def progressive(q: torch.Tensor, keys: StyleKeys) -> torch.Tensor:
    """Coarse: each content region picks the best style region; fine: attend inside it."""
    b, h, c, x, r = q.shape
    best = torch.einsum("bhcxy,bhczy->bhxz", q, keys.k).argmax(dim=-1)  # (B, h, x)
    index = best.view(b, h, 1, x, 1).expand(b, h, keys.k.shape[2], x, r)
    k_sel = torch.gather(keys.k, 3, index)
    v_sel = torch.gather(keys.v, 3, index.expand(b, h, keys.v.shape[2], x, r))
    logits = torch.einsum("bhcxy,bhcxz->bhxyz", q, k_sel)
    if keys.valid is not None:
        logits = logits.masked_fill(~keys.valid[best].unsqueeze(-2), float("-inf"))
    return torch.einsum("bhxyz,bhcxz->bhcxy", torch.softmax(logits, dim=-1), v_sel)


def chunk_regions(keys: StyleKeys, batch: int, budget: int = CHUNK_ELEMENTS) -> int:
    """Content regions per chunk so the largest temporary stays under `budget` floats."""
    _, heads, _, n_s, r = keys.k.shape
    return max(1, budget // (batch * heads * r * max(n_s, r)))


def all_to_key(q1: torch.Tensor, q2: torch.Tensor, keys: StyleKeys,
               budget: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Both attentions over content regions in chunks. q1/q2: (B, h, c, n_c, r)."""
    da, pa = torch.empty_like(q1), torch.empty_like(q1)
    step = chunk_regions(keys, q1.shape[0], budget)
    for start in range(0, q1.shape[3], step):
        part = slice(start, start + step)
        da[:, :, :, part] = distributed(q1[:, :, :, part], keys)
        pa[:, :, :, part] = progressive(q2[:, :, :, part], keys)
    return da, pa


def expand_keys(keys: StyleKeys, batch: int) -> StyleKeys:
    """Views of one style's keys for a batch of contents (no copies)."""
    def grow(t: torch.Tensor) -> torch.Tensor:
        return t.expand(batch, *t.shape[1:])

    return StyleKeys(grow(keys.k_agg), grow(keys.v_agg), grow(keys.k), grow(keys.v), keys.valid)
