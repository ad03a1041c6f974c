"""Plan: a validated workflow with every name resolved to a plugin class and its options.

Building the plan does all checking that can happen before any pixel is touched: step names,
step options, input sources (globs that match nothing), output patterns and sink options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import StylefarmError
from .executors.base import StepCall
from .host import BUILTIN_DISTRIBUTION, PluginHost, get_host
from .images import check_picture
from .item import Item
from .naming import check_template, confine, render, static_root
from .sources import Source
from .workflow import LoadedYaml, Workflow, validate_workflow, validation_error


@dataclass
class Plan:
    doc: LoadedYaml
    workflow: Workflow
    base_dir: Path
    root: Path
    sources: list[Source]
    chain: list[StepCall]
    sinks: list[tuple[type, Any]] = field(default_factory=list)  # (Sink class, options)
    counts: list[int | None] = field(default_factory=list)
    relay: bool = False  # one process per input decodes and encodes: no pixel reaches us (`_relay`)

    @property
    def step_label(self) -> str:
        return self.chain[-1].name if self.chain else "copy"

    @property
    def generated(self) -> set[int]:
        """Indices of the inputs whose pixels a generator step makes."""
        return {call.generates for call in self.chain if call.generates is not None}


def _validate(doc: LoadedYaml, model: type, data: Any, prefix: tuple, base_dir: Path | None = None,
              check_files: bool = False) -> Any:
    """`check_files`: the options' input files (`stylefarm.step.InputPath`) must exist."""
    context = {"base_dir": base_dir, "check_files": check_files} if base_dir else None
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(doc, exc, prefix) from None


def _steps(doc: LoadedYaml, wf: Workflow, host: PluginHost, base_dir: Path, check_files: bool = False
           ) -> list[StepCall]:
    chain = []
    for i, spec in enumerate(wf.steps):
        if spec.use not in host.steps:
            raise doc.error(("steps", i, "use"), host.unknown_step_message(spec.use))
        cls = host.steps[spec.use].obj
        options = _validate(doc, cls.Options, spec.with_, ("steps", i, "with"), base_dir, check_files)
        temporal = None
        if spec.temporal is not None:
            from .temporal import TemporalOptions

            temporal = _validate(doc, TemporalOptions, spec.temporal, ("steps", i, "temporal"), base_dir)
            temporal = None if temporal.mode == "off" else temporal
        chain.append(StepCall(spec.id or spec.use, cls, options, spec.input == "original", spec.save, temporal))
    names = [call.name for call in chain]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            raise doc.error(("steps", i), f"step name {name!r} is used twice; give one of them an `id:`")
    return chain


def _sources(doc: LoadedYaml, wf: Workflow, host: PluginHost, base_dir: Path) -> tuple[list[Source], list]:
    sources, counts = [], []
    earlier = _earlier_outputs(static_root(wf.output.dir, base_dir))
    for i, spec in enumerate(wf.inputs):
        cls, options = _source_options(doc, host, spec.model_dump(), i)
        source = cls(options, base_dir)
        source.exclude = earlier
        try:
            counts.append(source.count())
        except StylefarmError as exc:
            raise doc.error(("inputs", i), str(exc)) from None
        sources.append(source)
    return sources, counts


def _earlier_outputs(root: Path) -> set[Path]:
    """Files earlier runs into this root recorded: not inputs, even when the root is the input folder."""
    from .manifest import Manifest

    return {(root / rel).resolve() for outputs in Manifest(root).done.values() for rel in outputs}


def _source_options(doc: LoadedYaml, host: PluginHost, raw: dict, i: int) -> tuple[type[Source], Any]:
    """The source class an `inputs:` entry is for (highest priority first) and its validated options."""
    # highest priority first; at equal priority the built-ins' (a plugin's `key = "glob"` source
    # must not take over every `glob:` input)
    ordered = sorted(host.sources.values(),
                     key=lambda p: (-p.obj.priority, p.plugin.distribution != BUILTIN_DISTRIBUTION))
    cls = next((p.obj for p in ordered if p.obj.accepts(raw)), None)
    if cls is None:
        kinds = ", ".join(sorted(host.sources))
        raise doc.error(("inputs", i), f"no source accepts this input (keys {sorted(raw)}); sources: {kinds}")
    return cls, _validate(doc, cls.Options, raw, ("inputs", i))


def validate_document(doc: LoadedYaml, base_dir: Path, host: PluginHost | None = None) -> Workflow:
    """Every check of `build_plan` that needs no input file: the workflow, each step's options,
    each input's and sink's options. What the schema promises is tested against this."""
    host = host or get_host()
    wf = validate_workflow(doc)
    _steps(doc, wf, host, base_dir)
    _sinks(doc, wf, host, static_root(wf.output.dir, base_dir), base_dir)
    for i, spec in enumerate(wf.inputs):
        _source_options(doc, host, spec.model_dump(), i)
    return wf


def _sinks(doc: LoadedYaml, wf: Workflow, host: PluginHost, root: Path, base_dir: Path) -> list:
    out = wf.output
    probe = Item(source=str(base_dir / "sample.png"), index=0, frame=1)

    def check(loc: tuple, template: str, name: str) -> None:
        try:
            check_template(template)
            confine(root, base_dir / render(out.dir, probe, "step") / render(name, probe, "step"))
        except (ValueError, StylefarmError) as exc:
            raise doc.error(loc, str(exc)) from None

    for key, template, name in (("dir", out.dir, "x.png"), ("pattern", out.pattern, out.pattern)):
        if template is not None:
            check(("output", key), template, name)
    if out.pattern and Path(out.pattern).suffix.lower() in CONTAINER_SUFFIXES:
        raise doc.error(("output", "pattern"), f"{Path(out.pattern).suffix} is a video container, but output.pattern "
                        "names one picture per item; write video with output.video: {path: ...} (and give "
                        "output.pattern a picture suffix such as .png, or set output.images: false)")
    if out.images:
        try:
            check_picture(out.pattern or "default.png", out.bit_depth)
        except ValueError as exc:
            raise doc.error(("output", "pattern" if out.pattern else "bit_depth"), str(exc)) from None
    if any(s.save for s in wf.steps) and "{step" not in (out.pattern or "{step}"):
        raise doc.error(("output", "pattern"), "steps with `save: true` need {step} in the pattern")
    sinks: list = [(host.sinks["images"].obj, None)] if out.images else []
    for key, value in (out.model_extra or {}).items():
        if key not in host.sinks or key == "images":
            avail = ", ".join(sorted(k for k in host.sinks if k != "images"))
            raise doc.error(("output", key), f"unknown output field; sinks from plugins: {avail}")
        if value is False:
            continue
        cls = host.sinks[key].obj
        options = _validate(doc, cls.Options, {} if value is True else value, ("output", key))
        for name in ("path", "pattern"):  # a sink's file name templates (video path, frames pattern ...)
            template = getattr(options, name, None)
            if isinstance(template, str):
                check(("output", key, name), template, template)
        sinks.append((cls, options))
    return sinks


CONTAINER_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".mpg", ".mpeg", ".gif"}
PER_ITEM_FIELDS = ("{frame", "{index")
MAX_LISTED = 200_000  # inputs listed for the collision check; beyond, the run-time guard alone holds


def _collisions(doc: LoadedYaml, plan: Plan) -> None:
    """Two items must never be written to one path: checked before anything runs."""
    out = plan.workflow.output
    from .sinks import OutputContext

    ctx = OutputContext(plan.root, plan.base_dir, out, plan.step_label)
    _video_over_input(doc, plan, ctx)
    _audio_copy_fits(doc, plan)
    _frames_apart(doc, plan)
    _sheet_apart(doc, plan, ctx, _item_files(doc, plan, ctx) if out.images else {})


def _frames_apart(doc: LoadedYaml, plan: Plan) -> None:
    """`output.frames.pattern` names one file per frame: without a frame field every frame of a
    video would go to one file (each item failed at run time, blaming output.pattern)."""
    for cls, options in plan.sinks:
        pattern = getattr(options, "pattern", None) if cls.key == "frames" else None
        if not isinstance(pattern, str) or any(f in pattern for f in PER_ITEM_FIELDS):
            continue
        for i, (source, count) in enumerate(zip(plan.sources, plan.counts)):
            if source.key != "images" and (count is None or count > 1):
                raise doc.error(("output", "frames", "pattern"), f"{pattern!r} gives every frame of inputs[{i}] "
                                f"({source.describe()}) the same file; add {{frame:04d}} (or ####), e.g. "
                                f"{_with_frame(pattern)!r}")


def _item_files(doc: LoadedYaml, plan: Plan, ctx) -> dict[Path, str]:
    """The images sink's file of every still item (and of its saved stages), each checked against
    the inputs and the others; frame items' patterns are checked for their frame field."""
    out = plan.workflow.output
    from .sinks import default_pattern

    seen: dict[Path, str] = {}
    _picture_per_input(doc, plan)
    if out.pattern and not any(f in out.pattern for f in PER_ITEM_FIELDS):
        for i, (source, count) in enumerate(zip(plan.sources, plan.counts)):
            if source.key != "images" and (count is None or count > 1):
                raise doc.error(("output", "pattern"), f"{out.pattern!r} gives every frame of inputs[{i}] "
                                f"({source.describe()}) the same file; add {{frame:04d}} to the pattern, "
                                f"e.g. {_with_frame(out.pattern)!r}")
    if sum(c or 0 for c in plan.counts) > MAX_LISTED:
        return seen
    items = [item for source in plan.sources if source.key == "images" for item in source.items()]
    inputs = {Path(item.source).resolve(): item.source for item in items}
    for item in items:
        path = ctx.path(out.pattern or default_pattern(item), item)
        if path in inputs:
            raise doc.error(("output", "pattern") if out.pattern else ("output", "dir"),
                            f"{inputs[path]} would be overwritten by its own output: inputs are never written; "
                            "give output.dir another folder or the pattern a suffix such as {input.stem}_out.png")
        if path in seen:
            field = "output.pattern" if out.pattern else "output.pattern (default '{input.stem}.png')"
            raise doc.error(("output", "pattern") if out.pattern else ("output",),
                            f"{seen[path]} and {item.source} would both be written to {path}; "
                            f"tell them apart in {field}, e.g. with {{input.rel}}/ or {{input.name}}")
        seen[path] = item.source
        for stage in (call.name for call in plan.chain[:-1] if call.save):
            seen.setdefault(ctx.path(out.pattern or default_pattern(item), item, stage), item.source)
    return seen


def _sheet_apart(doc: LoadedYaml, plan: Plan, ctx, written: dict[Path, str]) -> None:
    """The contact sheet is one file for the whole job: no item's file may have its name (the
    sheet overwrote it at the end of the run, and resume, finding the file, never redid the item).
    `written`: the still items' files; frame files are tried at the frame numbers the name holds."""
    from .sinks import default_pattern

    sheet = next((options for cls, options in plan.sinks if cls.key == "sheet"), None)
    if sheet is None:
        return
    path = confine(plan.root, plan.root / sheet.path)
    owner = written.get(path)
    patterns = [options.pattern for cls, options in plan.sinks if cls.key == "frames"]
    if plan.workflow.output.images:
        patterns.append(plan.workflow.output.pattern)
    for source in plan.sources:
        for number in (int(n) for n in re.findall(r"\d+", path.name)) if owner is None else ():
            item = _frame_item(plan, source, number)
            if item is not None and any(ctx.path(p or default_pattern(item), item) == path for p in patterns):
                owner = f"{item.source} frame {number}"
    if owner is not None:
        raise doc.error(("output", "sheet", "path"), f"{sheet.path!r} is also the file of {owner}: the contact "
                        "sheet would overwrite it; give the sheet another name, e.g. contact_sheet.png")


def _frame_item(plan: Plan, source: Source, number: int) -> Item | None:
    """The item a video or generated input makes for frame `number` (names only, no pixels)."""
    path = getattr(source.options, "path", None)
    if source.key == "video" and isinstance(path, str):
        start = getattr(source.options, "start_number", 0)
        return Item(source=str((plan.base_dir / path).resolve()), index=number - start, frame=number)
    generate = getattr(source.options, "generate", None)
    return Item(source=generate, index=number, frame=number) if isinstance(generate, str) else None


def _video_over_input(doc: LoadedYaml, plan: Plan, ctx) -> None:
    video = (plan.workflow.output.model_extra or {}).get("video")
    if not (isinstance(video, dict) and isinstance(video.get("path"), str)):
        return
    for source in plan.sources:
        path = getattr(source.options, "path", None)
        if isinstance(path, str):
            item = Item(source=str((plan.base_dir / path).resolve()), index=0, frame=0)
            if ctx.path(video["path"], item) == Path(item.source):
                raise doc.error(("output", "video", "path"), f"{path} would be overwritten by its own output video: "
                                "inputs are never written; give the video another name or folder")


def _audio_copy_fits(doc: LoadedYaml, plan: Plan) -> None:
    """`audio: copy` into a container that cannot hold the source's audio is refused here, with the
    way out: ffmpeg would say so only at the first frame, after the models loaded."""
    video = (plan.workflow.output.model_extra or {}).get("video")
    if not (isinstance(video, dict) and video.get("audio") == "copy" and isinstance(video.get("path"), str)):
        return
    from .video.encode import CONTAINERS, holds_audio

    suffix = Path(video["path"]).suffix.lower()
    fmt = CONTAINERS.get(suffix)
    for i, source in enumerate(plan.sources):
        codec = getattr(getattr(source, "info", None), "audio_codec", None)
        if fmt and isinstance(codec, str) and not holds_audio(fmt, codec):
            fits = ", ".join(s for s, f in CONTAINERS.items() if holds_audio(f, codec))
            raise doc.error(("output", "video", "audio"), f"a {suffix} file cannot hold the {codec} audio of "
                            f"inputs[{i}] ({source.options.path}) as a copy: use audio: auto or encode "
                            f"(re-encoded), or give path a {fits} suffix")


def _picture_per_input(doc: LoadedYaml, plan: Plan) -> None:
    """A pattern that takes the input's suffix (`{input.suffix}`, `{input.name}`) names pictures
    only for picture inputs: a video input's frames would go to `.mp4` files."""
    pattern = plan.workflow.output.pattern
    if not (pattern and pattern.endswith(("{input.suffix}", "{input.name}"))):
        return
    for i, source in enumerate(plan.sources):
        path = getattr(source.options, "path", None)
        if isinstance(path, str):
            try:
                check_picture(render(pattern, Item(source=path, index=0, frame=0), "step"))
            except ValueError as exc:
                raise doc.error(("output", "pattern"), f"for inputs[{i}] ({path}): {exc}") from None


def _with_frame(pattern: str) -> str:
    """The pattern with {frame:04d} before its suffix, never inside a naming field."""
    if pattern.endswith("{input.name}"):  # the name holds the suffix: split it
        return pattern.removesuffix("{input.name}") + "{input.stem}.{frame:04d}.{input.suffix}"
    if pattern.endswith("{input.suffix}"):
        return pattern.removesuffix("{input.suffix}").removesuffix(".") + ".{frame:04d}.{input.suffix}"
    dot = pattern.rfind(".")
    if dot > pattern.rfind("}"):
        return f"{pattern[:dot]}.{{frame:04d}}{pattern[dot:]}"
    return f"{pattern}.{{frame:04d}}"


def build_plan(doc: LoadedYaml, base_dir: Path, host: PluginHost | None = None) -> Plan:
    host = host or get_host()
    wf = validate_workflow(doc)
    chain = _steps(doc, wf, host, base_dir, check_files=True)
    root = static_root(wf.output.dir, base_dir)
    sinks = _sinks(doc, wf, host, root, base_dir)
    sources, counts = _sources(doc, wf, host, base_dir)
    plan = Plan(doc, wf, base_dir, root, sources, _generators(sources) + chain, sinks, counts)
    _collisions(doc, plan)
    _frame_layout(plan)
    return plan


def _frame_layout(plan: Plan, layout: str = "yuv420p") -> None:
    """Offer the sources the decoder's own frame format when every step and sink takes it as it
    is (plain steps: no host `temporal:` filter, saved stage or original input, which need RGB),
    so an identity or resize transcode never converts colours (`stylefarm.video.yuv`)."""
    steps = all(layout in call.cls.pixel_types and call.temporal is None and not call.save
                and not call.from_original and call.generates is None for call in plan.chain)
    if steps and plan.sinks and all(cls.takes_layout(options, layout) for cls, options in plan.sinks):
        for source in plan.sources:
            source.offer_layout(layout)
        _resize_in_decoder(plan)
        _relay(plan)


def _relay(plan: Plan) -> None:
    """Relay when nothing needs the pixels: no step left to run (none, or a resize the decoders
    do), one output that can take it (a video) and every input able to (decoded as it is stored,
    numbered by time). Then no frame crosses a pipe: a 60 s 720p identity transcode went from
    0.81x to 0.93x of ffmpeg alone (benchmarks/README.md, "Relayed transcodes")."""
    sinks_ok = len(plan.sinks) == 1 and plan.sinks[0][0].relays(plan.sinks[0][1])
    if sinks_ok and plan.sources and all(call.in_decoder for call in plan.chain):
        plan.relay = all([source.offer_relay() for source in plan.sources])


def _resize_in_decoder(plan: Plan) -> None:
    """Let the decoders do a leading downscale (`Step.decoder_size`) when every source can and the
    step says so for each one's size: full-size frames then never cross the pipe."""
    if not plan.chain or not plan.sources:
        return
    first = plan.chain[0]
    sizes = [source.decoder_frames() for source in plan.sources]
    targets = [None if size is None else first.cls.decoder_size(first.options, *size) for size in sizes]
    if any(target is None for target in targets):
        return
    for source, (width, height) in zip(plan.sources, targets):
        source.scale_in_decoder(width, height)
    first.in_decoder = True


def _generators(sources: list[Source]) -> list[StepCall]:
    """Steps that make generated inputs' pixels, run first wherever the chain runs."""
    made = [(i, gen) for i, source in enumerate(sources) if (gen := source.generator()) is not None]
    return [StepCall(cls.name if len(made) == 1 else f"{cls.name}#{i}", cls, options, generates=i)
            for i, (cls, options) in made]
