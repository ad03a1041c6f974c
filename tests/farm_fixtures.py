"""Small workflows for the farm-export tests: a 36-frame clip and a folder of generated stills."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from video_fixtures import make_clip

from stylefarm.images import atomic_write_bytes, encode_image

VIDEO_WF = """\
version: 1
inputs:
  - path: clip.mp4
    start_number: 1001
steps:
  - use: color_transfer
    with: {reference: ref.png, strength: 0.8}
  - use: blend
    with: {amount: 0.7}
output:
  dir: out
  pattern: "{input.stem}.{frame:04d}.png"
  sheet: {thumb: 48}
  video: {path: "{input.stem}_styled.mp4", preset: veryfast}
execution:
  batch_size: 4
  device: cpu
"""

STILLS_WF = """\
version: 1
inputs:
  - dir: stills
steps:
  - use: resize
    with: {max_side: 48}
  - use: color_transfer
    with: {reference: ref.png, strength: 0.9}
output:
  dir: out
  sheet: {thumb: 32}
execution:
  device: cpu
"""


def _png(path: Path, seed: int, size: tuple[int, int] = (40, 56)) -> Path:
    image = np.random.default_rng(seed).random((*size, 3)).astype(np.float32)
    atomic_write_bytes(path, encode_image(".png", image, None, 8))
    return path


def video_job(root: Path, frames: int = 36) -> Path:
    """wf.yaml + clip.mp4 (frames 1001..) + ref.png in `root`; returns the workflow."""
    root.mkdir(parents=True, exist_ok=True)
    make_clip(root / "clip.mp4", frames=frames, audio=True)
    _png(root / "ref.png", 3, (32, 32))
    (root / "wf.yaml").write_text(VIDEO_WF)
    return root / "wf.yaml"


def stills_job(root: Path, count: int = 5) -> Path:
    (root / "stills").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        _png(root / "stills" / f"img{i}.png", 10 + i)
    _png(root / "ref.png", 3, (32, 32))
    (root / "wf.yaml").write_text(STILLS_WF)
    return root / "wf.yaml"


def output_hashes(out: Path) -> dict[str, str]:
    """sha256 of every output file (the state folder aside: reports differ by nature)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and ".stylefarm" not in p.relative_to(out).parts}
