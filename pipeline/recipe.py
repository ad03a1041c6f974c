"""The recipe of an output: everything that decides its pixels, hashed, so resume notices changes.

Recorded per finished item in the manifest (the hash) and once per run in
`.stylefarm/recipes/<hash>.json` (the whole recipe, so a rerun can say *what* changed):
- each step: its name, plugin class, resolved options, whether it branches from the input, its
  `temporal:` settings, the distribution and version that provided it;
- the sha256 of every file an option names (style images, masks, weights paths);
- the weights-manager records the step's files are registered under (`<step>/<role>`);
- the output settings (pattern, bit depth, alpha, quality, sink options).
Not the output folder (`output.dir`): the manifest lives in it, so a recipe is always compared
within one folder, and `out/x` and `/abs/out/x` (what exported farm jobs pass) are the same
work; a changed `{input.stem}` part moves the planned files, which resume notices by itself.
Execution settings (backend, batch size, device) are not part of it: they do not change results
beyond float noise, and moving a job from local to Ray must not redo it.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .executors.base import StepCall
from .provenance import file_sha256


def _files_in(value: Any, found: dict[str, str]) -> None:
    """sha256 of every existing file named by a string inside an options dump."""
    if isinstance(value, dict):
        for v in value.values():
            _files_in(v, found)
    elif isinstance(value, list | tuple):
        for v in value:
            _files_in(v, found)
    elif isinstance(value, str) and len(value) < 4096 and ("/" in value or "." in value):
        try:
            if Path(value).is_file() and (digest := file_sha256(value)):
                found[value] = digest
        except OSError:
            pass


@lru_cache(maxsize=64)
def _distribution(module: str) -> str:
    top = module.split(".")[0]
    try:  # the common case, a distribution named like its package: ~5 ms instead of the full scan below
        dist = metadata.distribution(top)
        return f"{dist.metadata['Name']}=={dist.version}"
    except metadata.PackageNotFoundError:
        pass
    names = metadata.packages_distributions().get(top, [])  # reads every installed RECORD (~0.3 s)
    if not names:
        return "unknown"
    return f"{names[0]}=={metadata.version(names[0])}"


def _weights_records(step_name: str) -> list[list[Any]]:
    from .host import get_host

    files = get_host().weights
    return [[w.name, w.filename, w.sha256] for name, w in sorted(files.items()) if name.startswith(f"{step_name}/")]


def step_recipe(call: StepCall) -> dict[str, Any]:
    options = call.options.model_dump(mode="json")
    files: dict[str, str] = {}
    _files_in(options, files)
    return {
        "step": f"{call.cls.__module__}.{call.cls.__qualname__}",
        "options": options,
        "input": "original" if call.from_original else "previous",
        "temporal": call.temporal.model_dump(mode="json") if call.temporal is not None else None,
        "plugin": _distribution(call.cls.__module__),
        "files": files,
        "weights": _weights_records(call.cls.name),
    }


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


NOT_IN_RECIPE = ("dir",)
"""Output settings left out of the recipe (see the module docstring)."""


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A recipe as this version hashes it: older ones also recorded `output.dir`."""
    output = data.get("output", {})
    return {**data, "output": {k: v for k, v in output.items() if k not in NOT_IN_RECIPE}}


class Recipe:
    """The recipe of one plan: a hash per step and one for the whole chain plus outputs."""

    def __init__(self, chain: list[StepCall], output: dict[str, Any]):
        self.data = comparable({"steps": {call.name: step_recipe(call) for call in chain}, "output": output})
        self.hash = digest(self.data)

    def same_as(self, old: dict[str, Any] | None) -> bool:
        """Whether an older recipe (another hash) makes the same outputs: one recorded with the
        output folder by an older stylefarm is this one, so it costs no redo."""
        return old is not None and digest(comparable(old)) == self.hash

    def changes_since(self, old: dict[str, Any] | None) -> list[str]:
        """What differs from an older recipe, e.g. ['cin26.style', 'output.bit_depth']."""
        if old is None:
            return ["recipe unknown (recorded by an older stylefarm)"]
        old = comparable(old)
        changed = []
        new_steps, old_steps = self.data["steps"], old.get("steps", {})
        for name in [*new_steps, *(n for n in old_steps if n not in new_steps)]:
            a, b = old_steps.get(name), new_steps.get(name)
            if a is None or b is None:
                changed.append(f"{name} ({'added' if a is None else 'removed'})")
                continue
            a, b = _flat(a), _flat(b)
            changed += [f"{name}.{key}" for key in sorted({*a, *b}) if a.get(key) != b.get(key)]
        old_out, new_out = old.get("output", {}), self.data["output"]
        changed += [f"output.{k}" for k in sorted({*old_out, *new_out}) if old_out.get(k) != new_out.get(k)]
        return changed


def _flat(step: dict[str, Any]) -> dict[str, Any]:
    """Options and the step's other recipe fields side by side (option names are what users change)."""
    return {**{k: v for k, v in step.items() if k != "options"}, **step["options"]}


def summarize(changes: list[str]) -> str:
    """One line for the log and the report: `2 steps changed: cin26.style, blend.amount`."""
    steps = sorted({c.split(".")[0].split(" ")[0] for c in changes if not c.startswith(("output.", "recipe "))})
    head = f"{len(steps)} step{'s' * (len(steps) != 1)} changed: " if steps else ""
    return head + ", ".join(changes)
