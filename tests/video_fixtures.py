"""Synthetic clips for the video tests, made with the bundled ffmpeg (lavfi testsrc + sine).

Every frame carries its own index as an 8-bit code in a band at the top (white/black cells),
which survives lossy encoding and resizing, so tests can prove frame k stays frame k.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from stylefarm.video.ffmpeg import ffmpeg_exe

BITS = 8


def _code_expr(channel: str) -> str:
    cell = f"255*mod(floor(N/pow(2,floor(X*{BITS}/W))),2)"
    return f"{channel}='if(lt(Y,H*16/120),{cell},{channel}(X,Y))'"


def make_clip(path: Path, frames: int = 48, size: str = "160x120", rate: str = "24000/1001",
              audio: bool = True, extra: list[str] | None = None) -> Path:
    """Write a clip whose frame k shows code k; sine audio as long as the video."""
    geq = ":".join(_code_expr(c) for c in "rgb")
    video = f"testsrc=size={size}:rate={rate},format=rgb24,geq={geq}"
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-shortest"]
    argv += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
             "-pix_fmt", "yuv420p", *(extra or []), str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def read_code(image: np.ndarray) -> int:
    """The frame index drawn into an image (float or uint8, any size)."""
    h, w = image.shape[:2]
    row = image[int(h * 8 / 120)].astype(np.float32)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    bits = [row[int((b + 0.5) * w / BITS)].mean() / scale > 0.5 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def decode_codes(path: Path) -> list[int]:
    """Codes of every frame of a video file, decoded with the bundled ffmpeg."""
    from stylefarm.video.probe import probe

    info = probe(path)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)
    return [read_code(f) for f in frames]
