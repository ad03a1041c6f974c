"""Image and tensor helpers several model plugins share (AdaIN, StyA2K, ...): PIL-exact resizing,
numpy <-> tensor conversion, CORAL recolouring. Plugins never import each other; this module is
the shared place.
"""

from __future__ import annotations

import numpy as np
import torch


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
    """HxWx3 float numpy -> 1x3xHxW tensor (a copy: the arrays steps get are read-only)."""
    return torch.tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """3xHxW tensor -> HxWx3 float32 in [0, 1] (the clamp the official save_image applies)."""
    return tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)
