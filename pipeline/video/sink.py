"""Video and frame-sequence outputs: `output.video: {...}` and `output.frames: {...}`.

VideoSink writes one video per input video/sequence (items are grouped by their source):
- fps is the source's exact rational rate; audio is copied from the source when the whole
  video was read and the container can hold its codec, re-encoded (aac; opus for webm) when a
  frame range was selected (exact cut) or the container needs it, trimmed to the video length;
- odd sizes: 4:2:0 needs even width and height (4:2:2 even width). `odd_size: pad` (default)
  repeats the last row/column so no pixel is lost; `crop` drops it;
- non-square pixels (an anamorphic source, e.g. 1440x1080 at SAR 4:3): the video keeps the
  source's display shape, so at the source's size the same SAR, after a resize the SAR that
  shows the frame as wide as the source was (square pixels stay untagged, as before);
- resume: the sink plans no file of its own, so resume skips items whose frame images (from
  the `images` or `frames` outputs) are recorded, and `skip()` reads that image back into the
  encoder. Without any image output nothing is skipped and the whole video is redone. So a
  rerun after a kill restyles only unfinished frames and still produces the complete video;
- `--frames` (`OutputContext.frames`): the video holds exactly the selected frames of its input,
  in order; one run of frames gets the audio under it (re-encoded, exact cut), a selection with
  gaps closes them up and gets no audio (no stretch of the source's sound fits such frames);
  what the video covers is logged and put in the report (`selection.videos`);
- a video missing frames (failed items, damaged input) is not finalized: its temp file is
  removed and `close()` raises, naming what was received;
- colour: the video carries the source's colour description (matrix, primaries, transfer, range,
  as the probe read them). Frames in the decoder's yuv420p (`stylefarm.video.yuv`, when the plan
  kept that layout) go to the encoder as they are, with those tags; RGB frames (8- or 16-bit)
  are converted to YUV with the source's matrix and range (`encode.rgb_to_encoder`), as the
  decoder converted them to RGB, and tagged the same, so an identity step's video decodes to the
  source's pixels under its tags. An untagged source stays untagged and is converted with
  BT.601 limited range both ways (swscale's assumption, as before). PQ and HLG (HDR) sources keep
  their tags, and a warning says that steps get the coded signal values, not linear light;
- a relayed video (`relay`, `Plan.relay`) is decoded and encoded by one ffmpeg the sink starts;
  `write` then only counts its pixel-less items, and `close` checks it as any other video.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from ..errors import OutputError
from ..images import check_picture, quantize, read_image, resize
from ..item import Item
from ..ranges import frame_count, merge, ranges_text
from ..sinks import ImageSink, OutputContext, Sink, SinkOptions
from . import ffmpeg, yuv
from .encode import (
    AUDIO_OK,
    CONTAINERS,
    SAR_MAX,
    AudioPlan,
    Decoded,
    Encoder,
    EncodeSpec,
    check_codec_fits,
    container,
    pix_fmt_depth,
)
from .sequence import parse_fps
from .yuv import color_options

log = logging.getLogger("stylefarm.video")
MAX_REORDER = 256  # frames buffered while waiting for a late one; beyond that it is lost
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1")
READBACK = (".png", ".tif", ".tiff", ".webp", ".bmp", ".jpg", ".jpeg")
SIGNAL_TRC = {"smpte2084": "PQ (SMPTE 2084)", "arib-std-b67": "HLG (ARIB STD-B67)"}  # HDR transfers
PRESET_CODECS = ("libx264", "libx265")  # the encoders `preset:` is passed to (others have no such option)
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
BITRATE = re.compile(r"\d+(\.\d+)?(e\d+)?([kKMGT]i?)?B?")  # bits/s as ffmpeg reads them: 8M, 2500k, 1.5M, 8000000


class VideoOptions(SinkOptions):
    path: str = Field("{input.stem}_styled.mp4", description="video file name (in output.dir)")
    codec: str | None = Field(None, description="libx264 (default), libx265, libvpx-vp9 (webm default), "
                                                "prores_ks (.mov) / ffv1 (.mkv) (lossless-grade), ...")
    crf: int | None = Field(18, ge=0, le=63, description="quality for x264/x265/vp9 (lower is better)")
    bitrate: str | None = Field(None, description="target bitrate, e.g. 8M (instead of crf)")
    preset: str | None = Field("medium", description="x264/x265 speed preset (veryfast, medium, slow ...)")
    pix_fmt: str | None = Field(None, description="yuv420p (default), yuv422p10le (ProRes default), ...")
    audio: Literal["auto", "copy", "encode", "none"] = Field("auto", description="source audio handling")
    odd_size: Literal["pad", "crop"] = Field("pad", description="make odd sizes even for chroma subsampling")
    fps: str = Field("24", description="rate for sources without one (still images, generators)")
    options: dict[str, str] = Field(default_factory=dict, description="extra ffmpeg output options, e.g. "
                                                                      "{'profile:v': '3', tune: film}")

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: str) -> str:
        return str(parse_fps(value))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "{" not in Path(value).suffix:  # the container is known when the workflow is read
            try:
                container(Path(value))
            except OutputError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("codec")
    @classmethod
    def _codec(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            ffmpeg.check_encoder(value)
            codec = ffmpeg.codec_of(value)
            if codec and "path" in info.data:
                check_codec_fits(Path(info.data["path"]).suffix.lower(), codec)
        return value

    @field_validator("bitrate")
    @classmethod
    def _bitrate(cls, value: str | None) -> str | None:
        if value is not None and not BITRATE.fullmatch(value):
            raise ValueError("expected bits per second, e.g. 8M, 2500k or 8000000")
        return value

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "codec" not in info.data or "path" not in info.data:
            return value  # the codec or path was refused: that error is the one to read
        codec = encoder_for(info.data["codec"], info.data["path"])
        if codec in PRESET_CODECS and value not in X26X_PRESETS:
            raise ValueError(f"{codec} has no such preset; use one of {', '.join(X26X_PRESETS)}")
        return value

    @field_validator("pix_fmt")
    @classmethod
    def _pix_fmt(cls, value: str | None) -> str | None:
        if value is not None:
            ffmpeg.check_pix_fmt(value)
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """Extra options are tried on the real encoder (tune, profile, x264-params ...): ffmpeg
        would refuse them only at the first frame, after the models loaded."""
        data = info.data
        if value and all(k in data for k in ("codec", "path", "pix_fmt", "crf", "bitrate", "preset")):
            codec = encoder_for(data["codec"], data["path"])
            args = encoder_args(codec, data["crf"], data["bitrate"], data["preset"], value)
            ffmpeg.check_encoder_opens(codec, data["pix_fmt"] or default_pix_fmt(codec), args)
        return value


def default_codec(fmt: str) -> str:
    return "libvpx-vp9" if fmt == "webm" else "libx264"


def encoder_for(codec: str | None, path: str) -> str:
    """The encoder a video gets: the one named, else its container's default."""
    return codec or default_codec(CONTAINERS.get(Path(path).suffix.lower(), "mp4"))


def encoder_args(codec: str, crf: int | None, bitrate: str | None, preset: str | None,
                 options: dict[str, str]) -> dict[str, Any]:
    """The encoder's output options: quality, speed, then the workflow's own `options:`."""
    extra: dict[str, Any] = {}
    if crf is not None and bitrate is None and codec in CRF_CODECS:
        extra["crf"] = crf
        if codec == "libvpx-vp9":
            extra["b:v"] = 0  # constant-quality mode
    if bitrate:
        extra["b:v"] = bitrate
    if preset and codec in PRESET_CODECS:
        extra["preset"] = preset
    return {**extra, **options}


def default_pix_fmt(codec: str) -> str:
    if codec.startswith("prores"):
        return "yuv422p10le"
    return "yuv444p" if codec == "ffv1" else "yuv420p"


def even_size(w: int, h: int, pix_fmt: str, mode: str) -> tuple[int, int]:
    """The encoder size for a (w, h) frame: chroma subsampling needs even dimensions."""
    need_w = any(t in pix_fmt for t in ("420", "422", "411", "nv12", "nv21"))
    need_h = any(t in pix_fmt for t in ("420", "nv12", "nv21"))
    step = 1 if mode == "pad" else -1
    return (w + step if need_w and w % 2 else w), (h + step if need_h and h % 2 else h)


def source_color(item: Item) -> list[str]:
    """The colour words of an item's source video (the probe's, e.g. ["tv", "bt709", "progressive"]):
    the source puts them in the items of its yuv420p frames; for RGB ones the probe is asked
    (kept from the source's own probe in this process, else in the probe store: no ffmpeg runs).
    Nothing for image sequences and generators: their video is untagged."""
    video = item.meta.get("video") or {}
    if "color" in video:
        return list(video["color"])
    if not video.get("path"):
        return []
    from .probe import probe

    return list(probe(video["path"]).color)


def say_signal(name: str, color: dict[str, str]) -> None:
    """Warn (once per video: called when its encoder starts) that PQ/HLG frames reach the steps as
    their coded values: the decoder converts the matrix only, not the transfer or the primaries."""
    trc = SIGNAL_TRC.get(color.get("color_trc", ""))
    if trc:
        primaries = color.get("color_primaries", "unknown")
        log.warning("%s: the source is %s HDR video (%s primaries): steps get its %s-coded signal values, not "
                    "linear light or sRGB; the output keeps its colour tags, so pixels a step leaves alone play "
                    "as in the source, but colours a step brings in (a style or reference image) are taken as "
                    "that signal as they are", name, trc, primaries, trc.split()[0])


def frame_size(frame: np.ndarray, layout: str) -> tuple[int, int]:
    return yuv.frame_size(frame) if layout == yuv.LAYOUT else (frame.shape[1], frame.shape[0])


def fit(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pad (edge-repeat) or crop a uint8 frame to exactly (w, h)."""
    if frame.ndim == 2:  # yuv420p frames are even-sized: the encoder was started at their size
        return frame
    frame = frame[:h, :w]
    ph, pw = h - frame.shape[0], w - frame.shape[1]
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else frame


def kept_ranges(first: int, count: int | None, offset: int,
                frames: tuple[tuple[int, int], ...] | None) -> list[tuple[int, int]] | None:
    """Index ranges of a video's frames that a --frames selection keeps, merged and clipped to the
    video (frame number = index + offset); None when nothing narrows it (no selection, or one
    that holds every frame), so such a video is made exactly as a plain run makes it."""
    if not frames:
        return None
    last = first + count - 1 if count is not None else None
    clipped = ((max(a - offset, first), b - offset if last is None else min(b - offset, last)) for a, b in frames)
    kept = merge((lo, hi) for lo, hi in clipped if lo <= hi)
    return None if last is not None and kept == [(first, last)] else kept


class _Track:
    """One output video: its encoder (started on the first frame) and the reorder buffer; under
    --frames it expects exactly the selected frames, in order, gaps closed up."""

    def __init__(self, path: Path, item: Item, frames: tuple[tuple[int, int], ...] | None = None):
        video = item.meta.get("video") or {}
        self.path, self.source = path, item.source
        first, count = video.get("first", item.index), video.get("count")
        self.offset = item.frame - item.index if item.frame is not None else 0  # frame number - index
        self.span = (first, count)
        self.kept = kept_ranges(first, count, self.offset, frames if item.frame is not None else None)
        self.next: int | None = self.kept[0][0] if self.kept else first
        self.expected: int | None = count  # unknown for an input that cannot count its frames
        if self.kept is not None and count is not None:
            self.expected = frame_count(self.kept)
        self.pending: dict[int, np.ndarray] = {}
        self.encoder: Encoder | None = None
        self.lost: str | None = None  # why this video cannot be complete
        self.deep: bool | None = None  # encoder keeps > 8 bits (decided at the first frame)
        self.still = item.frame is None  # pictures, not a video's frames: one frame each, in input order
        self.stills = 0  # the next picture's place in the video (pictures all have index 0)

    def add(self, index: int, frame: np.ndarray, start) -> None:
        """Queue a frame and feed the encoder every frame that is now in order."""
        if self.lost:
            return
        self.pending[index] = frame
        while self.next is not None and self.next in self.pending:
            frame = self.pending.pop(self.next)
            if self.encoder is None:
                self.encoder = start(frame)
            self.encoder.send(fit(frame, self.encoder.spec.width, self.encoder.spec.height))
            self.next = self._after(self.next)
        if len(self.pending) > MAX_REORDER:
            self.drop(self._never_arrived())

    def _never_arrived(self) -> str:
        """Said by frame number (1006 for start_number 1001), which the user sees in the report."""
        return f"frame {self.next + self.offset} never arrived" if self.next is not None else "a frame never arrived"

    def _after(self, index: int) -> int | None:
        """The next index this video holds (None: the selection ends here)."""
        if self.kept is None:
            return index + 1
        return next((max(index + 1, a) for a, b in self.kept if index + 1 <= b), None)

    def covers(self) -> str | None:
        """What a video narrowed by --frames holds, in frame numbers (None: every frame)."""
        if self.kept is None:
            return None
        first, count = self.span
        held = ranges_text(self.kept, self.offset)
        of = f" of {first + self.offset}-{first + count - 1 + self.offset}" if count else ""
        return f"frames {held}{of} (the --frames selection, {frame_count(self.kept)} frames)"

    def passed(self, index: int) -> None:
        """A relayed frame went through (frames come in order: the source numbers them)."""
        if index != self.next and not self.lost:  # kept running: `finish` drops it, like a piped one
            self.lost = self._never_arrived()
        self.encoder.passed()
        self.next = index + 1

    def drop(self, why: str) -> None:
        self.lost, self.pending = why, {}
        if self.encoder is not None:
            self.encoder.abort()

    def finish(self) -> Path:
        if self.encoder is not None and self.encoder.died():  # e.g. a relayed video's unknown encoder:
            return self.encoder.finish()  # ffmpeg's own reason (raised), not a frame count
        sent = self.encoder.frames if self.encoder else 0
        if self.lost is None and (self.pending or (self.expected is not None and sent != self.expected)):
            gap = f"{self._never_arrived()}; " if self.pending else ""  # a failed frame held the rest back
            self.lost = f"{gap}received {sent} of {self.expected} frames"
        if self.lost or self.encoder is None:
            self.drop(self.lost or "no frames")
            raise OutputError(f"video {self.path.name} not written: {self.lost} (failed or missing frames; "
                              "see the report's failures)")
        return self.encoder.finish()


class VideoSink(Sink):
    """Encodes each input's frames into one video file (see the module docstring)."""

    key = "video"
    Options = VideoOptions
    pixel_types = ("uint8", "float32")

    @classmethod
    def takes_layout(cls, options: VideoOptions, layout: str) -> bool:
        """yuv420p frames go in as they are when the encoder writes yuv420p (the default for mp4/mov/mkv)."""
        if layout != yuv.LAYOUT:
            return False
        codec = encoder_for(options.codec, options.path)
        return (options.pix_fmt or default_pix_fmt(codec)) == "yuv420p"

    @classmethod
    def relays(cls, options: VideoOptions) -> bool:
        """A relayed input's frames stay in the decoder's yuv420p: the encoder must take that."""
        return cls.takes_layout(options, yuv.LAYOUT)

    def __init__(self, options: VideoOptions, ctx: OutputContext):
        super().__init__(options, ctx)
        self.track: _Track | None = None
        self.finished: list[Path] = []
        self.errors: list[str] = []
        self.covered: dict[str, str] = {}  # video name -> what a --frames run put in it
        self.size: tuple[int, int] | None = None

    def _track_for(self, item: Item) -> _Track:
        """A video's frames go to its own video; pictures (a folder of stills) to one video per
        rendered path, one frame each in input order: each picture started a new video at the same
        path before, which kept only the last one."""
        track, path = self.track, self.ctx.path(self.options.path, item)
        same = track is not None and (track.path == path and track.still if item.frame is None
                                      else track.source == item.source and not track.still)
        if not same:
            self._end_track()
            self.track = _Track(path, item, self.ctx.frames)
            container(self.track.path)
        return self.track

    @staticmethod
    def _place(track: _Track, item: Item) -> int:
        if not track.still:
            return item.index
        track.stills += 1
        return track.stills - 1

    def _end_track(self) -> None:
        if self.track is not None:
            try:
                self.finished.append(self.track.finish())
                covers = self.track.covers()
                if covers:
                    self.covered[self.track.path.name] = covers
                    log.info("%s: %s", self.track.path.name, covers)
            except OutputError as exc:
                log.error("%s", exc)
                self.errors.append(str(exc))
            self.track, self.size = None, None

    def write(self, item: Item) -> list[Path]:
        if item.image is None:  # a relayed frame: its pixels went from decoder to encoder in one ffmpeg
            self._track_for(item).passed(item.index)
        else:
            self._push(item, item.image, item.layout)
        return []

    def relay(self, item: Item, decoded: Decoded) -> ffmpeg.Pipe:
        """Start a relayed video (`VideoSource.relay_items`, chosen by the plan when no step and no
        other output needs the pixels): one ffmpeg decodes and encodes with the options and checks
        of the piped path and writes the same file; its frames are counted by `write`."""
        track = self._track_for(item)
        try:
            track.encoder = self._start(track, item, item.size, yuv.LAYOUT, decoded)
        except OSError as exc:  # as a piped video's first frame would have it (the runner's wording)
            raise OutputError(f"cannot write output for {item.key}: {exc}") from None
        return track.encoder.pipe

    def skip(self, item: Item, recorded: list[Path]) -> None:
        """Resume: feed the frame image an earlier run recorded for this item."""
        images = sorted((p for p in recorded if p.suffix.lower() in READBACK),
                        key=lambda p: READBACK.index(p.suffix.lower()))
        if not images:
            raise OutputError(f"{item.key}: resume has no frame image to rebuild the video from; rerun with --force")
        try:
            image = read_image(images[0])[0]
        except ValueError as exc:  # same size as written (or an older manifest), yet unreadable
            raise OutputError(f"{item.key}: cannot rebuild the video from the frame an earlier run wrote: {exc}; "
                              f"delete that file (the rerun remakes it) or rerun with --force") from None
        self._push(item, image)

    def _push(self, item: Item, image: np.ndarray, layout: str = "rgb") -> None:
        """Queue one frame for its video; yuv420p frames go in untouched where the encoder takes them
        (the first frame decides), anything else through RGB (never the case in negotiated runs)."""
        track = self._track_for(item)
        to_yuv = track.encoder.spec.input_pix_fmt == yuv.LAYOUT if track.encoder else layout == yuv.LAYOUT
        start = lambda first: self._start(track, item, frame_size(first, yuv.LAYOUT if to_yuv else "rgb"),  # noqa: E731
                                          yuv.LAYOUT if to_yuv else None)
        index = self._place(track, item)
        if layout == yuv.LAYOUT:
            if to_yuv and self.size in (None, yuv.frame_size(image)):
                track.add(index, image, start)
                return
            image = yuv.to_rgb(image, **yuv.source_matrix(item.meta))
        depth = 16 if self._deep(track, item) else 8
        frame = quantize(image, depth)
        if self.size is not None and frame.shape[1::-1] != self.size:
            log.warning("%s: frame size %s differs from the video's %s; resized", item.key, frame.shape[1::-1],
                        self.size)
            frame = quantize(resize(image, *self.size), depth)
        frame = yuv.from_rgb(quantize(frame, 8), **yuv.source_matrix(item.meta)) if to_yuv else frame
        track.add(index, frame, start)

    def _deep(self, track: _Track, item: Item) -> bool:
        """Whether this video's encoder keeps more than 8 bits (then frames are sent as 16-bit);
        a deeper source into an 8-bit encoder is said once, with how to keep the depth."""
        if track.deep is None:
            codec = self.options.codec or default_codec(container(track.path))
            pix_fmt = self.options.pix_fmt or default_pix_fmt(codec)
            track.deep = pix_fmt_depth(pix_fmt) > 8
            if item.bit_depth > 8 and not track.deep:
                log.warning("%s: the source has %d-bit frames but %s %s keeps 8 bits; for 10-bit output use "
                            "codec: prores_ks (yuv422p10le, in a .mov), or libx265 / ffv1 (.mkv) with "
                            "pix_fmt: yuv420p10le",
                            track.path.name, item.meta.get("video", {}).get("bits", item.bit_depth), codec, pix_fmt)
        return track.deep

    def _start(self, track: _Track, item: Item, size: tuple[int, int], layout: str | None = None,
               decoded: Decoded | None = None) -> Encoder:
        w, h = self.size = size
        spec = self._spec(item, w, h)
        spec.color = color_options(source_color(item))
        if layout == yuv.LAYOUT:
            spec.input_pix_fmt = yuv.LAYOUT
        else:
            say_signal(track.path.name, spec.color)
        if (spec.width, spec.height) != (w, h):
            log.info("%s: %dx%d is odd for %s; %s to %dx%d", track.path.name, w, h, spec.pix_fmt,
                     self.options.odd_size, spec.width, spec.height)
        return Encoder(spec, track.path, decoded)

    def _spec(self, item: Item, w: int, h: int) -> EncodeSpec:
        opts = self.options
        fmt = container(self.track.path)
        codec = opts.codec or default_codec(fmt)
        pix_fmt = opts.pix_fmt or default_pix_fmt(codec)
        fps = item.fps or Fraction(opts.fps)
        ew, eh = even_size(w, h, pix_fmt, opts.odd_size)
        extra = encoder_args(codec, opts.crf, opts.bitrate, opts.preset, opts.options)
        dar = (item.meta.get("video") or {}).get("dar")
        sar = (Fraction(dar) * h / w).limit_denominator(SAR_MAX) if dar else None  # the source's display shape
        return EncodeSpec(ew, eh, fps, codec, pix_fmt, extra, self._audio(item, fmt, fps, self.track),
                          sar=None if sar == 1 else sar)

    def _audio(self, item: Item, fmt: str, fps: Fraction, track: _Track) -> AudioPlan | None:
        """Copy when whole and allowed; re-encode for ranges or containers that need it. A --frames
        selection of one run of frames gets the audio under it; one with gaps gets none (its
        frames are put back to back, so no stretch of the source's sound lines up with them)."""
        video = item.meta.get("video") or {}
        if self.options.audio == "none" or not video.get("audio") or not video.get("path"):
            return None
        start = video.get("start", 0.0)
        if track.kept is not None:
            if len(track.kept) > 1:
                log.info("%s: no audio: the --frames selection has gaps, so its frames do not follow the "
                         "source's sound; select one range for a video with audio", track.path.name)
                return None
            start += float((track.kept[0][0] - track.span[0]) / fps) if track.kept else 0.0
        allowed = AUDIO_OK.get(fmt)
        fits = allowed is None or video["audio"] in allowed
        whole = video.get("whole") and track.kept is None
        copy = self.options.audio == "copy" or (self.options.audio == "auto" and fits and whole)
        encoder = "libopus" if fmt == "webm" else "aac"
        duration = float(track.expected / fps) if track.expected else None
        return AudioPlan(video["path"], "copy" if copy else encoder, start, duration)

    def close(self) -> list[Path]:
        self._end_track()
        if self.errors:
            raise OutputError("; ".join(self.errors))
        return self.finished

    def abort(self) -> None:
        if self.track is not None:
            self.track.drop("aborted")
            self.track = None


class FramesOptions(SinkOptions):
    pattern: str = Field("{input.stem}_frames/{input.stem}.{frame:04d}.png",
                         description="frame file names (in output.dir); #### or %04d also work")
    bit_depth: Literal["auto", 8, 16, 32] = Field("auto", description="auto = same as the input")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        value = to_template(value)
        check_picture(value)
        return value

    @field_validator("bit_depth")
    @classmethod
    def _bit_depth(cls, value: int | str, info: ValidationInfo) -> int | str:
        if "pattern" in info.data:
            check_picture(info.data["pattern"], value)
        return value


def to_template(pattern: str) -> str:
    """`x.####.png` / `x.%04d.png` -> `x.{frame:04d}.png` (naming templates stay as they are)."""
    import re

    value = re.sub(r"%0?(\d*)d", lambda m: f"{{frame:0{m.group(1) or 1}d}}", pattern)
    return re.sub(r"#+", lambda m: f"{{frame:0{len(m.group(0))}d}}", value)


class FramesSink(Sink):
    """An image sequence beside (or instead of) the video: `output.frames: {pattern: ...}`."""

    key = "frames"
    pixel_types = ("uint8", "float32")
    Options = FramesOptions

    def __init__(self, options: FramesOptions, ctx: OutputContext):
        super().__init__(options, ctx)
        spec = ctx.spec.model_copy(update={"pattern": options.pattern, "bit_depth": options.bit_depth})
        self.images = ImageSink(None, OutputContext(ctx.root, ctx.base_dir, spec, ctx.step))

    def planned(self, item: Item) -> list[Path]:
        return self.images.planned(item)

    def write(self, item: Item) -> list[Path]:
        return self.images.write(item)
