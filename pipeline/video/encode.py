"""One ffmpeg encoder fed raw RGB frames through stdin, writing a hidden temp file.

Kept apart from the sink so segments/join and benchmarks can use it. The temp file sits
beside the final one (`.stylefarm-RUN.NAME.XXXX.part`, removed by `abort()` and by the next run's
cleanup of dead runs, see `stylefarm.runlock`) and the muxer is named explicitly because the temp suffix says nothing.
"""

from __future__ import annotations

import os
import re
import signal
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
# audio codecs each container takes as a stream copy (anything else is re-encoded)
AUDIO_OK = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
            "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
            "webm": {"opus", "vorbis"}, "avi": {"mp3", "ac3", "pcm_s16le"}, "mpegts": {"aac", "mp3", "ac3", "opus"}}


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

    @property
    def deep(self) -> bool:
        """The encoder keeps more than 8 bits: frames go in as 16-bit RGB (rgb48le)."""
        return pix_fmt_depth(self.pix_fmt) > 8


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


def encode_argv(spec: EncodeSpec, out: Path, fmt: str) -> list[str]:
    """ffmpeg argv (built with ffmpeg-python) for raw rgb24 / rgb48le on stdin -> `out`."""
    import ffmpeg as ffmpeg_python

    video = ffmpeg_python.input("pipe:", format="rawvideo", pix_fmt="rgb48le" if spec.deep else "rgb24",
                                s=f"{spec.width}x{spec.height}",
                                framerate=str(spec.fps))
    streams, opts = [video.video], {"format": fmt, "vcodec": spec.codec, "pix_fmt": spec.pix_fmt, **spec.options}
    if spec.audio is not None:
        timing = {"ss": f"{spec.audio.start:.6f}"} if spec.audio.start > 0 else {}
        if spec.audio.duration is not None:
            timing["t"] = f"{spec.audio.duration:.6f}"
        streams.append(ffmpeg_python.input(spec.audio.path, **timing).audio)
        opts["acodec"] = spec.audio.codec
    if fmt in ("mp4", "mov"):
        opts["movflags"] = "+faststart"
    graph = ffmpeg_python.output(*streams, str(out), **opts).global_args(*ffmpeg.QUIET).overwrite_output()
    return graph.compile(cmd=ffmpeg.ffmpeg_exe())


class Encoder:
    """Streams frames into ffmpeg; `finish()` renames the temp file into place."""

    def __init__(self, spec: EncodeSpec, final: Path):
        self.spec, self.final = spec, final
        fmt = container(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.temp = temp_path(final)
        self.frames = 0
        self.pipe = ffmpeg.Pipe(encode_argv(spec, self.temp, fmt), reading=False)

    def send(self, frame: np.ndarray) -> None:
        """`frame`: uint8 (or uint16 for a deep encoder) (height, width, 3) RGB, at the encoder's size."""
        try:
            self.pipe.proc.stdin.write(np.ascontiguousarray(frame).data)  # no extra copy
        except (BrokenPipeError, OSError):
            raise self._failure() from None
        self.frames += 1

    def _failure(self) -> OutputError:
        rc = self.pipe.wait()
        why = ffmpeg.last_error(self.pipe.stderr())
        if rc < 0:
            why = f"ffmpeg killed by {signal.Signals(-rc).name} (file size limit or disk full?) {why}".strip()
        self.abort()
        return OutputError(f"cannot write video {self.final}: {why}")

    def finish(self) -> Path:
        """Close the pipe, check ffmpeg's exit and the frame count, then rename into place."""
        if self.pipe.wait() != 0:
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
        self.pipe.kill()
        self.temp.unlink(missing_ok=True)
