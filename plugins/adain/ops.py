"""AdaIN maths as small pure functions: statistics, AdaIN, style mixing, masks, colour.

Formulas follow Huang & Belongie (2017) and the conventions of pytorch-AdaIN
(`function.py` / `test.py`): unbiased variance + eps 1e-5, weights normalised by their sum,
colour preservation by matching the style image's colour statistics to the content (CORAL).
Also the image preparation of the official `test_transform` (short side resize, centre crop).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stylefarm.plugins._images import coral, pil_resize, to_image, to_tensor  # noqa: F401 (shared helpers)

EPS = 1e-5


def calc_mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std (N, C, 1, 1); unbiased variance, as the official."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    return flat.mean(dim=2).view(n, c, 1, 1), std


def adain_from_stats(content: torch.Tensor, style_mean: torch.Tensor,
                     style_std: torch.Tensor) -> torch.Tensor:
    """AdaIN with precomputed style statistics (they are computed once per style)."""
    mean, std = calc_mean_std(content)
    return (content - mean) / std * style_std + style_mean


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Give `content` features the channel-wise mean/std of `style` features."""
    return adain_from_stats(content, *calc_mean_std(style))


def mix_styles(content: torch.Tensor, stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
               weights: Sequence[float]) -> torch.Tensor:
    """Weighted sum of AdaIN outputs, one per style (the official interpolation path)."""
    total = torch.zeros_like(content)
    for (mean, std), w in zip(stats, weights):
        total = total + w * adain_from_stats(content, mean, std)
    return total


def blend(stylized: torch.Tensor, content: torch.Tensor, alpha: float) -> torch.Tensor:
    """Content-style trade-off in feature space: alpha=1 full style, 0 reconstruction."""
    return stylized * alpha + content * (1 - alpha)


def normalize_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Interpolation weights divided by their sum (equal weights when not given)."""
    raw = list(weights) if weights else [1.0] * count
    total = float(sum(raw))
    return [float(w) / total for w in raw]


def masked_adain(content: torch.Tensor, stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 masks: torch.Tensor) -> torch.Tensor:
    """Spatial control: style i is applied where mask i is set, with stats of that region.

    `masks` is (S, H, W) boolean at feature resolution. Pixels outside every mask keep the
    content features; where masks overlap the AdaIN outputs are averaged.
    """
    out = torch.zeros_like(content)
    count = torch.zeros(content.shape[-2:], dtype=content.dtype, device=content.device)
    for (s_mean, s_std), mask in zip(stats, masks):
        if int(mask.sum()) < 2:  # variance needs two samples
            continue
        region = content[:, :, mask]  # (N, C, k)
        mean, std = calc_mean_std(region.unsqueeze(-1))
        styled = (region.unsqueeze(-1) - mean) / std * s_std + s_mean
        out[:, :, mask] += styled.squeeze(-1)
        count[mask] += 1
    covered = count > 0
    out[:, :, covered] /= count[covered]
    out[:, :, ~covered] = content[:, :, ~covered]
    return out


def keep_luminance_only(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance transfer (Gatys et al. 2016): stylized Y with the content's I/Q chroma.

    The shared pixel-level control of every stylize step (`plugins/_controls.py`, YIQ).
    """
    from stylefarm.plugins._controls import recombine_luminance

    return recombine_luminance(stylized, content)


def official_resize(image: np.ndarray, size: int, crop: bool) -> np.ndarray:
    """The official `test_transform`: short side to `size` (0 = keep), optional centre crop.

    Bilinear with PIL's antialiasing, as torchvision's `Resize` on PIL images; we resize
    float channels, so the result skips the official uint8 rounding (< 0.5/255 apart).
    """
    h, w = image.shape[:2]
    if size and min(h, w) != size:
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        image = pil_resize(image, nw, nh)
    if crop:
        side = size or min(h, w)
        h, w = image.shape[:2]
        top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
        image = image[top:top + side, left:left + side]
    return np.ascontiguousarray(image, dtype=np.float32)
