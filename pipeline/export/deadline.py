"""Deadline 10 (Thinkbox) submission files for the CommandLine plugin.

One job info + plugin info pair per job: `Plugin=CommandLine`, `Frames` (the frame list, or
`1-N` shard numbers for stills), `ChunkSize`; the plugin's `Arguments` use the `<STARTFRAME>` /
`<ENDFRAME>` tokens Deadline replaces per task (`<QUOTE>` for quotes). The encode job is a
second pair; `submit.sh` submits both with `deadlinecommand -SubmitMultipleJobs -dependent`,
which makes each job depend on the one before it.

Exit codes: the CommandLine plugin fails a task on any non-zero exit, so exit code 3 (some items
failed) fails it; `FailureDetectionTaskErrors` retries it (the retry resumes). GPUs: Deadline 10
has no per-job GPU count for this plugin, so a CUDA workflow goes to a worker `Group` (`gpu`
unless `--group` says otherwise). `TaskTimeoutMinutes` comes from `--task-timeout`.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from ..images import atomic_write_bytes
from .job import FarmJob


def _arguments(argv: list[str]) -> str:
    """The plugin's Arguments line: tokens pass through, quotes are written as <QUOTE>."""
    parts = []
    for arg in argv:
        needs_quotes = any(c.isspace() for c in arg) or arg == ""
        parts.append(f"<QUOTE>{arg}<QUOTE>" if needs_quotes else arg)
    return " ".join(parts)


def _info(pairs: dict[str, object]) -> bytes:
    return "".join(f"{key}={value}\n" for key, value in pairs.items() if value is not None).encode()


def _job_info(job: FarmJob, name: str, frames: str, chunk: int, group: str | None, pool: str | None) -> bytes:
    pairs: dict[str, object] = {
        "Plugin": "CommandLine", "Name": name, "BatchName": job.name, "Comment": f"stylefarm {job.workflow}",
        "Frames": frames, "ChunkSize": chunk, "Priority": job.priority, "Group": group, "Pool": pool,
        "OverrideTaskFailureDetection": "True", "FailureDetectionTaskErrors": job.retries + 1,
        "TaskTimeoutMinutes": math.ceil(job.timeout / 60) if job.timeout else None,
    }
    if job.output_dir is not None:
        pairs["OutputDirectory0"] = job.output_dir
    return _info(pairs)


def _plugin_info(job: FarmJob, argv: list[str]) -> bytes:
    return _info({"Executable": argv[0], "Arguments": _arguments(argv[1:]), "Shell": "default",
                  "ShellExecute": "False", "SingleFramesOnly": "False",
                  "StartupDirectory": job.workflow.parent})


def files(job: FarmJob, group: str | None = None, pool: str | None = None) -> dict[str, bytes]:
    """File name -> content of the submission."""
    job.refuse_holes("deadline")
    group = group or ("gpu" if job.gpu else None)
    if job.frames is not None:
        frames, chunk = job.frames_text, job.chunk_size
        selector = job.frame_selector("<STARTFRAME>-<ENDFRAME>")
    else:
        frames, chunk = f"1-{job.shards}", 1
        selector = ["--shard", f"<STARTFRAME>/{job.shards}"]
    out = {"stylize_job_info.job": _job_info(job, f"{job.name}: stylize", frames, chunk, group, pool),
           "stylize_plugin_info.job": _plugin_info(job, job.stylize_argv(selector))}
    pairs = ["-job", "stylize_job_info.job", "stylize_plugin_info.job"]
    if job.assemble:
        out["encode_job_info.job"] = _job_info(job, f"{job.name}: {job.assemble}", "0", 1, None, pool)
        out["encode_plugin_info.job"] = _plugin_info(job, job.assemble_argv())
        pairs += ["-job", "encode_job_info.job", "encode_plugin_info.job"]
    command = ["deadlinecommand", "-SubmitMultipleJobs", "-dependent", *pairs]
    out["submit.sh"] = ("#!/bin/sh\n# Submit the stylefarm job to Deadline 10 (each job depends on the one before).\n"
                        f'cd "$(dirname "$0")" && {shlex.join(command)}\n').encode()
    return out


def write(job: FarmJob, out_dir: Path, group: str | None = None, pool: str | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files(job, group, pool).items():
        atomic_write_bytes(out_dir / name, data)
        written.append(out_dir / name)
    (out_dir / "submit.sh").chmod(0o755)
    return written
