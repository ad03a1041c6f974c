"""Splitting a video into frame-range segments and joining encoded segments without re-encoding.

A segment is a frame range (`frames: A-B` of a VideoSource) that one farm shard or executor
task stylizes and encodes on its own, without audio. `join()` concatenates the segment files
with ffmpeg's concat demuxer (`-c copy`: no generation loss, seconds for a feature) and
attaches the source's audio once, trimmed to the joined length. Every segment starts with a
keyframe because each was encoded independently, so seams are frame-exact; `join()` checks
that the joined packet count equals the sum of the segments'.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError
from . import ffmpeg
from .encode import AUDIO_OK, container, temp_path
from .probe import probe


def segment_ranges(total: int, size: int, first: int = 0) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame ranges of at most `size` frames covering `total` frames."""
    if total <= 0 or size <= 0:
        raise ValueError("total and size must be positive")
    return [(first + s, first + min(s + size, total) - 1) for s in range(0, total, size)]


def _concat_list(segments: list[Path]) -> str:
    """A concat-demuxer list file (paths quoted as the demuxer expects)."""
    lines = ["ffconcat version 1.0"]
    for seg in segments:
        escaped = str(seg.resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
    fd, path = tempfile.mkstemp(prefix="stylefarm-concat-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _audio_args(audio_from: Path | None, start: float, duration: float, fmt: str,
                audio_codec: str | None = None) -> list[str]:
    if audio_from is None:
        return ["-map", "0:v"]
    info = probe(audio_from)
    if not info.has_audio:
        raise InputError(f"{audio_from.name}: has no audio stream to attach")
    allowed = AUDIO_OK.get(fmt)
    copy = allowed is None or info.audio_codec in allowed
    codec = audio_codec or ("copy" if copy and start == 0 else ("libopus" if fmt == "webm" else "aac"))
    seek = ["-ss", f"{start:.6f}"] if start > 0 else []
    return [*seek, "-t", f"{duration:.6f}", "-i", str(audio_from), "-map", "0:v", "-map", "1:a", "-c:a", codec]


def _settings(info) -> str:
    """What segments must share to be joined without re-encoding."""
    return f"{info.width}x{info.height} {info.codec} at {info.fps} fps"


def join(segments: list[Path], output: Path, audio_from: Path | None = None, audio_start: float = 0.0,
         audio_codec: str | None = None) -> Path:
    """Concatenate encoded segments into `output` (no re-encode), audio from `audio_from` once
    (`audio_codec`: copy or an encoder; default: copy when the container takes it and the audio
    starts at 0, else re-encoded so the cut is exact)."""
    if not segments:
        raise InputError("join: no segments given")
    inputs = [*segments, *([audio_from] if audio_from else [])]
    if any(Path(f).resolve() == Path(output).resolve() for f in inputs):  # it would be overwritten at the end
        raise InputError(f"join: {output} is one of the files joined; write the joined video to another name")
    infos = [probe(seg) for seg in segments]
    odd = next((i for i in range(1, len(infos)) if _settings(infos[i]) != _settings(infos[0])), None)
    if odd is not None:
        raise InputError(f"join: segments differ: {segments[0].name} is {_settings(infos[0])}, {segments[odd].name} "
                         f"is {_settings(infos[odd])}; encode them with the same settings")
    total, fps = sum(i.frames for i in infos), infos[0].fps
    fmt = container(output)
    listing, temp = _concat_list(segments), temp_path(output)
    try:
        args = [*ffmpeg.QUIET, "-f", "concat", "-safe", "0", "-i", listing,
                *_audio_args(audio_from, audio_start, float(total / fps), fmt, audio_codec),
                "-c:v", "copy", "-f", fmt, str(temp)]
        proc = ffmpeg.run(args, timeout=3600)
        if proc.returncode != 0:
            raise OutputError(f"join failed: {ffmpeg.last_error(proc.stderr)}")
        written = probe(temp).frames
        if written != total:
            raise OutputError(f"join wrote {written} frames, segments hold {total}")
        os.replace(temp, output)
        return output
    finally:
        os.unlink(listing)
        temp.unlink(missing_ok=True)
