"""Frames in the decoder's own 8-bit 4:2:0 format (`Item.layout == "yuv420p"`).

An identity or resize transcode spends most of its time converting colours: the decoder turns
yuv420p into RGB, the encoder turns RGB back into yuv420p, and ffmpeg doing the same job alone
converts nothing. When every step and every sink of a workflow takes "yuv420p" (`pixel_types`),
the plan asks the video source for frames in that format (`stylefarm.plan`), so pixels go from
the decoder to the encoder untouched (an identity run writes the very frames ffmpeg alone would).

Layout (ffmpeg's yuv420p, OpenCV's I420): one uint8 array of shape (H * 3 / 2, W) holding the
Y plane (H x W), then U and V (H/2 x W/2 each); width and height are even.
The RGB conversions here are fallbacks for odd cases (a frame of another size, an odd resize
target); negotiated runs never use them. They take the source's matrix and range
(`source_matrix(item.meta)`), as ffmpeg's decoder and the video sink's encoder do, so an RGB
frame made here is encoded back to the same samples; without one, BT.601 limited range (OpenCV),
ffmpeg's assumption for an untagged source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LAYOUT = "yuv420p"
SAME_NAME_TAGS = ("bt709", "smpte170m", "smpte240m")  # the banner's one name for space, primaries and transfer
# luma weights (Kr, Kb) of the matrices a `colorspace` tag names; smpte170m / bt470bg (BT.601) go to OpenCV
KR_KB = {"bt709": (0.2126, 0.0722), "bt2020nc": (0.2627, 0.0593), "bt2020c": (0.2627, 0.0593),
         "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11)}
BT601 = (0.299, 0.114)


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


def color_options(tags: Sequence[str]) -> dict[str, str]:
    """The colour description a source's tags name (the probe's banner words, e.g. ["tv", "bt709"]
    or ["tv", "bt2020nc/bt2020/smpte2084"]), as setparams options: the video sink keeps them on
    its video (`VideoSink` docstring), `source_matrix` converts with them. Names the banner leaves
    open ("unknown") are left out."""
    out = {"range": next(r for r in ("tv", "pc") if r in tags)} if {"tv", "pc"} & set(tags) else {}
    for tag in tags:
        names = tag.split("/")
        if len(names) == 1 and tag in SAME_NAME_TAGS:
            names = [tag] * 3
        if len(names) == 3:
            for key, name in zip(("colorspace", "color_primaries", "color_trc"), names):
                if name.replace("-", "").isalnum() and name not in ("unknown", "reserved", "unspecified"):
                    out[key] = name
    return out


def source_matrix(meta: Mapping[str, Any]) -> dict[str, Any]:
    """`to_rgb` / `from_rgb` keywords for an item's source: the matrix its colour tags name (the
    probe's banner words in `meta["video"]["color"]`, read by `color_options`) and whether it is
    full range ("pc")."""
    tags = color_options((meta.get("video") or {}).get("color") or ())
    return {"colorspace": tags.get("colorspace"), "full": tags.get("range") == "pc"}


def to_rgb(frame: np.ndarray, colorspace: str | None = None, full: bool = False) -> np.ndarray:
    """uint8 RGB (H, W, 3) with the given matrix and range (see the module docstring)."""
    import cv2

    if colorspace not in KR_KB and not full:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_YUV2RGB_I420)
    kr, kb = KR_KB.get(colorspace, BT601)
    y, u, v = planes(frame)  # chroma repeated 2x2, as ffmpeg's default yuv->rgb does (0.6 levels from it)
    y, u, v = y.astype(np.float32), *(np.repeat(np.repeat(c, 2, 0), 2, 1).astype(np.float32) for c in (u, v))
    luma, chroma = (255.0, 255.0) if full else (219.0, 224.0)
    y, u, v = (y - (0 if full else 16)) / luma, (u - 128) / chroma, (v - 128) / chroma
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.rint(np.stack([r, g, b], -1) * 255), 0, 255).astype(np.uint8)


def from_rgb(rgb: np.ndarray, colorspace: str | None = None, full: bool = False) -> np.ndarray:
    """A yuv420p frame from uint8 RGB of even size, with the given matrix and range."""
    import cv2

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if colorspace not in KR_KB and not full:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    kr, kb = KR_KB.get(colorspace, BT601)
    r, g, b = np.moveaxis(rgb.astype(np.float32) / 255, -1, 0)
    y = kr * r + (1 - kr - kb) * g + kb * b
    u, v = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    half = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    u, v = (cv2.resize(c, half, interpolation=cv2.INTER_AREA) for c in (u, v))
    luma, chroma = (255.0, 255.0) if full else (219.0, 224.0)
    to8 = lambda x: np.clip(np.rint(x), 0, 255).astype(np.uint8)  # noqa: E731
    return join(to8(y * luma + (0 if full else 16)), to8(u * chroma + 128), to8(v * chroma + 128))
