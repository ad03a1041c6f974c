"""Reading and writing still images: float RGB in, float RGB out, bit depth and alpha explicit.

PNG goes through OpenCV (the only common reader/writer of 16-bit RGB(A) PNG), TIFF through
tifffile (16-bit and float), everything else through imageio/Pillow. Writes are atomic.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from .errors import OutputError, first_line
from .item import as_float
from .runlock import temp_name

# the picture formats read and written, and the bit depths each can hold when written
PICTURE_DEPTHS = {".png": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".tif": (8, 16, 32), ".tiff": (8, 16, 32),
                  ".bmp": (8,), ".webp": (8,)}
IMAGE_SUFFIXES = set(PICTURE_DEPTHS)


def _no_picture(suffix: str) -> str:
    return f"{suffix or 'no suffix'}: not a picture format stylefarm writes; use one of {', '.join(PICTURE_DEPTHS)}"


def check_picture(name: str, bit_depth: int | str = "auto") -> None:
    """A picture file name stylefarm cannot write, or an explicit bit depth its format cannot hold
    (16-bit JPEG, 32-bit PNG), is refused before any work (ValueError, for the workflow checks)
    rather than failing at the first write or quietly writing 8 bits."""
    if name.endswith(("{input.suffix}", "{input.name}")):  # known per item (the write says it then)
        return
    suffix = Path(re.sub(r"\{[^{}]*\}", "x", name)).suffix.lower()  # a naming field holds no suffix
    if suffix not in PICTURE_DEPTHS:
        raise ValueError(_no_picture(suffix))
    if bit_depth != "auto" and int(bit_depth) not in PICTURE_DEPTHS[suffix]:
        fits = ", ".join(s for s, depths in PICTURE_DEPTHS.items() if int(bit_depth) in depths)
        raise ValueError(f"a {suffix} file cannot hold {bit_depth}-bit pixels (bit_depth: {bit_depth}); name "
                         f"{fits} files, or set bit_depth: auto")


def to_float(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer or float pixels to float32 in [0, 1], with the source bit depth."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0, 8
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0, 16
    if np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels.astype(np.float32), 0.0, 1.0), 32
    raise ValueError(f"unsupported pixel type {pixels.dtype}")


def split_channels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W[, C]) -> RGB (H, W, 3) and optional alpha (H, W)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    if channels in (1, 2):
        rgb = np.repeat(pixels[..., :1], 3, axis=2)
        return rgb, (pixels[..., 1] if channels == 2 else None)
    return pixels[..., :3], (pixels[..., 3] if channels >= 4 else None)


MAX_PIXELS = int(os.environ.get("STYLEFARM_MAX_PIXELS", 89_478_485))
"""Largest picture read (width x height), checked from the file header before decoding: Pillow's
decompression-bomb threshold (~9459 x 9459; 8K is 33 M). Raise it per input with `max_pixels:` or
for a whole machine with STYLEFARM_MAX_PIXELS."""


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header alone, for every format we read."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        with open(path, "rb") as fh:
            head = fh.read(24)
        if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
            raise ValueError("not a readable PNG (corrupt or truncated)")
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def check_pixels(path: Path, max_pixels: int | None = None) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    width, height = header_size(path)
    if width * height > limit:
        raise ValueError(f"{width}x{height} is {width * height / 1e6:.0f} M pixels, over the limit of "
                         f"{limit / 1e6:.0f} M (a decompression bomb?); raise it with the input's max_pixels: option")


def _decode(path: Path, exif_orientation: bool = True) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".png":
        import cv2

        data = np.fromfile(path, dtype=np.uint8)
        pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if pixels is None:
            raise ValueError("not a readable PNG (corrupt or truncated)")
        if pixels.ndim == 3:  # OpenCV is BGR(A)
            pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]
        return pixels
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    return _decode_pillow(path, exif_orientation)


def _decode_pillow(path: Path, exif_orientation: bool) -> np.ndarray:
    """JPEG, WebP, BMP: upright by EXIF orientation (unless switched off); CMYK and YCCK JPEGs
    to RGB (through their ICC profile when they carry one); palettes expanded."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        if exif_orientation:
            im = ImageOps.exif_transpose(im)
        if im.mode == "CMYK":
            return np.asarray(_cmyk_to_rgb(im))
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        elif im.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
            im = im.convert("RGB")
        return np.asarray(im)


def _cmyk_to_rgb(im):
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a broken profile: fall back to the plain conversion below
            pass
    return im.convert("RGB")


def read_image(path: str | os.PathLike, max_pixels: int | None = None,
               exif_orientation: bool = True) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read an image: float32 RGB (H, W, 3), optional float alpha (H, W), bit depth.

    The size is checked from the header first (`max_pixels`), so a bomb is refused unread."""
    path = Path(path)
    try:
        check_pixels(path, max_pixels)
        pixels = _decode(path, exif_orientation)
    except Exception as exc:
        raise ValueError(f"cannot read image {path}: {first_line(exc)}") from None
    rgb, alpha = split_channels(np.asarray(pixels))
    rgb_f, depth = to_float(rgb)
    alpha_f = to_float(alpha)[0] if alpha is not None else None
    return np.ascontiguousarray(rgb_f), alpha_f, depth


def quantize(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] -> uint8/uint16 (rounded) or float32; one temporary (hot path for video).
    8-bit frames that never became floats pass through untouched at 8 bits."""
    if pixels.dtype == np.uint8:
        if bit_depth == 8:
            return pixels
        return pixels.astype(np.uint16) * np.uint16(257) if bit_depth == 16 else as_float(pixels)
    if bit_depth == 32:
        return np.clip(pixels, 0.0, 1.0).astype(np.float32)
    top = np.float32(65535.0 if bit_depth == 16 else 255.0)
    scaled = np.multiply(pixels, top, dtype=np.float32)
    scaled += np.float32(0.5)
    np.clip(scaled, 0.0, top, out=scaled)
    return scaled.astype(np.uint16 if bit_depth == 16 else np.uint8)


def encode_image(suffix: str, rgb: np.ndarray, alpha: np.ndarray | None, bit_depth: int,
                 quality: int = 95) -> bytes:
    """Encode to bytes in the format named by `suffix` (so the file write can be atomic)."""
    suffix = suffix.lower()
    if suffix not in PICTURE_DEPTHS:  # a name made per item ({input.suffix} of a video input)
        raise OutputError(_no_picture(suffix))
    if alpha is not None:
        rgb = as_float(rgb)
    pixels = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)
    if suffix == ".png":
        import cv2

        data = quantize(pixels, 16 if bit_depth > 8 else 8)  # a float (32-bit) input keeps 16 bits
        bgr = data[..., [2, 1, 0, 3][: data.shape[2]]]
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
        if not ok:
            raise ValueError("PNG encoding failed")
        return buf.tobytes()
    if suffix in (".tif", ".tiff"):
        import tifffile

        out = io.BytesIO()
        tifffile.imwrite(out, quantize(pixels, bit_depth), photometric="rgb")
        return out.getvalue()
    import imageio.v3 as iio

    if suffix in (".jpg", ".jpeg"):
        return iio.imwrite("<bytes>", quantize(rgb, 8), extension=suffix, quality=quality)
    return iio.imwrite("<bytes>", quantize(pixels, 8), extension=suffix)


def _file_mode() -> int:
    """The mode a plain `open()` would give (mkstemp's 0600 would hide outputs from the farm)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a hidden temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area/bilinear resize of float images (H, W[, C]) with OpenCV."""
    import cv2

    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    interp = cv2.INTER_AREA if width < w and height < h else cv2.INTER_LINEAR
    return cv2.resize(pixels, (width, height), interpolation=interp)
