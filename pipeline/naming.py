"""Output naming: `{input.stem}`, `{frame:04d}`, `{step}` ... and confinement to the output root."""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError
from .item import Item

FIELDS = "input.stem, input.name, input.suffix, input.parent, input.rel, frame, index, step"


@dataclass(frozen=True)
class InputName:
    """What `{input.*}` can use in a pattern."""

    stem: str
    name: str
    suffix: str
    parent: str
    rel: str  # sub-folder relative to the input root ('.' at top level): keeps directory trees

    def __str__(self) -> str:
        return self.stem


def input_name(item: Item) -> InputName:
    path = Path(item.source)
    rel = ""
    if item.input_root:
        try:
            rel = str(path.parent.relative_to(item.input_root))
        except ValueError:
            rel = ""
    rel = rel or "."
    return InputName(path.stem, path.name, path.suffix.lstrip("."), path.parent.name, rel)


INPUT_FIELDS = ("stem", "name", "suffix", "parent", "rel")
NUMBER_SPEC = re.compile(r"^0?\d{0,2}d?$")  # {frame}, {frame:04d}, {index:6d}
TEXT_SPEC = re.compile(r"^$")


def _fields(item: Item, step: str) -> dict[str, object]:
    name = input_name(item)
    values: dict[str, object] = {f"input.{f}": getattr(name, f) for f in INPUT_FIELDS}
    values.update({"input": name.stem, "frame": item.frame if item.frame is not None else item.index,
                   "index": item.index, "step": step})
    return values


def render(template: str, item: Item, step: str) -> str:
    """Fill a pattern with the documented fields only: no attribute or item access beyond
    `input.<field>`, no conversions, number specs like `04d` (a farm runs users' workflows:
    a pattern must not be able to read `{input.__init__.__globals__[os].environ[...]}`)."""
    values = _fields(item, step)
    out = []
    try:
        for literal, field, spec, conversion in string.Formatter().parse(template):
            out.append(literal)
            if field is None:
                continue
            if field not in values or conversion:
                shown = "{" + field + ("!" + conversion if conversion else "") + "}"
                raise ValueError(f"field {shown} is not allowed")
            value = values[field]
            allowed = NUMBER_SPEC if isinstance(value, int) else TEXT_SPEC
            if not allowed.match(spec or ""):
                raise ValueError(f"format {{{field}:{spec}}} is not allowed (numbers take e.g. :04d, text none)")
            out.append(format(value, spec or ""))
    except ValueError as exc:
        raise ValueError(f"bad output pattern {template!r}: {exc}; fields: {FIELDS}") from None
    return "".join(out)


def check_template(template: str) -> None:
    """Fail early on unknown fields (raises ValueError with the allowed ones)."""
    dummy = Item(source="dir/sample.png", index=0, frame=1)
    render(template, dummy, "step")
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field == "":
            raise ValueError(f"bad output pattern {template!r}: empty {{}} field; fields: {FIELDS}")


def static_root(dir_template: str, base: Path) -> Path:
    """The fixed part of an output dir template: the root everything must stay inside."""
    head = dir_template.split("{", 1)[0]
    if "{" in dir_template and not head.endswith(("/", os.sep)):
        head = os.path.dirname(head)
    return (base / head).resolve() if head else base.resolve()


def confine(root: Path, candidate: Path) -> Path:
    """Reject outputs that escape the root (`..`, absolute patterns, symlinked tricks)."""
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise OutputError(f"output path {candidate} escapes the output directory {root}")
    return resolved
