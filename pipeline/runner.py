"""Runs a Plan: sources -> (resume filter) -> executor -> sinks, with manifest and report."""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from .errors import EXIT_OK, EXIT_PARTIAL, Cancelled, OutputError, WorkflowError, uninterrupted
from .executors import make_executor
from .executors.base import floats
from .item import Item
from .manifest import STATE_DIR, Manifest, Redo, redo_lines
from .plan import Plan
from .progress import Progress
from .ranges import ranges_text
from .recipe import Recipe
from .report import RunReport
from .runlock import RunLock
from .segment_run import SegmentMode, segment_unit
from .sinks import OutputContext, Sink, is_aggregate
from .temporal import WARMUP_META, chain_warmup

log = logging.getLogger("stylefarm.run")


def prepare_root(root: Path) -> None:
    """Create the output root and prove it is writable (temp files of dead runs are cleaned
    when the run takes its lock, see `stylefarm.runlock`)."""
    try:
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".stylefarm-probe.", dir=root / STATE_DIR)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"output directory {root} is not writable: {exc.strerror or exc}") from None


def recipe_output(plan: Plan) -> dict:
    """The output settings that decide an item's files (sinks that aggregate, e.g. the contact
    sheet, are rebuilt by every run anyway and stay out, so changing them redoes nothing)."""
    return plan.workflow.output.model_dump(mode="json", include={"dir", "pattern", "images", "bit_depth",
                                                                 "alpha", "quality"})


def write_outputs(sinks: list[Sink], result: Item) -> list[Path]:
    """Each sink gets the item as it can take it: 8-bit frames as they are where the sink says
    so, float32 (converted once for all of them) elsewhere."""
    as_floats = None
    outputs: list[Path] = []
    for sink in sinks:
        if "uint8" in sink.pixel_types:
            outputs += sink.write(result)
            continue
        as_floats = as_floats or floats(result, original=True, stages=True)
        outputs += sink.write(as_floats)
    return outputs


def frames_text(frames: list[tuple[int, int]] | None) -> str | None:
    return ranges_text(frames) if frames else None


def probe_item(plan: Plan, frame: int | None = 0) -> Item:
    """A stand-in item of the job (no file behind it) that asks a sink whether it plans a file of
    its own per item (`is_aggregate`); `frame=None` asks as for a still."""
    return Item(source=str(plan.base_dir / "probe.png"), index=0, frame=frame)


class Run(SegmentMode):
    """One execution of a plan. `execute()` returns the report (also written to disk)."""

    def __init__(self, plan: Plan, force: bool = False, progress: bool = True,
                 report_path: Path | None = None, item_filter=None):
        self.plan = plan
        self.force = force
        self.show_progress = progress
        self.report_path = report_path or plan.root / STATE_DIR / "report.json"
        self.item_filter = item_filter  # e.g. farm shards: predicate on (source index, item)
        self.shard = getattr(item_filter, "shard", None)  # a part of a job: aggregates wait for the final run
        self.frames = getattr(item_filter, "frames", None)  # --frames: what the user asked for, aggregates too
        self.report = RunReport(str(plan.doc.filename), plan.workflow.execution.backend,
                                [s.describe() for s in plan.sources])
        self.report.set_plan(plan)  # provenance: workflow hash, resolved options, command, host
        if self.shard is not None or self.frames:
            self.report.data["selection"] = {"shard": str(self.shard) if self.shard else None,
                                             "frames": frames_text(self.frames)}
        self._manifest: Manifest | None = None
        self._redo = Redo()  # items whose outputs exist but are remade: how many, and why
        self._claimed: dict[Path, str] = {}  # output path -> the item that writes it
        self._order: deque[tuple[Item, list[Path] | None]] = deque()  # (item, recorded outputs if skipped)

    def _context(self) -> OutputContext:
        stages = tuple(call.name for call in self.plan.chain[:-1] if call.save)
        return OutputContext(self.plan.root, self.plan.base_dir, self.plan.workflow.output, self.plan.step_label,
                             stages, tuple(self.frames) if self.frames else None)

    def _make_sinks(self) -> list[Sink]:
        ctx = self._context()
        sinks = [cls(options, ctx) for cls, options in self.plan.sinks]
        return self._without_aggregates(sinks) if self.shard is not None else sinks

    def _without_aggregates(self, sinks: list[Sink]) -> list[Sink]:
        """A --shard task is one part of a job: a video or a contact sheet made from its items
        alone would be wrong, so it leaves them to the final run without --shard, which resumes
        every task's items and feeds their files to those sinks (as a farm job's assemble step)."""
        probe = probe_item(self.plan)
        whole = [sink for sink in sinks if is_aggregate(sink, probe)]
        if not whole:
            return sinks
        names = ", ".join(f"output.{sink.key}" for sink in whole)
        if len(whole) == len(sinks):
            raise WorkflowError(f"--shard {self.shard}: {names} needs the whole job and the workflow writes no "
                                f"per-item files a final run could make it from; add output.frames, or take the "
                                f"tasks from `stylefarm plan`, which hands frames over")
        log.info("shard %s: %s left to the final run without --shard, which makes %s from every task's files",
                 self.shard, names, "it" if len(whole) == 1 else "them")
        self.report.data["selection"]["left_to_final_run"] = [sink.key for sink in whole]
        return [sink for sink in sinks if sink not in whole]

    def _pending(self, sinks: list[Sink], manifest: Manifest, progress: Progress) -> Iterator[Item]:
        """Items still to do, decoded; skipped and unreadable ones are reported here. A chain with
        `temporal:` steps first gets the few frames just before each run of kept frames that this
        run does not do (other shards, --frames, resumed), marked as warm-up: processed, not written."""
        lead_in = chain_warmup(self.plan.chain)
        for source_index, source in enumerate(self.plan.sources):
            behind: deque[Item] = deque(maxlen=max(1, lead_in))
            for item in source.items():
                skipped = self.item_filter is not None and not self.item_filter(source_index, item)
                if skipped or self._done(item, sinks, manifest, progress):
                    if lead_in:
                        behind.append(item)
                    continue
                for before in behind:
                    yield from self._decoded(replace(before, meta={**before.meta, WARMUP_META: True}),
                                             source_index, progress)
                behind.clear()
                yield from self._decoded(item, source_index, progress)

    def _done(self, item: Item, sinks: list[Sink], manifest: Manifest, progress: Progress) -> bool:
        """Resume: the item's outputs exist already (reported as skipped)."""
        planned = [p for sink in sinks for p in sink.planned(item)]
        clash = next((self._claimed[p] for p in planned if self._claimed.setdefault(p, item.key) != item.key), None)
        if clash is not None:  # the plan's check lists inputs; this guard holds for every source
            self._fail(item, f"would overwrite {clash}'s output; add {{frame:04d}} or {{input.rel}} to "
                       f"output.pattern so items map to different files", progress)
            return True
        files = [item.meta["file"]] if "file" in item.meta else None  # a sequence frame's own file
        state = manifest.status(item.key, planned, files) if planned else "todo"
        if state == "changed":
            self._note_redo(manifest, item.key)
        if state != "done":
            return False
        recorded = [manifest.root / r for r in manifest.done[item.key]]
        self._order.append((item, recorded))  # told to the sinks in input order, see _release_skips
        self.report.skipped()
        progress.update(skipped=True)
        return True

    def _decoded(self, item: Item, source_index: int, progress: Progress) -> Iterator[Item]:
        if source_index in self.plan.generated:  # pixels are made by the chain's generator step
            item.meta = {**item.meta, "generate": source_index}
            self._order.append((item, None))
            yield item
            return
        try:
            loaded = item.load()
        except Exception as exc:
            if not item.meta.get(WARMUP_META):
                self._fail(item, f"cannot read input: {exc}", progress)
            return
        self._order.append((loaded, None))
        yield loaded

    def _release_skips(self, sinks: list[Sink], processed: bool = False) -> None:
        """Tell the sinks about skipped items in input order, the ones queued before the next
        processed item (`processed`: an outcome arrived, take its item off the queue), so a video
        sink never sees resumed frames long before an earlier frame that is still being processed."""
        while self._order and self._order[0][1] is not None:
            item, recorded = self._order.popleft()
            for sink in sinks:
                sink.skip(item, recorded)
        if processed and self._order:
            self._order.popleft()  # outcomes come in input order: this is the outcome's item

    def _close_sinks(self, sinks: list[Sink]) -> list[Path]:
        """Finish aggregates (videos). One that cannot finish because items failed is one more
        failure of a partial run (exit 3, frames kept for the rerun), not a fatal error."""
        finished: list[Path] = []
        for sink in sinks:
            try:
                finished += sink.close()
            except OutputError as exc:
                if not self.report.failures:
                    raise
                self.report.failed(f"output.{sink.key}", "", str(exc))
        return finished

    def _note_redo(self, manifest: Manifest, key: str) -> None:
        """Count an item whose outputs another recipe made or whose input changed, and remember why."""
        self._redo.note(manifest, key)

    def _redo_summary(self) -> dict | None:
        summary = self._redo.summary()
        for line in redo_lines(summary):
            log.info("%s", line)
        return summary

    def _fail(self, item: Item, error: str, progress: Progress) -> None:
        log.error("%s: %s", item.key, error)
        if self._manifest is not None:
            self._manifest.record_failure(item.key)
        self.report.failed(item.key, item.source, error)
        progress.update(failed=True)

    def execute(self) -> dict:
        plan = self.plan
        prepare_root(plan.root)
        stem = self.report_path.stem  # farm tasks (shards, frame ranges) lock their own task name
        lock = RunLock(plan.root, stem[len("report."):] if stem.startswith("report.") else "run")
        lock.acquire()
        try:
            return self._execute()
        finally:
            lock.release()

    def _execute(self) -> dict:
        plan = self.plan
        sinks = self._make_sinks()  # first: a shard with nothing to keep is refused before any change
        recipe = Recipe(plan.chain, recipe_output(plan))
        manifest = self._manifest = Manifest(plan.root, fresh=self.force, recipe=recipe,
                                             restart=self.force and self.item_filter is None)
        manifest.save_recipe()
        self.report.data["recipe"] = recipe.hash
        total = sum(plan.counts) if plan.counts and None not in plan.counts and not self.item_filter else None
        progress = Progress(total, enabled=self.show_progress)
        executor = make_executor(plan.workflow.execution)
        status, extra = "failed", []
        try:
            unit = segment_unit(plan, self.item_filter)
            if unit == "segment" and not self._storage_ok(executor, plan.workflow.execution.unit == "segment"):
                unit = "frame"
            self.report.data["unit"] = unit
            if unit == "segment":
                extra = self._run_segments(executor, sinks, manifest, progress)
            elif plan.relay and self.item_filter is None:
                self.report.data["relay"] = True
                executor.step_timings = self._run_relay(sinks, progress)
            else:
                self._run_frames(executor, sinks, manifest, progress)
            extra += self._close_sinks(sinks)
            covered = {name: text for sink in sinks for name, text in getattr(sink, "covered", {}).items()}
            if covered:  # what a --frames run's videos hold
                self.report.data["selection"]["videos"] = covered
            status = "partial" if self.report.failures else "ok"
            self.report.data["redone"] = self._redo_summary()
        except BaseException as exc:
            for sink in sinks:
                sink.abort()
            if isinstance(exc, Cancelled | KeyboardInterrupt):  # in-flight items are abandoned, nothing partial
                status = "cancelled"
                self.report.data["signal"] = exc.signal if isinstance(exc, Cancelled) else "SIGINT"
            raise
        finally:
            progress.close()
            self.report.finish(status, executor.step_timings, executor.workers, extra)
            executor.close()
            self.report.write(self.report_path)
        return self.report.data

    def _run_frames(self, executor, sinks: list[Sink], manifest: Manifest, progress: Progress) -> None:
        """Frame mode: the driver decodes, the executor runs batches of frames, the driver writes."""
        for outcome in executor.map(self.plan.chain, self._pending(sinks, manifest, progress)):
            item = outcome.item
            self._release_skips(sinks, processed=True)
            if item.meta.get(WARMUP_META):  # a temporal lead-in frame: processed, never written
                item.image = item.original = None
                continue
            if outcome.error is not None:
                self._fail(item, outcome.error, progress)
                continue
            with uninterrupted():  # a signal now waits: files, manifest line and report agree
                try:
                    outputs = write_outputs(sinks, outcome.result)
                except OSError as exc:
                    raise OutputError(f"cannot write output for {item.key}: {exc}") from None
                if outputs:  # nothing to skip on resume otherwise (e.g. frames only feeding a video)
                    manifest.record(item.key, outputs)
                self.report.done(outputs)
            progress.update()
            item.image = item.original = outcome.result.image = None  # free memory early
        self._release_skips(sinks)

    def _run_relay(self, sinks: list[Sink], progress: Progress) -> dict[str, dict]:
        """Relay (`Plan.relay`): per input, the sink's one process decodes and encodes; its
        pixel-less items are reported as frame mode reports them (damaged frames fail, exit 3),
        and so are the steps the decoders did. Returns those steps' timings."""
        done = self.report.data["counts"]["done"]
        for source in self.plan.sources:
            for item in source.relay_items(sinks[0].relay):
                if item.loader is not None:  # a frame that could not be decoded: the source says why
                    try:
                        item.loader()
                    except Exception as exc:
                        self._fail(item, f"cannot read input: {exc}", progress)
                    continue
                with uninterrupted():
                    self.report.done(write_outputs(sinks, item))
                progress.update()
        timing = {"seconds": 0.0, "items": self.report.data["counts"]["done"] - done, "batches": 0, "in_decoder": True}
        return {call.name: dict(timing) for call in self.plan.chain}

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.report.failures else EXIT_OK
