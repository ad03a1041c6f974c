"""Human-readable plan for `stylefarm run --dry-run`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .item import Item
from .manifest import Manifest, Redo, redo_lines
from .plan import Plan
from .sources import Source

if TYPE_CHECKING:
    from .runner import Run


def describe_plan(plan: Plan, force: bool = False, run: Run | None = None) -> str:
    """`run`: the Run the same command would execute (its --shard / --frames selection)."""
    wf = plan.workflow
    lines = [f"workflow: {plan.doc.filename}", "inputs:"]
    for source, count in zip(plan.sources, plan.counts):
        lines.append(f"  - {source.describe()}  ({count if count is not None else '?'} items)")
    lines.append("steps:" if plan.chain else "steps: none (copy inputs to outputs)")
    for call in plan.chain:
        opts = call.options.model_dump(exclude_defaults=True)
        lines.append(f"  - {call.name} ({call.cls.kind}) {opts if opts else ''}".rstrip())
    lines.append(f"output: {plan.root}  dir={wf.output.dir!r} pattern={wf.output.pattern!r}")
    lines.append("  sinks: " + ", ".join(cls.key for cls, _ in plan.sinks))
    if run is None:
        from .runner import Run

        run = Run(plan, force=force, progress=False)
    lines += ["  " + line for line in resume_preview(run)]
    ex = wf.execution
    lines.append(f"execution: backend={ex.backend} device={ex.device} batch_size={ex.batch_size} "
                 f"actors={ex.actors} gpus_per_actor={ex.gpus_per_actor}")
    from .segment_run import segment_unit

    unit = segment_unit(plan, run.item_filter)
    detail = f" of {ex.segment_frames} frames, decoded and written by the workers" if unit == "segment" else \
        ", relayed: one ffmpeg per video decodes and encodes (no step or other output needs the pixels)" \
        if plan.relay and run.item_filter is None else ""
    probe = " (if the workers see the files)" if unit == "segment" and ex.unit == "auto" else ""
    lines.append(f"  unit: {unit}{detail}{probe} [execution.unit={ex.unit}]")
    return "\n".join(lines)


def resume_preview(run: Run) -> list[str]:
    """What `run` would do with each item, decided as it decides (its selection, its sinks'
    planned files, `Manifest.status` with its recipe), without reading a pixel or writing a file."""
    from .recipe import Recipe
    from .runner import recipe_output

    plan = run.plan
    manifest = Manifest(plan.root, fresh=run.force, recipe=Recipe(plan.chain, recipe_output(plan)))
    sinks = run._make_sinks()
    redo, states = Redo(), Counter()
    for index, source in enumerate(plan.sources):
        for item in _items(source):
            if run.item_filter is not None and not run.item_filter(index, item):
                states["elsewhere"] += 1
                continue
            planned = [p for sink in sinks for p in sink.planned(item)]
            state = manifest.status(item.key, planned) if planned else "todo"
            if state == "changed":
                redo.note(manifest, item.key)
            states[state] += 1
    selected = states["done"] + states["changed"] + states["todo"]
    lines = [f"items: {selected}" + (f" selected ({states['elsewhere']} left to other tasks)"
                                     if run.item_filter is not None else ""),
             f"already finished (resume skips them): {states['done']}",
             f"to do: {states['todo'] + states['changed']}"
             + (f" ({states['changed']} of them redone, why below)" if states["changed"] else "")]
    return lines + redo_lines(redo.summary())


def _items(source: Source) -> Iterator[Item]:
    """A source's items as the run sees them; a video's without decoding it (as its segments do)."""
    from .video.source import VideoSource

    if not isinstance(source, VideoSource):
        yield from source.items()  # image files and sequences defer their decoding
        return
    (lo, hi), meta = source.span, source.item_meta()
    for index in range(lo, hi + 1):
        yield source.frame_item(index, meta=meta)
