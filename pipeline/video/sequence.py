"""Numbered image sequences (`sh010.%04d.png`, `sh010.####.png`) as a Source, and the pattern helpers
the frames sink shares.

Readable: PNG (8/16-bit), TIFF (8/16-bit and float), JPEG, and OpenEXR through ffmpeg's EXR
decoder (half/float; values are clipped to [0, 1] like every Item, so HDR highlights above 1.0
are lost). Missing frames inside the range: `missing: error` (default, fails before any work)
or `missing: hold` (repeat the previous existing frame; a leading gap takes the first one).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ..errors import InputError
from ..images import read_image
from ..item import Item
from ..sources import Source, SourceOptions
from .ranges import parse_range

_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")


def split_pattern(name: str) -> tuple[str, int, str]:
    """`sh010.%04d.png` / `sh010.####.png` -> ('sh010.', 4, '.png'); padding 0 = unpadded."""
    match = _PRINTF.search(name)
    if match:
        pad = int(match.group(2) or 0)
    else:
        match = _HASHES.search(name)
        if match is None:
            raise ValueError(f"sequence pattern {name!r} has no frame field (%04d or ####)")
        pad = len(match.group(0))
    return name[: match.start()], pad, name[match.end():]


def frame_name(pattern: str, frame: int) -> str:
    """Fill the frame field of a file name pattern."""
    prefix, pad, suffix = split_pattern(pattern)
    return f"{prefix}{frame:0{pad}d}{suffix}"


def parse_fps(value: str | float | int) -> Fraction:
    """`24`, `23.976`, `24000/1001` -> exact Fraction (23.976 snaps to 24000/1001)."""
    rate = Fraction(str(value))
    for ntsc in (24, 30, 60):
        if abs(rate - Fraction(ntsc * 1000, 1001)) < Fraction(1, 500):
            return Fraction(ntsc * 1000, 1001)
    if rate <= 0:
        raise ValueError("fps must be positive")
    return rate


class SequenceOptions(SourceOptions):
    sequence: str = Field(description="numbered files, e.g. shots/sh010.%04d.png or shots/sh010.####.png")
    frames: str | int | None = Field(None, description="frame numbers, e.g. 1001-1100 (default: all found)")
    missing: Literal["error", "hold"] = Field("error", description="a gap in the range: fail, or hold the last frame")
    fps: str | float = Field("24", description="frame rate for video outputs, e.g. 24 or 24000/1001")

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: str | float) -> str:
        return str(parse_fps(value))

    @field_validator("sequence")
    @classmethod
    def _pattern(cls, value: str) -> str:
        split_pattern(Path(value).name)
        return value


class SequenceSource(Source):
    """Frames of a numbered image sequence; item index and frame are the file's frame number."""

    key = "sequence"
    Options = SequenceOptions
    priority = 10

    @cached_property
    def found(self) -> dict[int, Path]:
        pattern = self.base_dir / self.options.sequence
        prefix, pad, suffix = split_pattern(pattern.name)
        regex = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
        found: dict[int, Path] = {}
        if pattern.parent.is_dir():
            for entry in os.scandir(pattern.parent):
                match = regex.match(entry.name)
                if match and (pad == 0 or len(match.group(1)) >= pad):
                    found[int(match.group(1))] = Path(entry.path)
        if not found:
            raise InputError(f"sequence {self.options.sequence!r}: no files match ({pattern})")
        return found

    @cached_property
    def span(self) -> tuple[int, int]:
        first, last = min(self.found), max(self.found)
        if self.options.frames is None:
            return first, last
        try:
            return parse_range(self.options.frames, Fraction(self.options.fps), first, last)
        except ValueError as exc:
            raise InputError(f"sequence {self.options.sequence!r}: {exc}") from None

    @cached_property
    def files(self) -> dict[int, tuple[Path, bool]]:
        """Frame number -> (file, held) after applying the missing-frame policy."""
        lo, hi = self.span
        missing = [f for f in range(lo, hi + 1) if f not in self.found]
        if missing and self.options.missing == "error":
            shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
            raise InputError(f"sequence {self.options.sequence!r}: {len(missing)} frame(s) missing in {lo}-{hi}: "
                             f"{shown} (set `missing: hold` to repeat the previous frame)")
        present = [f for f in range(lo, hi + 1) if f in self.found]
        files, last = {}, self.found[present[0]]
        for frame in range(lo, hi + 1):
            last = self.found.get(frame, last)
            files[frame] = (last, frame not in self.found)
        return files

    def count(self) -> int | None:
        return len(self.files)

    def _name(self) -> str:
        """The sequence's name for `{input.stem}`: `sh010.%04d.png` -> `sh010.png`."""
        prefix, _, suffix = split_pattern(Path(self.options.sequence).name)
        return str((self.base_dir / self.options.sequence).parent / ((prefix.rstrip("._- ") or "sequence") + suffix))

    def items(self) -> Iterator[Item]:
        fps, (lo, _) = Fraction(self.options.fps), self.span
        meta: dict[str, Any] = {"video": {"path": None, "first": lo, "count": len(self.files), "whole": True,
                                          "start": 0.0, "audio": None}}
        name = self._name()
        for frame, (path, held) in self.files.items():
            extra = {"file": str(path), **({"held_from": path.name} if held else {})}
            yield Item(source=name, index=frame, frame=frame, fps=fps, pts=float((frame - lo) / fps),
                       meta={**meta, **extra}, loader=_loader(name, frame, path))

    def describe(self) -> str:
        lo, hi = self.span
        return f"sequence: {self.options.sequence} {lo}-{hi} ({self.options.missing} on gaps)"


def _loader(name: str, frame: int, path: Path):
    def load() -> Item:
        rgb, alpha, depth = read_exr(path) if path.suffix.lower() == ".exr" else read_image(path)
        h, w = rgb.shape[:2]
        return Item(source=name, index=frame, image=rgb, alpha=alpha, bit_depth=depth, size=(w, h))

    return load


def read_exr(path: Path) -> tuple[np.ndarray, None, int]:
    """OpenEXR through ffmpeg (OpenCV here is built without OpenEXR): float RGB clipped to [0, 1]."""
    from . import ffmpeg
    from .probe import probe

    proc = ffmpeg.run([*ffmpeg.QUIET, "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gbrpf32le",
                       "-"], timeout=120, binary=True)
    if proc.returncode != 0:
        raise ValueError(f"cannot read EXR {path.name}: {ffmpeg.last_error(proc.stderr)}")
    info = probe(path)
    planes = np.frombuffer(proc.stdout, np.float32).reshape(3, info.height, info.width)
    rgb = np.stack([planes[2], planes[0], planes[1]], axis=2)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0)), None, 32
