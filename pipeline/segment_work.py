"""Segment mode, the worker's side: one task is one frame range of one input (or a list of
image files) that the worker decodes, runs through its chain and writes itself, on storage it
shares with the driver. Only file names, manifest entries and timings travel back, never pixels,
so the driver's cost per frame no longer grows with the cluster (see docs/distributed.md).

- Frames before the range that a `temporal:` step needs (`lead`) are decoded and run but not
  written, as in farm shards; the chain's temporal state is reset at every segment start.
- A `video:` output becomes one encoded segment file (same encoder settings, no audio) under
  `.stylefarm/segments/`, finished only when every frame of the range made it; the driver joins
  the segments with `-c copy` and muxes the audio once. A failed frame fails alone: the other
  frames' images are written, the segment file is not (so the video is redone from that segment).
- Temp files carry this worker's run id and the worker holds its run lock on the output root, so
  a worker that dies leaves only `.part` files that the next run (or the driver) removes.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import first_line
from .item import Item
from .manifest import STATE_DIR
from .sinks import OutputContext
from .temporal import WARMUP_META
from .video.encode import container
from .video.sink import VideoSink, _Track

log = logging.getLogger("stylefarm.segment")
PROBE_DIR = "probe"


@dataclass
class SegmentTask:
    """What a worker needs to do one segment; everything in it pickles to a few kilobytes."""

    key: str  # manifest key of the segment (its video file is recorded under it)
    label: str  # "in.mp4 frames 240-479", for logs and the report
    first: int  # item indices [first, last] written by this segment
    last: int
    ctx: OutputContext
    sinks: list[tuple[type, Any]]  # per-item sinks (class, options) the worker writes
    batch_size: int
    decoder: Any = None  # a Source decoding exactly the frames [first - lead, last] itself (video) ...
    items: list[Item] | None = None  # ... or pixel-less items loaded on the worker (image files)
    lead: int = 0  # frames before `first` run for temporal warm-up, never written
    video: Any = None  # VideoOptions of the output video, or None
    segment_file: str | None = None  # where the segment's encoded video goes (absolute)
    generate: int | None = None  # the source whose pixels the chain's generator step makes


@dataclass
class SegmentResult:
    """What comes back: per item its outputs or its error, and the finished segment file."""

    done: list[tuple[str, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (key, source, error)
    segment_file: str | None = None
    warmup: int = 0
    cpu_seconds: float = 0.0  # this process and the ffmpeg processes it ran, for this segment
    transfer_bytes: int = 0  # pickled size of the task and this result (set by the driver)


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the ffmpeg decoders and encoders)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class SegmentVideo(VideoSink):
    """The output video's encoder settings writing one segment file, without audio; it expects
    exactly the segment's frames, so a segment missing one is never finished."""

    def __init__(self, options: Any, ctx: OutputContext, path: Path, first: int, count: int):
        super().__init__(options.model_copy(update={"audio": "none"}), ctx)
        self.segment_path, self.first, self.count = path, first, count

    def _track_for(self, item: Item) -> _Track:
        if self.track is None:
            container(self.segment_path)
            self.track = _Track(self.segment_path, item)
            self.track.next, self.track.expected = self.first, self.count
            self.track.stills = self.first  # a segment of pictures holds files first..last of the list
        return self.track


def _frames(task: SegmentTask, result: SegmentResult) -> Iterator[Item]:
    """The segment's items with pixels, lead-in marked; unreadable ones are failed here."""
    items = task.decoder.items() if task.decoder is not None else iter(task.items or [])
    for item in items:
        lead = item.index < task.first if task.decoder is not None else bool(item.meta.get(WARMUP_META))
        if lead:
            item.meta = {**item.meta, WARMUP_META: True}
        if task.generate is not None:
            item.meta = {**item.meta, "generate": task.generate}
            yield item
            continue
        try:
            yield item.load()
        except Exception as exc:
            if not lead:
                result.failed.append((item.key, item.source, f"cannot read input: {first_line(exc)}"))


def run_segment(runner: Any, task: SegmentTask) -> SegmentResult:
    """Decode, run and write one segment with this worker's set-up chain (`ChainRunner`)."""
    from .executors.base import batched
    from .runlock import hold_worker_lock
    from .runner import write_outputs

    cpu0, result = cpu_seconds(), SegmentResult()
    hold_worker_lock(task.ctx.root)
    runner.reset_state()
    sinks = [cls(options, task.ctx) for cls, options in task.sinks]
    video = None
    if task.video is not None:
        video = SegmentVideo(task.video, task.ctx, Path(task.segment_file), task.first, task.last - task.first + 1)
    try:
        for batch in batched(_frames(task, result), task.batch_size):
            for item, (out, error) in zip(batch, runner.run_batch(batch)):
                if item.meta.get(WARMUP_META):
                    result.warmup += 1
                elif error is not None:
                    result.failed.append((item.key, item.source, error))
                else:
                    written = write_outputs(sinks + ([video] if video else []), out)
                    result.done.append((item.key, [str(p) for p in written]))
                item.image = item.original = None
        if video is not None and not result.failed:
            result.segment_file = str(video.close()[0])
    finally:
        if video is not None and result.segment_file is None:
            video.abort()
    result.cpu_seconds = cpu_seconds() - cpu0
    return result


# --- the shared-storage probe -----------------------------------------------------------


def probe_marker(root: Path, token: str) -> Path:
    return root / STATE_DIR / PROBE_DIR / f"{token}.driver"


def probe_storage(inputs: list[str], root: str, token: str) -> dict[str, str | None]:
    """Run on a worker: can it read the inputs and the driver's marker in the output root, and
    write there? The driver then checks that it sees the file the worker wrote (`wrote`), so two
    different disks mounted at the same path are caught as well."""
    answer: dict[str, str | None] = {"worker": f"{socket.gethostname()}:{os.getpid()}", "problem": None, "wrote": None}
    for path in inputs:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            answer["problem"] = f"cannot read input {path} ({exc.strerror or exc})"
            return answer
    marker = probe_marker(Path(root), token)
    try:
        if marker.read_text(encoding="utf-8") != token:
            answer["problem"] = f"sees another {root} (the driver's probe file there differs)"
            return answer
    except OSError as exc:
        answer["problem"] = f"cannot see the output directory {root} ({exc.strerror or exc})"
        return answer
    mine = marker.parent / f"{token}.{socket.gethostname()}-{os.getpid()}"
    try:
        mine.write_text(token, encoding="utf-8")
    except OSError as exc:
        answer["problem"] = f"cannot write to the output directory {root} ({exc.strerror or exc})"
        return answer
    answer["wrote"] = str(mine)
    return answer


def timed_segment(runner: Any, task: SegmentTask) -> tuple[SegmentResult, float]:
    start = time.perf_counter()
    result = run_segment(runner, task)
    return result, time.perf_counter() - start
