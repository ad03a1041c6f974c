"""Frames of a video file, a numbered sequence, a folder or a glob, streamed in order."""

from __future__ import annotations

import glob as globmod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stylefarm.errors import InputError
from stylefarm.images import read_image
from stylefarm.item import as_float

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp"}


def iter_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """float32 RGB frames of `path`: a video, `shot.%04d.png` / `shot.####.png`, a folder of
    images (sorted by name) or a glob such as `out/*.png`."""
    for count, frame in enumerate(_frames(Path(path))):
        if max_frames is not None and count >= max_frames:
            return
        yield as_float(frame)


def _frames(path: Path) -> Iterator[np.ndarray]:
    from stylefarm.video.source import VIDEO_SUFFIXES

    name = str(path)
    if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
        from stylefarm.video.source import VideoSource, VideoSourceOptions

        source = VideoSource(VideoSourceOptions(path=path.name), path.parent)
        yield from (item.load().image for item in source.items())
    elif "%" in path.name or "#" in path.name:
        from stylefarm.video.sequence import SequenceOptions, SequenceSource

        source = SequenceSource(SequenceOptions(sequence=path.name), path.parent)
        yield from (item.load().image for item in source.items())
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        yield from (read_image(p)[0] for p in files)
    elif any(ch in name for ch in "*?["):
        files = sorted(globmod.glob(name))
        if not files:
            raise InputError(f"{name}: no files match")
        yield from (read_image(p)[0] for p in files)
    elif path.is_file():
        raise InputError(f"{path}: not a video (or a sequence pattern, folder or glob of frames)")
    else:
        raise InputError(f"{path}: no such file or folder")
