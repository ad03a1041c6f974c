"""Runs a Plan: sources -> (resume filter) -> executor -> sinks, with manifest and report."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import EXIT_OK, EXIT_PARTIAL, OutputError
from .executors import make_executor
from .item import Item
from .manifest import STATE_DIR, Manifest
from .plan import Plan
from .progress import Progress
from .report import RunReport
from .sinks import OutputContext, Sink

log = logging.getLogger("stylefarm.run")


def prepare_root(root: Path, clean: bool = True) -> None:
    """Create the output root, prove it is writable, and remove temp files a killed run left
    (`clean=False` for farm shards: other shards may be writing beside us right now)."""
    try:
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".part", dir=root / STATE_DIR)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"output directory {root} is not writable: {exc.strerror or exc}") from None
    for stale in root.rglob(".*.part") if clean else ():
        stale.unlink(missing_ok=True)


class Run:
    """One execution of a plan. `execute()` returns the report (also written to disk)."""

    def __init__(self, plan: Plan, force: bool = False, progress: bool = True,
                 report_path: Path | None = None, item_filter=None):
        self.plan = plan
        self.force = force
        self.show_progress = progress
        self.report_path = report_path or plan.root / STATE_DIR / "report.json"
        self.item_filter = item_filter  # e.g. farm shards: predicate on (source index, item)
        self.report = RunReport(str(plan.doc.filename), plan.workflow.execution.backend,
                                [s.describe() for s in plan.sources])

    def _make_sinks(self) -> list[Sink]:
        stages = tuple(call.name for call in self.plan.chain[:-1] if call.save)
        ctx = OutputContext(self.plan.root, self.plan.base_dir, self.plan.workflow.output, self.plan.step_label,
                            stages)
        return [cls(options, ctx) for cls, options in self.plan.sinks]

    def _pending(self, sinks: list[Sink], manifest: Manifest, progress: Progress) -> Iterator[Item]:
        """Items still to do, decoded; skipped and unreadable ones are reported here."""
        for source_index, source in enumerate(self.plan.sources):
            for item in source.items():
                if self.item_filter and not self.item_filter(source_index, item):
                    continue
                planned = [p for sink in sinks for p in sink.planned(item)]
                if planned and manifest.is_done(item.key, planned):
                    recorded = [manifest.root / r for r in manifest.done[item.key]]
                    for sink in sinks:
                        sink.skip(item, recorded)
                    self.report.skipped()
                    progress.update(skipped=True)
                    continue
                try:
                    yield item.load()
                except Exception as exc:
                    self._fail(item, f"cannot read input: {exc}", progress)

    def _fail(self, item: Item, error: str, progress: Progress) -> None:
        log.error("%s: %s", item.key, error)
        self.report.failed(item.key, item.source, error)
        progress.update(failed=True)

    def execute(self) -> dict:
        plan = self.plan
        prepare_root(plan.root, clean=self.item_filter is None)
        manifest = Manifest(plan.root, fresh=self.force)
        sinks = self._make_sinks()
        total = sum(plan.counts) if plan.counts and None not in plan.counts and not self.item_filter else None
        progress = Progress(total, enabled=self.show_progress)
        executor = make_executor(plan.workflow.execution)
        status, extra = "failed", []
        try:
            for outcome in executor.map(plan.chain, self._pending(sinks, manifest, progress)):
                item = outcome.item
                if outcome.error is not None:
                    self._fail(item, outcome.error, progress)
                    continue
                try:
                    outputs = [path for sink in sinks for path in sink.write(outcome.result)]
                except OSError as exc:
                    raise OutputError(f"cannot write output for {item.key}: {exc}") from None
                if outputs:  # nothing to skip on resume otherwise (e.g. frames only feeding a video)
                    manifest.record(item.key, outputs)
                self.report.done(outputs)
                progress.update()
                item.image = item.original = outcome.result.image = None  # free memory early
            extra = [p for sink in sinks for p in sink.close()]
            status = "partial" if self.report.failures else "ok"
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        finally:
            progress.close()
            self.report.finish(status, executor.step_timings, executor.workers, extra)
            executor.close()
            self.report.write(self.report_path)
        return self.report.data

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.report.failures else EXIT_OK
