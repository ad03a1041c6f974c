"""What every executor shares: the picklable chain description and the per-worker runner.

`ChainRunner` is what runs inside the local process, a Ray actor or a Dask worker: it builds
the steps once, sets them up on the device once, and runs batches, isolating a failing item
by re-running the batch one item at a time so one poisoned item does not fail its neighbours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ..contract import freeze, output_problem
from ..errors import first_line
from ..item import Item, as_float
from ..step import Step, StepOptions
from ..workflow import ExecutionSpec

log = logging.getLogger("stylefarm.executor")


@dataclass
class StepCall:
    """A configured step: class + validated options, picklable to actors and workers."""

    name: str
    cls: type[Step]
    options: StepOptions
    from_original: bool = False  # start from the input image instead of the previous step's result
    save: bool = False  # keep this step's result in item.meta["stages"] so sinks write it too
    temporal: Any = None  # validated `temporal:` options (stylefarm.temporal), None = off
    generates: int | None = None  # a source's generator: makes the pixels of that input's items

    def build(self) -> Step:
        return self.cls(self.options)

    @property
    def is_temporal(self) -> bool:
        """Keeps state across frames: the step itself, or the host's `temporal:` filter on it."""
        return self.temporal is not None or self.cls.is_temporal(self.options)


@dataclass
class Outcome:
    """The result of one input item, yielded by `Executor.map` in input order."""

    item: Item
    result: Item | None = None
    error: str | None = None
    worker: str = "local"


@dataclass
class StepTiming:
    seconds: float = 0.0
    items: int = 0
    batches: int = 0

    def add(self, seconds: float, items: int) -> None:
        self.seconds += seconds
        self.items += items
        self.batches += 1


def resolve_device(spec: str) -> str:
    """'auto' -> cuda when available, else cpu; asking for cuda without one is an error."""
    if spec == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if spec == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise RuntimeError(f"device {spec!r} requested but torch sees no CUDA device; use device: cpu or auto")
    return spec


def batched(items: Iterable[Item], size: int, by_source: bool = False) -> Iterator[list[Item]]:
    """Consecutive items in lists of `size`; `by_source` also cuts where the source changes, so a
    temporal chain's batch never mixes two videos (a batch is routed by its first item)."""
    if not by_source:
        iterator = iter(items)
        while batch := list(islice(iterator, size)):
            yield batch
        return
    batch: list[Item] = []
    for item in items:
        if batch and (len(batch) == size or item.source != batch[0].source):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def describe_exception(step: str, exc: BaseException) -> str:
    return f"step {step!r}: {first_line(exc, with_type=True)}"


class ChainRunner:
    """Runs a chain of steps on batches inside one process (local, Ray actor, Dask worker)."""

    def __init__(self, chain: list[StepCall], device: str = "auto", threads: int | None = None):
        self.chain = chain
        self.device_spec = device
        self.threads = threads
        self.steps: list[Step] = []
        self.device = "cpu"
        self.timings: dict[str, StepTiming] = {call.name: StepTiming() for call in chain}
        self.filters: dict[str, Any] = {}

    def setup(self) -> None:
        if self.threads and any(call.cls.uses_device for call in self.chain):
            import torch

            torch.set_num_threads(self.threads)
        needs_device = any(call.cls.uses_device for call in self.chain)
        self.device = resolve_device(self.device_spec) if needs_device else "cpu"
        self.steps = [call.build() for call in self.chain]
        from ..provenance import recording

        for step in self.steps:
            with recording() as loaded:  # weight files the weights manager loads for this step
                step.setup(self.device)
            used = list(getattr(step, "weights_used", []))
            step.weights_used = used + [p for p in loaded if p not in used]
        from ..temporal import TemporalFilter

        self.filters = {call.name: TemporalFilter(call.temporal) for call in self.chain if call.temporal is not None}

    def teardown(self) -> None:
        for step in self.steps:
            step.teardown()

    def _wants(self, call: StepCall, item: Item) -> bool:
        """A generator step makes only its own source's pixel-less items; other steps take all."""
        if call.generates is None:
            return True
        return item.image is None and item.meta.get("generate") == call.generates

    def _inputs(self, call: StepCall, items: list[Item]) -> list[Item]:
        if call.from_original:
            items = [it.with_image(it.original) if it.original is not None else it for it in items]
        if call.name in self.filters:  # flow and blending work on floats, the input frame too
            items = [floats(it, original=True) for it in items]
        elif "uint8" not in call.cls.pixel_types:
            items = [floats(it) for it in items]
        return [freeze(it) for it in items]

    def _call(self, call: StepCall, step: Step, items: list[Item]) -> list[Item]:
        try:
            out = step.process(items)
        except Exception as exc:
            message = describe_exception(call.name, exc)
            if "read-only" in str(exc):
                message += " (items are read-only: return a new array with item.with_image(...))"
            raise ChainError(message) from exc
        if not isinstance(out, list) or len(out) != len(items):
            got = f"{len(out)} items" if isinstance(out, list) else type(out).__name__
            raise ChainError(f"step {call.name!r} returned {got} for {len(items)} items (expected a list, "
                             f"one result per item)")
        return out

    def _run_chain(self, batch: list[Item]) -> list[tuple[Item | None, str | None]]:
        """Each step on the items still alive; an item whose result breaks the contract fails alone."""
        items: list[Item] = list(batch)
        errors: list[str | None] = [None] * len(batch)
        for call, step in zip(self.chain, self.steps):
            todo = [i for i, it in enumerate(items) if errors[i] is None and self._wants(call, it)]
            if not todo:
                continue
            start = time.perf_counter()
            inputs = self._inputs(call, [items[i] for i in todo])
            if call.name in self.filters:  # the warped previous result, for steps that start from it
                inputs = self.filters[call.name].prepare(inputs)
            out = self._call(call, step, inputs)
            good: list[tuple[int, Item, Item]] = []
            uint8_ok = "uint8" in call.cls.pixel_types and call.name not in self.filters
            for i, item_in, result in zip(todo, inputs, out):
                problem = output_problem(result, uint8_ok)
                if problem:
                    errors[i] = f"step {call.name!r} {problem}"
                else:
                    good.append((i, item_in, result))
            if call.name in self.filters and good:
                filtered = self.filters[call.name].apply([g[1] for g in good], [g[2] for g in good])
                good = [(i, item_in, result) for (i, item_in, _), result in zip(good, filtered)]
            self.timings[call.name].add(time.perf_counter() - start, len(todo))
            for i, _, result in good:
                if call.generates is not None:
                    result.original = result.image
                if call.save:
                    result.meta = {**result.meta, "stages": {**result.meta.get("stages", {}), call.name: result.image}}
                items[i] = result
        return [(None, err) if err else (it, None) for it, err in zip(items, errors)]

    def run_batch(self, batch: list[Item]) -> list[tuple[Item | None, str | None]]:
        """Results per input item; a batch whose step raised is re-run item by item to find the culprit."""
        try:
            return self._run_chain(batch)
        except ChainError as exc:
            if len(batch) == 1:
                log.debug("item %s failed: %s", batch[0].key, exc, exc_info=exc.__cause__)
                return [(None, str(exc))]
        results: list[tuple[Item | None, str | None]] = []
        for item in batch:
            results.extend(self.run_batch([item]))
        return results

    def weights_used(self) -> list[str]:
        """Weight files the chain's steps loaded (for the report's provenance)."""
        return sorted({str(p) for step in self.steps for p in getattr(step, "weights_used", [])})

    def timings_dict(self) -> dict[str, dict[str, Any]]:
        return {name: vars(t).copy() for name, t in self.timings.items()}


def floats(item: Item, original: bool = False, stages: bool = False) -> Item:
    """The item with float32 pixels: 8-bit frames are converted here, once, for the first step
    (or sink) that needs floats. `original` (the input frame) and saved `stages` follow when asked
    or when they are the same array."""
    from dataclasses import replace

    def conv(array):
        return as_float(array) if isinstance(array, np.ndarray) and array.dtype == np.uint8 else array

    if not any(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in (item.image, item.original)) and \
            not (stages and item.meta.get("stages")):
        return item
    image = conv(item.image)
    first = image if item.original is item.image else (conv(item.original) if original else item.original)
    meta = item.meta
    if stages and meta.get("stages"):
        meta = {**meta, "stages": {name: conv(a) for name, a in meta["stages"].items()}}
    return replace(item, image=image, original=first, meta=meta)


class ChainError(Exception):
    """A step failed or broke the one-result-per-item contract."""


class Executor:
    """Base class: `map` yields one Outcome per input item, in input order."""

    name = "base"

    def __init__(self, execution: ExecutionSpec):
        self.execution = execution
        self.step_timings: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}

    def map(self, chain: list[StepCall], items: Iterable[Item]) -> Iterator[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release clusters and actors."""
