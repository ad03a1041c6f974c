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


def _sym_sqrt(mat: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Square root (or its inverse) of a symmetric positive-definite matrix."""
    vals, vecs = torch.linalg.eigh(mat)
    vals = vals.clamp_min(1e-12).sqrt()
    if inverse:
        vals = 1.0 / vals
    return vecs @ torch.diag(vals) @ vecs.T


def coral(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Recolour `source` (3, H, W) to the colour mean/covariance of `target` (3, H', W').

    Used by the official `--preserve_color` on the style image before encoding.
    """
    def whiten_stats(img: torch.Tensor):
        flat = img.reshape(3, -1).double()
        mean, std = flat.mean(1, keepdim=True), flat.std(1, keepdim=True)
        norm = (flat - mean) / std
        return norm, mean, std, norm @ norm.T + torch.eye(3, dtype=norm.dtype)

    s_norm, _, _, s_cov = whiten_stats(source)
    _, t_mean, t_std, t_cov = whiten_stats(target)
    moved = _sym_sqrt(t_cov) @ _sym_sqrt(s_cov, inverse=True) @ s_norm
    return (moved * t_std + t_mean).to(source.dtype).view(source.shape)


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


def pil_resize(image: np.ndarray, width: int, height: int, resample: str = "bilinear") -> np.ndarray:
    """PIL resize of float channels (the filters torchvision uses on PIL images), clipped."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    method = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[resample]
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                   .resize((width, height), method))
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float numpy -> 1x3xHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """3xHxW tensor -> HxWx3 float32 in [0, 1] (the clamp the official save_image applies)."""
    return tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)
