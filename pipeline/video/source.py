"""Video files and numbered image sequences as Sources.

VideoSource streams frames from one ffmpeg process through a rawvideo pipe. A reader thread
keeps a few frames decoded ahead (`ffmpeg.ReadAhead`, a bounded queue), so the decoder works
while the chain computes and memory stays flat whatever the video's length. ffmpeg auto-rotates
frames, so items have the display orientation (the probe's width/height). Frames are RGB, or the
decoder's own yuv420p when the plan offers that layout (`offer_layout`, `stylefarm.video.yuv`).
When the plan relays the video (`relay_items`: nothing needs the pixels), the sink's one ffmpeg
decodes and encodes, and the items carry no pixels.

Variable frame rate (VFR) policy, option `vfr`:
- `cfr` (default): frames are retimed onto a constant grid at the stream's average rate
  (ffmpeg duplicates/drops where the timing is uneven), so frame k is at k/fps and an edit
  suite gets a constant-rate file of the same duration. A VFR input is logged as a warning.
- `passthrough`: every stored frame exactly once, in order; the output is then written at the
  average rate, so its duration matches but timing inside drifts where the input was uneven.
  Frame k is the k-th stored frame: a range seeks to its first frame's stored time and frames
  are numbered by their place in the stored times (`probe.frame_times`), not by time x fps.

Seeks and the audio's start count from the first video frame: a file whose audio starts before
its video (AAC priming, an offset timeline) has `VideoInfo.lead` added, so the sound stays in sync.

Damaged files: frames decoded before the damage go through the workflow; then one extra item
fails with a message saying at which frame decoding stopped, so the run exits with code 3
(some items failed) and the video sink, missing frames, does not finalize its file.
"""

from __future__ import annotations

import bisect
import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..errors import InputError, ItemError
from ..item import Item
from ..sources import Source, SourceOptions
from . import ffmpeg, yuv
from .encode import Decoded, pix_fmt_depth
from .probe import VideoInfo, frame_times, probe
from .ranges import parse_range

log = logging.getLogger("stylefarm.video")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".ts", ".mts", ".mpg", ".mpeg",
                  ".gif", ".y4m", ".nut"}
READ_AHEAD_BYTES = 64 << 20  # decoded frames waiting for the chain: a few frames, at most ~64 MiB


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
    layout = "rgb"  # "yuv420p" once the plan's offer is taken (`offer_layout`)

    def offer_layout(self, layout: str) -> bool:
        """Take the decoder's own format for 8-bit 4:2:0 limited-range video of even size."""
        info = self.info
        if layout == yuv.LAYOUT and info.pix_fmt == "yuv420p" and "pc" not in info.color \
                and info.width % 2 == 0 and info.height % 2 == 0:
            self.layout = layout
        return self.layout == layout

    scaled: tuple[int, int] | None = None  # (w, h) the decoder shrinks frames to (`scale_in_decoder`)

    def decoder_frames(self) -> tuple[int, int] | None:
        return (self.info.width, self.info.height) if self.layout == yuv.LAYOUT else None

    def scale_in_decoder(self, width: int, height: int) -> None:
        self.scaled = (width, height)

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

    @property
    def _retime(self) -> bool:
        return self.info.vfr and self.options.vfr == "cfr"

    @property
    def _stored_order(self) -> bool:
        """Frames kept as stored on a variable-rate video: found by their stored times, not k/fps."""
        return self.info.vfr and self.options.vfr == "passthrough"

    @cached_property
    def _times(self) -> list[float]:
        """Stored times of frames 0..hi (`_stored_order` only; a packet scan, no decoding)."""
        return frame_times(self.info.path, self.span[1] + 1)

    def _time_of(self, index: int) -> float:
        """Seconds from the file's start (the origin of `-ss`) to frame `index`."""
        if self._stored_order and index > 0:
            return self._times[index]
        return self.info.lead + float(index / self.info.fps)

    @cached_property
    def _seek(self) -> float:
        """Where the decoder seeks (0: no seek): CFR half a frame early (timestamps may be rounded by
        the time base), a stored-order frame halfway from the one before; accurate seeking drops
        the frames before that point, so frame lo is first."""
        lo, fps = self.span[0], self.info.fps
        if lo == 0:
            return 0.0
        if self._retime:
            return round(self._time_of(lo), 6)
        if self._stored_order:
            return round((self._times[lo - 1] + self._times[lo]) / 2, 6)
        return round(self.info.lead + float((lo - Fraction(1, 2)) / fps), 6)

    def _clock(self, pipe: ffmpeg.Pipe) -> FrameClock:
        lo, hi = self.span
        times = self._times[lo:hi + 1] if self._stored_order else None
        return FrameClock(pipe, self.info.fps, lo, times=times, seek=self._seek)

    def _decoding(self) -> Decoded:
        """The decoder's input, filters and output options (for the pipe, or a relay's one ffmpeg)."""
        import ffmpeg as ffmpeg_python

        lo, hi = self.span
        fps = self.info.fps
        kwargs = {"ss": f"{self._seek:.6f}"} if self._seek > 0 else {}
        stream = ffmpeg_python.input(str(self.info.path), **kwargs).video
        out = {"frames:v": hi - lo + 1, **({"fps_mode": "cfr", "r": str(fps)} if self._retime
                                           else {"fps_mode": "passthrough"})}
        if not self._retime:  # frames are numbered by their presentation time, logged by showinfo
            stream = stream.filter("showinfo", **ffmpeg.showinfo_args())
        if self.scaled:  # the same area filter as the step's on each plane (`Step.decoder_size`)
            stream = stream.filter("scale", *self.scaled, flags="area")
        return Decoded(stream, out)

    def _argv(self) -> list[str]:
        import ffmpeg as ffmpeg_python

        decoded = self._decoding()
        pix_fmt = yuv.LAYOUT if self.layout == yuv.LAYOUT else "rgb48le" if self.bits > 8 else "rgb24"
        quiet = ffmpeg.QUIET if self._retime else ffmpeg.PACED
        return ffmpeg_python.output(decoded.stream, "pipe:", format="rawvideo", pix_fmt=pix_fmt,
                                    **decoded.options).global_args(*quiet).compile(cmd=ffmpeg.ffmpeg_exe())

    @cached_property
    def bits(self) -> int:
        """Bits per component of the stored frames: deeper sources are decoded as 16-bit RGB."""
        return pix_fmt_depth(self.info.pix_fmt)

    def item_meta(self) -> dict[str, Any]:
        """The `meta` each of this video's items carries, `{"video": {...}}`: the file, the first
        frame and count read, whether that is the whole video, its start time, audio codec and bit
        depth (and colour tags and display shape where the encoder needs them), as the video sink
        reads it. Built anew at each call: pass one to `frame_item(meta=...)` to share it."""
        lo, hi = self.span
        whole = lo == 0 and hi == self.info.frames - 1
        video = {"path": str(self.info.path), "first": lo, "count": self._expected(), "whole": whole,
                 "start": round(self._time_of(lo), 6), "audio": self.info.audio_codec, "bits": self.bits}
        if self.layout != "rgb":  # the encoder keeps the source's colour tags for untouched samples
            video["color"] = list(self.info.color)
        if self.info.sar != 1:  # non-square pixels (anamorphic): the encoder keeps the display shape
            video["dar"] = str(self.info.dar)
        return {"video": video}

    def _frame_shape(self) -> tuple[tuple[int, ...], str]:
        w, h = self.scaled or (self.info.width, self.info.height)
        if self.layout == yuv.LAYOUT:
            return (h * 3 // 2, w), "u1"
        return (h, w, 3), ("<u2" if self.bits > 8 else "u1")

    def frame_item(self, index: int, image: np.ndarray | None = None, meta: dict | None = None) -> Item:
        """The item `items()` yields for frame `index`, or without pixels the one `relay_items` does."""
        info, deep = self.info, self.bits > 8 and self.layout == "rgb"  # deep frames come as float32
        return Item(source=str(info.path), index=index, frame=self.options.start_number + index, image=image,
                    fps=info.fps, pts=float(index / info.fps), size=self.scaled or (info.width, info.height),
                    bit_depth=16 if deep else 8, meta=meta or self.item_meta(), layout=self.layout)

    def offer_relay(self) -> bool:
        """Whether one ffmpeg may decode and encode this video (`relay_items`): frames kept as
        decoded (the plan's yuv420p offer taken) and numbered by their time (no retiming)."""
        return self.layout == yuv.LAYOUT and not self._retime

    def relay_items(self, start: Callable[[Item, Decoded], ffmpeg.Pipe]) -> Iterator[Item]:
        """A relayed video's items, without pixels. `start` (the video sink's) runs one ffmpeg on
        the decoder's stream into the encoder; its showinfo lines number the frames as `items()`
        does, lost and missing frames included, so the report and the exit code are the same."""
        info, (lo, hi), meta = self.info, self.span, self.item_meta()
        pipe = start(self.frame_item(lo, meta=meta), self._decoding())
        clock = self._clock(pipe)
        index = lo
        try:
            for at in clock.indices(pipe.proc):
                for lost in range(index, min(at, hi + 1)):
                    yield self._lost(lost)
                if at > hi:
                    break
                yield self.frame_item(at, meta=meta)
                index = at + 1
            rc = pipe.proc.wait()
            if rc != 0 and not info.damage:  # the encoder's failure (disk full...): the sink's close says so
                return
            if index - lo < self._expected() or rc != 0:
                yield self._stopped(index, rc, pipe.stderr())
        finally:
            clock.close()

    def items(self) -> Iterator[Item]:
        lo, hi = self.span
        shape, dtype = self._frame_shape()
        size, meta = int(np.prod(shape)) * np.dtype(dtype).itemsize, self.item_meta()
        pipe = ffmpeg.Pipe(self._argv(), reading=True)
        clock = self._clock(pipe) if not self._retime else None

        def produce() -> tuple[bytes, int | None] | None:  # in the reader thread
            buf = pipe.proc.stdout.read(size)
            return (buf, clock.index() if clock else None) if len(buf) == size else None

        reader = ffmpeg.ReadAhead(produce, max(2, min(8, READ_AHEAD_BYTES // size)))
        index = lo  # the next frame expected
        try:
            for buf, clocked in reader:
                at = index if clocked is None else clocked
                for lost in range(index, min(at, hi + 1)):  # frames the decoder dropped: failed, true numbers
                    yield self._lost(lost)
                if at > hi:
                    break
                yield self.frame_item(at, self._image(buf, shape, dtype), meta)
                index = at + 1
            rc = pipe.wait()
            if index - lo < self._expected() or rc != 0:
                yield self._stopped(index, rc, pipe.stderr())
        finally:
            reader.stopping.set()
            pipe.kill()
            reader.close()
            if clock:
                clock.close()

    @staticmethod
    def _image(buf: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """The frame's pixels (read-only, no copy); 16-bit ones become float32 at once, 8-bit ones stay
        uint8 until a step needs floats (`stylefarm.item`)."""
        image = np.frombuffer(buf, dtype).reshape(shape)
        if dtype == "u1":
            return image
        image = image.astype(np.float32)
        image *= np.float32(1 / 65535)
        return image

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
        kept = ", decoder's yuv420p kept (no colour conversion)" if self.layout == yuv.LAYOUT else ""
        if self.scaled:
            kept += ", shrunk to {}x{} by the decoder".format(*self.scaled)
        return f"video: {self.options.path} {self.options.frames or 'all frames'}{kept}"


class FrameClock:
    """Frame indices from presentation times (ffmpeg's showinfo lines), so a frame the decoder
    drops leaves a gap instead of shifting every later frame onto the wrong number. A constant
    rate numbers by time x fps; a variable one (`times`: the stored times of frames first,
    first+1, ...) by the stored time nearest to the frame's (showinfo's times count from `seek`)."""

    PTS = re.compile(rb"\bpts_time:\s*(-?[0-9.]+)")

    def __init__(self, pipe: ffmpeg.Pipe, fps: Fraction, first: int, times: list[float] | None = None,
                 seek: float = 0.0):
        self.reader, self.fps, self.first = pipe.stderr_lines(), fps, first
        self.times, self.seek = times, seek
        self.start: float | None = None
        self.counted = 0
        self._partial = b""

    def index(self) -> int:
        """Index of the frame just read (its showinfo line is written before its pixels)."""
        pts = self._next_pts()
        if pts is None:  # no timing line (should not happen): fall back to counting
            self.counted += 1
            return self.first + self.counted - 1
        return self._number(pts)

    def indices(self, proc: subprocess.Popen) -> Iterator[int]:
        """Indices of the frames ffmpeg logs, until it exits: a relayed video has no pixels to
        read, so its log alone says how far it got."""
        while True:
            done = proc.poll() is not None  # before reading: every line of an exited ffmpeg is in the log
            line = self._line()
            while line is not None:
                match = self.PTS.search(line)
                if match:
                    yield self._number(float(match[1]))
                line = self._line()
            if done:
                return
            try:  # back within a few ms of ffmpeg's exit (the wait polls in 0.5-4 ms steps), not 10 ms
                proc.wait(0.01)
            except subprocess.TimeoutExpired:
                pass

    def _number(self, pts: float) -> int:
        self.counted += 1
        if self.times:
            at = pts + self.seek
            right = bisect.bisect_left(self.times, at)
            nearest = min((i for i in (right - 1, right) if 0 <= i < len(self.times)),
                          key=lambda i: abs(self.times[i] - at))
            return self.first + nearest
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
