"""Open Job Description (`jobtemplate-2023-09`) job templates and Deadline Cloud job bundles.

Facts from the specification this follows:
- a `CHUNK[INT]` task parameter needs the `TASK_CHUNKING` extension; with
  `rangeConstraint: CONTIGUOUS` `{{Task.Param.X}}` expands to `start-end` ("1001-1012"),
  which is exactly what `stylefarm run --frames` takes; `defaultTaskCount` may be a job
  parameter reference (`{{Param.ChunkSize}}`);
- without chunking, a STRING task parameter with an explicit list of ranges does the same
  on runners that lack the extension (`chunking=False`);
- a PATH parameter's default must be a relative path inside the template's folder (the runner
  joins it to that folder and refuses to walk up), so paths outside the bundle are STRING
  parameters holding the absolute path;
- `hostRequirements.amounts` with `amount.worker.gpu` (min 1) asks for a GPU worker;
- `timeout` on an action is in seconds; task retries are not part of the template: Deadline
  Cloud takes `deadline:maxRetriesPerTask` from the bundle's `parameter_values.yaml`;
- any non-zero exit fails the task, so stylefarm's exit code 3 (some items failed) fails it
  and the farm's retry resumes only the failed items.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..images import atomic_write_bytes
from .job import FarmJob

STYLIZE = "Stylize"


def _path_parameter(name: str, path: Path, base: Path, kind: str, flow: str, what: str) -> dict[str, Any]:
    """A PATH parameter when `path` lies inside the bundle folder (PATH defaults must be relative
    and may not walk up from the template's folder); otherwise a STRING with the absolute path."""
    base = base.resolve()
    if path == base or base in path.parents:
        return {"name": name, "type": "PATH", "objectType": kind, "dataFlow": flow, "description": what,
                "default": os.path.relpath(path, base)}
    return {"name": name, "type": "STRING", "description": f"{what} (absolute: outside the bundle folder)",
            "default": str(path)}


def _parameters(job: FarmJob, chunking: bool, base: Path) -> list[dict[str, Any]]:
    params = [_path_parameter("WorkflowFile", job.workflow, base, "FILE", "IN", "the stylefarm workflow")]
    if job.output_dir is not None:
        params.append(_path_parameter("OutputDir", job.output_dir, base, "DIRECTORY", "OUT",
                                      "output.dir of the workflow"))
    if job.frames is not None:
        params.append({"name": "Frames", "type": "STRING", "description": "frame numbers to stylize",
                       "default": job.frames_text})
        if chunking:
            params.append({"name": "ChunkSize", "type": "INT", "minValue": 1,
                           "description": "frames per task", "default": job.chunk_size})
    params.append({"name": "StylefarmCommand", "type": "STRING",
                   "description": "the stylefarm executable on the workers", "default": job.stylefarm})
    return params


def _argv(job: FarmJob, argv: list[str]) -> list[str]:
    """Swap the values that are job parameters for their `{{Param.X}}` references."""
    out = list(argv[1:])
    out[1] = "{{Param.WorkflowFile}}"
    if job.output_dir is not None:
        out[3] = "{{Param.OutputDir}}"
    return out


def _action(job: FarmJob, argv: list[str]) -> dict[str, Any]:
    action: dict[str, Any] = {"command": "{{Param.StylefarmCommand}}", "args": _argv(job, argv)}
    if job.timeout:
        action["timeout"] = job.timeout
    return action


def _task_space(job: FarmJob, chunking: bool) -> tuple[dict[str, Any], list[str]]:
    """The stylize step's parameter space and the selector args of its command."""
    if job.frames is None:
        space = {"name": "Shard", "type": "INT", "range": f"1-{job.shards}"}
        return space, ["--shard", f"{{{{Task.Param.Shard}}}}/{job.shards}"]
    if chunking:
        space = {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
                 "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}
        return space, job.frame_selector("{{Task.Param.Frame}}")
    ranges = [f"{a}-{b}" for a, b in job.chunks()]
    return {"name": "Frames", "type": "STRING", "range": ranges}, job.frame_selector("{{Task.Param.Frames}}")


def template(job: FarmJob, base: Path, chunking: bool = True) -> dict[str, Any]:
    """The job template as a dict (YAML-ready) for a template file in folder `base`."""
    chunking = chunking and job.frames is not None
    space, selector = _task_space(job, chunking)
    stylize: dict[str, Any] = {
        "name": STYLIZE, "description": "stylefarm run on a part of the job (resumes when re-queued)",
        "parameterSpace": {"taskParameterDefinitions": [space]},
        "script": {"actions": {"onRun": _action(job, job.stylize_argv(selector))}},
    }
    frames = "{{Param.Frames}}" if job.frames is not None else None  # a Frames given at submission: both steps
    if job.gpu:
        stylize["hostRequirements"] = {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}
    steps = [stylize]
    if job.assemble:
        steps.append({"name": job.assemble.capitalize(),
                      "description": f"{job.assemble}: {', '.join(job.aggregates)} from the stylized frames",
                      "dependencies": [{"dependsOn": STYLIZE}],
                      "script": {"actions": {"onRun": _action(job, job.assemble_argv(frames))}}})
    out: dict[str, Any] = {"specificationVersion": "jobtemplate-2023-09"}
    if chunking:
        out["extensions"] = ["TASK_CHUNKING"]
    out.update(name=job.name[:128], description=f"stylefarm workflow {job.workflow.name}; "
               "exit code 3 = some items failed (task fails; a retry redoes only those)",
               parameterDefinitions=_parameters(job, chunking, base), steps=steps)
    return out


def final_step(job: FarmJob) -> str:
    return job.assemble.capitalize() if job.assemble else STYLIZE


def parameter_values(job: FarmJob) -> dict[str, Any]:
    """Deadline Cloud's submission settings plus every job parameter's value."""
    values = [{"name": "deadline:priority", "value": job.priority},
              {"name": "deadline:maxRetriesPerTask", "value": job.retries},
              {"name": "deadline:targetTaskRunStatus", "value": "READY"}]
    return {"parameterValues": values}


def dump(data: dict[str, Any]) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, width=1000, allow_unicode=True).encode()


def write(job: FarmJob, out_dir: Path, chunking: bool = True) -> list[Path]:
    """A Deadline Cloud job bundle: template.yaml (the OpenJD template) + parameter_values.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"template.yaml": dump(template(job, out_dir, chunking)),
             "parameter_values.yaml": dump(parameter_values(job))}
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    return [out_dir / name for name in files]
