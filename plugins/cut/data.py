"""Unpaired training data: two folders of images (and video files, sampled frames), the official
train transform (resize to load_size, random crop, multiple of 4, random flip) and random B pairing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stylefarm.errors import InputError


def media_files(folder: Path, flag: str) -> list[Path]:
    """Images and videos under `folder` (recursive, sorted); one-line errors for missing/empty folders."""
    from stylefarm.images import IMAGE_SUFFIXES
    from stylefarm.video.source import VIDEO_SUFFIXES

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{flag} {folder}: no such folder")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not found:
        raise InputError(f"{flag} {folder}: no images or videos in this folder")
    return found


def _video_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` frames spread evenly over a video, as float32 [0, 1] arrays."""
    from stylefarm.video.source import VideoSource

    source = VideoSource(VideoSource.Options(path=path.name), path.parent)
    every = max(1, -(-source.info.frames // limit))
    frames = [it.image for i, it in enumerate(source.items()) if i % every == 0 and it.image is not None]
    return frames[:limit]


class ImageFolder:
    """Entries of one domain: image paths (decoded on use) and sampled video frames (kept in memory)."""

    def __init__(self, folder: Path, flag: str, video_frames: int = 200):
        self.entries: list[Path | np.ndarray] = []
        for path in media_files(folder, flag):
            if path.suffix.lower() in _video_suffixes():
                self.entries += _video_frames(path, video_frames)
            else:
                self.entries.append(path)
        if not self.entries:
            raise InputError(f"{flag} {folder}: no readable frames")

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int) -> tuple[np.ndarray, bool]:
        """(float32 HxWx3 image, is 8-bit) of entry `index`."""
        from stylefarm.images import read_image

        entry = self.entries[index]
        if isinstance(entry, np.ndarray):
            return entry, True
        try:
            image, _, depth = read_image(entry)
        except Exception as exc:  # a bad file names itself, not a traceback from the decoder
            raise InputError(f"{entry}: cannot read image ({exc})") from None
        return image, depth == 8


def _video_suffixes() -> set[str]:
    from stylefarm.video.source import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


def train_transform(image: np.ndarray, eight_bit: bool, load_size: int, crop_size: int, flip: bool,
                    rng: np.random.Generator) -> np.ndarray:
    """Official `resize_and_crop` train transform -> 3HW float32 in [-1, 1]."""
    from .ops import multiple_of_4, pil_resize

    image = pil_resize(image, load_size, load_size, eight_bit)
    if load_size > crop_size:
        top, left = rng.integers(0, load_size - crop_size + 1, size=2)
        image = image[top:top + crop_size, left:left + crop_size]
    width, height = multiple_of_4(image.shape[1], image.shape[0])
    image = pil_resize(image, width, height, eight_bit)
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image.transpose(2, 0, 1)) * 2 - 1


class UnpairedData:
    """Batches of (A, B): A in a shuffled order per epoch, B drawn at random (no pairing)."""

    def __init__(self, a: ImageFolder, b: ImageFolder, batch_size: int, crop_size: int, flip: bool, seed: int):
        self.a, self.b = a, b
        self.batch_size, self.crop_size, self.flip = batch_size, crop_size, flip
        self.rng = np.random.default_rng(seed)  # every draw: A order, B picks, crops, flips
        self.order: np.ndarray | None = None  # this epoch's A order (a mid-epoch resume goes on with it)

    def __len__(self) -> int:
        """Iterations per epoch: the larger folder, in batches (official `unaligned` dataset)."""
        return -(-max(len(self.a), len(self.b)) // self.batch_size)

    def epoch(self, load_size: int, skip: int = 0):
        """Yield (A, B) float32 tensors N3HW for one epoch, after `skip` batches (resume mid-epoch)."""
        import torch

        size = max(len(self.a), len(self.b))
        if not (skip and self.order is not None and len(self.order) == size):  # else: the resumed epoch's
            self.order = self.rng.permutation(size)
        order = self.order
        for start in range(skip * self.batch_size, size, self.batch_size):
            idx = order[start:start + self.batch_size]
            a = [self._sample(self.a, i % len(self.a), load_size) for i in idx]
            b = [self._sample(self.b, int(self.rng.integers(len(self.b))), load_size) for _ in idx]
            yield torch.from_numpy(np.stack(a)), torch.from_numpy(np.stack(b))

    def state(self) -> dict:
        """What a checkpoint keeps for a bit-exact resume: the random stream and this epoch's order."""
        return {"rng": self.rng.bit_generator.state, "order": None if self.order is None else self.order.tolist()}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = None if state["order"] is None else np.asarray(state["order"], dtype=np.int64)

    def _sample(self, folder: ImageFolder, index: int, load_size: int) -> np.ndarray:
        image, eight_bit = folder.get(index)
        return train_transform(image, eight_bit, load_size, self.crop_size, self.flip, self.rng)
