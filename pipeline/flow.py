"""Optical flow between consecutive input frames, shared by every temporal consumer.

Conventions (backward warping, as in Lai et al. 2018):
- a flow `f` from frame A to frame B is an (H, W, 2) float32 array of (dx, dy) in pixels with
  A(p) ~ B(p + f(p));
- `warp(B, f)` samples B at p + f(p), so it brings B into A's coordinates;
- forward flow `fw` = prev -> cur, backward flow `bw` = cur -> prev.

Flow is OpenCV DIS on grayscale frames at a working resolution (the longer side at most
`max_side`), scaled back to full resolution on demand. Occlusion masks follow the thresholds of
Lai et al.'s evaluation (forward-backward consistency and motion boundaries). A small
per-process cache keyed by (source, indices, pixel fingerprint) computes each pair once for
every temporal step of a chain and for `stylefarm eval`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import cv2
import numpy as np

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
_CACHE_SIZE = 16
_cache: OrderedDict[tuple, FlowPair] = OrderedDict()
_lock = threading.Lock()


def gray_u8(image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB float [0, 1] (or uint8) -> uint8 luma, optionally resized to (width, height)."""
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if size is not None and (gray.shape[1], gray.shape[0]) != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most `max_side` (None: full resolution)."""
    if not max_side or max(height, width) <= max_side:
        return width, height
    scale = max_side / max(height, width)
    return max(8, round(width * scale)), max(8, round(height * scale))


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """DIS flow a -> b on two uint8 gray images of one size (a(p) ~ b(p + f(p)))."""
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])  # cheap; one per call keeps threads apart
    return dis.calc(a, b, None).astype(np.float32, copy=False)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flow at another resolution: resample the field and scale its vectors with it."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (read-only, cached: every warp of a size needs the same grid)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample `image` at p + flow(p) (backward warping); outside the frame the border repeats."""
    height, width = flow.shape[:2]
    if image.shape[:2] != (height, width):
        flow = resize_flow(flow, *image.shape[:2])
        height, width = image.shape[:2]
    xs, ys = _grid(height, width)
    src = np.ascontiguousarray(image, dtype=np.float32)
    return cv2.remap(src, xs + flow[..., 0], ys + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)


def magnitude2(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def flow_gradients2(flow: np.ndarray) -> np.ndarray:
    """|du/dx|^2 + |du/dy|^2 + |dv/dx|^2 + |dv/dy|^2 with forward differences (0 at the far edge)."""
    out = np.zeros(flow.shape[:2], np.float32)
    dx = flow[:, 1:] - flow[:, :-1]
    dy = flow[1:] - flow[:-1]
    out[:, :-1] += dx[..., 0] ** 2 + dx[..., 1] ** 2
    out[:-1] += dy[..., 0] ** 2 + dy[..., 1] ** 2
    return out


def fb_error2(fw: np.ndarray, bw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|fw(p + bw(p)) + bw(p)|^2, |fw warped|^2), both in bw's source frame."""
    fw_w = warp(fw, bw)
    return magnitude2(fw_w + bw), magnitude2(fw_w)


def leaves_frame(flow: np.ndarray) -> np.ndarray:
    """Pixels whose match p + flow(p) lies outside the other frame (entered or left the view)."""
    height, width = flow.shape[:2]
    xs, ys = _grid(height, width)
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    return (x < 0) | (y < 0) | (x > width - 1) | (y > height - 1)


def occlusion(fw: np.ndarray, bw: np.ndarray, fb: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Occluded pixels (bool) in the coordinates of `bw`'s source frame, i.e. of the frame that
    `fw` points into: forward-backward inconsistency or a motion boundary of `bw`
    (Lai et al. 2018: |w_f + w_b|^2 > 0.01(|w_f|^2 + |w_b|^2) + 0.5, |grad w_b|^2 > 0.01|w_b|^2 + 0.002),
    plus pixels whose match falls outside the frame (DIS extrapolates smoothly there, so the
    consistency test alone misses a band that panned into view). `fb`: `fb_error2(fw, bw)` if known."""
    err2, fw_mag2 = fb if fb is not None else fb_error2(fw, bw)
    bw_mag2 = magnitude2(bw)
    inconsistent = err2 > 0.01 * (fw_mag2 + bw_mag2) + 0.5
    boundary = flow_gradients2(bw) > 0.01 * bw_mag2 + 0.002
    return inconsistent | boundary | leaves_frame(bw)


@dataclass
class FlowPair:
    """Flows between frames `prev` and `cur` at working resolution, with derived masks.

    `fw` = prev -> cur, `bw` = cur -> prev; `shape` is the full (height, width)."""

    fw: np.ndarray
    bw: np.ndarray
    shape: tuple[int, int]
    gray_prev: np.ndarray = field(repr=False)
    gray_cur: np.ndarray = field(repr=False)

    @cached_property
    def fb_cur(self) -> tuple[np.ndarray, np.ndarray]:
        return fb_error2(self.fw, self.bw)

    @cached_property
    def occluded_cur(self) -> np.ndarray:
        """Pixels of `cur` with no reliable match in `prev` (what warping prev onto cur misses)."""
        return occlusion(self.fw, self.bw, self.fb_cur)

    @cached_property
    def occluded_prev(self) -> np.ndarray:
        """Pixels of `prev` with no reliable match in `cur` (the E_warp mask of Lai et al.)."""
        return occlusion(self.bw, self.fw)

    @cached_property
    def photometric_cur(self) -> np.ndarray:
        """|cur - warp(prev, bw)| in gray levels / 255: where the flow fails to explain cur."""
        warped = warp(self.gray_prev.astype(np.float32), self.bw)
        return np.abs(self.gray_cur.astype(np.float32) - warped) / 255.0

    def confidence_cur(self, sigma_fb: float = 1.0, sigma_photo: float = 0.1) -> np.ndarray:
        """Per-pixel trust in warping prev onto cur, in [0, 1] at working resolution: 0 where
        occluded, falling off with the forward-backward error and the photometric error."""
        err2 = self.fb_cur[0]
        photo = self.photometric_cur * np.float32(1 / sigma_photo)
        exponent = err2 * np.float32(1 / (2 * sigma_fb ** 2)) + photo * photo
        conf = np.exp(-exponent).astype(np.float32, copy=False)
        conf[self.occluded_cur] = 0.0
        return conf

    def full(self, flow: np.ndarray) -> np.ndarray:
        return resize_flow(flow, *self.shape)

    @property
    def scale(self) -> float:
        """Working-resolution pixels per full-resolution pixel (for thresholds in full pixels)."""
        return self.fw.shape[1] / self.shape[1]


def fingerprint(gray: np.ndarray) -> str:
    return hashlib.blake2b(gray.tobytes(), digest_size=12).hexdigest()


def compute_pair(prev: np.ndarray, cur: np.ndarray, max_side: int | None = 640,
                 preset: str = "medium") -> FlowPair:
    """Forward and backward DIS flow between two RGB frames (no cache)."""
    height, width = cur.shape[:2]
    size = working_size(height, width, max_side)
    a, b = gray_u8(prev, size), gray_u8(cur, size)
    return FlowPair(dis_flow(a, b, preset), dis_flow(b, a, preset), (height, width), a, b)


def flow_pair(prev: np.ndarray, cur: np.ndarray, key: tuple | None = None, max_side: int | None = 640,
              preset: str = "medium") -> FlowPair:
    """`compute_pair` through the per-process cache; `key` (e.g. (source, prev index, index))
    names the pair, the pixels' fingerprint guards against reusing a stale entry."""
    height, width = cur.shape[:2]
    size = working_size(height, width, max_side)
    a, b = gray_u8(prev, size), gray_u8(cur, size)
    full_key = (key, fingerprint(a), fingerprint(b), (height, width), size, preset)
    with _lock:
        hit = _cache.get(full_key)
        if hit is not None:
            _cache.move_to_end(full_key)
            return hit
    pair = FlowPair(dis_flow(a, b, preset), dis_flow(b, a, preset), (height, width), a, b)
    with _lock:
        _cache[full_key] = pair
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return pair


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def cache_info() -> dict[str, int]:
    with _lock:
        return {"entries": len(_cache), "capacity": _CACHE_SIZE}
