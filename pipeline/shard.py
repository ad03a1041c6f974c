"""Render-farm sharding: split one job into tasks a farm manager runs independently.

`--shard I/N` (1-based, I in 1..N) keeps a contiguous run of the job's items, in workflow
order: shard k holds items p (counting every input's items in order, p < T) with
(k-1)*T//N <= p < k*T//N.
Contiguous shards keep video frames together (one segment per task). When an input cannot say
how many items it has, items are dealt round-robin (p mod N) instead: still a partition.
Every task computes the same split from the same inputs, so the union of all shards is the
whole job with no overlap (as long as inputs do not change while the farm runs).
`--frames 1001-1100,1200` keeps items whose frame number is in the ranges (stills have none).
A shard is a part of a job: it leaves the outputs made from the whole job (video, contact
sheet) to the final run without --shard (`final_task`), which resumes every shard's items.
A `--frames` run is what the user asked for: its video holds exactly those frames.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from .errors import WorkflowError
from .item import Item
from .ranges import holds, ranges_text

ItemFilter = Callable[[int, Item], bool]


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'3/10' -> Shard(3, 10); errors say what is expected."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise WorkflowError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 3/10")
    return Shard(int(match[1]), int(match[2]))


def parse_frames(text: str) -> list[tuple[int, int]]:
    """'1001-1100,1200' -> [(1001, 1100), (1200, 1200)] (inclusive ranges)."""
    ranges = []
    for part in (text or "").split(","):
        match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
        if not match:
            raise WorkflowError(f"--frames {text!r}: expected ranges like 1001-1100 or 1001-1100,1200")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if last < first:
            raise WorkflowError(f"--frames {part.strip()!r}: the range ends before it starts")
        ranges.append((first, last))
    return ranges


def shard_of(position: int, total: int | None, count: int) -> int:
    """1-based shard of the item at `position` (0-based) among `total` items."""
    if total:  # the largest k with k * total // count <= position (same bounds as shard_sizes)
        return ((position + 1) * count - 1) // total + 1
    return position % count + 1


class ItemSelection:
    """A `Run(item_filter=...)` predicate; it sees every item of the job once, in order, and
    remembers the frame numbers it saw, so a range past the clip's end can say what exists."""

    def __init__(self, shard: Shard | None, frames: list[tuple[int, int]] | None, total: int | None):
        self.shard, self.frames, self.total = shard, frames, total
        self.position = self.kept = 0
        self.seen: tuple[int, int] | None = None  # lowest and highest frame number of the inputs

    def __call__(self, source_index: int, item: Item) -> bool:
        if item.frame is not None:
            low, high = self.seen or (item.frame, item.frame)
            self.seen = (min(low, item.frame), max(high, item.frame))
        if self.frames and not holds(self.frames, item.frame):
            return False
        mine = self.shard is None or shard_of(self.position, self.total, self.shard.count) == self.shard.index
        self.position += 1
        self.kept += mine
        return mine

    def nothing_selected(self) -> str | None:
        """The warning for `--frames` that matched no item, naming the frames the inputs have."""
        if not self.frames or self.position:
            return None
        have = f"frames {self.seen[0]}-{self.seen[1]}" if self.seen else "no numbered frames (stills)"
        return f"--frames {ranges_text(self.frames)} selects nothing: the inputs have {have}"


def make_filter(shard: Shard | None = None, frames: list[tuple[int, int]] | None = None,
                total: int | None = None) -> ItemSelection | None:
    if shard is None and not frames:
        return None
    return ItemSelection(shard, frames, total)


def known_total(counts: list[int | None]) -> int | None:
    """Sum of the inputs' item counts, or None when one of them cannot say."""
    return None if not counts or None in counts else sum(counts)  # type: ignore[arg-type]


def selected_total(counts: list[int | None], sources: list, frames: list[tuple[int, int]] | None) -> int | None:
    """Items the job has after `--frames`; with frames this walks the inputs (no pixels decoded
    by lazy sources) so that shards of a frame range are balanced."""
    if not frames:
        return known_total(counts)
    return sum(1 for source in sources for item in source.items() if holds(frames, item.frame))


def shard_sizes(total: int | None, count: int) -> list[int | None]:
    """How many items each of `count` shards gets (None when the total is unknown)."""
    if total is None:
        return [None] * count
    return [(i + 1) * total // count - i * total // count for i in range(count)]


def farm_tasks(workflow: str, total: int | None, chunks: int, run_args: list[str]) -> list[dict]:
    """One task per shard, each with the exact `stylefarm run` argv a farm submitter runs."""
    tasks = []
    for i, size in enumerate(shard_sizes(total, chunks), start=1):
        argv = ["stylefarm", "run", workflow, *run_args, "--shard", f"{i}/{chunks}", "--no-progress"]
        tasks.append({"task": i, "shard": f"{i}/{chunks}", "items": size, "argv": argv,
                      "command": shlex.join(argv)})
    return tasks


def final_task(workflow: str, run_args: list[str], aggregates: list[str]) -> dict | None:
    """The run after every shard has finished: without --shard it resumes their items and feeds
    their files to the outputs that need the whole job (video, contact sheet), which the shards
    leave alone. None when the workflow has no such output."""
    if not aggregates:
        return None
    argv = ["stylefarm", "run", workflow, *run_args, "--no-progress"]
    return {"after": "every task", "makes": [f"output.{key}" for key in aggregates], "argv": argv,
            "command": shlex.join(argv)}


def report_name(shard: Shard | None, frames_text: str | None) -> str | None:
    """A report file of its own per farm task, so parallel tasks do not overwrite each other's."""
    parts = []
    if frames_text:
        parts.append("frames-" + re.sub(r"[^0-9-]+", "_", frames_text))
    if shard:
        parts.append(f"shard-{shard.index}-of-{shard.count}")
    return f"report.{'.'.join(parts)}.json" if parts else None
