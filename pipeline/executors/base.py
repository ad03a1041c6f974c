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

from ..item import Item
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

    def build(self) -> Step:
        return self.cls(self.options)


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
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"step {step!r}: {type(exc).__name__}{': ' + text if text else ''}"


class ChainRunner:
    """Runs a chain of steps on batches inside one process (local, Ray actor, Dask worker)."""

    def __init__(self, chain: list[StepCall], device: str = "auto", threads: int | None = None):
        self.chain = chain
        self.device_spec = device
        self.threads = threads
        self.steps: list[Step] = []
        self.device = "cpu"
        self.timings: dict[str, StepTiming] = {call.name: StepTiming() for call in chain}

    def setup(self) -> None:
        if self.threads and any(call.cls.uses_device for call in self.chain):
            import torch

            torch.set_num_threads(self.threads)
        needs_device = any(call.cls.uses_device for call in self.chain)
        self.device = resolve_device(self.device_spec) if needs_device else "cpu"
        self.steps = [call.build() for call in self.chain]
        for step in self.steps:
            step.setup(self.device)

    def teardown(self) -> None:
        for step in self.steps:
            step.teardown()

    def _run_chain(self, batch: list[Item]) -> list[Item]:
        for call, step in zip(self.chain, self.steps):
            if call.from_original:
                batch = [it.with_image(it.original) if it.original is not None else it for it in batch]
            start = time.perf_counter()
            try:
                out = step.process(batch)
            except Exception as exc:
                raise ChainError(describe_exception(call.name, exc)) from exc
            if len(out) != len(batch):
                raise ChainError(f"step {call.name!r} returned {len(out)} items for {len(batch)}")
            self.timings[call.name].add(time.perf_counter() - start, len(batch))
            if call.save:
                for it in out:
                    it.meta = {**it.meta, "stages": {**it.meta.get("stages", {}), call.name: it.image}}
            batch = out
        return batch

    def run_batch(self, batch: list[Item]) -> list[tuple[Item | None, str | None]]:
        """Results per input item; a failing batch is re-run item by item to find the culprit."""
        try:
            return [(item, None) for item in self._run_chain(batch)]
        except ChainError as exc:
            if len(batch) == 1:
                log.debug("item %s failed: %s", batch[0].key, exc, exc_info=exc.__cause__)
                return [(None, str(exc))]
        results: list[tuple[Item | None, str | None]] = []
        for item in batch:
            results.extend(self.run_batch([item]))
        return results

    def timings_dict(self) -> dict[str, dict[str, Any]]:
        return {name: vars(t).copy() for name, t in self.timings.items()}


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
