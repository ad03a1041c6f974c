"""`stylefarm warmup`: compile a workflow's networks ahead, for its input frame sizes.

Why: a step with `compile: auto` loads a compiled network from the shared compile cache in about
a second, but the first compile of a frame size costs 30-70 s on a small CPU. A farm bakes the
cache into its node image (or runs this once per node) so no task ever pays it.

How: the chain up to its last step with a `compile` option runs once on a dummy batch of each
distinct input size (one frame decoded per input to learn it, or `--size`), with
`STYLEFARM_COMPILE_AHEAD=1` so `compile: auto` compiles at once; steps set to `compile: false`
stay eager. Earlier steps run too, so a network sees the size it will see in the real run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import StylefarmError
from .item import Item

AHEAD_ENV = "STYLEFARM_COMPILE_AHEAD"


@dataclass
class WarmupResult:
    sizes: list[tuple[int, int]]  # (width, height) of the dummy frames
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> its compile info

    def lines(self) -> Iterator[str]:
        """One line per step and network input shape: compiled (cold, seconds) or already cached."""
        for step, info in self.steps.items():
            for shape, row in (info.get("sizes") or {}).items():
                if row.get("cache") == "cold":
                    what = f"compiled in {row.get('compile_s', 0):.1f} s"
                elif row.get("cache") == "warm":
                    what = f"already cached (loaded in {row.get('load_s', 0):.1f} s)"
                else:
                    what = f"eager ({row.get('error') or 'compile off'})"
                yield f"{step} {shape}: {what}"


def input_sizes(plan) -> list[tuple[int, int]]:
    """Distinct (width, height) of each input's first frame (pixel-less generator inputs skipped)."""
    sizes: list[tuple[int, int]] = []
    for source in plan.sources:
        items = source.items()
        try:
            item = next(iter(items), None)
            if item is None or (item.image is None and item.loader is None):
                continue
            h, w = item.load().image.shape[:2]
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # stops a video decoder after its first frame
        if (w, h) not in sizes:
            sizes.append((w, h))
    return sizes


def compile_chain(chain: list) -> list:
    """The chain up to its last step that has a `compile` option (later steps need no warm-up)."""
    last = max((i for i, call in enumerate(chain) if "compile" in type(call.options).model_fields), default=-1)
    return chain[: last + 1]


def warmup(plan, sizes: list[tuple[int, int]] | None = None) -> WarmupResult:
    """Run the compile-able part of `plan`'s chain on dummy frames of each size (see module doc)."""
    from .executors.base import ChainRunner

    chain = compile_chain(plan.chain)
    if not chain:
        raise StylefarmError("warmup: no step of this workflow has a `compile` option; nothing to compile")
    sizes = sizes or input_sizes(plan)
    if not sizes:
        raise StylefarmError("warmup: no input frame to learn the size from; give --size WxH")
    ex = plan.workflow.execution
    previous = os.environ.get(AHEAD_ENV)
    os.environ[AHEAD_ENV] = "1"
    runner = ChainRunner(chain, ex.device, ex.threads)
    try:
        runner.setup()
        rng = np.random.default_rng(0)
        for w, h in sizes:  # a full batch: batching steps compile for the batch shape they will get
            frame = (rng.random((h, w, 3), dtype=np.float32) * 255).astype(np.uint8)
            batch = [Item(source="warmup", index=i, image=frame, size=(w, h)) for i in range(ex.batch_size)]
            for _, error in runner.run_batch(batch):
                if error:
                    raise StylefarmError(f"warmup at {w}x{h}: {error}")
        steps = {name: t["compile"] for name, t in runner.timings_dict().items() if t.get("compile")}
    finally:
        runner.teardown()
        if previous is None:
            os.environ.pop(AHEAD_ENV, None)
        else:
            os.environ[AHEAD_ENV] = previous
    return WarmupResult(sizes, steps)


def parse_size(text: str) -> tuple[int, int]:
    """`1280x720` -> (1280, 720)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise StylefarmError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 1 or h < 1:
        raise StylefarmError(f"--size {text!r}: width and height must be positive")
    return w, h
