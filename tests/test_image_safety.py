"""Pictures are read safely and correctly: bombs refused from the header, CMYK and EXIF handled."""

from __future__ import annotations

import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from stylefarm.api import run_workflow
from stylefarm.images import read_image


def bomb_png(path, width=20000, height=20000):
    """A tiny PNG whose header claims width x height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"".join(b"\x00" + bytes(width * 3) for _ in range(16)), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_bomb_is_refused_from_the_header_without_allocating(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="20000x20000 is 400 M pixels, over the limit"):
        read_image(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far below 4.8 GB


def test_bomb_among_good_pictures_fails_alone_and_the_limit_can_be_raised(tmp_path, workflow):
    (tmp_path / "in").mkdir()
    bomb_png(tmp_path / "in" / "bomb.png", 3000, 2000)
    Image.new("RGB", (8, 6), (200, 10, 10)).save(tmp_path / "in" / "good.png")
    wf = workflow("inputs: [{dir: in, max_pixels: 1000000}]\noutput: {dir: out}\n")
    report = run_workflow(wf)
    assert report["counts"]["done"] == 1 and report["counts"]["failed"] == 1
    assert "3000x2000" in report["failures"][0]["error"] and "max_pixels" in report["failures"][0]["error"]


def test_cmyk_jpeg_is_converted_like_pillow_does(tmp_path):
    path = tmp_path / "cmyk.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((24, 32, 4)) * 255).astype(np.uint8), "CMYK").save(path, quality=95)
    rgb, alpha, depth = read_image(path)
    expected = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255
    assert alpha is None and depth == 8 and rgb.shape == (24, 32, 3)
    assert np.abs(rgb - expected).max() < 1e-6


def test_exif_orientation_is_applied_and_can_be_switched_off(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, exif=exif, quality=95)
    upright, _, _ = read_image(path)
    raw, _, _ = read_image(path, exif_orientation=False)
    assert raw.shape == (20, 40, 3) and upright.shape == (40, 20, 3)
    assert upright[0, :, 2].mean() > 0.8 and upright[-1, :, 0].mean() > 0.8  # the band is now on top
