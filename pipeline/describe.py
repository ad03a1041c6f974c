"""Human-readable plan for `stylefarm run --dry-run`."""

from __future__ import annotations

from .manifest import Manifest
from .plan import Plan


def describe_plan(plan: Plan, force: bool = False) -> str:
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
    done = 0 if force else len(Manifest(plan.root).done)
    lines.append(f"  already finished (resume skips them): {done}")
    ex = wf.execution
    lines.append(f"execution: backend={ex.backend} device={ex.device} batch_size={ex.batch_size} "
                 f"actors={ex.actors} gpus_per_actor={ex.gpus_per_actor}")
    from .segment_run import segment_unit

    unit = segment_unit(plan, None)
    detail = f" of {ex.segment_frames} frames, decoded and written by the workers" if unit == "segment" else \
        ", relayed: one ffmpeg per video decodes and encodes (no step or other output needs the pixels)" \
        if plan.relay else ""
    probe = " (if the workers see the files)" if unit == "segment" and ex.unit == "auto" else ""
    lines.append(f"  unit: {unit}{detail}{probe} [execution.unit={ex.unit}]")
    return "\n".join(lines)
