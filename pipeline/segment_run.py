"""Segment mode, the driver's side (`execution.unit: segment`, or `auto` for long videos).

The driver never touches a pixel: it cuts every input into segments of `segment_frames` frames
(video: frame ranges decoded by the worker itself; other inputs: lists of files), skips the
segments a previous run finished, probes that the workers see the same files, hands the
segments to the executor, records what comes back in the manifest and, at the end, joins each
video's segment files with `-c copy` and the source's audio muxed once. See segment_work.py
for the worker's side and docs/distributed.md for when to use which unit.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterError, OutputError, WorkflowError, uninterrupted
from .item import Item
from .manifest import STATE_DIR
from .segment_work import PROBE_DIR, SegmentTask, probe_marker
from .sinks import ImageSink, Sink
from .temporal import WARMUP_META, chain_warmup
from .video.segments import segment_ranges
from .video.sink import AUDIO_OK, FramesSink, VideoSink, container
from .video.source import VideoSource

log = logging.getLogger("stylefarm.segment")
AUTO_SEGMENTS = 2  # `unit: auto` picks segments for Ray/Dask jobs with a video longer than this many
MIN_SEGMENT = 8  # frames: a shorter last segment is merged into the one before (see video_ranges)


def segment_unit(plan: Any, item_filter: Any) -> str:
    """'segment' or 'frame' for this run, before the storage probe (see the module docstring)."""
    ex = plan.workflow.execution
    if ex.unit == "segment":
        if item_filter is not None:
            raise WorkflowError("execution.unit: segment cannot run a farm task's --shard/--frames selection; "
                                "farm tasks are segments already: use execution.unit: frame")
        return "frame" if _retimed(plan) else "segment"
    if ex.unit == "frame" or ex.backend == "local" or item_filter is not None:
        return "frame"
    long_video = any(isinstance(src, VideoSource) and (count or 0) > AUTO_SEGMENTS * ex.segment_frames
                     for src, count in zip(plan.sources, plan.counts))
    return "segment" if long_video and not _retimed(plan) else "frame"


def _retimed(plan: Any) -> bool:
    """A variable-rate video retimed onto a constant grid (`vfr: cfr`) cannot be cut into segments
    exactly: which stored frame lands on grid slot k depends on every frame before it (ffmpeg's
    duplicate/drop decisions), so a worker seeking to slot k would shift frames at the seams.
    Such a run goes through the driver (frame mode), said once."""
    retimed = [src for src in plan.sources if isinstance(src, VideoSource) and src._retime]
    if retimed:
        log.info("segment mode off: %s has a variable frame rate retimed to %s fps (vfr: cfr), which only "
                 "a decode from its start gives frame-exact; frames go through the driver (vfr: passthrough "
                 "keeps segment mode)", retimed[0].info.path.name, retimed[0].info.fps)
    return bool(retimed)


@dataclass
class Segment:
    task: SegmentTask
    source_index: int
    items: list[Item]  # pixel-less items the segment writes (resume, report, aggregates)
    planned: list[list[Path]] = field(default_factory=list)  # per item: its per-item sinks' files
    row: dict[str, Any] = field(default_factory=dict)  # its line in the report


def video_ranges(lo: int, hi: int, size: int, merge_tail: bool = True) -> list[tuple[int, int]]:
    """Ranges of `size` frames (or items); a short tail joins the segment before it. x264 encodes
    a clip of 1-2 frames without the B-frame delay of longer ones, and a join of such a segment
    gets an uneven frame duration at the seam, so no segment is shorter than MIN_SEGMENT (and a
    job with a video output has segments of at least that many frames); without a video output
    (`merge_tail` false) the ranges are plain."""
    ranges = segment_ranges(hi - lo + 1, size, lo)
    if merge_tail and len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] + 1 < min(MIN_SEGMENT, size):
        ranges[-2:] = [(ranges[-2][0], ranges[-1][1])]
    return ranges


_BY_RANGE = ("options", "span", "_seek", "_times")  # a VideoSource's attributes that depend on its range


def _narrowed(source: VideoSource, first: int, last: int) -> VideoSource:
    """The same video reading only frames [first, last] (the worker seeks there; no new probe)."""
    start = source.options.start_number
    copy = type(source)(source.options.model_copy(update={"frames": f"{start + first}-{start + last}"}),
                        source.base_dir)
    copy.__dict__.update({k: v for k, v in source.__dict__.items() if k not in _BY_RANGE})
    return copy


def is_aggregate(sink: Sink, sample: Item) -> bool:
    """A sink that plans no file of its own per item gathers many items into one (video, sheet)."""
    return not sink.planned(sample)


class SegmentMode:
    """Mixed into `stylefarm.runner.Run`: the segment-mode run (uses its manifest, report, _fail)."""

    def _storage_ok(self, executor: Any, explicit: bool) -> bool:
        """The real probe: every worker reads the inputs and a marker the driver writes into the
        output root, writes a file back, and the driver sees that file."""
        if executor.name == "local":
            return True
        root = self.plan.root
        token = secrets.token_hex(8)
        marker = probe_marker(root, token)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(token, encoding="utf-8")
        try:
            answers = executor.check_storage(self._probe_inputs(), str(root), token)
            problems = [(a["worker"], a["problem"] or "writes files the driver does not see in the output directory")
                        for a in answers if a["problem"] or not Path(a["wrote"] or "").is_file()]
        finally:
            for path in (root / STATE_DIR / PROBE_DIR).glob(f"{token}.*"):
                path.unlink(missing_ok=True)
        if not answers:
            problems = [("-", "no worker answered the shared-storage probe")]
        if not problems:
            return True
        worker, problem = problems[0]
        message = (f"worker {worker} {problem}; segment mode needs the inputs and output.dir at the same paths on "
                   "every worker (shared storage such as NFS)")
        if explicit:
            raise ClusterError(f"execution.unit: segment: {message}, or use execution.unit: frame")
        log.info("segment mode off (%s); frames go through the driver", message)
        return False

    def _probe_inputs(self) -> list[str]:
        paths: list[str] = []
        for source in self.plan.sources:
            if isinstance(source, VideoSource):
                paths.append(str(source.info.path))
                continue
            items = list(source.items())  # image files: the first and the last one are read
            paths += [p for p in sorted({items[0].source, items[-1].source}) if Path(p).is_file()] if items else []
        return paths

    # --- planning ---------------------------------------------------------------------

    def _segments(self, per_item: list[Sink], video: VideoSink | None) -> list[Segment]:
        plan, size = self.plan, self.plan.workflow.execution.segment_frames
        if video is not None:  # see video_ranges: short segments encode differently
            size = max(size, MIN_SEGMENT)
        warm = chain_warmup(plan.chain)
        specs = [(type(s), s.options) for s in per_item]
        segments: list[Segment] = []
        for index, source in enumerate(plan.sources):
            generate = index if index in plan.generated else None
            if isinstance(source, VideoSource):
                (lo, hi), meta = source.span, source.item_meta()
                for a, b in video_ranges(lo, hi, size, merge_tail=video is not None):
                    lead = min(warm, a - lo)
                    items = [source.frame_item(i, meta=meta) for i in range(a, b + 1)]
                    task = self._task(items, a, b, specs, video, generate, lead=lead,
                                      decoder=_narrowed(source, a - lead, b))
                    segments.append(Segment(task, index, items))
                continue
            every = list(source.items())
            for start, end in (video_ranges(0, len(every) - 1, size, video is not None) if every else []):
                items = every[start:end + 1]
                before = [_as_warmup(it) for it in every[max(0, start - warm):start]]
                # pictures all have index 0: a segment of them is its place in the list
                first, last = (start, end) if items[0].frame is None else (items[0].index, items[-1].index)
                task = self._task(items, first, last, specs, video, generate,
                                  lead=len(before), items=before + items)
                segments.append(Segment(task, index, items))
        self._check_claims(segments, per_item)
        return segments

    def _task(self, written: list[Item], first: int, last: int, specs: list, video: VideoSink | None,
              generate: int | None, **where: Any) -> SegmentTask:
        """`written`: the items the segment writes; `where`: its decoder, or the items to load."""
        head, tail = written[0], written[-1]
        name = Path(head.source).name
        if head.frame is not None:
            label = f"{name} frames {head.frame}-{tail.frame}"
        else:
            label = f"{name} .. {Path(tail.source).name} ({len(written)} files)" if len(written) > 1 else name
        key = f"segment:{head.key}..{tail.key}"
        segment_file = None
        if video is not None:
            digest = hashlib.sha1(f"{head.source}|{video.options.path}".encode()).hexdigest()[:12]
            suffix = Path(video.options.path).suffix
            segment_file = str(self.plan.root / STATE_DIR / "segments" / digest / f"{first:08d}-{last:08d}{suffix}")
        return SegmentTask(key, label, first, last, self._context(), specs, self.plan.workflow.execution.batch_size,
                           video=video.options if video is not None else None, segment_file=segment_file,
                           generate=generate, **where)

    def _check_claims(self, segments: list[Segment], per_item: list[Sink]) -> None:
        """Never two items to one path: refused before any segment runs."""
        claimed: dict[Path, str] = {}
        for seg in segments:
            seg.planned = [[p for sink in per_item for p in sink.planned(item)] for item in seg.items]
            for item, paths in zip(seg.items, seg.planned):
                for path in paths:
                    if claimed.setdefault(path, item.key) != item.key:
                        raise OutputError(f"{item.key} would overwrite {claimed[path]}'s output {path}; add "
                                          "{frame:04d} or {input.rel} to output.pattern so items map to "
                                          "different files")

    def _state(self, seg: Segment, manifest: Any) -> str:
        """done (skip), changed (outputs of an older recipe: redo) or todo."""
        states = [manifest.status(item.key, planned) for item, planned in zip(seg.items, seg.planned) if planned]
        if seg.task.segment_file is not None:
            states.append(manifest.status(seg.task.key, [Path(seg.task.segment_file)]))
        if not states or "todo" in states:
            return "todo"
        return "changed" if "changed" in states else "done"

    # --- running ----------------------------------------------------------------------

    def _run_segments(self, executor: Any, sinks: list[Sink], manifest: Any, progress: Any) -> list[Path]:
        """The whole segment-mode run; returns the joined videos."""
        sample = Item(source=str(self.plan.base_dir / "sample.png"), index=0, frame=0)
        video = next((s for s in sinks if isinstance(s, VideoSink)), None)
        per_item = [s for s in sinks if s is not video and not is_aggregate(s, sample)]
        gathered = [s for s in sinks if s is not video and is_aggregate(s, sample)]
        if gathered and not any(isinstance(s, ImageSink | FramesSink) for s in per_item):
            per_item.append(self._handover_frames())
        segments = self._segments(per_item, video)
        todo = []
        for seg in segments:
            state = self._state(seg, manifest)
            if state == "done":
                seg.row = {"status": "skipped"}
                for _ in seg.items:
                    self.report.skipped()
                    progress.update(skipped=True)
                continue
            if state == "changed":
                for item in seg.items:
                    self._note_redo(manifest, item.key)
            todo.append(seg)
        by_key = {seg.task.key: seg for seg in todo}
        for outcome in executor.map_segments(self.plan.chain, [seg.task for seg in todo]):
            self._segment_ended(by_key[outcome.task.key], outcome, manifest, progress)
        from .runlock import clean_dead_runs

        clean_dead_runs(self.plan.root)  # the .part files of workers that died mid-segment
        self.report.data["segments"] = [{"segment": s.task.label, "first": s.task.first, "last": s.task.last,
                                         **s.row} for s in segments]
        self._feed(gathered, manifest)
        return self._join(video, segments, manifest) if video is not None else []

    def _handover_frames(self) -> Sink:
        """Per-frame files for a sheet (or another gathering sink) when the workflow writes no images."""
        from .export.job import HANDOVER_PATTERN

        return FramesSink(FramesSink.Options(pattern=HANDOVER_PATTERN), self._context())

    def _segment_ended(self, seg: Segment, outcome: Any, manifest: Any, progress: Any) -> None:
        info = outcome.info or {}
        seg.row = {"worker": outcome.worker, "node": info.get("node_id") or info.get("node"),
                   "attempts": outcome.attempts}
        if outcome.error is not None:
            seg.row["status"] = "failed"
            for item in seg.items:
                self._fail(item, outcome.error, progress)
            return
        result = outcome.result
        for key, outputs in result.done:
            paths = [Path(p) for p in outputs]
            with uninterrupted():
                if paths:
                    manifest.record(key, paths)
                self.report.done(paths)
            progress.update()
        for key, source, error in result.failed:
            self._fail(Item(source=source, index=int(key.rpartition("#")[2] or 0)), error, progress)
        if result.segment_file:
            manifest.record(seg.task.key, [Path(result.segment_file)])
        seg.row.update(status="done" if not result.failed else "partial", frames_failed=len(result.failed),
                       warmup=result.warmup, cpu_seconds=round(result.cpu_seconds, 3))

    def _feed(self, gathered: list[Sink], manifest: Any) -> None:
        """Gathering sinks (contact sheet) get every finished item in input order, from its files,
        as resume does; a sink that is `full` stops the reading early."""
        if not gathered:
            return
        for source in self.plan.sources:
            for item in source.items():
                if all(getattr(sink, "full", False) for sink in gathered):
                    return
                recorded = manifest.done.get(item.key)
                if recorded:
                    for sink in gathered:
                        sink.skip(item, [manifest.root / r for r in recorded])

    def _join(self, video: VideoSink, segments: list[Segment], manifest: Any) -> list[Path]:
        """One video per input from its segment files; a source with a missing segment is a
        failure of a partial run (exit 3), its finished segments kept for the rerun."""
        from .video.segments import join

        joined: list[Path] = []
        for index, source in enumerate(self.plan.sources):
            mine = [s for s in segments if s.source_index == index]
            if not mine:
                continue
            final = video.ctx.path(video.options.path, mine[0].items[0])
            missing = [s.task.label for s in mine
                       if manifest.status(s.task.key, [Path(s.task.segment_file)]) != "done"]
            if missing:
                self.report.failed("output.video", "", f"video {final.name} not written: segment(s) "
                                   f"{', '.join(missing)} did not finish (failed or missing frames; see the report's "
                                   "failures)")
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            audio_from, start, codec = self._audio(video, source, final)
            join([Path(s.task.segment_file) for s in mine], final, audio_from, start, codec)
            joined.append(final)
        return joined

    def _audio(self, video: VideoSink, source: Any, final: Path) -> tuple[Path | None, float, str | None]:
        """The frame-mode sink's audio rule: copy when the whole video was read and the container
        takes the codec, re-encode for ranges (exact cut) or containers that need it."""
        meta = (source.item_meta() if isinstance(source, VideoSource) else {}).get("video", {})
        if video.options.audio == "none" or not meta.get("audio"):
            return None, 0.0, None
        fmt = container(final)
        allowed = AUDIO_OK.get(fmt)
        fits = allowed is None or meta["audio"] in allowed
        copy = video.options.audio == "copy" or (video.options.audio == "auto" and fits and meta.get("whole"))
        return Path(meta["path"]), meta.get("start", 0.0), "copy" if copy else ("libopus" if fmt == "webm" else "aac")


def _as_warmup(item: Item) -> Item:
    from dataclasses import replace

    return replace(item, meta={**item.meta, WARMUP_META: True})
