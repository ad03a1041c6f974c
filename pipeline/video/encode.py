"""One ffmpeg encoder fed raw frames (RGB, or the decoder's yuv420p) through stdin, writing a hidden temp file,
or, for a relayed video (`Decoded`), one ffmpeg that decodes and encodes.

A writer thread feeds the pipe from a bounded queue (`send` returns once the frame is queued), so
the chain computes the next frame while ffmpeg takes this one; a failure in that thread is raised
by the next `send` or by `finish` as the same one-line OutputError as without it.

Kept apart from the sink so segments/join and benchmarks can use it. The temp file sits
beside the final one (`.stylefarm-RUN.NAME.XXXX.part`, removed by `abort()` and by the next run's
cleanup of dead runs, see `stylefarm.runlock`) and the muxer is named explicitly because the temp suffix says nothing.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..runlock import temp_name
from . import ffmpeg

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
              ".avi": "avi", ".nut": "nut", ".ts": "mpegts"}
# video codecs a container cannot hold, as the bundled ffmpeg's muxers refuse them (tests/test_video_bad_input.py
# writes each pair with the real binary); webm holds only the ones it names
VIDEO_REFUSED = {"mp4": {"vp8", "prores", "dnxhd", "qtrle", "huffyuv", "utvideo", "rawvideo"},
                 "mov": {"vp8", "vp9", "av1"}, "nut": {"dnxhd", "qtrle"}}
VIDEO_ONLY = {"webm": {"vp8", "vp9", "av1"}}
# audio codecs each container takes as a stream copy (anything else is re-encoded)
AUDIO_OK = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
            "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
            "webm": {"opus", "vorbis"}, "avi": {"mp3", "ac3", "pcm_s16le"}, "mpegts": {"aac", "mp3", "ac3", "opus"}}
# audio codecs a container refuses even as an explicit `audio: copy` (the bundled ffmpeg's muxers; tested
# pair by pair like VIDEO_REFUSED); webm holds only the ones it names
AUDIO_REFUSED = {"mov": {"opus", "flac"}, "avi": {"opus", "alac"}}
AUDIO_ONLY = {"webm": {"opus", "vorbis"}}


@dataclass
class AudioPlan:
    """Where the audio comes from and how: `codec` is 'copy' or an encoder name."""

    path: str
    codec: str
    start: float = 0.0
    duration: float | None = None


@dataclass
class EncodeSpec:
    width: int
    height: int
    fps: Fraction
    codec: str
    pix_fmt: str
    options: dict[str, Any] = field(default_factory=dict)  # extra output options (crf, preset, b:v ...)
    audio: AudioPlan | None = None
    input_pix_fmt: str | None = None  # what the frames are: None = RGB (rgb24, or rgb48le when deep); "yuv420p"
    color: dict[str, str] = field(default_factory=dict)  # the source's tags as setparams (range, colorspace ...):
    # yuv frames are tagged with them, RGB frames are also converted with their matrix and range
    sar: Fraction | None = None  # non-square pixels (an anamorphic source's display shape), None = square

    @property
    def deep(self) -> bool:
        """The encoder keeps more than 8 bits: frames go in as 16-bit RGB (rgb48le)."""
        return pix_fmt_depth(self.pix_fmt) > 8

    @property
    def pipe_pix_fmt(self) -> str:
        return self.input_pix_fmt or ("rgb48le" if self.deep else "rgb24")

    @property
    def frame_bytes(self) -> int:
        if self.pipe_pix_fmt == "yuv420p":
            return self.width * self.height * 3 // 2
        return self.width * self.height * (6 if self.pipe_pix_fmt == "rgb48le" else 3)


def pix_fmt_depth(pix_fmt: str) -> int:
    """Bits per component of an ffmpeg pixel format name (yuv420p10le -> 10, rgb48le -> 16, nv12 -> 8)."""
    name = pix_fmt.split("(")[0]
    if name in ("p010le", "p010be"):
        return 10
    if name.startswith(("rgb48", "bgr48", "rgba64", "bgra64", "gray16", "ya16")):
        return 16
    match = re.search(r"p(9|1[0-6])(le|be)$", name) or re.search(r"(1[0-6])(le|be)$", name)
    return int(match[1]) if match else 8


def temp_path(final: Path) -> Path:
    return final.parent / temp_name(final)


def container(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path.name}: unsupported video container; use one of {', '.join(sorted(CONTAINERS))}")
    return fmt


def holds(fmt: str, codec: str) -> bool:
    return codec not in VIDEO_REFUSED.get(fmt, ()) and codec in VIDEO_ONLY.get(fmt, {codec})


def holds_audio(fmt: str, codec: str) -> bool:
    return codec not in AUDIO_REFUSED.get(fmt, ()) and codec in AUDIO_ONLY.get(fmt, {codec})


def check_codec_fits(suffix: str, codec: str) -> None:
    """A codec the container cannot hold is refused before any work (ValueError, for the
    option's validator), naming the suffixes that can: ffmpeg would say so only at the first frame."""
    if suffix in CONTAINERS and not holds(CONTAINERS[suffix], codec):
        fits = [s for s, fmt in CONTAINERS.items() if holds(fmt, codec)]
        raise ValueError(f"a {suffix} file cannot hold {codec} video: give path a {', '.join(fits)} suffix, or "
                         "pick another codec")


SAR_MAX = 65535  # setsar's bound on the ratio's terms (its default, 100, would round e.g. 1023/1024)
# the YCbCr matrix a `colorspace` tag names, as swscale (the scale filter's out_color_matrix) calls it;
# bt2020c is converted as bt2020nc, as swscale decoded it (it has no constant-luminance maths)
SCALE_MATRIX = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470bg", "fcc": "fcc",
                "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}
NOT_YUV = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "gray", "ya", "pal", "mono",
           "xyz")  # pixel formats with no YCbCr matrix (and no limited range to keep)


def is_yuv(pix_fmt: str) -> bool:
    """Whether an ffmpeg pixel format is YCbCr (yuv420p, nv12, p010le ...), so a matrix and range apply."""
    return not pix_fmt.split("(")[0].startswith(NOT_YUV)


def rgb_to_encoder(frames: Any, spec: EncodeSpec) -> tuple[Any, dict[str, str]]:
    """RGB frames from the pipe into the encoder's format with the matrix and range their tags
    (`spec.color`, the source's) name, and the tags that then hold: left to itself swscale
    converts with BT.601 limited range whatever the tags say, so a bt709 or bt2020 file would
    play with shifted colours. A matrix swscale lacks is not tagged (the frames are BT.601, as
    for an untagged source); an RGB encoder format keeps only primaries and transfer."""
    color = dict(spec.color)
    if not is_yuv(spec.pix_fmt):
        return frames, {k: v for k, v in color.items() if k not in ("colorspace", "range")}
    if spec.pix_fmt.startswith("yuvj"):  # full range by definition
        color["range"] = "pc"
    matrix = SCALE_MATRIX.get(color.get("colorspace", ""))
    if matrix is None:
        color.pop("colorspace", None)
    args = {k: v for k, v in (("out_color_matrix", matrix), ("out_range", color.get("range"))) if v}
    if args:
        frames = frames.filter("scale", **args).filter("format", spec.pix_fmt)
    return frames, color


@dataclass
class Decoded:
    """The decoder's half of a relayed video (`VideoSource.relay_items`): one ffmpeg decodes and
    encodes, so no frame crosses a pipe."""

    stream: Any  # ffmpeg-python video stream: the input with its seek and the decoder's filters
    options: dict[str, Any]  # its output options (frames:v, fps_mode)


def encode_argv(spec: EncodeSpec, out: Path, fmt: str, decoded: Decoded | None = None) -> list[str]:
    """ffmpeg argv (built with ffmpeg-python) for raw frames on stdin (`spec.pipe_pix_fmt`) -> `out`,
    or for the decoder's stream of a relayed video, numbered, timed and tagged as the pipe's
    frames are (time base 1/fps, pts = frame number; the pixel aspect `spec.sar` and no chroma
    siting or container tags): the same file, byte for byte in mp4 (tested)."""
    import ffmpeg as ffmpeg_python

    opts = {"format": fmt, "vcodec": spec.codec, "pix_fmt": spec.pix_fmt, **spec.options}
    sar = f"{spec.sar.numerator}/{spec.sar.denominator}" if spec.sar else "0"
    if decoded is None:
        frames = ffmpeg_python.input("pipe:", format="rawvideo", pix_fmt=spec.pipe_pix_fmt,
                                     s=f"{spec.width}x{spec.height}", framerate=str(spec.fps)).video
        frames = frames.filter("setsar", sar, max=SAR_MAX) if spec.sar else frames
        log = ffmpeg.TAGGED  # a failure's cause and outcome (`ffmpeg.last_error`)
    else:
        timebase = f"{spec.fps.denominator}/{spec.fps.numerator}"
        frames = (decoded.stream.filter("setsar", sar, max=SAR_MAX).filter("setparams", chroma_location="unspecified")
                  .filter("settb", timebase).filter("setpts", "N"))
        opts.update(decoded.options, **{"map_metadata:g": -1})  # as from a pipe: no container tags of the source
        log = ffmpeg.PACED  # showinfo's lines pace the items
    color = spec.color
    if decoded is None and spec.input_pix_fmt is None:
        frames, color = rgb_to_encoder(frames, spec)
    frames = frames.filter("setparams", **color) if color else frames
    streams = [frames]
    if spec.audio is not None:
        timing = {"ss": f"{spec.audio.start:.6f}"} if spec.audio.start > 0 else {}
        if spec.audio.duration is not None:
            timing["t"] = f"{spec.audio.duration:.6f}"
        streams.append(ffmpeg_python.input(spec.audio.path, **timing).audio)
        opts["acodec"] = spec.audio.codec
    if fmt in ("mp4", "mov"):
        opts["movflags"] = "+faststart"
    graph = ffmpeg_python.output(*streams, str(out), **opts).global_args(*log).overwrite_output()
    return graph.compile(cmd=ffmpeg.ffmpeg_exe())


WRITE_AHEAD_BYTES = 64 << 20  # frames queued for the encoder: a few frames, at most ~64 MiB
_DONE = object()


class Encoder:
    """Streams frames into ffmpeg; `finish()` renames the temp file into place."""

    def __init__(self, spec: EncodeSpec, final: Path, decoded: Decoded | None = None):
        """`decoded`: relay the decoder's stream (one ffmpeg; frames are counted with `passed`)."""
        self.spec, self.final = spec, final
        fmt = container(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.temp = temp_path(final)
        self.frames = 0
        self.pipe = ffmpeg.Pipe(encode_argv(spec, self.temp, fmt, decoded), reading=False if decoded is None else None)
        self.queue: queue.Queue = queue.Queue(max(2, min(8, WRITE_AHEAD_BYTES // max(1, spec.frame_bytes))))
        self.broken = threading.Event()  # the pipe failed: ffmpeg died or refused the input
        self.writer: threading.Thread | None = None
        if decoded is None:
            self.writer = threading.Thread(target=self._write, name="stylefarm-encode", daemon=True)
            self.writer.start()

    def passed(self) -> None:
        """A relayed frame went through (counted for `finish`'s check; its pixels never come here)."""
        self.frames += 1

    def send(self, frame: np.ndarray) -> None:
        """`frame`: uint8 (or uint16 for a deep encoder) (height, width, 3) RGB at the encoder's size,
        or a yuv420p frame when `spec.input_pix_fmt` says so. It is written after `send` returns:
        the caller must not change it (items' arrays never change)."""
        frame = np.ascontiguousarray(frame)
        while not self.broken.is_set():
            try:
                self.queue.put(frame, timeout=0.1)
            except queue.Full:
                continue
            self.frames += 1
            return
        raise self._failure()

    def _write(self) -> None:
        """The writer thread: frames from the queue into ffmpeg's stdin (no extra copy)."""
        stdin = self.pipe.proc.stdin
        while (frame := self.queue.get()) is not _DONE:
            if self.broken.is_set():
                continue  # keep draining so a blocked `send` sees `broken`
            try:
                stdin.write(frame.data)
            except (OSError, ValueError):  # broken pipe, or the pipe closed by abort()
                self.broken.set()

    def died(self) -> bool:
        """ffmpeg already stopped with an error (`finish` raises its reason)."""
        return self.broken.is_set() or self.pipe.proc.poll() not in (None, 0)

    def _stop_writer(self, timeout: float | None = None) -> None:
        """All queued frames written (or dropped after a failure), the thread gone."""
        if self.writer is None:
            return
        while self.writer.is_alive():
            try:
                self.queue.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue
        self.writer.join(timeout)

    def _failure(self) -> OutputError:
        self._stop_writer()
        rc = self.pipe.wait()
        why = ffmpeg.last_error(self.pipe.stderr())
        if rc < 0:
            why = f"ffmpeg killed by {signal.Signals(-rc).name} (file size limit or disk full?) {why}".strip()
        self.abort()
        return OutputError(f"cannot write video {self.final}: {why}")

    def finish(self) -> Path:
        """Close the pipe, check ffmpeg's exit and the frame count, then rename into place."""
        self._stop_writer()
        if self.broken.is_set() or self.pipe.wait() != 0:
            raise self._failure()
        from .probe import probe

        written = probe(self.temp).frames
        if written != self.frames:
            self.abort()
            raise OutputError(f"{self.final.name}: encoder wrote {written} frames for {self.frames} sent")
        with open(self.temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.temp, self.final)
        return self.final

    def abort(self) -> None:
        self.broken.set()  # the writer drops what is queued
        self.pipe.kill()
        self._stop_writer(10)
        self.temp.unlink(missing_ok=True)
