"""The JSON run report: what ran, what came out, what failed, how long each step took."""

from __future__ import annotations

import json
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

    def failed(self, key: str, source: str, error: str) -> None:
        self.data["counts"]["failed"] += 1
        self.failures.append({"item": key, "source": source, "error": error})

    def finish(self, status: str, steps: dict, workers: dict, extra_outputs: list[Path]) -> None:
        self.data["outputs"].extend(str(p) for p in extra_outputs)
        self.data.update(status=status, steps=steps, workers=workers,
                         seconds=round(time.perf_counter() - self._t0, 3),
                         finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.data["versions"] = versions()

    def write(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(self.data, indent=2).encode())
