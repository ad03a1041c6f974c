"""Pixel-level controls every stylize step can use: colour preservation and mask compositing.

Colour (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer", sec. 5):
- luminance transfer in YIQ (NTSC 1953 matrix): style only the Y channel, keep the content's I/Q;
  `luminance_only` turns an image into its Y as grey RGB, `match_luminance` gives the style's Y
  the content's mean/std before stylizing, `recombine_luminance` puts the content's chroma back.
- colour histogram matching: a linear map x' = A (x - mu_s) + mu_c with A Sigma_s A^T = Sigma_c,
  so the recoloured style has the content's colour mean and covariance. Three choices of A:
  `chol` (Cholesky factors), `pca` (principal square roots, Sigma_c^1/2 Sigma_s^-1/2), `sym`
  (the symmetric solution, Sigma_s^-1/2 (Sigma_s^1/2 Sigma_c Sigma_s^1/2)^1/2 Sigma_s^-1/2).
Masks: `composite` blends several stylized results by one soft mask each; `region_masks` reads a
colour-coded region map. All functions take and return float32 numpy (H, W, 3) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.596, -0.274, -0.322],
                       [0.211, -0.523, 0.312]], dtype=np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
MATCH_MODES = ("pca", "chol", "sym")


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) @ RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return (yiq.astype(np.float64) @ YIQ_TO_RGB.T).astype(np.float32)


def luminance_only(image: np.ndarray) -> np.ndarray:
    """The Y channel repeated as grey RGB (what the network sees in luminance-only transfer)."""
    y = rgb_to_yiq(image)[..., :1]
    return np.clip(np.repeat(y, 3, axis=-1), 0.0, 1.0)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Grey style luminance with the content's luminance mean and std (Gatys et al. 2017, eq. 8)."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    y = (ys - ys.mean()) * (yc.std() / max(float(ys.std()), 1e-6)) + yc.mean()
    return np.clip(np.repeat(y[..., None], 3, axis=-1), 0.0, 1.0).astype(np.float32)


def recombine_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylized image's Y with the content's I and Q (content resized to match if needed)."""
    if content.shape[:2] != stylized.shape[:2]:
        content = _resize(content, stylized.shape[1], stylized.shape[0])
    y = rgb_to_yiq(stylized)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return np.clip(yiq_to_rgb(np.concatenate([y, iq], axis=-1)), 0.0, 1.0).astype(np.float32)


def _colour_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = image.reshape(-1, 3).astype(np.float64)
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / max(len(flat), 1) + np.eye(3) * 1e-8


def _sqrt_psd(mat: np.ndarray, power: float = 0.5) -> np.ndarray:
    vals, vecs = np.linalg.eigh(mat)
    return (vecs * np.clip(vals, 1e-10, None) ** power) @ vecs.T


def match_transform(cov_s: np.ndarray, cov_c: np.ndarray, mode: str = "pca") -> np.ndarray:
    """A with A cov_s A^T = cov_c, by `chol`, `pca` or `sym` (see the module docstring)."""
    if mode == "chol":
        return np.linalg.cholesky(cov_c) @ np.linalg.inv(np.linalg.cholesky(cov_s))
    if mode == "pca":
        return _sqrt_psd(cov_c) @ _sqrt_psd(cov_s, -0.5)
    if mode == "sym":
        s_half, s_inv_half = _sqrt_psd(cov_s), _sqrt_psd(cov_s, -0.5)
        return s_inv_half @ _sqrt_psd(s_half @ cov_c @ s_half) @ s_inv_half
    raise ValueError(f"colour match mode {mode!r}: choose {', '.join(MATCH_MODES)}")


def match_color(style: np.ndarray, content: np.ndarray, mode: str = "pca", clip: bool = True) -> np.ndarray:
    """The style image recoloured to the content's colour mean and covariance (linear matching)."""
    mu_s, cov_s = _colour_stats(style)
    mu_c, cov_c = _colour_stats(content)
    a = match_transform(cov_s, cov_c, mode)
    out = (style.reshape(-1, 3).astype(np.float64) - mu_s) @ a.T + mu_c
    out = out.reshape(style.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0) if clip else out


def preserve_color(stylized: np.ndarray, content: np.ndarray, method: str = "luminance",
                   mode: str = "pca") -> np.ndarray:
    """Post-hoc colour preservation for feed-forward steps: `luminance` (YIQ) or `match` of the result."""
    if method == "luminance":
        return recombine_luminance(stylized, content)
    if method == "match":
        return match_color(stylized, content, mode)
    raise ValueError(f"color method {method!r}: choose luminance or match")


# --- masks -----------------------------------------------------------------------------

def _resize(image: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_LINEAR)
    return cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (width, height), interpolation=interp)


ASPECT_SLACK = 0.05  # a mask whose shape differs more than this from the picture's is stretched to fit
_told: set[tuple] = set()


def warn_if_stretched(mask: np.ndarray, height: int, width: int) -> None:
    """A portrait mask over a landscape picture (or a thumbnail-sized one) is stretched to fit:
    said once per mask and picture shape, since the regions then fall elsewhere than drawn."""
    mh, mw = mask.shape[:2]
    key = (mh, mw, round(width / height, 3))
    if abs((mw / mh) / (width / height) - 1) > ASPECT_SLACK and key not in _told:
        import logging

        _told.add(key)
        logging.getLogger("stylefarm.masks").warning(
            "a %dx%d mask is stretched over a %dx%d picture (aspect %.2f vs %.2f): its regions land "
            "elsewhere than drawn; draw masks at the picture's shape", mw, mh, width, height, mw / mh, width / height)


def fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (H, W) or (H, W, C) mask as float32 (height, width) in [0, 1] (channel mean, bilinear)."""
    warn_if_stretched(mask, height, width)
    m = mask.mean(axis=2) if mask.ndim == 3 else mask
    return np.clip(_resize(m.astype(np.float32), width, height), 0.0, 1.0)


def composite(images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
              background: np.ndarray | None = None) -> np.ndarray:
    """Blend results by soft masks (normalised where they overlap); uncovered pixels show `background`.

    Without a background, uncovered pixels take the mask-free average of the results.
    """
    if len(images) != len(masks) or not images:
        raise ValueError(f"composite: {len(images)} images for {len(masks)} masks (one mask per image)")
    h, w = images[0].shape[:2]
    weights = np.stack([fit_mask(m, h, w) for m in masks])  # (S, H, W)
    stack = np.stack([_resize(im, w, h) for im in images])  # (S, H, W, 3)
    total = weights.sum(0)
    mixed = (weights[..., None] * stack).sum(0) / np.maximum(total, 1e-8)[..., None]
    fill = stack.mean(0) if background is None else _resize(background, w, h)
    coverage = np.clip(total, 0.0, 1.0)[..., None]
    return np.clip(coverage * mixed + (1 - coverage) * fill, 0.0, 1.0).astype(np.float32)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r,g,b' (0-255) -> (r, g, b)."""
    raw = text.strip().lstrip("#")
    try:
        if "," in raw:
            parts = tuple(int(p) for p in raw.split(","))
        elif len(raw) == 6:
            parts = tuple(int(raw[i:i + 2], 16) for i in (0, 2, 4))
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"region colour {text!r}: write '#rrggbb' or 'r,g,b'") from None
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"region colour {text!r}: three values 0-255")
    return parts  # type: ignore[return-value]


def region_masks(region_map: np.ndarray, colors: Sequence[str], tolerance: float = 0.1) -> list[np.ndarray]:
    """One binary float mask per colour of a colour-coded region map (float RGB in [0, 1]).

    A pixel belongs to the nearest listed colour when that colour is within `tolerance`
    (Euclidean, in [0, 1] RGB units), so anti-aliased or JPEG-ed edges still land somewhere.
    """
    palette = np.array([parse_color(c) for c in colors], dtype=np.float32) / 255.0
    dist = np.linalg.norm(region_map[..., None, :3] - palette[None, None], axis=-1)  # (H, W, K)
    nearest = dist.argmin(-1)
    close = dist.min(-1) <= tolerance
    return [((nearest == k) & close).astype(np.float32) for k in range(len(colors))]


# --- YCbCr colour keeping of the pretrained steps (cin26, magenta_arbitrary) ----------------
# BT.601 full-range luma, the YCbCr image libraries use for "keep the colours"; kept as they are
# (not YIQ above) so those steps' outputs do not change.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    y = rgb @ _LUMA
    cb = (rgb[..., 2] - y) * 0.564 + 0.5
    cr = (rgb[..., 0] - y) * 0.713 + 0.5
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 0.5, ycc[..., 2] - 0.5
    r = y + 1.402 * cr
    b = y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(np.float32)


def keep_color(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Brightness from the stylized image, chroma from the content (colour-preserving transfer)."""
    ycc = rgb_to_ycbcr(content)
    ycc[..., 0] = rgb_to_ycbcr(stylized)[..., 0]
    return ycbcr_to_rgb(ycc)


# --- style mixing and strength of the feed-forward nets (cin26, fast_style) ------------------

def style_vector(indices: Sequence[int], weights: Sequence[float] | None, num_styles: int) -> np.ndarray:
    """One weight per style row, summing to 1: what the conditional IN layers mix (one-hot for one style)."""
    out = np.zeros(num_styles, dtype=np.float32)
    weights = [1.0] * len(indices) if weights is None else weights
    for index, weight in zip(indices, weights, strict=True):
        out[index] += weight
    total = float(out.sum())
    if total <= 0:
        raise ValueError("style weights must have a positive sum")
    return out / total


def mix(stylized: np.ndarray, content: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 1 = all style, 0 = the content unchanged."""
    if strength >= 1.0:
        return stylized
    return (content + strength * (stylized - content)).astype(np.float32)


def read_mask(path: str) -> np.ndarray:
    """A mask file as float (H, W) in [0, 1]; read once in a step's setup, never per frame."""
    from stylefarm.errors import InputError
    from stylefarm.images import read_image

    try:
        rgb, _, _ = read_image(path)
    except ValueError as exc:
        raise InputError(f"mask: {exc}") from None
    return rgb.mean(axis=2).astype(np.float32)
