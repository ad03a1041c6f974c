"""The format-neutral farm job every exporter writes: what a task runs, how work is split.

A job has one or two steps:
- **stylize**: many tasks, each a plain `stylefarm run WF --frames A-B` (items with frame
  numbers: videos, sequences, generators) or `--shard I/N` (stills). Aggregate outputs (video,
  contact sheet: sinks that plan no per-item file) are switched off in these tasks
  (`--set output.video=false`), so a task never writes half a video;
- **assemble** (only when the workflow has aggregate outputs; called "encode" for video): one
  task, the same `stylefarm run WF` without a frame filter. Resume skips every item the
  stylize tasks recorded and feeds their frame images into the video / sheet sinks, so the
  aggregates come out as a single local run makes them.
A video whose workflow writes no per-frame images gets a frame sequence under
`.stylefarm/farm-frames/` (the tasks' hand-over to the encode step).
Re-queued tasks resume (skip recorded outputs); exit code 3 (some items failed) fails the task.
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WorkflowError
from ..manifest import STATE_DIR
from ..plan import Plan
from ..ranges import holds, merge, ranges_text
from ..runner import probe_item
from ..shard import parse_frames
from ..sinks import OutputContext, is_aggregate

HANDOVER_PATTERN = f"{STATE_DIR}/farm-frames/{{input.stem}}/{{input.stem}}.{{frame:06d}}.png"


@dataclass
class FarmJob:
    """Everything an exporter needs; paths are absolute so the job runs from any directory."""

    name: str
    workflow: Path
    stylefarm: str  # the executable each task runs
    output_dir: Path | None  # passed as --output (None: output.dir is a template, left to the workflow)
    run_args: list[str]  # --set ... shared by every task
    task_args: list[str]  # extra args of stylize tasks only (aggregates off, hand-over frames)
    frames: list[tuple[int, int]] | None  # frame-number ranges (frame mode) or None (shard mode)
    items: int  # items the job has (after --frames)
    chunk_size: int  # frames per task (frame mode) / items per shard (shard mode)
    shards: int  # number of stylize tasks
    gpu: bool
    assemble: str | None  # "encode", "assemble" or None: the dependent final step
    timeout: int | None = None  # seconds per task
    retries: int = 2  # farm retries per task
    priority: int = 50
    aggregates: list[str] = field(default_factory=list)
    seek_input: int | None = None  # the one video input: tasks also narrow its `frames:` (no decode before)
    holes: bool = False  # --frames left out frames that exist between selected ones
    selection: str | None = None  # the export's --frames: the final step keeps to it as well

    def refuse_holes(self, fmt: str) -> None:
        """Deadline 10 / OpenCue chunks are runs of the frame list: a chunk spanning a left-out
        stretch would render it (`--frames A-B` covers the gap). OpenJD's chunks stop at gaps."""
        if self.holes:
            raise WorkflowError(f"{fmt}: --frames {self.frames_text} leaves out frames between the selected ones; "
                                f"a {fmt} chunk could span them: export each range on its own, or use openjd")

    @property
    def frames_text(self) -> str:
        return ranges_text(self.frames or [])

    def chunks(self) -> list[tuple[int, int]]:
        """Ranges of at most `chunk_size` frames, never across a gap (as OpenJD's CONTIGUOUS chunks)."""
        size = self.chunk_size
        return [(s, min(s + size - 1, b)) for a, b in self.frames or [] for s in range(a, b + 1, size)]

    def base_argv(self) -> list[str]:
        """`stylefarm run WF [--output DIR] [--set ...]` (both steps start with this)."""
        out = ["--output", str(self.output_dir)] if self.output_dir else []
        return [self.stylefarm, "run", str(self.workflow), *out, *self.run_args]

    def frame_selector(self, token: str) -> list[str]:
        """Task args selecting the frame range `token` (the farm's placeholder for "A-B")."""
        seek = ["--set", f"inputs.{self.seek_input}.frames={token}"] if self.seek_input is not None else []
        return [*seek, "--frames", token]

    def stylize_argv(self, selector: list[str]) -> list[str]:
        return [*self.base_argv(), *self.task_args, *selector, "--no-progress"]

    def assemble_argv(self, frames_token: str | None = None) -> list[str]:
        """The final step; `frames_token` (a farm parameter) or the export's --frames restrict it."""
        token = frames_token or (self.frames_text if self.selection else None)
        return [*self.base_argv(), *(["--frames", token] if token else []), "--no-progress"]


def default_stylefarm() -> str:
    """The executable that is running now (absolute), so the farm job uses the same install."""
    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("stylefarm") and argv0.is_file():
        return str(argv0.resolve())
    return shutil.which("stylefarm") or "stylefarm"


def _frame_numbers(source) -> list[int | None]:
    """Frame numbers of a source's items without decoding a video."""
    from ..video.source import VideoSource

    if isinstance(source, VideoSource):
        lo, hi = source.span
        first = source.options.start_number
        return list(range(first + lo, first + hi + 1))
    return [item.frame for item in source.items()]


def compress(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted unique numbers -> inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    return merge((n, n) for n in numbers)


def aggregate_sinks(plan: Plan, probe=None) -> list[str]:
    """Output keys whose sink writes no per-item file (video, sheet): they need the whole job."""
    probe = probe or probe_item(plan)
    stages = tuple(call.name for call in plan.chain[:-1] if call.save)
    ctx = OutputContext(plan.root, plan.base_dir, plan.workflow.output, plan.step_label, stages)
    return [cls.key for cls, options in plan.sinks if is_aggregate(cls(options, ctx), probe)]


def _seek_input(plan: Plan) -> int | None:
    """A lone video input lets each task decode only its own range (`inputs.0.frames`); not with
    temporal steps, which need the frames before a range as warm-up."""
    from ..video.source import VideoSource

    if len(plan.sources) == 1 and isinstance(plan.sources[0], VideoSource):
        if not any(call.is_temporal for call in plan.chain):
            return 0
    return None


def _has_holes(available: list, kept: list[int]) -> bool:
    """Frames that exist between the first and last kept one but were left out by --frames."""
    lo, hi = min(kept), max(kept)
    return any(n is not None and lo <= n <= hi for n in set(available) - set(kept))


def wants_gpu(plan: Plan) -> bool:
    ex = plan.workflow.execution
    return ex.device.startswith("cuda") or ex.gpus_per_actor > 0


def _split(total: int, chunk_size: int | None, chunks: int | None) -> int:
    """Chunk size from --chunk-size or --chunks (default 10 items per task)."""
    if chunk_size is not None and chunks is not None:
        raise WorkflowError("give only one of --chunks N or --chunk-size N")
    if chunks is not None:
        return max(1, math.ceil(total / chunks))
    return chunk_size or 10


def build_job(plan: Plan, workflow: Path, sets: tuple[str, ...] = (), chunk_size: int | None = None,
              chunks: int | None = None, frames: str | None = None, **extra) -> FarmJob:
    """Analyse a plan into a FarmJob (frame or shard mode, aggregates, GPU)."""
    available = [n for source in plan.sources for n in _frame_numbers(source)]
    selected = parse_frames(frames) if frames else None
    numbers = available
    if selected:
        numbers = [n for n in numbers if holds(selected, n)]
    if not numbers:
        raise WorkflowError(f"{workflow}: the job has no items{' in --frames ' + frames if frames else ''}")
    frame_mode = None not in numbers
    aggregates = aggregate_sinks(plan, probe_item(plan, numbers[0] if frame_mode else None))
    per_item = [cls.key for cls, options in plan.sinks if cls.key not in aggregates]
    task_args = [arg for key in aggregates for arg in ("--set", f"output.{key}=false")]
    if aggregates and not per_item:  # a video with no frame images: hand frames over in the state dir
        sets = (*sets, f"output.frames.pattern={HANDOVER_PATTERN}")
    unique = sorted(set(numbers)) if frame_mode else numbers
    size = _split(len(unique), chunk_size, chunks)
    out_dir = plan.workflow.output.dir
    run_args = [arg for s in sets for arg in ("--set", s)]
    assemble = ("encode" if "video" in aggregates else "assemble") if aggregates else None
    return FarmJob(
        name=extra.pop("name", None) or f"stylefarm {workflow.stem}", workflow=workflow.resolve(),
        stylefarm=extra.pop("stylefarm", None) or default_stylefarm(),
        output_dir=None if "{" in out_dir else plan.root, run_args=run_args, task_args=task_args,
        frames=compress(unique) if frame_mode else None, items=len(numbers), chunk_size=size,
        shards=sum(math.ceil((b - a + 1) / size) for a, b in compress(unique)) if frame_mode
        else math.ceil(len(unique) / size), gpu=wants_gpu(plan), assemble=assemble, aggregates=aggregates,
        seek_input=_seek_input(plan) if frame_mode else None,
        selection=frames, holes=frame_mode and _has_holes(available, unique),
        **{k: v for k, v in extra.items() if v is not None})


def quote(argv: list[str]) -> str:
    return shlex.join(argv)
