"""Frames in the decoder's own 8-bit 4:2:0 format (`Item.layout == "yuv420p"`).

An identity or resize transcode spends most of its time converting colours: the decoder turns
yuv420p into RGB, the encoder turns RGB back into yuv420p, and ffmpeg doing the same job alone
converts nothing. When every step and every sink of a workflow takes "yuv420p" (`pixel_types`),
the plan asks the video source for frames in that format (`stylefarm.plan`), so pixels go from
the decoder to the encoder untouched (an identity run writes the very frames ffmpeg alone would).

Layout (ffmpeg's yuv420p, OpenCV's I420): one uint8 array of shape (H * 3 / 2, W) holding the
Y plane (H x W), then U and V (H/2 x W/2 each); width and height are even.
The RGB conversions here (OpenCV, BT.601 limited range) are fallbacks for odd cases (a resumed
frame read back from a PNG, a frame of another size); negotiated runs never use them.
"""

from __future__ import annotations

import numpy as np

LAYOUT = "yuv420p"


def frame_size(frame: np.ndarray) -> tuple[int, int]:
    """(width, height) of a yuv420p frame."""
    return frame.shape[1], frame.shape[0] * 2 // 3


def frame_problem(frame: object) -> str | None:
    """Why an array is not a yuv420p frame, or None."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 2:
        what = f"{frame.dtype} {frame.ndim}-D array" if isinstance(frame, np.ndarray) else type(frame).__name__
        return f"a yuv420p frame must be a 2-D uint8 array (H * 3 / 2, W), got a {what}"
    w, h = frame.shape[1], frame.shape[0] * 2 // 3
    if frame.shape[0] % 3 or w % 2 or h % 2:
        return f"a yuv420p frame of shape {frame.shape} has no even width and height"
    return None


def planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes."""
    w, h = frame_size(frame)
    flat = frame.reshape(-1)
    luma, chroma = w * h, (w // 2) * (h // 2)
    return (flat[:luma].reshape(h, w), flat[luma:luma + chroma].reshape(h // 2, w // 2),
            flat[luma + chroma:].reshape(h // 2, w // 2))


def join(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One yuv420p frame from its three planes (one copy)."""
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), np.uint8)
    flat = out.reshape(-1)
    flat[:y.size] = y.reshape(-1)
    flat[y.size:y.size + u.size] = u.reshape(-1)
    flat[y.size + u.size:] = v.reshape(-1)
    return out


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each plane resized on its own grid (area when shrinking, else bilinear), as ffmpeg's
    scale filter does for yuv420p; `width` and `height` must be even."""
    import cv2

    w, h = frame_size(frame)
    if (w, h) == (width, height):
        return frame
    interp = cv2.INTER_AREA if width < w and height < h else cv2.INTER_LINEAR
    y, u, v = planes(frame)
    half = (width // 2, height // 2)
    return join(cv2.resize(y, (width, height), interpolation=interp), cv2.resize(u, half, interpolation=interp),
                cv2.resize(v, half, interpolation=interp))


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) (OpenCV's BT.601 limited-range conversion; a fallback, see above)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_YUV2RGB_I420)


def from_rgb(rgb: np.ndarray) -> np.ndarray:
    """A yuv420p frame from uint8 RGB of even size (OpenCV; a fallback, see above)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2YUV_I420)
