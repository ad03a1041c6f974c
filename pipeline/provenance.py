"""Provenance: what a report needs to reproduce or audit a frame months later, and merging the
many reports of a farm job (`stylefarm report DIR`).

Collected without heavy imports: torch/CUDA only when torch is already imported (a model ran),
ffmpeg's version from the bundled binary (one `-version` call, cached). Weight files are the
ones the steps actually loaded: `load_state_dict` records each path while the executor sets a
step up (`recording()`), the step's `weights_used` list holds them, workers report them, and
the driver hashes each file once (sha256).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import socket
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__

_RECORD = threading.local()


@contextmanager
def recording():
    """Collect the weight files loaded inside the block (used around `Step.setup`)."""
    previous = getattr(_RECORD, "paths", None)
    _RECORD.paths = paths = []
    try:
        yield paths
    finally:
        _RECORD.paths = previous


_VERIFIED: dict[str, str] = {}  # path -> sha256 the weights manager already checked in this process


def record(path: str | os.PathLike, sha256: str | None = None) -> None:
    """Called by the weights manager for every file it loads (no-op outside `recording()`);
    `sha256` when it has just verified the file against it (saves hashing it again)."""
    if sha256:
        _VERIFIED[str(path)] = sha256
    paths = getattr(_RECORD, "paths", None)
    if paths is not None and str(path) not in paths:
        paths.append(str(path))


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str | None:
    """sha256 of a file (cached by size and mtime), None when it is not on this host."""
    if str(path) in _VERIFIED:
        return _VERIFIED[str(path)]
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def torch_info() -> dict[str, Any]:
    """torch/CUDA versions, only when torch is already imported (costs nothing then)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": getattr(torch.version, "cuda", None)}
    try:
        if torch.cuda.is_available():  # untested on CUDA (no GPU on the development machine)
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:  # a broken driver must not break the report; say what happened
        info["cuda_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return info


def distributions() -> dict[str, str]:
    """Installed distribution -> version of stylefarm and of every plugin that loaded."""
    out = {"stylefarm": __version__}
    host = sys.modules.get("stylefarm.host")
    if host is not None and host._HOST is not None:
        for info in host._HOST.plugins:
            if info.distribution not in ("?", "") and info.version:
                out.setdefault(info.distribution, info.version)
    return out


def _seeds(data: Any, path: str = "") -> dict[str, Any]:
    """Every option whose name says seed (`seed`, `noise_seed`, ...), by dotted location."""
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if "seed" in str(key).lower() and isinstance(value, (int, str)) and not isinstance(value, bool):
                found[where] = value
            else:
                found.update(_seeds(value, where))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.update(_seeds(value, f"{path}[{i}]"))
    return found


def workflow_section(plan) -> dict[str, Any]:
    """The workflow file's hash and the resolved options of every step, input and output."""
    resolved = plan.workflow.model_dump(mode="json", by_alias=True)
    steps = []
    for call, spec in zip(plan.chain, resolved.get("steps", [])):
        spec["with"] = call.options.model_dump(mode="json")  # defaults filled in, paths resolved
        steps.append({"name": call.name, "step": call.cls.name, "module": call.cls.__module__})
    path = Path(plan.doc.filename)
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":")).encode()
    return {"path": str(path.resolve()), "file_sha256": file_sha256(path),
            "resolved_sha256": hashlib.sha256(canonical).hexdigest(), "resolved": resolved, "steps": steps,
            "seeds": _seeds(resolved)}


def collect(plan=None) -> dict[str, Any]:
    """Provenance known when a run starts (weights and devices are added at the end)."""
    out: dict[str, Any] = {
        "command": [os.path.abspath(sys.argv[0]), *sys.argv[1:]], "cwd": os.getcwd(),
        "host": {"name": socket.gethostname(), "user": _user(), "platform": _platform(),
                 "python": platform.python_version(), "cpus": os.cpu_count()},
        "distributions": distributions(),
    }
    if plan is not None:
        out["workflow"] = workflow_section(plan)
        out["device_requested"] = plan.workflow.execution.device
    return out


def _platform() -> str:
    """`platform.platform()`'s string; on Linux without the `uname -p` run it makes for a field
    that is blank there (a subprocess start on every job)."""
    u = platform.uname()  # the processor field is only looked up when read
    libc = "".join(platform.libc_ver())
    if u.system != "Linux" or not libc:
        return platform.platform()
    return "-".join(part for part in (u.system, u.release, u.machine, "with", libc) if part)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "?"


def finish(provenance: dict[str, Any], workers: dict[str, dict[str, Any]], uses_video: bool) -> dict[str, Any]:
    """Add what is only known after the run: versions of what got imported, weights, devices."""
    provenance["distributions"] = distributions()
    provenance.update(torch_info())
    if uses_video or "stylefarm.video.ffmpeg" in sys.modules:
        from .video.ffmpeg import version  # None without a binary: that is doctor's business

        provenance["ffmpeg"] = version()
    paths = sorted({p for w in workers.values() for p in w.get("weights", [])})
    provenance["weights"] = [{"path": p, "sha256": file_sha256(p)} for p in paths]
    provenance["devices"] = sorted({str(w.get("device")) for w in workers.values() if w.get("device")})
    return provenance


# ---------------------------------------------------------------- reading and merging reports


def load_reports(directory: Path) -> list[dict[str, Any]]:
    """Every report.*.json in an output folder (or its .stylefarm folder), oldest first."""
    from .manifest import STATE_DIR

    state = directory if directory.name == STATE_DIR else directory / STATE_DIR
    reports = []
    for path in sorted(state.glob("report*.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a report being written right now
        data["_file"] = path.name
        reports.append(data)
    if not reports and not (state / "manifest.jsonl").is_file():
        from .errors import InputError

        raise InputError(f"no stylefarm reports in {state} (is this a job's output folder?)")
    return reports


def _merge_steps(reports: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    steps: dict[str, dict[str, float]] = {}
    for report in reports:
        for name, timing in (report.get("steps") or {}).items():
            row = steps.setdefault(name, {"seconds": 0.0, "items": 0, "batches": 0})
            for key in row:
                row[key] += timing.get(key, 0) or 0
    return steps


def task_name(report: dict[str, Any]) -> str:
    """The task a loaded report is from: `report.shard-1-of-3.json` -> `shard-1-of-3`, `report.json` -> `main`."""
    return report["_file"].removeprefix("report").removesuffix(".json").strip(".") or "main"


def merge_reports(reports: list[dict[str, Any]], job: dict[str, Any] | None = None) -> dict[str, Any]:
    """One report for a job of many tasks: timings summed, outputs joined, workers keyed by task.
    `job` holds its tasks, counts, failures and status where the caller judges them itself
    (`stylefarm.report.merge_job`, from the manifest and the live runs); without it, each report
    counts as it says: counts summed, failures joined, the status the worst of the tasks'."""
    names = [task_name(r) for r in reports]
    job = _as_reported(reports, names) if job is None else job
    merged: dict[str, Any] = {
        "workflow": reports[-1].get("workflow") if reports else None, "tasks": job["tasks"],
        "counts": job["counts"], "outputs": [], "failures": job["failures"], "workers": {},
        "steps": _merge_steps(reports), "seconds": 0.0,
        "provenance": next((r["provenance"] for r in reversed(reports) if r.get("provenance")), {}),
        "status": job["status"],
    }
    for task, report in zip(names, reports):
        merged["outputs"] += [o for o in report.get("outputs", []) if o not in merged["outputs"]]
        for name, row in (report.get("workers") or {}).items():
            merged["workers"][f"{task}:{name}" if len(reports) > 1 else name] = row
        merged["seconds"] += report.get("seconds") or 0.0
    merged["started"] = min((r["started"] for r in reports if r.get("started")), default="")
    for key in ("videos", "eval"):
        found = [r[key] for r in reports if r.get(key)]
        if found:
            merged[key] = found[-1]
    return merged


def _as_reported(reports: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """`merge_reports`' tasks, counts, failures and status when each report is taken as it says."""
    order = {"ok": 0, "running": 1, "partial": 2, "failed": 3}
    tasks, counts, failures, status = [], {"done": 0, "skipped": 0, "failed": 0}, [], "ok"
    for task, report in zip(names, reports):
        tasks.append({"task": task, "status": report.get("status"), "counts": report.get("counts"),
                      "seconds": report.get("seconds"), "started": report.get("started")})
        for key in counts:
            counts[key] += (report.get("counts") or {}).get(key, 0)
        failures += [{**f, "task": task} for f in report.get("failures", [])]
        if order.get(report.get("status"), 3) > order[status]:
            status = report.get("status") if report.get("status") in order else "failed"
    return {"tasks": tasks, "counts": counts, "failures": failures, "status": status if reports else "running"}


def summary(report: dict[str, Any]) -> str:
    """A few lines people read in a terminal."""
    counts, prov = report["counts"], report.get("provenance") or {}
    recorded = f"; {report['recorded']} items recorded in the manifest" if "recorded" in report else ""
    lines = [f"{report.get('workflow') or 'job'}: {report['status']}{recorded} - done {counts['done']}, "
             f"skipped {counts['skipped']}, failed {counts['failed']} in {report.get('seconds', 0):.1f}s over "
             f"{len(report.get('tasks', []))} report(s)"]
    for task in report.get("tasks", []):
        c = task.get("counts") or {}
        lines.append(f"  task {task['task']:<28} {task.get('status') or '?':<8} done {c.get('done', 0)}, "
                     f"skipped {c.get('skipped', 0)}, failed {c.get('failed', 0)}")
    for name, timing in report.get("steps", {}).items():
        rate = timing["items"] / timing["seconds"] if timing["seconds"] else 0.0
        lines.append(f"  step {name:<20} {timing['items']:>6} items {timing['seconds']:8.2f}s ({rate:.1f} items/s)")
    for failure in report.get("failures", [])[:10]:
        lines.append(f"  failed: {failure.get('item')}: {failure.get('error')}")
    workflow = prov.get("workflow") or {}
    if workflow:
        lines.append(f"  workflow sha256 {str(workflow.get('file_sha256'))[:16]}, resolved "
                     f"{str(workflow.get('resolved_sha256'))[:16]}")
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("distributions") or {}).items())
    if versions:
        lines.append(f"  versions: {versions}" + (f", torch {prov['torch']}" if prov.get("torch") else ""))
    for weight in prov.get("weights", []):
        lines.append(f"  weights {weight['path']} sha256 {str(weight.get('sha256'))[:16]}")
    return "\n".join(lines)
