"""Training data for fast_style: content crops from any image folder or video, and the style images.

No dataset download: whatever the user points at is the content set. A small set (the demo
media, one clip) is stretched with random scale, crop position and flips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stylefarm.errors import InputError  # exit 2: the content or style the user named is unusable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


def content_files(paths: list[Path]) -> list[Path]:
    """Images and videos under the given files/folders (recursively), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"content: no such file or folder: {path}")
    if not found:
        raise InputError(f"content: no images or videos in {', '.join(map(str, paths))}")
    return found


def _short_side(image: np.ndarray, size: int) -> np.ndarray:
    from stylefarm.images import resize

    h, w = image.shape[:2]
    scale = size / min(h, w)
    return resize(image, max(size, round(w * scale)), max(size, round(h * scale)))


def video_frames(path: Path, every: int, limit: int, size: int) -> list[np.ndarray]:
    """Every `every`-th frame of a video (at most `limit`), short side `size`; decoded by the host's video source."""
    from stylefarm.video.source import VideoSource, VideoSourceOptions

    source = VideoSource(VideoSourceOptions(path=str(path.resolve())), path.parent)
    frames = []
    try:
        for item in source.items():
            if item.image is None or item.index % every:
                continue
            frames.append(_short_side(item.image, size))
            if len(frames) >= limit:
                break
    except InputError as exc:
        raise InputError(f"content: cannot read video {path}: {exc}") from None
    return frames


class ContentSampler:
    """Random square crops of the content set; images decoded once at the size crops need.

    Each crop: random source, random scale (short side crop..1.5*crop), random position, random flip.
    """

    def __init__(self, paths: list[Path], crop: int, seed: int = 0, max_frames_per_video: int = 200,
                 video_every: int = 5):
        from stylefarm.images import read_image

        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        big = round(crop * 1.5)
        for path in content_files(paths):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                self.images += video_frames(path, video_every, max_frames_per_video, big)
            else:
                try:
                    self.images.append(_short_side(read_image(path)[0], big))
                except (ValueError, OSError) as exc:
                    raise InputError(f"content: {exc}") from None
        if not self.images:
            raise InputError("content: no frames could be read")

    def __len__(self) -> int:
        return len(self.images)

    def crop_one(self) -> np.ndarray:
        from stylefarm.images import resize

        image = self.images[int(self.rng.integers(len(self.images)))]
        h, w = image.shape[:2]
        size = int(self.rng.integers(self.crop, min(h, w) + 1))  # a crop of this size, then resized
        y, x = int(self.rng.integers(h - size + 1)), int(self.rng.integers(w - size + 1))
        patch = image[y:y + size, x:x + size]
        if size != self.crop:
            patch = resize(patch, self.crop, self.crop)
        return patch[:, ::-1] if self.rng.random() < 0.5 else patch

    def batch(self, n: int):
        """(n, 3, crop, crop) float32 tensor in [0, 1]."""
        import torch

        out = torch.empty(n, 3, self.crop, self.crop)  # torch-allocated: the first conv runs faster on it
        buffer = out.numpy()
        for i in range(n):
            buffer[i] = self.crop_one().transpose(2, 0, 1)
        return out

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def read_style(path: Path, size: int) -> np.ndarray:
    """A style image as float RGB, short side `size` (0 = as is)."""
    from stylefarm.images import read_image

    try:
        image = read_image(path)[0]
    except (ValueError, OSError) as exc:
        raise InputError(f"style: {exc}") from None
    return _short_side(image, size) if size else image
