"""The JSON run report: what ran, what came out, what failed, how long each step took."""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .images import atomic_write_bytes


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
