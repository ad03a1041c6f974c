"""The `stylefarm` command line. Errors are one line; `--debug` shows tracebacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_FATAL, EXIT_INTERRUPTED, Cancelled, StylefarmError, cancel_on_signals, first_line

log = logging.getLogger("stylefarm")


class PluginGroup(click.Group):
    """Adds commands contributed by plugins (`stylefarm_register_commands`) on demand."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        if not hasattr(self, "_cache"):
            from .host import get_host

            self._cache = {cmd.name: cmd for cmd in get_host().commands()}
        return self._cache

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugin_commands()))

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or self._plugin_commands().get(name)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stylefarm")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, log_level: str, debug: bool) -> None:
    """stylefarm: batch stylization, painting and image translation pipelines.

    \b
    Example:
      stylefarm run workflows/quickstart.yaml
      stylefarm plugins
    """
    setup_logging("debug" if debug else log_level)
    ctx.obj = {"debug": debug}


def _overrides(sets: tuple[str, ...], **flags) -> list[str]:
    mapping = {"backend": "execution.backend", "device": "execution.device",
               "batch_size": "execution.batch_size", "output": "output.dir", "address": "execution.address",
               "unit": "execution.unit"}
    out = list(sets)
    for key, value in flags.items():
        if value is not None:
            out.append(f"{mapping[key]}={value}")
    return out


workflow_arg = click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
set_option = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                          help="Override a workflow field, e.g. --set steps.0.with.alpha=0.5")


@cli.command()
@workflow_arg
@set_option
@click.option("--backend", type=click.Choice(["local", "ray", "dask"]), help="Override execution.backend.")
@click.option("--address", help="Existing Ray/Dask cluster address (execution.address).")
@click.option("--device", help="cpu | cuda | cuda:N | auto (execution.device).")
@click.option("--batch-size", type=int, help="Override execution.batch_size.")
@click.option("--unit", type=click.Choice(["auto", "frame", "segment"]),
              help="What a Ray/Dask worker gets (execution.unit): decoded frames from the driver, or frame "
                   "ranges it decodes and writes itself on shared storage (docs/distributed.md).")
@click.option("--output", "-o", help="Override output.dir (relative to the current directory).")
@click.option("--force", is_flag=True, help="Redo items already recorded in the manifest.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; run nothing.")
@click.option("--no-progress", is_flag=True, help="Log lines instead of a progress bar.")
@click.option("--shard", help="Farm task I/N: run only the I-th of N parts of the job (1-based).")
@click.option("--frames", help="Only items with these frame numbers, e.g. 1001-1100 or 1001-1050,1090.")
def run(workflow, sets, backend, address, device, batch_size, unit, output, force, dry_run, no_progress, shard,
        frames):
    """Run a workflow. Finished outputs are skipped on a rerun (resume).

    \b
    Exit codes: 0 ok, 1 fatal error, 2 invalid workflow, 3 some items failed,
    130 / 143 cancelled by SIGINT / SIGTERM (finished work kept; rerun resumes).
    Example:
      stylefarm run workflows/quickstart.yaml --set execution.batch_size=2
      stylefarm run shots.yaml --backend ray --address auto --force
      stylefarm run film.yaml --backend ray --address auto --unit segment   # workers decode + encode
      stylefarm run shots.yaml --shard 3/10 --no-progress    # one render-farm task
    """
    from .api import load_workflow

    if output is not None:  # -o is a path the user typed in this shell: relative to the cwd
        output = str(Path(output).expanduser().resolve())
    plan = load_workflow(workflow, _overrides(sets, backend=backend, device=device, batch_size=batch_size,
                                              output=output, address=address, unit=unit))
    if dry_run:  # the Run this command would execute says what it would skip, redo and why
        from .describe import describe_plan

        click.echo(describe_plan(plan, force, _farm_run(plan, force, False, shard, frames)))
        return
    runner = _farm_run(plan, force, not no_progress, shard, frames)
    cancel_on_signals()
    report = runner.execute()
    warning = runner.item_filter.nothing_selected() if runner.item_filter else None
    if warning:
        log.warning("%s", warning)
    counts = report["counts"]
    click.echo(f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} "
               f"in {report['seconds']:.1f}s; report: {runner.report_path}")
    from .manifest import redo_lines

    for line in redo_lines(report.get("redone")):
        click.echo(line)
    for failure in report["failures"][:10]:
        click.echo(f"failed: {failure['item']}: {failure['error']}", err=True)
    sys.exit(runner.exit_code)


def _farm_run(plan, force: bool, progress: bool, shard_text: str | None, frames_text: str | None):
    """A Run restricted to one shard and/or frame ranges, with a report file of its own."""
    from .manifest import STATE_DIR
    from .runner import Run
    from .shard import make_filter, parse_frames, parse_shard, report_name, selected_total

    shard = parse_shard(shard_text) if shard_text else None
    frames = parse_frames(frames_text) if frames_text else None
    total = selected_total(plan.counts, plan.sources, frames) if shard else None
    name = report_name(shard, frames_text)
    report = plan.root / STATE_DIR / name if name else None
    return Run(plan, force=force, progress=progress, report_path=report,
               item_filter=make_filter(shard, frames, total))


@cli.command("plan")
@workflow_arg
@set_option
@click.option("--chunks", type=click.IntRange(min=1), help="Number of farm tasks.")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Items per task (instead of --chunks).")
@click.option("--frames", help="Restrict every task to these frame numbers, e.g. 1001-1100.")
@click.option("--backend", type=click.Choice(["local", "ray", "dask"]), help="Backend each task uses.")
@click.option("--address", help="Ray/Dask cluster address each task joins.")
def plan_command(workflow, sets, chunks, chunk_size, frames, backend, address):
    """Print the render-farm task list (JSON): one `stylefarm run ... --shard I/N` per task, and
    the `final` run (after every task) that makes the video and contact sheet.

    \b
    Example:
      stylefarm plan shots.yaml --chunks 10 > tasks.json
      stylefarm plan shots.yaml --chunk-size 50 --frames 1001-1100
    """
    from .api import load_workflow
    from .export.job import HANDOVER_PATTERN, aggregate_sinks
    from .shard import farm_tasks, final_task, parse_frames, selected_total

    if (chunks is None) == (chunk_size is None):
        raise click.UsageError("give exactly one of --chunks N or --chunk-size N")
    plan = load_workflow(workflow, _overrides(sets, backend=backend, address=address))
    total = selected_total(plan.counts, plan.sources, parse_frames(frames) if frames else None)
    if chunk_size is not None:
        if total is None:
            raise click.UsageError("--chunk-size needs inputs that know their item count; use --chunks")
        chunks = max(1, -(-total // chunk_size))
    if total is not None:
        chunks = min(chunks, max(1, total))  # more tasks than items would only add empty ones
    aggregates = aggregate_sinks(plan)
    if aggregates and len(aggregates) == len(plan.sinks):  # a video alone: tasks hand frames over, as export's
        sets = (*sets, f"output.frames.pattern={HANDOVER_PATTERN}")
    run_args = [arg for s in sets for arg in ("--set", s)] + _flag_args(frames=frames, backend=backend,
                                                                          address=address)
    path = str(workflow.resolve())
    tasks = farm_tasks(path, total, chunks, run_args)
    click.echo(json.dumps({"workflow": path, "items": total, "chunks": chunks, "tasks": tasks,
                           "final": final_task(path, run_args, aggregates)}, indent=2))


def _flag_args(**flags: str | None) -> list[str]:
    return [arg for key, value in flags.items() if value is not None for arg in (f"--{key}", value)]


@cli.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["openjd", "deadline", "opencue"]))
@workflow_arg
@set_option
@click.option("--chunk-size", type=click.IntRange(min=1), help="Frames (or items) per farm task (default 10).")
@click.option("--chunks", type=click.IntRange(min=1),
              help="About this many farm tasks (instead of --chunk-size): chunks of one size, ceil(items / N), "
                   "as farm managers chunk frames (72 frames in 10: 9 chunks of 8).")
@click.option("--frames", help="Only these frame numbers, e.g. 1001-1100.")
@click.option("--output-dir", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the job files are written to.")
@click.option("--task-timeout", type=click.IntRange(min=1), help="Seconds a task may run before the farm kills it.")
@click.option("--task-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Farm retries of a failed task (a retry resumes: only unfinished items are redone).")
@click.option("--no-task-chunking", is_flag=True, help="OpenJD: a plain task list, not TASK_CHUNKING.")
@click.option("--stylefarm", "exe", help="stylefarm executable on the workers (default: this one, absolute).")
@click.option("--group", help="Deadline 10 group (default: gpu when the workflow asks for CUDA).")
@click.option("--pool", help="Deadline 10 pool.")
@click.option("--show", help="OpenCue show (default: stylefarm).")
@click.option("--shot", help="OpenCue shot (default: the workflow's name).")
def export_command(fmt, workflow, sets, chunk_size, chunks, frames, out_dir, task_timeout, task_retries,
                   no_task_chunking, exe, group, pool, show, shot):
    """Write a render-farm job (OpenJD / Deadline Cloud bundle, Deadline 10, OpenCue) for a workflow.

    Every task is a plain `stylefarm run WF --frames A-B` (or `--shard I/N` for stills), so a
    re-queued task resumes; videos and contact sheets are made by one dependent final task.

    \b
    Example:
      stylefarm export openjd shots.yaml --chunk-size 12 -o farm/openjd
      openjd run farm/openjd/template.yaml --step Encode --run-dependencies
      stylefarm export deadline shots.yaml --chunks 3 -o farm/deadline
      stylefarm export opencue shots.yaml --chunks 3 -o farm/opencue
    """
    from .api import load_workflow
    from .export import build_job, write

    plan = load_workflow(workflow, list(sets))
    job = build_job(plan, workflow, sets, chunk_size=chunk_size, chunks=chunks, frames=frames, stylefarm=exe,
                    timeout=task_timeout, retries=task_retries)
    files = write(fmt, job, out_dir, chunking=not no_task_chunking, group=group, pool=pool, show=show, shot=shot)
    if fmt == "openjd" and job.frames and not no_task_chunking and job.chunk_size > 150:
        click.echo("warning: Deadline Cloud accepts at most 150 frames per chunk; use --chunk-size 150 or less",
                   err=True)
    split = f"frames {job.frames_text} in chunks of {job.chunk_size}" if job.frames else f"{job.shards} shards"
    click.echo(f"{fmt}: {job.items} items, {job.shards} tasks ({split})"
               f"{', then ' + job.assemble if job.assemble else ''}{', GPU' if job.gpu else ''}")
    for path in files:
        click.echo(f"  {path}")


@cli.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="The merged report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the merged report as one HTML page.")
def report_command(directory, as_json, html_path):
    """Summarize a finished or running job from its output (or .stylefarm) folder, merging farm shards.

    \b
    Example:
      stylefarm report out/shots
      stylefarm report out/shots --json > merged.json
    """
    from .report import job_summary, merge_job

    merged = merge_job(directory)  # latest state of each part of the job; live runs from their locks
    if html_path:
        from .report_html import write_html

        write_html(merged, html_path, directory.parent if directory.name == ".stylefarm" else directory)
    click.echo(json.dumps(merged, indent=2) if as_json else job_summary(merged))


@cli.command("warmup")
@workflow_arg
@set_option
@click.option("--size", "sizes", multiple=True, metavar="WxH",
              help="Frame size to compile for (repeatable); default: each input's first frame.")
@click.option("--threads", type=int, help="torch threads, as the farm's workers use (execution.threads).")
@click.option("--device", help="cpu | cuda | cuda:N | auto (execution.device).")
def warmup_command(workflow, sets, sizes, threads, device):
    """Compile a workflow's networks ahead into the shared compile cache.

    Steps with `compile: auto` (the default) then load the compiled network in about a second
    instead of compiling for 30-70 s per frame size. Run it once in a farm's node image, with the
    threads and device the tasks use; the cache is $STYLEFARM_COMPILE_DIR, else the user cache.

    \b
    Example:
      stylefarm warmup shots.yaml
      stylefarm warmup shots.yaml --size 1920x1080 --size 1280x720 --threads 4
    """
    from .api import load_workflow
    from .warmup import parse_size, warmup

    extra = [f"execution.threads={threads}"] if threads else []
    plan = load_workflow(workflow, _overrides(sets, device=device) + extra)
    result = warmup(plan, [parse_size(s) for s in sizes] or None)
    for line in result.lines():
        click.echo(line)
    click.echo(f"warmup done for {', '.join(f'{w}x{h}' for w, h in result.sizes)}")


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor_command(as_json):
    """Check this install the way a farm admin would before rolling it out to render nodes.

    ffmpeg and its encoders (with licences), torch/CUDA, Ray/Dask, weights, plugins, cache
    folders: one line each, ok / warn / fail, with the fix. Exit code 1 when something fails.

    \b
    Example:
      stylefarm doctor
      stylefarm doctor --json
    """
    from .doctor import render, run_checks

    checks = run_checks()
    click.echo(json.dumps([c.as_dict() for c in checks], indent=2) if as_json else render(checks))
    if any(c.level == "fail" for c in checks):
        sys.exit(EXIT_FATAL)


@cli.command()
@workflow_arg
@set_option
def validate(workflow, sets):
    """Validate a workflow (steps, options, inputs, outputs) without running it.

    \b
    Example:
      stylefarm validate workflows/quickstart.yaml
    """
    from . import weights as wm
    from .api import load_workflow

    plan = load_workflow(workflow, list(sets))
    n = sum(c or 0 for c in plan.counts)
    rows = [(call.name, name, wm.where_found(name)) for call in plan.chain
            for name in call.cls.weights_needed(call.options) if name in wm.registry()]
    missing = [(step, name, row) for step, name, row in rows if row == "MISSING" or row.startswith("PROBLEM: ")]
    note = f"; {len(missing)} weights file(s) missing on this machine, the run would stop at set-up" if missing else ""
    click.echo(f"{workflow}: ok ({len(plan.sources)} inputs, {n} items, {len(plan.chain)} steps){note}")
    for step, name, row in missing:  # the workflow is right; this machine lacks files (farm nodes may have them)
        option = getattr(name, "option", None)  # a `weights.Needed` says which option takes the path
        why = wm.missing_message(wm.lookup(name), option) if row == "MISSING" else row.removeprefix("PROBLEM: ")
        click.echo(f"warning: step {step!r}: {why}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins with their distribution, version and what they provide.

    \b
    Example:
      stylefarm plugins --json
    """
    from .host import get_host

    host = get_host()
    rows = []
    for info in host.plugins:
        rows.append({"plugin": info.name, "distribution": info.distribution, "version": info.version,
                     "provides": info.provides, "error": info.error, "warnings": info.warnings})
    for name, provided in sorted(host.steps.items()):
        for row in rows:
            if row["plugin"] == provided.plugin.name and row["distribution"] == provided.plugin.distribution:
                row.setdefault("steps", []).append({"name": name, "kind": provided.obj.kind,
                                                    "summary": provided.obj.describe()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        status = f"  FAILED: {row['error']}" if row["error"] else ""
        click.echo(f"{row['plugin']}  ({row['distribution']} {row['version']}){status}")
        for step in row.get("steps", []):
            click.echo(f"    step {step['name']:<20} {step['kind']:<9} {step['summary']}")
        for what in row["provides"]:
            if not what.startswith(("step:", "weights:")):
                click.echo(f"    {what.replace(':', ' ', 1)}")
        for warning in row["warnings"]:
            click.echo(f"    warning: {warning}")


@cli.command()
@click.argument("step")
def steps(step):
    """Describe a step's options (type, default, meaning).

    \b
    Example:
      stylefarm steps resize
    """
    from .host import get_host

    host = get_host()
    cls = host.step_class(step)
    provided = host.steps[step]
    click.echo(f"{cls.name} ({cls.kind}{', temporal' if cls.temporal else ''}) "
               f"from {provided.plugin.distribution}: {cls.describe()}")
    for name, field in cls.Options.model_fields.items():
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        click.echo(f"  {name}: {type_name(field.annotation)} ({default})  {field.description or ''}".rstrip())


def type_name(annotation) -> str:
    """Readable option types: `float`, `list[str] | None`, `'auto' | int` (no Annotated noise)."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


@cli.command()
def schema():
    """Print the JSON schema of workflow files, including every installed step's options.

    \b
    Example:
      stylefarm schema > stylefarm.schema.json
    """
    from .host import get_host
    from .schema import workflow_schema

    click.echo(json.dumps(workflow_schema(get_host()), indent=2))


@cli.command()
@click.argument("segments", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Joined video file (same container family as the segments).")
@click.option("--audio-from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Video whose audio is attached once, trimmed to the joined length.")
@click.option("--audio-start", type=float, default=0.0, show_default=True,
              help="Seconds into --audio-from where the first segment starts.")
def join(segments, output, audio_from, audio_start):
    """Join encoded video segments in the given order without re-encoding.

    \b
    Example:
      stylefarm join out/sh010.seg0.mp4 out/sh010.seg1.mp4 -o sh010_styled.mp4 --audio-from sh010.mov
    """
    from .video.segments import join as join_segments

    path = join_segments(list(segments), output, audio_from, audio_start)
    click.echo(f"joined {len(segments)} segments into {path}")


@cli.group()
def weights():
    """Manage model weights (user cache; never downloaded implicitly).

    \b
    Example:
      stylefarm weights list
      stylefarm weights add adain/decoder ~/Downloads/decoder.pth
    """


@weights.command("list")
def weights_list():
    """List known weight files and where each one is found."""
    from . import weights as wm

    for name, wf in sorted(wm.registry().items()):
        click.echo(f"{name:<32} {wf.filename:<28} {wm.where_found(name)}")


@weights.command("path")
@click.argument("name")
def weights_path(name):
    """Print the path a weights file resolves to (error if missing)."""
    from . import weights as wm

    click.echo(wm.resolve(name))


@weights.command("verify")
@click.argument("name", required=False)
def weights_verify(name):
    """Check the sha256 of one or all present weight files."""
    from . import weights as wm

    names = [name] if name else sorted(wm.registry())
    for n in names:
        try:
            path = wm.resolve(n)
        except StylefarmError as exc:
            if name:
                raise
            click.echo(f"{n}: PROBLEM: {exc}" if isinstance(exc, wm.PackagedWeightsError) else f"{n}: missing")
            continue
        wm.verify(n, path)
        declared = wm.lookup(n).sha256
        click.echo(f"{n}: ok ({path})" if declared else f"{n}: present, UNVERIFIED: no sha256 is declared for it "
                   f"(file sha256 {wm.sha256_of(path)}) ({path})")


@weights.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def weights_add(name, file):
    """Copy a downloaded weights file into the cache after checking its hash."""
    from . import weights as wm

    dest = wm.add(name, file)
    click.echo(dest)
    if not wm.lookup(name).sha256:
        click.echo(f"note: no sha256 is declared for {name}, so the file was copied UNVERIFIED "
                   f"(its sha256: {wm.sha256_of(dest)}); make sure it is the file the message named", err=True)


class TrainGroup(click.Group):
    """`stylefarm train NAME`: commands from the `stylefarm_register_train_commands` hook."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        if not hasattr(self, "_cache"):
            from .host import get_host

            self._cache = {cmd.name: cmd for cmd in get_host().train_commands()}
        return self._cache

    def list_commands(self, ctx):
        return sorted(self._plugin_commands())

    def get_command(self, ctx, name):
        return self._plugin_commands().get(name)


@cli.group(cls=TrainGroup)
def train():
    """Train models that can be trained here (commands come from plugins).

    \b
    Example:
      stylefarm train paint-transformer --help
    """


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except SystemExit as exc:
        if argv is None and exc.code in (EXIT_INTERRUPTED, 128 + 15):
            _exit_cancelled(exc.code)
        raise
    finally:
        if argv is None:  # the console command, about to exit (not a caller's process)
            _quick_exit()


def _exit_cancelled(code: int) -> None:
    """End a cancelled console run (its outputs kept, temp files gone): the atexit hooks run (Ray,
    Dask, logging), then the process exits without the C++ runtime's teardown, where a torch
    worker thread still inside an op aborts the process (exit 134, read as a crash by a farm
    manager, instead of 130 / 143)."""
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _quick_exit() -> None:
    """Collect the garbage now, then freeze what is left: the interpreter's own collections while
    it tears down then skip the ~45,000 objects of the imported libraries (~20 ms of a short
    job's 0.4 s). Finalizers and atexit hooks run as before."""
    import gc

    gc.collect()
    gc.freeze()


def _main(argv: list[str] | None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="stylefarm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except StylefarmError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Cancelled as exc:
        click.echo(f"cancelled by {exc.signal}: finished outputs are kept; rerun the same command to resume",
                   err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: {first_line(exc, with_type=True)} (rerun with --debug for the traceback)", err=True)
        sys.exit(EXIT_FATAL)
