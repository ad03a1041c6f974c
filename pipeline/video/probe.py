"""Video metadata without ffprobe.

The bundled ffmpeg has no ffprobe, so `probe()` combines two cheap ffmpeg runs:
- the input banner (`ffmpeg -i FILE`): codec, pixel format, size, rotation, audio, duration;
- a stream copy of the video packets to `framecrc` (no decoding, ~20 ms for 240 frames at 720p):
  exact packet count, the stream time base and every packet's pts/duration, which give the
  frame rate as an exact fraction (24000/1001, not 23.98) and tell constant from variable rate.
With `STYLEFARM_PREFER_SYSTEM_FFMPEG=1` and a system ffprobe on PATH, ffprobe JSON is used instead.

What a probe learnt is kept in the user cache (`probe.json`) by the file's identity (path,
device, inode, size, mtime, ctime) and the ffmpeg's version, so the next process that reads the
same input (the next farm task of a shard job on this node, a resumed run) starts no ffmpeg for
it: the packet scan reads every packet of the file, ~4 s for two hours of 720p. A file changed in
the last few seconds (still being written) or one with damage is not kept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import ffmpeg

COMMON_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
                Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(120)]
_VIDEO = re.compile(r"Stream #\d+:\d+[^:]*: Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?.*?, (\d+)x(\d+)")
_AUDIO = re.compile(r"Stream #\d+:\d+[^:]*: Audio: (\w+)")
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_FILE_START = re.compile(r"Duration: [^,\n]*, start: (-?\d+(?:\.\d+)?)")
_STREAM_START = re.compile(r", start (-?\d+(?:\.\d+)?)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_SAR = re.compile(r"\[SAR (\d+):(\d+) DAR")
_DAMAGE = ("ended prematurely", "partial file", "invalid data", "error", "corrupt", "truncat")


@dataclass
class VideoInfo:
    """What a source and a sink need to know about a video file."""

    path: Path
    width: int  # display size: after rotation (ffmpeg auto-rotates decoded frames)
    height: int
    fps: Fraction  # exact average frame rate
    frames: int  # packets readable (exact for intact files)
    duration: float  # container duration in seconds (0 if unknown)
    codec: str
    pix_fmt: str
    rotation: int = 0  # degrees from the display matrix
    audio_codec: str | None = None
    vfr: bool = False  # frame durations vary beyond time-base rounding
    damage: str | None = None  # first demuxer error seen while reading packets
    color: tuple[str, ...] = ()  # what the banner says after the pixel format: ("tv", "bt709", "progressive")
    sar: Fraction = Fraction(1)  # sample (pixel) aspect ratio of the displayed frames; 1 = square or unknown
    # seconds from the file's start (its earliest stream) to the first video frame: ffmpeg's `-ss`
    # counts from the file's start, so audio (and video) seeks add it to stay on the video's timeline
    lead: float = 0.0

    @property
    def dar(self) -> Fraction:
        """Display aspect ratio (width x sar / height)."""
        return self.width * self.sar / self.height

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def expected_frames(self) -> int:
        """Frames the container promises (its duration x fps); more than `frames` when truncated."""
        return max(self.frames, round(self.duration * self.fps)) if self.damage else self.frames


_SEEN: dict[tuple, VideoInfo] = {}  # by file identity: a file written, renamed and reported is probed once


def probe(path: str | Path) -> VideoInfo:
    """Read a video's metadata; raises InputError (one line) for missing or non-video files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    stat = path.stat()
    if stat.st_size == 0:
        raise InputError(f"{path.name}: empty file (0 bytes), not a video")
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, ffmpeg.ffprobe_exe() is None)
    if key in _SEEN:
        return replace(_SEEN[key], path=path)
    stored = _Stored(path, stat)
    info = stored.get()
    if info is None:
        info = _probe_ffprobe(path) if ffmpeg.ffprobe_exe() else _probe_ffmpeg(path)
        stored.put(info)
    if len(_SEEN) > 256:
        _SEEN.clear()
    _SEEN[key] = info
    return replace(info, path=path)


class _Stored:
    """One file's entry in the probe store (see the module docstring)."""

    KEEP = 512  # entries; the oldest go first
    SETTLED_S = 5.0  # a file changed more recently than this may still be growing
    VERSION = 2  # of the entry's layout and of what the probe reads into it

    def __init__(self, path: Path, stat: os.stat_result):
        # a file changed this recently has a key no earlier probe stored (and is not kept): the
        # store is not read, so the output check of a video just written costs no JSON parse
        settled = time.time() - stat.st_mtime >= self.SETTLED_S
        self.store = ffmpeg.store_path("probe.json") if settled else None
        self.real = os.path.realpath(path)
        prober = "ffprobe" if ffmpeg.ffprobe_exe() else ffmpeg.version() or "?"
        self.key = "|".join(str(part) for part in (
            self.real, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, prober,
            self.VERSION))

    def get(self) -> VideoInfo | None:
        if self.store is None:
            return None
        entry = ffmpeg.read_store(self.store).get(self.key)
        if not isinstance(entry, dict):
            return None
        try:
            return VideoInfo(path=Path(self.real), **{**entry, "fps": Fraction(entry["fps"]),
                                                       "sar": Fraction(entry["sar"]), "color": tuple(entry["color"])})
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # written by another version
            return None

    def put(self, info: VideoInfo) -> None:
        if self.store is None or info.damage:
            return
        entry = {**asdict(info), "fps": str(info.fps), "sar": str(info.sar), "color": list(info.color)}
        del entry["path"]
        known = ffmpeg.read_store(self.store)
        kept = [(k, v) for k, v in known.items() if not k.startswith(self.real + "|")][-(self.KEEP - 1):]
        ffmpeg.write_store(self.store, {**dict(kept), self.key: entry})


def _probe_ffmpeg(path: Path) -> VideoInfo:
    """The banner and the packet scan run at the same time (two short ffmpeg starts, one wait)."""
    import threading

    scan: dict = {}

    def packets() -> None:
        try:
            scan["proc"] = _packet_scan(path)
        except BaseException as exc:  # raised below, in the caller's thread
            scan["error"] = exc

    thread = threading.Thread(target=packets, name="stylefarm-probe", daemon=True)
    thread.start()
    try:
        info = _banner(path)
    finally:
        thread.join()
    if "error" in scan:
        raise scan["error"]
    _packets(path, info, scan["proc"])
    return info


def _banner(path: Path) -> VideoInfo:
    """Parse `ffmpeg -i` stderr (exits 1 by design: no output given)."""
    text = ffmpeg.run(["-hide_banner", "-i", str(path)], timeout=60).stderr
    video = _VIDEO.search(text)
    if video is None:
        reason = "no video stream" if "Input #0" in text else ffmpeg.last_error(text)
        raise InputError(f"{path.name}: not a readable video ({reason})")
    codec, pix_fmt, w, h = video.group(1), video.group(2), int(video.group(3)), int(video.group(4))
    rot = _ROTATION.search(text[video.start():])
    rotation = int(round(float(rot.group(1)))) % 360 if rot else 0
    sar = _sar(_SAR.search(text[video.start():].split("\n", 1)[0]))
    if rotation in (90, 270):
        w, h, sar = h, w, 1 / sar
    dur = _DURATION.search(text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    audio = _AUDIO.search(text)
    detail = re.match(rf"[^\n]*?, {re.escape(pix_fmt)}\(([^)]*)\)", text[video.start():])
    color = tuple(t.strip() for t in detail.group(1).split(",")) if detail else ()
    file_start, video_start = _FILE_START.search(text), _STREAM_START.search(text[video.start():].split("\n", 1)[0])
    lead = max(0.0, float(video_start[1]) - float(file_start[1])) if file_start and video_start else 0.0
    return VideoInfo(path, w, h, Fraction(0), 0, duration, codec, pix_fmt, rotation,
                     audio.group(1) if audio else None, color=color, sar=sar, lead=round(lead, 6))


def _sar(match: re.Match | None) -> Fraction:
    """The banner's `[SAR a:b DAR c:d]`; absent or 0:1 (unknown) is square."""
    return Fraction(int(match[1]), int(match[2])) if match and int(match[1]) and int(match[2]) else Fraction(1)


def _packet_scan(path: Path, packets: int | None = None) -> subprocess.CompletedProcess:
    limit = ["-frames:v", str(packets)] if packets is not None else []
    return ffmpeg.run([*ffmpeg.QUIET, "-i", str(path), "-map", "0:v:0", "-c", "copy", *limit, "-f", "framecrc", "-"],
                      timeout=600)


REORDER_MARGIN = 64  # packets past the last frame wanted: more than any B-frame reordering delays a frame


def frame_times(path: str | Path, count: int) -> list[float]:
    """Presentation times (seconds from the file's start, the origin of `-ss`) of the first `count`
    stored frames, from a stream copy of the packets (no decoding). A variable-rate video's frame k
    is not at k/fps: passthrough seeks to and numbers its frames by these times."""
    proc = _packet_scan(Path(path), count + REORDER_MARGIN)
    tb = re.search(r"#tb \d+: (\d+)/(\d+)", proc.stdout)
    if tb is None:
        return []
    base = Fraction(int(tb.group(1)), int(tb.group(2)))
    pts = sorted(int(ln.split(",")[2]) for ln in proc.stdout.splitlines() if ln and not ln.startswith("#"))
    return [float(p * base) for p in pts[:count]]


def _packets(path: Path, info: VideoInfo, proc: subprocess.CompletedProcess | None = None) -> None:
    """Count video packets and derive the exact rate from their timestamps (no decoding)."""
    proc = proc or _packet_scan(path)
    tb = re.search(r"#tb \d+: (\d+)/(\d+)", proc.stdout)
    rows = [ln.split(",") for ln in proc.stdout.splitlines() if ln and not ln.startswith("#")]
    pts = sorted(int(r[2]) for r in rows)
    durations = [int(r[3]) for r in rows]
    info.frames = len(rows)
    errors = [ln for ln in proc.stderr.splitlines() if any(k in ln.lower() for k in _DAMAGE)]
    info.damage = errors[0].split("]")[-1].strip() if errors else None
    if not rows or tb is None:
        return
    base = Fraction(int(tb.group(1)), int(tb.group(2)))
    span = (pts[-1] + max(durations[-1], 0) - pts[0]) * base
    steps = [b - a for a, b in zip(pts, pts[1:])]
    slots = _slots_with_holes(steps)
    if slots and info.damage is None:  # a constant rate with frames missing, not a variable rate
        info.damage = f"{slots - len(pts)} frame(s) missing (the timestamps jump)"
        info.frames = slots
    rate = Fraction(len(pts)) / span if span > 0 else Fraction(0)
    info.fps = snap_rate(rate, durations, base, trust_span=info.damage is None)
    info.vfr = info.damage is None and bool(steps) and max(steps) - min(steps) > max(2, min(steps) // 10)


def _slots_with_holes(steps: list[int]) -> int | None:
    """Frame slots of a constant-rate stream whose timestamps skip whole frames (packets lost to
    damage), or None when the steps are even (no hole) or uneven (variable frame rate)."""
    if len(steps) < 4:
        return None
    typical = sorted(steps)[len(steps) // 2]
    if typical <= 0:
        return None
    multiples = [round(step / typical) for step in steps]
    if any(m < 1 or abs(step - m * typical) > typical // 10 for step, m in zip(steps, multiples)):
        return None
    return sum(multiples) + 1 if max(multiples) > 1 else None


def snap_rate(rate: Fraction, durations: list[int], base: Fraction, trust_span: bool = True) -> Fraction:
    """Exact rate: a common broadcast rate when within 0.1%, else the typical frame duration.

    A damaged file has holes in its timestamps, so only its typical frame duration counts.
    """
    typical = sorted(d for d in durations if d > 0)
    if not trust_span and typical:
        rate = 1 / (typical[len(typical) // 2] * base)
    if rate <= 0:
        return Fraction(0)
    tolerance = Fraction(1, 1000) if trust_span else Fraction(1, 30)
    for common in COMMON_RATES:
        if abs(rate - common) / common < tolerance:
            return common
    if typical:
        exact = 1 / (typical[len(typical) // 2] * base)
        if abs(exact - rate) / rate < Fraction(1, 100):
            return exact
    return rate.limit_denominator(1001)


def ffprobe_color(video: dict[str, Any]) -> tuple[str, ...]:
    """ffprobe's colour fields as the banner's words, which the rest reads (`yuv.color_options`):
    the range, then matrix/primaries/transfer, one name when the three agree, so bt2020 / PQ / HLG
    tags survive this path too."""
    names = [video.get(k) or "unknown" for k in ("color_space", "color_primaries", "color_transfer")]
    words = [video["color_range"]] if video.get("color_range") in ("tv", "pc") else []
    if names != ["unknown"] * 3:
        words.append(names[0] if len(set(names)) == 1 else "/".join(names))
    return tuple(words)


def _probe_ffprobe(path: Path) -> VideoInfo:
    """System ffprobe path: same fields from its JSON (packet count without decoding)."""
    argv = [ffmpeg.ffprobe_exe(), "-v", "error", "-count_packets", "-show_streams", "-show_format",
            "-of", "json", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise InputError(f"{path.name}: not a readable video ({ffmpeg.last_error(proc.stderr)})")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    rotation = int(next((sd.get("rotation", 0) for sd in video.get("side_data_list", [])), 0)) % 360
    w, h = int(video["width"]), int(video["height"])
    sar = _sar(re.match(r"(\d+):(\d+)", video.get("sample_aspect_ratio", "")))
    if rotation in (90, 270):
        w, h, sar = h, w, 1 / sar
    rate = Fraction(video.get("avg_frame_rate") or video.get("r_frame_rate") or "0/1")
    starts = (video.get("start_time"), data.get("format", {}).get("start_time"))
    lead = max(0.0, float(starts[0]) - float(starts[1])) if None not in starts else 0.0
    return VideoInfo(path, w, h, rate, int(video.get("nb_read_packets", 0)),
                     float(data.get("format", {}).get("duration", 0) or 0), video.get("codec_name", "?"),
                     video.get("pix_fmt", "?"), rotation, audio.get("codec_name") if audio else None,
                     vfr=video.get("avg_frame_rate") != video.get("r_frame_rate"),
                     color=ffprobe_color(video), sar=sar,
                     lead=round(lead, 6))
