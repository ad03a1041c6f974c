"""OpenCue job spec XML (Cue Job Spec Language, DTD cjsl-1.16), submitted with `cuecmd`/pycue.

One job with a `stylize` layer (range = the frame list, or `1-N` shard numbers for stills;
`chunk` frames per task; command tokens `#FRAME_START#` / `#FRAME_END#` / `#IFRAME#` are
replaced by cuebot) and, for videos and contact sheets, an `encode` layer that waits for the
whole stylize layer (a LAYER_ON_LAYER dependency). `gpus` asks for a GPU when the workflow uses
CUDA; `timeout` is in minutes; `maxretries` is the job's retry count. Any non-zero exit (3:
some items failed) makes the frame Dead after its retries; a retry resumes.
"""

from __future__ import annotations

import getpass
import math
import re
import shlex
from pathlib import Path
from xml.etree import ElementTree as ET

from ..images import atomic_write_bytes
from .job import FarmJob

DTD = "cjsl-1.16.dtd"
DOCTYPE = f'<!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" "http://localhost:8080/spcue/dtd/{DTD}">'


def token(text: str) -> str:
    """An XML NMTOKEN (names of jobs and layers): letters, digits, . - _ only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "stylefarm"


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def _layer(layers: ET.Element, job: FarmJob, name: str, kind: str, argv: list[str], frames: str,
           chunk: int, gpu: bool) -> None:
    layer = _sub(layers, "layer", name=name, type=kind)
    _sub(layer, "cmd", shlex.join(argv))
    _sub(layer, "range", frames)
    _sub(layer, "chunk", chunk)
    if gpu:
        _sub(layer, "gpus", 1)
    if job.timeout:
        _sub(layer, "timeout", math.ceil(job.timeout / 60))
    _sub(_sub(layer, "services"), "service", "shell")


def spec(job: FarmJob, show: str | None = None, shot: str | None = None) -> ET.Element:
    """The <spec> element of the job (children in the DTD's order)."""
    job.refuse_holes("opencue")
    root = ET.Element("spec")
    _sub(root, "show", token(show or "stylefarm"))
    _sub(root, "shot", token(shot or job.workflow.stem))
    _sub(root, "user", token(getpass.getuser()))
    job_name = token(job.name)
    element = _sub(root, "job", name=job_name)
    _sub(element, "paused", "False")
    _sub(element, "maxretries", job.retries)
    layers = _sub(element, "layers")
    if job.frames is not None:
        frames, chunk = job.frames_text, job.chunk_size
        selector = job.frame_selector("#FRAME_START#-#FRAME_END#")
    else:
        frames, chunk = f"1-{job.shards}", 1
        selector = ["--shard", f"#IFRAME#/{job.shards}"]
    _layer(layers, job, "stylize", "Render", job.stylize_argv(selector), frames, chunk, job.gpu)
    if job.assemble:
        _layer(layers, job, job.assemble, "Util", job.assemble_argv(), "1", 1, False)
        depend = _sub(_sub(root, "depends"), "depend", type="LAYER_ON_LAYER", anyframe="False")
        for tag, text in (("depjob", job_name), ("deplayer", job.assemble), ("onjob", job_name),
                          ("onlayer", "stylize")):
            _sub(depend, tag, text)
    return root


def to_xml(root: ET.Element) -> bytes:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{DOCTYPE}\n{body}\n'.encode()


def write(job: FarmJob, out_dir: Path, show: str | None = None, shot: str | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "job.xml"
    atomic_write_bytes(path, to_xml(spec(job, show, shot)))
    return [path]
