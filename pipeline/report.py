"""The JSON run report: what ran, what came out, what failed, how long each step took."""

from __future__ import annotations

import json
import logging
import platform
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import __version__
from .images import atomic_write_bytes
from .manifest import SEGMENT, segment_ends


def versions() -> dict[str, str]:
    """Versions of the stack; torch only if it is already imported (no import cost)."""
    out = {"stylefarm": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "ray", "distributed", "pydantic", "pluggy"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


class RunReport:
    def __init__(self, workflow: str, backend: str, inputs: list[str]):
        self.data: dict[str, Any] = {
            "workflow": workflow, "backend": backend, "inputs": inputs,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(),
            "counts": {"done": 0, "skipped": 0, "failed": 0},
            "outputs": [], "failures": [], "steps": {}, "workers": {}, "status": "running",
        }
        self._t0 = time.perf_counter()

    @property
    def failures(self) -> list[dict[str, Any]]:
        return self.data["failures"]

    def done(self, outputs: list[Path]) -> None:
        self.data["counts"]["done"] += 1
        self.data["outputs"].extend(str(p) for p in outputs)

    def skipped(self) -> None:
        self.data["counts"]["skipped"] += 1

    def set_plan(self, plan) -> None:
        """Provenance known before the run: workflow hash, resolved options, command, host."""
        from .provenance import collect

        self.data["provenance"] = collect(plan)

    def failed(self, key: str, source: str, error: str) -> None:
        self.data["counts"]["failed"] += 1
        self.failures.append({"item": key, "source": source, "error": error})

    def finish(self, status: str, steps: dict, workers: dict, extra_outputs: list[Path]) -> None:
        self.data["outputs"].extend(str(p) for p in extra_outputs)
        self.data.update(status=status, steps=steps, workers=workers,
                         seconds=round(time.perf_counter() - self._t0, 3),
                         finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.data["versions"] = versions()
        videos = [Path(p) for p in self.data["outputs"] if Path(p).suffix.lower() in VIDEO_SUFFIXES]
        self.data["videos"] = [v for v in map(_video_facts, videos) if v]
        from .provenance import finish as finish_provenance

        finish_provenance(self.data.setdefault("provenance", {}), workers, bool(videos))

    def write(self, path: Path) -> None:
        """report.json, and the same as a page beside it (report.html); a page that cannot be
        made is logged, never a failed run."""
        atomic_write_bytes(path, json.dumps(self.data, indent=2).encode())
        try:
            from .report_html import write_html

            write_html(self.data, path.with_suffix(".html"))
        except Exception as exc:
            logging.getLogger("stylefarm.report").warning("report page not written: %s", exc)


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf")


def _video_facts(path: Path) -> dict[str, Any] | None:
    """Frame count, rate and audio of a written video, for the report page."""
    try:
        from .video.probe import probe

        info = probe(path)
    except Exception:
        return None
    return {"path": str(path), "frames": info.frames, "fps": str(info.fps), "width": info.width,
            "height": info.height, "codec": info.codec, "audio": info.audio_codec, "duration": info.duration}


# ---------------------------------------------------------------- a farm job from its task reports

STATUS_ORDER = {"ok": 0, "incomplete": 1, "cancelled": 2, "running": 3, "partial": 4, "failed": 5}


def merge_job(directory: Path) -> dict[str, Any]:
    """One report for a job of many task runs. The status comes from the latest state of each
    part: a run is superseded once later runs cover its items (a full run covers every task, all
    N shards cover the full run), live runs count as `running`, and counts are distinct items
    from the manifest (a segment's line counts its frames: `finished_items`), so reruns and
    resumes never count an item twice."""
    from .manifest import STATE_DIR, Manifest
    from .provenance import load_reports, merge_reports
    from .runlock import live_runs

    root = directory.parent if directory.name == STATE_DIR else directory
    reports = load_reports(directory)
    entries = [_report_entry(r) for r in reports] + [_live_entry(info) for info in live_runs(root)]
    _mark_superseded(entries)
    current = [e for e in entries if not e["superseded_by"]]
    done = finished_items(Manifest(root).done, reports)
    failures, statuses = [], []
    for entry in current:  # an item failed, then made by a later run (a --frames retry): no longer failed
        left = [f for f in entry["_failures"] if f.get("item") not in done]
        failures += left
        statuses.append("ok" if entry["status"] == "partial" and not left else entry["status"])
    total = _job_total(reports)
    missing = _missing_shards(current)
    # no report and no lock seen: tasks on hosts whose flock this one cannot see (the manifest grows)
    status = max(statuses, key=STATUS_ORDER.__getitem__, default="running")
    if status == "ok" and (missing or (total is not None and len(done) < total)):
        status = "incomplete"
    failed = {f.get("item") for f in failures if _is_item(f.get("item"))}  # not `output.video`
    job = {"status": status, "tasks": [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries],
           "failures": failures,
           "counts": {**({"items": total} if total is not None else {}), "done": len(done), "failed": len(failed)}}
    merged = merge_reports(reports, job)  # timings, outputs, workers and provenance of every run
    merged.update(missing=missing, recorded=len(done))
    return merged


def _report_entry(report: dict[str, Any]) -> dict[str, Any]:
    from .provenance import task_name

    task = task_name(report)
    status = report.get("status") if report.get("status") in STATUS_ORDER else "failed"
    return {"task": task, "status": status, "counts": report.get("counts"), "seconds": report.get("seconds"),
            "started": report.get("started"), "superseded_by": None,
            "_failures": [{**f, "task": task} for f in report.get("failures", [])]}


def _live_entry(info: dict[str, Any]) -> dict[str, Any]:
    task = "main" if info["task"] == "run" else info["task"]
    return {"task": task, "status": "running", "counts": None, "seconds": None, "started": info.get("started"),
            "pid": info.get("pid"), "host": info.get("host"), "superseded_by": None, "_failures": []}


def _mark_superseded(entries: list[dict[str, Any]]) -> None:
    """Runs that cover one another never overlap in time (see `stylefarm.runlock`), so the order of
    the reports (written when a run ends) and then the live runs is the order the runs had."""
    from .runlock import covers, task_selection

    for i, entry in enumerate(entries):
        later = entries[i + 1:]
        mine = task_selection(entry["task"])
        if covers([task_selection(e["task"]) for e in later], mine):
            alone = [e["task"] for e in later if covers([task_selection(e["task"])], mine)]
            entry["superseded_by"] = alone[-1] if alone else "+".join(dict.fromkeys(e["task"] for e in later))


def _missing_shards(current: list[dict[str, Any]]) -> list[str]:
    """Shards of a split whose items no current run covers: never run, or lost without a report."""
    from .runlock import Selection, covers, describe, task_selection

    selections = [task_selection(e["task"]) for e in current]
    missing = []
    for frames, count in dict.fromkeys((s.frames, s.shard[1]) for s in selections if s.shard and not s.unknown):
        for index in range(1, count + 1):
            shard = Selection(frames, (index, count))
            if not covers(selections, shard):
                missing.append(describe(shard))
    return missing


def _job_total(reports: list[dict[str, Any]]) -> int | None:
    """Items the whole job has, as the latest full run that went through every item counted them
    (its `failed` also counts outputs that could not be made, such as a video: those are no items)."""
    for report in reversed(reports):
        if report["_file"] == "report.json" and report.get("status") in ("ok", "partial"):
            outputs = sum(not _is_item(f.get("item")) for f in report.get("failures", []))
            return sum((report.get("counts") or {}).get(k, 0) for k in ("done", "skipped", "failed")) - outputs
    return None


def _is_item(key: Any) -> bool:
    """Item keys are `<source>#<index>`; failures of a whole output are named `output.<sink>`."""
    return isinstance(key, str) and "#" in key


def finished_items(recorded: Iterable[str], reports: list[dict[str, Any]]) -> set[str]:
    """The items a manifest has finished, whatever the unit: a segment line (`segment:<first
    key>..<last key>`, its piece of the video) stands for every frame it covers, so a video-only
    segment job counts frames and per-frame lines of the same frames count once."""
    keys = set(recorded)
    items = {k for k in keys if not k.startswith(SEGMENT)}
    files = _file_segment_sizes(reports)
    for key in keys - items:
        first, last = segment_ends(key)
        (source, _, lo), (tail, _, hi) = first.rpartition("#"), last.rpartition("#")
        if source == tail and lo.isdigit() and hi.isdigit():  # a frame range of one video
            items.update(f"{source}#{i}" for i in range(int(lo), int(hi) + 1))
        elif not {first, last} <= items:  # image files: known one by one only from their own lines
            size = files.get((Path(source).name, Path(tail).name), 2)
            items.update([first, last, *(f"{key}|{n}" for n in range(size - 2))])
    return items


_FILES = re.compile(r"(.+) \.\. (.+) \((\d+) files\)")


def _file_segment_sizes(reports: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(first file, last file) -> files, for segments of image files, from the reports' segment
    rows: a segment line names only its ends, and every file of a finished one is done."""
    sizes = {}
    for report in reports:
        for row in report.get("segments") or []:
            if match := _FILES.fullmatch(str(row.get("segment", ""))):
                sizes[match[1], match[2]] = int(match[3])
    return sizes


def job_summary(job: dict[str, Any]) -> str:
    """A few lines people read in a terminal, for `merge_job`'s report."""
    from .provenance import summary

    counts = job["counts"]
    of = f" of {counts['items']}" if "items" in counts else ""
    lines = [f"{job.get('workflow') or 'job'}: {job['status']}; {job['recorded']} items recorded in the manifest - "
             f"done {counts['done']}{of}, failed {counts['failed']} in {job.get('seconds', 0):.1f}s over "
             f"{sum(t.get('pid') is None for t in job['tasks'])} report(s)"]
    for task in job["tasks"]:
        c = task.get("counts") or {}
        row = f"  task {task['task']:<28} {task['status']:<10}"
        if task.get("pid") is not None:
            row += f" pid {task['pid']} on host {task.get('host')} since {task.get('started')}"
        else:
            row += f" done {c.get('done', 0)}, skipped {c.get('skipped', 0)}, failed {c.get('failed', 0)}"
        lines.append(row + (f" (superseded by {task['superseded_by']})" if task["superseded_by"] else ""))
    lines += [f"  missing: {shard} (no report, and no live run holds its lock)" for shard in job.get("missing", [])]
    # steps, failures, hashes and versions as a single run's summary words them (its headline dropped)
    rest = summary({**job, "tasks": [], "counts": {"done": 0, "skipped": 0, "failed": 0}}).splitlines()[1:]
    return "\n".join(lines + rest)
