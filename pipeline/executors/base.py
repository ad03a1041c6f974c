"""What every executor shares: the picklable chain description and the per-worker runner.

`ChainRunner` is what runs inside the local process, a Ray actor or a Dask worker: it builds
the steps once, sets them up on the device once, and runs batches, isolating a failing item
by re-running the batch one item at a time so one poisoned item does not fail its neighbours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from .. import allocator
from ..contract import freeze, output_problem
from ..errors import StylefarmError, defined_at, first_line, raised_outside_host
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
    in_decoder: bool = False  # the video decoder already did this step (`Step.decoder_size`): skipped

    def build(self) -> Step:
        return self.cls(self.options)

    @property
    def is_temporal(self) -> bool:
        """Keeps state across frames: the step itself, or the host's `temporal:` filter on it."""
        return self.temporal is not None or self.cls.is_temporal(self.options)


@contextmanager
def _starting(call: StepCall, method: str) -> Iterator[None]:
    """A step whose constructor or setup raises is named, with the place in its code: the bare
    exception (`TypeError: setup() takes 1 positional argument`) said neither."""
    try:
        yield
    except StylefarmError:
        raise  # already one line saying what to do (missing weights, no GPU ...)
    except Exception as exc:
        where = raised_outside_host(exc, prefer=defined_at(call.cls).rpartition(":")[0])
        if not where:  # raised by the call itself (a wrong signature): point at the method
            where = defined_at(getattr(call.cls, method, call.cls))
        raise StylefarmError(f"step {call.name!r} ({call.cls.__module__}.{call.cls.__name__}) failed in {method}"
                             f"{f' at {where}' if where else ''}: {first_line(exc, with_type=True)}") from exc


@dataclass
class Outcome:
    """The result of one input item, yielded by `Executor.map` in input order."""

    item: Item
    result: Item | None = None
    error: str | None = None
    worker: str = "local"


@dataclass
class SegmentOutcome:
    """A segment that ended (`Executor.map_segments`, in the order segments finish): its
    `stylefarm.segment_work.SegmentResult`, or the error that made it give up."""

    task: Any
    result: Any = None
    error: str | None = None
    worker: str = "local"
    info: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1


@dataclass
class StepTiming:
    seconds: float = 0.0
    items: int = 0
    batches: int = 0

    def add(self, seconds: float, items: int) -> None:
        self.seconds += seconds
        self.items += items
        self.batches += 1


def default_threads() -> int | None:
    """torch CPU threads when `execution.threads` is unset.

    `$STYLEFARM_THREADS` (a farm node's setting) wins; under a launcher that set OMP_NUM_THREADS
    (Ray: the actor's CPUs; Dask's nanny: 1 per worker) None keeps torch's choice, that share;
    locally, the physical cores this process may use minus those other jobs keep busy, at least 1.
    Why: on the 2-core machine (benchmarks/compile_cache.py, same run) 2 threads beat 1 when it
    is quiet but ran ~2x slower than 1 at load ~7, eager and compiled alike: OpenMP threads spin
    waiting for a core another job holds. "Busy" is the lower of the 1-minute load average and
    a 0.2 s sample of the CPUs (`busy_now`): the average lags a minute behind a job that just
    ended (a farm node's previous task), a sample alone would follow a passing spike."""
    import os

    value = os.environ.get("STYLEFARM_THREADS", "").strip()
    if value.isdigit():
        return max(1, int(value))
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        cores = min(cores, psutil.cpu_count(logical=False) or cores)  # hyperthreads do not help conv nets
    except ImportError:
        pass
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if busy >= 0.5:  # only then is the sample worth its 0.2 s
        now = busy_now()
        busy = busy if now is None else min(busy, now)
    return max(1, min(cores, round(cores - busy)))


def busy_now(seconds: float = 0.2) -> float | None:
    """CPUs kept busy by other processes over a short sample (Linux /proc/stat, this process's
    own threads left out), or None where that cannot be read."""
    import os

    def sample() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        own = os.times()
        return sum(fields[:8]) - idle, own.user + own.system

    try:
        tick = os.sysconf("SC_CLK_TCK")
        (busy0, own0), start = sample(), time.perf_counter()
        time.sleep(seconds)
        (busy1, own1), elapsed = sample(), time.perf_counter() - start
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, ((busy1 - busy0) / tick - (own1 - own0)) / elapsed)


def json_copy(value: Any) -> Any:
    """A plain-JSON copy (dicts, lists, numbers, strings) safe to pickle back from a worker."""
    import json

    return json.loads(json.dumps(value, default=str))


def resolve_device(spec: str) -> str:
    """'auto' -> cuda when available, else cpu; asking for cuda without one is an error."""
    if spec == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if spec == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        from ..errors import DeviceError

        raise DeviceError(f"device {spec!r} requested but torch sees no CUDA device; use device: cpu or auto")
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
        self.last_shapes: frozenset | None = None

    def setup(self) -> None:
        needs_device = any(call.cls.uses_device for call in self.chain)
        threads = (self.threads or default_threads()) if needs_device else None  # no torch, no CPU sample
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.device = resolve_device(self.device_spec) if needs_device else "cpu"
        self.steps = []
        for call in self.chain:
            with _starting(call, "__init__"):
                self.steps.append(call.build())
        from ..provenance import recording

        for call, step in zip(self.chain, self.steps):
            with recording() as loaded, _starting(call, "setup"):  # weight files the weights manager loads
                step.setup(self.device)
            used = list(getattr(step, "weights_used", []))
            step.weights_used = used + [p for p in loaded if p not in used]
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the temporal filters' frames: a segment starts afresh, like a farm shard (its
        lead-in frames rebuild the state), whatever this worker ran before."""
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
            if call.in_decoder:
                self.timings[call.name].add(0.0, len(todo))
                continue
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
        repeating = self._memory_mode(batch)
        try:
            return self._run_chain(batch)
        except ChainError as exc:
            if len(batch) == 1:
                log.debug("item %s failed: %s", batch[0].key, exc, exc_info=exc.__cause__)
                return [(None, str(exc))]
        finally:
            if not repeating:
                allocator.release()  # sizes change (stills): a kept heap would fragment across them
        results: list[tuple[Item | None, str | None]] = []
        for item in batch:
            results.extend(self.run_batch([item]))
        return results

    def _memory_mode(self, batch: list[Item]) -> bool:
        """Freed memory is kept for the next allocation during a batch (`allocator.steady`); True
        when frames of one size repeat (within this batch, or the last batch's size again), so
        the memory stays for the next batch too, else it is handed back after this one. Stills
        not yet loaded count as new."""
        shapes = frozenset(it.image.shape if it.image is not None else None for it in batch)
        repeating = None not in shapes and (shapes == self.last_shapes or (len(shapes) == 1 and len(batch) > 1))
        allocator.steady(True)
        self.last_shapes = shapes
        return repeating

    def weights_used(self) -> list[str]:
        """Weight files the chain's steps loaded (for the report's provenance)."""
        return sorted({str(p) for step in self.steps for p in getattr(step, "weights_used", [])})

    def timings_dict(self) -> dict[str, dict[str, Any]]:
        """Per step: seconds, items, batches, and `compile` (what a step with a `compile_info`
        dict decided per frame size and what it cost: `stylefarm.plugins._compile`)."""
        out = {name: vars(t).copy() for name, t in self.timings.items()}
        for call, step in zip(self.chain, self.steps):
            if call.in_decoder:
                out[call.name]["in_decoder"] = True
            info = getattr(step, "compile_info", None)
            if info:
                out[call.name]["compile"] = json_copy(info)
        return out


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

    def map_segments(self, chain: list[StepCall], tasks: Iterable[Any]) -> Iterator[SegmentOutcome]:
        """Run segment tasks (`stylefarm.segment_work`) on the workers, which read and write the
        files themselves; outcomes come as segments finish."""
        raise NotImplementedError

    def check_storage(self, inputs: list[str], root: str, token: str) -> list[dict[str, str | None]]:
        """`segment_work.probe_storage`'s answer from every worker that may get a segment.
        In-process executors share the driver's files: nothing to check."""
        return []

    def close(self) -> None:
        """Release clusters and actors."""
