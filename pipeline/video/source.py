"""Video files and numbered image sequences as Sources.

VideoSource streams frames from one ffmpeg process through a rawvideo pipe: one frame is in
memory at a time, whatever the video's length. ffmpeg auto-rotates frames, so items have the
display orientation (the probe's width/height).

Variable frame rate (VFR) policy, option `vfr`:
- `cfr` (default): frames are retimed onto a constant grid at the stream's average rate
  (ffmpeg duplicates/drops where the timing is uneven), so frame k is at k/fps and an edit
  suite gets a constant-rate file of the same duration. A VFR input is logged as a warning.
- `passthrough`: every stored frame exactly once, in order; the output is then written at the
  average rate, so its duration matches but timing inside drifts where the input was uneven.

Damaged files: frames decoded before the damage go through the workflow; then one extra item
fails with a message saying at which frame decoding stopped, so the run exits with code 3
(some items failed) and the video sink, missing frames, does not finalize its file.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..errors import InputError, ItemError
from ..item import Item
from ..sources import Source, SourceOptions
from . import ffmpeg
from .encode import pix_fmt_depth
from .probe import VideoInfo, probe
from .ranges import parse_range

log = logging.getLogger("stylefarm.video")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".ts", ".mts", ".mpg", ".mpeg",
                  ".gif", ".y4m", ".nut"}


class VideoSourceOptions(SourceOptions):
    path: str = Field(description="a video file (mp4, mov, mkv, webm, ...)")
    frames: str | int | None = Field(None, description="range: 100-250 (inclusive), 100-, or timecodes "
                                                       "00:00:04-00:00:10 / 00:00:04:00-00:00:09:23")
    start_number: int = Field(0, description="frame number of the video's first frame (e.g. 1001)")
    vfr: Literal["cfr", "passthrough"] = Field("cfr", description="variable frame rate policy (see docs)")


class VideoSource(Source):
    """Frames of one video file, decoded lazily through an ffmpeg pipe."""

    key = "video"
    Options = VideoSourceOptions
    priority = 10  # before ImageSource, which also accepts `path:`

    @classmethod
    def accepts(cls, spec: dict[str, Any]) -> bool:
        path = spec.get("path")
        return isinstance(path, str) and Path(path).suffix.lower() in VIDEO_SUFFIXES and "glob" not in spec

    @cached_property
    def info(self) -> VideoInfo:
        info = probe(self.base_dir / self.options.path)
        if info.frames == 0 or info.fps == 0:
            raise InputError(f"{info.path.name}: video has no frames (zero-length video)")
        if info.damage:
            log.warning("%s: damaged after frame %d of ~%d: %s", info.path.name, info.frames,
                        info.expected_frames, info.damage)
        if info.vfr:
            log.warning("%s: variable frame rate; policy %s at %s fps", info.path.name, self.options.vfr, info.fps)
        return info

    @cached_property
    def span(self) -> tuple[int, int]:
        """Inclusive frame indices (0-based) selected by `frames:`."""
        first_number = self.options.start_number
        last_number = first_number + self.info.frames - 1
        if self.options.frames is None:
            return 0, self.info.frames - 1
        try:
            lo, hi = parse_range(self.options.frames, self.info.fps, first_number, last_number)
        except ValueError as exc:
            raise InputError(f"{self.info.path.name}: {exc}") from None
        return lo - first_number, hi - first_number

    def count(self) -> int | None:
        return self.span[1] - self.span[0] + 1

    def _expected(self) -> int:
        """Frames the sink should receive: more than readable when the file is truncated."""
        lo, hi = self.span
        if self.info.damage and hi == self.info.frames - 1:
            return self.info.expected_frames - lo
        return hi - lo + 1

    def _argv(self) -> list[str]:
        import ffmpeg as ffmpeg_python

        lo, hi = self.span
        fps = self.info.fps
        retime = self.info.vfr and self.options.vfr == "cfr"
        # CFR: seek half a frame early (timestamps may be rounded by the time base) and keep every
        # frame as stored; accurate seeking drops the frames before that point, so frame lo is first.
        seek = Fraction(lo) if retime else lo - Fraction(1, 2)
        kwargs = {"ss": f"{float(seek / fps):.6f}"} if lo > 0 else {}
        stream = ffmpeg_python.input(str(self.info.path), **kwargs).video
        out = {"format": "rawvideo", "pix_fmt": "rgb48le" if self.bits > 8 else "rgb24", "frames:v": hi - lo + 1}
        out.update({"fps_mode": "cfr", "r": str(fps)} if retime else {"fps_mode": "passthrough"})
        quiet = ffmpeg.QUIET
        if not retime:  # frames are numbered by their presentation time, logged by showinfo
            stream = stream.filter("showinfo")
            quiet = [*ffmpeg.QUIET[:-1], "level+info"]
        return ffmpeg_python.output(stream, "pipe:", **out).global_args(*quiet).compile(cmd=ffmpeg.ffmpeg_exe())

    @cached_property
    def bits(self) -> int:
        """Bits per component of the stored frames: deeper sources are decoded as 16-bit RGB."""
        return pix_fmt_depth(self.info.pix_fmt)

    def _meta(self) -> dict[str, Any]:
        lo, hi = self.span
        whole = lo == 0 and hi == self.info.frames - 1
        return {"video": {"path": str(self.info.path), "first": lo, "count": self._expected(), "whole": whole,
                          "start": float(lo / self.info.fps), "audio": self.info.audio_codec, "bits": self.bits}}

    def items(self) -> Iterator[Item]:
        info, (lo, hi) = self.info, self.span
        w, h, fps = info.width, info.height, info.fps
        deep = self.bits > 8
        size, meta = w * h * (6 if deep else 3), self._meta()
        pipe = ffmpeg.Pipe(self._argv(), reading=True)
        clock = FrameClock(pipe, fps, lo) if not (info.vfr and self.options.vfr == "cfr") else None
        index = lo  # the next frame expected
        try:
            while len(buf := pipe.proc.stdout.read(size)) == size:
                at = clock.index() if clock else index
                for lost in range(index, min(at, hi + 1)):  # frames the decoder dropped: failed, true numbers
                    yield self._lost(lost)
                if at > hi:
                    break
                image = np.frombuffer(buf, "<u2" if deep else np.uint8).reshape(h, w, 3)
                if deep:  # 8-bit frames stay uint8 until a step needs floats (`stylefarm.item`)
                    image = image.astype(np.float32)
                    image *= np.float32(1 / 65535)
                yield Item(source=str(info.path), index=at, frame=self.options.start_number + at, image=image,
                           fps=fps, pts=float(at / fps), size=(w, h), bit_depth=16 if deep else 8, meta=meta)
                index = at + 1
            rc = pipe.wait()
            if index - lo < self._expected() or rc != 0:
                yield self._stopped(index, rc, pipe.stderr())
        finally:
            if clock:
                clock.close()
            pipe.kill()

    def _lost(self, index: int) -> Item:
        return self._failing(index, f"{self.info.path.name}: frame {self.options.start_number + index} could not "
                             "be decoded (damaged); the frames around it are numbered by their time, not shifted")

    def _failing(self, index: int, message: str) -> Item:
        def fail() -> Item:
            raise ItemError(message)

        log.error(message)
        return Item(source=str(self.info.path), index=index, frame=self.options.start_number + index,
                    fps=self.info.fps, loader=fail)

    def _stopped(self, index: int, rc: int, stderr: str) -> Item:
        """A failing item that reports where decoding stopped (the runner records it)."""
        reason = self.info.damage or ffmpeg.last_error(stderr)
        message = (f"{self.info.path.name}: video is damaged or truncated: decoding stopped at frame "
                   f"{self.options.start_number + index} after {index - self.span[0]} of "
                   f"{self._expected()} frames (ffmpeg exit {rc}: {reason})")
        return self._failing(index, message)

    def describe(self) -> str:
        return f"video: {self.options.path} {self.options.frames or 'all frames'}"


class FrameClock:
    """Frame indices from presentation times (ffmpeg's showinfo lines), so a frame the decoder
    drops leaves a gap instead of shifting every later frame onto the wrong number."""

    PTS = re.compile(rb"\bpts_time:\s*(-?[0-9.]+)")

    def __init__(self, pipe: ffmpeg.Pipe, fps: Fraction, first: int):
        self.reader, self.fps, self.first = pipe.stderr_lines(), fps, first
        self.start: float | None = None
        self.counted = 0
        self._partial = b""

    def index(self) -> int:
        """Index of the frame just read (its showinfo line is written before its pixels)."""
        pts = self._next_pts()
        self.counted += 1
        if pts is None:  # no timing line (should not happen): fall back to counting
            return self.first + self.counted - 1
        if self.start is None:
            self.start = pts
        return self.first + round((pts - self.start) * self.fps)

    def _next_pts(self) -> float | None:
        for _ in range(400):  # up to ~2 s for the line to land in the log
            line = self._line()
            while line is not None:
                match = self.PTS.search(line)
                if match:
                    return float(match[1])
                line = self._line()
            time.sleep(0.005)
        return None

    def _line(self) -> bytes | None:
        chunk = self.reader.readline()
        if not chunk.endswith(b"\n"):
            self._partial += chunk
            return None
        line, self._partial = self._partial + chunk, b""
        return line

    def close(self) -> None:
        self.reader.close()
